"""The XenAPI backend under test: the real SDK against the loopback XAPI stand-in over a SimHost."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xapi import XapiHost

from .hostunder import HostUnderTest
from .standins.xapi_server import XapiStandIn

USER, PASSWORD = "root", "hostkit-xapi-pw"


@contextlib.contextmanager
def xapi_backend(tmp_path: Path) -> Iterator[HostUnderTest]:
    sim = SimHost(tmp_path / "host.json")
    with XapiStandIn(sim, user=USER, password=PASSWORD) as server:
        # The password comes from the prompt callable, so the test leaves VGPU_XAPI_PASSWORD alone.
        host = XapiHost.from_uri(f"xapi://{USER}@127.0.0.1:{server.port}", password=lambda: PASSWORD)
        try:
            yield HostUnderTest("xapi", host, lambda u, n, p, a: sim.add_vm(u, n, p, a), sim)
        finally:
            host.close()

"""The XenAPI backend under test: the real SDK against the loopback XAPI stand-in over a SimHost."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xapi import XapiHost
from vgpu.hypervisor.xenstore import Xenstore

from .hostkit_xe import STANDIN_XENSTORE_LS, standin_env
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


@contextlib.contextmanager
def xapi_dom0_backend(tmp_path: Path) -> Iterator[HostUnderTest]:
    """XenAPI as on dom0: xapi's Unix socket (``xapi+unix:``, root, no password) and the local xenstore,
    from which it reads what running domains booted with (a remote ``xapi://`` connection cannot)."""
    sim = SimHost(tmp_path / "host.json")
    with tempfile.TemporaryDirectory(prefix="vgpu_") as folder:  # short: socket paths max out at 107 bytes
        socket_path = f"{folder}/xapi"
        with XapiStandIn(sim, password="", socket_path=socket_path):
            xenstore = Xenstore(str(STANDIN_XENSTORE_LS), env=standin_env(sim))
            host = XapiHost.from_uri(f"xapi+unix:{socket_path}", xenstore=xenstore)
            try:
                yield HostUnderTest("xapi-dom0", host, lambda u, n, p, a: sim.add_vm(u, n, p, a), sim)
            finally:
                host.close()

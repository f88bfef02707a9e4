"""A simulated host reached by a real ``vgpu-admin`` process through each backend that can run over one:
``sim:`` directly, ``xe:`` through the stand-in xe, ``xapi://`` through the loopback XAPI server.

:func:`cli_host` yields the SimHost (to build the host and inject faults), the ``--host`` URI and the
environment the process needs. An xe stand-in that a killed vgpu-admin left running (it carries on with
what it was asked, as xapi would) is ended when the test is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Iterator

import attrs

from vgpu.hypervisor.sim import SimHost

from .hostkit_xe import STANDIN_XE, STANDIN_XENSTORE_LS, standin_env
from .standins.xapi_server import XapiStandIn

USER, PASSWORD = "root", "clihosts-xapi-pw"


@attrs.frozen
class CliHost:
    sim: SimHost
    uri: str
    env: dict[str, str]


@contextlib.contextmanager
def cli_host(name: str, tmp_path: Path) -> Iterator[CliHost]:
    sim = SimHost(tmp_path / "host.json")
    if name == "sim":
        yield CliHost(sim, f"sim:{sim.path}", dict(os.environ))
    elif name == "xe":
        log = tmp_path / "xe-calls.log"
        try:
            env = {**os.environ, **standin_env(sim, VGPU_XE_CALL_LOG=str(log))}
            # As on a dom0, xenstore-ls is on PATH: the backend reads what each running domain booted with.
            env["PATH"] = os.pathsep.join([str(STANDIN_XENSTORE_LS.parent), env["PATH"]])
            yield CliHost(sim, f"xe:{STANDIN_XE}", env)
        finally:
            _end_stray_standins(log)
    elif name == "xapi":
        with XapiStandIn(sim, user=USER, password=PASSWORD) as server:
            yield CliHost(sim, f"xapi://{USER}@127.0.0.1:{server.port}", {**os.environ, "VGPU_XAPI_PASSWORD": PASSWORD})
    else:
        raise ValueError(f"no vgpu-admin route to a simulated host through {name!r}")


def _end_stray_standins(log: Path) -> None:
    if not log.exists():
        return
    for line in log.read_text(encoding="utf-8").splitlines():
        pid = json.loads(line)["pid"]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended long ago
        if str(STANDIN_XE).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

"""The ``xe`` backend under test: XeHost driving the stand-in ``xe`` (tests/standins/xe) over a SimHost file."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xe import XeHost

from .hostunder import HostUnderTest

STANDIN_XE = Path(__file__).resolve().parent / "standins" / "xe"
STANDIN_XENSTORE_LS = Path(__file__).resolve().parent / "standins" / "xenstore-ls"

# A VM's platform map as a real XCP-ng host holds it: the keys of the real capture in
# tests/data/xe/platform_map.param-list.txt (timeoffset, nx, pae, apic, viridian, acpi, device_id) and those
# XCP-ng's templates add (videoram, hpet, secureboot, vga). A real VM never has its device-model args alone in
# the map, so measuring or testing only that case measures a host no one has. None marks where the args key
# goes (xe prints the map in its own order).
REAL_PLATFORM: dict[str, str | None] = {
    "timeoffset": "0", "videoram": "8", "hpet": "true", "device-model-args": None, "secureboot": "false",
    "apic": "true", "pae": "true", "vga": "std", "nx": "true", "viridian": "true", "device_id": "0001", "acpi": "1",
}


def real_platform(args: str, args_key: str = "device-model-args") -> dict[str, str]:
    """REAL_PLATFORM with ``args`` in its place under ``args_key`` (no args key when ``args`` is "")."""
    return {(args_key if value is None else key): (args if value is None else value)
            for key, value in REAL_PLATFORM.items() if value is not None or args}


def standin_env(sim: SimHost, **extra: str) -> dict[str, str]:
    """What the stand-in needs to find its simulated host (plus any of its other settings).

    Its shebang runs the first ``python3`` on PATH; this test run's interpreter comes first, so the stand-in
    imports vgpu's dependencies from the same environment even when that environment is not activated.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"VGPU_SIM_HOST": str(sim.path), "PATH": path, **extra}


@contextlib.contextmanager
def xe_backend(tmp_path: Path) -> Iterator[HostUnderTest]:
    sim = SimHost(tmp_path / "host.json")
    host = XeHost(xe_path=str(STANDIN_XE), env=standin_env(sim), xenstore_ls=str(STANDIN_XENSTORE_LS))
    yield HostUnderTest("xe", host, lambda u, n, p, a: sim.add_vm(u, n, p, a), sim)
    host.close()

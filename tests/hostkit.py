"""Hosts under test: every backend, behind the same small harness, for the one protocol suite.

Each entry of BACKENDS is a context-manager factory taking a tmp_path and yielding a HostUnderTest: the
backend object under test plus a way to put VMs on the host behind it, and (where the backend runs over a
simulated host) the SimHost for fault injection. Stand-ins (the fake ``xe`` executable, the loopback XAPI
server) run over a SimHost file, so the same faults reach every backend through its own wire format.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from vgpu.hypervisor.sim import SimHost

from .hostkit_libvirt import register_libvirt
from .hostkit_xapi import xapi_backend, xapi_dom0_backend
from .hostkit_xe import xe_backend
from .hostunder import HostUnderTest
from .lifekit import World


@contextlib.contextmanager
def sim_backend(tmp_path: Path) -> Iterator[HostUnderTest]:
    sim = SimHost(tmp_path / "host.json")
    yield HostUnderTest("sim", sim, lambda u, n, p, a: sim.add_vm(u, n, p, a), sim)
    sim.close()


BACKENDS: dict[str, Callable[[Path], ContextManager[HostUnderTest]]] = {
    "sim": sim_backend,
    "xe": xe_backend,
    "xapi": xapi_backend,
    "xapi-dom0": xapi_dom0_backend,
}
register_libvirt(BACKENDS)  # where libvirtd is usable (and always in CI, so its absence fails there)

# The backends that run over a SimHost, into which faults can be injected.
SIMULATED = sorted(name for name in BACKENDS if name in ("sim", "xe", "xapi", "xapi-dom0"))


@contextlib.contextmanager
def running_vm_on(backend: str, tmp_path: Path, store, vm_id: int, config, own_args: str) -> Iterator[tuple[HostUnderTest, World, str]]:
    """``backend`` with one running VM (named VM-<vm_id>, registered with ``config``, its args ``own_args``
    plus its segment): the host under test, the world around it, and the VM's UUID."""
    with BACKENDS[backend](tmp_path) as under_test:
        world = World(store, under_test.sim)
        yield under_test, world, world.add(vm_id, "running", config, own_args, name=f"VM-{vm_id}")

"""A host under test: the backend object plus a way to put VMs on the host behind it.

Kept apart from hostkit, which imports every backend's factory, so that each factory module (and a test
file using only one backend) imports this without importing hostkit back.
"""

from __future__ import annotations

from typing import Callable

import attrs

from vgpu.hypervisor.base import Hypervisor
from vgpu.hypervisor.sim import SimHost


@attrs.define
class HostUnderTest:
    name: str
    host: Hypervisor
    add_vm: Callable[[str, str, str, str], None]  # (uuid, name, power state, device-model args)
    sim: SimHost | None = None  # the simulated host underneath, when there is one (fault injection)

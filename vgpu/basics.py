"""The smallest value types: priorities, the pool ids and defaults, and a pool with its counts.

They are what a one-shot command that reads pools needs (``vgpu-admin list-pools``, whose start-up is
measured), so they live apart from the other value types of :mod:`vgpu.models`, each of which costs about
half a millisecond to build at import (attrs generates and compiles its methods). Import them from
:mod:`vgpu.models`, which names them with the rest; the library's own start-up path imports them from here.
"""

from __future__ import annotations

import enum

import attrs

# The platform key of the device-model arguments: the spec's name; some hosts read "device_model_args". Here,
# not in vgpu.hypervisor.base (which names it too), so that reading the settings loads no hypervisor code.
DEFAULT_ARGS_KEY = "device-model-args"

POOL_IDS: tuple[str, ...] = ("A", "B")
DEFAULT_POOL = "A"

VM_ID_MAX = 2**31 - 1  # the scheduler and QEMU's fw_cfg consumers read it as a signed 32-bit int
NAME_MAX = 255
# A VM UUID in canonical (lower-case) form; the backends match it ignoring case, as their hosts answer.
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Priority(enum.IntEnum):
    """Scheduling priority. 0 is LOW here (not "highest first"), as the scheduler reads it."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    def describe(self) -> str:
        """The spec's display form, e.g. ``high (2)``."""
        return f"{self.label} ({self.value})"


DEFAULT_PRIORITY = Priority.MEDIUM


@attrs.frozen
class PriorityCounts:
    low: int = 0
    medium: int = 0
    high: int = 0

    @property
    def total(self) -> int:
        return self.low + self.medium + self.high

    def of(self, priority: Priority) -> int:
        return (self.low, self.medium, self.high)[priority]


@attrs.frozen
class Pool:
    """One of the two logical pools, with how many VMs of each priority it holds."""

    pool_id: str
    pool_name: str
    description: str | None
    enabled: bool
    counts: PriorityCounts = PriorityCounts()
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def vm_count(self) -> int:
        return self.counts.total

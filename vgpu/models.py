"""Value types the library hands out. All immutable attrs classes; cattrs turns them into plain data."""

from __future__ import annotations

import enum

import attrs

from . import tables

POOL_IDS: tuple[str, ...] = ("A", "B")
DEFAULT_POOL = "A"


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


class PowerState(str, enum.Enum):
    """A VM's power state as the library reports it, whatever spelling the host used."""

    RUNNING = "running"
    HALTED = "halted"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"


@attrs.frozen
class VMConfig:
    """The three settings the VM's QEMU receives: what a reconfigure changes."""

    pool_id: str
    priority: Priority
    vm_id: int


@attrs.frozen
class VM:
    """A registered VM: one row of the ``vms`` table."""

    vm_id: int
    vm_uuid: str
    vm_name: str | None
    pool_id: str
    priority: Priority
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def config(self) -> VMConfig:
        return VMConfig(self.pool_id, self.priority, self.vm_id)

    @property
    def display_name(self) -> str:
        return self.vm_name or self.vm_uuid


@attrs.frozen
class PriorityCounts:
    low: int = 0
    medium: int = 0
    high: int = 0

    @property
    def total(self) -> int:
        return self.low + self.medium + self.high

    def of(self, priority: Priority) -> int:
        return getattr(self, priority.label)


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


@attrs.frozen
class PoolDetail(tables.Tabular):
    """A pool and its VMs, highest priority first, then by vm_id."""

    _view = tables.pool_detail_view

    pool: Pool
    vms: tuple[VM, ...]


@attrs.frozen
class HostVM:
    """A VM as the hypervisor reports it (templates, snapshots and dom0 already left out).

    ``device_model_args`` are the stored arguments (what the VM's next boot will get); ``booted_args`` are
    the ones its running domain was started with, or None when it has no domain or the host cannot tell.
    In a fleet, ``host`` is the label of the host that listed it ("" for a single host named by its URI);
    ``resident_on`` is the XAPI pool member a running VM is resident on (None elsewhere).
    """

    uuid: str
    name: str
    power_state: PowerState
    device_model_args: str = ""
    booted_args: str | None = None
    host: str = ""
    resident_on: str | None = None


@attrs.frozen
class AuditEntry:
    """One recorded change. ``old``/``new`` hold the changed record before and after (None when absent)."""

    entry_id: int
    at: str
    action: str
    subject: str
    old: dict | None
    new: dict | None

    @property
    def vm_name(self) -> str | None:
        """The VM's name as this entry recorded it (None for a pool rename, or a VM that had no name then)."""
        return (self.new or self.old or {}).get("vm_name")


@attrs.frozen
class Registration:
    """One VM to register, as a caller supplies it (values already validated)."""

    vm_uuid: str
    vm_name: str | None = None
    pool_id: str = DEFAULT_POOL
    priority: Priority = DEFAULT_PRIORITY
    vm_id: int | None = None

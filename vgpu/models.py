"""Value types the library hands out. All immutable attrs classes; cattrs turns them into plain data.

The smallest of them (Priority, PriorityCounts, Pool, the pool ids and defaults) are defined in
:mod:`vgpu.basics`, so that a one-shot command reading pools need not build the others; they are named here
with the rest.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from . import tables, views
from .basics import DEFAULT_POOL, DEFAULT_PRIORITY, POOL_IDS, Pool, Priority, PriorityCounts

__all__ = [
    "POOL_IDS", "DEFAULT_POOL", "DEFAULT_PRIORITY", "Priority", "PowerState", "PriorityCounts", "Pool",
    "VMConfig", "VM", "PoolDetail", "PoolNameChange", "HostVM", "AuditEntry", "Registration",
]


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


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many VMs it holds
class PoolDetail(tables.Tabular):
    """A pool and its VMs, highest priority first, then by vm_id."""

    _view = views.pool_detail_view
    _columns = tables.VM_COLUMNS

    pool: Pool
    vms: tuple[VM, ...]


@attrs.frozen
class PoolNameChange:
    """What :func:`vgpu.pools.change_pool_name` did: the pool as it is now, and whether its name changed."""

    pool: Pool
    changed: bool


HOST_NAME_MAX = 255  # a host's names are as long as the host allows: longer ones are cut when read


def bounded_name(value: object) -> str:
    """A name as the host gave it, as text, cut to HOST_NAME_MAX characters (and "…") when longer, so a
    guest's owner cannot fill every listing with one name."""
    text = value if type(value) is str else str(value)
    return text if len(text) <= HOST_NAME_MAX else text[:HOST_NAME_MAX] + "…"


@attrs.frozen
class HostVM:
    """A VM as the hypervisor reports it (templates, snapshots and dom0 already left out).

    ``device_model_args`` are the stored arguments (what the VM's next boot will get); ``booted_args`` are
    the ones its running domain was started with, or None when it has no domain or the host cannot tell.
    ``name`` is bounded (see :func:`bounded_name`). In a fleet, ``host`` is the label of the host that listed
    it ("" for a single host named by its URI); ``resident_on`` is the XAPI pool member a running VM is
    resident on (None elsewhere). ``transient``: a libvirt domain with no stored definition (``virsh create``,
    or undefined while it runs): it is deleted when it halts, so it has no next boot and its args cannot be
    changed (False on every other host).
    """

    uuid: str
    name: str = attrs.field(converter=bounded_name)
    power_state: PowerState
    device_model_args: str = ""
    booted_args: str | None = None
    host: str = ""
    resident_on: str | None = None
    transient: bool = False


@attrs.frozen
class AuditEntry:
    """One recorded change. ``old``/``new`` hold the changed record before and after (None when absent)."""

    entry_id: int
    at: str
    action: str
    subject: str
    old: dict[str, Any] | None  # JSON objects, as the log keeps them
    new: dict[str, Any] | None

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

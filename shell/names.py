"""The names the shell completes, as one immutable snapshot: VMs (from the DB and the host) and the pools.

A :class:`NameCache` is built off the input thread (shell.refresher) and only ever read afterwards, so a
keystroke never touches the DB or the host. Everything a keystroke needs (lower-case keys, the text shown
beside a UUID, the per-kind lists) is computed once here, at build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection

from vgpu import errors, escape, locations, pools, values, vms
from vgpu.hypervisor.fleet import as_fleet
from vgpu.naming import natural_key

from .vmindex import VMIndex


@dataclass(frozen=True, slots=True)
class VMName:
    uuid: str  # lower-case, as the DB and the backends keep it
    name: str  # the DB's name for a registered VM, else the host's ("" when neither has one)
    pool: str | None  # None: not registered
    on_host: bool
    name_key: str = ""  # name.lower(), for case-insensitive matching
    search_key: str = ""  # uuid, newline, name_key: what shell.vmindex searches
    meta: str = ""  # what the completion menu shows beside the UUID

    @property
    def registered(self) -> bool:
        return self.pool is not None


@dataclass(frozen=True, slots=True)
class PoolName:
    pool_id: str
    name: str
    vm_count: int


@dataclass(frozen=True)
class NameCache:
    registered: tuple[VMName, ...] = ()  # DB order: pool, priority (high first), vm_id
    unregistered: tuple[VMName, ...] = ()  # on the host, not in the DB; by name (VM-2 before VM-10)
    pools: tuple[PoolName, ...] = ()
    host_ok: bool = False  # False: the host could not be listed (the VMs are the DB's only), or one host of a fleet
    hosts_down: tuple[str, ...] = ()  # the labels of a fleet's hosts that could not be listed while others were
    db_ok: bool = True
    forgettable_hosts: tuple[str, ...] = ()  # hosts the DB remembers that the run does not configure (forget-host)
    # Derived once, in __post_init__ (on the refresher's thread), for the completion kinds.
    on_host: tuple[VMName, ...] = field(default=(), init=False)  # unregistered first (register-vm)
    every: tuple[VMName, ...] = field(default=(), init=False)
    index: dict[str, VMIndex] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        on_host = self.unregistered + tuple(vm for vm in self.registered if vm.on_host)
        object.__setattr__(self, "on_host", on_host)
        object.__setattr__(self, "every", self.registered + self.unregistered)
        groups = {
            "registered": self.registered, "on_host": on_host, "every": self.every,
            "unregistered_nameable": tuple(vm for vm in self.unregistered if _register_vm_accepts(vm.name)),
        }
        object.__setattr__(self, "index", {group: VMIndex(entries) for group, entries in groups.items()})


def _register_vm_accepts(name: str) -> bool:
    """Whether register-vm takes ``name`` as --vm-name (a host's name may hold a line break, an escape
    sequence, anything: offered, it would be inserted into the line as it is, and refused on Enter)."""
    try:
        return values.parse_vm_name(name) is not None  # None: blank, which register-vm refuses too
    except errors.InvalidValue:
        return False


EMPTY = NameCache(db_ok=False)  # before the first build finishes


def vm_name(uuid: str, name: str | None, pool: str | None, on_host: bool, host_known: bool, db_known: bool = True) -> VMName:
    """One entry with its keys and menu text computed (never on a keystroke)."""
    uuid, name = uuid.lower(), name or ""
    key = name.lower().replace("\x00", " ").replace("\n", " ")  # the index's separators never occur in a key
    where = f"Pool {pool}" if pool else ("unregistered" if db_known else "registration unknown (DB unreadable)")
    if pool and host_known and not on_host:
        where += ", not on the host"
    meta = f"{escape.field(name)} · {where}" if name else where  # a raw escape or line break would redraw the menu
    return VMName(uuid, name, pool, on_host, key, f"{uuid}\n{key}", meta)


def build(store, host, configured: Collection[str] = ()) -> NameCache:
    """A fresh snapshot from ``store`` and ``host``; DB-only when ``host`` is None or fails (host-only when
    ``store`` is). ``configured``: the run's host labels (label -> URI: a label renamed is that host), which
    forget-host does not offer. Never raises a
    VgpuError: a completion list with what could be read beats no shell."""
    registered_vms, pool_rows, db_ok = _db_listing(store)
    forgettable = _forgettable(store, configured) if db_ok else ()
    host_vms, down, whole = _host_listing(host)
    # a VM last seen on a host the run does not have (taken out of [hosts]) is not known to be gone either
    outside = _seen_outside(store, host) if whole and forgettable else frozenset()
    on_host = {vm.uuid.lower(): vm for vm in host_vms}
    registered = tuple(
        vm_name(vm.vm_uuid, vm.vm_name or _host_name(on_host, vm.vm_uuid), vm.pool_id, vm.vm_uuid in on_host,
                whole and outside is not None and vm.vm_uuid not in outside)
        for vm in registered_vms
    )
    known = {vm.uuid for vm in registered}
    unregistered = tuple(
        sorted(
            (vm_name(u, hv.name, None, True, True, db_ok) for u, hv in on_host.items() if u not in known),
            key=lambda vm: (natural_key(vm.name), vm.uuid),
        )
    )
    pool_names = tuple(PoolName(p.pool_id, p.pool_name, p.vm_count) for p in pool_rows)
    return NameCache(registered, unregistered, pool_names, host_ok=down == (), hosts_down=down or (),
                     db_ok=db_ok, forgettable_hosts=forgettable)


def _db_listing(store):
    if store is None:
        return [], [], False
    try:
        return vms.list_vms(store), pools.list_pools(store), True
    except errors.VgpuError:  # locked or damaged: the toolbar says so, and the host's names still complete
        return [], [], False


def _forgettable(store, configured: Collection[str]) -> tuple[str, ...]:
    try:
        return locations.forgettable(store, configured)
    except errors.VgpuError:  # the VMs' names were read a moment ago; these are worth no failure of their own
        return ()


def _seen_outside(store, host) -> frozenset[str] | None:
    """The VMs last seen on a host outside the run (see vgpu.locations.seen_outside); None when that cannot be
    read (then no VM is said to be "not on the host"). A single host named by its URI keeps no places."""
    labels = as_fleet(host).labels
    if labels == ("",):
        return frozenset()
    try:
        return locations.seen_outside(store, labels)
    except errors.VgpuError:
        return None


def _host_listing(host) -> tuple[list, tuple[str, ...] | None, bool]:
    """The VMs the host lists, the labels of the hosts that could not be listed (None: none could be), and whether
    that is all of the VMs. Over a fleet, a host that is down leaves the others' names to complete, but then no VM
    is said to be "not on the host"; nor is one while the run leaves some of the fleet's hosts out (--host
    LABEL): it may be on one of those, which were not asked (as scan-vms leaves their VMs out)."""
    if host is None:
        return [], None, False
    try:
        fleet = as_fleet(host)
        listings = fleet.survey()
    except errors.VgpuError:  # unreachable, refused, timed out: the DB's names still complete
        return [], None, False
    down = tuple(listing.label for listing in listings if not listing.ok)
    if len(down) == len(listings):
        return [], None, False
    return [vm for listing in listings for vm in listing.vms], down, not down and not fleet.elsewhere


def _host_name(on_host: dict, uuid: str) -> str:
    host_vm = on_host.get(uuid)
    return host_vm.name if host_vm is not None else ""

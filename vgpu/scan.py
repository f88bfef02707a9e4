"""scan-vms and status: the host's VMs beside the registrations, from one host listing and one DB read.

Besides the spec's groups (Pool A, Pool B, unregistered) a scan reports what an admin must know before
trusting the picture: registered VMs the host no longer has, VMs whose segment disagrees with the database
(drift), unregistered VMs carrying a vgpu segment, typically clones (cloning copies the platform map,
so the clone boots with its parent's vm_id), and changes that were started and never finished (a killed
or interrupted session leaves its VM halted or half-changed until ``recover`` resolves it).
"""

from __future__ import annotations

import attrs

from . import devargs, journal, pools, tables, vms
from .devargs import SegmentState
from .errors import HypervisorError
from .hypervisor import codes
from .hypervisor.base import Hypervisor, args_quoted
from .models import VM, HostVM, Pool
from .store import Store
from .values import parse_pool_id


@attrs.frozen
class ScannedVM:
    """A registered VM, what the host says about it (None if the host lacks it) and its segment."""

    vm: VM
    host_vm: HostVM | None
    segment: SegmentState
    host_known: bool = True  # False when the host could not be listed

    @property
    def state(self) -> str:
        """``configured`` (segment matches the DB), ``drift``, ``missing`` (not on the host) or
        ``unknown`` (the host could not be asked)."""
        if not self.host_known:
            return "unknown"
        if self.host_vm is None:
            return "missing"
        return "configured" if self.segment.config == self.vm.config else "drift"


@attrs.frozen
class ForeignSegment:
    """An unregistered VM carrying a vgpu segment. ``owner`` is the registered VM whose vm_id it
    carries (a clone), or None for a segment left behind."""

    host_vm: HostVM
    segment: SegmentState
    owner: VM | None


@attrs.frozen
class UnfinishedOperation:
    """A change that was started and not finished (the VM stays locked meanwhile). ``in_progress``: its
    session is still at work on it, so wait; otherwise it needs ``recover`` (``vgpu-admin recover``)."""

    op_id: int
    vm_uuid: str
    vm_name: str | None
    kind: str  # reconfigure, register, remove or repair
    step: str  # the last journal step recorded
    started_at: str
    session: str
    in_progress: bool


def _unfinished(op: journal.Operation, vm_name: str | None) -> UnfinishedOperation:
    name = vm_name if vm_name is not None else (op.old.vm_name if op.old is not None else None)
    return UnfinishedOperation(op.op_id, op.vm_uuid, name, op.kind, op.step, op.started_at, op.owner,
                               not op.needs_recovery)


@attrs.frozen
class ScanReport(tables.Tabular):
    _view = tables.scan_view

    pools: tuple[Pool, ...]
    registered: tuple[ScannedVM, ...]  # Pool A then B; each highest priority first, then by vm_id
    unregistered: tuple[HostVM, ...]  # by name, then UUID
    foreign_segments: tuple[ForeignSegment, ...]
    host_error: str | None = None  # set when the host could not be listed: DB-only picture
    unfinished: tuple[UnfinishedOperation, ...] = ()  # oldest first

    def in_pool(self, pool: object) -> list[ScannedVM]:
        """The registered VMs of one pool (``"a"`` and ``"B"`` alike); InvalidValue for a pool that does not exist."""
        pool_id = parse_pool_id(pool)
        return [entry for entry in self.registered if entry.vm.pool_id == pool_id]

    @property
    def missing(self) -> list[ScannedVM]:
        return [entry for entry in self.registered if entry.state == "missing"]

    @property
    def drift(self) -> list[ScannedVM]:
        return [entry for entry in self.registered if entry.state == "drift"]

    @property
    def clones(self) -> list[ForeignSegment]:
        return [entry for entry in self.foreign_segments if entry.owner is not None]

    @property
    def needing_recovery(self) -> list[UnfinishedOperation]:
        return [op for op in self.unfinished if not op.in_progress]

    @property
    def in_progress(self) -> list[UnfinishedOperation]:
        return [op for op in self.unfinished if op.in_progress]

    @property
    def total_registered(self) -> int:
        return len(self.registered)

    @property
    def total_unregistered(self) -> int:
        return len(self.unregistered)

    @property
    def total_in_system(self) -> int:
        return self.total_registered + self.total_unregistered


def scan(store: Store, host: Hypervisor, *, tolerate_host_errors: bool = False) -> ScanReport:
    """One host listing and one DB snapshot, joined. With ``tolerate_host_errors`` an unreachable host
    gives a DB-only report (``host_error`` says why) instead of raising."""
    try:
        host_vms = host.list_vms()
        host_error = None
    except HypervisorError as error:
        if not tolerate_host_errors:
            raise
        host_vms, host_error = [], str(error)
    with store.reading() as conn:
        pool_rows = pools.select_pools(conn)
        registered = vms.select_vms(conn)
        operations = journal.select_unfinished(conn)
    return _join(pool_rows, registered, host_vms, host_error, operations, args_quoted(host))


def status(store: Store, host: Hypervisor) -> ScanReport:
    """The control panel's data. Unlike scan it still answers (from the DB alone) when the host is down."""
    return scan(store, host, tolerate_host_errors=True)


def _join(pool_rows: list[Pool], registered: list[VM], host_vms: list[HostVM], host_error: str | None,
          operations: list[journal.Operation], quoted: bool = False) -> ScanReport:
    names = {**{h.uuid: h.name or None for h in host_vms}, **{vm.vm_uuid: vm.vm_name for vm in registered}}
    unfinished = tuple(_unfinished(op, names.get(op.vm_uuid)) for op in operations)
    on_host = {host_vm.uuid: host_vm for host_vm in host_vms}
    by_vm_id = {vm.vm_id: vm for vm in registered}
    scanned = []
    for vm in registered:
        host_vm = on_host.pop(vm.vm_uuid, None)
        segment = devargs.parse(host_vm.device_model_args, quoted=quoted) if host_vm is not None else devargs.ABSENT
        scanned.append(ScannedVM(vm, host_vm, segment, host_error is None))
    unregistered = sorted(on_host.values(), key=lambda h: (h.name.lower(), h.uuid))
    foreign = []
    for host_vm in unregistered:
        segment = devargs.parse(host_vm.device_model_args, quoted=quoted)
        if segment.present:
            owner = by_vm_id.get(segment.config.vm_id) if segment.config else None
            foreign.append(ForeignSegment(host_vm, segment, owner))
    return ScanReport(tuple(pool_rows), tuple(scanned), tuple(unregistered), tuple(foreign), host_error, unfinished)


@attrs.frozen
class VMView:
    """One registered VM as show-vm presents it: the registration, the host's view, the segment."""

    vm: VM
    host_vm: HostVM | None
    segment: SegmentState
    host_error: str | None = None
    operation: UnfinishedOperation | None = None  # a change to this VM started and not finished


def inspect_vm(store: Store, host: Hypervisor, vm_uuid: object) -> VMView:
    """A registered VM with its power state and segment, and its unfinished change if it has one; host
    trouble is reported, not raised."""
    vm = vms.get(store, vm_uuid)
    op = journal.holder(store, vm.vm_uuid)
    operation = _unfinished(op, vm.vm_name) if op is not None else None
    try:
        state = host.power_state(vm.vm_uuid)
        args = host.get_device_model_args(vm.vm_uuid)
    except HypervisorError as error:
        if codes.vm_missing(error):
            return VMView(vm, None, devargs.ABSENT, operation=operation)
        return VMView(vm, None, devargs.ABSENT, str(error), operation)
    return VMView(vm, HostVM(vm.vm_uuid, vm.vm_name or "", state, args), devargs.parse(args, quoted=args_quoted(host)), operation=operation)

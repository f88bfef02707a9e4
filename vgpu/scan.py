"""scan-vms and status: the host's VMs beside the registrations, from one host listing and one DB read.

Besides the spec's groups (Pool A, Pool B, unregistered) a scan reports what an admin must know before
trusting the picture: registered VMs the host no longer has, VMs whose segment disagrees with the database
(drift), running VMs whose QEMU booted with something else (pending restart: registered or repaired while
running), running VMs whose boot the host cannot tell (unknown), unregistered VMs carrying a vgpu
segment, typically clones (cloning copies the platform map, so the clone boots with its parent's vm_id),
and changes that were started and never finished (a killed or interrupted session leaves its VM halted
or half-changed until ``recover`` resolves it).

Three facts per VM are kept apart: the database row, the *stored* segment (the VM's device-model args:
what its next boot gets) and the *booted* one (what its running domain was started with). Each registered
VM has one :data:`STATES` value, decided by :func:`vm_state`.

Over a fleet (:class:`vgpu.hypervisor.fleet.Fleet`) every host is listed at once and each VM carries its
host's label (and XAPI member). A host that cannot be listed is reported (``ScanReport.unreachable``) while
the others are shown, and the registered VMs last seen on it (:mod:`vgpu.locations`) are shown as on an
unreachable host, not as missing. One UUID listed by two hosts is a conflict (state ``conflict``), never
merged. With ``--host LABEL`` the VMs last seen on the fleet's other hosts are left out. A single host is
scanned exactly as before.
"""

from __future__ import annotations

import collections

import attrs

from . import attention, devargs, journal, locations, pools, tables, views, vms
from .attention import Attention
from .devargs import SegmentState
from .errors import HypervisorError
from .hypervisor import codes
from .hypervisor.base import Hypervisor, args_quoted, is_transient
from .hypervisor.fleet import Fleet, Listing, as_fleet, one_fleet_operation, outside_advice
from .models import VM, HostVM, Pool, PowerState, VMConfig
from .naming import natural_key
from .sessions import Verdict
from .store import Store
from .values import parse_flag, parse_pool_id

# Every state a registered VM can be in: ``conflict`` (its UUID is on two hosts of a fleet), then those
# vm_state() decides, in its order.
STATES = ("conflict", "unknown", "missing", "drift", "halted", "configured", "pending")


def vm_state(expected: VMConfig, host_vm: HostVM | None, segment: SegmentState | None, booted: SegmentState | None,
             host_known: bool = True) -> str:
    """One registered VM's state:

    - ``unknown``: the host could not be asked, or it cannot tell what the running VM booted with;
    - ``missing``: the host has no such VM;
    - ``drift``: its stored args say something other than the database (or nothing), whatever it booted with;
    - ``halted``: the stored args are right and the VM is off: its next boot takes them;
    - ``configured``: the stored args are right and the running VM booted with them;
    - ``pending``: the stored args are right but the running VM booted with something else (it was
      registered or repaired while running, or its args were written for the next boot): restart it.

    ``segment`` is the stored one, None when the host was not asked; ``booted`` is the segment the running
    domain booted with, None when the host cannot tell.
    """
    if not host_known:
        return "unknown"
    if host_vm is None:
        return "missing"
    if segment is None:
        return "unknown"
    if segment.config != expected:
        return "drift"
    if host_vm.power_state is PowerState.HALTED:
        return "halted"
    if booted is None:
        return "unknown"
    return "configured" if booted.config == expected else "pending"


def _listed_twice(listings: list[Listing]) -> dict[str, tuple[HostVM, ...]]:
    """The UUIDs that several hosts listed, each with every copy (a copy between pools: a conflict)."""
    copies: dict[str, list[HostVM]] = {}
    for listing in listings:
        for host_vm in listing.vms:
            copies.setdefault(host_vm.uuid, []).append(host_vm)
    return {uuid: tuple(found) for uuid, found in copies.items() if len(found) > 1}


def booted_segment(host_vm: HostVM | None, quoted: bool = False) -> SegmentState | None:
    """The segment a VM's running domain booted with; None when it has none or the host cannot tell.
    ``quoted``: the host keeps its args as a quoted argument list (see hypervisor.base.args_quoted)."""
    if host_vm is None or host_vm.booted_args is None:
        return None
    return devargs.parse(host_vm.booted_args, quoted=quoted)


@attrs.frozen
class ScannedVM:
    """A registered VM, what the host says about it (None if the host lacks it), its stored segment (None when
    its host could not be asked, or its UUID is on several hosts: which args it has is not known; ABSENT when
    the host answered and its args hold none, or it lacks the VM) and the segment its running domain booted
    with (None when it is not running or the host cannot tell)."""

    vm: VM
    host_vm: HostVM | None
    segment: SegmentState | None
    host_known: bool = True  # False when the host could not be listed
    booted: SegmentState | None = None
    host: str | None = None  # the fleet's label of its host ("" for a single host), or where it was last seen
    resident_on: str | None = None  # the XAPI pool member it runs on (or last ran on, when not seen)
    conflict: tuple[str, ...] = ()  # the hosts that each have a VM with its UUID, when more than one does
    # The VM as another host lists it while ``host``, where it was last seen, could not be listed: it is not
    # taken for the VM (the host that is down may still have it, and changes are refused until it answers:
    # see vgpu.lifecycle.check_only_copy), but it is there.
    listed_elsewhere: HostVM | None = None
    # NOT_CONFIGURED or LEFT_OUT: ``host``, a host it was last seen on too, is outside this run and was not asked
    # (the change commands are refused until it is: see ScanReport.last_seen_outside); ``listed_elsewhere`` is the VM
    # as the run lists it
    not_asked: str | None = None

    @property
    def state(self) -> str:
        """One of :data:`STATES` (see :func:`vm_state`)."""
        if self.conflict:
            return "conflict"
        return vm_state(self.vm.config, self.host_vm, self.segment, self.booted, self.host_known)


@attrs.frozen
class ForeignSegment:
    """An unregistered VM carrying a vgpu segment. ``owner`` is the registered VM whose vm_id it
    carries (a clone), or None for a segment left behind. ``running_only``: its stored args have none, but
    its running QEMU booted with this one and keeps it until it stops (a VM removed while running)."""

    host_vm: HostVM
    segment: SegmentState
    owner: VM | None
    running_only: bool = False


@attrs.frozen
class UnfinishedOperation:
    """A change that was started and not finished (the VM stays locked meanwhile). ``in_progress``: its
    session is still at work on it, so wait; otherwise it needs ``recover`` (``vgpu-admin recover``), or,
    when ``session_unknown`` says why its session cannot be checked from here (another host's, or one
    recorded by host and PID alone while a process runs under that PID), the admin: if that session is
    gone, ``vgpu-admin recover --take-over`` takes it (a plain recover leaves it be)."""

    op_id: int
    vm_uuid: str
    vm_name: str | None
    kind: str  # reconfigure, register, remove or repair
    step: str  # the last journal step recorded
    started_at: str
    session: str
    in_progress: bool
    session_unknown: str | None = None


def _unfinished(op: journal.Operation, vm_name: str | None) -> UnfinishedOperation:
    name = vm_name if vm_name is not None else (op.old.vm_name if op.old is not None else None)
    verdict, why = op.liveness()
    # A session that cannot be checked is not called in progress: a schema-1 row's PID runs again after every
    # reboot, and it would be "in progress" for good
    unknown = why if verdict is Verdict.UNKNOWN and not op.needs_recovery else None
    return UnfinishedOperation(op.op_id, op.vm_uuid, name, op.kind, op.step, op.started_at, op.owner,
                               not op.needs_recovery and unknown is None, unknown)


@attrs.frozen
class HostSummary:
    """One host of the scan: its label ("" for a single host named by its URI), URI, how many VMs it
    listed, and why it could not be listed (None when it was)."""

    label: str
    uri: str
    vm_count: int = 0
    error: str | None = None
    # the host's error code (HOST_UNREACHABLE: it did not answer; HOST_NOT_ASKED: a setting kept it from being
    # asked; see codes.failure_code), when it has one
    code: str | None = None


@attrs.frozen
class UuidConflict:
    """One VM UUID listed by several hosts of a fleet (a copy between pools): each copy as its host lists
    it, and the registration of that UUID, if there is one."""

    vm_uuid: str
    copies: tuple[HostVM, ...]
    vm: VM | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(copy.host for copy in self.copies)


@attrs.frozen
class LastSeenDown:
    """An unregistered VM that host ``listed_by`` lists, last seen on host ``host`` too (its place, or a copy's
    host), which could not be listed this time: a copy may still be there, so it is not taken for a VM of
    ``listed_by`` alone, and registering it is refused until ``host`` answers (as a change to a registered VM
    is: see ScannedVM.listed_elsewhere)."""

    vm_uuid: str
    host: str
    listed_by: str


NOT_CONFIGURED, LEFT_OUT = "not_configured", "left_out"  # why a host's registered VMs are not shown (NotShown)


@attrs.frozen
class LastSeenOutside:
    """A VM (registered or not) that host ``listed_by`` lists, last seen on host ``host`` too, which this run does
    not ask (``reason``: NOT_CONFIGURED, taken out of [hosts]; LEFT_OUT, left out by --host while the run has
    several hosts): a copy may still be there, so its changes (registering it too) are refused until ``host`` is
    asked (see Fleet.outside_run), as ``advice`` says, and a scan shows it so."""

    vm_uuid: str
    host: str
    listed_by: str
    reason: str
    advice: str


@attrs.frozen
class NotShown:
    """Registered VMs a scan leaves out, last seen on a host this run does not have: ``host`` (its label; ""
    for VMs no scan of the fleet has seen yet, which may be on any host the run leaves out), how many, and
    why: ``not_configured`` (the host is not in [hosts], nor given by --host: taken out of the config) or
    ``left_out`` (--host LABEL narrowed the run). Not called missing: that host was not asked."""

    host: str
    vm_count: int
    reason: str


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many VMs it holds
class ScanReport(tables.Tabular):
    _view = views.scan_view
    _columns = views.SCAN_COLUMNS

    pools: tuple[Pool, ...]
    registered: tuple[ScannedVM, ...]  # Pool A then B; each highest priority first, then by vm_id
    # by name (naturally: VM-2 before VM-10), then UUID; one per UUID: a UUID on several hosts is its first
    # copy in the fleet's order, every copy being in ``conflicts``
    unregistered: tuple[HostVM, ...]
    foreign_segments: tuple[ForeignSegment, ...]
    host_error: str | None = None  # set when no host could be listed: DB-only picture
    unfinished: tuple[UnfinishedOperation, ...] = ()  # oldest first
    attention: tuple[Attention, ...] = ()  # VMs marked as needing an admin (see vgpu.attention), oldest first
    hosts: tuple[HostSummary, ...] = ()  # every host of the scan, in the fleet's order
    conflicts: tuple[UuidConflict, ...] = ()  # UUIDs listed by several hosts
    # registered VMs left out, not last seen on this run's hosts: on a host --host LABEL left out, or one no longer
    # in [hosts] (not called missing: that host may still have them); ``not_shown`` says which hosts, and why
    elsewhere: int = 0
    not_shown: tuple[NotShown, ...] = ()  # by host, those taken out of [hosts] first, then those --host leaves out
    unregistered_down: tuple[LastSeenDown, ...] = ()  # unregistered VMs last seen on a host that could not be listed too
    last_seen_outside: tuple[LastSeenOutside, ...] = ()  # VMs last seen on a host outside the run too, by UUID

    def outside_by_uuid(self) -> dict[str, LastSeenOutside]:
        """``last_seen_outside`` by UUID."""
        return {entry.vm_uuid: entry for entry in self.last_seen_outside}

    @property
    def several_hosts(self) -> bool:
        """The scan covered more than one host: each VM's host is worth showing."""
        return len(self.hosts) > 1

    def down_by_uuid(self) -> dict[str, LastSeenDown]:
        """``unregistered_down`` by UUID."""
        return {entry.vm_uuid: entry for entry in self.unregistered_down}

    def copies_by_uuid(self) -> dict[str, tuple[HostVM, ...]]:
        """Each UUID listed by several hosts, with its copies in the fleet's order."""
        return {conflict.vm_uuid: conflict.copies for conflict in self.conflicts}

    @property
    def unreachable(self) -> list[HostSummary]:
        """The hosts that could not be listed (all of them when ``host_error`` is set)."""
        return [host for host in self.hosts if host.error is not None]

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
    def pending(self) -> list[ScannedVM]:
        """Running VMs whose stored args are right but whose QEMU booted with something else."""
        return [entry for entry in self.registered if entry.state == "pending"]

    @property
    def listed_elsewhere(self) -> list[ScannedVM]:
        """Registered VMs last seen on a host that could not be listed (or that this run does not ask: ``not_asked``),
        which another host lists now."""
        return [entry for entry in self.registered if entry.listed_elsewhere is not None]

    @property
    def booted_unknown(self) -> list[ScannedVM]:
        """Running VMs with the right stored args whose boot the host cannot tell (not: the host is down)."""
        return [entry for entry in self.registered if entry.host_known and entry.state == "unknown"]

    def foreign_by_uuid(self) -> dict[str, tuple[ForeignSegment, ...]]:
        """``foreign_segments`` by UUID, in their order: a UUID on several hosts is one VM, with each copy's
        segment (the copies may differ, and each is a clone until one copy is left)."""
        grouped: dict[str, list[ForeignSegment]] = {}
        for entry in self.foreign_segments:
            grouped.setdefault(entry.host_vm.uuid, []).append(entry)
        return {uuid: tuple(entries) for uuid, entries in grouped.items()}

    @property
    def clones(self) -> list[ForeignSegment]:
        return [entry for entry in self.foreign_segments if entry.owner is not None]

    @property
    def needing_recovery(self) -> list[UnfinishedOperation]:
        """Those a plain recover takes: their session has ended or gave them up."""
        return [op for op in self.unfinished if not op.in_progress and op.session_unknown is None]

    @property
    def needing_take_over(self) -> list[UnfinishedOperation]:
        """Those whose session cannot be checked from here: the admin's to judge ('recover --take-over')."""
        return [op for op in self.unfinished if op.session_unknown is not None]

    @property
    def in_progress(self) -> list[UnfinishedOperation]:
        return [op for op in self.unfinished if op.in_progress]

    @property
    def total_registered(self) -> int:
        return len(self.registered)

    @property
    def total_unregistered(self) -> int | None:
        """The VMs the host lists that are not registered: None when no host could be listed (unknown, not
        0). In a fleet with some hosts down, those the others list (``unreachable`` names the rest)."""
        return None if self.host_error else len(self.unregistered)

    @property
    def uncounted_hosts(self) -> list[str]:
        """The hosts whose unregistered VMs the totals leave out: those of a fleet that could not be listed
        while others were (when none could be, the totals are None instead)."""
        return [] if self.host_error else [host.label for host in self.unreachable]

    @property
    def total_in_system(self) -> int | None:
        """Registered plus unregistered: None when the unregistered are unknown."""
        unregistered = self.total_unregistered
        return None if unregistered is None else self.total_registered + unregistered


def scan(store: Store, host: Hypervisor, *, tolerate_host_errors: bool = False) -> ScanReport:
    """One listing per host (every host of a fleet at once) and one DB snapshot, joined. With
    ``tolerate_host_errors`` a report comes back even when no host can be listed (DB only: ``host_error``
    says why) instead of raising; a fleet with some hosts down always reports them in ``hosts``."""
    tolerate_host_errors = parse_flag("tolerate_host_errors", tolerate_host_errors)
    fleet = as_fleet(host)
    listings = fleet.survey()
    errors = [listing.error for listing in listings if listing.error is not None]
    for error in errors:
        if not (fleet.several or isinstance(error, HypervisorError)):
            raise error  # one host: a setting that stops it (a password) is the command's error, as ever
    if errors and len(errors) == len(listings) and not tolerate_host_errors:
        if len(errors) > 1:  # every host down: each is named (its own error starts "host LABEL: ")
            errors[0].reword("; ".join(str(error) for error in errors))
        raise errors[0]
    host_error = "; ".join(str(error) for error in errors) if len(errors) == len(listings) else None
    labelled = fleet.labels != ("",)
    if labelled:
        locations.adopt_same_hosts(store, fleet)  # a label of one of these hosts under another name is that host
    with store.reading() as conn:
        pool_rows = pools.select_pools(conn)
        registered = vms.select_vms(conn)
        operations = journal.select_unfinished(conn)
        marks = attention.select(conn)
        known = locations.select_places(conn) if labelled else {}
        copies = locations.select_copies(conn) if labelled else {}
        # which hosts hold copies, unknown since an upgrade from schema 3, is learnt host by host by a scan every host
        # of its run answered: only of the hosts it asked (one it did not may hold a copy that no table names)
        learnt = locations.copies_to_learn(conn, fleet.labels) if labelled and not fleet.elsewhere and not errors else ()
        named = locations.select_identities(conn) if labelled else {}
    report = _join(pool_rows, registered, listings, host_error, operations, known, copies, fleet)
    if marks and (fleet.elsewhere or report.elsewhere):  # VMs on hosts this run does not have are not shown, nor their marks
        here = {entry.vm.vm_uuid for entry in report.registered} | {host_vm.uuid for host_vm in report.unregistered}
        marks = [mark for mark in marks if mark.vm_uuid in here]
    if marks and host_error is None:
        # a copy is not the VM: neither one of several, nor one listed while the VM's own host is down
        twice = {conflict.vm_uuid for conflict in report.conflicts} | {e.vm.vm_uuid for e in report.listed_elsewhere}
        states = {vm.uuid: vm.power_state for listing in listings for vm in listing.vms if vm.uuid not in twice}
        marks = _settle(store, fleet, marks, states)
    if labelled:
        places, copies_now = _seen(listings, report, known, copies)
        answered = [listing.label for listing in listings if listing.error is None]
        locations.remember(store, places, known, copies_now, copies_learned_on=learnt,
                           identities=locations.new_identities(named, fleet, answered))
    return attrs.evolve(report, attention=tuple(marks))


def _seen(listings: list[Listing], report: ScanReport, known: dict[str, locations.Place],
          copies: dict[str, tuple[str, ...]]) -> tuple[dict[str, locations.Place], dict[str, tuple[str, ...]]]:
    """Where the VMs listed once were seen, for those whose place changed since ``known``, and the other hosts
    each was seen on (UUID -> labels), for those whose copies changed since ``copies``.

    A UUID several hosts list is seen on each: its place is the first copy in the fleet's order, the others
    its copies. A host a VM was last seen on (its place, or a copy's host) that could not be listed this time
    is kept, though another host lists it now: it may still have its copy, and a change must not be made on
    the other until it is asked (:func:`vgpu.lifecycle.check_only_copy` reads them all). So is one this run
    did not list at all (left out by --host, or taken out of [hosts]): only a host that answered this scan
    without the UUID is forgotten."""
    twice = report.copies_by_uuid()
    answered = {listing.label for listing in listings if listing.error is None}
    down = {listing.label for listing in listings if listing.error is not None}
    changed: dict[str, locations.Place] = {}
    copies_now: dict[str, tuple[str, ...]] = {}
    for listing in listings:
        for vm in listing.vms:
            place, before = known.get(vm.uuid), copies.get(vm.uuid, ())
            if vm.uuid in twice or before or (place is not None and place[0] not in answered):
                if vm.uuid not in copies_now:  # once per UUID, whichever copy comes first
                    _seen_again(vm, twice.get(vm.uuid, (vm,)), place, before, answered, down, changed, copies_now)
            elif place is None or place[0] != vm.host or place[1] != vm.resident_on:
                changed[vm.uuid] = (vm.host, vm.resident_on)
    return changed, {uuid: others for uuid, others in copies_now.items() if others != copies.get(uuid, ())}


def _seen_again(vm: HostVM, listed: tuple[HostVM, ...], place: locations.Place | None, before: tuple[str, ...],
                answered: set[str], down: set[str], changed: dict[str, locations.Place],
                copies_now: dict[str, tuple[str, ...]]) -> None:
    """:func:`_seen` for a UUID listed by several hosts, or last seen on several, or on a host not listed now.
    Every host it was last seen on that did not answer this scan is kept: one of the run that could not be
    listed (``down``) stays its place, as the change commands see it; one the run did not have (left out by
    --host, or taken out of [hosts]) stays a copy."""
    last_seen = {*before, *([place[0]] if place is not None else [])}
    unlisted = {label for label in last_seen if label not in answered}
    now = place if place is not None and place[0] in down else (listed[0].host, listed[0].resident_on)
    listers = {copy.host for copy in listed}
    # a host listing it beside the one it was last seen on, which is down, is not known to be a second copy
    # (it may have moved there): it is remembered only when it listed it before, or lists it beside another now
    seen_on = (listers if len(listed) > 1 else listers & last_seen) | (last_seen & unlisted)
    if now != place:
        changed[vm.uuid] = now
    copies_now[vm.uuid] = tuple(sorted(seen_on - {now[0]}))


def _settle(store: Store, host: Hypervisor, marks: list[Attention], states: dict[str, PowerState]) -> list[Attention]:
    """The attention marks that still stand now that the VMs were seen (asking the host what is under way
    only for a running VM whose mark depends on it)."""
    seen = {}
    for mark in marks:
        power = states.get(mark.vm_uuid)
        if power is None:
            continue
        operations = None
        if power is PowerState.RUNNING and mark.kind == attention.SHUTDOWN_UNCONFIRMED:
            try:
                operations = host.current_operations(mark.vm_uuid)
            except HypervisorError:
                operations = None  # cannot tell: the mark stays
        seen[mark.vm_uuid] = (power, operations)
    return attention.settle(store, marks, seen)


def status(store: Store, host: Hypervisor) -> ScanReport:
    """The control panel's data. Unlike scan it still answers (from the DB alone) when the host is down."""
    return scan(store, host, tolerate_host_errors=True)


def _join(pool_rows: list[Pool], registered: list[VM], listings: list[Listing], host_error: str | None,
          operations: list[journal.Operation], known: dict[str, locations.Place], also_seen: dict[str, tuple[str, ...]],
          fleet: Fleet) -> ScanReport:
    # Written for speed: a fleet's scan joins tens of thousands of VMs, one host's listing after another.
    on_host = {host_vm.uuid: host_vm for listing in listings for host_vm in listing.vms}
    twice = _listed_twice(listings) if len(on_host) < sum(len(listing.vms) for listing in listings) else {}
    unfinished: tuple[UnfinishedOperation, ...] = ()
    if operations:
        names = {**{h.uuid: h.name or None for h in on_host.values()}, **{vm.vm_uuid: vm.vm_name for vm in registered}}
        unfinished = tuple(_unfinished(op, names.get(op.vm_uuid)) for op in operations)
    failed = {listing.label for listing in listings if listing.error is not None}
    render, parse = devargs.rendered_text, devargs.parse
    quoted_labels = fleet.quoted_labels()  # libvirt's hosts quote their args; a fleet may mix both kinds
    scanned, conflicts, hidden = [], [], collections.Counter[tuple[str, str]]()
    outsiders: list[LastSeenOutside] = []
    for vm in registered:
        host_vm = on_host.pop(vm.vm_uuid, None)
        if twice and vm.vm_uuid in twice:
            copies = twice.pop(vm.vm_uuid)
            conflicts.append(UuidConflict(vm.vm_uuid, copies, vm))
            scanned.append(ScannedVM(vm, None, None, conflict=tuple(copy.host for copy in copies)))
        elif host_vm is not None and failed and (down := _down_among(vm.vm_uuid, known, also_seen, failed)) is not None:
            # Last seen on a host that could not be listed (its place, or a copy's host): it stays there (see
            # _seen), as the change commands see it, and the copy listed here is named beside it, not taken for it.
            place = known[vm.vm_uuid]
            scanned.append(ScannedVM(vm, None, None, False, None, down, place[1] if place[0] == down else None,
                                     listed_elsewhere=host_vm))
        elif host_vm is not None and (outside := _outside(fleet, host_vm, known, also_seen)) is not None:
            # Last seen on a host this run does not ask too: shown as the change commands see it, as for a host
            # that is down (named, with the copy listed here beside it).
            outsiders.append(outside)
            scanned.append(ScannedVM(vm, None, None, False, None, outside.host, listed_elsewhere=host_vm,
                                     not_asked=outside.reason))
        elif host_vm is not None:
            args, config = host_vm.device_model_args, vm.config
            # args that are exactly the registered segment need no regex (devargs.parse would say the same)
            quoted = host_vm.host in quoted_labels
            stored = SegmentState(True, config, args) if args == render(config) else parse(args, quoted=quoted)
            booted = stored if host_vm.booted_args == args else booted_segment(host_vm, quoted)
            scanned.append(ScannedVM(vm, host_vm, stored, True, booted, host_vm.host, host_vm.resident_on))
        else:
            last = known.get(vm.vm_uuid)
            last_seen = () if last is None else (last[0], *also_seen.get(vm.vm_uuid, ()))
            away = next((label for label in last_seen if label not in fleet.members), None)
            known_here = host_error is None and not failed
            if away is not None or (fleet.elsewhere and (last is None or known_here)):
                # Last seen on a host this run does not have: one it leaves out (--host LABEL), or one taken out
                # of [hosts]. It may still be there: not known to be gone, so not called missing. Nor is one no
                # host of a narrowed run lists, though it was last seen on one of them: it may have moved to a host
                # the run leaves out (as show-vm and remove-vm say), so where it is is not known.
                hidden[away or "", LEFT_OUT if away is None or away in fleet.elsewhere else NOT_CONFIGURED] += 1
                continue
            # Not listed: missing (no segment), unless a host that could not be listed may have it (where it was
            # last seen): then what its args hold is not known
            absent = devargs.ABSENT if known_here else None
            scanned.append(ScannedVM(vm, None, absent, known_here, None, *(last or (None, None))))
    for uuid, copies in twice.items():
        conflicts.append(UuidConflict(uuid, copies))
        on_host.pop(uuid, None)
    each_copy = [*on_host.values(), *(copy for copies in twice.values() for copy in copies)]
    each_copy.sort(key=lambda h: (natural_key(h.name), h.uuid, h.host))
    # An unregistered UUID on several hosts is one VM in conflict, as a registered one is: listed and counted
    # once (its first copy in the fleet's order), each copy kept in ``conflicts``.
    unregistered = [h for h in each_copy if h.uuid not in twice or h is twice[h.uuid][0]] if twice else each_copy
    # an unregistered VM last seen on a host that could not be listed too: not known to be that host's alone
    unasked = [] if not failed else [LastSeenDown(h.uuid, label, h.host) for h in unregistered if h.uuid not in twice
                                     and (label := _down_among(h.uuid, known, also_seen, failed)) is not None]
    down_uuids = {entry.vm_uuid for entry in unasked}
    outsiders += [outside for h in unregistered if h.uuid not in twice and h.uuid not in down_uuids
                  and (outside := _outside(fleet, h, known, also_seen)) is not None]
    by_vm_id = {vm.vm_id: vm for vm in registered}
    foreign = []
    for host_vm in each_copy:  # every copy's own segment: each may be a clone, whichever is kept
        quoted = host_vm.host in quoted_labels
        segment, running_only = parse(host_vm.device_model_args, quoted=quoted), False
        if not segment.present and host_vm.booted_args:  # a running QEMU's vm_id counts until it stops
            segment, running_only = parse(host_vm.booted_args, quoted=quoted), True
        if segment.present:
            owner = by_vm_id.get(segment.config.vm_id) if segment.config else None
            foreign.append(ForeignSegment(host_vm, segment, owner, running_only))
    hosts = tuple(HostSummary(listing.label, listing.uri, len(listing.vms), None if listing.ok else str(listing.error),
                              None if listing.error is None else codes.failure_code(listing.error, "") or None)
                  for listing in listings)
    return ScanReport(tuple(pool_rows), tuple(scanned), tuple(unregistered), tuple(foreign), host_error, unfinished,
                      hosts=hosts, conflicts=tuple(conflicts), elsewhere=sum(hidden.values()), not_shown=_not_shown(hidden),
                      unregistered_down=tuple(unasked), last_seen_outside=tuple(outsiders))


def _outside(fleet: Fleet, host_vm: HostVM, known: dict[str, locations.Place],
             also_seen: dict[str, tuple[str, ...]]) -> LastSeenOutside | None:
    """For a VM listed once: the host outside this run it was last seen on too (its place, or a copy's host) that
    a change of it is refused for (see Fleet.outside_run), or None."""
    place = known.get(host_vm.uuid)
    if place is None or (place[0] in fleet.members and host_vm.uuid not in also_seen):
        return None  # as for almost every VM: nothing outside the run to ask
    label = fleet.outside_host(host_vm.host, (place[0], *also_seen.get(host_vm.uuid, ())))
    if label is None:
        return None
    left_out = label in fleet.elsewhere
    advice = outside_advice(host_vm.host, label, left_out=left_out, narrowed_by=fleet.narrowed_by)
    return LastSeenOutside(host_vm.uuid, label, host_vm.host, LEFT_OUT if left_out else NOT_CONFIGURED, advice)


def _not_shown(hidden: collections.Counter[tuple[str, str]]) -> tuple[NotShown, ...]:
    """The registered VMs left out, by (host, reason): hosts taken out of [hosts] first, then those --host
    leaves out, each by label (VMs never seen, on no known host, last)."""
    order = sorted(hidden, key=lambda key: (key[1] != NOT_CONFIGURED, key[0] == "", natural_key(key[0])))
    return tuple(NotShown(host, hidden[host, reason], reason) for host, reason in order)


def _down_among(vm_uuid: str, known: dict[str, locations.Place], also_seen: dict[str, tuple[str, ...]],
                failed: set[str]) -> str | None:
    """The first host the VM was last seen on (its place, then the hosts that listed a copy) that could not be
    listed."""
    place = known.get(vm_uuid)
    if place is None:
        return None
    return next((label for label in (place[0], *also_seen.get(vm_uuid, ())) if label in failed), None)


@attrs.frozen
class VMView:
    """One registered VM as show-vm presents it: the registration, the host's view, the stored segment (None
    when the host could not be asked, ``host_error`` saying why; ABSENT when the host answered and its args hold
    none, or it lacks the VM) and the one its running domain booted with (None when it is not running or the
    host cannot tell)."""

    vm: VM
    host_vm: HostVM | None
    segment: SegmentState | None
    host_error: str | None = None
    operation: UnfinishedOperation | None = None  # a change to this VM started and not finished
    attention: Attention | None = None  # the VM is marked as needing an admin (see vgpu.attention)
    booted: SegmentState | None = None
    host: str | None = None  # over a fleet of several hosts: the label of the host that has it
    # over a fleet: the VM as another host lists it while ``host``, where it was last seen, cannot be asked
    # (``host_error`` says why); not taken for the VM, as the change commands do not (see ScannedVM)
    listed_elsewhere: HostVM | None = None
    # over a fleet: why no host of this run was asked about the VM (``host_error`` says it in full):
    # NOT_CONFIGURED (``host``, where it was last seen, is not configured) or LEFT_OUT (--host leaves it out)
    not_asked: str | None = None
    # the code of the error of the host that could not be asked (see HostSummary.code), when ``host_error``
    # is a host's failure: show-vm says it as scan-vms does (not reachable, could not be listed, not asked)
    host_code: str | None = None

    @property
    def state(self) -> str:
        """One of :data:`STATES` (see :func:`vm_state`), as scan gives it."""
        return vm_state(self.vm.config, self.host_vm, self.segment, self.booted, self.host_error is None)


def _not_in_run(store: Store, host: Hypervisor, vm_uuid: str, error: HypervisorError) -> tuple[HypervisorError, str | None] | None:
    """For a VM no host of this run has (``error``, the fleet's answer): why it is not gone (see
    :meth:`Fleet.not_in_run`), and the host that names as where the VM was last seen (None when the fleet never
    saw it, and it may be on any host the run leaves out); None when every host it may be on was asked."""
    if not isinstance(host, Fleet) or not (codes.vm_missing(error) or error.code == codes.VM_ON_HOST_LEFT_OUT):
        return None
    seen = locations.hosts_of(store, vm_uuid)
    refusal = host.not_in_run(vm_uuid, seen)
    if refusal is None:
        return None
    return refusal, refusal.details[1] if refusal.details[1:2] and refusal.details[1] in seen else None


def _last_place_down(store: Store, host: Hypervisor, vm_uuid: str) -> tuple[str, str] | None:
    """Over a fleet of several hosts, for a VM no host that answered has: the host the database last saw it on
    (its place, then a copy's host) that could not be reached in this operation, and why (as the fleet words it
    after "host LABEL: "); None when there is none."""
    if not isinstance(host, Fleet) or not host.several:
        return None
    for label in locations.hosts_of(store, vm_uuid):
        down = host.unreached_error(label)
        if down is not None:
            return label, down.sentence.removeprefix(f"host {label}: ")
    return None


@one_fleet_operation  # a host found unreachable while locating the VM is not waited on again (_last_place_down)
def inspect_vm(store: Store, host: Hypervisor, vm_uuid: object) -> VMView:
    """A registered VM with its power state, stored and booted segments, and its unfinished change if it
    has one; host trouble is reported, not raised. Over a fleet, a VM whose host is down is shown on the host
    the database last saw it on."""
    vm = vms.get(store, vm_uuid)
    locations.adopt_same_hosts(store, host)  # where it was last seen, as this run's hosts name it
    with store.reading() as conn:
        op = journal.select_holder(conn, vm.vm_uuid)
        marks = attention.select(conn, vm.vm_uuid)
    operation = _unfinished(op, vm.vm_name) if op is not None else None
    try:
        state = host.power_state(vm.vm_uuid)
        args = host.get_device_model_args(vm.vm_uuid)
        booted = host.booted_device_model_args(vm.vm_uuid) if state is not PowerState.HALTED else None
        transient = state is not PowerState.HALTED and is_transient(host, vm.vm_uuid)  # a halted one is gone
    except HypervisorError as error:
        mark = marks[0] if marks else None
        elsewhere = _not_in_run(store, host, vm.vm_uuid, error)
        if elsewhere is not None:  # not gone: it may still be on a host this run does not ask
            refusal, last_place = elsewhere
            reason = NOT_CONFIGURED if refusal.code == codes.VM_ON_HOST_NOT_CONFIGURED else LEFT_OUT
            return VMView(vm, None, None, str(refusal), operation, mark, host=last_place, not_asked=reason)
        if codes.vm_missing(error):
            return VMView(vm, None, devargs.ABSENT, operation=operation, attention=mark)
        unreached = _last_place_down(store, host, vm.vm_uuid)
        if unreached is not None:  # named in the Host line, why it cannot be asked in Status (as scan-vms shows it)
            return VMView(vm, None, None, unreached[1], operation, mark, host=unreached[0],
                          host_code=codes.HOST_UNREACHABLE)
        return VMView(vm, None, None, str(error), operation, mark, host_code=error.code)
    label = host.label_of(vm.vm_uuid) if isinstance(host, Fleet) and host.several else None
    host_vm = HostVM(vm.vm_uuid, vm.vm_name or "", state, args, booted, label or "", transient=transient)
    if isinstance(host, Fleet) and label:
        unasked = host.ask_last_place(vm.vm_uuid, label, locations.hosts_of(store, vm.vm_uuid))
        if unasked is not None:
            down, why = unasked
            cause = why.sentence.removeprefix(f"host {down}: ")
            return VMView(vm, None, None, cause, operation, marks[0] if marks else None, host=down,
                          listed_elsewhere=host_vm, host_code=codes.failure_code(why))
    standing = _settle(store, host, marks, {vm.vm_uuid: state}) if marks else []
    quoted = args_quoted(host, vm.vm_uuid)
    return VMView(vm, host_vm, devargs.parse(args, quoted=quoted), operation=operation,
                  attention=standing[0] if standing else None, booted=booted_segment(host_vm, quoted), host=label)

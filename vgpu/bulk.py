"""Reconfiguring many VMs at once (notebooks): one plan, one confirmation, bounded concurrency.

Each VM still goes through the full journalled cycle of :func:`vgpu.lifecycle.apply_plan`; the batch only
shares the planning (one host listing for every power state) and the confirmation, and runs up to
``concurrency`` VMs side by side, each worker with its own DB connection and host connection.

Over a fleet the plan lists every host at once (a row whose VM is on a host that cannot be listed is
refused by name), each plan knows its VM's host, and ``per_host`` bounds how many VMs of one host change at
a time, besides ``concurrency`` for the whole batch: the next VM to start is taken from the hosts in turn,
so one host's long queue does not hold the others back.
"""

from __future__ import annotations

from typing import Callable, Collection, Iterable, Mapping, Sequence

import attrs

from . import journal, lifecycle, locations, reporting, tables, values, views, vms, workers
from .confirming import ask, check_confirm
from .errors import BulkInterrupted, Conflict, DuplicateVM, HostUnreachable, HypervisorError, InvalidRows, InvalidValue, NotFound, RowProblem, VgpuError
from .hypervisor import codes
from .hypervisor.base import Hypervisor
from .hypervisor.fleet import Fleet, Listing, as_fleet, copies_unknown_refusal, left_behind, one_fleet_operation
from .lifecycle import DEFAULT_POLICY, ReconfigurePlan, ReconfigureResult, StopPolicy
from .power import check_policy
from .models import HostVM, PowerState
from .reporting import ProgressOption
from .rows import Header, Layout, blank, labelled, problem_labeller, row_reference
from .store import Store
from .values import parse_vm_id

# The columns of a change: vm_uuid (or uuid), then any of pool (or pool_id), priority, vm_id; in any case and
# with spaces around them, as for register_many (see vgpu.rows). The VM's name and the columns records() adds
# for reading are read past, so a result's records are a batch of changes as they are (no name is changed).
CHANGE_HEADER = Header(
    {"vm_uuid": 0, "uuid": 0, "pool": 1, "pool_id": 1, "priority": 2, "vm_id": 3}, ("VM UUID", "pool", "priority", "vm_id"),
    ignored=tables.OUTPUT_COLUMNS | {"vm_name"},
)
_VM_ID = 3  # its field


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many VMs it holds
class BulkPlan(tables.Tabular):
    _view = views.bulk_plan_view
    _columns = views.BULK_PLAN_COLUMNS

    plans: tuple[ReconfigurePlan, ...]

    @property
    def restarts(self) -> int:
        return sum(plan.needs_restart for plan in self.plans)

    @property
    def changing(self) -> list[ReconfigurePlan]:
        return [plan for plan in self.plans if not plan.is_noop]


@attrs.frozen
class BulkFailure:
    """One VM of a batch that failed. ``error`` is a VgpuError, or (a bug met by that VM's cycle, which was
    rolled back like any failure) the unexpected exception itself, traceback included."""

    vm_uuid: str
    error: Exception
    plan: ReconfigurePlan | None = None  # what was attempted, when the failure is one VM's change

    @property
    def message(self) -> str:
        if isinstance(self.error, VgpuError):
            return str(self.error)
        return f"internal error: {type(self.error).__name__}: {self.error}"


@attrs.frozen(repr=False)
class BulkResult(tables.Tabular):
    """What a batch did: ``results`` (in the plan's order), ``failures``; and when it was interrupted (see
    :class:`vgpu.errors.BulkInterrupted`), ``interrupted`` (the VMs whose change was cut part way, left to
    ``vgpu-admin recover``, or still under way in the background when a second Ctrl-C stopped the waiting:
    those are ``under_way`` too, and their thread ends them) and ``not_started`` (the plans of the VMs left
    untouched: apply them later)."""

    _view = views.bulk_result_view
    _columns = views.BULK_RESULT_COLUMNS

    results: tuple[ReconfigureResult, ...]
    failures: tuple[BulkFailure, ...]
    interrupted: tuple[ReconfigurePlan, ...] = ()
    not_started: tuple[ReconfigurePlan, ...] = ()
    under_way: tuple[ReconfigurePlan, ...] = ()  # of ``interrupted``

    @property
    def ok(self) -> bool:
        """Every VM changed as asked: none failed or was left, and every VM the batch started runs with its
        configuration (see ReconfigureResult.not_running_with_it)."""
        return (not self.failures and not self.interrupted and not self.not_started
                and not any(done.not_running_with_it for done in self.results))


def _change_of(store: Store, values: tuple[object, ...], layout: Layout) -> vms.ChangePlan | None:
    """One row's change. A blank cell keeps the current value; a row whose every change cell is blank keeps
    the VM as it is (a no-op, or nothing at all for a VM that is not registered: a scan's row of an
    unregistered VM), but a row without any change column is refused: it says nothing."""
    uuid, pool, priority, vm_id = values[0], *(None if blank(value) else value for value in values[1:])
    if pool is None and priority is None and vm_id is None and any(map(layout.has, (1, 2, 3))):
        vm = vms.find(store, uuid)
        return None if vm is None else vms.ChangePlan(vm, vm.config)
    return vms.plan_change(store, uuid, pool, priority, vm_id)


def reconfigure_plan(change: vms.ChangePlan, listed: Mapping[str, HostVM], locked: Mapping[str, journal.Operation], *,
                     quoted_labels: frozenset[str] = frozenset(), twice: Mapping[str, list[str]] | None = None,
                     listings: Sequence[Listing] = (), places: LastSeen | None = None,
                     fleet: Fleet | None = None, store: Store | None = None) -> ReconfigurePlan:
    """A database change made a plan of the cycle on the host, as plan_reconfigure does: the VM must be on
    one host (``listed``, from one listing per host; ``twice``: the UUIDs several hosts listed; ``places``:
    the hosts each VM was last seen on, see :func:`check_only_copy`), running or halted (a refusal in the words of
    its host in ``fleet``, when it has some: libvirt's managed save), and not locked by an open operation. The plan carries the VM's host, its stored args and what it booted with (read with its
    host's quoting: ``quoted_labels``), so an unchanged row restarts only a VM known to be pending. A VM no host lists is refused as
    missing, or (its places read from ``store``) as last seen on a host the run does not have."""
    uuid = change.vm.vm_uuid
    check_listed_once(uuid, twice or {})
    host_vm = listed.get(uuid)
    if host_vm is None:
        raise not_listed(uuid, listings, fleet, last_seen_of(store, fleet, uuid) if store is not None else ())
    check_only_copy(host_vm, places or LastSeen(), listings, fleet)
    lifecycle.check_power_state(uuid, host_vm.power_state, fleet.member(host_vm.host) if fleet is not None else None)
    if uuid in locked:
        raise journal.busy_error(locked[uuid])
    booted = host_vm.booted_args if host_vm.power_state is PowerState.RUNNING else None
    return lifecycle.check_not_transient(host_vm, ReconfigurePlan(
        change.vm, change.new, host_vm.power_state, host_vm.device_model_args, booted,
        args_quoted=host_vm.host in quoted_labels, host=host_vm.host))


@one_fleet_operation
def plan_many(store: Store, host: Hypervisor, changes: Iterable[Mapping[str, object]] | Mapping[object, Mapping[str, object]]) -> BulkPlan:
    """Validate every change (``vm_uuid`` plus any of ``pool``, ``priority``, ``vm_id``) against the DB and
    one host listing. Raises InvalidRows naming every bad row; changes nothing.

    Keys are read as for :func:`vgpu.vms.db_register_many` (any case, ``uuid`` for ``vm_uuid``, ``pool_id``
    for ``pool``); any other key, or one field under two keys, is a bad row, except ``vm_name`` and the
    columns records() adds for reading, so any result's records go back in as they are. A blank cell (None,
    empty, spaces, NaN) keeps the VM's current value. Rows are a list (numbered from 1 in problems), a pandas
    DataFrame or a mapping of label to row (``df.to_dict("index")``), whose labels problems name."""
    rows, labels = labelled(changes)
    refer = row_reference(labels)
    fleet = as_fleet(host)
    listings = fleet.survey_answered()  # a host that is down holds back only its own rows (of a fleet)
    listed, twice = listed_by_uuid(listings)
    quoted = fleet.quoted_labels()
    taken = {vm.vm_id: vm.vm_uuid for vm in vms.list_vms(store)}
    locked = {op.vm_uuid: op for op in journal.unfinished(store)}  # as plan_reconfigure: refuse before asking
    places = places_to_check(store, listings, fleet)
    read = CHANGE_HEADER.reader()
    plans: list[ReconfigurePlan] = []
    problems: list[RowProblem[int]] = []
    # The first row naming each VM, even one refused: a later row naming it is a repeat either way, never its change
    seen: dict[str, int] = {}
    # The first row asking for each vm_id, even one refused: a later row asking for it after a refused row is its
    # repeat (good rows asking for one vm_id are each reported below, whatever row is between them)
    asked: dict[int, int] = {}
    planned: set[int] = set()
    for row, item in enumerate(rows, start=1):
        if not isinstance(item, Mapping):  # a bad row is reported with the others, not an AttributeError
            problems.append(RowProblem(row, InvalidValue("row", item, "a mapping with vm_uuid and any of pool, priority, vm_id")))
            continue
        values, column_errors, layout = read(item)
        named = layout.named_vm(values)
        first = row if named is None else seen.setdefault(named, row)
        asks = layout.named(values, _VM_ID, parse_vm_id)
        first_asking = row if asks is None else asked.setdefault(asks, row)
        if column_errors:
            problems.extend(RowProblem(row, error) for error in column_errors)
            continue
        try:
            change = _change_of(store, values, layout)
            if change is None:
                continue
            uuid = change.vm.vm_uuid
            if first != row:
                raise Conflict("VM UUID", uuid, f"{refer(first)} of this batch")
            holder = taken.get(change.new.vm_id)
            if holder not in (None, uuid):
                raise Conflict("vm_id", change.new.vm_id, f"VM {holder}")
            refused_first = first_asking != row and first_asking not in planned
            if refused_first and change.new.vm_id != change.vm.vm_id:  # its own vm_id is never a repeat
                raise Conflict("vm_id", change.new.vm_id, f"{refer(first_asking)} of this batch")
            plan = reconfigure_plan(change, listed, locked, quoted_labels=quoted, twice=twice, listings=listings, places=places,
                                    fleet=fleet, store=store)
        except VgpuError as error:
            problems.append(RowProblem(row, error))
            continue
        plans.append(plan)
        planned.add(row)
    asking: dict[int, list[int]] = {}  # each new vm_id, with the rows of good plans asking for it
    for row_plan in plans:
        asking.setdefault(row_plan.new.vm_id, []).append(seen[row_plan.vm_uuid])
    for vm_id, rows_asking in asking.items():
        for row in rows_asking if len(rows_asking) > 1 else ():  # each row names the others (the first three)
            others = [refer(other) for other in rows_asking if other != row]
            named = " and ".join(others) if len(others) <= 3 else f"{', '.join(others[:3])} and {len(others) - 3} more rows"
            problems.append(RowProblem(row, Conflict("vm_id", vm_id, f"{named} of this batch")))
    if problems:
        raise InvalidRows(list(map(problem_labeller(labels), sorted(problems, key=lambda p: p.row))))
    return BulkPlan(tuple(plans))


def listed_by_uuid(listings: list[Listing]) -> tuple[dict[str, HostVM], dict[str, list[str]]]:
    """Every listed VM by UUID, and the UUIDs listed by several hosts (with their labels): a VM of those has
    no one HostVM (the last copy listed stands for it here), so refuse it first (:func:`check_listed_once`)."""
    listed: dict[str, HostVM] = {}
    twice: dict[str, list[str]] = {}
    for listing in listings:
        for host_vm in listing.vms:
            if host_vm.uuid in listed:
                twice.setdefault(host_vm.uuid, [listed[host_vm.uuid].host]).append(host_vm.host)
            listed[host_vm.uuid] = host_vm
    return listed, twice


def check_listed_once(uuid: str, twice: Mapping[str, list[str]]) -> None:
    """Refuse a VM several hosts list (``twice``, from :func:`listed_by_uuid`), as the commands on one VM do:
    vgpu-admin does not choose a copy."""
    if uuid in twice:
        raise DuplicateVM(uuid, twice[uuid])


@attrs.frozen
class LastSeen:
    """What :func:`check_only_copy` reads: every host each VM was last seen on (UUID -> labels), and the hosts
    of the run whose copies are unknown (a fleet's database upgraded from schema 3: any of them may hold one)."""

    hosts: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    copies_unknown: Collection[str] = ()


def places_to_check(store: Store, listings: Sequence[Listing], fleet: Fleet) -> LastSeen:
    """What :func:`check_only_copy` needs, in one read: every host each VM was last seen on, when some host
    could not be listed; else only those of the VMs last seen on a host the run does not have (taken out of
    [hosts], or left out by --host), none for a fleet whose whole configuration answered. A single host
    named by its URI keeps no places: nothing is read."""
    if fleet.labels == ("",):
        return LastSeen()
    locations.adopt_same_hosts(store, fleet)  # a label of one of these hosts under another name is that host
    with store.reading() as conn:
        if any(listing.error is not None for listing in listings):
            return LastSeen(locations.select_last_hosts(conn), locations.copies_unknown_on(conn, fleet.labels))
        return LastSeen(locations.select_last_hosts(conn, outside=fleet.labels))


def last_seen_of(store: Store, fleet: Fleet | None, vm_uuid: str) -> tuple[str, ...]:
    """Every host a VM no host of the run lists was last seen on (for :func:`not_listed`); nothing for one host
    named by its URI alone, which keeps no places."""
    if fleet is None or fleet.labels == ("",):
        return ()
    return locations.hosts_of(store, vm_uuid.lower())


def check_only_copy(host_vm: HostVM, places: LastSeen, listings: Sequence[Listing], fleet: Fleet | None = None) -> None:
    """:func:`vgpu.lifecycle.check_only_copy` from one listing per host: a VM a host lists, last seen on
    another host of the run (instead, or as well: a copy) that could not be listed, is refused (that host
    may still hold a copy); so is any VM while another host whose copies are unknown could not be listed; and (over ``fleet``) one last seen on a host the run does not have (see
    :meth:`Fleet.outside_run`)."""
    last_seen = places.hosts.get(host_vm.uuid, ())
    for listing in listings:
        if listing.error is None or listing.label == host_vm.host:
            continue
        if listing.label in last_seen:
            raise left_behind(host_vm.uuid, host_vm.host, listing.label, listing.error,
                              seen_there_too=host_vm.host in last_seen)
        if listing.label in places.copies_unknown:
            raise copies_unknown_refusal(host_vm.uuid, host_vm.host, listing.label, listing.error)
    outside = fleet.outside_run(host_vm.uuid, host_vm.host, last_seen) if fleet is not None and last_seen else None
    if outside is not None:
        raise outside


def not_listed(uuid: str, listings: Sequence[Listing], fleet: Fleet | None = None, last_seen: Sequence[str] = ()) -> VgpuError:
    """No host listed the VM: missing, unless a host that could not be listed may have it, or (over ``fleet``) a
    host the run does not have: one it was last seen on (``last_seen``), taken out of [hosts] or left out by
    --host, or any the run leaves out (see :meth:`Fleet.not_in_run`), as the commands on one VM say."""
    down = [listing.error for listing in listings if listing.error is not None]
    if not down:
        elsewhere = fleet.not_in_run(uuid, last_seen) if fleet is not None else None
        return elsewhere or NotFound("VM", uuid, "the host has no such VM")
    if len(listings) == 1:
        return down[0]
    first = down[0]
    code = first.code if isinstance(first, HypervisorError) else codes.HOST_UNREACHABLE
    return HostUnreachable(code, f"VM {uuid} is on none of the hosts that answered; {first}")


@one_fleet_operation
def apply_many(
    store: Store,
    host: Hypervisor,
    bulk: BulkPlan,
    *,
    progress: ProgressOption = lifecycle.silent,
    policy: StopPolicy = DEFAULT_POLICY,
    concurrency: int = 4,
    per_host: int | None = None,
) -> BulkResult:
    """Apply a confirmed bulk plan, at most ``concurrency`` VMs at a time, each through the full journalled
    cycle. One VM's failure (rolled back as usual) does not stop the others.

    ``progress``: a callback, called from the worker threads one report at a time, each report carrying
    ``done`` and ``total`` (each VM's last one, ``finished`` or ``failed``, names it); or ``"auto"`` for a
    tqdm bar (log lines without tqdm: see :mod:`vgpu.reporting`). An interrupt (Ctrl-C, or a
    KeyboardInterrupt the callback raises) stops the batch: no VM is begun after it, those under way finish
    their cycle, then :class:`vgpu.errors.BulkInterrupted` (a KeyboardInterrupt) is raised with the
    partial BulkResult. A second Ctrl-C raises it at once: the cycles under way go on in the background,
    in progress (recover leaves them alone) until each is done, rolled back or given up to recover. At most
    ``per_host`` VMs of one host of a fleet change at once (None: no limit of its own)."""
    values.check_kind("apply_many", "plan", bulk, BulkPlan, "for the updates of a registration plan, pass plan.updates"
                      if type(bulk).__name__ == "RegistrationPlan" else "")
    check_policy(policy)
    reporting.check(progress)
    changing = bulk.changing
    # a plan made under other labels (another config, or before a rename): each host's rows under this run's label
    locations.adopt_same_hosts(store, host)
    # Over a fleet, every host is listed once more, now, for all the VMs at once, instead of every host being
    # asked about each VM as a single change does: a copy made on another host since the plan is refused.
    copies = _listed_twice_now(host) if changing else {}

    def apply(worker_store: Store, worker_host: Hypervisor, index: int, report: lifecycle.ProgressCallback) -> ReconfigureResult:
        plan = changing[index]
        if plan.vm_uuid in copies:
            raise DuplicateVM(plan.vm_uuid, copies[plan.vm_uuid])
        unreached = as_fleet(worker_host).unreached_error(plan.host)
        if unreached is not None:
            raise not_begun(plan.vm_uuid, plan.host, unreached)
        return lifecycle.apply_located_plan(worker_store, worker_host, plan, progress=report, policy=policy)

    outcome = workers.run(
        store, host, [plan.vm_uuid for plan in changing], apply,
        concurrency=concurrency, progress=progress, description="Reconfiguring",
        groups=[plan.host for plan in changing], per_group=per_host,
    )
    result = BulkResult(
        tuple(outcome.results[index] for index in sorted(outcome.results)),
        tuple(BulkFailure(changing[index].vm_uuid, error, changing[index]) for index, error in sorted(outcome.failures.items())),
        tuple(changing[index] for index in outcome.cut),
        tuple(changing[index] for index in outcome.not_started),
        tuple(changing[index] for index in outcome.under_way),
    )
    if outcome.interrupted:
        raise BulkInterrupted(result, workers.interrupted_sentence(
            len(result.results), len(result.failures), len(result.interrupted), len(result.not_started),
            " (their plans are in .partial.not_started)", under_way=len(result.under_way))) from outcome.interrupt
    return result


def not_begun(vm_uuid: str, label: str, unreached: HostUnreachable, again: str = "apply it again") -> HostUnreachable:
    """The failure of a bulk row whose host stopped answering earlier in the call: its change is not begun
    (nothing journalled, the host not asked again), where it would wait on the host, fail, and be left to
    recover with its VM untouched. ``again``: what to do once the host answers."""
    return HostUnreachable(unreached.code, f"{unreached.sentence}; VM {vm_uuid} was not begun, since {label} stopped "
                                           f"answering during this bulk call: nothing was changed; {again} "
                                           f"once {label} answers", unreached.details)


def _listed_twice_now(host: Hypervisor) -> dict[str, list[str]]:
    """The UUIDs several hosts of a fleet list now (one listing per host, at once); nothing for one host. A
    host that cannot be reached now is down for the rest of the call: its rows are not begun (see
    :func:`not_begun`); one that answers with an error is left to each of its VMs' cycles, which say so."""
    fleet = as_fleet(host)
    if not fleet.several:
        return {}
    return listed_by_uuid(fleet.survey())[1]


@one_fleet_operation
def reconfigure_many(
    store: Store,
    host: Hypervisor,
    changes: Iterable[Mapping[str, object]],
    *,
    confirm: Callable[[BulkPlan], bool],
    progress: ProgressOption = lifecycle.silent,
    policy: StopPolicy = DEFAULT_POLICY,
    concurrency: int = 4,
    per_host: int | None = None,
) -> BulkResult:
    """Plan every change, ask once, then apply with at most ``concurrency`` VMs at a time, and at most
    ``per_host`` of one host of a fleet (see :func:`apply_many` for ``progress`` and interrupts)."""
    check_confirm(confirm)
    workers.check_concurrency(concurrency)
    if per_host is not None:
        workers.check_concurrency(per_host, "per_host")
    reporting.check(progress)
    check_policy(policy)
    bulk = plan_many(store, host, changes)
    if not bulk.changing:
        return BulkResult((), ())
    ask(confirm, bulk)
    return apply_many(store, host, bulk, progress=progress, policy=policy, concurrency=concurrency, per_host=per_host)

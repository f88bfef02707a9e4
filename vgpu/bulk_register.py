"""Registering many VMs at once (a CSV in a notebook): check every row, then register the good ones.

:func:`plan_registrations` reads the DB and one host listing and changes nothing: it gives the VMs the good
rows would become and every problem with the others; a file run again says, with ``on_existing``, whether
rows of VMs registered already are problems, skipped, or updates (planned as the confirmed reconfigure cycle,
for :func:`vgpu.bulk.apply_many`). :func:`register_planned` registers the planned VMs in one transaction
(:func:`vgpu.vms.db_register_many`: all of them or none), then writes each one's segment with
:func:`write_segments`, ``concurrency`` at a time (:mod:`vgpu.workers`). Each write is journalled once it
begins (:func:`vgpu.lifecycle.repair_vm`), so ``recover`` finishes one a crash cut part way; the writes not
begun when the process was killed or interrupted are journalled nowhere, so running the same rows again
(``on_existing`` "skip" or "update") plans them as the plan's ``to_write`` and writes them. A write the host
refuses is reported for that VM, which stays registered and shows as drift in a scan until
``vgpu-admin repair-vm`` (or ``write_segments``, or the same rows again) puts the segment there.
"""

from __future__ import annotations

from collections import abc
from typing import Callable, Hashable, Iterable, Mapping, TypeVar, cast

import attrs

from . import bulk, devargs, journal, lifecycle, naming, reporting, tables, values, views, vms, workers
from .bulk import BulkFailure, BulkPlan
from .errors import BulkInterrupted, Conflict, DuplicateVM, InvalidRows, InvalidValue, RowProblem, StaleRegistrations, VgpuError
from .hypervisor.base import Hypervisor
from .hypervisor.fleet import Fleet, Listing, as_fleet, one_fleet_operation
from .lifecycle import ProgressCallback, Progress, ReconfigurePlan, RepairResult
from .models import VM, HostVM, Registration
from .naming import NamedLikeUUID, SharedName
from .reporting import ProgressOption
from .rows import repeated_labels
from .store import Store


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many rows it holds
class RegistrationPlan(tables.Tabular):
    """What each row would do, and every problem with the others. ``rows[i]`` is the input row (its label, or
    its number from 1) of ``vms[i]``, and likewise for the other pairs:

    - ``vms``/``rows``: the VMs the rows would register (register_planned registers them);
    - ``updates``/``update_rows``: with ``on_existing="update"``, the change each row asks of its registered
      VM, as a :class:`vgpu.bulk.BulkPlan`: the confirmed reconfigure cycle, which
      ``bulk.apply_many(store, host, plan.updates)`` applies (register_planned leaves them alone);
    - ``existing``/``existing_rows``: registered VMs their rows leave as they are (skipped, or already so);
    - ``to_write``: the UUIDs of those (registered as their rows ask) whose device-model args do not carry
      their registered segment, as a registration cut short leaves them: register_planned writes it, so the
      same file run again finishes the job (their action in the table is ``write segment``);
    - ``problems``: every problem, a table even when empty (``plan.problems.to_pandas()``)."""

    vms: tuple[VM, ...]
    rows: tuple[Hashable, ...]
    problems: tables.ProblemTable = attrs.field(default=tables.ProblemTable(), converter=tables.ProblemTable)
    shared_names: tuple[SharedName, ...] = ()  # planned VMs named like another VM: registered all the same
    updates: BulkPlan = BulkPlan(())
    update_rows: tuple[Hashable, ...] = ()
    existing: tuple[VM, ...] = ()
    existing_rows: tuple[Hashable, ...] = ()
    on_existing: str = "error"
    labels: tuple[Hashable, ...] = ()  # every input row's label (or number), in input order: the order of the plan's table
    to_write: tuple[str, ...] = ()
    # the planned VMs whose vm_id the plan chose (their rows gave none): taken by another VM before
    # register_planned, it makes the plan stale, not the row bad
    chosen_vm_ids: tuple[str, ...] = ()
    # planned VMs whose name is another VM's UUID (as register-vm warns): registered all the same
    named_like_uuids: tuple[NamedLikeUUID, ...] = ()
    _columns = ("row", "action", *tables.VM_COLUMNS, "change")

    def _view(plan: RegistrationPlan) -> tuple[str, list[tables.Record]]:
        kept = "skip" if plan.on_existing == "skip" else "unchanged"
        rows: list[tuple[Hashable, str, tables.Record, str | None]]
        rows = [(row, "register", tables.vm_record(vm), None) for row, vm in zip(plan.rows, plan.vms)]
        rows += [(row, "update", tables.config_record(change.vm, change.new), tables.changes_text(change.changes))
                 for row, change in zip(plan.update_rows, plan.updates.plans)]
        writing = set(plan.to_write)
        rows += [(row, "write segment" if vm.vm_uuid in writing else kept, tables.vm_record(vm), None)
                 for row, vm in zip(plan.existing_rows, plan.existing)]
        rows = in_input_order(plan.labels, rows, lambda row: row[0])
        records = [{"row": tables.row_label(row), "action": action, **record, "change": change}
                   for row, action, record, change in rows]
        refused = tables.count_rows(plan.problems)
        parts = [f"{tables.plural(len(plan.vms), 'VM')} to register"]
        if plan.updates.plans:
            parts.append(f"{len(plan.updates.plans)} to update (bulk.apply_many)")
        if plan.to_write:
            parts.append(f"{tables.plural(len(plan.to_write), 'segment')} to write")
        if len(plan.existing) > len(plan.to_write):
            parts.append(f"{len(plan.existing) - len(plan.to_write)} {'skipped' if kept == 'skip' else 'unchanged'}")
        parts.append(f"{tables.plural(refused, 'row')} refused")
        if plan.named_like_uuids:  # a warning, as register-vm gives it: seen before register_planned
            parts.append(f"{len(plan.named_like_uuids)} named like another VM's UUID (plan.named_like_uuids)")
        return "; ".join(parts), records

    @property
    def invalid(self) -> InvalidRows | None:
        """Every problem as one InvalidRows (a table in a notebook), or None when every row is good. Not a
        refusal: register_planned goes ahead with the other rows, so it says so instead of 'nothing was changed'.
        For a table whether or not there are problems, use ``problems`` (``plan.problems.to_pandas()``)."""
        return InvalidRows(self.problems, PLAN_LEAVES_OUT) if self.problems else None


_Item = TypeVar("_Item")


def in_input_order(labels: tuple[Hashable, ...], items: list[_Item], label_of: Callable[[_Item], Hashable]) -> list[_Item]:
    """``items`` in the order of their rows' labels in the input (labels need not sort: a DataFrame's may be
    anything); items of one row keep their order."""
    position: dict[Hashable, int] = {}
    for index, label in enumerate(labels):
        position.setdefault(label, index)
    return sorted(items, key=lambda item: position.get(label_of(item), len(position)))


PLAN_LEAVES_OUT = "the plan leaves these rows out"
SKIPPED_SINCE = "skipped: registered since the plan"


@attrs.frozen(repr=False)
class RegistrationResult(tables.Tabular):
    """The VMs registered, and for each the segment written (or the reason it was not). When the writing was
    interrupted (see :class:`vgpu.errors.BulkInterrupted`): ``interrupted``, the VMs whose write was cut
    part way (left to ``vgpu-admin recover``), or still under way in the background when a second Ctrl-C
    stopped the waiting (those are ``under_way`` too: their thread ends the write), and ``not_started``, those
    whose segment was not written yet.
    Every VM is registered either way; ``write_segments(store, host, result.not_started)`` finishes them, as
    does running the same registration again. ``rewritten``: the VMs registered before, whose segments a
    plan's ``to_write`` had written (their outcomes are in the table beside the new VMs'). ``skipped``: with
    ``on_existing="skip"``, the VMs registered by someone else since the plan as their rows ask, left as they
    are (their registration is that session's, and so is the writing of their segments)."""

    registered: tuple[VM, ...]
    segments: tuple[RepairResult, ...]
    failures: tuple[BulkFailure, ...]
    interrupted: tuple[str, ...] = ()
    not_started: tuple[str, ...] = ()
    rewritten: tuple[VM, ...] = ()
    skipped: tuple[VM, ...] = ()
    under_way: tuple[str, ...] = ()  # of ``interrupted``
    _columns = (*tables.VM_COLUMNS, "segment")

    def _view(result: RegistrationResult) -> tuple[str, list[tables.Record]]:
        outcome = {segment.vm_uuid: "written" for segment in result.segments}
        outcome.update((failure.vm_uuid, "not written: " + str(failure.error)) for failure in result.failures)
        outcome.update((uuid, "interrupted: run 'vgpu-admin recover'") for uuid in result.interrupted)
        outcome.update((uuid, views.UNDER_WAY_NOTE) for uuid in result.under_way)
        outcome.update((uuid, "not written yet (not started)") for uuid in result.not_started)
        records = [{**tables.vm_record(vm), "segment": outcome.pop(vm.vm_uuid, "written")}
                   for vm in (*result.registered, *result.rewritten)]
        records += [{**tables.vm_record(vm), "segment": SKIPPED_SINCE} for vm in result.skipped]
        # write_segments may be given a VM that is not registered (its segment is cleared): a row all the same
        records += [{**dict.fromkeys(tables.VM_COLUMNS), "vm_uuid": uuid, "segment": segment} for uuid, segment in outcome.items()]
        summary = f"{tables.plural(len(result.registered), 'VM')} registered, {tables.plural(len(result.failures), 'segment')} not written"
        if result.interrupted or result.not_started:
            summary += f", {len(result.interrupted) - len(result.under_way)} interrupted"
            summary += f", {len(result.under_way)} still under way" if result.under_way else ""
            summary += f", {len(result.not_started)} not started"
        if result.skipped:
            summary += f", {len(result.skipped)} skipped (registered since the plan)"
        return summary, records

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted and not self.not_started


@one_fleet_operation
def plan_registrations(
    store: Store,
    host: Hypervisor,
    items: Iterable[Registration | Mapping[str, object]] | Mapping[object, Mapping[str, object]],
    *,
    on_existing: str = "error",
) -> RegistrationPlan:
    """Check every row (values, duplicates in the batch and in the DB, the VM on the host) without changing
    anything. A row without a name gets the host's name for the VM, as ``register-vm`` does; a row of a
    transient VM (its segment could never be written) is refused, as ``register-vm`` refuses it. A name another
    VM has too is not a problem (names are for display): ``shared_names`` lists each, with the UUIDs.

    Rows are read as :func:`vgpu.vms.db_register_many` reads them (a list, a DataFrame, a mapping of label to
    row; records() of any result). ``on_existing`` says what a row whose VM is registered does: ``"error"``
    (a problem), ``"skip"`` (left as it is) or ``"update"``: its pool, priority and vm_id as the row gives
    them (a blank cell keeps the VM's value), planned as the confirmed reconfigure cycle in ``updates``."""
    fleet = as_fleet(host)
    listings = fleet.survey_answered()  # one listing per host: a host that is down holds back only its own rows
    down = [listing.error for listing in listings if listing.error is not None]
    on_host, twice = bulk.listed_by_uuid(listings)  # twice: on several hosts, refused as register_vm refuses it
    # With a host down, a VM no answering host lists may be on it: not "no such VM", but refused by name below.
    checked = vms.classify_many(store, items, exists=None if down else on_host.__contains__, on_existing=on_existing,
                                missing=lambda uuid: bulk.not_listed(uuid, listings, fleet, bulk.last_seen_of(store, fleet, uuid)))
    checked = _refuse_copies(checked, twice)
    places = bulk.places_to_check(store, listings, fleet)
    repeated = repeated_labels(checked.labels)
    held_back, new = [], []
    given = dict(zip(checked.new_positions, checked.new_vm_id_given))
    for row, position, vm in zip(checked.new_rows, checked.new_positions, checked.new):
        try:
            bulk.check_listed_once(vm.vm_uuid, twice)
            if vm.vm_uuid not in on_host:
                raise bulk.not_listed(vm.vm_uuid, listings, fleet, bulk.last_seen_of(store, fleet, vm.vm_uuid))
            bulk.check_only_copy(on_host[vm.vm_uuid], places, listings, fleet)
            # its segment could never be written: register_vm refuses it, and so does the plan
            lifecycle.check_writable(vm.vm_uuid, on_host[vm.vm_uuid])
        except VgpuError as error:
            held_back.append(RowProblem(row, error, position, label_repeats=row in repeated))
            continue
        new.append((row, vm, given[position]))
    planned = [vm if vm.vm_name else attrs.evolve(vm, vm_name=lifecycle.host_name(on_host[vm.vm_uuid])) for _, vm, _ in new]
    with store.reading() as conn:
        shared = naming.shared_names(conn, planned)
        like_uuids = tuple(like for like in (naming.named_like_uuid(conn, vm, on_host) for vm in planned) if like is not None)
    quoted = fleet.quoted_labels()
    updates, update_rows, problems = _updates(store, fleet, on_host, twice, checked, quoted, listings, held_back, places)
    return RegistrationPlan(
        tuple(planned), tuple(row for row, _, _ in new), tuple(problems), shared, BulkPlan(tuple(updates)),
        tuple(update_rows), checked.existing, checked.existing_rows, on_existing, checked.labels,
        _without_their_segment(checked, on_host, quoted), tuple(vm.vm_uuid for _, vm, row_gave_id in new if not row_gave_id),
        like_uuids,
    )


def _refuse_copies(checked: vms.BatchCheck, twice: dict[str, list[str]]) -> vms.BatchCheck:
    """The rows of registered VMs left as they are, less those whose VM several hosts list: each is a
    DuplicateVM problem, as plan_many refuses even a row that changes nothing of such a VM (a segment to
    write would go to whichever copy was listed last)."""
    kept = [(row, vm, as_asked) for row, vm, as_asked in zip(checked.existing_rows, checked.existing, checked.existing_as_asked)
            if vm.vm_uuid not in twice]
    if len(kept) == len(checked.existing):
        return checked
    copies = [RowProblem(row, DuplicateVM(vm.vm_uuid, twice[vm.vm_uuid]))
              for row, vm in zip(checked.existing_rows, checked.existing) if vm.vm_uuid in twice]
    return attrs.evolve(checked, existing_rows=tuple(row for row, _, _ in kept), existing=tuple(vm for _, vm, _ in kept),
                        existing_as_asked=tuple(as_asked for _, _, as_asked in kept), problems=(*checked.problems, *copies))


def _without_their_segment(checked: vms.BatchCheck, on_host: dict[str, HostVM], quoted: frozenset[str]) -> tuple[str, ...]:
    """The registered VMs whose rows ask for what they have but whose stored args (in the listing the plan
    has already) lack their registered segment: what a registration killed or interrupted before their
    writes leaves. A VM no answering host lists is left out: there is nothing to write to."""
    missing = []
    for vm, as_asked in zip(checked.existing, checked.existing_as_asked):
        host_vm = on_host.get(vm.vm_uuid)
        if as_asked and host_vm is not None and devargs.parse(host_vm.device_model_args, quoted=host_vm.host in quoted).config != vm.config:
            missing.append(vm.vm_uuid)
    return tuple(missing)


def _updates(store: Store, fleet: Fleet, on_host: dict[str, HostVM], twice: dict[str, list[str]], checked: vms.BatchCheck,
             quoted: frozenset[str], listings: list[Listing], held_back: list[RowProblem[Hashable]], places: bulk.LastSeen
             ) -> tuple[list[ReconfigurePlan], list[Hashable], list[RowProblem[Hashable]]]:
    """The updates as plans of the reconfigure cycle, and a problem for each that cannot be one (a VM
    paused, locked by an open operation, on several hosts (``twice``), on no host that answered, or last seen on a host that did not), in
    row order among the other problems (``held_back`` among them: new rows whose VM no answering host lists,
    or that may have a copy on a host that did not answer)."""
    plans: list[ReconfigurePlan] = []
    rows: list[Hashable] = []
    problems = [*checked.problems, *held_back]
    if not checked.updates:
        return plans, rows, in_input_order(checked.labels, problems, lambda problem: problem.row)
    more: list[RowProblem[Hashable]] = []
    locked = {op.vm_uuid: op for op in journal.unfinished(store)}
    for row, position, change in zip(checked.update_rows, checked.update_positions, checked.updates):
        try:
            plans.append(bulk.reconfigure_plan(change, on_host, locked, quoted_labels=quoted, twice=twice, listings=listings,
                                               places=places, fleet=fleet, store=store))
            rows.append(row)
        except VgpuError as error:
            more.append(RowProblem(row, error, position, label_repeats=row in repeated_labels(checked.labels)))
    return plans, rows, in_input_order(checked.labels, [*problems, *more], lambda problem: problem.row)


@one_fleet_operation
def register_planned(store: Store, host: Hypervisor, plan: RegistrationPlan, *, progress: ProgressOption = lifecycle.silent,
                     concurrency: int = 4) -> RegistrationResult:
    """Register the plan's VMs with the vm_ids it shows, in one transaction, then write their segments and
    those of the plan's ``to_write``. Changes made since the plan refuse them all, changing nothing: a VM
    registered since, or a vm_id the plan chose (for a row that gave none) taken since, is a
    :class:`vgpu.errors.StaleRegistrations` (plan again), as is a VM the plan found registered (a row skipped,
    unchanged or with a segment to write) unregistered since; a vm_id a row gave, taken since, an InvalidRows
    naming that row. With ``on_existing="skip"``, a VM registered since as its row asks is skipped (``skipped``).
    Segments are written ``concurrency`` at a time (see :func:`write_segments`; an interrupt raises BulkInterrupted with the
    partial RegistrationResult, also when it lands after the registering and before the writing: every VM
    registered, none written; one before the registering committed is a plain KeyboardInterrupt, nothing
    registered)."""
    values.check_kind("register_planned", "plan", plan, RegistrationPlan,
                      "a bulk plan is applied by apply_many()" if type(plan).__name__ == "BulkPlan" else "")
    workers.check_concurrency(concurrency)
    reporting.check(progress)
    _refuse_if_unregistered_since(store, plan)
    to_write = set(plan.to_write)
    rewritten = tuple(vm for vm in plan.existing if vm.vm_uuid in to_write)
    if not plan.vms and not rewritten:
        return RegistrationResult((), (), ())
    begun: list[bool] = []  # the writing batch has begun: it hands back every interrupt from then on
    try:
        registered, skipped = _register(store, plan) if plan.vms else ([], ())
        uuids = [vm.vm_uuid for vm in (*registered, *rewritten)]
        written, failures = _write_segments(store, host, uuids, progress, concurrency, began=lambda: begun.append(True))
    except BulkInterrupted as interrupted:
        # write_segments' partial result is a RegistrationResult
        interrupted.partial = attrs.evolve(cast(RegistrationResult, interrupted.partial), registered=tuple(registered),
                                           rewritten=rewritten, skipped=skipped)
        raise
    except KeyboardInterrupt as interrupt:
        if begun:
            raise
        raise _interrupted_before_writing(store, plan, rewritten, interrupt) from interrupt
    return RegistrationResult(tuple(registered), tuple(written), tuple(failures), rewritten=rewritten, skipped=skipped)


def _interrupted_before_writing(store: Store, plan: RegistrationPlan, rewritten: tuple[VM, ...],
                                interrupt: KeyboardInterrupt) -> KeyboardInterrupt:
    """What an interrupt landing between the registering transaction and the writing batch leaves: landing
    inside the transaction's commit, it cannot tell whether the commit happened, so the database says. The
    plan's VMs registered as planned, the transaction's (the VMs of its last pass), are handed back with
    every segment still to write, in a BulkInterrupted; none registered, nothing was done: the interrupt as
    it came, with a note saying so."""
    try:
        with store.reading() as conn:
            now = vms.select_registered(conn, [vm.vm_uuid for vm in plan.vms])
    except VgpuError as unreadable:
        interrupt.add_note(f"Interrupted while registering; whether the VMs were registered could not be read "
                           f"({unreadable}): 'vgpu-admin status' shows them, and the same rows again with "
                           f"on_existing='skip' write any segment missing.")
        return interrupt
    chosen = set(plan.chosen_vm_ids)
    registered = tuple(now[vm.vm_uuid] for vm in plan.vms if _as_planned(vm, now.get(vm.vm_uuid)))
    if not registered:
        interrupt.add_note("Interrupted before the registration was committed: nothing was registered or written.")
        return interrupt
    # The others registered as their rows ask were skipped by a pass before (on_existing="skip")
    skipped = tuple(current for vm in plan.vms if (current := now.get(vm.vm_uuid)) is not None
                    and not _as_planned(vm, current) and plan.on_existing == "skip"
                    and _as_asked(vm, current, vm.vm_uuid in chosen))
    not_started = tuple(vm.vm_uuid for vm in (*registered, *rewritten))
    partial = RegistrationResult(registered, (), (), not_started=not_started, rewritten=rewritten, skipped=skipped)
    return BulkInterrupted(partial, workers.interrupted_sentence(0, 0, 0, len(not_started), _STILL_TO_WRITE))


def _as_planned(planned: VM, current: VM | None) -> bool:
    """Registered with what the plan gives it, as register_planned's transaction registers it."""
    return current is not None and (current.vm_name, current.config) == (planned.vm_name, planned.config)


def _refuse_if_unregistered_since(store: Store, plan: RegistrationPlan) -> None:
    """Refuse a plan whose registered VMs (rows skipped, unchanged or with a segment to write) are not all
    registered now: such a row would be in neither the registered nor the skipped of the result, and the
    segment to write of one would be cleared (the database has none for it)."""
    if not plan.existing:
        return
    with store.reading() as conn:
        now = vms.select_registered(conn, [vm.vm_uuid for vm in plan.existing])
    gone = [vm for vm in plan.existing if vm.vm_uuid not in now]
    if gone:
        changes = [f"{vms.holder_text(vm.vm_uuid, vm.vm_name)} is not registered now (the plan found it registered: "
                   f"vm_id {vm.vm_id}, pool {vm.pool_id}, priority {vm.priority.describe()})" for vm in gone]
        raise StaleRegistrations(changes, (), (), (gone[0].vm_uuid, gone[0].config, None),
                                 unregistered_since=[vm.vm_uuid for vm in gone])


def _register(store: Store, plan: RegistrationPlan) -> tuple[list[VM], tuple[VM, ...]]:
    """Register the plan's VMs, and the VMs skipped: each pass is one transaction, all of its VMs or none,
    and a pass that finds only VMs to skip (registered since as their rows ask) leaves them out of the next,
    so there are at most as many passes as VMs."""
    todo = list(range(len(plan.vms)))
    skipped: list[VM] = []
    while todo:
        try:
            registered = vms.db_register_many(store, [_registration(plan.vms[index]) for index in todo])
            return registered, tuple(skipped)
        except InvalidRows as refused:
            # db_register_many numbers the VMs of this pass from 1
            found = _why_refused(store, plan, {todo[cast(int, problem.row) - 1]: problem.error for problem in refused.problems})
            if found.input:
                # the person knows the rows of their file, as the plan shows them
                raise InvalidRows([RowProblem(plan.rows[index], error) for index, error in found.input]) from refused
            if found.stale:
                raise found.stale_error() from refused
        skipped += [vm for _, vm in found.skip]
        todo = [index for index in todo if index not in {index for index, _ in found.skip}]
    return [], tuple(skipped)


def _registration(vm: VM) -> Registration:
    return Registration(vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority, vm.vm_id)


@attrs.define
class _Refusal:
    """Why db_register_many refused a plan's VMs (by their index in the plan): the rows' own input (a vm_id
    a row gave, now taken), changes made since the plan (each a phrase for StaleRegistrations), or VMs to
    skip (registered since as their rows ask, with on_existing="skip")."""

    input: list[tuple[int, VgpuError]] = attrs.Factory(list)
    stale: list[str] = attrs.Factory(list)
    registered_since: list[str] = attrs.Factory(list)
    vm_ids_taken: list[int] = attrs.Factory(list)
    first: tuple[str, object, object] | None = None
    skip: list[tuple[int, VM]] = attrs.Factory(list)

    def stale_error(self) -> StaleRegistrations:
        assert self.first is not None
        return StaleRegistrations(self.stale, self.registered_since, self.vm_ids_taken, self.first)


def _why_refused(store: Store, plan: RegistrationPlan, errors: dict[int, VgpuError]) -> _Refusal:
    found = _Refusal()
    chosen = set(plan.chosen_vm_ids)
    with store.reading() as conn:
        now = vms.select_registered(conn, [plan.vms[index].vm_uuid for index in errors])
    for index in sorted(errors):
        vm, error = plan.vms[index], errors[index]
        current = now.get(vm.vm_uuid)
        if current is not None:  # registered since the plan (its vm_id conflicts, if any, are beside the point)
            if plan.on_existing == "skip" and _as_asked(vm, current, vm.vm_uuid in chosen):
                found.skip.append((index, current))
                continue
            found.stale.append(f"{vms.holder_text(vm.vm_uuid, vm.vm_name)} is registered now (vm_id {current.vm_id}, "
                               f"pool {current.pool_id}, priority {current.priority.describe()})")
            found.registered_since.append(vm.vm_uuid)
        elif isinstance(error, Conflict) and error.field == "vm_id" and vm.vm_uuid in chosen:
            found.stale.append(f"vm_id {vm.vm_id}, which the plan gave {vms.holder_text(vm.vm_uuid, vm.vm_name)}, "
                               f"is now used by {error.holder}")
            found.vm_ids_taken.append(vm.vm_id)
        else:
            found.input.append((index, error))
            continue
        if found.first is None:
            found.first = (vm.vm_uuid, vm.config, None if current is None else current.config)
    return found


def _as_asked(planned: VM, current: VM, vm_id_chosen: bool) -> bool:
    """Whether a VM registered since the plan has what its row asks: the pool and priority, and the vm_id
    unless the plan chose it (the row gave none: whoever registered it had it chosen too)."""
    return (current.pool_id, current.priority) == (planned.pool_id, planned.priority) and (vm_id_chosen or current.vm_id == planned.vm_id)


@one_fleet_operation
def write_segments(store: Store, host: Hypervisor, vm_uuids: Iterable[str], *, progress: ProgressOption = lifecycle.silent,
                   concurrency: int = 4) -> tuple[list[RepairResult], list[BulkFailure]]:
    """Make each VM's segment agree with the database (read by QEMU at the VM's next boot): the journalled
    :func:`vgpu.lifecycle.repair_vm` of each, at most ``concurrency`` at a time, each worker with its own
    connections. One VM's failure does not stop the others. Over a fleet, a host that stops answering part
    way is not asked again in the call: its VMs not begun yet are failures saying so (:func:`vgpu.bulk.not_begun`).

    ``progress`` as for :func:`vgpu.bulk.apply_many` (a callback, or ``"auto"``). An interrupt stops the
    writing: none is begun after it, and :class:`vgpu.errors.BulkInterrupted` is raised with a partial
    :class:`RegistrationResult` (its ``not_started`` are the VMs still to write)."""
    _check_uuid_list(vm_uuids)
    return _write_segments(store, host, [_canonical(uuid) for uuid in vm_uuids], progress, concurrency)


def _check_uuid_list(vm_uuids: object) -> None:
    """write_segments' ``vm_uuids``: a collection of UUIDs, not one UUID (it would be written as its 36
    characters), nor None or a number (a bare TypeError from deep inside), nor bytes (a failure per byte)."""
    if isinstance(vm_uuids, str):
        raise InvalidValue("vm_uuids", vm_uuids, "a list of VM UUIDs",
                           sentence=f"write_segments() takes a list of VM UUIDs, not one UUID: write_segments([{vm_uuids!r}])")
    if not isinstance(vm_uuids, abc.Iterable) or isinstance(vm_uuids, (bytes, bytearray)):
        kind = type(vm_uuids).__name__
        got = "None" if vm_uuids is None else f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
        raise InvalidValue("vm_uuids", vm_uuids, "a list of VM UUIDs", sentence=f"write_segments() takes a list of VM UUIDs, not {got}")


_STILL_TO_WRITE = " (registered, their segments not written yet: write_segments(store, host, partial.not_started) writes them)"


def _write_segments(store: Store, host: Hypervisor, uuids: list[str], progress: ProgressOption, concurrency: int, *,
                    began: Callable[[], object] | None = None) -> tuple[list[RepairResult], list[BulkFailure]]:
    """write_segments of these UUIDs (the database's spelling); ``began`` as for :func:`vgpu.workers.run`."""

    def write(worker_store: Store, worker_host: Hypervisor, index: int, report: ProgressCallback) -> RepairResult:
        _not_begun(worker_store, worker_host, uuids[index])
        report(Progress(uuids[index], "writing-segment", f"Writing the vgpu segment of VM {uuids[index]}"))
        return lifecycle.repair_vm(worker_store, worker_host, uuids[index])

    outcome = workers.run(store, host, uuids, write, concurrency=concurrency, progress=progress, description="Writing segments",
                          began=began)
    written = [outcome.results[index] for index in sorted(outcome.results)]
    failures = [BulkFailure(uuids[index], error) for index, error in sorted(outcome.failures.items())]
    if outcome.interrupted:
        cut, not_started = tuple(uuids[i] for i in outcome.cut), tuple(uuids[i] for i in outcome.not_started)
        under_way = tuple(uuids[i] for i in outcome.under_way)
        partial = RegistrationResult(_registered_among(store, uuids), tuple(written), tuple(failures), cut, not_started,
                                     under_way=under_way)
        raise BulkInterrupted(partial, workers.interrupted_sentence(
            len(written), len(failures), len(cut), len(not_started), _STILL_TO_WRITE, under_way=len(under_way),
        )) from outcome.interrupt
    return written, failures


def _not_begun(store: Store, host: Hypervisor, vm_uuid: str) -> None:
    """Over a fleet, a VM whose host (as last found, or last seen) stopped answering earlier in this call is not
    begun (:func:`vgpu.bulk.not_begun`): nothing journalled, the host not asked again, as apply_many does."""
    if not isinstance(host, Fleet):
        return
    label = host.last_known_label(vm_uuid) or next(iter(bulk.last_seen_of(store, host, vm_uuid)), None)
    unreached = host.unreached_error(label) if label is not None else None
    if unreached is not None:
        raise bulk.not_begun(vm_uuid, label or "", unreached, "write its segment again (write_segments, or repair-vm)")


def _canonical(vm_uuid: str) -> str:
    """The UUID as the database has it, so results name each VM once; a bad one as given (repair_vm refuses
    it, a failure of that VM's)."""
    try:
        return values.parse_uuid(vm_uuid)
    except InvalidValue:
        return vm_uuid


def _registered_among(store: Store, uuids: list[str]) -> tuple[VM, ...]:
    """The registered VMs of ``uuids``, in their order: the rows of an interrupted write's partial result,
    every VM with its outcome (register_planned puts the VMs it registered in their place)."""
    with store.reading() as conn:
        by_uuid = vms.select_registered(conn, uuids)
    return tuple(by_uuid[uuid] for uuid in uuids if uuid in by_uuid)

"""Reconfiguring many VMs at once (notebooks): one plan, one confirmation, bounded concurrency.

Each VM still goes through the full journalled cycle of :func:`vgpu.lifecycle.apply_plan`; the batch only
shares the planning (one host listing for every power state) and the confirmation, and runs up to
``concurrency`` VMs side by side, each worker with its own DB connection and host connection.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Callable, Iterable, Mapping

import attrs

from . import journal, lifecycle, tables, vms
from .errors import Conflict, InvalidRows, InvalidValue, NotFound, RowProblem, VgpuError
from .hypervisor.base import Hypervisor, args_quoted
from .lifecycle import DEFAULT_POLICY, ProgressCallback, ReconfigurePlan, ReconfigureResult, StopPolicy
from .models import HostVM, PowerState
from .rows import Header, Layout, blank, labelled, row_name
from .store import Store

# The columns of a change: vm_uuid (or uuid), then any of pool (or pool_id), priority, vm_id; in any case and
# with spaces around them, as for register_many (see vgpu.rows). The VM's name and the columns records() adds
# for reading are read past, so a result's records are a batch of changes as they are (no name is changed).
CHANGE_HEADER = Header(
    {"vm_uuid": 0, "uuid": 0, "pool": 1, "pool_id": 1, "priority": 2, "vm_id": 3}, ("VM UUID", "pool", "priority", "vm_id"),
    ignored=tables.OUTPUT_COLUMNS | {"vm_name"},
)


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many VMs it holds
class BulkPlan(tables.Tabular):
    _view = tables.bulk_plan_view

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
    _view = tables.bulk_result_view

    results: tuple[ReconfigureResult, ...]
    failures: tuple[BulkFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


def _change_of(store: Store, values: tuple, layout: Layout) -> vms.ChangePlan | None:
    """One row's change. A blank cell keeps the current value; a row whose every change cell is blank keeps
    the VM as it is (a no-op, or nothing at all for a VM that is not registered: a scan's row of an
    unregistered VM), but a row without any change column is refused: it says nothing."""
    uuid, pool, priority, vm_id = values[0], *(None if blank(value) else value for value in values[1:])
    if pool is None and priority is None and vm_id is None and any(map(layout.has, (1, 2, 3))):
        vm = vms.find(store, uuid)
        return None if vm is None else vms.ChangePlan(vm, vm.config)
    return vms.plan_change(store, uuid, pool, priority, vm_id)


def reconfigure_plan(change: vms.ChangePlan, listed: Mapping[str, HostVM], locked: Mapping[str, journal.Operation],
                     quoted: bool = False) -> ReconfigurePlan:
    """A database change made a plan of the cycle on the host, as plan_reconfigure does: the VM must be on
    the host (``listed``, from one listing), running or halted, and not locked by an open operation. The
    plan carries the VM's stored args and what it booted with, so an unchanged row restarts only a VM
    known to be pending."""
    uuid = change.vm.vm_uuid
    host_vm = listed.get(uuid)
    if host_vm is None:
        raise NotFound("VM", uuid, "the host has no such VM")
    lifecycle.check_power_state(uuid, host_vm.power_state)
    if uuid in locked:
        raise journal.busy_error(locked[uuid])
    booted = host_vm.booted_args if host_vm.power_state is PowerState.RUNNING else None
    return ReconfigurePlan(change.vm, change.new, host_vm.power_state, host_vm.device_model_args, booted,
                           args_quoted=quoted)


def plan_many(store: Store, host: Hypervisor, changes: Iterable[Mapping[str, object]] | Mapping[object, Mapping[str, object]]) -> BulkPlan:
    """Validate every change (``vm_uuid`` plus any of ``pool``, ``priority``, ``vm_id``) against the DB and
    one host listing. Raises InvalidRows naming every bad row; changes nothing.

    Keys are read as for :func:`vgpu.vms.db_register_many` (any case, ``uuid`` for ``vm_uuid``, ``pool_id``
    for ``pool``); any other key, or one field under two keys, is a bad row, except ``vm_name`` and the
    columns records() adds for reading, so any result's records go back in as they are. A blank cell (None,
    empty, spaces, NaN) keeps the VM's current value. Rows are a list (numbered from 1 in problems), a pandas
    DataFrame or a mapping of label to row (``df.to_dict("index")``), whose labels problems name."""
    rows, labels = labelled(changes)
    name = row_name(labels)
    listed = {host_vm.uuid: host_vm for host_vm in host.list_vms()}
    taken = {vm.vm_id: vm.vm_uuid for vm in vms.list_vms(store)}
    locked = {op.vm_uuid: op for op in journal.unfinished(store)}  # as plan_reconfigure: refuse before asking
    read = CHANGE_HEADER.reader()
    plans, problems, seen = [], [], {}
    for row, item in enumerate(rows, start=1):
        if not isinstance(item, Mapping):  # a bad row is reported with the others, not an AttributeError
            problems.append(RowProblem(row, InvalidValue("row", item, "a mapping with vm_uuid and any of pool, priority, vm_id")))
            continue
        values, column_errors, layout = read(item)
        if column_errors:
            problems.extend(RowProblem(row, error) for error in column_errors)
            continue
        try:
            change = _change_of(store, values, layout)
            if change is None:
                continue
            uuid = change.vm.vm_uuid
            if uuid in seen:
                raise Conflict("VM UUID", uuid, f"row {name(seen[uuid])} of this batch")
            holder = taken.get(change.new.vm_id)
            if holder not in (None, uuid):
                raise Conflict("vm_id", change.new.vm_id, f"VM {holder}")
            plan = reconfigure_plan(change, listed, locked, args_quoted(host))
        except VgpuError as error:
            problems.append(RowProblem(row, error))
            continue
        seen[uuid] = row
        plans.append(plan)
    new_ids = collections.Counter(plan.new.vm_id for plan in plans)
    for row_plan in plans:
        if new_ids[row_plan.new.vm_id] > 1:
            problems.append(RowProblem(seen[row_plan.vm_uuid], Conflict("vm_id", row_plan.new.vm_id, "another row of this batch")))
    if problems:
        raise InvalidRows([RowProblem(name(p.row), p.error) for p in sorted(problems, key=lambda p: p.row)])
    return BulkPlan(tuple(plans))


def apply_many(
    store: Store,
    host: Hypervisor,
    bulk: BulkPlan,
    *,
    progress: ProgressCallback = lifecycle.silent,
    policy: StopPolicy = DEFAULT_POLICY,
    concurrency: int = 4,
) -> BulkResult:
    """Apply a confirmed bulk plan. One VM's failure (rolled back as usual) does not stop the others.
    ``progress`` is called from worker threads. An interrupt (KeyboardInterrupt) stops the batch: VMs not
    yet begun are left alone, those under way finish their cycle, then it is raised."""
    if concurrency < 1:
        raise InvalidValue("concurrency", concurrency, "a whole number of at least 1")
    local = threading.local()
    opened: list[tuple[Store, Hypervisor]] = []
    lock = threading.Lock()

    def connections() -> tuple[Store, Hypervisor]:
        if not hasattr(local, "pair"):
            local.pair = (store.reopen(), host.reopen())
            with lock:
                opened.append(local.pair)
        return local.pair

    def one(plan: ReconfigurePlan) -> ReconfigureResult:
        worker_store, worker_host = connections()
        return lifecycle.apply_plan(worker_store, worker_host, plan, progress=progress, policy=policy)

    results, failures = [], []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vgpu-bulk")
    try:
        futures = {pool.submit(one, plan): plan for plan in bulk.changing}
        for future in concurrent.futures.as_completed(futures):
            try:
                results.append(future.result())
            except Exception as error:  # a bug in one VM's cycle (rolled back) must not hide the others' outcomes
                failures.append(BulkFailure(futures[future].vm_uuid, error, futures[future]))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # begin no more VMs; the cycles under way run to their end
        raise
    finally:
        pool.shutdown(wait=True)
        for worker_store, worker_host in opened:
            worker_store.close()
            worker_host.close()
    order = {plan.vm_uuid: index for index, plan in enumerate(bulk.plans)}
    results.sort(key=lambda result: order[result.vm.vm_uuid])
    failures.sort(key=lambda failure: order[failure.vm_uuid])
    return BulkResult(tuple(results), tuple(failures))


def reconfigure_many(
    store: Store,
    host: Hypervisor,
    changes: Iterable[Mapping[str, object]],
    *,
    confirm: Callable[[BulkPlan], bool],
    progress: ProgressCallback = lifecycle.silent,
    policy: StopPolicy = DEFAULT_POLICY,
    concurrency: int = 4,
) -> BulkResult:
    """Plan every change, ask once, then apply with at most ``concurrency`` VMs at a time."""
    bulk = plan_many(store, host, changes)
    if not bulk.changing:
        return BulkResult((), ())
    lifecycle.ask(confirm, bulk)
    return apply_many(store, host, bulk, progress=progress, policy=policy, concurrency=concurrency)

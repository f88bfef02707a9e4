"""Bulk reconfigure for notebooks: one plan naming every bad row, one confirmation, bounded concurrency."""

from __future__ import annotations

import json
import pickle
import threading

import pytest

from vgpu import bulk, convert, devargs, journal, lifecycle, recovery, vms
from vgpu.errors import (
    Busy,
    Cancelled,
    Conflict,
    HostUnreachable,
    HypervisorError,
    InvalidColumns,
    InvalidRows,
    InvalidValue,
    NotFound,
    NotRows,
    ReconfigureFailed,
)
from vgpu.hypervisor import codes
from vgpu.models import PowerState

from .lifekit import Advising, Blind, FailingProgress, Raising, config, hand_over, vm_uuid
from .test_register_many import FakeFrame


def test_plan_many_reports_every_bad_row_and_changes_nothing(world, four):
    paused = world.add(5, "paused", config("B", 0, 5))
    not_on_host = world.add(6, "halted", config("B", 0, 6))
    world.sim.remove_vm(not_on_host)
    unregistered = vm_uuid(7)
    world.sim.add_vm(unregistered, "stranger", "running")
    before = world.tables()
    rows = [
        {"vm_uuid": four[0], "pool": "B"},                     # 1 fine
        {"vm_uuid": vm_uuid(99), "pool": "B"},                 # 2 unknown UUID
        {"vm_uuid": unregistered, "pool": "B"},                # 3 on the host, not registered
        {"vm_uuid": four[1], "vm_id": 3},                      # 4 vm_id held by another VM
        {"vm_uuid": four[2], "vm_id": 50},                     # 5 } the same new vm_id
        {"uuid": four[3], "vm_id": 50},                        # 6 } twice in the batch
        {"vm_uuid": four[0], "priority": "low"},               # 7 the same VM twice
        {"vm_uuid": four[1], "pool": "C"},                     # 8 bad pool
        {"vm_uuid": four[1], "priority": "urgent"},            # 9 bad priority
        {"vm_uuid": four[1], "vm_id": 0},                      # 10 bad vm_id
        {"vm_uuid": "not-a-uuid", "pool": "A"},                # 11 bad UUID
        {"vm_uuid": paused, "pool": "A"},                      # 12 paused
        {"vm_uuid": not_on_host, "pool": "A"},                 # 13 registered, gone from the host
        {"vm_uuid": four[1]},                                  # 14 nothing to change
        "B",                                                   # 15 not a row at all
    ]
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, rows)
    problems = {p.row: p.error for p in caught.value.problems}
    assert sorted(problems) == list(range(2, 16))
    assert [p.row for p in caught.value.problems] == sorted(p.row for p in caught.value.problems)
    assert isinstance(problems[2], NotFound) and isinstance(problems[3], NotFound)
    assert isinstance(problems[4], Conflict) and problems[4].value == 3
    assert str(problems[4]) == f"vm_id 3 is already used by VM vm-3 ({four[2]})"  # as register names the holder
    assert str(problems[5]) == "vm_id 50 is already used by row 6 of this batch"  # each names the other
    assert str(problems[6]) == "vm_id 50 is already used by row 5 of this batch"
    assert isinstance(problems[7], Conflict) and "row 1" in str(problems[7])
    assert all(isinstance(problems[row], InvalidValue) for row in (8, 9, 10, 11, 14, 15))
    assert isinstance(problems[12], HypervisorError) and problems[12].code == codes.VM_BAD_POWER_STATE
    assert isinstance(problems[13], NotFound) and "host has no such VM" in str(problems[13])
    assert str(caught.value).startswith("14 bad rows, nothing was changed: row 2:")
    assert world.tables() == before


def test_plan_many_refuses_a_vm_in_a_state_its_host_has_advice_for_with_that_advice(world, four):
    """libvirt's "suspended" is a managed save image, which "resume it" does not free: a bulk plan's refusal
    takes the host's own words, as a single change's does."""
    saved = world.add(5, "suspended", config("B", 0, 5))
    paused = world.add(6, "paused", config("B", 0, 6))
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, Advising(world.sim), [{"vm_uuid": saved, "pool": "A"}, {"vm_uuid": paused, "pool": "A"}])
    first, second = (str(problem.error) for problem in caught.value.problems)
    assert first == f"VM {saved} is suspended; {Advising.ADVICE}"
    assert second == f"VM {paused} is paused; resume it or shut it down first, then try again"  # no advice of its own


def test_plan_many_refuses_an_unknown_column_instead_of_ignoring_it(world, four):
    before = world.tables()
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, [{"vm_uuid": four[0], "pool": "B"}, {"vm_uuid": four[1], "pool": "B", "prio": "high"}])
    [problem] = caught.value.problems
    assert problem.row == 2 and (problem.error.field, problem.error.value) == ("column", "prio")
    assert str(problem.error) == "invalid column 'prio': expected pool, pool_id, priority, uuid, vm_id or vm_uuid"
    assert world.tables() == before


@pytest.mark.parametrize(("row", "keys"), [
    pytest.param({"uuid": "U0", "vm_uuid": "U1", "pool": "B"}, ("uuid", "vm_uuid"), id="uuid and vm_uuid"),
    pytest.param({"vm_uuid": "U0", "pool": "A", "pool_id": "B"}, ("pool", "pool_id"), id="pool and pool_id"),
    pytest.param({"vm_uuid": "U0", "priority": "low", "Priority ": "high"}, ("priority", "Priority "), id="two once normalised"),
])
def test_plan_many_refuses_one_field_under_two_keys(world, four, row, keys):
    row = {key: four[int(value[1])] if value in ("U0", "U1") else value for key, value in row.items()}
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, [row])
    [problem] = caught.value.problems
    assert isinstance(problem.error, InvalidColumns) and problem.error.columns == keys
    assert str(problem.error).startswith(f"columns {keys[0]!r} and {keys[1]!r} both give the ")


def test_plan_many_takes_a_blank_cell_as_keep_the_current_value(world, four):
    nan = float("nan")
    plan = bulk.plan_many(world.store, world.sim, [
        {"vm_uuid": four[0], "pool": "B", "priority": "", "vm_id": None},
        {"vm_uuid": four[1], "pool": nan, "priority": "high", "vm_id": "  "},
        {"vm_uuid": four[2], "pool": None, "priority": nan, "vm_id": 30},
        {"vm_uuid": four[3], "pool": "", "priority": None, "vm_id": nan},  # every cell blank: keeps the VM as it is
    ])
    assert [plan.new for plan in plan.plans] == [config("B", 1, 1), config("A", 2, 2), config("A", 1, 30), config("A", 1, 4)]
    assert [p.vm_uuid for p in plan.changing] == four[:3]


def test_plan_many_reads_headers_in_any_case_and_refuses_a_dataframe(world, four):
    plan = bulk.plan_many(world.store, world.sim, [{"\ufeffVM_UUID": four[0], " Pool ": "b", "PRIORITY": "HIGH"}])
    assert plan.plans[0].new == config("B", 2, 1)
    frame = FakeFrame([{"vm_uuid": four[0], "pool": "B"}])
    with pytest.raises(NotRows, match=r'pass df\.to_dict\("records"\)'):
        bulk.plan_many(world.store, world.sim, frame)


def test_plan_many_says_what_would_restart(world, four):
    plan = bulk.plan_many(world.store, world.sim, [
        {"vm_uuid": four[0], "pool": "B"}, {"vm_uuid": four[1], "priority": "high"}, {"vm_uuid": four[2], "pool": "A"},
    ])
    assert [p.vm_uuid for p in plan.plans] == four[:3]
    assert plan.restarts == 1
    assert [p.vm_uuid for p in plan.changing] == four[:2]


def test_a_row_with_the_values_a_pending_vm_has_restarts_it_into_them(world, four):
    vms.db_update(world.store, four[0], vm_id=11)  # VM 1: registered with vm_id 11, running with vm_id 1
    lifecycle.repair_vm(world.store, world.sim, four[0])
    rows = [{"vm_uuid": four[0], "vm_id": 11}, {"vm_uuid": four[2], "pool": "A"}]
    plan = bulk.plan_many(world.store, world.sim, rows)
    assert [(p.pending, p.needs_restart) for p in plan.plans] == [(True, True), (False, False)]
    assert [p.vm_uuid for p in plan.changing] == [four[0]] and plan.restarts == 1
    result = bulk.apply_many(world.store, world.sim, plan)
    assert [(r.vm.vm_uuid, r.restarted) for r in result.results] == [(four[0], True)]
    assert devargs.parse(world.sim.boots(four[0])[-1]).config == config("A", 1, 11)
    # A host that cannot tell what booted: an unchanged row leaves the VM alone (apply_vm restarts it).
    assert bulk.plan_many(world.store, Blind(world.sim), rows).changing == []


def test_reconfigure_many_asks_once_and_applies_all(world, four):
    asked = []
    result = bulk.reconfigure_many(
        world.store, world.sim,
        [{"vm_uuid": uuid, "pool": "B", "priority": "high"} for uuid in four],
        confirm=lambda plan: asked.append(plan) or True,
    )
    assert len(asked) == 1 and len(asked[0].plans) == 4
    assert result.ok and [r.vm.vm_uuid for r in result.results] == four
    for number, uuid in enumerate(four, start=1):
        assert world.config(uuid) == config("B", 2, number)
        assert world.args(uuid) == devargs.merge(f"-vnc :{number}", config("B", 2, number))
        assert world.power(uuid) is (PowerState.RUNNING if number % 2 else PowerState.HALTED)
    assert [r.restarted for r in result.results] == [True, False, True, False]
    assert world.open_ops() == []


def test_workers_overlap_but_never_exceed_the_concurrency(world):
    uuids = [world.add(n, "running", config("A", 1, n)) for n in range(1, 7)]
    world.sim.set_latency("clean_shutdown", 0.3)
    lock, in_flight, peak, threads = threading.Lock(), set(), [0], set()

    def progress(event):
        with lock:
            threads.add(threading.current_thread().name)
            if event.step == "stopping":
                in_flight.add(event.vm_uuid)
            elif event.step == "started":
                in_flight.discard(event.vm_uuid)
            peak[0] = max(peak[0], len(in_flight))

    result = bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": u, "priority": "low"} for u in uuids],
                                   confirm=lambda plan: True, progress=progress, concurrency=2)
    assert result.ok
    assert 1 < peak[0] <= 2
    assert len({name for name in threads if name.startswith("vgpu-bulk")}) == 2
    assert all(world.agrees(u) and world.power(u) is PowerState.RUNNING for u in uuids)


def test_one_vm_failing_to_start_is_rolled_back_while_the_others_succeed(world, four):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", four[2])
    result = bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four],
                                   confirm=lambda plan: True)
    assert not result.ok
    (failure,) = result.failures
    assert failure.vm_uuid == four[2]
    assert isinstance(failure.error, ReconfigureFailed) and failure.error.rolled_back
    assert world.config(four[2]) == config("A", 1, 3) and world.agrees(four[2])
    assert world.power(four[2]) is PowerState.RUNNING
    assert [r.vm.vm_uuid for r in result.results] == [four[0], four[1], four[3]]
    assert all(world.config(u).pool_id == "B" and world.agrees(u) for u in (four[0], four[1], four[3]))
    assert world.open_ops() == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_progress_callback_that_raises_does_not_derail_the_batch(world, four, concurrency):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four])
    progress = FailingProgress()
    with pytest.warns(RuntimeWarning, match="the progress callback failed"):
        result = bulk.apply_many(world.store, world.sim, plan, progress=progress, concurrency=concurrency)
    assert result.ok and [r.vm.vm_uuid for r in result.results] == four
    for number, uuid in enumerate(four, start=1):
        assert world.config(uuid) == config("B", 1, number) and world.agrees(uuid)
        assert world.power(uuid) is (PowerState.RUNNING if number % 2 else PowerState.HALTED)
    assert {event.step for event in progress.events} == {"stopping", "stopped", "updating", "starting", "started", "finished"}
    assert world.open_ops() == []


def test_an_unexpected_exception_for_one_vm_is_rolled_back_and_reported_with_the_others(world, four):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four])
    host = Raising(world.sim, "set_device_model_args", RuntimeError("backend bug"), four[2])
    result = bulk.apply_many(world.store, host, plan, concurrency=2)
    (failure,) = result.failures
    assert failure.vm_uuid == four[2] and isinstance(failure.error, RuntimeError)
    assert failure.message == "internal error: RuntimeError: backend bug"
    [dumped] = json.loads(json.dumps(convert.to_data(result)))["failures"]
    assert (dumped["vm_uuid"], dumped["error"]) == (four[2], {"error": "RuntimeError", "message": "backend bug",
                                                              "notes": failure.error.__notes__})  # what became of the VM
    assert (dumped["plan"]["vm"]["pool_id"], dumped["plan"]["new"]["pool_id"]) == ("A", "B")  # what was attempted
    assert "rolled back" in failure.error.__notes__[0]
    assert world.config(four[2]) == config("A", 1, 3) and world.agrees(four[2])
    assert world.power(four[2]) is PowerState.RUNNING
    assert [r.vm.vm_uuid for r in result.results] == [four[0], four[1], four[3]]
    assert all(world.config(u).pool_id == "B" and world.agrees(u) for u in (four[0], four[1], four[3]))
    assert world.open_ops() == []


def test_an_interrupt_stops_the_batch_and_leaves_the_vm_it_cut_to_recover(world, four):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four])

    def progress(event):
        if event.vm_uuid == four[0] and event.step == "updating":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bulk.apply_many(world.store, world.sim, plan, progress=progress, concurrency=1)
    (op,) = world.open_ops()
    assert op.vm_uuid == four[0] and op.interrupted
    for number, uuid in enumerate(four[1:], start=2):  # each of the others: not begun, or done in full
        assert world.config(uuid) in (config("A", 1, number), config("B", 1, number)) and world.agrees(uuid)
        assert world.power(uuid) is (PowerState.RUNNING if number % 2 else PowerState.HALTED)
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["rolled-back"]
    assert world.config(four[0]) == config("A", 1, 1) and world.agrees(four[0])
    assert world.power(four[0]) is PowerState.RUNNING
    assert world.open_ops() == []


@pytest.mark.parametrize("answer", [False, None, "raise"])
def test_cancel_changes_nothing(world, four, answer):
    before = world.tables(), [world.host_picture(u) for u in four]

    def confirm(plan):
        if answer == "raise":
            raise EOFError("end of input")
        return answer

    with pytest.raises(Cancelled):
        bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four], confirm=confirm)
    assert (world.tables(), [world.host_picture(u) for u in four]) == before
    assert world.open_ops() == []


def test_a_batch_of_no_ops_asks_nothing(world, four):
    asked = []
    result = bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": four[0], "pool": "A"}],
                                   confirm=lambda plan: asked.append(plan) or True)
    assert asked == [] and result.results == () and result.ok


def test_concurrency_below_one_is_refused(world, four):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": four[0], "pool": "B"}])
    with pytest.raises(InvalidValue):
        bulk.apply_many(world.store, world.sim, plan, concurrency=0)
    assert world.config(four[0]) == config("A", 1, 1)


def test_a_vm_changed_since_the_plan_fails_alone_and_the_rest_apply(world, four):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "priority": "high"} for u in four[:2]])
    lifecycle.reconfigure_vm(world.store, world.sim, four[0], priority="low", confirm=lambda p: True)
    result = bulk.apply_many(world.store, world.sim, plan)
    (failure,) = result.failures
    assert failure.vm_uuid == four[0] and isinstance(failure.error, Conflict)
    assert world.config(four[0]) == config("A", 0, 1)
    assert world.config(four[1]) == config("A", 2, 2)


def test_a_result_with_failures_and_a_refused_plan_are_json_ready(world, four):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", four[2])
    result = bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four], confirm=lambda plan: True)
    data = json.loads(json.dumps(convert.to_data(result)))
    [failure] = data["failures"]
    assert failure["vm_uuid"] == four[2] and failure["error"]["error"] == "ReconfigureFailed"
    assert failure["error"]["message"] == str(result.failures[0].error)
    with pytest.raises(InvalidRows) as refused:
        bulk.plan_many(world.store, world.sim, [{"vm_uuid": four[0], "pool": "C"}, {"vm_uuid": "x"}])
    data = json.loads(json.dumps(convert.to_data(refused.value)))
    assert data["error"] == "InvalidRows" and [(p["row"], p["error"], p["field"]) for p in data["problems"]] == [
        (1, "InvalidValue", "pool"), (2, "InvalidValue", "VM UUID")]


def test_plan_many_refuses_a_vm_another_session_is_changing_before_anyone_confirms(world, four):
    with world.store.writing() as conn:
        op = journal.begin(conn, four[1], "reconfigure", vms.select_vm(conn, four[1]), config("B", 1, 2), False)
        hand_over(conn, op.op_id)
    with pytest.raises(InvalidRows) as refused:
        bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in four])
    [problem] = refused.value.problems
    assert problem.row == 2 and isinstance(problem.error, Busy) and problem.error.operation_id == op.op_id


def test_a_large_batch_with_two_rows_wanting_one_vm_id_names_both(world):
    uuids = [world.add(n, "halted", config("A", 1, n)) for n in range(1, 401)]
    changes = [{"vm_uuid": u, "vm_id": 1000 + n} for n, u in enumerate(uuids)]
    changes[399]["vm_id"] = changes[0]["vm_id"]
    with pytest.raises(InvalidRows) as refused:
        bulk.plan_many(world.store, world.sim, changes)
    assert [(p.row, str(p.error)) for p in refused.value.problems] == [
        (1, "vm_id 1000 is already used by row 400 of this batch"), (400, "vm_id 1000 is already used by row 1 of this batch")]
    changes[5]["vm_id"] = 1000  # three rows: each names both others
    labelled = {f"vm{n}": change for n, change in enumerate(changes)}
    with pytest.raises(InvalidRows) as refused:
        bulk.plan_many(world.store, world.sim, labelled)
    assert [str(p) for p in refused.value.problems] == [
        "row vm0: vm_id 1000 is already used by row vm5 and row vm399 of this batch",
        "row vm5: vm_id 1000 is already used by row vm0 and row vm399 of this batch",
        "row vm399: vm_id 1000 is already used by row vm0 and row vm5 of this batch"]
    for n in (10, 20, 30):
        changes[n]["vm_id"] = 1000  # six rows: a sentence names three others and counts the rest
    with pytest.raises(InvalidRows) as refused:
        bulk.plan_many(world.store, world.sim, changes)
    assert str(refused.value.problems[-1].error) == "vm_id 1000 is already used by row 1, row 6, row 11 and 2 more rows of this batch"


def test_plan_many_on_a_host_that_is_down_raises_host_unreachable_not_a_bad_row_each(world, four):
    # As plan_registrations does: the rows are not bad, the host is; `except HostUnreachable` must catch it.
    world.sim.set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable):
        bulk.plan_many(world.store, world.sim, [{"vm_uuid": uuid, "pool": "B"} for uuid in four])


def test_plan_many_refuses_a_vm_id_an_unfinished_change_may_give_its_vm(world, four):
    # four[0] (vm_id 1) is being moved to vm_id 50 by another session: both ids are its until that ends.
    with world.store.writing() as conn:
        op = journal.begin(conn, four[0], "reconfigure", vms.select_vm(conn, four[0]), config("A", 1, 50), True)
        hand_over(conn, op.op_id)
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, [{"vm_uuid": four[1], "vm_id": 50}])
    assert str(caught.value.problems[0].error) == f"vm_id 50 is already used by the unfinished change of VM vm-1 ({four[0]})"



def test_a_row_repeating_a_refused_row_is_named_as_a_repeat(world, four):
    # Row 1 is refused (vm_id 2 is VM 2's), yet it names VM 1: row 2 naming VM 1 again is a repeat, as it is
    # after a good row, not the VM's change. A UUID that cannot be read names no VM, so matches none.
    rows = [{"vm_uuid": four[0], "vm_id": 2}, {"vm_uuid": four[0].upper(), "pool": "B"},
            {"vm_uuid": "not-a-uuid", "pool": "B"}, {"vm_uuid": four[2], "pool": "C"}, {"vm_uuid": four[2], "pool": "B"}]
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, rows)
    assert [(p.row, type(p.error).__name__) for p in caught.value.problems] == [
        (1, "Conflict"), (2, "Conflict"), (3, "InvalidValue"), (4, "InvalidValue"), (5, "Conflict")]
    assert str(caught.value.problems[1].error) == f"VM UUID {four[0]} is already used by row 1 of this batch"
    assert str(caught.value.problems[4].error) == f"VM UUID {four[2]} is already used by row 4 of this batch"
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, {"web": rows[0], "again": rows[1]})
    assert str(caught.value.problems[1]) == f"row again: VM UUID {four[0]} is already used by row web of this batch"


def test_a_row_asking_for_the_vm_id_of_a_refused_row_is_named_as_a_repeat(world, four):
    # Row 1 is refused (its pool), yet it asks for vm_id 50: row 2 asking for it too is a repeat, not its change.
    # So is a row whose UUID cannot be read (row 3). A VM keeping its own vm_id repeats no row (row 6).
    fifth = world.add(5, "running", config("B", 0, 5))
    rows = [{"vm_uuid": four[0], "vm_id": 50, "pool": "Z"}, {"vm_uuid": four[1], "vm_id": "50"},
            {"vm_uuid": "not-a-uuid", "vm_id": 60}, {"vm_uuid": four[2], "vm_id": 60},
            {"vm_uuid": fifth, "vm_id": 4, "priority": "urgent"}, {"vm_uuid": four[3], "vm_id": 4, "pool": "B"}]
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, rows)
    assert [(p.row, type(p.error).__name__) for p in caught.value.problems] == [
        (1, "InvalidValue"), (2, "Conflict"), (3, "InvalidValue"), (4, "Conflict"), (5, "InvalidValue")]
    assert str(caught.value.problems[1].error) == "vm_id 50 is already used by row 1 of this batch"
    assert str(caught.value.problems[3].error) == "vm_id 60 is already used by row 3 of this batch"
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, {"web": rows[0], "again": rows[1]})
    assert str(caught.value.problems[1]) == "row again: vm_id 50 is already used by row web of this batch"
    # good rows asking for one vm_id name each other as before, whatever refused row is between them
    rows = [{"vm_uuid": four[0], "vm_id": 50}, {"vm_uuid": four[1], "vm_id": 50, "pool": "Z"}, {"vm_uuid": four[2], "vm_id": 50}]
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, rows)
    assert [(p.row, str(p.error)) for p in caught.value.problems] == [
        (1, "vm_id 50 is already used by row 3 of this batch"), (2, "invalid pool 'Z': expected A or B"),
        (3, "vm_id 50 is already used by row 1 of this batch")]


def test_a_repeated_nan_index_label_names_the_positions_of_both_rows(world, four):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"vm_uuid": [four[0], four[0]], "pool": ["B", "A"]}, index=[float("nan"), float("nan")])
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, frame)
    assert str(caught.value) == (f"1 bad row, nothing was changed: row nan (position 2): VM UUID {four[0]} is already "
                                 "used by row nan (position 1) of this batch")


def _nan_likes():
    numpy = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    return {"float": (float("nan"), float("nan")), "numpy": (numpy.float64("nan"), numpy.float32("nan")),
            "pd.NA": (pd.NA, pd.NA), "None": (None, None), "NaT": (pd.NaT, pd.NaT), "mixed": (float("nan"), None)}


@pytest.mark.parametrize("kind", ["float", "numpy", "pd.NA", "None", "NaT", "mixed"])
def test_missing_labels_repeat_whichever_kind_of_missing_they_are(kind):
    from vgpu.rows import repeated_labels, row_reference

    first, second = _nan_likes()[kind]
    labels = [first, 5, second]
    repeated = repeated_labels(labels)
    assert first in repeated and second in repeated and 5 not in repeated
    assert row_reference(labels)(3).endswith("(position 3)") and row_reference(labels)(2) == "row 5"
    assert float("nan") not in repeated_labels([float("nan"), 5])  # one missing label: nothing repeats


def test_a_repeated_index_label_names_the_positions_of_both_rows(world, four):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"vm_uuid": [four[0], four[0], four[1]], "pool": ["B", "A", "B"]}, index=[5, 5, 6])
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, frame)
    assert str(caught.value) == (f"1 bad row, nothing was changed: row 5 (position 2): VM UUID {four[0]} is already used "
                                 "by row 5 (position 1) of this batch")
    [problem] = caught.value.problems
    assert (problem.row, problem.position) == (5, 2)
    for copy in (convert.from_data(convert.to_data(caught.value), InvalidRows), pickle.loads(pickle.dumps(caught.value))):
        assert str(copy.problems[0]) == str(problem)
    # a label that does not repeat is named alone, as before
    frame = pd.DataFrame({"vm_uuid": [four[0], four[0]], "pool": ["B", "A"]}, index=[5, 6])
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, frame)
    assert str(caught.value).endswith(f"row 6: VM UUID {four[0]} is already used by row 5 of this batch")

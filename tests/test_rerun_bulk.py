"""Re-runnable bulk input: the same rows run twice (``on_existing``), a result's records() fed back in, and
problems named by the input's own row labels (a DataFrame's index)."""

from __future__ import annotations

import json

import pytest

from vgpu import audit, bulk, bulk_register, convert, pools, recovery, scan, tables, vms
from vgpu.errors import BulkInterrupted, InvalidRows, InvalidValue, NotRows, StoreError

from .interruptkit import interrupt_after, interrupt_of
from .lifekit import World, config, vm_uuid


@pytest.fixture
def world(tmp_path, store):
    world = World.create(tmp_path, store)
    world.add(1, "running", config("A", 1, 1), name="old-1")
    world.add(2, "halted", config("B", 2, 5), name="old-2")
    for number in range(10, 15):
        world.sim.add_vm(vm_uuid(number), f"new-{number}", "running" if number % 2 else "halted")
    return world


# A file that registered old-1 and old-2 the first time, with two new VMs added since.
RERUN = [
    {"uuid": vm_uuid(1), "name": "old-1", "pool": "A", "priority": "medium", "vm_id": "1"},
    {"uuid": vm_uuid(2), "name": "old-2", "pool": "B", "priority": "high", "vm_id": "5"},
    {"uuid": vm_uuid(10), "name": "new-10", "pool": "B", "priority": "low", "vm_id": ""},
    {"uuid": vm_uuid(11), "name": "new-11", "pool": "", "priority": "", "vm_id": ""},
]


def _problems(error_or_plan) -> list[tuple]:
    return [(p.row, type(p.error).__name__, str(p.error)) for p in error_or_plan.problems]


# --- on_existing ------------------------------------------------------------------------------------------


def test_a_vm_keeping_its_own_vm_id_is_not_a_conflict_with_itself(world, snapshot):
    before = snapshot()
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, RERUN)
    assert _problems(caught.value) == [
        (1, "AlreadyRegistered", f"VM {vm_uuid(1)} is already registered (vm_id 1, pool A)"),
        (2, "AlreadyRegistered", f"VM {vm_uuid(2)} is already registered (vm_id 5, pool B)"),
    ]
    assert snapshot() == before
    good, problems = vms.check_many(world.store, RERUN)
    assert sorted(good) == [3, 4] and [p.row for p in problems] == [1, 2]


def test_skip_registers_the_new_rows_and_leaves_the_registered_ones_alone(world):
    changed = dict(RERUN[1], pool="A")  # a registered VM whose row now says otherwise: skipped all the same
    registered = vms.db_register_many(world.store, [RERUN[0], changed, *RERUN[2:]], on_existing="skip")
    assert [(vm.vm_uuid, vm.pool_id, vm.vm_id) for vm in registered] == [(vm_uuid(10), "B", 2), (vm_uuid(11), "A", 3)]
    assert world.config(vm_uuid(2)) == config("B", 2, 5)
    assert vms.db_register_many(world.store, RERUN, on_existing="skip") == []  # a second re-run: nothing to do


def test_update_changes_what_the_rows_give_and_keeps_what_they_leave_blank(world):
    rows = [
        {"uuid": vm_uuid(1), "pool": "B", "priority": "", "vm_id": ""},   # moves; keeps medium and vm_id 1
        {"uuid": vm_uuid(2), "pool": "B", "priority": "high", "vm_id": "5"},  # already so: unchanged
        {"uuid": vm_uuid(10)},                                            # new
    ]
    before = len(audit.history(world.store))
    done = vms.db_register_many(world.store, rows, on_existing="update")
    assert [(vm.vm_uuid, vm.pool_id, vm.priority.label, vm.vm_id) for vm in done] == [
        (vm_uuid(1), "B", "medium", 1), (vm_uuid(10), "A", "medium", 2)]
    assert world.config(vm_uuid(1)) == config("B", 1, 1) and world.config(vm_uuid(2)) == config("B", 2, 5)
    actions = [entry.action for entry in audit.history(world.store)[: len(audit.history(world.store)) - before]]
    assert sorted(actions) == ["register", "update"]  # the unchanged row leaves no entry


def test_update_to_a_vm_id_another_vm_holds_is_a_conflict_naming_it(world, snapshot):
    before = snapshot()
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, [{"uuid": vm_uuid(1), "vm_id": 5}, {"uuid": vm_uuid(10), "vm_id": 9},
                                           {"uuid": vm_uuid(11), "vm_id": 9}], on_existing="update")
    assert _problems(caught.value) == [
        (1, "Conflict", f"vm_id 5 is already used by VM old-2 ({vm_uuid(2)})"),
        (3, "Conflict", "vm_id 9 is already used by row 2"),
    ]
    assert snapshot() == before


def test_a_new_vm_never_gets_the_vm_id_an_update_moves_to(world):
    done = vms.db_register_many(world.store, [{"uuid": vm_uuid(1), "vm_id": 2}, {"uuid": vm_uuid(10)}], on_existing="update")
    assert [(vm.vm_uuid, vm.vm_id) for vm in done] == [(vm_uuid(1), 2), (vm_uuid(10), 3)]


def test_an_unknown_on_existing_is_refused(world):
    for call in (vms.db_register_many, vms.check_many):
        with pytest.raises(InvalidValue) as caught:
            call(world.store, RERUN, on_existing="upsert")
        assert caught.value.field == "on_existing" and "error, skip or update" in str(caught.value)
    with pytest.raises(InvalidValue):
        bulk_register.plan_registrations(world.store, world.sim, RERUN, on_existing="replace")


# --- bulk registration on a host -----------------------------------------------------------------------------


def test_re_running_a_file_with_skip_reports_no_problems(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, RERUN, on_existing="skip")
    assert len(plan.problems) == 0 and plan.invalid is None
    assert [vm.vm_uuid for vm in plan.vms] == [vm_uuid(10), vm_uuid(11)] and plan.rows == (3, 4)
    assert [vm.vm_uuid for vm in plan.existing] == [vm_uuid(1), vm_uuid(2)] and plan.existing_rows == (1, 2)
    assert [(r["row"], r["action"]) for r in plan.records()] == [(1, "skip"), (2, "skip"), (3, "register"), (4, "register")]
    bulk_register.register_planned(world.store, world.sim, plan)
    again = bulk_register.plan_registrations(world.store, world.sim, RERUN, on_existing="skip")
    assert again.vms == () and len(again.existing) == 4 and len(again.problems) == 0


# A registration cut short (kill -9 or Ctrl-C) leaves its VMs registered without their segments: the same file
# run again is how an admin (or a cron loop) finishes it.
NEW = [{"uuid": vm_uuid(number), "pool": "B"} for number in (10, 11, 12)]


def _cut_short(world, rows=NEW) -> None:
    """Registered in one transaction, no segment written: where register_planned is killed before its writes."""
    vms.db_register_many(world.store, rows)
    assert not any(world.agrees(row["uuid"]) for row in rows)


@pytest.mark.parametrize("on_existing", ["skip", "update"])
def test_re_running_a_registration_cut_short_writes_the_segments_it_did_not(world, on_existing):
    _cut_short(world)
    plan = bulk_register.plan_registrations(world.store, world.sim, [*RERUN[:2], *NEW], on_existing=on_existing)
    assert plan.vms == () and len(plan.problems) == 0 and not plan.updates.plans
    assert plan.to_write == (vm_uuid(10), vm_uuid(11), vm_uuid(12))  # old-1 and old-2 carry theirs
    kept = "skip" if on_existing == "skip" else "unchanged"
    assert [(r["row"], r["action"]) for r in plan.records()] == [
        (1, kept), (2, kept), (3, "write segment"), (4, "write segment"), (5, "write segment")]
    assert "3 segments to write" in str(plan) and "write segment" in plan._repr_html_()
    done = bulk_register.register_planned(world.store, world.sim, plan)
    assert done.ok and done.registered == () and [s.vm_uuid for s in done.segments] == list(plan.to_write)
    assert [r["segment"] for r in done.records()] == ["written"] * 3
    assert [r["pool_id"] for r in done.records()] == ["B"] * 3  # each VM's row whole, not just its UUID
    assert all(world.agrees(uuid) for uuid in plan.to_write)
    again = bulk_register.plan_registrations(world.store, world.sim, [*RERUN[:2], *NEW], on_existing=on_existing)
    assert again.to_write == () and again.vms == ()


def test_an_interrupted_registration_is_finished_by_running_it_again(world):
    world.sim.set_latency("set_args", 0.2)
    plan = bulk_register.plan_registrations(world.store, world.sim, NEW, on_existing="skip")

    def ctrl_c(report):  # once the first segment is written: the other two are not begun
        if report.vm_uuid == vm_uuid(10) and report.finishes:
            raise KeyboardInterrupt

    with pytest.raises(BulkInterrupted) as caught:
        bulk_register.register_planned(world.store, world.sim, plan, concurrency=1, progress=ctrl_c)
    partial = caught.value.partial
    assert partial.not_started == (vm_uuid(11), vm_uuid(12)) and world.agrees(vm_uuid(10))
    assert recovery.recover(world.store, world.sim) == []  # nothing journalled for the VMs not begun
    world.sim.set_latency("set_args", 0)
    again = bulk_register.plan_registrations(world.store, world.sim, NEW, on_existing="skip")
    assert again.to_write == (vm_uuid(11), vm_uuid(12))
    assert bulk_register.register_planned(world.store, world.sim, again).ok
    assert all(world.agrees(row["uuid"]) for row in NEW)


def test_an_interrupt_just_after_registering_hands_back_the_new_the_skipped_and_the_segments_to_write(world, monkeypatch):
    _cut_short(world, NEW[:1])  # VM 10 registered without its segment: to write
    plan = bulk_register.plan_registrations(world.store, world.sim, NEW, on_existing="skip")
    assert plan.to_write == (vm_uuid(10),) and [vm.vm_uuid for vm in plan.vms] == [vm_uuid(11), vm_uuid(12)]
    # another session registers VM 12 as its row asks, with the vm_id the plan chose for it: skipped
    vms.db_register_many(world.store, [{**NEW[2], "vm_id": plan.vms[1].vm_id}])
    interrupt_after(monkeypatch, vms, "db_register_many")  # the Ctrl-C lands once a pass has committed
    caught = interrupt_of(lambda: bulk_register.register_planned(world.store, world.sim, plan))
    monkeypatch.undo()
    assert isinstance(caught, BulkInterrupted)
    partial = caught.partial
    assert [vm.vm_uuid for vm in partial.registered] == [vm_uuid(11)] and [vm.vm_uuid for vm in partial.skipped] == [vm_uuid(12)]
    assert [vm.vm_uuid for vm in partial.rewritten] == [vm_uuid(10)] and partial.not_started == (vm_uuid(11), vm_uuid(10))
    assert "2 not started (registered, their segments not written yet" in str(caught)
    again = bulk_register.plan_registrations(world.store, world.sim, NEW, on_existing="skip")
    assert again.vms == () and again.to_write == (vm_uuid(10), vm_uuid(11), vm_uuid(12))
    assert bulk_register.register_planned(world.store, world.sim, again).ok and all(world.agrees(row["uuid"]) for row in NEW)


def test_an_interrupt_whose_registration_cannot_be_read_back_stays_an_interrupt_and_says_how_to_finish(world, monkeypatch):
    plan = bulk_register.plan_registrations(world.store, world.sim, NEW)
    real = vms.db_register_many

    def register_then_ctrl_c(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    def unreadable(conn, uuids):
        raise StoreError(world.store.path, "database is locked")

    monkeypatch.setattr(vms, "db_register_many", register_then_ctrl_c)
    monkeypatch.setattr(vms, "select_registered", unreadable)
    try:
        bulk_register.register_planned(world.store, world.sim, plan)
    except KeyboardInterrupt as interrupt:
        caught = interrupt
    else:
        pytest.fail("register_planned was not interrupted")
    monkeypatch.undo()
    assert type(caught) is KeyboardInterrupt  # never an error in its place
    (note,) = caught.__notes__
    assert "could not be read (database is locked)" in note and "on_existing='skip'" in note


def test_with_error_a_vm_registered_without_its_segment_stays_a_problem(world):
    _cut_short(world)
    plan = bulk_register.plan_registrations(world.store, world.sim, NEW)
    assert plan.to_write == () and [type(p.error).__name__ for p in plan.problems] == ["AlreadyRegistered"] * 3


def test_a_skipped_row_asking_for_another_configuration_leaves_its_vm_alone(world):
    _cut_short(world)
    rows = [dict(NEW[0], pool="A"), NEW[1], dict(NEW[2], pool="")]  # row 3's blank pool keeps the VM's
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="skip")
    assert plan.to_write == (vm_uuid(11), vm_uuid(12))
    assert [r["action"] for r in plan.records()] == ["skip", "write segment", "write segment"]


def test_a_vm_the_host_no_longer_lists_gets_no_segment_planned(world):
    _cut_short(world)
    world.sim.remove_vm(vm_uuid(10))
    plan = bulk_register.plan_registrations(world.store, world.sim, NEW, on_existing="skip")
    assert plan.to_write == (vm_uuid(11), vm_uuid(12))


def test_update_on_a_host_is_planned_as_a_confirmed_reconfigure_and_applied_by_bulk(world):
    rows = [dict(RERUN[0], pool="B"), RERUN[1], RERUN[2]]  # old-1 (running) moves to B; old-2 unchanged; one new
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="update")
    assert isinstance(plan.updates, bulk.BulkPlan) and plan.update_rows == (1,)
    [update] = plan.updates.plans
    assert (update.vm_uuid, update.changes, update.needs_restart) == (vm_uuid(1), {"pool_id": ("A", "B")}, True)
    assert plan.existing_rows == (2,) and plan.rows == (3,)
    assert [(r["row"], r["action"], r["change"]) for r in plan.records()] == [
        (1, "update", "pool A → B"), (2, "unchanged", None), (3, "register", None)]
    done = bulk_register.register_planned(world.store, world.sim, plan)  # registers the new VM only
    assert [vm.vm_uuid for vm in done.registered] == [vm_uuid(10)] and world.config(vm_uuid(1)) == config("A", 1, 1)
    moved = bulk.apply_many(world.store, world.sim, plan.updates)  # the cycle: stop, DB, segment, start
    assert moved.ok and world.config(vm_uuid(1)) == config("B", 1, 1) and world.agrees(vm_uuid(1))
    assert world.sim.boots(vm_uuid(1))[-1] == world.args(vm_uuid(1))


def test_a_plan_with_updates_and_problems_is_plain_json(world):
    import json

    from vgpu.convert import to_data

    rows = [dict(RERUN[0], pool="B"), {"uuid": "nope"}, RERUN[2]]
    data = json.loads(json.dumps(to_data(bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="update"))))
    assert data["updates"]["plans"][0]["new"]["pool_id"] == "B" and data["problems"][0]["row"] == 2
    assert data["update_rows"] == [1] and data["rows"] == [3] and data["labels"] == [1, 2, 3]


def test_an_update_that_cannot_be_planned_is_a_problem_of_its_row(world):
    world.sim.add_vm(vm_uuid(20), "paused-20", "paused")
    vms.db_register(world.store, vm_uuid(20), pool="A")
    rows = {"first": {"uuid": vm_uuid(20), "pool": "B"}, "second": {"uuid": vm_uuid(12)}}
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="update")
    assert [(p.row, getattr(p.error, "code", None)) for p in plan.problems] == [("first", "VM_BAD_POWER_STATE")]
    assert plan.rows == ("second",) and plan.updates.plans == ()


# --- records() back in -----------------------------------------------------------------------------------------


def _vm_results(world) -> dict[str, tables.Tabular]:
    """Every result whose rows are VMs, built through the public API."""
    change = bulk.plan_many(world.store, world.sim, [{"vm_uuid": vm_uuid(2), "priority": "low"}])
    registration = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(12)}])
    return {
        "list_vms": vms.list_vms(world.store),
        "show_pool": pools.show_pool(world.store, "B"),
        "status": scan.status(world.store, world.sim),
        "bulk_plan": change,
        "registration_plan": registration,
        "registration_result": bulk_register.register_planned(world.store, world.sim, registration),
        "bulk_result": bulk.apply_many(world.store, world.sim, change),
    }


def test_records_of_every_vm_result_go_back_into_register_many_and_plan_many(world):
    for name, result in _vm_results(world).items():
        records = result.records()
        assert records, name
        vms.check_many(world.store, records, on_existing="skip")  # no InvalidColumns: every column is known
        _, problems = vms.check_many(world.store, records, on_existing="update")
        assert problems == [], (name, problems)
        plan = bulk.plan_many(world.store, world.sim, records)  # the VMs as they are now, or as planned
        assert all(p.vm_uuid in {r["vm_uuid"] for r in records} for p in plan.plans), name


def test_records_fed_back_unchanged_change_nothing(world):
    registered = vms.list_vms(world.store).records()
    assert bulk.plan_many(world.store, world.sim, registered).changing == []
    assert vms.db_register_many(world.store, registered, on_existing="update") == []
    report = scan.status(world.store, world.sim).records()  # unregistered VMs included, with blank cells
    assert bulk.plan_many(world.store, world.sim, report).changing == []


def test_an_edited_record_is_the_change(world):
    rows = vms.list_vms(world.store).records()
    rows[0]["pool_id"] = "B"
    plan = bulk.plan_many(world.store, world.sim, rows)
    assert [(p.vm_uuid, p.changes) for p in plan.changing] == [(vm_uuid(1), {"pool_id": ("A", "B")})]


def test_a_column_nobody_writes_is_still_refused(world):
    rows = vms.list_vms(world.store).records()
    rows[0]["prio"] = "high"
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, rows)
    assert caught.value.problems[0].error.field == "column"


# --- row labels ----------------------------------------------------------------------------------------------


BAD = [{"uuid": vm_uuid(10), "pool": "C"}, {"uuid": vm_uuid(11)}, {"uuid": vm_uuid(11)}]


def test_a_mapping_of_rows_names_problems_by_its_keys(world):
    by_label = dict(zip(["web-a", "web-b", "web-c"], BAD))  # as df.to_dict("index") gives them
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, by_label)
    assert [(p.row, type(p.error).__name__) for p in caught.value.problems] == [("web-a", "InvalidValue"), ("web-c", "Conflict")]
    assert str(caught.value.problems[1].error) == f"VM UUID {vm_uuid(11)} is already used by row web-b"
    good, _ = vms.check_many(world.store, by_label)
    assert list(good) == ["web-b"]


def test_problems_whose_labels_do_not_sort_still_show_as_a_table(world):
    """Labels may be anything a DataFrame's index holds, mixed types too: the InvalidRows table counts them
    without sorting them (mypy --strict found the sort; it raised TypeError in a notebook's display)."""
    by_label = dict(zip(["web-a", 7, None], BAD))
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, by_label)
    error = caught.value
    assert [p.row for p in error.problems] == ["web-a", None]
    assert error.to_string().startswith("InvalidRows: 2 problems in 2 rows")
    assert "<table" in error._repr_html_() and len(error.records()) == 2


def test_a_dataframe_is_taken_as_it_is_and_named_by_its_index(world):
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    frame = pandas.DataFrame(BAD, index=[101, 102, 103])
    for rows in (frame, frame.to_dict("index")):
        with pytest.raises(InvalidRows) as caught:
            vms.db_register_many(world.store, rows)
        assert [p.row for p in caught.value.problems] == [101, 103]
        plan = bulk_register.plan_registrations(world.store, world.sim, rows)
        assert plan.rows == (102,) and [p.row for p in plan.problems] == [101, 103]
    changes = pandas.DataFrame([{"vm_uuid": vm_uuid(1), "pool": "C"}, {"vm_uuid": vm_uuid(2), "pool": "A"}], index=["x", "y"])
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, changes)
    assert [p.row for p in caught.value.problems] == ["x"]
    assert len(bulk.plan_many(world.store, world.sim, changes.loc[["y"]]).changing) == 1


def test_rows_are_counted_as_rows_when_their_labels_repeat(world):
    # A DataFrame's index may repeat a label: the problems name the label and, as it repeats, the position; the
    # rows are still counted one by one (two bad rows under label 5 are two), while one row with two problems is one.
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    frame = pandas.DataFrame([{"uuid": vm_uuid(10), "pool": "C"}, {"uuid": vm_uuid(11), "pool": "D"}], index=[5, 5])
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, frame)
    assert str(caught.value).startswith("2 bad rows, nothing was changed: row 5 (position 1): invalid pool 'C'")
    plan = bulk_register.plan_registrations(world.store, world.sim, frame)
    assert str(plan.invalid).startswith("2 bad rows, the plan leaves these rows out: row 5 (position 1): invalid pool 'C'")
    assert plan.to_string().startswith("RegistrationPlan: 0 VMs to register; 2 rows refused")
    assert plan.problems.to_string().startswith("ProblemTable: 2 problems in 2 rows")
    assert plan.invalid.to_string().startswith("InvalidRows: 2 problems in 2 rows")
    back = convert.from_data(json.loads(json.dumps(convert.to_data(plan))), bulk_register.RegistrationPlan)
    assert back.to_string().startswith("RegistrationPlan: 0 VMs to register; 2 rows refused")  # JSON keeps them apart
    twice = pandas.DataFrame([{"uuid": vm_uuid(10), "pool": "C", "priority": "urgent"}], index=[5])
    assert str(bulk_register.plan_registrations(world.store, world.sim, twice).invalid).startswith("2 problems in 1 row,")
    not_on_host = pandas.DataFrame([{"uuid": vm_uuid(30)}, {"uuid": vm_uuid(31)}], index=[7, 7])
    assert str(bulk_register.plan_registrations(world.store, world.sim, not_on_host).invalid).startswith("2 bad rows,")
    for number in (20, 21):  # registered and paused: an update of either cannot be planned
        world.sim.add_vm(vm_uuid(number), f"paused-{number}", "paused")
        vms.db_register(world.store, vm_uuid(number), pool="A")
    paused = pandas.DataFrame([{"uuid": vm_uuid(20), "pool": "B"}, {"uuid": vm_uuid(21), "pool": "B"}], index=["p", "p"])
    assert str(bulk_register.plan_registrations(world.store, world.sim, paused, on_existing="update").invalid).startswith("2 bad rows,")
    changes = pandas.DataFrame([{"vm_uuid": vm_uuid(1), "pool": "C"}, {"vm_uuid": vm_uuid(2), "pool": "D"}], index=["x", "x"])
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, world.sim, changes)
    assert str(caught.value).startswith("2 bad rows, nothing was changed: row x (position 1): invalid pool 'C'")


def test_a_single_row_is_still_refused_as_not_rows(world):
    with pytest.raises(NotRows):
        vms.db_register_many(world.store, {"uuid": vm_uuid(10), "pool": "B"})


def test_the_pandas_example_works_when_every_row_is_good(world):
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(12)}])
    assert plan.invalid is None
    frame = plan.problems.to_pandas()  # what the docs and notebooks show: a table of problems, maybe empty
    assert isinstance(frame, pandas.DataFrame) and frame.empty and "field" in frame.columns
    assert plan.problems == () and len(plan.problems.records()) == 0

"""Bulk registration (the CSV notebook): check every row without changing anything, register the good rows in
one transaction with the vm_ids the plan showed, then write each VM's segment."""

from __future__ import annotations

import pytest

from vgpu import bulk, bulk_register, journal, lifecycle, scan, vms
from vgpu.errors import AlreadyRegistered, Conflict, InvalidRows, NotFound, StalePlan, StaleRegistrations

from .counting import CountingHost
from .lifekit import Advising, World, config, vm_uuid


@pytest.fixture
def world(tmp_path, store):
    world = World.create(tmp_path, store)
    world.add(1, "running", config("A", 1, 1), name="old-1")
    world.add(2, "running", config("A", 1, 3), name="old-2")  # vm_id 2 is free
    for number in range(10, 15):
        world.sim.add_vm(vm_uuid(number), f"new-{number}", "running" if number % 2 else "halted", "-vnc :1")
    return world


ROWS = [
    {"uuid": vm_uuid(10), "name": "render-10", "pool": "B", "priority": "high", "vm_id": ""},  # 1 good
    {"uuid": "not-a-uuid", "pool": "A"},                                                        # 2 bad UUID
    {"uuid": vm_uuid(11), "pool": "C", "priority": "urgent"},                                   # 3 two bad values
    {"uuid": vm_uuid(12), "name": "", "pool": "a", "priority": "0", "vm_id": "3"},              # 4 vm_id 3 is old-2's
    {"uuid": vm_uuid(13), "priority": "LOW"},                                                    # 5 good, host's name
    {"uuid": vm_uuid(10).upper(), "pool": "A"},                                                  # 6 same VM as row 1
    {"uuid": vm_uuid(99)},                                                                       # 7 not on the host
    {"uuid": vm_uuid(14), "vm_id": "40"},                                                        # 8 good, explicit id
]


def test_plan_lists_every_problem_and_changes_nothing(world):
    before = world.tables()
    plan = bulk_register.plan_registrations(world.store, world.sim, ROWS)
    assert world.tables() == before
    assert plan.rows == (1, 5, 8)
    assert [(vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority.label, vm.vm_id) for vm in plan.vms] == [
        (vm_uuid(10), "render-10", "B", "high", 2),   # the lowest free vm_id
        (vm_uuid(13), "new-13", "A", "low", 4),        # no name given: the host's
        (vm_uuid(14), "new-14", "A", "medium", 40),
    ]
    problems = [(p.row, type(p.error).__name__, getattr(p.error, "field", None)) for p in plan.problems]
    assert problems == [
        (2, "InvalidValue", "VM UUID"), (3, "InvalidValue", "pool"), (3, "InvalidValue", "priority"),
        (4, "Conflict", "vm_id"), (6, "Conflict", "VM UUID"), (7, "NotFound", None),
    ]
    assert isinstance(plan.invalid, InvalidRows) and len(plan.invalid.problems) == 6
    # not a refusal: the good rows go ahead, so neither the sentence nor the table says "nothing was changed"
    assert str(plan.invalid).startswith("6 problems in 5 rows, the plan leaves these rows out: row 2: invalid VM UUID")
    assert "5 rows; the plan leaves these rows out" in plan.invalid._repr_html_()
    assert "nothing was changed" not in str(plan.invalid) + plan.invalid._repr_html_()
    assert [record["row"] for record in plan.records()] == [1, 5, 8]


def test_plan_names_the_vms_that_would_share_a_name_with_their_uuids(world):
    rows = [{"uuid": vm_uuid(10), "name": "OLD-1"}, {"uuid": vm_uuid(11), "name": "twin"},
            {"uuid": vm_uuid(12), "name": "twin"}, {"uuid": vm_uuid(13), "name": "single"}]
    plan = bulk_register.plan_registrations(world.store, world.sim, rows)
    assert [(shared.name, [vm.vm_uuid for vm in shared.vms]) for shared in plan.shared_names] == [
        ("old-1", [vm_uuid(1), vm_uuid(10)]), ("twin", [vm_uuid(11), vm_uuid(12)]),
    ]
    assert str(plan.shared_names[0]) == (
        f"2 VMs are named old-1 (in any case): {vm_uuid(1)} (old-1, Pool A, VM ID 1), "
        f"{vm_uuid(10)} (OLD-1, Pool A, VM ID 2); commands tell them apart by UUID")
    assert len(plan.vms) == 4  # a warning, not a refusal
    result = bulk_register.register_planned(world.store, world.sim, plan)
    assert len(result.registered) == 4


def test_plan_names_the_vms_named_like_another_vms_uuid_before_anything_is_registered(world):
    """As register-vm warns (a name copied where a UUID goes means the other VM): the plan says it, for a
    notebook to show before register_planned, from the listing it made (no host is asked again)."""
    rows = [{"uuid": vm_uuid(10), "name": vm_uuid(1).upper()},  # old-1's UUID (registered), in capitals
            {"uuid": vm_uuid(11), "name": vm_uuid(12)},  # new-12's (on the host, planned in this batch too)
            {"uuid": vm_uuid(12), "name": vm_uuid(12)},  # its own UUID: nothing to say
            {"uuid": vm_uuid(13), "name": vm_uuid(98)}]  # no VM's UUID
    counted = CountingHost(world.sim)
    plan = bulk_register.plan_registrations(world.store, counted, rows)
    assert counted.calls == ["list_vms"]  # the plan's own listing, and nothing more
    assert [(like.vm.vm_uuid, like.other_uuid, like.other_name) for like in plan.named_like_uuids] == [
        (vm_uuid(10), vm_uuid(1), "old-1"), (vm_uuid(11), vm_uuid(12), "new-12")]  # as the host lists it
    assert str(plan.named_like_uuids[0]) == (
        f"VM {vm_uuid(10)} is named like old-1's UUID {vm_uuid(1)}: commands take UUIDs, so this name copied where "
        "a UUID goes means old-1, not this VM")
    assert "2 named like another VM's UUID (plan.named_like_uuids)" in plan.to_string().splitlines()[0]
    assert "named like another VM" in plan._repr_html_()
    assert len(plan.vms) == 4  # a warning, not a refusal
    assert len(bulk_register.register_planned(world.store, world.sim, plan).registered) == 4


def test_a_plan_with_no_name_like_a_uuid_says_nothing_of_it(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(10), "name": "render-10"}])
    assert plan.named_like_uuids == () and "UUID" not in plan.to_string().splitlines()[0]


def test_plan_says_which_rows_are_registered_already_and_who_holds_a_vm_id(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(2)}, ROWS[3], {"uuid": vm_uuid(1).upper()}])
    assert [(p.row, type(p.error)) for p in plan.problems] == [(1, AlreadyRegistered), (2, Conflict), (3, AlreadyRegistered)]
    assert [str(p.error) for p in plan.problems] == [
        f"VM {vm_uuid(2)} is already registered (vm_id 3, pool A)",
        f"vm_id 3 is already used by VM old-2 ({vm_uuid(2)})",
        f"VM {vm_uuid(1)} is already registered (vm_id 1, pool A)",
    ]


def test_register_planned_registers_the_good_rows_and_writes_their_segments(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, ROWS)
    reported = []
    result = bulk_register.register_planned(world.store, world.sim, plan, progress=reported.append)
    assert result.ok and [vm.vm_uuid for vm in result.registered] == [vm.vm_uuid for vm in plan.vms]
    for planned in plan.vms:
        assert world.config(planned.vm_uuid) == planned.config
        assert world.segment(planned.vm_uuid) == planned.config
        assert world.args(planned.vm_uuid).startswith("-vnc :1 ")  # the admin's own args are kept
    assert vms.find(world.store, vm_uuid(11)) is None and vms.find(world.store, vm_uuid(12)) is None
    assert {report.vm_uuid for report in reported} == {vm.vm_uuid for vm in plan.vms}
    assert world.open_ops() == []
    entries = {entry.vm.vm_uuid: entry for entry in scan.status(world.store, world.sim).registered}
    # The segment is written for the next boot: a running VM's QEMU still has none until it restarts.
    assert {(entries[vm.vm_uuid].host_vm.power_state.value, entries[vm.vm_uuid].state) for vm in plan.vms} == {
        ("running", "pending"), ("halted", "halted")}


def test_a_segment_the_host_refuses_is_reported_and_the_others_are_written(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [ROWS[0], ROWS[4]])
    world.sim.set_fault("set_args", "fail", vm_uuid(13))
    result = bulk_register.register_planned(world.store, world.sim, plan)
    assert not result.ok and [failure.vm_uuid for failure in result.failures] == [vm_uuid(13)]
    assert world.segment(vm_uuid(10)) == world.config(vm_uuid(10))
    assert world.config(vm_uuid(13)) is not None and world.segment(vm_uuid(13)) is None  # registered, no segment yet
    assert "not written" in {r["vm_uuid"]: r for r in result.records()}[vm_uuid(13)]["segment"]
    assert repr(result).startswith("RegistrationResult: 2 VMs registered, 1 segment not written —"), repr(result)
    assert not [op for op in world.open_ops() if op.vm_uuid == vm_uuid(13)]  # the failed write is closed, not a lock
    world.sim.clear_faults()
    written, failures = bulk_register.write_segments(world.store, world.sim, [vm_uuid(13)])
    assert not failures and written[0].changed and world.segment(vm_uuid(13)) == world.config(vm_uuid(13))


def test_a_vm_id_the_plan_chose_taken_since_is_a_stale_plan_not_a_bad_row(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [ROWS[0], ROWS[4]])  # neither row gives a vm_id
    chosen = plan.vms[1].vm_id
    vms.db_register(world.store, vm_uuid(12), "quick", pool="B", vm_id=chosen)  # someone else was quicker
    before = world.tables()
    with pytest.raises(StalePlan) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert not isinstance(caught.value, InvalidRows) and caught.value.vm_ids_taken == (chosen,)
    assert str(caught.value) == (
        f"the registration plan was overtaken by changes made since it was made: vm_id {chosen}, which the plan gave "
        f"VM new-13 ({vm_uuid(13)}), is now used by VM quick ({vm_uuid(12)}); nothing was changed: plan again")
    assert (caught.value.vm_uuid, caught.value.current) == (vm_uuid(13), None)
    assert world.tables() == before and world.segment(vm_uuid(10)) is None


def test_a_vm_id_the_row_gave_taken_since_is_still_that_rows_problem(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, ROWS)
    assert plan.rows == (1, 5, 8) and plan.vms[2].vm_id == 40  # row 8 asks for vm_id 40
    vms.db_register(world.store, vm_uuid(12), vm_id=40)
    before = world.tables()
    with pytest.raises(InvalidRows) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert [(p.row, type(p.error)) for p in caught.value.problems] == [(8, Conflict)]
    assert str(caught.value).startswith("1 bad row, nothing was changed: row 8: vm_id 40 is already used by VM ")
    assert world.tables() == before


def test_a_vm_registered_since_the_plan_is_a_stale_plan_naming_it(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, ROWS)
    vms.db_register(world.store, vm_uuid(14), vm_id=99)  # registered since: row 8's VM
    before = world.tables()
    with pytest.raises(StalePlan) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert caught.value.registered_since == (vm_uuid(14),) and caught.value.vm_ids_taken == ()
    assert f"VM new-14 ({vm_uuid(14)}) is registered now (vm_id 99, pool A, priority medium (1))" in str(caught.value)
    assert str(caught.value).endswith("; nothing was changed: plan again")
    assert world.tables() == before


def test_with_skip_a_vm_registered_since_as_its_row_asks_is_skipped_and_said_so(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [ROWS[0], ROWS[4]], on_existing="skip")
    vms.db_register(world.store, vm_uuid(13), priority="low", vm_id=77)  # as row 5 asks (its vm_id was the plan's)
    result = bulk_register.register_planned(world.store, world.sim, plan)
    assert [vm.vm_uuid for vm in result.registered] == [vm_uuid(10)] and result.ok
    assert [(vm.vm_uuid, vm.vm_id) for vm in result.skipped] == [(vm_uuid(13), 77)]
    assert {r["vm_uuid"]: r["segment"] for r in result.records()}[vm_uuid(13)] == "skipped: registered since the plan"
    assert "1 skipped (registered since the plan)" in repr(result)
    assert world.config(vm_uuid(10)) == plan.vms[0].config


def test_with_skip_a_vm_registered_since_otherwise_is_a_stale_plan(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [ROWS[0], ROWS[4]], on_existing="skip")
    vms.db_register(world.store, vm_uuid(13), pool="B", vm_id=77)  # row 5 asks for pool A
    before = world.tables()
    with pytest.raises(StalePlan) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert caught.value.registered_since == (vm_uuid(13),) and world.tables() == before


def test_with_skip_a_skipped_vm_unregistered_since_is_a_stale_plan(world):
    rows = [{"uuid": vm_uuid(1)}, ROWS[0]]  # VM 1 is registered: skipped
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="skip")
    assert [vm.vm_uuid for vm in plan.existing] == [vm_uuid(1)] and plan.to_write == ()
    lifecycle.remove_vm(world.store, world.sim, vm_uuid(1))
    before = world.tables()
    with pytest.raises(StaleRegistrations) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert caught.value.unregistered_since == (vm_uuid(1),) and caught.value.registered_since == ()
    assert (caught.value.vm_uuid, caught.value.planned, caught.value.current) == (vm_uuid(1), config("A", 1, 1), None)
    assert str(caught.value) == (
        "the registration plan was overtaken by changes made since it was made: VM old-1 "
        f"({vm_uuid(1)}) is not registered now (the plan found it registered: vm_id 1, pool A, priority medium (1)); "
        "nothing was changed: plan again")
    assert world.tables() == before


def test_a_plan_of_only_skipped_rows_whose_vm_was_unregistered_since_is_stale(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(1)}], on_existing="skip")
    lifecycle.remove_vm(world.store, world.sim, vm_uuid(1))
    with pytest.raises(StaleRegistrations):
        bulk_register.register_planned(world.store, world.sim, plan)


def test_a_segment_to_write_of_a_vm_unregistered_since_is_a_stale_plan_not_cleared(world):
    world.sim.set_device_model_args(vm_uuid(2), "-vnc :2")  # registered, its segment lost: the plan writes it
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(2)}, ROWS[0]], on_existing="skip")
    assert plan.to_write == (vm_uuid(2),)
    vms.db_remove(world.store, vm_uuid(2))
    before = world.tables()
    with pytest.raises(StaleRegistrations) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert caught.value.unregistered_since == (vm_uuid(2),)
    assert world.tables() == before and world.sim.get_device_model_args(vm_uuid(2)) == "-vnc :2"


def test_with_update_an_unchanged_vm_unregistered_since_is_a_stale_plan(world):
    rows = [{"uuid": vm_uuid(1), "priority": "medium"}, {"uuid": vm_uuid(2), "priority": "high"}, ROWS[0]]
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="update")
    assert [vm.vm_uuid for vm in plan.existing] == [vm_uuid(1)] and len(plan.updates.plans) == 1
    lifecycle.remove_vm(world.store, world.sim, vm_uuid(1))
    before = world.tables()
    with pytest.raises(StaleRegistrations) as caught:
        bulk_register.register_planned(world.store, world.sim, plan)
    assert caught.value.unregistered_since == (vm_uuid(1),) and world.tables() == before


def test_with_update_an_update_of_a_vm_unregistered_since_is_its_failure_saying_so(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(2), "priority": "high"}],
                                            on_existing="update")
    lifecycle.remove_vm(world.store, world.sim, vm_uuid(2))
    before = world.tables()
    result = bulk.apply_many(world.store, world.sim, plan.updates)
    assert [(failure.vm_uuid, str(failure.error)) for failure in result.failures] == [
        (vm_uuid(2), f"registered VM {vm_uuid(2)} not found; it was removed after the plan was made")]
    assert world.tables() == before and vms.find(world.store, vm_uuid(2)) is None


def test_with_update_a_vm_in_a_state_its_host_has_advice_for_is_refused_with_that_advice(world):
    """As plan_many: a managed-saved libvirt domain is not told to "resume it"."""
    saved = world.add(3, "suspended", config("A", 1, 2))
    plan = bulk_register.plan_registrations(world.store, Advising(world.sim), [{"uuid": saved, "priority": "high"}],
                                            on_existing="update")
    (problem,) = plan.problems
    assert str(problem.error) == f"VM {saved} is suspended; {Advising.ADVICE}"


def test_an_empty_plan_registers_nothing(world):
    plan = bulk_register.plan_registrations(world.store, world.sim, [ROWS[1], ROWS[6]])
    assert plan.vms == () and isinstance(plan.problems[1].error, NotFound)
    before = world.tables()
    result = bulk_register.register_planned(world.store, world.sim, plan)
    assert result.registered == () and result.ok and world.tables() == before


def test_check_many_matches_what_register_many_then_does(store, tmp_path):
    world = World.create(tmp_path, store)
    world.add(1, "halted", config("A", 1, 2))
    rows = [{"uuid": vm_uuid(n)} for n in range(20, 24)] + [{"uuid": vm_uuid(30), "vm_id": "1"}]
    good, problems = vms.check_many(store, rows)
    assert problems == [] and [vm.vm_id for vm in good.values()] == [3, 4, 5, 6, 1]
    registered = vms.db_register_many(store, rows)
    assert [vm.vm_id for vm in registered] == [vm.vm_id for vm in good.values()]
    assert journal.unfinished(store) == []


def test_a_row_repeating_a_refused_row_is_left_out_as_a_repeat(world):
    pd = pytest.importorskip("pandas")
    rows = [{"uuid": vm_uuid(10), "pool": "A", "priority": "hgih", "vm_id": "40"},  # refused: its priority
            {"uuid": vm_uuid(10), "pool": "B", "priority": "low"}]                  # the same VM again
    plan = bulk_register.plan_registrations(world.store, world.sim, pd.DataFrame(rows, index=["typo", "again"]))
    assert plan.vms == () and [str(problem) for problem in plan.problems] == [
        "row typo: invalid priority 'hgih': expected low, medium, high, 0, 1 or 2",
        f"row again: VM UUID {vm_uuid(10)} is already used by row typo"]
    before = world.tables()
    assert bulk_register.register_planned(world.store, world.sim, plan).registered == ()
    assert world.tables() == before


def test_a_row_asking_for_the_vm_id_of_a_refused_row_is_left_out_as_a_repeat(world):
    pd = pytest.importorskip("pandas")
    rows = [{"uuid": vm_uuid(10), "priority": "hgih", "vm_id": 50},  # refused: its priority
            {"uuid": vm_uuid(11), "vm_id": 50}]                      # another VM asking for its vm_id
    plan = bulk_register.plan_registrations(world.store, world.sim, pd.DataFrame(rows, index=["typo", "again"]))
    assert plan.vms == () and [str(problem) for problem in plan.problems] == [
        "row typo: invalid priority 'hgih': expected low, medium, high, 0, 1 or 2",
        "row again: vm_id 50 is already used by row typo"]
    before = world.tables()
    assert bulk_register.register_planned(world.store, world.sim, plan).registered == ()
    assert world.tables() == before


def test_a_repeated_nan_index_label_names_the_positions_in_the_plans_duplicate_checks(world):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"vm_uuid": [vm_uuid(10), vm_uuid(10)]}, index=[float("nan"), float("nan")])
    plan = bulk_register.plan_registrations(world.store, world.sim, frame)
    assert [str(problem) for problem in plan.problems] == [
        f"row nan (position 2): VM UUID {vm_uuid(10)} is already used by row nan (position 1)"]


def test_a_repeated_index_label_names_the_positions_in_the_plans_duplicate_checks(world):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"vm_uuid": [vm_uuid(10), vm_uuid(10), vm_uuid(11)], "vm_id": [50, 51, 50]}, index=[5, 5, 5])
    plan = bulk_register.plan_registrations(world.store, world.sim, frame)
    assert [str(problem) for problem in plan.problems] == [
        f"row 5 (position 2): VM UUID {vm_uuid(10)} is already used by row 5 (position 1)",
        "row 5 (position 3): vm_id 50 is already used by row 5 (position 1)",
    ]
    assert [problem.position for problem in plan.problems] == [2, 3]
    frame = pd.DataFrame({"vm_uuid": [vm_uuid(10), vm_uuid(10)]}, index=[5, 6])  # labels that do not repeat
    assert [str(p) for p in bulk_register.plan_registrations(world.store, world.sim, frame).problems] == [
        f"row 6: VM UUID {vm_uuid(10)} is already used by row 5"]

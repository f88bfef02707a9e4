"""Arguments of the wrong kind are refused before anything is asked or changed: a stop policy that is not a
StopPolicy, a progress that is not a callback, a switch that is not True or False, a plan of another kind
(an easy slip between plan_registrations' plan and its ``.updates``). Each is one InvalidValue naming the
argument and what the call takes, never an AttributeError from deep inside a change that then rolls back."""

from __future__ import annotations

import pytest

from vgpu import bulk, bulk_register, demo, journal, lifecycle, recovery, scan, vms
from vgpu.connection import connect
from vgpu.errors import InvalidValue, NotRows

VM_1, VM_2, VM_21 = (demo.demo_uuid(name) for name in ("VM-1", "VM-2", "VM-21"))


@pytest.fixture
def conn(tmp_path):
    with connect(**demo.sandbox(str(tmp_path / "sandbox"))) as opened:
        yield opened


@pytest.fixture
def unchanged(conn):
    """Checks, after the test, that the database holds what it held and that nothing was journalled."""
    before = [(vm.vm_uuid, vm.config) for vm in vms.list_vms(conn.store)], conn.history(limit=1000)
    yield
    assert ([(vm.vm_uuid, vm.config) for vm in vms.list_vms(conn.store)], conn.history(limit=1000)) == before
    assert journal.unfinished(conn.store) == []


def _never(plan):
    raise AssertionError("confirm must not be asked")


@pytest.mark.parametrize("call", [
    lambda conn, policy: conn.reconfigure_vm(VM_1, priority="low", confirm=_never, policy=policy),
    lambda conn, policy: conn.apply_vm(VM_1, confirm=_never, policy=policy),
    lambda conn, policy: conn.apply_plan(conn.plan_reconfigure(VM_1, priority="low"), policy=policy),
    lambda conn, policy: conn.reconfigure_many([{"vm_uuid": VM_1, "priority": "low"}], confirm=_never, policy=policy),
    lambda conn, policy: conn.apply_many(conn.plan_many([{"vm_uuid": VM_1, "priority": "low"}]), policy=policy),
    lambda conn, policy: conn.recover(policy=policy),
], ids=["reconfigure_vm", "apply_vm", "apply_plan", "reconfigure_many", "apply_many", "recover"])
@pytest.mark.parametrize("policy", ["fast", 60, None])
def test_a_policy_that_is_not_a_stop_policy_is_refused_first(conn, unchanged, call, policy):
    with pytest.raises(InvalidValue) as caught:
        call(conn, policy)
    assert caught.value.field == "policy" and caught.value.value == policy
    assert "StopPolicy" in str(caught.value)


@pytest.mark.parametrize("call", [
    lambda conn, progress: conn.reconfigure_vm(VM_1, priority="low", confirm=_never, progress=progress),
    lambda conn, progress: conn.apply_vm(VM_1, confirm=_never, progress=progress),
    lambda conn, progress: conn.apply_plan(conn.plan_reconfigure(VM_1, priority="low"), progress=progress),
    lambda conn, progress: conn.recover(progress=progress),
], ids=["reconfigure_vm", "apply_vm", "apply_plan", "recover"])
@pytest.mark.parametrize("progress", [5, "auto", "yes"])
def test_a_single_vms_progress_must_be_a_callback_or_none(conn, unchanged, call, progress):
    with pytest.raises(InvalidValue) as caught:
        call(conn, progress)
    assert caught.value.field == "progress" and caught.value.value == progress
    assert "a callback or None" in str(caught.value)


def test_a_single_vms_progress_of_none_reports_nothing(conn):
    result = conn.reconfigure_vm(VM_1, priority="low", confirm=lambda plan: True, progress=None)
    assert result.changed and result.vm.priority.label == "low"


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_a_switch_is_true_or_false_never_a_string_that_reads_as_true(conn, unchanged, value):
    for call, field in ((lambda: conn.scan(tolerate_host_errors=value), "tolerate_host_errors"),
                        (lambda: conn.recover(take_over=value), "take_over")):
        with pytest.raises(InvalidValue) as caught:
            call()
        assert caught.value.field == field and "True or False" in str(caught.value)


def test_the_switches_take_true_and_false(conn):
    assert conn.scan(tolerate_host_errors=True).host_error is None
    assert conn.recover(take_over=False) == []


def test_the_whole_registration_plan_given_to_apply_many_points_at_its_updates(conn, unchanged):
    plan = conn.plan_registrations([{"uuid": VM_1, "pool": "B"}], on_existing="update")
    with pytest.raises(InvalidValue) as caught:
        conn.apply_many(plan)
    assert str(caught.value) == ("apply_many() takes a BulkPlan, not a RegistrationPlan: "
                                 "for the updates of a registration plan, pass plan.updates")


@pytest.mark.parametrize(("call", "sentence"), [
    (lambda conn: conn.apply_many(None), "apply_many() takes a BulkPlan, not None"),
    (lambda conn: conn.apply_plan(None), "apply_plan() takes a ReconfigurePlan, not None"),
    (lambda conn: conn.apply_plan(conn.plan_many([{"vm_uuid": VM_1, "pool": "B"}])),
     "apply_plan() takes a ReconfigurePlan, not a BulkPlan: a bulk plan is applied by apply_many()"),
    (lambda conn: conn.register_planned(conn.plan_many([{"vm_uuid": VM_1, "pool": "B"}])),
     "register_planned() takes a RegistrationPlan, not a BulkPlan: a bulk plan is applied by apply_many()"),
    (lambda conn: conn.register_planned(None), "register_planned() takes a RegistrationPlan, not None"),
])
def test_a_plan_of_another_kind_is_refused_naming_both(conn, unchanged, call, sentence):
    with pytest.raises(InvalidValue) as caught:
        call(conn)
    assert str(caught.value) == sentence


def test_register_many_of_none_is_not_rows(conn, unchanged):
    with pytest.raises(NotRows):
        conn.register_many(None)


def test_write_segments_of_one_uuid_string_asks_for_a_list(conn, unchanged):
    with pytest.raises(InvalidValue) as caught:
        conn.write_segments(VM_1)
    assert caught.value.field == "vm_uuids"
    assert str(caught.value) == f"write_segments() takes a list of VM UUIDs, not one UUID: write_segments([{VM_1!r}])"


@pytest.mark.parametrize(("vm_uuids", "got"), [(None, "None"), (7, "an int"), (b"x", "a bytes")])
def test_write_segments_of_what_is_not_a_list_is_refused_naming_it(conn, unchanged, vm_uuids, got):
    # None used to raise a bare TypeError ('NoneType' object is not iterable).
    with pytest.raises(InvalidValue) as caught:
        conn.write_segments(vm_uuids)
    assert caught.value.field == "vm_uuids"
    assert str(caught.value) == f"write_segments() takes a list of VM UUIDs, not {got}"


def test_the_module_functions_check_too(conn, unchanged):
    # The connection only passes its options on: the checks are the library functions' own.
    with pytest.raises(InvalidValue):
        lifecycle.reconfigure_vm(conn.store, conn.host, VM_1, pool="B", confirm=_never, policy="fast")
    with pytest.raises(InvalidValue):
        bulk.apply_many(conn.store, conn.host, None)
    with pytest.raises(InvalidValue):
        bulk_register.write_segments(conn.store, conn.host, VM_1)
    with pytest.raises(InvalidValue):
        recovery.recover(conn.store, conn.host, take_over="no")
    with pytest.raises(InvalidValue):
        scan.scan(conn.store, conn.host, tolerate_host_errors="no")


@pytest.mark.parametrize("call", [
    lambda conn, confirm: conn.reconfigure_vm(VM_1, priority="low", confirm=confirm),
    lambda conn, confirm: conn.apply_vm(VM_1, confirm=confirm),
    lambda conn, confirm: conn.reconfigure_many([{"vm_uuid": VM_1, "priority": "low"}], confirm=confirm),
], ids=["reconfigure_vm", "apply_vm", "reconfigure_many"])
@pytest.mark.parametrize("confirm", [True, "yes", None])
def test_a_confirm_that_is_not_a_callback_is_bad_input_not_a_users_no(conn, unchanged, call, confirm):
    # Cancelled means "the user said no" (exit 3 in vgpu-admin); confirm=True is a caller's slip.
    with pytest.raises(InvalidValue) as caught:
        call(conn, confirm)
    assert caught.value.field == "confirm" and caught.value.value == confirm
    assert "a function" in str(caught.value)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"pool": ""}, "invalid pool '': expected A or B"),
    ({"pool": "  "}, "invalid pool '  ': expected A or B"),
    ({"priority": " "}, "invalid priority ' '"),
    ({"vm_id": float("nan")}, "invalid vm_id nan"),
    ({"vm_id": ""}, "invalid vm_id ''"),
])
def test_a_blank_given_to_register_vm_is_refused_as_reconfigure_vm_refuses_it(conn, unchanged, arguments, message):
    # A blank cell of a bulk row takes the default; a blank argument of the single-VM call is a slip, not a
    # request for the default (None leaves the argument out). It used to register VM-21 in A, medium, next id.
    with pytest.raises(InvalidValue) as raised:
        conn.register_vm(VM_21, **arguments)
    assert str(raised.value).startswith(message)
    with pytest.raises(InvalidValue) as raised:
        vms.db_register(conn.store, VM_21, **arguments)
    assert str(raised.value).startswith(message)


def test_none_leaves_register_vms_arguments_out(conn):
    vm = conn.register_vm(VM_21, pool=None, priority=None, vm_id=None).vm
    assert (vm.pool_id, int(vm.priority)) == ("A", 1)

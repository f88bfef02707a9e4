"""vgpu.vms, one VM at a time: register, get, find, list, plan a change, update, remove."""

from __future__ import annotations

import pytest

from vgpu import vms
from vgpu.errors import AlreadyRegistered, Conflict, InvalidValue, NotFound
from vgpu.models import VM, Priority, Registration, VMConfig

U1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
U2 = "11111111-2222-4333-8444-555555555555"
U3 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def uuid_of(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


def raw_rows(store) -> list[tuple]:
    with store.reading() as conn:
        return conn.execute("SELECT vm_id, vm_uuid, vm_name, pool_id, priority FROM vms ORDER BY vm_id").fetchall()


# --- register ---------------------------------------------------------------------------------------------


def test_register_defaults_to_pool_a_medium_and_vm_id_1(store):
    vm = vms.db_register(store, U1.upper())
    assert (vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority) == (1, U1, None, "A", Priority.MEDIUM)
    assert vm.created_at and vm.created_at == vm.updated_at
    assert raw_rows(store) == [(1, U1, None, "A", 1)]
    assert vms.get(store, U1) == vm


@pytest.mark.parametrize(
    ("pool", "priority", "stored"),
    [("a", "low", ("A", 0)), ("B", "HIGH", ("B", 2)), (" b ", 2, ("B", 2)), ("A", "2", ("A", 2)), ("b", Priority.HIGH, ("B", 2)), ("B", "0", ("B", 0))],
)
def test_register_accepts_the_forms_people_type(store, pool, priority, stored):
    vm = vms.db_register(store, U1, vm_name="  render-1 ", pool=pool, priority=priority, vm_id="12")
    assert raw_rows(store) == [(12, U1, "render-1", *stored)]
    assert (vm.vm_id, vm.vm_name, vm.pool_id, int(vm.priority)) == (12, "render-1", *stored)


def test_register_and_update_take_numpy_integers_and_uuid_objects(store):
    import uuid

    from .test_values import Index  # numpy.int64 as pandas hands it out: an integer with __index__

    vm = vms.db_register(store, uuid.UUID(U1), priority=Index(2), vm_id=Index(5))
    assert (vm.vm_uuid, vm.priority, vm.vm_id) == (U1, Priority.HIGH, 5)
    assert raw_rows(store) == [(5, U1, None, "A", 2)] and type(raw_rows(store)[0][0]) is int
    assert vms.db_update(store, uuid.UUID(U1), priority=Index(0), vm_id=Index(6)).config == VMConfig("A", Priority.LOW, 6)
    np = pytest.importorskip("numpy")
    assert vms.db_register(store, U2, priority=np.int64(2), vm_id=np.int64(7)).vm_id == 7


def test_optional_fields_left_out_take_the_defaults(store):
    vm = vms.db_register(store, U1, vm_name=None, pool=None, priority=None, vm_id=None)
    assert (vm.vm_id, vm.vm_name, vm.pool_id, vm.priority) == (1, None, "A", Priority.MEDIUM)


@pytest.mark.parametrize("field", ["pool", "priority", "vm_id"])
@pytest.mark.parametrize("blank", ["", "  ", float("nan")])
def test_a_blank_optional_field_given_to_one_vm_is_refused(store, field, blank):
    # A blank cell of a bulk row takes the default (register_many); a blank argument is a slip.
    with pytest.raises(InvalidValue):
        vms.db_register(store, U1, **{field: blank})
    assert vms.list_vms(store) == []


def test_auto_vm_id_is_the_lowest_free_one_filling_gaps(store):
    assert [vms.db_register(store, uuid_of(n)).vm_id for n in range(1, 4)] == [1, 2, 3]
    vms.db_remove(store, uuid_of(2))
    assert vms.db_register(store, uuid_of(4)).vm_id == 2
    assert vms.db_register(store, uuid_of(5)).vm_id == 4


def test_auto_vm_id_skips_explicit_ones(store):
    vms.db_register(store, uuid_of(1), vm_id=1)
    vms.db_register(store, uuid_of(2), vm_id=3)
    vms.db_register(store, uuid_of(3), vm_id=100)
    assert [vms.db_register(store, uuid_of(n)).vm_id for n in range(4, 8)] == [2, 4, 5, 6]


def test_auto_vm_id_ignores_rows_with_ids_below_1_written_by_others(store):
    with store.writing() as conn:
        conn.execute("INSERT INTO vms (vm_id, vm_uuid) VALUES (0, ?), (-4, ?)", (uuid_of(90), uuid_of(91)))
    assert vms.db_register(store, U1).vm_id == 1


def test_explicit_vm_id_must_be_free(store, snapshot):
    vms.db_register(store, U1, vm_name="web", vm_id=5)
    vms.db_register(store, U3, vm_id=6)
    before = snapshot()
    with pytest.raises(Conflict) as caught:
        vms.db_register(store, U2, vm_id="5")
    error = caught.value
    assert (error.field, error.value, error.holder) == ("vm_id", 5, f"VM web ({U1})")
    assert str(error) == f"vm_id 5 is already used by VM web ({U1})"
    with pytest.raises(Conflict, match=f"vm_id 6 is already used by VM {U3}$"):
        vms.db_register(store, U2, vm_id=6)
    assert snapshot() == before


def test_registering_a_uuid_twice_in_any_case_is_refused(store, snapshot):
    vms.db_register(store, U1, pool="B", vm_id=9)
    before = snapshot()
    with pytest.raises(AlreadyRegistered) as caught:
        vms.db_register(store, U1.upper(), pool="A")
    error = caught.value
    assert isinstance(error, Conflict) and (error.field, error.value) == ("VM UUID", U1)
    assert str(error) == f"VM {U1} is already registered (vm_id 9, pool B)"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("arguments", "field", "value"),
    [
        ({"vm_uuid": ""}, "VM UUID", ""),
        ({"vm_uuid": None}, "VM UUID", None),
        ({"vm_uuid": "vm-1"}, "VM UUID", "vm-1"),
        ({"vm_id": 0}, "vm_id", 0),
        ({"vm_id": -1}, "vm_id", -1),
        ({"vm_id": 2**31}, "vm_id", 2**31),
        ({"vm_id": "1.5"}, "vm_id", "1.5"),
        ({"vm_id": True}, "vm_id", True),
        ({"pool": "C"}, "pool", "C"),
        ({"pool": 1}, "pool", 1),
        ({"priority": "urgent"}, "priority", "urgent"),
        ({"priority": 3}, "priority", 3),
        ({"priority": False}, "priority", False),
        ({"vm_name": "two\nlines"}, "VM name", "two\nlines"),
    ],
)
def test_register_refuses_bad_values_with_a_named_error(store, snapshot, arguments, field, value):
    before = snapshot()
    with pytest.raises(InvalidValue) as caught:
        vms.db_register(store, **{"vm_uuid": U1, **arguments})
    error = caught.value
    assert (error.field, error.value) == (field, value)
    assert repr(value) in str(error) and "\n" not in str(error)
    assert snapshot() == before


def test_make_registration_validates_and_reports_the_first_problem():
    assert vms.make_registration(U1.upper(), " n ", "b", "high", "4") == Registration(U1, "n", "B", Priority.HIGH, 4)
    assert vms.make_registration(U1) == Registration(U1, None, "A", Priority.MEDIUM, None)
    with pytest.raises(InvalidValue) as caught:
        vms.make_registration("bad", pool="C", vm_id=0)
    assert caught.value.field == "VM UUID"
    with pytest.raises(InvalidValue) as caught:
        vms.make_registration(U1, pool="C", vm_id=0)
    assert caught.value.field == "pool"


def test_insert_registration_works_inside_the_callers_transaction(store):
    with store.writing() as conn:
        first = vms.insert_registration(conn, Registration(U1))
        second = vms.insert_registration(conn, Registration(U2, vm_id=first.vm_id + 1))
        with pytest.raises(AlreadyRegistered):
            vms.insert_registration(conn, Registration(U1))
        with pytest.raises(Conflict):
            vms.insert_registration(conn, Registration(U3, vm_id=2))
    assert [vm.vm_id for vm in (first, second)] == [1, 2]
    assert [row[0] for row in raw_rows(store)] == [1, 2]


# --- get, find, list --------------------------------------------------------------------------------------


def test_get_and_find_accept_any_case(store):
    vm = vms.db_register(store, U1)
    assert vms.get(store, U1.upper()) == vm == vms.find(store, f" {U1.upper()} ")


def test_get_an_unregistered_vm_is_not_found(store):
    with pytest.raises(NotFound) as caught:
        vms.get(store, U2.upper())
    error = caught.value
    assert (error.kind, error.key) == ("registered VM", U2)
    assert str(error) == (f"registered VM {U2} not found; if the host has this VM, register it with "
                          f"'vgpu-admin register-vm --vm-uuid={U2}' (see 'vgpu-admin scan-vms')")


def test_find_an_unregistered_vm_is_none(store):
    assert vms.find(store, U2) is None


@pytest.mark.parametrize("lookup", [vms.get, vms.find, vms.db_remove])
def test_lookups_refuse_a_malformed_uuid(store, lookup):
    with pytest.raises(InvalidValue) as caught:
        lookup(store, "web-01")
    assert (caught.value.field, caught.value.value) == ("VM UUID", "web-01")


@pytest.fixture
def mixed(store):
    """Six VMs over both pools and all priorities, registered out of order."""
    rows = [(6, "B", "low"), (2, "A", "low"), (5, "B", "high"), (3, "A", "high"), (1, "A", "high"), (4, "B", "medium")]
    for vm_id, pool, priority in rows:
        vms.db_register(store, uuid_of(vm_id), pool=pool, priority=priority, vm_id=vm_id)
    return store


def listed(found: list[VM]) -> list[int]:
    return [vm.vm_id for vm in found]


def test_list_orders_by_pool_then_priority_high_to_low_then_vm_id(mixed):
    assert listed(vms.list_vms(mixed)) == [1, 3, 2, 5, 4, 6]


@pytest.mark.parametrize(
    ("pool", "priority", "expected"),
    [("a", None, [1, 3, 2]), ("B", None, [5, 4, 6]), (None, "HIGH", [1, 3, 5]), (None, 0, [2, 6]), ("b", "medium", [4]), ("A", "medium", [])],
)
def test_list_filters_by_pool_and_priority(mixed, pool, priority, expected):
    assert listed(vms.list_vms(mixed, pool=pool, priority=priority)) == expected


def test_list_refuses_bad_filters(mixed):
    with pytest.raises(InvalidValue, match="invalid pool 'C'"):
        vms.list_vms(mixed, pool="C")
    with pytest.raises(InvalidValue, match="invalid priority 'top'"):
        vms.list_vms(mixed, priority="top")


def test_list_of_an_empty_store_is_empty(store):
    assert vms.list_vms(store) == []


def test_select_vms_and_select_vm_read_inside_a_transaction(mixed):
    with mixed.reading() as conn:
        assert listed(vms.select_vms(conn, "B", Priority.HIGH)) == [5]
        assert vms.select_vm(conn, uuid_of(4)).vm_id == 4
        assert vms.select_vm(conn, U1) is None


def test_vm_from_row_and_audit_record():
    vm = vms.vm_from_row((3, U1, None, "B", 2, "t0", "t1"))
    assert vm == VM(3, U1, None, "B", Priority.HIGH, "t0", "t1")
    assert vms.audit_record(vm) == {"vm_id": 3, "vm_name": None, "pool_id": "B", "priority": 2}


# --- plan, update -----------------------------------------------------------------------------------------


def test_plan_change_says_what_would_change_and_changes_nothing(store, snapshot):
    vm = vms.db_register(store, U1, pool="A", priority="low", vm_id=3)
    before = snapshot()
    plan = vms.plan_change(store, U1.upper(), pool="b", priority="HIGH")
    assert plan.vm == vm and plan.current == VMConfig("A", Priority.LOW, 3)
    assert plan.new == VMConfig("B", Priority.HIGH, 3)
    assert plan.changes == {"pool_id": ("A", "B"), "priority": (Priority.LOW, Priority.HIGH)}
    assert not plan.is_noop
    assert snapshot() == before


def test_plan_to_the_current_values_is_a_noop(store):
    vms.db_register(store, U1, pool="B", priority="high", vm_id=4)
    plan = vms.plan_change(store, U1, pool="B", priority=2, vm_id=4)
    assert plan.is_noop and plan.changes == {}


def test_plan_needs_at_least_one_field(store):
    vms.db_register(store, U1)
    with pytest.raises(InvalidValue) as caught:
        vms.plan_change(store, U1)
    assert (caught.value.field, caught.value.value, caught.value.allowed) == ("change", {}, ("pool", "priority", "vm_id"))
    assert str(caught.value) == f"no change given for VM {U1}: expected at least one of pool, priority or vm_id"


def test_plan_refuses_a_vm_id_held_by_another_vm(store):
    vms.db_register(store, U1, vm_id=1)
    vms.db_register(store, U2, vm_name="db", vm_id=2)
    with pytest.raises(Conflict) as caught:
        vms.plan_change(store, U1, vm_id=2)
    assert (caught.value.field, caught.value.value, caught.value.holder) == ("vm_id", 2, f"VM db ({U2})")


def test_plan_for_an_unregistered_vm_is_not_found(store):
    with pytest.raises(NotFound):
        vms.plan_change(store, U1, pool="B")


def test_update_changes_the_record(store):
    vms.db_register(store, U1, vm_name="web", pool="A", priority="low", vm_id=3)
    vm = vms.db_update(store, U1.upper(), pool="b", priority="2", vm_id="8")
    assert (vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority) == (8, U1, "web", "B", Priority.HIGH)
    assert vms.get(store, U1) == vm and vm.updated_at is not None
    assert raw_rows(store) == [(8, U1, "web", "B", 2)]


def test_update_one_field_keeps_the_others(store):
    vms.db_register(store, U1, pool="B", priority="high", vm_id=3)
    assert vms.db_update(store, U1, priority="low").config == VMConfig("B", Priority.LOW, 3)


def test_update_to_the_same_values_writes_nothing(store, snapshot):
    vm = vms.db_register(store, U1, pool="B", vm_id=3)
    before = snapshot()
    assert vms.db_update(store, U1, pool="b", vm_id=3) == vm
    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "error_type"),
    [({"vm_id": 2}, Conflict), ({"pool": "C"}, InvalidValue), ({"priority": 5}, InvalidValue), ({"vm_id": 0}, InvalidValue), ({}, InvalidValue)],
)
def test_a_refused_update_changes_nothing(store, snapshot, change, error_type):
    vms.db_register(store, U1, vm_id=1)
    vms.db_register(store, U2, vm_id=2)
    before = snapshot()
    with pytest.raises(error_type):
        vms.db_update(store, U1, **change)
    assert snapshot() == before


def test_update_of_an_unregistered_vm_is_not_found(store):
    with pytest.raises(NotFound, match=U1):
        vms.db_update(store, U1, pool="B")


def test_new_config_replaces_only_the_given_fields():
    current = VMConfig("A", Priority.LOW, 3)
    assert vms.new_config(current) == current
    assert vms.new_config(current, pool="b", vm_id="9") == VMConfig("B", Priority.LOW, 9)
    with pytest.raises(InvalidValue):
        vms.new_config(current, priority="max")


def test_update_record_and_delete_record_inside_the_callers_transaction(store):
    vms.db_register(store, U1, vm_id=1)
    vms.db_register(store, U2, vm_id=2)
    with store.writing() as conn:
        assert vms.update_record(conn, U1, VMConfig("B", Priority.HIGH, 5)).vm_id == 5
        with pytest.raises(Conflict):
            vms.update_record(conn, U1, VMConfig("B", Priority.HIGH, 2))
        with pytest.raises(NotFound):
            vms.update_record(conn, U3, VMConfig("A", Priority.LOW, 7))
        assert vms.delete_record(conn, U2).vm_id == 2
        with pytest.raises(NotFound):
            vms.delete_record(conn, U2)
    assert raw_rows(store) == [(5, U1, None, "B", 2)]


# --- remove -----------------------------------------------------------------------------------------------


def test_remove_returns_the_removed_vm_and_frees_its_id(store):
    vm = vms.db_register(store, U1)
    assert vms.db_remove(store, U1.upper()) == vm
    assert vms.find(store, U1) is None and raw_rows(store) == []
    assert vms.db_register(store, U2).vm_id == 1


def test_removing_an_unregistered_vm_is_not_found_and_changes_nothing(store, snapshot):
    vms.db_register(store, U1)
    before = snapshot()
    with pytest.raises(NotFound) as caught:
        vms.db_remove(store, U2)
    assert (caught.value.kind, caught.value.key) == ("registered VM", U2)
    assert snapshot() == before

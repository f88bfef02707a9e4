"""vgpu.convert: every library result to JSON-ready data and back, priorities as names."""

from __future__ import annotations

import json

import pytest

from vgpu import audit, bulk_register, convert, pools, vms
from vgpu.bulk import BulkPlan, BulkResult
from vgpu.bulk_register import RegistrationPlan, RegistrationResult
from vgpu.errors import InvalidValue, VgpuError
from vgpu.models import VM, AuditEntry, HostVM, Pool, PoolDetail, PowerState, Priority, VMConfig
from vgpu.scan import ScanReport
from vgpu.tables import AuditList, PoolList, ProblemTable, VMList

from . import lifekit
from .test_tables import _every_result, world  # noqa: F401  (the fixture, and one of every result)

U1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
U2 = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def filled(store):
    vms.db_register(store, U1, vm_name="web", pool="B", priority="high", vm_id=4)
    vms.db_register(store, U2, priority="low")
    vms.db_update(store, U2, pool="B")
    pools.set_pool_name(store, "A", "Prod ü")
    return store


def round_trip(obj, cls):
    data = convert.to_data(obj)
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    assert convert.from_data(data, cls) == obj
    return data


def test_vm_round_trips_with_its_priority_as_a_name(filled):
    vm = vms.get(filled, U1)
    assert round_trip(vm, VM) == {
        "vm_id": 4, "vm_uuid": U1, "vm_name": "web", "pool_id": "B", "priority": "high",
        "created_at": vm.created_at, "updated_at": vm.updated_at,
    }


def test_pool_round_trips_and_carries_its_vm_count(filled):
    pool_b = pools.list_pools(filled)[1]
    data = round_trip(pool_b, Pool)
    assert data["vm_count"] == 2 and data["counts"] == {"low": 1, "medium": 0, "high": 1}
    assert data["enabled"] is True and data["pool_name"] == "Pool B"


def test_pool_detail_round_trips(filled):
    detail = pools.show_pool(filled, "B")
    data = round_trip(detail, PoolDetail)
    assert [vm["priority"] for vm in data["vms"]] == ["high", "low"]
    assert isinstance(convert.from_data(data, PoolDetail).vms, tuple)


def test_audit_entries_round_trip(filled):
    entries = audit.history(filled)
    data = round_trip(entries, list[AuditEntry])
    assert [e["action"] for e in data] == ["rename-pool", "update", "register", "register"]
    assert data[0]["new"] == {"pool_name": "Prod ü"} and data[-1]["old"] is None


@pytest.mark.parametrize("cls", [list[VM], list[Pool]])
def test_lists_round_trip(filled, cls):
    objects = vms.list_vms(filled) if cls == list[VM] else pools.list_pools(filled)
    data = round_trip(objects, cls)
    assert isinstance(data, list) and len(data) == 2


def test_small_value_types_round_trip():
    assert round_trip(VMConfig("A", Priority.MEDIUM, 3), VMConfig) == {"pool_id": "A", "priority": "medium", "vm_id": 3}
    host_vm = HostVM(U1, "web", PowerState.RUNNING, "-m 512")
    assert round_trip(host_vm, HostVM)["power_state"] == "running"


def test_priorities_are_accepted_back_as_names_or_numbers():
    data = {"vm_id": 1, "vm_uuid": U1, "vm_name": None, "pool_id": "A"}
    assert convert.from_data({**data, "priority": "HIGH"}, VM).priority is Priority.HIGH
    assert convert.from_data({**data, "priority": 0}, VM).priority is Priority.LOW
    assert convert.from_data({**data, "priority": "1"}, VM).priority is Priority.MEDIUM


def test_an_unknown_priority_is_refused_when_structuring():
    with pytest.raises(InvalidValue) as caught:
        convert.from_data({"vm_id": 1, "vm_uuid": U1, "vm_name": None, "pool_id": "A", "priority": "max"}, VM)
    assert caught.value.field == "priority" and caught.value.value == "max"


def test_the_converter_is_our_own_object_not_the_global_one():
    import cattrs

    assert convert.converter is not cattrs.global_converter
    assert cattrs.global_converter.unstructure(Priority.HIGH) == 2  # our hooks did not leak into it
    assert convert.to_data(Priority.HIGH) == "high" and convert.to_data(PowerState.HALTED) == "halted"


# Every result docs/library.md lists as a table, by the name tests/test_tables.py's _every_result gives it, and
# the class from_data rebuilds it as (a list of VMs as list[VM]; an InvalidRows, an error, as any VgpuError).
RESULT_CLASSES = {
    "list_vms": list[VM], "list_pools": list[Pool], "history": list[AuditEntry], "show_pool": PoolDetail,
    "status": ScanReport, "bulk_plan": BulkPlan, "bulk_result": BulkResult, "invalid_rows": VgpuError,
    "registration_plan": RegistrationPlan, "registration_result": RegistrationResult,
}


def test_every_result_the_docs_list_has_a_class_to_rebuild_it_as(world):
    assert set(_every_result(world)) == set(RESULT_CLASSES)


@pytest.mark.parametrize("name", sorted(RESULT_CLASSES))
@pytest.mark.parametrize("as_own_type", [False, True], ids=["as-documented-class", "as-its-own-type"])
def test_every_result_round_trips_through_json(world, name, as_own_type):
    # from_data(to_data(x), type(x)) too: conn.list_vms() is a VMList, which from_data builds back as one
    result = _every_result(world)[name]
    cls = type(result) if as_own_type else RESULT_CLASSES[name]
    data = json.loads(json.dumps(convert.to_data(result)))
    back = convert.from_data(data, cls)
    assert convert.to_data(back) == data
    if as_own_type:
        assert type(back) is type(result)
    if not isinstance(result, BaseException):  # errors compare by identity: their data is compared above
        assert back == result


def test_a_registration_plan_round_trips_with_every_part_and_tuple_labels(world):
    # A MultiIndex's labels are tuples (df.to_dict("index") gives them as keys): JSON makes them lists, and
    # they come back as the tuples the caller indexes the frame with, in the plan's rows and its problems.
    # VM 1 is registered in pool A (the row moves it), VM 2 in pool B (the row leaves it as it is).
    world.sim.add_vm(lifekit.vm_uuid(4), "web-1", "running")  # new, named as VM 1 is
    rows = {("x", 1): {"uuid": lifekit.vm_uuid(1), "pool": "B"}, ("x", 2): {"uuid": lifekit.vm_uuid(2)},
            ("y", 1): {"uuid": lifekit.vm_uuid(4)}, ("y", 2): {"uuid": "nope"}}
    plan = bulk_register.plan_registrations(world.store, world.sim, rows, on_existing="update")
    assert plan.vms and plan.updates.plans and plan.existing and plan.shared_names and plan.problems
    data = json.loads(json.dumps(convert.to_data(plan)))
    back = convert.from_data(data, RegistrationPlan)
    assert back.labels == tuple(rows) and back.rows == (("y", 1),) and back.update_rows == (("x", 1),)
    assert [problem.row for problem in back.problems] == [("y", 2)]
    assert convert.to_data(back) == data and back.records() == plan.records()
    problems = convert.from_data(data["problems"], ProblemTable)  # the plan's problems on their own
    assert isinstance(problems, ProblemTable) and convert.to_data(problems) == data["problems"]
    clean = bulk_register.plan_registrations(world.store, world.sim, {("y", 1): {"uuid": lifekit.vm_uuid(4)}})
    assert convert.from_data(json.loads(json.dumps(convert.to_data(clean))), RegistrationPlan) == clean


def test_a_plan_that_finishes_a_registration_cut_short_round_trips_and_so_does_its_result(world):
    world.sim.add_vm(lifekit.vm_uuid(5), "cut-5", "halted")
    vms.db_register(world.store, lifekit.vm_uuid(5), pool="B")  # registered, its segment never written
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": lifekit.vm_uuid(5)}], on_existing="skip")
    assert plan.to_write == (lifekit.vm_uuid(5),)
    data = json.loads(json.dumps(convert.to_data(plan)))
    assert data["to_write"] == [lifekit.vm_uuid(5)]
    back = convert.from_data(data, RegistrationPlan)
    assert back == plan and back.records() == plan.records()
    result = bulk_register.register_planned(world.store, world.sim, plan)
    assert [vm.vm_uuid for vm in result.rewritten] == [lifekit.vm_uuid(5)]
    assert convert.from_data(json.loads(json.dumps(convert.to_data(result))), RegistrationResult) == result


GOOD_VM = {"vm_id": 1, "vm_uuid": U1, "vm_name": None, "pool_id": "A", "priority": "high"}


@pytest.mark.parametrize(("data", "cls", "sentence"), [
    ({**GOOD_VM, "priority": "urgent"}, VM,
     "from_data() cannot build a VM: invalid priority 'urgent': expected low, medium, high, 0, 1 or 2"),
    ({**GOOD_VM, "vm_id": "x"}, VM, "from_data() cannot build a VM: invalid vm_id 'x': expected int"),
    ({"vm_id": 1, "vm_uuid": U1}, VM, "from_data() cannot build a VM: no vm_name in the data (and 2 more problems)"),
    ("VM-1", VM, "from_data() cannot build a VM: invalid data 'VM-1': expected a dict, as to_data gives a VM"),
    (None, VM, "from_data() cannot build a VM: invalid data None: expected a dict, as to_data gives a VM"),
    ([GOOD_VM, {**GOOD_VM, "priority": "max"}], list[VM],
     "from_data() cannot build a list[VM]: invalid [1].priority 'max': expected low, medium, high, 0, 1 or 2"),
    ([GOOD_VM, 7], list[VM], "from_data() cannot build a list[VM]: invalid [1] 7: expected a dict, as to_data gives a VM"),
], ids=["bad-priority", "bad-vm_id", "missing-keys", "a-string", "none", "in-a-list", "not-a-dict-in-a-list"])
def test_bad_data_is_an_invalid_value_naming_the_type_the_field_and_what_is_expected(data, cls, sentence):
    with pytest.raises(InvalidValue) as caught:
        convert.from_data(data, cls)
    assert str(caught.value) == sentence and "\n" not in str(caught.value)


@pytest.mark.parametrize("cls", [VMList, PoolList, AuditList])
def test_bad_data_for_a_result_list_is_an_invalid_value_naming_the_row(cls):
    with pytest.raises(InvalidValue) as caught:
        convert.from_data([7], cls)
    assert str(caught.value).startswith(f"from_data() cannot build a {cls.__name__}: invalid [0] 7: expected a dict")


def test_a_type_from_data_cannot_build_is_an_invalid_value_naming_it():
    class Unknown:
        pass

    with pytest.raises(InvalidValue) as caught:
        convert.from_data({}, Unknown)
    assert caught.value.field == "cls" and caught.value.value == "Unknown"
    assert str(caught.value).startswith("from_data() cannot build a Unknown: it builds the library's results")


def test_a_bad_row_problem_in_a_plan_names_where_it_is():
    data = {"vms": [], "rows": [], "problems": [{"row": 1, "error": "NoSuchError", "message": "x"}]}
    with pytest.raises(InvalidValue) as caught:
        convert.from_data(data, RegistrationPlan)
    assert str(caught.value) == ("from_data() cannot build a RegistrationPlan: invalid problems[0].error 'NoSuchError': "
                                 "expected the name of a VgpuError class")
    assert caught.value.field == "problems[0].error" and caught.value.value == "NoSuchError"

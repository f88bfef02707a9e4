"""Every library error keeps all its data across a process boundary: pickled (a ProcessPoolExecutor worker
raising it) and as JSON through vgpu.convert (``to_data`` / ``from_data``)."""

from __future__ import annotations

import concurrent.futures
import json
import pickle

import pytest

from vgpu import convert, errors
from vgpu.errors import RowProblem, VgpuError
from vgpu.models import Priority, VMConfig

UUID = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


def _examples() -> list[VgpuError]:
    """One or more of every error class, each with every piece of data it can carry."""
    cause = errors.HypervisorError("VM_FAILED_START", "VM would not start", ["VM_FAILED_START", "OpaqueRef:1"])
    noted = errors.NotFound("registered VM", UUID, "register it first")
    noted.add_note("while planning row 3")
    restarted = errors.SegmentChanged(UUID, None, "")
    restarted.vm_restarted = True
    return [
        errors.VgpuError("something went wrong"),
        errors.InvalidValue("pool", "C", ("A", "B")),
        errors.InvalidValue("change", {}, ("pool", "priority", "vm_id"), sentence="no change given"),
        errors.InvalidColumns.doubled(("pool", "pool_id"), "pool"),
        errors.InvalidColumns.extra_cells(["x", "y"]),
        errors.NotRows("DataFrame", 'pass df.to_dict("records")'),
        errors.InvalidRows([
            RowProblem(2, errors.InvalidValue("pool", "C", ("A", "B"))),
            RowProblem("web-7", errors.Conflict("vm_id", 7, "row 1")),
            RowProblem(4, errors.AlreadyRegistered(UUID, 3, "B")),
        ], "the plan leaves these rows out"),
        noted,
        errors.NotRegistered(UUID, "web-1", "remove it on the host instead"),
        errors.Conflict("pool name", "Dev", "pool A", sentence='pool name "Dev" is already used by pool A'),
        errors.AlreadyRegistered(UUID, 3, "B"),
        errors.StalePlan(UUID, "web-1", VMConfig("A", Priority.HIGH, 3), VMConfig("B", Priority.LOW, 3)),
        errors.StaleRegistrations([f"vm_id 3, which the plan gave VM {UUID}, is now used by VM web-1 (u)"], [UUID], [3],
                                  (UUID, VMConfig("A", Priority.HIGH, 3), None)),
        errors.StaleRegistrations([f"VM {UUID} is not registered now (the plan found it registered: vm_id 3, pool A, "
                                   "priority high (2))"], [], [], (UUID, VMConfig("A", Priority.HIGH, 3), None),
                                  unregistered_since=[UUID]),
        errors.StoreError("/x/v.db", "database /x/v.db is read-only"),
        cause,
        errors.HostUnreachable("HOST_UNREACHABLE", "host h is unreachable", ["HOST_UNREACHABLE", "h"]),
        errors.Busy(UUID, "2026-01-01 10:00", 5),
        errors.Busy(UUID, "2026-01-01 10:00", None, interrupted=True),
        errors.Cancelled(),
        errors.Cancelled("No change."),
        errors.ReconfigureFailed(UUID, cause, rolled_back=True),
        errors.ReconfigureFailed(UUID, cause, rolled_back=False, rollback_error=errors.StoreError("p", "disk full")),
        errors.Busy(UUID, "2026-01-01 10:00", 6, session="h1:4242", recovering=True),
        errors.ReconfigureFailed(UUID, cause, rolled_back=True, restart_error=cause, restarted=False),
        errors.ShutdownNotConfirmed(UUID, 120),
        errors.ShutdownNotConfirmed(UUID, 30, cause),
        errors.ConfigError("/etc/vgpu/config.toml", "line 3 is not KEY = VALUE"),
        errors.UnsafeFile("/etc/vgpu/config.toml", "the config file", "others can change it (mode 0666)", "chmod go-w /etc/vgpu/config.toml"),
        errors.DamagedDatabase("vms", "with vm_id 7", "priority 7, where the spec allows 0, 1 or 2", "/x/v.db"),
        errors.IncompleteSchema("/x/v.db", ["CHECK on vms.priority", "index idx_vm_pool"]),
        errors.DuplicateVM(UUID, ["pool1", "pool2"]),
        errors.MissingDependency("pandas", "to_pandas()", "pip install pandas"),
        errors.SegmentChanged(UUID, "web-1", "-vnc :1"),
        restarted,
        errors.ShutDownSincePlan(UUID, None),
        errors.StartedSincePlan(UUID, "web-1"),
        errors.PausedSincePlan("VM_BAD_POWER_STATE", f"VM {UUID} is paused; nothing was changed", [UUID, "running or halted", "paused"]),
    ]


def _every_error_class() -> set[type]:
    found, todo = set(), [VgpuError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def state(value):
    """An error as comparable data: its class, its sentence, its args and every attribute, nested errors too."""
    if isinstance(value, BaseException):
        return (type(value), str(value), value.args, {key: state(item) for key, item in vars(value).items()})
    if isinstance(value, RowProblem):
        return ("RowProblem", value.row, state(value.error))
    if isinstance(value, (list, tuple)):
        return type(value), [state(item) for item in value]
    if isinstance(value, dict):
        return {key: state(item) for key, item in value.items()}
    return value


def test_the_examples_cover_every_error_class():
    assert {type(error) for error in _examples()} == _every_error_class()


@pytest.mark.parametrize("error", _examples(), ids=lambda error: type(error).__name__)
def test_every_error_pickles_with_all_its_data(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and state(copy) == state(error)
    assert str(copy) == str(error) and copy.args == error.args


@pytest.mark.parametrize("error", _examples(), ids=lambda error: type(error).__name__)
def test_every_error_round_trips_through_json_with_all_its_data(error):
    data = json.loads(json.dumps(convert.to_data(error)))
    assert data["error"] == type(error).__name__ and data["message"] == str(error)
    for name in vars(error):
        if name not in ("sentence", "__notes__"):
            assert name in data, name
    for cls in (type(error), VgpuError, Exception):  # asked for as its own class or any base of it
        back = convert.from_data(data, cls)
        assert type(back) is type(error) and state(back) == state(error)


def test_json_names_the_data_a_script_branches_on():
    examples = {type(error).__name__: error for error in reversed(_examples())}  # the first of each class
    failed = convert.to_data(examples["ReconfigureFailed"])  # rolled back
    assert failed["rolled_back"] is True and failed["vm_uuid"] == UUID
    assert failed["cause"] == {"error": "HypervisorError", "message": "VM would not start", "code": "VM_FAILED_START",
                               "details": ["VM_FAILED_START", "OpaqueRef:1"]}
    conflict = convert.to_data(errors.Conflict("vm_id", 7, "VM web-1 (u)"))
    assert conflict == {"error": "Conflict", "message": "vm_id 7 is already used by VM web-1 (u)", "field": "vm_id",
                        "value": 7, "holder": "VM web-1 (u)"}
    stale = convert.to_data(examples["StalePlan"])
    assert stale["current"] == {"pool_id": "B", "priority": "low", "vm_id": 3}
    rows = convert.to_data(examples["InvalidRows"])
    assert rows["problems"][1] == {"row": "web-7", "error": "Conflict", "message": "vm_id 7 is already used by row 1",
                                   "field": "vm_id", "value": 7, "holder": "row 1"}
    assert rows["outcome"] == "the plan leaves these rows out"


def test_a_value_that_is_not_json_is_kept_as_its_repr():
    data = convert.to_data(errors.InvalidValue("row", object, "a mapping"))
    assert data["value"] == repr(object) and json.dumps(data)


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")], ids=repr)
def test_a_float_that_is_not_json_is_kept_as_its_repr(number):
    data = convert.to_data(errors.InvalidValue("vm_id", number, "a whole number"))
    assert data["value"] == repr(number) and json.dumps(data, allow_nan=False)


def test_an_unknown_error_name_is_refused_when_structuring():
    with pytest.raises(errors.InvalidValue) as caught:
        convert.from_data({"error": "NoSuchError", "message": "x"}, VgpuError)
    assert caught.value.field == "error" and caught.value.value == "NoSuchError"


def _raise(index: int) -> None:
    raise _examples()[index]


def _fine() -> str:
    return "still working"


def test_an_error_raised_in_a_process_pool_worker_reaches_the_caller_whole():
    examples = _examples()
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        for index, error in enumerate(examples):
            with pytest.raises(VgpuError) as caught:
                pool.submit(_raise, index).result()
            assert type(caught.value) is type(error) and state(caught.value) == state(error)
        assert pool.submit(_fine).result() == "still working"  # the pool was not broken by any of them


def test_an_interrupt_is_data_but_not_rebuilt_and_the_refusal_says_why():
    # BulkInterrupted is a KeyboardInterrupt carrying a partial result, not a VgpuError: to_data gives its
    # data (a script logs it), and from_data says it does not rebuild one instead of contradicting itself.
    from vgpu.bulk import BulkResult
    from vgpu.errors import BulkInterrupted, InvalidValue

    data = json.loads(json.dumps(convert.to_data(BulkInterrupted(BulkResult((), ()), "Interrupted: 0 done"))))
    assert data["error"] == "BulkInterrupted" and data["partial"]["results"] == []
    with pytest.raises(InvalidValue) as caught:
        convert.from_data(data, BulkInterrupted)
    assert str(caught.value) == ("from_data() does not rebuild a BulkInterrupted (an interrupt, not an error of the "
                                 "library): read the data as it is; its partial result is data['partial']")

"""One exception root: every error carries its data and renders one sentence naming the bad value."""

from __future__ import annotations

import inspect

import pytest

from vgpu import errors
from vgpu.errors import (
    AlreadyRegistered,
    Busy,
    Cancelled,
    ConfigError,
    Conflict,
    HostUnreachable,
    HypervisorError,
    InvalidColumns,
    InvalidRows,
    InvalidValue,
    NotFound,
    NotRows,
    ReconfigureFailed,
    RowProblem,
    StalePlan,
    StoreError,
    VgpuError,
)
from vgpu.models import Priority, VMConfig

UUID = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


def test_every_exception_class_in_the_module_derives_from_the_root():
    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, BaseException)]
    assert VgpuError in classes and len(classes) > 10
    # but the one interrupt: a KeyboardInterrupt, so that no `except Exception` (or VgpuError) swallows it
    assert all(issubclass(cls, VgpuError) for cls in classes if cls is not errors.BulkInterrupted)
    assert issubclass(errors.BulkInterrupted, KeyboardInterrupt) and not issubclass(errors.BulkInterrupted, Exception)


EXAMPLES = [
    (InvalidValue("pool", "C", ("A", "B")), "invalid pool 'C': expected A or B",
     {"field": "pool", "value": "C", "allowed": ("A", "B")}),
    (InvalidValue("priority", "x", ("low", "medium", "high")), "invalid priority 'x': expected low, medium or high", {}),
    (InvalidValue("vm_id", 0, "a whole number"), "invalid vm_id 0: expected a whole number", {"value": 0}),
    (InvalidValue("name", "a\nb", "one line"), "invalid name 'a\\nb': expected one line", {"value": "a\nb"}),
    (InvalidValue("change", {}, ("pool", "vm_id"), sentence="no change given"), "no change given",
     {"field": "change", "value": {}, "allowed": ("pool", "vm_id")}),
    (NotFound("registered VM", UUID), f"registered VM {UUID} not found", {"kind": "registered VM", "key": UUID}),
    (NotFound("pool", "B", "the row is gone"), "pool B not found; the row is gone", {"kind": "pool", "key": "B"}),
    (Conflict("vm_id", 7, "VM web (u)"), "vm_id 7 is already used by VM web (u)",
     {"field": "vm_id", "value": 7, "holder": "VM web (u)"}),
    (Conflict("pool name", "Dev", "pool A", sentence='pool name "Dev" is already used by pool A'),
     'pool name "Dev" is already used by pool A', {"field": "pool name", "value": "Dev", "holder": "pool A"}),
    (AlreadyRegistered(UUID, 3, "B"), f"VM {UUID} is already registered (vm_id 3, pool B)",
     {"field": "VM UUID", "value": UUID}),
    (InvalidColumns.missing(("vm_uuid", "uuid"), "VM UUID"), "no vm_uuid (or uuid) column: every row needs the VM UUID",
     {"field": "column", "value": "", "columns": (), "allowed": "a vm_uuid or uuid column"}),
    (InvalidColumns.doubled(("pool", " Pool", "pool_id"), "pool"), "columns 'pool', ' Pool' and 'pool_id' all give the pool; keep one of them",
     {"columns": ("pool", " Pool", "pool_id"), "value": "pool,  Pool, pool_id"}),
    (InvalidColumns.extra_cells(["x", "a\nb"]), "the row has more cells than the header (extra: 'x', 'a\\nb')",
     {"columns": ("x", "a\nb")}),
    (NotRows("DataFrame", "pass df.to_dict()"), "expected a list of rows, not a DataFrame; pass df.to_dict()",
     {"field": "rows", "value": "DataFrame"}),
    (StalePlan(UUID, "web-1", VMConfig("A", Priority.HIGH, 3), VMConfig("B", Priority.LOW, 3)),
     f"VM web-1 ({UUID}) was changed after this plan was made (pool is now B, priority is now low (0)); plan again",
     {"field": "configuration of VM", "value": UUID, "vm_uuid": UUID, "current": VMConfig("B", Priority.LOW, 3)}),
    (StalePlan(UUID, None, VMConfig("A", Priority.HIGH, 3), VMConfig("A", Priority.HIGH, 9)),
     f"VM {UUID} was changed after this plan was made (vm_id is now 9); plan again", {"planned": VMConfig("A", Priority.HIGH, 3)}),
    (StoreError("/x/v.db", "database /x/v.db is read-only"), "database /x/v.db is read-only", {"path": "/x/v.db"}),
    (HypervisorError("VM_LACKS_FEATURE", "the guest has no PV drivers", ["VM_LACKS_FEATURE", "ref"]),
     "the guest has no PV drivers", {"code": "VM_LACKS_FEATURE", "details": ("VM_LACKS_FEATURE", "ref")}),
    (HostUnreachable("UNREACHABLE", "host h is unreachable"), "host h is unreachable", {"code": "UNREACHABLE", "details": ()}),
    (Busy(UUID, "2026-01-01 10:00", 5), f"VM {UUID} is being reconfigured by another session since 2026-01-01 10:00",
     {"vm_uuid": UUID, "since": "2026-01-01 10:00", "operation_id": 5}),
    (Cancelled(), "Operation cancelled; nothing was changed.", {}),
    (Cancelled("No change."), "No change.", {}),
    (ConfigError("/etc/vgpu.toml", "line 3 is not KEY = VALUE"), "/etc/vgpu.toml: line 3 is not KEY = VALUE",
     {"source": "/etc/vgpu.toml"}),
]


@pytest.mark.parametrize(("error", "sentence", "data"), EXAMPLES, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_error_keeps_its_data_and_renders_one_sentence(error, sentence, data):
    assert isinstance(error, VgpuError)
    assert str(error) == sentence == error.sentence
    assert "\n" not in str(error)
    for name, value in data.items():
        assert getattr(error, name) == value


def test_already_registered_is_a_conflict_and_pickles_its_sentence():
    error = AlreadyRegistered(UUID, 3, "B")
    assert isinstance(error, Conflict)
    assert error.args == (str(error),)
    assert error.holder == "registered VM with vm_id 3 in pool B"


def test_column_problems_and_not_rows_are_invalid_values_that_pickle_their_sentence():
    for error in (InvalidColumns.missing(("uuid",), "VM UUID"), NotRows("dict", "pass [row]")):
        assert isinstance(error, InvalidValue) and error.args == (str(error),)
    assert str(InvalidColumns.missing(("uuid",), "VM UUID")) == "no uuid column: every row needs the VM UUID"


def test_host_unreachable_is_a_hypervisor_error():
    assert issubclass(HostUnreachable, HypervisorError)


def test_reconfigure_failed_names_the_cause_and_the_rollback():
    cause = HypervisorError("START_FAILED", "VM would not start")
    restored = ReconfigureFailed(UUID, cause, rolled_back=True)
    assert restored.vm_uuid == UUID and restored.cause is cause and restored.rolled_back
    assert str(restored) == (
        f"VM {UUID} failed with its new configuration (VM would not start); "
        "the previous configuration was restored and the VM started again"
    )
    stuck = ReconfigureFailed(UUID, cause, rolled_back=False, rollback_error=StoreError("p", "disk full"))
    assert not stuck.rolled_back and str(stuck.rollback_error) == "disk full"
    assert str(stuck) == (  # the host is not what failed: no "once the host is reachable"
        f"reconfiguring VM {UUID} failed (VM would not start) and rolling back also failed (disk full); "
        "run 'vgpu-admin recover' once the database can be written"
    )
    assert "\n" not in str(stuck)
    gone = ReconfigureFailed(UUID, cause, rolled_back=False, rollback_error=HostUnreachable("HOST_UNREACHABLE", "no route"))
    assert str(gone).endswith("rolling back also failed (no route); run 'vgpu-admin recover' once the host is reachable")
    halted = ReconfigureFailed(UUID, cause, rolled_back=True, restart_error=HypervisorError("X", "no memory"))
    assert str(halted) == (
        f"reconfiguring VM {UUID} failed (VM would not start); its previous configuration is in place, but the VM "
        "would not start with it either (no memory): it is halted and marked as needing attention; fix the cause on "
        "the host, then start it")


def test_invalid_rows_lists_every_problem_and_summarises_in_one_line():
    problems = [
        RowProblem(2, InvalidValue("pool", "C", ("A", "B"))),
        RowProblem(2, InvalidValue("priority", "x", ("low", "high"))),
        RowProblem(5, Conflict("vm_id", 3, "row 1")),
    ]
    error = InvalidRows(problems)
    assert error.problems == problems and error.problems is not problems
    assert str(error) == "3 problems in 2 rows, nothing was changed: row 2: invalid pool 'C': expected A or B (and 2 more)"
    assert str(problems[2]) == "row 5: vm_id 3 is already used by row 1"
    assert repr(problems[0]).startswith("RowProblem(row=2, error=InvalidValue(")


def test_invalid_rows_with_one_problem_per_row_counts_bad_rows():
    error = InvalidRows([RowProblem(1, InvalidValue("pool", "C", ("A", "B"))), RowProblem(4, Conflict("vm_id", 3, "row 1"))])
    assert str(error) == "2 bad rows, nothing was changed: row 1: invalid pool 'C': expected A or B (and 1 more)"


def test_invalid_rows_with_one_problem_has_no_more_clause():
    error = InvalidRows(iter([RowProblem(1, InvalidValue("pool", "", ("A", "B")))]))
    assert str(error) == "1 bad row, nothing was changed: row 1: invalid pool '': expected A or B"
    assert [p.row for p in error.problems] == [1]


class _Table:
    """Something whose repr spans lines, as a pandas Series passed as a row does."""

    def __repr__(self) -> str:
        return "uuid    0e1f\npool       B\nName: 3, dtype: object"


def test_a_value_whose_repr_spans_lines_is_shown_on_one_line():
    error = InvalidValue("row", _Table(), "a mapping of fields")
    assert str(error) == "invalid row uuid 0e1f pool B Name: 3, dtype: object: expected a mapping of fields"
    assert error.value.__class__ is _Table  # the data stays as given



def test_every_error_class_is_named_by_the_modules_all():
    # `from vgpu.errors import *` (and the docs' tables) must reach each class a caller can catch.
    public = {name for name, value in vars(errors).items() if inspect.isclass(value) and not name.startswith("_")
              and issubclass(value, (errors.VgpuError, errors.BulkInterrupted)) and value.__module__.startswith("vgpu")}
    assert public - set(errors.__all__) == set()

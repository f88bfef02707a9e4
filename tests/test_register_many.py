"""vgpu.vms.register_many: one transaction, all or nothing, every bad row reported at once."""

from __future__ import annotations

import csv

import pytest

from vgpu import audit, vms
from vgpu.errors import AlreadyRegistered, Conflict, InvalidColumns, InvalidRows, InvalidValue, NotRows
from vgpu.models import Priority, Registration


def uuid_of(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


def stored(store) -> list[tuple]:
    with store.reading() as conn:
        return conn.execute("SELECT vm_id, vm_uuid, vm_name, pool_id, priority FROM vms ORDER BY vm_id").fetchall()


def refused(store, rows) -> list[tuple[int, type, str, object]]:
    """The problems of a refused batch as (row, error class, field, value)."""
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, rows)
    error = caught.value
    text = str(error)
    bad_rows = len({p.row for p in error.problems})
    counted = f"{len(error.problems)} bad row" if bad_rows == len(error.problems) else f"{len(error.problems)} problems in {bad_rows} row"
    assert "\n" not in text and text.startswith(counted) and "nothing was changed" in text
    return [(p.row, type(p.error), p.error.field, p.error.value) for p in error.problems]


def test_registers_every_row_in_input_order(store):
    rows = [
        {"vm_uuid": uuid_of(1).upper(), "vm_name": "web", "pool": "b", "priority": "HIGH"},
        {"uuid": uuid_of(2), "name": " db ", "pool_id": "A", "priority": 0},
        Registration(uuid_of(3), "cache", "B", Priority.LOW, 7),
        {"vm_uuid": uuid_of(4), "pool": "", "priority": None, "vm_id": "  "},
    ]
    result = vms.db_register_many(store, rows)
    assert [(vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority) for vm in result] == [
        (1, uuid_of(1), "web", "B", Priority.HIGH),
        (2, uuid_of(2), "db", "A", Priority.LOW),
        (7, uuid_of(3), "cache", "B", Priority.LOW),
        (3, uuid_of(4), None, "A", Priority.MEDIUM),
    ]
    assert sorted(stored(store)) == sorted((vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, int(vm.priority)) for vm in result)
    assert all(vm.created_at for vm in result)


def test_explicit_ids_in_the_batch_are_reserved_before_auto_ids_are_given(store):
    rows = [{"vm_uuid": uuid_of(1)}, {"vm_uuid": uuid_of(2), "vm_id": 1}, {"vm_uuid": uuid_of(3)}, {"vm_uuid": uuid_of(4), "vm_id": 3}]
    assert [vm.vm_id for vm in vms.db_register_many(store, rows)] == [2, 1, 4, 3]


def test_auto_ids_fill_the_gaps_left_in_the_database(store):
    vms.db_register(store, uuid_of(100), vm_id=1)
    vms.db_register(store, uuid_of(101), vm_id=3)
    result = vms.db_register_many(store, ({"vm_uuid": uuid_of(n)} for n in range(3)))  # any iterable
    assert [vm.vm_id for vm in result] == [2, 4, 5]


def test_every_registration_gets_an_audit_entry(store):
    result = vms.db_register_many(store, [{"vm_uuid": uuid_of(n), "priority": "high"} for n in range(5)])
    entries = audit.history(store)
    assert sorted(e.subject for e in entries) == sorted(vm.vm_uuid for vm in result)
    assert all(e.action == "register" and e.old is None and e.new["priority"] == 2 for e in entries)


def test_an_empty_batch_registers_nothing(store, snapshot):
    before = snapshot()
    assert vms.db_register_many(store, []) == []
    assert snapshot() == before


def test_one_bad_row_refuses_the_whole_batch(store, snapshot):
    vms.db_register(store, uuid_of(50))
    before = snapshot()
    rows = [{"vm_uuid": uuid_of(n)} for n in range(10)] + [{"vm_uuid": uuid_of(10), "pool": "C"}]
    assert refused(store, rows) == [(11, InvalidValue, "pool", "C")]
    assert snapshot() == before


def test_every_bad_row_is_reported_with_all_its_problems(store, snapshot):
    before = snapshot()
    rows = [
        {"vm_uuid": uuid_of(1)},
        {"vm_uuid": "nope"},
        {"vm_uuid": uuid_of(3)},
        {"vm_uuid": uuid_of(4), "pool": "Z", "priority": "urgent", "vm_id": 0},
        {"vm_uuid": uuid_of(5), "vm_id": "1.5"},
        {"uuid": None},
    ]
    assert refused(store, rows) == [
        (2, InvalidValue, "VM UUID", "nope"),
        (4, InvalidValue, "pool", "Z"),
        (4, InvalidValue, "priority", "urgent"),
        (4, InvalidValue, "vm_id", 0),
        (5, InvalidValue, "vm_id", "1.5"),
        (6, InvalidValue, "VM UUID", None),
    ]
    assert snapshot() == before


def test_a_row_that_is_not_a_mapping_is_reported(store):
    rows = [{"vm_uuid": uuid_of(1)}, uuid_of(2), 7]
    assert refused(store, rows) == [(2, InvalidValue, "row", uuid_of(2)), (3, InvalidValue, "row", 7)]


def test_duplicates_within_the_batch_name_the_first_row(store):
    rows = [
        {"vm_uuid": uuid_of(1)},
        {"vm_uuid": uuid_of(2), "vm_id": 9},
        {"vm_uuid": uuid_of(1).upper()},
        {"vm_uuid": uuid_of(4), "vm_id": "9"},
    ]
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, rows)
    problems = caught.value.problems
    assert [(p.row, p.error.field, p.error.value, p.error.holder) for p in problems] == [
        (3, "VM UUID", uuid_of(1), "row 1"),
        (4, "vm_id", 9, "row 2"),
    ]
    assert all(isinstance(p.error, Conflict) for p in problems)
    assert stored(store) == []


def test_a_row_refused_for_a_repeated_uuid_still_asks_for_its_vm_id(store):
    # Fixing row 2's UUID would make it clash with row 3 over vm_id 7: one pass reports both, as it does
    # for every other row the batch refuses. A row repeating its first row's vm_id too gets one problem.
    rows = [
        {"vm_uuid": uuid_of(1), "vm_id": 5},
        {"vm_uuid": uuid_of(1), "vm_id": 7},
        {"vm_uuid": uuid_of(3), "vm_id": 7},
        {"vm_uuid": uuid_of(1), "vm_id": 5},
    ]
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, rows)
    assert [(p.row, p.error.field, p.error.value, p.error.holder) for p in caught.value.problems] == [
        (2, "VM UUID", uuid_of(1), "row 1"),
        (3, "vm_id", 7, "row 2"),
        (4, "VM UUID", uuid_of(1), "row 1"),
    ]
    assert stored(store) == []


def test_a_row_repeating_a_refused_row_is_refused_as_a_repeat(store):
    # Row 1 is refused for its priority, yet it names its VM: row 2 naming it again is the repeat it would be
    # were row 1 good, not the VM's registration. A row whose UUID cannot be read names no VM, so matches none.
    rows = [
        {"uuid": uuid_of(1), "pool": "A", "priority": "hgih", "vm_id": "40"},
        {"uuid": uuid_of(1).upper(), "pool": "B", "priority": "low"},
        {"uuid": "not-a-uuid", "pool": "B"},
        {"uuid": uuid_of(3), "pool": "B"},
        {"vm_uuid": uuid_of(4), "prority": "low"},  # a column no field has: refused, still naming its VM
        {"vm_uuid": uuid_of(4)},
    ]
    assert [(row, kind, field) for row, kind, field, _ in refused(store, rows)] == [
        (1, InvalidValue, "priority"), (2, Conflict, "VM UUID"), (3, InvalidValue, "VM UUID"),
        (5, InvalidValue, "column"), (6, Conflict, "VM UUID"),
    ]
    assert stored(store) == []
    good, problems = vms.check_many(store, {"first": rows[0], "again": rows[1]})
    assert good == {} and [str(problem) for problem in problems] == [
        "row first: invalid priority 'hgih': expected low, medium, high, 0, 1 or 2",
        f"row again: VM UUID {uuid_of(1)} is already used by row first",
    ]


@pytest.mark.parametrize("on_existing", ["skip", "update"])
def test_a_registered_vm_named_again_after_a_refused_row_is_left_alone(store, on_existing):
    vms.db_register(store, uuid_of(1), pool="A", priority="high", vm_id=5)
    rows = [{"uuid": uuid_of(1), "priority": "hgih"}, {"uuid": uuid_of(1), "pool": "B", "priority": "low"}]
    checked = vms.classify_many(store, rows, on_existing=on_existing)
    assert checked.updates == () and checked.existing == ()
    assert [(p.row, str(p.error)) for p in checked.problems][1] == (2, f"VM UUID {uuid_of(1)} is already used by row 1")


def test_a_row_asking_for_the_vm_id_of_a_refused_row_is_refused_as_a_repeat(store):
    # Row 1 is refused for its priority, yet it asks for vm_id 50: row 2 asking for it too is the repeat it would
    # be were row 1 good, not a registration with vm_id 50. So is a row whose UUID cannot be read (row 4): its
    # vm_id would clash once the UUID is fixed. A vm_id that cannot be read (51.0, row 6) asks for none.
    rows = [
        {"uuid": uuid_of(1), "vm_id": 50, "priority": "hgih"},
        {"uuid": uuid_of(2), "vm_id": "50"},
        {"uuid": uuid_of(3), "vm_id": 50, "priority": "low"},
        {"uuid": "not-a-uuid", "vm_id": 60},
        {"uuid": uuid_of(5), "vm_id": 60},
        {"uuid": uuid_of(6), "vm_id": 51.0},
        {"uuid": uuid_of(7), "vm_id": 51},
        {"uuid": uuid_of(8), "vm_id": 70},                 # a good row first: the rows after it repeat it,
        {"uuid": uuid_of(9), "vm_id": 70, "pool": "Z"},    # not the refused row between them
        {"uuid": uuid_of(10), "vm_id": 70},
    ]
    assert [(row, kind, field, value) for row, kind, field, value in refused(store, rows)] == [
        (1, InvalidValue, "priority", "hgih"), (2, Conflict, "vm_id", 50), (3, Conflict, "vm_id", 50),
        (4, InvalidValue, "VM UUID", "not-a-uuid"), (5, Conflict, "vm_id", 60), (6, InvalidValue, "vm_id", 51.0),
        (9, InvalidValue, "pool", "Z"), (10, Conflict, "vm_id", 70),
    ]
    checked = vms.classify_many(store, rows)
    assert [str(p.error) for p in checked.problems if p.row in (2, 3, 5, 10)] == [
        "vm_id 50 is already used by row 1", "vm_id 50 is already used by row 1",
        "vm_id 60 is already used by row 4", "vm_id 70 is already used by row 8"]
    assert stored(store) == []
    good, problems = vms.check_many(store, {"first": rows[0], "again": rows[1]})
    assert good == {} and [str(problem) for problem in problems] == [
        "row first: invalid priority 'hgih': expected low, medium, high, 0, 1 or 2",
        "row again: vm_id 50 is already used by row first",
    ]


def test_a_registered_vm_moved_to_the_vm_id_of_a_refused_row_is_left_alone(store):
    vms.db_register(store, uuid_of(1), pool="A", priority="high", vm_id=5)
    rows = [{"uuid": uuid_of(2), "vm_id": 50, "priority": "hgih"}, {"uuid": uuid_of(1), "vm_id": 50}]
    checked = vms.classify_many(store, rows, on_existing="update")
    assert checked.updates == () and [(p.row, str(p.error)) for p in checked.problems][1] == (2, "vm_id 50 is already used by row 1")
    # its own vm_id is never a repeat, even of a refused row asking for it (that row is the one in the way)
    rows = [{"uuid": uuid_of(2), "vm_id": 5, "priority": "hgih"}, {"uuid": uuid_of(1), "vm_id": 5, "pool": "B"}]
    checked = vms.classify_many(store, rows, on_existing="update")
    assert [p.row for p in checked.problems] == [1] and [change.vm.vm_uuid for change in checked.updates] == [uuid_of(1)]


def test_duplicates_against_the_database_are_reported(store, snapshot):
    vms.db_register(store, uuid_of(1), vm_name="web-1", pool="B", vm_id=5)
    before = snapshot()
    rows = [
        {"vm_uuid": uuid_of(1).upper()},
        {"vm_uuid": uuid_of(2), "vm_id": 5},
        {"vm_uuid": uuid_of(1), "vm_id": 5},
        {"vm_uuid": uuid_of(4)},
    ]
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, rows)
    problems = [(p.row, type(p.error), p.error.field, p.error.value, p.error.holder) for p in caught.value.problems]
    assert problems == [
        (1, AlreadyRegistered, "VM UUID", uuid_of(1), "registered VM with vm_id 5 in pool B"),
        (2, Conflict, "vm_id", 5, f"VM web-1 ({uuid_of(1)})"),
        (3, AlreadyRegistered, "VM UUID", uuid_of(1), "registered VM with vm_id 5 in pool B"),
    ]  # row 3 keeps web-1's own vm_id 5: never a conflict with itself
    assert [str(p) for p in caught.value.problems[:2]] == [
        f"row 1: VM {uuid_of(1)} is already registered (vm_id 5, pool B)",
        f"row 2: vm_id 5 is already used by VM web-1 ({uuid_of(1)})",  # as register says it
    ]
    assert snapshot() == before


def test_a_rerun_can_skip_the_rows_registered_already(store):
    rows = [{"vm_uuid": uuid_of(n)} for n in range(1, 4)]
    vms.db_register_many(store, rows[:2])
    good, problems = vms.check_many(store, rows)
    assert all(isinstance(p.error, AlreadyRegistered) for p in problems) and [p.row for p in problems] == [1, 2]
    skipped = {p.row for p in problems if isinstance(p.error, AlreadyRegistered)}
    assert [vm.vm_id for vm in vms.db_register_many(store, [r for n, r in enumerate(rows, 1) if n not in skipped])] == [3]


def test_invalid_and_conflicting_rows_are_reported_together_in_row_order(store):
    vms.db_register(store, uuid_of(1))
    rows = [{"vm_uuid": uuid_of(9)}, {"vm_uuid": uuid_of(1)}, {"vm_uuid": uuid_of(3), "pool": "Q"}]
    assert refused(store, rows) == [(2, AlreadyRegistered, "VM UUID", uuid_of(1)), (3, InvalidValue, "pool", "Q")]


def test_register_many_accepts_a_row_with_only_the_uuid_alias(store):
    (vm,) = vms.db_register_many(store, [{"uuid": uuid_of(1), "name": "x", "pool_id": "b"}])
    assert (vm.vm_id, vm.vm_name, vm.pool_id) == (1, "x", "B")


def test_an_unknown_column_is_a_bad_row_not_a_silent_default(store, snapshot):
    before = snapshot()
    rows = [{"vm_uuid": uuid_of(1), "priority": "high"}, {"vm_uuid": uuid_of(2), "prio": "high", "zone": "x"}]
    assert refused(store, rows) == [(2, InvalidValue, "column", "prio, zone")]
    assert snapshot() == before


def test_nan_is_a_blank_cell_as_pandas_reads_one(store):
    # pandas.read_csv(...).to_dict("records") gives NaN, not "", for an empty cell
    nan = float("nan")
    [vm] = vms.db_register_many(store, [{"uuid": uuid_of(1), "name": nan, "pool": nan, "priority": nan, "vm_id": nan}])
    assert (vm.vm_id, vm.vm_name, vm.pool_id, vm.priority) == (1, None, "A", Priority.MEDIUM)
    [(row, kind, field, _)] = refused(store, [{"uuid": nan}])  # the UUID is required: NaN is no UUID
    assert (row, kind, field) == (1, InvalidValue, "VM UUID")


def test_numpy_integers_and_uuid_objects_are_taken_as_a_dataframe_gives_them(store):
    import uuid

    from .test_values import Index  # numpy.int64 as pandas hands it out: an integer with __index__

    rows = [{"vm_uuid": uuid.UUID(uuid_of(1)), "priority": Index(2), "vm_id": Index(9)},
            {"vm_uuid": uuid.UUID(uuid_of(2)), "priority": Index(0), "vm_id": None}]
    result = vms.db_register_many(store, rows)
    assert [(vm.vm_uuid, vm.priority, vm.vm_id) for vm in result] == [(uuid_of(1), Priority.HIGH, 9), (uuid_of(2), Priority.LOW, 1)]
    assert stored(store) == [(1, uuid_of(2), None, "A", 0), (9, uuid_of(1), None, "A", 2)]
    problems = refused(store, [{"vm_uuid": uuid_of(3), "priority": Index(3), "vm_id": 2.0}])
    assert [(row, kind, field) for row, kind, field, _ in problems] == [(1, InvalidValue, "priority"), (1, InvalidValue, "vm_id")]


# --- rows as a CSV file or a notebook hands them over ---------------------------------------------------------


def read_csv(tmp_path, text: str) -> list[dict]:
    """The rows csv.DictReader gives for ``text``, written and read back as the notebook does (UTF-8)."""
    path = tmp_path / "vms.csv"
    path.write_text(text, encoding="utf-8")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_header_is_read_whatever_its_case_spaces_or_byte_order_mark(store, tmp_path):
    # Excel's "CSV UTF-8" starts the file with a byte-order mark, which becomes part of the first header
    rows = read_csv(tmp_path, f"\ufeffUUID, Name ,POOL,Priority,VM_ID\n{uuid_of(1)},web,b,high,7\n{uuid_of(2)},,,,\n")
    assert list(rows[0])[0] == "\ufeffUUID"
    result = vms.db_register_many(store, rows)
    assert [(vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority) for vm in result] == [
        (7, uuid_of(1), "web", "B", Priority.HIGH), (1, uuid_of(2), None, "A", Priority.MEDIUM),
    ]


@pytest.mark.parametrize(("row", "keys"), [
    pytest.param({"uuid": uuid_of(1), "vm_uuid": uuid_of(2)}, ("uuid", "vm_uuid"), id="uuid and vm_uuid"),
    pytest.param({"vm_uuid": uuid_of(1), "pool": "A", "pool_id": "B"}, ("pool", "pool_id"), id="pool and pool_id"),
    pytest.param({"vm_uuid": uuid_of(1), "name": "a", "vm_name": "a"}, ("name", "vm_name"), id="the same value twice"),
    pytest.param({"vm_uuid": uuid_of(1), "pool": "A", " Pool": "B"}, ("pool", " Pool"), id="two once normalised"),
])
def test_one_field_under_two_keys_is_a_bad_row_naming_both(store, snapshot, row, keys):
    before = snapshot()
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, [{"vm_uuid": uuid_of(9)}, row])
    [problem] = caught.value.problems
    assert problem.row == 2 and isinstance(problem.error, InvalidColumns) and problem.error.columns == keys
    assert str(problem.error) == f"columns {keys[0]!r} and {keys[1]!r} both give the {problem.error.allowed.split('for the ')[1]}; keep one of them"
    assert snapshot() == before


def test_a_row_with_two_uuid_columns_is_not_also_reported_for_either_value(store):
    rows = [{"uuid": "nope", "vm_uuid": uuid_of(1), "pool": "C"}]
    assert refused(store, rows) == [(1, InvalidColumns, "column", "uuid, vm_uuid"), (1, InvalidValue, "pool", "C")]


def test_a_row_with_more_cells_than_the_header_says_so(store, tmp_path):
    rows = read_csv(tmp_path, f"uuid,name,pool\n{uuid_of(1)},web,A\n{uuid_of(2)},db, inc,B\n")
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, rows)
    assert [str(problem) for problem in caught.value.problems] == [
        "row 2: the row has more cells than the header (extra: 'B')",
        "row 2: invalid pool ' inc': expected A or B",
    ]
    assert isinstance(caught.value.problems[0].error, InvalidColumns) and caught.value.problems[0].error.columns == ("B",)


def test_a_row_without_a_uuid_column_says_the_column_is_missing(store):
    assert [str(p) for p in vms.check_many(store, [{"name": "web", "pool": "B"}, {"uuid": uuid_of(1)}])[1]] == [
        "row 1: no vm_uuid (or uuid) column: every row needs the VM UUID",
    ]


class FakeFrame:
    """Something table-like that is not a DataFrame (no index): to_dict, and iterating gives its column labels."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __iter__(self):
        return iter(self.rows[0])

    def to_dict(self, orient: str) -> list[dict]:
        assert orient == "records"
        return self.rows


def test_something_table_like_that_is_not_a_dataframe_is_refused_with_a_hint(store, snapshot):
    before = snapshot()
    frame = FakeFrame([{"uuid": uuid_of(1), "pool": "B"}])
    for call in (vms.db_register_many, vms.check_many):
        with pytest.raises(NotRows) as caught:
            call(store, frame)
        assert str(caught.value) == 'expected a list of rows, not a FakeFrame; pass df.to_dict("records"), one dict per row'
    assert snapshot() == before
    [vm] = vms.db_register_many(store, frame.to_dict("records"))
    assert vm.pool_id == "B"


def test_a_real_dataframe_is_taken_as_it_is(store):
    pd = pytest.importorskip("pandas")  # in the test extra (notebook users' tool), not a dependency of vgpu
    frame = pd.DataFrame([{"uuid": uuid_of(1), "pool": "B", "vm_id": 4}, {"uuid": uuid_of(2), "pool": "A", "vm_id": 5}])
    [vm] = vms.db_register_many(store, frame.iloc[:1])
    assert (vm.pool_id, vm.vm_id) == ("B", 4)
    [vm] = vms.db_register_many(store, frame.iloc[1:].to_dict("records"))  # numpy.int64 vm_id, as pandas gives it
    assert (vm.pool_id, vm.vm_id) == ("A", 5)


def test_a_csv_read_by_pandas_with_blank_cells_registers_with_the_defaults(store, tmp_path):
    pd = pytest.importorskip("pandas")  # in the test extra (notebook users' tool), not a dependency of vgpu
    path = tmp_path / "vms.csv"
    path.write_text(f"uuid,name,pool,priority,vm_id\n{uuid_of(1)},web,B,high,7\n{uuid_of(2)},,,,\n")
    # a blank cell is pd.NA in a nullable column, NaN in a default text column, "" when read as text (the
    # docs' way): all three take the default
    for frame in (pd.read_csv(path, dtype={"vm_id": "Int64", "name": "string", "pool": "string", "priority": "string"}),
                  pd.read_csv(path, dtype={"vm_id": "Int64"}),
                  pd.read_csv(path, dtype=str, keep_default_na=False)):
        registered = vms.db_register_many(store, frame.to_dict("records"))
        assert [(vm.vm_name, vm.pool_id, vm.priority, vm.vm_id) for vm in registered] == [
            ("web", "B", Priority.HIGH, 7), (None, "A", Priority.MEDIUM, 1)]
        for vm in registered:
            vms.db_remove(store, vm.vm_uuid)
    # row by row, a nullable column's blank cell arrives as pd.NA itself (to_dict turns it into None)
    frame = pd.read_csv(path, dtype={"vm_id": "Int64", "name": "string", "pool": "string", "priority": "string"})
    registered = [vms.db_register(store, row.uuid, row.name, row.pool, row.priority, row.vm_id) for row in frame.itertuples()]
    assert [(vm.vm_name, vm.pool_id, vm.priority, vm.vm_id) for vm in registered] == [
        ("web", "B", Priority.HIGH, 7), (None, "A", Priority.MEDIUM, 1)]
    vm = vms.db_register(store, uuid_of(3), "db", pd.NA, pd.NA, pd.NA)  # NA == "" is NA, whose truth value raises
    assert (vm.pool_id, vm.priority, vm.vm_id) == ("A", Priority.MEDIUM, 2)


@pytest.mark.parametrize("items", [{"vm_uuid": uuid_of(1)}, uuid_of(1)], ids=["one row", "a string"])
def test_one_row_or_a_string_is_refused_as_not_a_list_of_rows(store, items):
    with pytest.raises(NotRows, match=r"^expected a list of rows, not a (dict|str); pass a list of rows \(\[row\] for one\)$"):
        vms.db_register_many(store, items)

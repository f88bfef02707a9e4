"""vgpu.columns: the column-at-a-time fast path of register_many gives exactly what the per-row parsers give,
or declines and leaves the batch to them."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from vgpu import vms
from vgpu.columns import FIELD_OF_KEY, uniform_columns
from vgpu.errors import InvalidRows
from vgpu.models import Priority

UUID_A = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
UUID_B = "1e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


def per_row(items: list) -> tuple | None:
    """The five columns as the per-row path makes them, or None if any row has a problem."""
    batch, problems, _ = vms._validate_each(items)
    return None if problems or not batch.rows else tuple(batch[1:])


def test_a_canonical_batch_is_parsed_by_columns():
    items = [
        {"vm_uuid": UUID_A, "vm_name": " web ", "pool": "b", "priority": "HIGH"},
        {"vm_uuid": UUID_B, "vm_name": "", "pool": "", "priority": "0"},
    ]
    assert uniform_columns(items) == (
        [UUID_A, UUID_B], ["web", None], ["B", "A"], [Priority.HIGH, Priority.LOW], [None, None],
    )


def test_missing_columns_take_the_defaults():
    assert uniform_columns([{"uuid": UUID_A}]) == ([UUID_A], [None], ["A"], [Priority.MEDIUM], [None])


def test_explicit_integer_vm_ids_are_kept():
    items = [{"vm_uuid": UUID_A, "vm_id": 7}, {"vm_uuid": UUID_B, "vm_id": 3}]
    assert uniform_columns(items)[4] == [7, 3]


@pytest.mark.parametrize("items", [
    pytest.param([], id="empty"),
    pytest.param([{"vm_uuid": UUID_A}, {"uuid": UUID_B}], id="different keys"),
    pytest.param([{"vm_uuid": UUID_A}, {"vm_uuid": UUID_B, "pool": "A"}], id="different key counts"),
    pytest.param([{"vm_uuid": UUID_A, "uuid": UUID_A}], id="two spellings of one field"),
    pytest.param([{"vm_uuid": UUID_A, "prio": "high"}], id="unknown key"),
    pytest.param([{"vm_name": "web"}], id="no uuid column"),
    pytest.param([{"UUID": UUID_A}], id="upper-case header"),
    pytest.param([{"\ufeffuuid": UUID_A}], id="byte-order mark on the header"),
    pytest.param([{"vm_uuid": UUID_A, " pool": "A"}], id="padded header"),
    pytest.param([{"vm_uuid": UUID_A, None: ["x"]}], id="more cells than the header"),
    pytest.param([{"vm_uuid": UUID_A.upper()}], id="upper-case uuid"),
    pytest.param([{"vm_uuid": f" {UUID_A}"}], id="padded uuid"),
    pytest.param([{"vm_uuid": f"{UUID_A}\n{UUID_B}"}, {"vm_uuid": ""}], id="two uuids in one cell"),
    pytest.param([{"vm_uuid": uuid.UUID(UUID_A)}], id="uuid object"),
    pytest.param([{"vm_uuid": UUID_A, "vm_name": None}], id="None name"),
    pytest.param([{"vm_uuid": UUID_A, "vm_name": "tab\there"}], id="unprintable name"),
    pytest.param([{"vm_uuid": UUID_A, "vm_name": "x" * 256}], id="long name"),
    pytest.param([{"vm_uuid": UUID_A, "pool": " a"}], id="padded pool"),
    pytest.param([{"vm_uuid": UUID_A, "pool": "C"}], id="unknown pool"),
    pytest.param([{"vm_uuid": UUID_A, "pool": ["A"]}], id="unhashable pool"),
    pytest.param([{"vm_uuid": UUID_A, "priority": True}], id="bool priority"),
    pytest.param([{"vm_uuid": UUID_A, "priority": 2}], id="int priority"),
    pytest.param([{"vm_uuid": UUID_A, "vm_id": "7"}], id="vm_id as text"),
    pytest.param([{"vm_uuid": UUID_A, "vm_id": 7}, {"vm_uuid": UUID_B, "vm_id": None}], id="mixed vm_ids"),
    pytest.param([{"vm_uuid": UUID_A, "vm_id": 0}], id="vm_id zero"),
    pytest.param([{"vm_uuid": UUID_A, "vm_id": True}], id="bool vm_id"),
    pytest.param([{"vm_uuid": UUID_A}, (UUID_B,)], id="a row that is not a dict"),
])
def test_anything_unusual_is_left_to_the_per_row_parsers(items):
    assert uniform_columns(items) is None


def test_a_str_subclass_uuid_is_left_to_the_per_row_parser_which_stores_a_plain_str(store):
    class Text(str):
        pass

    assert uniform_columns([{"vm_uuid": Text(UUID_A)}]) is None
    [vm] = vms.db_register_many(store, [{"vm_uuid": Text(UUID_A)}])
    assert type(vm.vm_uuid) is str


def test_headers_the_per_row_path_normalises_give_what_the_canonical_ones_give_by_columns():
    canonical = [{"vm_uuid": UUID_A, "vm_name": "web", "pool": "b", "priority": "HIGH", "vm_id": 7},
                 {"vm_uuid": UUID_B, "vm_name": "", "pool": "", "priority": "0", "vm_id": 3}]
    spelled = [{f"\ufeff{key.upper()}" if key == "vm_uuid" else f" {key.title()} ": cell for key, cell in row.items()}
               for row in canonical]
    assert uniform_columns(spelled) is None
    assert per_row(spelled) == uniform_columns(canonical) == per_row(canonical)


def test_a_declined_batch_still_gets_every_problem_reported(store):
    items = [{"vm_uuid": UUID_A, "pool": "C"}, {"vm_uuid": "nope", "pool": "A"}]
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(store, items)
    assert [(p.row, p.error.field) for p in caught.value.problems] == [(1, "pool"), (2, "VM UUID")]


# Batches as a user or a script might make them: rows of one shape in the spellings the fast path takes,
# into which a few odd cells (spellings and mistakes it must leave to the per-row parsers) or an odd row
# may be mixed.
good_cells = {
    0: st.uuids().map(str),
    1: st.from_regex(r"[\w .-]{0,8}", fullmatch=True),
    2: st.sampled_from(["A", "a", "B", "b", "", None]),
    3: st.sampled_from(["low", "HIGH", "Medium", "0", "2", "", None]),
}
ODD_VALUES = {  # by field: values the per-row parsers clean up or refuse
    0: [UUID_A.upper(), f" {UUID_A}\t", "", None, 7, "not-a-uuid", f"{UUID_A}\n{UUID_B}"],
    1: [None, "a\nb", "\x00", "x" * 300, 5, "  "],
    2: [" b ", "  ", "C", "Pool A", 1, ["A"]],
    3: [" high", "  ", "urgent", "3", 1, True, Priority.LOW, 2.0],
    4: ["7", " 8", "0", "  ", 0, True, 2**31, 3.0],
}
odd_cells = {field: st.sampled_from(values) for field, values in ODD_VALUES.items()}
odd_cells[1] |= st.text(max_size=8)
SPELLINGS = (["vm_uuid", "uuid"], ["vm_name", "name"], ["pool", "pool_id"], ["priority"], ["vm_id"])


@st.composite
def batches(draw):
    keys = [draw(st.sampled_from(SPELLINGS[0]))]  # a UUID column, then any of the others
    keys += [draw(st.sampled_from(spellings)) for spellings in SPELLINGS[1:] if draw(st.booleans())]
    field_of = {key: FIELD_OF_KEY[key] for key in keys}
    explicit_ids = draw(st.booleans())
    row = st.fixed_dictionaries({
        key: st.integers(1, 99) if field == 4 and explicit_ids else good_cells.get(field, st.just(None))
        for key, field in field_of.items()
    })
    items = draw(st.lists(row, min_size=1, max_size=6))
    for _ in range(draw(st.integers(0, 2)) if items else 0):
        item = draw(st.sampled_from(items))
        if draw(st.booleans()) and item:
            key = draw(st.sampled_from(sorted(item)))
            item[key] = draw(odd_cells[FIELD_OF_KEY.get(key, 3)])  # an odd cell (of an odd key, maybe)
        else:
            key = draw(st.sampled_from([*FIELD_OF_KEY, "prio"]))
            item[key] = draw(odd_cells[FIELD_OF_KEY.get(key, 3)])  # another key, maybe unknown
    if items and draw(st.integers(0, 5)) == 0:  # an odd row
        items[draw(st.integers(0, len(items) - 1))] = draw(st.sampled_from([(UUID_A,), None, {}]))
    return items


@settings(max_examples=400)  # cheap examples; many are needed to meet the rarer odd cells in a clean batch
@given(batches())
def test_the_column_path_agrees_with_the_per_row_path_whenever_it_answers(items):
    columns = uniform_columns(items)
    if columns is not None:
        assert columns == per_row(items)
        for fast, slow in zip(columns, per_row(items)):
            assert [type(cell) for cell in fast] == [type(cell) for cell in slow]


@pytest.mark.parametrize("key", ["vm_uuid", "vm_name", "pool", "priority", "vm_id"])
def test_one_odd_cell_in_a_clean_batch_gets_the_per_row_answer(key):
    for odd in ODD_VALUES[FIELD_OF_KEY[key]]:
        clean = {"vm_uuid": UUID_A, "vm_name": "web", "pool": "A", "priority": "high", "vm_id": None}
        items = [clean, {**clean, "vm_uuid": UUID_B, key: odd}]
        columns = uniform_columns(items)
        assert columns is None or columns == per_row(items), odd


def test_the_property_test_reaches_the_fast_path():
    # a guard on the generator above: it must make batches the fast path takes, or the agreement test
    # checks nothing (find raises if it cannot find one)
    found = find(batches(), lambda items: len(items) > 2 and uniform_columns(items) is not None,
                 settings=settings(max_examples=1000, database=None))
    assert uniform_columns(found) == per_row(found)

"""Parsing values in the forms a person types them, and refusing everything else with a named InvalidValue."""

from __future__ import annotations

import pytest

from vgpu.errors import InvalidValue, VgpuError
from vgpu.models import Priority
from vgpu.values import (
    NAME_MAX,
    POOL_NAME_MAX,
    VM_ID_MAX,
    parse_pool_id,
    parse_pool_name,
    parse_priority,
    parse_uuid,
    parse_vm_id,
    parse_vm_name,
)


def refused(parse, value) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        parse(value)
    error = caught.value
    assert isinstance(error, VgpuError)
    assert error.value is value
    text = str(error)
    assert "\n" not in text and repr(value) in text
    return error


@pytest.mark.parametrize(("typed", "pool"), [("A", "A"), ("a", "A"), ("B", "B"), ("b", "B"), (" b ", "B"), ("\tA\n", "A")])
def test_pool_accepts_a_and_b_in_any_case(typed, pool):
    assert parse_pool_id(typed) == pool


@pytest.mark.parametrize("value", ["C", "", " ", "AB", "Pool A", "1", "Ａ", None, 0, 1, b"A", ["A"], True])
def test_pool_rejects_everything_else(value):
    error = refused(parse_pool_id, value)
    assert error.field == "pool" and tuple(error.allowed) == ("A", "B")
    assert str(error) == f"invalid pool {value!r}: expected A or B"


@pytest.mark.parametrize(
    ("typed", "priority"),
    [
        ("low", Priority.LOW), ("medium", Priority.MEDIUM), ("high", Priority.HIGH),
        ("HIGH", Priority.HIGH), ("Medium", Priority.MEDIUM), (" low ", Priority.LOW),
        ("0", Priority.LOW), ("1", Priority.MEDIUM), ("2", Priority.HIGH), (" 2 ", Priority.HIGH),
        (0, Priority.LOW), (1, Priority.MEDIUM), (2, Priority.HIGH),
        (Priority.HIGH, Priority.HIGH), (Priority.LOW, Priority.LOW),
    ],
)
def test_priority_accepts_names_any_case_digits_and_numbers(typed, priority):
    parsed = parse_priority(typed)
    assert parsed is priority


@pytest.mark.parametrize("value", ["3", "-1", 3, -1, "", "hi", "highest", "1.0", 1.0, 2.0, True, False, None, "２", b"2"])
def test_priority_rejects_everything_else(value):
    error = refused(parse_priority, value)
    assert error.field == "priority"
    assert tuple(error.allowed) == ("low", "medium", "high", "0", "1", "2")
    assert str(error).endswith("expected low, medium, high, 0, 1 or 2")


@pytest.mark.parametrize(("typed", "vm_id"), [(1, 1), (7, 7), ("7", 7), (" 42 ", 42), ("007", 7), (VM_ID_MAX, VM_ID_MAX), (str(VM_ID_MAX), VM_ID_MAX)])
def test_vm_id_accepts_positive_whole_numbers_and_digit_strings(typed, vm_id):
    assert parse_vm_id(typed) == vm_id


@pytest.mark.parametrize("value", [0, -1, 2**31, "0", "-1", "+1", "2147483648", "1.5", 1.5, 1.0, "1e3", "", " ", "seven", "٣", "³", True, False, None, b"1"])
def test_vm_id_rejects_everything_else(value):
    error = refused(parse_vm_id, value)
    assert error.field == "vm_id" and error.allowed == "a whole number from 1 to 2147483647"
    assert VM_ID_MAX == 2**31 - 1


UPPER = "0E1F2A3B-4C5D-6E7F-8091-A2B3C4D5E6F7"


@pytest.mark.parametrize("typed", [UPPER, UPPER.lower(), " " + UPPER + "\n", "0e1F2a3B-4c5D-6e7F-8091-A2b3C4d5E6f7"])
def test_uuid_accepts_any_case_and_keeps_it_lower_case(typed):
    assert parse_uuid(typed) == "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


@pytest.mark.parametrize(
    "value",
    ["", "not-a-uuid", UPPER[:-1], UPPER + "0", UPPER.replace("-", ""), "{" + UPPER + "}", UPPER.replace("E", "G"), None, 5, b"x"],
)
def test_uuid_rejects_everything_else(value):
    error = refused(parse_uuid, value)
    assert error.field == "VM UUID" and "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7" in error.allowed


@pytest.mark.parametrize(("typed", "name"), [("render-1", "render-1"), ("  spaced out  ", "spaced out"), ("", None), ("   ", None), (None, None), ("é" * NAME_MAX, "é" * NAME_MAX)])
def test_vm_name_is_trimmed_and_blank_means_no_name(typed, name):
    assert parse_vm_name(typed) == name


@pytest.mark.parametrize("value", ["two\nlines", "tab\there", "bell\a", "x" * (NAME_MAX + 1), 5, b"name"])
def test_vm_name_rejects_control_characters_overlong_and_non_text(value):
    error = refused(parse_vm_name, value)
    assert error.field == "VM name" and error.allowed == f"printable text of at most {NAME_MAX} characters"


@pytest.mark.parametrize(("typed", "name"), [("Production", "Production"), ("  Dev pool ", "Dev pool"), ("p" * POOL_NAME_MAX, "p" * POOL_NAME_MAX)])
def test_pool_name_is_trimmed(typed, name):
    assert parse_pool_name(typed) == name


@pytest.mark.parametrize("value", ["", "   "])
def test_pool_name_must_not_be_blank(value):
    error = refused(parse_pool_name, value)
    assert error.field == "pool name"
    assert error.allowed == f"a non-empty printable text of at most {POOL_NAME_MAX} characters, without double quotes"


@pytest.mark.parametrize("value", ["p" * (POOL_NAME_MAX + 1), "new\nline", 3, None, 'say "hi"', '"', 'Pool A"'])
def test_pool_name_rejects_overlong_control_characters_double_quotes_and_non_text(value):
    error = refused(parse_pool_name, value)
    assert error.field == "pool name"
    assert error.allowed == f"printable text of at most {POOL_NAME_MAX} characters, without double quotes"


def test_a_vm_name_may_hold_a_double_quote():
    assert parse_vm_name('the "big" one') == 'the "big" one'


class Index:
    """An integer-like that is not an int, as numpy.int64 (a pandas column's cell) is: it has __index__."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __index__(self) -> int:
        return self.number

    def __repr__(self) -> str:
        return f"Index({self.number})"


class NotANumber:
    """Convertible by int() (it has __int__) but no integer: refused, as float is."""

    def __int__(self) -> int:
        return 2


def test_integer_likes_with_index_are_accepted_as_plain_ints():
    assert parse_priority(Index(2)) is Priority.HIGH and parse_priority(Index(0)) is Priority.LOW
    vm_id = parse_vm_id(Index(7))
    assert vm_id == 7 and type(vm_id) is int  # sqlite3 cannot store numpy.int64: the parser hands on an int


@pytest.mark.parametrize("value", [Index(3), Index(-1), NotANumber()])
def test_integer_likes_out_of_range_and_int_convertibles_are_refused_for_priority(value):
    refused(parse_priority, value)


@pytest.mark.parametrize("value", [Index(0), Index(2**31), NotANumber()])
def test_integer_likes_out_of_range_and_int_convertibles_are_refused_for_vm_id(value):
    refused(parse_vm_id, value)


def test_numpy_scalars_are_accepted_as_their_ints_but_not_bools_or_floats():
    np = pytest.importorskip("numpy")  # not a dependency: pandas users have it
    assert parse_priority(np.int64(2)) is Priority.HIGH and parse_priority(np.uint8(1)) is Priority.MEDIUM
    assert parse_vm_id(np.int64(5)) == 5 and type(parse_vm_id(np.int32(5))) is int
    for value in (np.True_, np.float64(2.0), np.float64("nan")):
        refused(parse_priority, value)
        refused(parse_vm_id, value)


def test_a_uuid_object_is_accepted_in_its_canonical_form():
    import uuid

    assert parse_uuid(uuid.UUID(UPPER)) == UPPER.lower()

"""The VM index finds exactly what a plain loop over every VM would, in the same order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shell.names import vm_name
from shell.vmindex import VMIndex

ALPHABET = "abc01-"  # small, so prefixes and fragments collide often
keys = st.text(ALPHABET, min_size=1, max_size=8)
entries = st.lists(st.tuples(keys, st.text(ALPHABET + "B \n\x00", max_size=8)), max_size=30).map(
    lambda rows: tuple(vm_name(uuid, name, "A", True, True) for uuid, name in rows)
)


def plain_loop(vms, typed: str, limit: int) -> list[int]:
    """The obvious implementation: prefix matches, then fragment matches, by position."""
    prefix = [i for i, vm in enumerate(vms) if vm.uuid.startswith(typed) or vm.name_key.startswith(typed)]
    inner = [i for i, vm in enumerate(vms) if i not in prefix and (typed in vm.uuid or typed in vm.name_key)]
    return (prefix + inner)[:limit]


@given(entries, st.text(ALPHABET, max_size=4), st.integers(min_value=1, max_value=40))
def test_same_answers_as_a_plain_loop(vms, typed, limit):
    index = VMIndex(vms)
    expected = plain_loop(vms, typed, limit)
    found = index.match(typed, limit)
    assert [id(vm) for vm in found] == [id(vms[i]) for i in expected]


def test_separators_never_match():
    index = VMIndex((vm_name("ab", "line\nbreak", "A", True, True),))
    assert index.match("\n", 10) == [] and index.match("\x00", 10) == []
    assert [vm.name for vm in index.match("line b", 10)] == ["line\nbreak"]  # a newline in a name is a space


def test_an_empty_index():
    assert VMIndex(()).match("a", 5) == [] and VMIndex(()).match("", 5) == []

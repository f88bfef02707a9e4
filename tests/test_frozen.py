"""basics.Frozen: the plain immutable values built on every start-up (a run's hosts, the command table),
which must behave as the NamedTuples they replaced did: equal by value, hashable, unchangeable, copied
with changes, pickled."""

from __future__ import annotations

import pickle

import pytest

from shell.commands import COMMANDS, Option, lookup
from vgpu.hostspecs import HostSpec


def test_equal_by_value_and_hash_alike():
    first, second = HostSpec("gpu1", "xapi://root@a", ("10.0.0.0/8",)), HostSpec("gpu1", "xapi://root@a", ("10.0.0.0/8",))
    assert first == second and hash(first) == hash(second) and len({first, second}) == 1
    assert first != HostSpec("gpu1", "xapi://root@b") and first != ("gpu1", "xapi://root@a", ("10.0.0.0/8",), None)


def test_a_field_is_set_once_and_never_changed_or_deleted():
    spec = HostSpec("gpu1", "sim:/tmp/h.json")
    with pytest.raises(AttributeError, match="HostSpec.uri cannot be changed"):
        spec.uri = "sim:/elsewhere.json"
    with pytest.raises(AttributeError, match="HostSpec.label cannot be deleted"):
        del spec.label
    with pytest.raises(AttributeError):
        spec.other = 1  # not a field: __slots__ has no room for it
    assert spec == HostSpec("gpu1", "sim:/tmp/h.json")


def test_replace_copies_with_changes_and_leaves_the_original():
    spec = HostSpec("gpu1", "sim:/tmp/h.json", args_key="device_model_args")
    moved = spec.replace(uri="sim:/tmp/g.json")
    assert moved == HostSpec("gpu1", "sim:/tmp/g.json", (), "device_model_args") and spec.uri == "sim:/tmp/h.json"
    with pytest.raises(TypeError):
        spec.replace(url="sim:/tmp/g.json")  # no such field


def test_repr_names_every_field():
    assert repr(Option("pool", "pool", "the pool", required=True)) == (
        "Option(name='pool', kind='pool', help='the pool', required=True, metavar='')")


def test_pickled_and_back_unchanged():
    for value in (HostSpec("gpu1", "xapi://root@a", ("a.example",), "k"), lookup("set-pool")):
        assert pickle.loads(pickle.dumps(value)) == value


def test_the_command_table_holds_frozen_commands_with_their_defaults():
    command = lookup("list-pools")
    assert command is not None and command.name == "list-pools" and command.repl_only is False and command.one_of == ()
    assert len({command.name for command in COMMANDS}) == len(COMMANDS)
    with pytest.raises(AttributeError):
        command.summary = "changed"

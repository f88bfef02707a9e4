"""Property tests for parsing and registration, and a state machine that checks DESIGN.md §3's invariants.

The state machine drives register / register_many / update / remove / rename-pool with valid and invalid
input against a real store, keeps a plain dict as the model, and after every step checks that the database
equals the model and keeps every invariant. A step that raises must leave every table exactly as before.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vgpu import pools, vms
from vgpu.errors import AlreadyRegistered, Conflict, InvalidRows, InvalidValue, NotFound, VgpuError
from vgpu.models import Priority
from vgpu.store import Store
from vgpu.values import VM_ID_MAX, parse_pool_id, parse_priority, parse_uuid, parse_vm_id

# --- helpers ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store() -> Iterator[Store]:
    """A new store per hypothesis example (function-scoped fixtures are not reset between examples)."""
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "vgpu.db") as store:
        yield store


def lowest_free(used: set[int], count: int = 1) -> list[int]:
    found, candidate = [], 1
    while len(found) < count:
        if candidate not in used:
            found.append(candidate)
        candidate += 1
    return found


def any_case(text: str) -> st.SearchStrategy[str]:
    """``text`` with each letter in either case: one draw of a bit mask, shrinking to all lower-case."""
    return st.integers(0, 2 ** len(text) - 1).map(
        lambda mask: "".join(c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(text))
    )


def padded(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    space = st.sampled_from(["", " ", "\t", "  "])
    return st.tuples(space, strategy, space).map("".join)


def assert_refused(parse, value, field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse(value)
    error = caught.value
    assert error.field == field and error.value is value
    text = str(error)
    assert text.splitlines() == [text] and repr(value) in text


uuids = st.uuids().flatmap(lambda u: any_case(str(u)).map(lambda typed: (typed, str(u))))
junk = st.one_of(st.none(), st.booleans(), st.floats(), st.binary(max_size=4), st.lists(st.integers(), max_size=2))

# --- parsing accepts every documented spelling and refuses everything else ---------------------------------


@given(st.sampled_from("AB").flatmap(lambda pool: padded(any_case(pool)).map(lambda typed: (typed, pool))))
def test_pool_accepts_a_or_b_in_any_case_with_spaces(case):
    typed, pool = case
    assert parse_pool_id(typed) == pool


@given(st.one_of(st.text(max_size=6), st.integers(), junk))
def test_pool_refuses_everything_else(value):
    assume(not (isinstance(value, str) and value.strip() in ("A", "a", "B", "b")))
    assert_refused(parse_pool_id, value, "pool")


PRIORITY_SPELLINGS = st.one_of(
    st.sampled_from(list(Priority)).flatmap(lambda p: padded(any_case(p.label)).map(lambda typed: (typed, p))),
    st.sampled_from(list(Priority)).flatmap(lambda p: padded(st.just(str(int(p)))).map(lambda typed: (typed, p))),
    st.sampled_from(list(Priority)).map(lambda p: (int(p), p)),
    st.sampled_from(list(Priority)).map(lambda p: (p, p)),
)


@given(PRIORITY_SPELLINGS)
def test_priority_accepts_names_in_any_case_digits_numbers_and_members(case):
    typed, priority = case
    assert parse_priority(typed) is priority


@given(st.one_of(st.text(max_size=8), st.integers(), junk))
def test_priority_refuses_everything_else(value):
    if isinstance(value, str):
        assume(value.strip().lower() not in ("low", "medium", "high", "0", "1", "2"))
    if isinstance(value, int) and not isinstance(value, bool):
        assume(value not in (0, 1, 2))
    assert_refused(parse_priority, value, "priority")


@given(st.integers(1, VM_ID_MAX), st.integers(0, 3), st.booleans())
def test_vm_id_accepts_every_positive_32_bit_number_and_its_digits(number, zeros, as_text):
    typed = " " + "0" * zeros + str(number) + " " if as_text else number
    assert parse_vm_id(typed) == number


@given(st.one_of(st.integers().filter(lambda n: not 1 <= n <= VM_ID_MAX), st.text(max_size=12), junk))
def test_vm_id_refuses_everything_else(value):
    if isinstance(value, str):
        text = value.strip()
        assume(not (re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= VM_ID_MAX))
    assert_refused(parse_vm_id, value, "vm_id")


@given(uuids, st.booleans())
def test_uuid_accepts_any_case_and_stores_lower_case(case, pad):
    typed, canonical = case
    assert parse_uuid(f" {typed}\n" if pad else typed) == canonical


@given(st.one_of(st.text(max_size=40), junk))
def test_uuid_refuses_everything_else(value):
    hex_uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assume(not (isinstance(value, str) and re.fullmatch(hex_uuid, value.strip().lower())))
    assert_refused(parse_uuid, value, "VM UUID")


# --- registration -----------------------------------------------------------------------------------------


@st.composite
def batches(draw) -> list[dict]:
    """Valid rows with distinct UUIDs; some rows carry distinct explicit vm_ids, the rest get auto ids."""
    canonical = draw(st.lists(st.uuids().map(str), min_size=0, max_size=12, unique=True))
    explicit = draw(st.lists(st.integers(1, 30), max_size=len(canonical), unique=True))
    slots = draw(st.permutations(range(len(canonical))))
    ids = dict(zip(slots, explicit))
    rows = []
    for index, uuid in enumerate(canonical):
        row = {"vm_uuid": draw(any_case(uuid))}
        row["vm_name"] = draw(st.one_of(st.none(), st.text(st.characters(codec="utf-8", categories=["L", "N"]), max_size=8)))
        row["pool"] = draw(padded(st.sampled_from(["a", "A", "b", "B"])))
        row["priority"] = draw(PRIORITY_SPELLINGS)[0]
        if index in ids:
            row["vm_id"] = draw(st.sampled_from([ids[index], str(ids[index])]))
        rows.append(row)
    return rows


@given(batches())
def test_register_many_then_list_gives_exactly_the_rows(rows):
    with fresh_store() as store:
        registered = vms.db_register_many(store, rows)
        listed = vms.list_vms(store)
    expected = {
        parse_uuid(row["vm_uuid"]): ((row["vm_name"] or "").strip() or None, parse_pool_id(row["pool"]), parse_priority(row["priority"]))
        for row in rows
    }
    assert {vm.vm_uuid: (vm.vm_name, vm.pool_id, vm.priority) for vm in listed} == expected
    assert sorted(listed, key=lambda vm: vm.vm_uuid) == sorted(registered, key=lambda vm: vm.vm_uuid)
    assert listed == sorted(listed, key=lambda vm: (vm.pool_id, -vm.priority, vm.vm_id))
    explicit = {int(row["vm_id"]) for row in rows if "vm_id" in row}
    autos = [vm.vm_id for row, vm in zip(rows, registered) if "vm_id" not in row]
    assert autos == lowest_free(explicit, len(autos))
    assert all(int(row["vm_id"]) == vm.vm_id for row, vm in zip(rows, registered) if "vm_id" in row)


@given(st.sets(st.integers(1, 25), max_size=15), st.integers(0, 8), st.booleans())
def test_auto_ids_are_the_lowest_unused_positive_integers(taken, count, in_one_batch):
    with fresh_store() as store:
        vms.db_register_many(store, [{"vm_uuid": f"{n:08x}-0000-4000-8000-000000000000", "vm_id": n} for n in taken])
        fresh = [f"{n:08x}-1111-4000-8000-000000000000" for n in range(count)]
        if in_one_batch:
            given_ids = [vm.vm_id for vm in vms.db_register_many(store, [{"vm_uuid": u} for u in fresh])]
        else:
            given_ids = [vms.db_register(store, u).vm_id for u in fresh]
    assert given_ids == lowest_free(taken, count)


# --- the state machine ------------------------------------------------------------------------------------

BAD = object()  # marks an input the library must refuse
UUIDS = [f"{n:08x}-aaaa-4bbb-8ccc-{n:012x}" for n in range(1, 9)]


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """One draw in five is a bad input; one_of would make it one in two and starve the success paths."""
    return st.integers(0, 4).flatmap(lambda n: bad if n == 0 else good)


good_uuids = st.sampled_from(UUIDS).flatmap(lambda u: any_case(u).map(lambda typed: (typed, u)))
good_names = st.sampled_from([(None, None), ("web", "web"), (" db  ", "db"), ("", None)])
good_pools = st.sampled_from([("A", "A"), ("a", "A"), ("B", "B"), (" b ", "B")])
good_priorities = st.sampled_from([("low", 0), ("HIGH", 2), ("Medium", 1), ("2", 2), (0, 0), (1, 1), (Priority.HIGH, 2)])
good_vm_ids = st.integers(1, 10).flatmap(lambda n: st.sampled_from([(n, n), (str(n), n)]))

uuid_inputs = mostly(good_uuids, st.sampled_from(["", "vm-1", UUIDS[0][:-1]]).map(lambda typed: (typed, BAD)))
name_inputs = mostly(good_names, st.just(("two\nlines", BAD)))
pool_inputs = mostly(good_pools, st.sampled_from([("C", BAD), ("AB", BAD)]))
priority_inputs = mostly(good_priorities, st.sampled_from([("urgent", BAD), (3, BAD), (True, BAD)]))
vm_id_inputs = mostly(good_vm_ids, st.sampled_from([0, -1, 2**31, "1.5", True]).map(lambda typed: (typed, BAD)))
pool_name_inputs = mostly(
    st.sampled_from([("Production", "Production"), (" Dev ", "Dev"), ("Pool A", "Pool A"), ("pool b", "pool b")]),
    st.sampled_from([("", BAD), ("x" * 65, BAD), ('the "fast" one', BAD)]),
)


def optional(inputs: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just((None, None)), inputs)


def row_inputs(uuid, name, pool, priority, vm_id) -> st.SearchStrategy[tuple[dict, tuple]]:
    """A register_many row as typed, with the canonical values (or BAD) it should produce."""
    return st.tuples(uuid, name, optional(pool), optional(priority), optional(vm_id)).map(
        lambda parts: (
            {"vm_uuid": parts[0][0], "vm_name": parts[1][0], "pool": parts[2][0], "priority": parts[3][0], "vm_id": parts[4][0]},
            (parts[0][1], parts[1][1], parts[2][1] or "A", 1 if parts[3][1] is None else parts[3][1], parts[4][1]),
        )
    )


any_rows = row_inputs(uuid_inputs, name_inputs, pool_inputs, priority_inputs, vm_id_inputs)
valid_rows = row_inputs(good_uuids, good_names, good_pools, good_priorities, good_vm_ids)


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        path = Path(self.folder.name) / "vgpu.db"
        self.store = Store(path)
        self.observer = sqlite3.connect(path)  # a second connection: sees only what was committed
        self.model: dict[str, tuple[int, str | None, str, int]] = {}  # uuid -> (vm_id, name, pool, priority)
        self.pool_names = {"A": "Pool A", "B": "Pool B"}
        self.changes = 0  # successful changes, each of which must have one audit entry

    def teardown(self) -> None:
        self.observer.close()
        self.store.close()
        self.folder.cleanup()

    # -- helpers --

    def dump(self) -> dict[str, list[tuple]]:
        return {
            table: self.observer.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("pools", "vms", "vgpu_audit", "vgpu_operations")
        }

    def used_ids(self) -> set[int]:
        return {vm_id for vm_id, *_ in self.model.values()}

    def attempt(self, call, refusals: tuple[type[VgpuError], ...]):
        """Run ``call``; when refusals is non-empty it must raise one of them and change nothing at all."""
        before = self.dump()
        if not refusals:
            return call()
        with pytest.raises(refusals):
            call()
        assert self.dump() == before
        return None

    def check_vm(self, vm, uuid: str) -> None:
        assert (vm.vm_id, vm.vm_name, vm.pool_id, int(vm.priority)) == self.model[uuid] and vm.vm_uuid == uuid

    # -- rules --

    @rule(uuid=uuid_inputs, name=name_inputs, pool=optional(pool_inputs), priority=optional(priority_inputs), vm_id=optional(vm_id_inputs))
    def register(self, uuid, name, pool, priority, vm_id):
        expected = (uuid[1], name[1], pool[1] or "A", 1 if priority[1] is None else priority[1], vm_id[1])
        refusals: tuple = ()
        if BAD in expected:
            refusals = (InvalidValue,)
        elif uuid[1] in self.model:
            refusals = (AlreadyRegistered,)
        elif vm_id[1] is not None and vm_id[1] in self.used_ids():
            refusals = (Conflict,)
        call = lambda: vms.db_register(self.store, uuid[0], vm_name=name[0], pool=pool[0], priority=priority[0], vm_id=vm_id[0])
        vm = self.attempt(call, refusals)
        if vm is not None:
            wanted_id = vm_id[1] if vm_id[1] is not None else lowest_free(self.used_ids())[0]
            self.model[uuid[1]] = (wanted_id, name[1], expected[2], expected[3])
            self.changes += 1
            self.check_vm(vm, uuid[1])

    @rule(rows=st.one_of(st.lists(valid_rows, max_size=4), st.lists(any_rows, max_size=4)))
    def register_many(self, rows):
        bad_rows = self.bad_rows([values for _, values in rows])
        call = lambda: vms.db_register_many(self.store, [typed for typed, _ in rows])
        if bad_rows:
            before = self.dump()
            with pytest.raises(InvalidRows) as caught:
                call()
            assert {problem.row for problem in caught.value.problems} == bad_rows
            assert self.dump() == before
            return
        registered = call()
        explicit = {values[4] for _, values in rows if values[4] is not None}
        autos = iter(lowest_free(self.used_ids() | explicit, len(rows) - len(explicit)))
        for (_, (uuid, name, pool, priority, vm_id)), vm in zip(rows, registered, strict=True):
            self.model[uuid] = (vm_id if vm_id is not None else next(autos), name, pool, priority)
            self.changes += 1
            self.check_vm(vm, uuid)

    def bad_rows(self, rows: list[tuple]) -> set[int]:
        """Rows (1-based) register_many must report: invalid values, or a UUID / vm_id already taken, by the
        database or by an earlier row (even one refused for its values: what of it can be read, it names)."""
        bad, seen_uuids, seen_ids = set(), set(self.model), self.used_ids()
        for number, values in enumerate(rows, start=1):
            uuid, vm_id = values[0], values[4]
            if BAD in values or uuid in seen_uuids or (vm_id is not None and vm_id in seen_ids):
                bad.add(number)
            if uuid is not BAD:
                seen_uuids.add(uuid)
            if vm_id is not None and vm_id is not BAD:
                seen_ids.add(vm_id)
        return bad

    @rule(uuid=uuid_inputs, pool=optional(pool_inputs), priority=optional(priority_inputs), vm_id=optional(vm_id_inputs))
    def update(self, uuid, pool, priority, vm_id):
        given = [value for value in (pool, priority, vm_id) if value[0] is not None]
        refusals: tuple = ()
        if not given or uuid[1] is BAD or any(value[1] is BAD for value in given):
            refusals = (InvalidValue, NotFound)
        elif uuid[1] not in self.model:
            refusals = (NotFound,)
        elif vm_id[1] is not None and vm_id[1] != self.model[uuid[1]][0] and vm_id[1] in self.used_ids():
            refusals = (Conflict,)
        call = lambda: vms.db_update(self.store, uuid[0], pool=pool[0], priority=priority[0], vm_id=vm_id[0])
        vm = self.attempt(call, refusals)
        if vm is not None:
            old = self.model[uuid[1]]
            new = (old[0] if vm_id[1] is None else vm_id[1], old[1], pool[1] or old[2], old[3] if priority[1] is None else priority[1])
            self.changes += new != old
            self.model[uuid[1]] = new
            self.check_vm(vm, uuid[1])

    @precondition(lambda self: self.model)
    @rule(data=st.data(), pool=optional(pool_inputs), priority=optional(priority_inputs), vm_id=optional(vm_id_inputs))
    def update_a_registered_vm(self, data, pool, priority, vm_id):
        self.update(self.registered_uuid(data), pool, priority, vm_id)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_a_registered_vm(self, data):
        self.remove(self.registered_uuid(data))

    @precondition(lambda self: len(self.model) >= 2)
    @rule(data=st.data())
    def move_a_vm_onto_a_taken_vm_id(self, data):
        mover, holder = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=2, max_size=2, unique=True))
        taken = self.model[holder][0]
        self.update((mover.upper(), mover), (None, None), (None, None), (taken, taken))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), uuid=good_uuids)
    def register_on_a_taken_vm_id(self, data, uuid):
        taken = self.model[data.draw(st.sampled_from(sorted(self.model)))][0]
        self.register(uuid, (None, None), (None, None), (None, None), (str(taken), taken))

    def registered_uuid(self, data) -> tuple[str, str]:
        """Most UUIDs drawn at random are not registered; these rules aim at one that is."""
        uuid = data.draw(st.sampled_from(sorted(self.model)))
        return data.draw(any_case(uuid)), uuid

    @rule(uuid=uuid_inputs)
    def remove(self, uuid):
        refusals = (InvalidValue,) if uuid[1] is BAD else () if uuid[1] in self.model else (NotFound,)
        vm = self.attempt(lambda: vms.db_remove(self.store, uuid[0]), refusals)
        if vm is not None:
            self.check_vm(vm, uuid[1])
            del self.model[uuid[1]]
            self.changes += 1

    @rule(pool=pool_inputs, name=pool_name_inputs)
    def rename_pool(self, pool, name):
        if BAD in (pool[1], name[1]):
            refusals = (InvalidValue,)
        elif any(other != pool[1] and held.casefold() == name[1].casefold() for other, held in self.pool_names.items()):
            refusals = (Conflict,)  # the other pool's name, in any case
        else:
            refusals = ()
        renamed = self.attempt(lambda: pools.set_pool_name(self.store, pool[0], name[0]), refusals)
        if renamed is not None:
            self.changes += self.pool_names[pool[1]] != name[1]
            self.pool_names[pool[1]] = name[1]
            assert (renamed.pool_id, renamed.pool_name) == (pool[1], name[1])

    @precondition(lambda self: self.model)
    @rule()
    def reopen_sees_the_same_registry(self):
        with self.store.reopen() as other:
            assert vms.list_vms(other) == vms.list_vms(self.store)

    # -- invariants (DESIGN.md §3) --

    @invariant()
    def pools_are_exactly_a_and_b(self):
        rows = self.observer.execute("SELECT pool_id, pool_name FROM pools ORDER BY pool_id").fetchall()
        assert rows == sorted(self.pool_names.items())

    @invariant()
    def database_equals_the_model(self):
        rows = self.observer.execute("SELECT vm_uuid, vm_id, vm_name, pool_id, priority FROM vms").fetchall()
        assert {uuid: tuple(rest) for uuid, *rest in rows} == self.model
        assert len(rows) == len(self.model)

    @invariant()
    def vm_ids_and_uuids_are_unique_and_well_formed(self):
        rows = self.observer.execute("SELECT vm_id, vm_uuid, priority, pool_id FROM vms").fetchall()
        assert len({row[0] for row in rows}) == len({row[1] for row in rows}) == len(rows)
        assert all(vm_id >= 1 and priority in (0, 1, 2) and pool in ("A", "B") for vm_id, _, priority, pool in rows)
        assert all(uuid == uuid.lower() for _, uuid, _, _ in rows)

    @invariant()
    def every_vm_is_in_an_existing_pool(self):
        assert self.observer.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = self.observer.execute("SELECT COUNT(*) FROM vms WHERE pool_id NOT IN (SELECT pool_id FROM pools)")
        assert orphans.fetchone()[0] == 0

    @invariant()
    def every_change_has_one_audit_entry(self):
        # A bulk registration is one row holding one entry per VM (audit.history expands it).
        (entries,) = self.observer.execute(
            "SELECT (SELECT COUNT(*) FROM vgpu_audit WHERE subject <> '*')"
            " + (SELECT COALESCE(SUM(json_array_length(new)), 0) FROM vgpu_audit WHERE subject = '*')"
        ).fetchone()
        assert entries == self.changes


RegistryMachine.TestCase.settings = settings(stateful_step_count=25)
TestRegistry = RegistryMachine.TestCase

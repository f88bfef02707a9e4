"""Registered VMs in the database: look up, list, check a batch, plan a change; and the database-only writes.

The writes here (``db_register``, ``db_register_many``, ``db_update``, ``db_remove``) change the database
and nothing else: a VM registered or changed this way keeps its old device-model arguments, and a scan shows
it as drift until it is repaired. On a host, use the host-aware functions, which call down into this module:
:func:`vgpu.lifecycle.register_vm`, :func:`vgpu.lifecycle.reconfigure_vm`, :func:`vgpu.lifecycle.remove_vm`
and :mod:`vgpu.bulk_register`. The old names (``register``, ``register_many``, ``update``, ``remove``)
still work, with a DeprecationWarning.
"""

from __future__ import annotations

import sqlite3
from itertools import count, filterfalse, repeat
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, NamedTuple, ParamSpec, Sequence, TypeVar, cast

import attrs

from . import audit, journal, stored
from .columns import FIELD_OF_KEY, uniform_columns
from .errors import AlreadyRegistered, Conflict, InvalidRows, InvalidValue, NotFound, RowProblem, VgpuError
from .models import DEFAULT_POOL, DEFAULT_PRIORITY, VM, Priority, Registration, VMConfig
from .rows import Header, Reader, Row, blank, labelled, not_given, problem_labeller, row_name, row_reference
from .store import Store
from .tables import VMList
from .values import parse_pool_id, parse_priority, parse_uuid, parse_vm_id, parse_vm_name

COLUMNS = "vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at"
_ORDER = "ORDER BY pool_id, priority DESC, vm_id"

# The lowest vm_id >= :start no VM holds: :start if free, else one past the first held id from :start on
# whose successor is free.
_LOWEST_FREE_VM_ID = """
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM vms WHERE vm_id = :start) THEN :start
ELSE (SELECT MIN(v.vm_id) + 1 FROM vms v
      WHERE v.vm_id >= :start AND NOT EXISTS (SELECT 1 FROM vms w WHERE w.vm_id = v.vm_id + 1)) END
"""


_PRIORITIES = tuple(Priority)  # indexing is several times cheaper than Priority(n), and a scan reads every VM


def vm_from_row(row: tuple[object, ...]) -> VM:
    """A ``vms`` row as a VM; DamagedDatabase for a row that breaks the spec's rules (see vgpu.stored)."""
    return stored.vm(row)


def audit_record(vm: VM) -> dict[str, Any]:
    """The fields of a VM the audit log keeps (priority as its number, as stored)."""
    return {"vm_id": vm.vm_id, "vm_name": vm.vm_name, "pool_id": vm.pool_id, "priority": int(vm.priority)}


# --- validation -------------------------------------------------------------------------------------------


class _Row(NamedTuple):
    """One validated row of a registration, in Registration's field order (cheaper than a Registration
    when ten thousand of them are parsed for register_many)."""

    vm_uuid: str
    vm_name: str | None
    pool_id: str
    priority: Priority
    vm_id: int | None


def make_registration(
    vm_uuid: object,
    vm_name: object = None,
    pool: object = None,
    priority: object = None,
    vm_id: object = None,
) -> Registration:
    """Validate one registration given to a single-VM call: None (or pd.NA) leaves an optional field out (the
    spec's defaults); any other value must be a good one. A blank ("", spaces, NaN) is refused, as
    reconfigure_vm refuses it: given by name, it is a slip, not a request for the default. (A bulk row's
    blank cell is a cell left empty, and takes the default: _parse_row.)"""
    return Registration(
        parse_uuid(vm_uuid),
        None if not_given(vm_name) else parse_vm_name(vm_name),
        DEFAULT_POOL if not_given(pool) else parse_pool_id(pool),
        DEFAULT_PRIORITY if not_given(priority) else parse_priority(priority),
        None if not_given(vm_id) else parse_vm_id(vm_id),
    )


def _empty_text(value: object) -> bool:
    return type(value) is str and not value


def _parse_row(vm_uuid: object, vm_name: object, pool: object, priority: object, vm_id: object) -> tuple[_Row | None, list[InvalidValue]]:
    """Parse each field once: the row, or None and every problem (in field order)."""
    try:  # a good row, the common case, in straight-line code; a bad one is gone over again for every problem
        return tuple.__new__(_Row, (  # tuple.__new__ directly: half the cost of _Row(...) for many rows
            parse_uuid(vm_uuid),
            parse_vm_name(vm_name),
            # `is ""`-like tests, never ==: pandas' NA answers == with NA, whose truth value raises
            DEFAULT_POOL if pool is None or _empty_text(pool) else parse_pool_id(pool),
            DEFAULT_PRIORITY if priority is None or _empty_text(priority) else parse_priority(priority),
            None if vm_id is None or _empty_text(vm_id) else parse_vm_id(vm_id),
        )), []
    except InvalidValue:
        pass
    problems = _registration_problems(vm_uuid, vm_name, pool, priority, vm_id)
    if problems:
        return None, problems
    # Only blank-but-not-empty optional fields ("  ", NaN) get here: they take the defaults too.
    return _Row(
        parse_uuid(vm_uuid),
        None if blank(vm_name) else parse_vm_name(vm_name),
        DEFAULT_POOL if blank(pool) else parse_pool_id(pool),
        DEFAULT_PRIORITY if blank(priority) else parse_priority(priority),
        None if blank(vm_id) else parse_vm_id(vm_id),
    ), []


def _registration_problems(*values: object, unsure: frozenset[int] = frozenset()) -> list[InvalidValue]:
    """Every problem with the fields' values, leaving out the ``unsure`` ones (a column missing or doubled)."""
    problems: list[InvalidValue] = []
    for field, ((parse, optional), value) in enumerate(zip(_PARSERS, values)):
        if field in unsure or (optional and blank(value)):
            continue
        try:
            parse(value)
        except InvalidValue as exc:
            problems.append(exc)
    return problems


# The Registration fields in order: how each is parsed and whether it may be left blank.
_PARSERS = ((parse_uuid, False), (parse_vm_name, True), (parse_pool_id, True), (parse_priority, True), (parse_vm_id, True))
_VM_ID = 4  # its field


# The columns of a registration row: vm_uuid (or uuid), vm_name (or name), pool (or pool_id), priority,
# vm_id, in any case and with spaces around them (see vgpu.rows).
REGISTRATION_HEADER = Header(FIELD_OF_KEY, ("VM UUID", "VM name", "pool", "priority", "vm_id"))


# --- reads ------------------------------------------------------------------------------------------------


def select_vms(conn: sqlite3.Connection, pool_id: str | None = None, priority: Priority | None = None) -> list[VM]:
    where: list[str] = []
    params: list[object] = []
    if pool_id is not None:
        where.append("pool_id = ?")
        params.append(pool_id)
    if priority is not None:
        where.append("priority = ?")
        params.append(int(priority))
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    # Registered in one batch, many VMs share their timestamps: one string each, not one per VM (at 100,000
    # VMs the copies are megabytes). Each row is still checked (vgpu.stored) before it becomes a VM.
    times: dict[str, str] = {}
    return [vm_from_row((vm_id, vm_uuid, vm_name, pool_id, priority, times.setdefault(created_at, created_at),
                         times.setdefault(updated_at, updated_at)))
            for vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at
            in conn.execute(f"SELECT {COLUMNS} FROM vms {clause}{_ORDER}", params)]


def select_vm(conn: sqlite3.Connection, vm_uuid: str) -> VM | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM vms WHERE vm_uuid = ?", (vm_uuid,)).fetchone()
    return None if row is None else vm_from_row(row)


def list_vms(store: Store, pool: object = None, priority: object = None) -> VMList:
    """Registered VMs, Pool A then B, each highest priority first then by vm_id; optionally filtered."""
    pool_id = None if pool is None else parse_pool_id(pool)
    wanted = None if priority is None else parse_priority(priority)
    with store.reading() as conn:
        return VMList(select_vms(conn, pool_id, wanted))


def get(store: Store, vm_uuid: object) -> VM:
    """The registered VM with this UUID; NotFound if it is not registered."""
    canonical = parse_uuid(vm_uuid)
    with store.reading() as conn:
        vm = select_vm(conn, canonical)
    if vm is None:
        raise NotFound("registered VM", canonical, f"if the host has this VM, register it with "
                       f"'vgpu-admin register-vm --vm-uuid={canonical}' (see 'vgpu-admin scan-vms')")
    return vm


def find(store: Store, vm_uuid: object) -> VM | None:
    """The registered VM with this UUID, or None."""
    canonical = parse_uuid(vm_uuid)
    with store.reading() as conn:
        return select_vm(conn, canonical)


# --- register ---------------------------------------------------------------------------------------------


def _now(conn: sqlite3.Connection) -> str:
    now: str = conn.execute("SELECT CURRENT_TIMESTAMP").fetchone()[0]
    return now


def holder_text(vm_uuid: str, vm_name: str | None) -> str:
    """A VM as a Conflict names the holder of a vm_id: ``VM web-1 (uuid)``, or ``VM uuid`` without a name."""
    return f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"


def claimed_vm_ids(conn: sqlite3.Connection, for_vm: str | None = None) -> dict[int, str]:
    """The vm_ids unfinished changes (of VMs other than ``for_vm``) may leave their VMs with: the old one,
    which a rollback puts back, and the new one. Each is held for its VM until the change ends, or recover
    finishes or undoes it: taken by another VM meanwhile, the old one would leave that change unable to roll
    back, and the new one would stop a second VM for a change that must then be refused. Each id maps to
    its holder as a Conflict names it: "the unfinished change of VM web-1 (uuid)"."""
    claimed: dict[int, str] = {}
    for op in journal.select_unfinished(conn):
        if op.vm_uuid == for_vm:
            continue
        holder = f"the unfinished change of {holder_text(op.vm_uuid, op.old.vm_name if op.old else None)}"
        for config in (op.old, op.new):
            if config is not None:
                claimed.setdefault(config.vm_id, holder)
    return claimed


def _holder_of_vm_id(conn: sqlite3.Connection, vm_id: int, for_vm: str | None = None) -> str | None:
    """Who holds ``vm_id``: a registered VM, else an unfinished change of a VM other than ``for_vm``."""
    row = conn.execute("SELECT vm_uuid, vm_name FROM vms WHERE vm_id = ?", (vm_id,)).fetchone()
    if row is not None:
        return holder_text(*row)
    return claimed_vm_ids(conn, for_vm).get(vm_id)


def check_vm_id_free(conn: sqlite3.Connection, vm_id: int, for_vm: str | None = None) -> None:
    """Conflict when a VM holds ``vm_id`` or an unfinished change of another VM than ``for_vm`` may give it
    to its VM (asked for ``for_vm``'s new vm_id, which it does not hold itself)."""
    holder = _holder_of_vm_id(conn, vm_id, for_vm)
    if holder is not None:
        raise Conflict("vm_id", vm_id, holder)


def _lowest_free_vm_id(conn: sqlite3.Connection, for_vm: str) -> int:
    """The lowest vm_id no VM holds and no unfinished change of another VM may give its VM."""
    claimed = claimed_vm_ids(conn, for_vm)
    vm_id: int = conn.execute(_LOWEST_FREE_VM_ID, {"start": 1}).fetchone()[0]
    while vm_id in claimed:
        vm_id = conn.execute(_LOWEST_FREE_VM_ID, {"start": vm_id + 1}).fetchone()[0]
    return vm_id


def _holder_of_taken(conn: sqlite3.Connection, vm_id: int) -> str:
    """The holder of a vm_id this transaction has read as taken (so there is one)."""
    holder = _holder_of_vm_id(conn, vm_id)
    assert holder is not None, f"vm_id {vm_id} was read as taken in this transaction"
    return holder


def _already_registered(vm: VM) -> AlreadyRegistered:
    return AlreadyRegistered(vm.vm_uuid, vm.vm_id, vm.pool_id)


def insert_registration(conn: sqlite3.Connection, reg: Registration) -> VM:
    """Insert one validated registration inside the caller's write transaction."""
    existing = select_vm(conn, reg.vm_uuid)
    if existing is not None:
        raise _already_registered(existing)
    if reg.vm_id is None:
        vm_id = _lowest_free_vm_id(conn, reg.vm_uuid)
    else:
        vm_id = reg.vm_id
        check_vm_id_free(conn, vm_id, reg.vm_uuid)
    now = _now(conn)
    vm = VM(vm_id, reg.vm_uuid, reg.vm_name, reg.pool_id, reg.priority, now, now)
    conn.execute(
        f"INSERT INTO vms ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, int(vm.priority), now, now),
    )
    audit.record(conn, "register", vm.vm_uuid, None, audit_record(vm))
    return vm


def db_register(
    store: Store,
    vm_uuid: object,
    vm_name: object = None,
    pool: object = DEFAULT_POOL,
    priority: object = DEFAULT_PRIORITY,
    vm_id: object = None,
) -> VM:
    """Database only: record one VM, without writing its device-model arguments (use
    :func:`vgpu.lifecycle.register_vm` on a host). Defaults: Pool A, medium priority, the lowest free vm_id
    (an explicit one must be free)."""
    reg = make_registration(vm_uuid, vm_name, pool, priority, vm_id)
    with store.writing() as conn:
        return insert_registration(conn, reg)


ON_EXISTING = ("error", "skip", "update")  # what a bulk registration does with a row whose VM is registered


def _on_existing(value: object) -> str:
    if isinstance(value, str) and value in ON_EXISTING:
        return value
    raise InvalidValue("on_existing", value, ON_EXISTING)


def db_register_many(
    store: Store,
    items: Iterable[Registration | Mapping[str, object]] | Mapping[object, Mapping[str, object]],
    *,
    on_existing: str = "error",
) -> VMList:
    """Database only: record many VMs in one transaction, without writing their device-model arguments
    (on a host use :mod:`vgpu.bulk_register`): all of them, or none and an InvalidRows listing every bad row.
    Returns the VMs registered or changed, in row order.

    Each item is a :class:`Registration` or a mapping with ``vm_uuid`` (or ``uuid``) and optionally
    ``vm_name``/``name``, ``pool``/``pool_id``, ``priority``, ``vm_id``: keys in any case, with spaces or a
    byte-order mark around them, as a CSV header may have them, but one key per field; the columns records()
    adds for reading (``priority_value``, ``state``, ...) are read past. Blank values (None, empty, spaces,
    or NaN as pandas reads an empty cell) take the defaults. Rows are a list (numbered from 1 in problems),
    a pandas DataFrame or a mapping of label to row (``df.to_dict("index")``), whose labels problems name.

    ``on_existing`` says what a row whose VM is registered already does: ``"error"`` (a problem,
    AlreadyRegistered), ``"skip"`` (left as it is) or ``"update"`` (its pool, priority and vm_id set to
    what the row gives; a blank cell or a missing column keeps the VM's value, and its name is kept). A VM
    keeping its own vm_id is never a conflict with itself.
    """
    mode = _on_existing(on_existing)
    rows, labels = labelled(items)
    batch, problems, refused_names = _validate_rows(rows)
    with store.writing() as conn:
        found = _sort(conn, batch, rows, mode, row_reference(labels), refused_names)
        problems += found.problems
        if problems:
            raise InvalidRows(_named(problems, labels))
        new, params = _allocate(found.new, found.taken_ids | found.targets, _now(conn))
        if new:  # an empty batch changes nothing, so it leaves no audit entry either
            last_rowid = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM vms").fetchone()[0]
            conn.executemany(f"INSERT INTO vms ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", params)
            audit.record_registrations_since(conn, last_rowid)
        updated = [(position, update_record(conn, change.vm.vm_uuid, change.new)) for position, change in found.updates]
    if not updated:
        return VMList(new)
    return VMList(vm for _, vm in sorted([*zip(found.new.rows, new), *updated], key=lambda pair: pair[0]))


@attrs.frozen
class BatchCheck:
    """What a batch of registration rows would do, changing nothing. Each ``*_rows`` holds the rows (their
    labels, or their numbers from 1) of the items beside it: ``new_rows[i]`` is the row of ``new[i]``.

    ``new``: the VMs the rows registering a VM would become (vm_ids as they are free now); ``updates``: the
    change each row asks of its registered VM (``on_existing="update"``); ``existing``: the registered VMs
    whose rows leave them as they are (skipped, or already so); ``problems``: every problem with the others."""

    new: tuple[VM, ...]
    new_rows: tuple[Hashable, ...]
    updates: tuple[ChangePlan, ...]
    update_rows: tuple[Hashable, ...]
    existing: tuple[VM, ...]
    existing_rows: tuple[Hashable, ...]
    problems: tuple[RowProblem[Hashable], ...]
    labels: tuple[Hashable, ...] = ()  # every input row's label (or number), in input order
    # The numbers (from 1) of new_rows and update_rows, for problems found later (a DataFrame's labels may repeat)
    new_positions: tuple[int, ...] = ()
    update_positions: tuple[int, ...] = ()
    # Beside existing: whether the VM is registered as its row asks (a blank cell asks for what it has); a row
    # skipped although it asks for something else is not, and nothing of its VM is touched
    existing_as_asked: tuple[bool, ...] = ()
    # Beside new: whether the row gave the vm_id (else it is the lowest free now, which another session may take)
    new_vm_id_given: tuple[bool, ...] = ()


def classify_many(
    store: Store,
    items: Iterable[Registration | Mapping[str, object]] | Mapping[object, Mapping[str, object]],
    *,
    exists: Callable[[str], bool] | None = None,
    on_existing: str = "error",
    missing: Callable[[str], VgpuError] | None = None,
) -> BatchCheck:
    """What :func:`db_register_many` would make of ``items`` with ``on_existing``, changing nothing, row by
    row. ``exists`` (UUID → is the VM on the host?) adds a problem for each row that would register or change
    a VM the host lacks: ``missing(uuid)`` (over a fleet: why it may still be on a host not asked), else NotFound."""
    found, new, labels, count = _classify(store, items, exists, _on_existing(on_existing), missing)
    name = row_name(labels)
    return BatchCheck(
        tuple(new), tuple(map(name, found.new.rows)),
        tuple(change for _, change in found.updates), tuple(name(position) for position, _ in found.updates),
        tuple(vm for _, vm in found.existing), tuple(name(position) for position, _ in found.existing),
        tuple(_named(found.problems, labels)), tuple(map(name, range(1, count + 1))),
        tuple(found.new.rows), tuple(position for position, _ in found.updates),
        tuple(position not in found.asked_otherwise for position, _ in found.existing),
        tuple(vm_id is not None for vm_id in found.new.vm_ids),
    )


def check_many(
    store: Store,
    items: Iterable[Registration | Mapping[str, object]] | Mapping[object, Mapping[str, object]],
    *,
    exists: Callable[[str], bool] | None = None,
    on_existing: str = "error",
) -> tuple[dict[Hashable, VM], list[RowProblem[Hashable]]]:
    """What db_register_many would make of ``items``, changing nothing: the VM each good row would become
    (by row label or number; vm_ids assigned as they are free now; a registered VM as a row of
    ``on_existing="update"`` would change it) and every problem with the other rows. ``exists`` as for
    :func:`classify_many`; :func:`classify_many` also says which rows register, update or skip, and keeps rows that share a
    label apart (a DataFrame's index may repeat one; this dict keeps the last)."""
    found, new, labels, _ = _classify(store, items, exists, _on_existing(on_existing))
    name = row_name(labels)
    changed = [(position, attrs.evolve(change.vm, pool_id=change.new.pool_id, priority=change.new.priority,
                                       vm_id=change.new.vm_id)) for position, change in found.updates]
    good = sorted([*zip(found.new.rows, new), *changed], key=lambda pair: pair[0])
    return {name(position): vm for position, vm in good}, _named(found.problems, labels)


def _classify(store: Store, items: Iterable[object], exists: Callable[[str], bool] | None, mode: str,
              missing: Callable[[str], VgpuError] | None = None) -> tuple[_Sorted, list[VM], list[Hashable] | None, int]:
    rows, labels = labelled(items)
    batch, problems, refused_names = _validate_rows(rows)
    with store.reading() as conn:
        found = _sort(conn, batch, rows, mode, row_reference(labels), refused_names)
    problems += found.problems
    updates = found.updates
    if exists is not None:
        lacked = missing or _no_such_vm
        problems += [RowProblem(position, lacked(vm_uuid))
                     for position, vm_uuid in zip(found.new.rows, found.new.vm_uuids) if not exists(vm_uuid)]
        problems += [RowProblem(position, lacked(change.vm.vm_uuid)) for position, change in updates if not exists(change.vm.vm_uuid)]
    refused = {problem.row for problem in problems}
    updates = [(position, change) for position, change in updates if position not in refused]
    good = found.new.without(refused)
    targets = {change.new.vm_id for _, change in updates}
    new = _allocate(good, found.taken_ids | targets, None)[0]
    return found._replace(new=good, updates=updates, problems=problems, targets=targets), new, labels, len(rows)


def _no_such_vm(vm_uuid: str) -> VgpuError:
    return NotFound("VM", vm_uuid, "the host has no such VM")


def _named(problems: list[RowProblem[int]], labels: list[Hashable] | None) -> list[RowProblem[Hashable]]:
    """The problems in row order, each naming its row as the caller does (a label, or the number)."""
    return list(map(problem_labeller(labels), sorted(problems, key=lambda p: p.row)))


class _Batch(NamedTuple):
    """The valid rows of a batch as columns: each row's number (from 1) and its five Registration fields.
    Columns, because the checks and the inserts below each go down one or two of them in C."""

    rows: list[int]
    vm_uuids: list[str]
    vm_names: list[str | None]
    pool_ids: list[str]
    priorities: list[Priority]
    vm_ids: list[int | None]

    @classmethod
    def of_rows(cls, rows: dict[int, _Row]) -> "_Batch":
        if not rows:
            return cls([], [], [], [], [], [])
        return cls(list(rows), *map(list, zip(*rows.values())))

    def without(self, refused: set[int]) -> "_Batch":
        if not refused:
            return self
        kept = [index for index, row in enumerate(self.rows) if row not in refused]
        return _Batch._make([column[index] for index in kept] for column in self)


class _RowNames(NamedTuple):
    """What a row refused for its values still names: its VM and the vm_id it asks for, each None where the
    row gives none that can be read. A later row naming either repeats it, as it would repeat a valid row."""

    vm_uuid: str | None
    vm_id: int | None


def _validate_rows(items: Sequence[object]) -> tuple[_Batch, list[RowProblem[int]], dict[int, _RowNames]]:
    """The valid rows, the problems of the others, and what each refused row names (by its number)."""
    columns = uniform_columns(items)
    if columns is not None:  # the usual batch, checked a column at a time (see vgpu.columns)
        return _Batch(list(range(1, len(items) + 1)), *columns), [], {}
    return _validate_each(items)


def _validate_each(items: Sequence[object]) -> tuple[_Batch, list[RowProblem[int]], dict[int, _RowNames]]:
    """The per-row path: every row's keys read as a person means them, every field parsed, every problem kept."""
    read = REGISTRATION_HEADER.reader()
    good: dict[int, _Row] = {}
    problems: list[RowProblem[int]] = []
    refused_names: dict[int, _RowNames] = {}
    for number, item in enumerate(items, start=1):
        # type() first: isinstance against the Mapping ABC costs more than parsing a field
        if type(item) is dict or (not isinstance(item, Registration) and isinstance(item, Mapping)):
            values, errors, layout = read(item)
            if errors:
                errors += _registration_problems(*values, unsure=layout.unsure)
            named = None  # read only if the row is refused: a good row is in the batch
        elif isinstance(item, Registration):
            values, errors = (item.vm_uuid, item.vm_name, item.pool_id, item.priority, item.vm_id), []
            named = _RowNames(item.vm_uuid, item.vm_id)
        else:
            problems.append(RowProblem(number, InvalidValue("row", item, "a Registration or a mapping of fields")))
            continue
        if not errors:
            row, errors = _parse_row(*values)
            if row is not None:
                good[number] = row
                continue
        problems.extend(RowProblem(number, error) for error in errors)
        refused_names[number] = named or _RowNames(layout.named_vm(values), layout.named(values, _VM_ID, parse_vm_id))
    return _Batch.of_rows(good), problems, refused_names


def _taken(conn: sqlite3.Connection) -> tuple[set[int], set[str]]:
    """The vm_ids no row may have (registered VMs', and those unfinished changes may give their VMs), and the
    registered UUIDs."""
    taken_ids: set[int] = set(claimed_vm_ids(conn))
    taken_uuids: set[str] = set()
    for vm_uuid, vm_id in conn.execute("SELECT vm_uuid, vm_id FROM vms"):
        taken_ids.add(vm_id)
        taken_uuids.add(vm_uuid)
    return taken_ids, taken_uuids


class _Sorted(NamedTuple):
    """A batch's valid rows sorted against the database, by position (from 1)."""

    new: _Batch  # the rows registering a VM
    updates: list[tuple[int, "ChangePlan"]]  # the change a row asks of its registered VM (on_existing="update")
    existing: list[tuple[int, VM]]  # registered VMs their rows leave as they are
    problems: list[RowProblem[int]]
    taken_ids: set[int]  # the vm_ids registered VMs hold now, and those unfinished changes may give their VMs
    targets: set[int]  # the vm_ids the updates move their VMs to
    asked_otherwise: frozenset[int] = frozenset()  # existing rows skipped although they ask for another configuration


def _sort(conn: sqlite3.Connection, batch: _Batch, items: Sequence[object], mode: str, refer: Callable[[int], str],
          refused_names: Mapping[int, _RowNames]) -> _Sorted:
    """Which rows register a VM, which change or leave a registered one (as ``mode`` says), and the conflicts:
    a UUID registered already (AlreadyRegistered, for ``"error"``), a vm_id another VM holds (naming it, as
    register does), and a UUID or vm_id given twice in the batch (naming the first row, even one refused for
    its values: ``refused_names``, what each of those names, by row)."""
    taken_ids, taken_uuids = _taken(conn)
    explicit = [vm_id for vm_id in batch.vm_ids if vm_id is not None]
    if (
        len(set(batch.vm_uuids)) == len(batch.vm_uuids) and taken_uuids.isdisjoint(batch.vm_uuids)
        and len(set(explicit)) == len(explicit) and taken_ids.isdisjoint(explicit)
        and {named.vm_uuid for named in refused_names.values()}.isdisjoint(batch.vm_uuids)
        and {named.vm_id for named in refused_names.values()}.isdisjoint(explicit)
    ):
        return _Sorted(batch, [], [], [], taken_ids, set())  # the usual batch: settled by set operations
    registered = select_registered(conn, [vm_uuid for vm_uuid in batch.vm_uuids if vm_uuid in taken_uuids])
    read = REGISTRATION_HEADER.reader()
    problems: list[RowProblem[int]] = []
    updates: list[tuple[int, ChangePlan]] = []
    existing: list[tuple[int, VM]] = []
    new: set[int] = set()
    asked_otherwise: set[int] = set()
    first_row_of_uuid: dict[str, int] = {}
    first_row_of_id: dict[int, int] = {}
    for position, named in refused_names.items():  # in row order: the first refused row naming each VM and vm_id
        if named.vm_uuid is not None:
            first_row_of_uuid.setdefault(named.vm_uuid, position)
        if named.vm_id is not None:
            first_row_of_id.setdefault(named.vm_id, position)

    def claim(position: int, vm_id: int) -> bool:
        """Take ``vm_id`` for this row, or record why it cannot have it."""
        first = first_row_of_id.get(vm_id, position)  # a refused row after this one is no earlier row
        if vm_id in taken_ids:
            problems.append(RowProblem(position, Conflict("vm_id", vm_id, _holder_of_taken(conn, vm_id))))
        elif first < position:
            problems.append(RowProblem(position, Conflict("vm_id", vm_id, refer(first))))
        else:
            first_row_of_id[vm_id] = position
            return True
        return False

    for position, vm_uuid, pool_id, priority, vm_id in zip(batch.rows, batch.vm_uuids, batch.pool_ids, batch.priorities, batch.vm_ids):
        vm = registered.get(vm_uuid)
        if vm is not None and mode == "error":
            problems.append(RowProblem(position, _already_registered(vm)))
            if vm_id is not None and vm_id != vm.vm_id:  # its own vm_id is never a conflict
                claim(position, vm_id)
            continue
        first = first_row_of_uuid.get(vm_uuid, position)
        if first < position:
            problems.append(RowProblem(position, Conflict("VM UUID", vm_uuid, refer(first))))
            # its vm_id is still asked for: a later row asking for it too would clash with this one once its
            # UUID is fixed, so one pass reports that as well (unless it repeats its first row's vm_id)
            if vm_id is not None and first_row_of_id.get(vm_id) != first:
                claim(position, vm_id)
            continue
        first_row_of_uuid[vm_uuid] = position
        if vm is None:
            if vm_id is None or claim(position, vm_id):
                new.add(position)
        else:
            # a row in the batch is one of these: _validate_rows refused any other
            gives_pool, gives_priority, gives_vm_id = _given(cast("Registration | Row", items[position - 1]), read)
            target = VMConfig(pool_id if gives_pool else vm.pool_id, priority if gives_priority else vm.priority,
                              vm_id if gives_vm_id and vm_id is not None else vm.vm_id)
            if mode == "skip":
                existing.append((position, vm))
                if target != vm.config:
                    asked_otherwise.add(position)
            elif target == vm.config:
                existing.append((position, vm))
            elif target.vm_id == vm.vm_id or claim(position, target.vm_id):
                updates.append((position, ChangePlan(vm, target)))
    targets = {change.new.vm_id for _, change in updates}
    return _Sorted(batch.without(set(batch.rows) - new), updates, existing, problems, taken_ids, targets, frozenset(asked_otherwise))


def _given(item: Registration | Row, read: Reader) -> tuple[bool, bool, bool]:
    """Whether a row gives a pool, a priority and a vm_id (a blank cell or no column gives none)."""
    if isinstance(item, Registration):
        return True, True, item.vm_id is not None
    values = read(item)[0]
    return not blank(values[2]), not blank(values[3]), not blank(values[4])


def select_registered(conn: sqlite3.Connection, vm_uuids: list[str]) -> dict[str, VM]:
    """The registered VMs among ``vm_uuids``, by UUID (a few hundred per query: SQLite limits parameters)."""
    found: dict[str, VM] = {}
    for start in range(0, len(vm_uuids), 500):
        chunk = vm_uuids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {COLUMNS} FROM vms WHERE vm_uuid IN ({marks})", chunk):
            vm = vm_from_row(row)
            found[vm.vm_uuid] = vm
    return found


_InsertParams = tuple[int, str, str | None, str, int, str | None, str | None]  # a vms row, as INSERT takes it


def _allocate(batch: _Batch, taken_ids: set[int], now: str | None) -> tuple[list[VM], Iterator[_InsertParams]]:
    """Give each row without a vm_id the lowest id not taken by the DB or by an explicit id in the batch.
    Returns the VMs and their INSERT parameters (an iterator: executemany consumes it once)."""
    _, vm_uuids, vm_names, pool_ids, priorities, vm_ids = batch
    explicit = set(vm_ids)
    explicit.discard(None)
    free = filterfalse((taken_ids | explicit).__contains__, count(1))  # the lowest free ids, ascending
    vm_ids = [next(free) if vm_id is None else vm_id for vm_id in vm_ids]
    # map and zip build the objects from the columns in C. Priorities go to sqlite3 as plain ints: an
    # IntEnum makes it look for an adapter on every row, which costs a tenth of the whole insert.
    vms = list(map(VM, vm_ids, vm_uuids, vm_names, pool_ids, priorities, repeat(now), repeat(now)))
    return vms, zip(vm_ids, vm_uuids, vm_names, pool_ids, map(int, priorities), repeat(now), repeat(now))


# --- change and remove ------------------------------------------------------------------------------------


@attrs.frozen
class ChangePlan:
    """What a change to one VM's registration would do (the database's view; lifecycle adds the host's)."""

    vm: VM
    new: VMConfig

    @property
    def current(self) -> VMConfig:
        return self.vm.config

    @property
    def changes(self) -> dict[str, tuple[object, object]]:
        return {
            name: (getattr(self.current, name), getattr(self.new, name))
            for name in ("pool_id", "priority", "vm_id")
            if getattr(self.current, name) != getattr(self.new, name)
        }

    @property
    def is_noop(self) -> bool:
        return self.current == self.new


def new_config(current: VMConfig, pool: object = None, priority: object = None, vm_id: object = None) -> VMConfig:
    """``current`` with the given fields replaced (each validated; None keeps the current value)."""
    return VMConfig(
        pool_id=current.pool_id if pool is None else parse_pool_id(pool),
        priority=current.priority if priority is None else parse_priority(priority),
        vm_id=current.vm_id if vm_id is None else parse_vm_id(vm_id),
    )


def plan_change(store: Store, vm_uuid: object, pool: object = None, priority: object = None, vm_id: object = None) -> ChangePlan:
    """Validate a change and say what it would do, without doing anything."""
    canonical = parse_uuid(vm_uuid)  # a bad UUID is the first thing to report
    if pool is None and priority is None and vm_id is None:
        raise InvalidValue("change", {}, ("pool", "priority", "vm_id"), sentence=(
            f"no change given for VM {canonical}: expected at least one of pool, priority or vm_id"))
    vm = get(store, canonical)
    target = new_config(vm.config, pool, priority, vm_id)
    if target.vm_id != vm.vm_id:
        with store.reading() as conn:
            check_vm_id_free(conn, target.vm_id, vm.vm_uuid)
    return ChangePlan(vm, target)


def update_record(conn: sqlite3.Connection, vm_uuid: str, config: VMConfig) -> VM:
    """Set one VM's pool, priority and vm_id inside the caller's write transaction (audited)."""
    old = select_vm(conn, vm_uuid)
    if old is None:
        raise NotFound("registered VM", vm_uuid)
    if old.config == config:
        return old
    if config.vm_id != old.vm_id:
        check_vm_id_free(conn, config.vm_id, vm_uuid)
    conn.execute(
        "UPDATE vms SET pool_id = ?, priority = ?, vm_id = ?, updated_at = CURRENT_TIMESTAMP WHERE vm_uuid = ?",
        (config.pool_id, int(config.priority), config.vm_id, vm_uuid),
    )
    new = select_vm(conn, vm_uuid)
    assert new is not None, "updated in this transaction"
    audit.record(conn, "update", vm_uuid, audit_record(old), audit_record(new))
    return new


def db_update(store: Store, vm_uuid: object, pool: object = None, priority: object = None, vm_id: object = None) -> VM:
    """Database only: change one VM's record, not its device-model arguments, so the VM shows as drift and
    boots with its old values until repaired. On a host use :func:`vgpu.lifecycle.reconfigure_vm` (a
    confirmed stop, update and start)."""
    plan = plan_change(store, vm_uuid, pool, priority, vm_id)
    with store.writing() as conn:
        return update_record(conn, plan.vm.vm_uuid, plan.new)


def delete_record(conn: sqlite3.Connection, vm_uuid: str) -> VM:
    """Delete one registration inside the caller's write transaction (audited)."""
    vm = select_vm(conn, vm_uuid)
    if vm is None:
        raise NotFound("registered VM", vm_uuid)
    conn.execute("DELETE FROM vms WHERE vm_uuid = ?", (vm_uuid,))
    audit.record(conn, "remove", vm_uuid, audit_record(vm), None)
    return vm


def withdraw_registration(conn: sqlite3.Connection, vm_uuid: str) -> None:
    """Undo :func:`insert_registration` inside the caller's write transaction, its audit entry with it: for a
    registration that never took effect (the VM locked by its journal row meanwhile, so the newest register
    entry of the VM is its own)."""
    conn.execute("DELETE FROM vms WHERE vm_uuid = ?", (vm_uuid,))
    audit.withdraw(conn, "register", vm_uuid)


def db_remove(store: Store, vm_uuid: object) -> VM:
    """Database only: delete one VM's registration, leaving its segment on the host (use
    :func:`vgpu.lifecycle.remove_vm` on a host, which clears it)."""
    canonical = parse_uuid(vm_uuid)
    with store.writing() as conn:
        return delete_record(conn, canonical)



# --- the old names ----------------------------------------------------------------------------------------


_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def _renamed(new: Callable[_Params, _Result], old: str, host_aware: str) -> Callable[_Params, _Result]:
    def deprecated(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        import warnings

        warnings.warn(f"vms.{old} changes only the database and is now named vms.{new.__name__}; on a host use "
                      f"{host_aware} instead, so that the VM is updated too", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    deprecated.__name__ = deprecated.__qualname__ = old
    deprecated.__doc__ = f"Deprecated name of :func:`{new.__name__}` (database only; on a host use {host_aware})."
    return deprecated


register = _renamed(db_register, "register", "lifecycle.register_vm")
register_many = _renamed(db_register_many, "register_many", "bulk_register.plan_registrations and register_planned")
update = _renamed(db_update, "update", "lifecycle.reconfigure_vm")
remove = _renamed(db_remove, "remove", "lifecycle.remove_vm")

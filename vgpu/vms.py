"""Registered VMs: register (one or many), look up, list, plan a change, update the record, remove.

These functions change the database only. Anything that must also reach the hypervisor (writing the
device-model-args segment, restarting the VM) is in :mod:`vgpu.lifecycle`, which calls down into this module.
"""

from __future__ import annotations

import sqlite3
from itertools import count, filterfalse, repeat
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import attrs

from . import audit, stored
from .columns import FIELD_OF_KEY, uniform_columns
from .errors import AlreadyRegistered, Conflict, InvalidRows, InvalidValue, NotFound, RowProblem
from .models import DEFAULT_POOL, DEFAULT_PRIORITY, VM, Priority, Registration, VMConfig
from .rows import Header, as_list, blank
from .store import Store
from .tables import VMList
from .values import parse_pool_id, parse_priority, parse_uuid, parse_vm_id, parse_vm_name

COLUMNS = "vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at"
_ORDER = "ORDER BY pool_id, priority DESC, vm_id"

# The lowest unused vm_id >= 1: 1 if free, else one past the first id whose successor is free.
_LOWEST_FREE_VM_ID = """
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM vms WHERE vm_id = 1) THEN 1
ELSE (SELECT MIN(v.vm_id) + 1 FROM vms v
      WHERE v.vm_id >= 1 AND NOT EXISTS (SELECT 1 FROM vms w WHERE w.vm_id = v.vm_id + 1)) END
"""


def vm_from_row(row: tuple) -> VM:
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
    """Validate one registration as typed by a person; blank optional fields take the spec's defaults."""
    row, problems = _parse_row(vm_uuid, vm_name, pool, priority, vm_id)
    if problems:
        raise problems[0]
    return Registration(*row)


def _empty_text(value: object) -> bool:
    return type(value) is str and not value


def _parse_row(vm_uuid, vm_name, pool, priority, vm_id) -> tuple[_Row | None, list[InvalidValue]]:
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


# The columns of a registration row: vm_uuid (or uuid), vm_name (or name), pool (or pool_id), priority,
# vm_id, in any case and with spaces around them (see vgpu.rows).
REGISTRATION_HEADER = Header(FIELD_OF_KEY, ("VM UUID", "VM name", "pool", "priority", "vm_id"))


# --- reads ------------------------------------------------------------------------------------------------


def select_vms(conn: sqlite3.Connection, pool_id: str | None = None, priority: Priority | None = None) -> list[VM]:
    where, params = [], []
    if pool_id is not None:
        where.append("pool_id = ?")
        params.append(pool_id)
    if priority is not None:
        where.append("priority = ?")
        params.append(int(priority))
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.execute(f"SELECT {COLUMNS} FROM vms {clause}{_ORDER}", params).fetchall()
    return [vm_from_row(row) for row in rows]


def select_vm(conn: sqlite3.Connection, vm_uuid: str) -> VM | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM vms WHERE vm_uuid = ?", (vm_uuid,)).fetchone()
    return None if row is None else vm_from_row(row)


def list_vms(store: Store, pool: object = None, priority: object = None) -> list[VM]:
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
    return conn.execute("SELECT CURRENT_TIMESTAMP").fetchone()[0]


def holder_text(vm_uuid: str, vm_name: str | None) -> str:
    """A VM as a Conflict names the holder of a vm_id: ``VM web-1 (uuid)``, or ``VM uuid`` without a name."""
    return f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"


def _holder_of_vm_id(conn: sqlite3.Connection, vm_id: int) -> str | None:
    row = conn.execute("SELECT vm_uuid, vm_name FROM vms WHERE vm_id = ?", (vm_id,)).fetchone()
    return None if row is None else holder_text(*row)


def _already_registered(vm: VM) -> AlreadyRegistered:
    return AlreadyRegistered(vm.vm_uuid, vm.vm_id, vm.pool_id)


def insert_registration(conn: sqlite3.Connection, reg: Registration) -> VM:
    """Insert one validated registration inside the caller's write transaction."""
    existing = select_vm(conn, reg.vm_uuid)
    if existing is not None:
        raise _already_registered(existing)
    if reg.vm_id is None:
        vm_id = conn.execute(_LOWEST_FREE_VM_ID).fetchone()[0]
    else:
        vm_id = reg.vm_id
        holder = _holder_of_vm_id(conn, vm_id)
        if holder is not None:
            raise Conflict("vm_id", vm_id, holder)
    now = _now(conn)
    vm = VM(vm_id, reg.vm_uuid, reg.vm_name, reg.pool_id, reg.priority, now, now)
    conn.execute(
        f"INSERT INTO vms ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (vm.vm_id, vm.vm_uuid, vm.vm_name, vm.pool_id, int(vm.priority), now, now),
    )
    audit.record(conn, "register", vm.vm_uuid, None, audit_record(vm))
    return vm


def register(
    store: Store,
    vm_uuid: object,
    vm_name: object = None,
    pool: object = DEFAULT_POOL,
    priority: object = DEFAULT_PRIORITY,
    vm_id: object = None,
) -> VM:
    """Register one VM. Defaults: Pool A, medium priority, the lowest free vm_id (an explicit one must be free).

    Database only: :func:`vgpu.lifecycle.register_vm` also writes the VM's device-model-args segment.
    """
    reg = make_registration(vm_uuid, vm_name, pool, priority, vm_id)
    with store.writing() as conn:
        return insert_registration(conn, reg)


def register_many(store: Store, items: Iterable[Registration | Mapping[str, object]]) -> list[VM]:
    """Register many VMs in one transaction: all of them, or none and an InvalidRows listing every bad row.

    Each item is a :class:`Registration` or a mapping with ``vm_uuid`` (or ``uuid``) and optionally
    ``vm_name``/``name``, ``pool``/``pool_id``, ``priority``, ``vm_id``: keys in any case, with spaces or a
    byte-order mark around them, as a CSV header may have them, but one key per field. Blank values (None,
    empty, spaces, or NaN as pandas reads an empty cell) take the defaults. A pandas DataFrame is refused
    with a hint: pass ``df.to_dict("records")``.
    """
    batch, problems = _validate_rows(items)
    with store.writing() as conn:
        taken_ids, taken_uuids = _taken(conn)
        problems += _conflicts(conn, batch, taken_ids, taken_uuids)
        if problems:
            raise InvalidRows(sorted(problems, key=lambda p: p.row))
        vms, params = _allocate(batch, taken_ids, _now(conn))
        if vms:  # an empty batch changes nothing, so it leaves no audit entry either
            last_rowid = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM vms").fetchone()[0]
            conn.executemany(f"INSERT INTO vms ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", params)
            audit.record_registrations_since(conn, last_rowid)
    return VMList(vms)


def check_many(
    store: Store,
    items: Iterable[Registration | Mapping[str, object]],
    *,
    exists: Callable[[str], bool] | None = None,
) -> tuple[dict[int, VM], list[RowProblem]]:
    """What register_many would make of ``items``, changing nothing: the VM each good row would become (by
    row number, vm_ids assigned as they are free now) and every problem with the other rows. ``exists``
    (UUID → is the VM on the host?) adds a NotFound problem for each row whose VM the host lacks."""
    batch, problems = _validate_rows(items)
    with store.reading() as conn:
        taken_ids, taken_uuids = _taken(conn)
        problems += _conflicts(conn, batch, taken_ids, taken_uuids)
    if exists is not None:
        problems += [
            RowProblem(row, NotFound("VM", vm_uuid, "the host has no such VM"))
            for row, vm_uuid in zip(batch.rows, batch.vm_uuids) if not exists(vm_uuid)
        ]
    good = batch.without({problem.row for problem in problems})
    return dict(zip(good.rows, _allocate(good, taken_ids, None)[0])), sorted(problems, key=lambda p: p.row)


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
        return _Batch(*([column[index] for index in kept] for column in self))


def _validate_rows(items: Iterable[Registration | Mapping[str, object]]) -> tuple[_Batch, list[RowProblem]]:
    items = items if isinstance(items, (list, tuple)) else as_list(items)
    columns = uniform_columns(items)
    if columns is not None:  # the usual batch, checked a column at a time (see vgpu.columns)
        return _Batch(list(range(1, len(items) + 1)), *columns), []
    return _validate_each(items)


def _validate_each(items: Sequence[object]) -> tuple[_Batch, list[RowProblem]]:
    """The per-row path: every row's keys read as a person means them, every field parsed, every problem kept."""
    read = REGISTRATION_HEADER.reader()
    good: dict[int, _Row] = {}
    problems: list[RowProblem] = []
    for number, item in enumerate(items, start=1):
        # type() first: isinstance against the Mapping ABC costs more than parsing a field
        if type(item) is dict or (not isinstance(item, Registration) and isinstance(item, Mapping)):
            values, errors, layout = read(item)
            if errors:
                errors += _registration_problems(*values, unsure=layout.unsure)
        elif isinstance(item, Registration):
            values, errors = (item.vm_uuid, item.vm_name, item.pool_id, item.priority, item.vm_id), []
        else:
            problems.append(RowProblem(number, InvalidValue("row", item, "a Registration or a mapping of fields")))
            continue
        if not errors:
            row, errors = _parse_row(*values)
        if errors:
            problems.extend(RowProblem(number, error) for error in errors)
        else:
            good[number] = row
    return _Batch.of_rows(good), problems


def _taken(conn: sqlite3.Connection) -> tuple[set[int], set[str]]:
    taken_ids: set[int] = set()
    taken_uuids: set[str] = set()
    for vm_uuid, vm_id in conn.execute("SELECT vm_uuid, vm_id FROM vms"):
        taken_ids.add(vm_id)
        taken_uuids.add(vm_uuid)
    return taken_ids, taken_uuids


def _conflicts(conn: sqlite3.Connection, batch: _Batch, taken_ids: set[int], taken_uuids: set[str]) -> list[RowProblem]:
    """A UUID registered already (AlreadyRegistered, so a re-run can skip those rows), a vm_id taken (naming
    its holder, as register does), and a UUID or vm_id given twice in the batch (naming the first row)."""
    explicit_ids = [vm_id for vm_id in batch.vm_ids if vm_id is not None]
    if (
        len(set(batch.vm_uuids)) == len(batch.vm_uuids) and taken_uuids.isdisjoint(batch.vm_uuids)
        and len(set(explicit_ids)) == len(explicit_ids) and taken_ids.isdisjoint(explicit_ids)
    ):
        return []  # the usual batch: settled by set operations, without a look at each row
    problems: list[RowProblem] = []
    first_row_of_uuid: dict[str, int] = {}
    first_row_of_id: dict[int, int] = {}
    for row, vm_uuid, vm_id in zip(batch.rows, batch.vm_uuids, batch.vm_ids):
        if vm_uuid in taken_uuids:
            problems.append(RowProblem(row, _already_registered(select_vm(conn, vm_uuid))))
        elif vm_uuid in first_row_of_uuid:
            problems.append(RowProblem(row, Conflict("VM UUID", vm_uuid, f"row {first_row_of_uuid[vm_uuid]}")))
        else:
            first_row_of_uuid[vm_uuid] = row
        if vm_id is None:
            continue
        if vm_id in taken_ids:
            problems.append(RowProblem(row, Conflict("vm_id", vm_id, _holder_of_vm_id(conn, vm_id))))
        elif vm_id in first_row_of_id:
            problems.append(RowProblem(row, Conflict("vm_id", vm_id, f"row {first_row_of_id[vm_id]}")))
        else:
            first_row_of_id[vm_id] = row
    return problems


def _allocate(batch: _Batch, taken_ids: set[int], now: str | None) -> tuple[list[VM], Iterator[tuple]]:
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
            holder = _holder_of_vm_id(conn, target.vm_id)
        if holder is not None:
            raise Conflict("vm_id", target.vm_id, holder)
    return ChangePlan(vm, target)


def update_record(conn: sqlite3.Connection, vm_uuid: str, config: VMConfig) -> VM:
    """Set one VM's pool, priority and vm_id inside the caller's write transaction (audited)."""
    old = select_vm(conn, vm_uuid)
    if old is None:
        raise NotFound("registered VM", vm_uuid)
    if old.config == config:
        return old
    if config.vm_id != old.vm_id:
        holder = _holder_of_vm_id(conn, config.vm_id)
        if holder is not None:
            raise Conflict("vm_id", config.vm_id, holder)
    conn.execute(
        "UPDATE vms SET pool_id = ?, priority = ?, vm_id = ?, updated_at = CURRENT_TIMESTAMP WHERE vm_uuid = ?",
        (config.pool_id, int(config.priority), config.vm_id, vm_uuid),
    )
    new = select_vm(conn, vm_uuid)
    audit.record(conn, "update", vm_uuid, audit_record(old), audit_record(new))
    return new


def update(store: Store, vm_uuid: object, pool: object = None, priority: object = None, vm_id: object = None) -> VM:
    """Change the database record only. The VM learns of it at its next boot; to apply it now with a
    confirmed restart use :func:`vgpu.lifecycle.reconfigure_vm`."""
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


def remove(store: Store, vm_uuid: object) -> VM:
    """Unregister a VM (database only; :func:`vgpu.lifecycle.remove_vm` also clears its segment)."""
    canonical = parse_uuid(vm_uuid)
    with store.writing() as conn:
        return delete_record(conn, canonical)


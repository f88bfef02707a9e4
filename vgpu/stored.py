"""Rows read back from the database, checked against the spec's rules before anything uses them.

The scheduler, an admin with the sqlite3 tool or a file restored from elsewhere can put anything in the
tables: SQLite keeps whatever type it is given, and a database without the spec's CHECK constraints keeps
whatever value (a priority of 7, a pool C, a vm_id of 2**62 or of text). Such a row is a damaged database,
reported as one (:class:`vgpu.errors.DamagedDatabase`, exit 1, naming the row), never mistaken for user
input and never passed on: a pool id or a vm_id read here ends up in QEMU's arguments.

Names may hold any character (the shell escapes what does not print) but are bounded, as are the other
texts; timestamps may be text or numbers, as SQLite's TIMESTAMP affinity keeps them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, overload

from .basics import NAME_MAX, POOL_IDS, UUID_PATTERN, VM_ID_MAX, Pool, Priority, PriorityCounts
from .errors import DamagedDatabase

if TYPE_CHECKING:  # built in vm(), vm_record(), config_record(): list-pools (its start-up is measured) builds none
    from .models import VM, VMConfig

TEXT_MAX = 4096  # a pool's description, a journal's owner: free text, but not megabytes of it
TIMESTAMP_MAX = 64
PRIORITY = {0: Priority.LOW, 1: Priority.MEDIUM, 2: Priority.HIGH}
_SHOWN = 40


def shown(value: object) -> str:
    """A stored value as an error names it: its repr, cut short (a damaged row may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


# --- one value at a time: each returns the value as the library uses it, or raises -------------------------


class Bad(Exception):
    """A value breaks a rule: ``rule`` says which, for the DamagedDatabase the caller raises."""

    def __init__(self, column: str, value: object, rule: str) -> None:
        super().__init__(column)
        self.column, self.value, self.rule = column, value, rule


def vm_id(value: object, column: str = "vm_id") -> int:
    if type(value) is int and 1 <= value <= VM_ID_MAX:
        return value
    raise Bad(column, value, f"a whole number from 1 to {VM_ID_MAX}")


def vm_uuid(value: object, column: str = "vm_uuid") -> str:
    if type(value) is str and (_UUID or _uuid()).fullmatch(value):
        return value
    raise Bad(column, value, "a lower-case UUID")


def pool_id(value: object, column: str = "pool_id") -> str:
    if type(value) is str and value in POOL_IDS:
        return value
    raise Bad(column, value, "A or B")


def priority(value: object, column: str = "priority") -> Priority:
    if type(value) is int and value in PRIORITY:
        return PRIORITY[value]
    raise Bad(column, value, "0, 1 or 2")


@overload
def text(value: object, column: str, limit: int, *, null: Literal[False]) -> str: ...
@overload
def text(value: object, column: str, limit: int, *, null: bool = True) -> str | None: ...


def text(value: object, column: str, limit: int, *, null: bool = True) -> str | None:
    if (value is None and null) or (type(value) is str and len(value) <= limit):
        return value
    raise Bad(column, value, f"text of at most {limit} characters" + (" or NULL" if null else ""))


@overload
def timestamp(value: object, column: str, *, null: Literal[False]) -> str: ...
@overload
def timestamp(value: object, column: str, *, null: bool = True) -> str | None: ...


def timestamp(value: object, column: str, *, null: bool = True) -> str | None:
    if (value is None and null) or (type(value) is str and len(value) <= TIMESTAMP_MAX):
        return value
    if type(value) in (int, float):  # SQLite's TIMESTAMP affinity keeps a number as a number
        return str(value)
    raise Bad(column, value, f"a timestamp of at most {TIMESTAMP_MAX} characters")


def flag(value: object, column: str) -> bool:
    if value is None or (type(value) is int and value in (0, 1)):  # the spec's CHECK lets NULL through
        return bool(value)
    raise Bad(column, value, "0 or 1")


# --- rows ------------------------------------------------------------------------------------------------


def vm(row: tuple[object, ...]) -> VM:
    """A ``vms`` row (vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at) as a VM."""
    make, uuid_pattern = _VM or _vm_class(), _UUID or _uuid()
    number, uuid, name, pool, level, created, updated = row
    if (type(number) is int and 1 <= number <= VM_ID_MAX and type(uuid) is str and uuid_pattern.fullmatch(uuid)
            and pool in POOL_IDS and type(level) is int and level in PRIORITY
            and (name is None or (type(name) is str and len(name) <= NAME_MAX))
            and (created is None or type(created) is str) and (updated is None or type(updated) is str)
            and len(created or "") <= TIMESTAMP_MAX and len(updated or "") <= TIMESTAMP_MAX):
        return make(number, uuid, name, pool, PRIORITY[level], created, updated)  # the usual row, checked at once
    try:
        return make(vm_id(number), vm_uuid(uuid), text(name, "vm_name", NAME_MAX), pool_id(pool), priority(level),
                    timestamp(created, "created_at"), timestamp(updated, "updated_at"))
    except Bad as bad:
        raise damaged("vms", row_key(uuid, number), bad) from None


# vgpu.models.VM, bound at the first row read: list-pools, whose start-up is measured, reads no VM row, and
# an import inside vm() would cost more than the row's checks (scans read every row).
_VM: type[VM] | None = None


# Compiled on first use, as the VM class is imported: a pattern costs about 0.2 ms to compile, and
# list-pools (whose start-up is measured) reads no VM.
_UUID: re.Pattern[str] | None = None


def _uuid() -> re.Pattern[str]:
    global _UUID
    _UUID = re.compile(UUID_PATTERN)
    return _UUID


def _vm_class() -> type[VM]:
    global _VM
    from .models import VM

    _VM = VM
    return VM


def pool(row: tuple[object, object, object, object, object, object, int, int, int]) -> Pool:
    """A ``pools`` row with its counts per priority (see pools._POOL_SQL: SQL's own sums) as a Pool."""
    key, name, description, enabled, created, updated, low, medium, high = row
    try:
        return Pool(pool_id(key), text(name, "pool_name", NAME_MAX, null=False), text(description, "description", TEXT_MAX),
                    flag(enabled, "enabled"), PriorityCounts(low, medium, high), timestamp(created, "created_at"),
                    timestamp(updated, "updated_at"))
    except Bad as bad:
        raise damaged("pools", f"with pool_id {shown(key)}", bad) from None


def vm_record(data: Any, table: str, row: str) -> VM:
    """A VM as the journal keeps it (a JSON object), checked as a ``vms`` row is."""
    from .models import VM  # here: list-pools, whose start-up is measured, reads no journal

    try:
        if type(data) is not dict:
            raise Bad("old", data, "a JSON object describing a VM")
        fields = [data.get(name) for name in ("vm_id", "vm_uuid", "vm_name", "pool_id", "priority", "created_at", "updated_at")]
        return VM(vm_id(fields[0]), vm_uuid(fields[1]), text(fields[2], "vm_name", NAME_MAX), pool_id(fields[3]),
                  priority(fields[4]), timestamp(fields[5], "created_at"), timestamp(fields[6], "updated_at"))
    except Bad as bad:
        raise damaged(table, row, bad) from None


def config_record(data: Any, table: str, row: str) -> VMConfig:
    """A configuration as the journal keeps it (a JSON object with pool_id, priority and vm_id)."""
    from .models import VMConfig  # here: list-pools, whose start-up is measured, reads no journal

    try:
        if type(data) is not dict:
            raise Bad("new", data, "a JSON object with pool_id, priority and vm_id")
        return VMConfig(pool_id(data.get("pool_id")), priority(data.get("priority")), vm_id(data.get("vm_id")))
    except Bad as bad:
        raise damaged(table, row, bad) from None


def one_of(table: str, row: str, column: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of the words ``allowed``, else a DamagedDatabase naming the row."""
    if type(value) is str and value in allowed:
        return value
    raise damaged(table, row, Bad(column, value, ", ".join(allowed)))


def damaged(table: str, row: str, bad: Bad) -> DamagedDatabase:
    return DamagedDatabase(table, row, f"{bad.column} {shown(bad.value)}, where the spec allows {bad.rule}")


def row_key(uuid: object, number: object) -> str:
    if type(uuid) is str and (_UUID or _uuid()).fullmatch(uuid):
        return f"with vm_uuid {uuid}"
    return f"with vm_uuid {shown(uuid)} and vm_id {shown(number)}"

"""The audit log: every change to pools and VMs, with its time and the record before and after.

Entries are written by the module making the change, inside the same transaction, so a change and its
audit entry are committed or lost together; a change undone before it took effect takes its entry with it
(:func:`withdraw`).
"""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING, Any

from . import stored
from .errors import InvalidValue
from .models import AuditEntry
from .store import Store
from .tables import AuditList
from .values import parse_count, parse_pool_id, parse_uuid

if TYPE_CHECKING:
    import json

# stop: how vgpu-admin stopped a VM; forget-host: where a VM was last seen, forgotten with its host (vgpu.locations)
ACTIONS = ("register", "update", "remove", "rename-pool", "stop", "forget-host")


def record(conn: sqlite3.Connection, action: str, subject: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    conn.execute(
        "INSERT INTO vgpu_audit (action, subject, old, new) VALUES (?, ?, ?, ?)",
        (action, subject, _dump(old), _dump(new)),
    )


def withdraw(conn: sqlite3.Connection, action: str, subject: str) -> None:
    """Delete the newest ``action`` entry of ``subject``, inside the caller's write transaction that undoes
    its change: a change that never took effect (a registration whose segment could not be written) is not
    history, neither as itself nor as a second entry undoing it."""
    conn.execute(
        "DELETE FROM vgpu_audit WHERE entry_id = (SELECT max(entry_id) FROM vgpu_audit WHERE subject = ? AND action = ?)",
        (subject, action),
    )


def stopped_since(conn: sqlite3.Connection, vm_uuid: str, since: str) -> bool:
    """vgpu-admin recorded stopping the VM at or after ``since`` (a clean shutdown or a forced one, not a
    request it did not see through)."""
    row = conn.execute(
        "SELECT 1 FROM vgpu_audit WHERE subject = ? AND action = 'stop' AND at >= ?"
        " AND coalesce(json_extract(new, '$.stop'), '') <> 'requested' LIMIT 1",
        (vm_uuid, since),
    ).fetchone()
    return row is not None


# A bulk registration is recorded as ONE entry whose subject is BATCH and whose ``new`` is a JSON array of
# the registered rows (each with its vm_uuid). SQLite builds that array from the rows just inserted, so a
# batch of 10,000 costs one small write instead of 10,000 (the bulk benchmark's budget), and history()
# expands it back into one entry per VM, so readers never see the difference.
BATCH = "*"


def record_registrations_since(conn: sqlite3.Connection, last_rowid_before: int) -> None:
    """Audit every vms row inserted after ``last_rowid_before`` (in this transaction) as one registration batch.

    Each VM is a JSON array in _BATCH_FIELDS order, not an object: a third less text to build and write."""
    conn.execute(
        f"""INSERT INTO vgpu_audit (action, subject, old, new)
            SELECT 'register', '{BATCH}', NULL, json_group_array(json_array({", ".join(_BATCH_FIELDS)}))
            FROM vms WHERE rowid > ?""",
        (last_rowid_before,),
    )


_BATCH_FIELDS = ("vm_uuid", "pool_id", "priority", "vm_id", "vm_name")
_BATCH_ENTRY = "json_object(" + ", ".join(f"'{name}', json_extract(j.value, '$[{index}]')" for index, name in enumerate(_BATCH_FIELDS) if index) + ")"
_HISTORY_SQL = f"""
WITH entries(entry_id, part, at, action, subject, old, new) AS (
    SELECT entry_id, 0, at, action, subject, old, new FROM vgpu_audit WHERE subject <> '{BATCH}'
    UNION ALL
    SELECT a.entry_id, j.key, a.at, a.action, json_extract(j.value, '$[0]'), NULL, {_BATCH_ENTRY}
    FROM vgpu_audit AS a, json_each(a.new) AS j WHERE a.subject = '{BATCH}'
)
SELECT entry_id, at, action, subject, old, new FROM entries {{where}} ORDER BY entry_id DESC, part DESC {{limit}}
"""


def history(store: Store, subject: str | None = None, *, limit: int | None = None) -> AuditList:
    """Recorded changes, newest first; ``subject`` narrows them to one VM UUID or pool id. Each VM of a bulk
    registration is its own entry (they share the batch's entry_id and time)."""
    params: list[object] = []
    where = limit_clause = ""
    if subject is not None:
        where = "WHERE subject = ?"
        params.append(_subject_key(subject))
    if limit is not None:
        limit_clause = "LIMIT ?"
        params.append(parse_count("limit", limit))
    with store.reading() as conn:
        rows = conn.execute(_HISTORY_SQL.format(where=where, limit=limit_clause), params).fetchall()
        return AuditList(_entry(*row) for row in rows)


def _entry(entry_id: int, at: object, action: object, subject: object, old: object, new: object) -> AuditEntry:
    """One row of the log; DamagedDatabase for a row that is not one vgpu wrote (a record that is not a JSON
    object, an over-long field)."""
    row = f"with entry_id {stored.shown(entry_id)}"
    try:
        fields = (stored.timestamp(at, "at", null=False), stored.text(action, "action", 32, null=False),
                  stored.text(subject, "subject", 64, null=False))
    except stored.Bad as bad:
        raise stored.damaged("vgpu_audit", row, bad) from None
    return AuditEntry(entry_id, *fields, _load(old, "old", row), _load(new, "new", row))


def vm_names(store: Store, entries: list[AuditEntry]) -> dict[str, str]:
    """A name for each VM in ``entries`` whose own record names none (an entry keeps the name the VM had
    then; a stop's names none): its registered name, or for a VM no longer registered the last name the log
    recorded for it (its removal's), which old databases have too. One read per kind, only when needed."""
    unnamed = sorted({entry.subject for entry in entries if entry.action != "rename-pool" and not entry.vm_name})
    if not unnamed:
        return {}
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT vm_uuid, vm_name FROM vms WHERE vm_name IS NOT NULL AND vm_uuid IN (SELECT value FROM json_each(?))",
            (_encoder().encode(unnamed),),
        ).fetchall()
        names = dict(rows)
        gone = [subject for subject in unnamed if subject not in names]
        if gone:
            names.update(_recorded_names(conn, gone))
    return names


registered_names = vm_names  # its name before it named removed VMs too: kept, so scripts that call it still run


# The name each record of a VM gives it: the newer (``new``) first. A record that is not JSON (a damaged row,
# which history reports when it shows it) names nothing rather than failing the names of the others.
_RECORDED_NAMES_SQL = """
SELECT subject, COALESCE(CASE WHEN json_valid(new) THEN json_extract(new, '$.vm_name') END,
                         CASE WHEN json_valid(old) THEN json_extract(old, '$.vm_name') END)
FROM vgpu_audit WHERE subject IN (SELECT value FROM json_each(?)) AND action IN ('register', 'update', 'remove')
ORDER BY entry_id
"""


def _recorded_names(conn: sqlite3.Connection, subjects: list[str]) -> dict[str, str]:
    """The last name the log recorded for each of ``subjects`` (VMs registered one by one, or removed: a
    VM of a batch registration that is no longer registered has its removal's record)."""
    rows = conn.execute(_RECORDED_NAMES_SQL, (_encoder().encode(subjects),)).fetchall()
    return {subject: name for subject, name in rows if isinstance(name, str) and name}


def _subject_key(subject: object) -> str:
    """A subject as the log keeps it: a pool id (``a`` → ``A``) or a lower-case VM UUID."""
    try:
        return parse_pool_id(subject)
    except InvalidValue:
        pass
    try:
        return parse_uuid(subject)
    except InvalidValue:
        raise InvalidValue("subject", subject, "a VM UUID or a pool id (A or B)") from None


# json is imported on first use, not at start-up: read-only commands such as list-pools never need it, and
# the one-shot start-up is measured (bench/cold_start.py). json.dumps with options builds a new encoder on
# every call; one shared encoder gives the same text.
@functools.cache
def _encoder() -> json.JSONEncoder:
    import json

    return json.JSONEncoder(sort_keys=True, separators=(",", ":"))


@functools.cache
def _decoder() -> json.JSONDecoder:
    import json

    return json.JSONDecoder()


def _dump(record_: dict[str, Any] | None) -> str | None:
    return None if record_ is None else _encoder().encode(record_)


def _load(text: object, column: str, row: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        record = _decoder().decode(text) if type(text) is str and len(text) <= stored.TEXT_MAX else None
    except ValueError:
        record = None
    if type(record) is not dict:
        raise stored.damaged("vgpu_audit", row, stored.Bad(column, text, "a JSON object of at most "
                                                                          f"{stored.TEXT_MAX} characters"))
    return record

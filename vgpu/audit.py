"""The audit log: every change to pools and VMs, with its time and the record before and after.

Entries are written by the module making the change, inside the same transaction, so a change and its
audit entry are committed or lost together.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable

from .models import AuditEntry
from .store import Store
from .tables import AuditList

ACTIONS = ("register", "update", "remove", "rename-pool")


def record(conn: sqlite3.Connection, action: str, subject: str, old: dict | None, new: dict | None) -> None:
    conn.execute(
        "INSERT INTO vgpu_audit (action, subject, old, new) VALUES (?, ?, ?, ?)",
        (action, subject, _dump(old), _dump(new)),
    )


def record_many(conn: sqlite3.Connection, action: str, rows: Iterable[tuple[str, dict | None, dict | None]]) -> None:
    """One entry per row, all stamped with one time: they are one change, made in one transaction."""
    at = conn.execute(f"SELECT {_NOW_SQL}").fetchone()[0]
    conn.executemany(
        "INSERT INTO vgpu_audit (at, action, subject, old, new) VALUES (?, ?, ?, ?, ?)",
        [(at, action, subject, _dump(old), _dump(new)) for subject, old, new in rows],
    )


def history(store: Store, subject: str | None = None, *, limit: int | None = None) -> list[AuditEntry]:
    """Recorded changes, newest first; ``subject`` narrows them to one VM UUID or pool id."""
    sql = "SELECT entry_id, at, action, subject, old, new FROM vgpu_audit"
    params: list[object] = []
    if subject is not None:
        sql += " WHERE subject = ?"
        params.append(subject.lower() if len(subject) > 1 else subject.upper())
    sql += " ORDER BY entry_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    with store.reading() as conn:
        rows = conn.execute(sql, params).fetchall()
    return AuditList(AuditEntry(entry_id, at, action, subj, _load(old), _load(new)) for entry_id, at, action, subj, old, new in rows)


# json.dumps with options builds a new encoder on every call; one shared encoder gives the same text.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_NOW_SQL = "strftime('%Y-%m-%d %H:%M:%f', 'now')"  # the vgpu_audit.at column's own default


def _dump(record_: dict | None) -> str | None:
    return None if record_ is None else _ENCODER.encode(record_)


def _load(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)

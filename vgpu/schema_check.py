"""The spec's constraints and indexes: found missing in a database, or restored in it.

A database whose ``pools`` and ``vms`` lack the spec's CHECK constraints, keys or indexes keeps whatever a
script writes into it, and the scheduler that reads it trusts it. :func:`missing` names what such a file
lacks (the store then refuses it); :func:`restore` rebuilds the two tables to the spec's schema inside the
caller's transaction, keeping every row, after checking each against the spec's rules (a row that breaks
them is named and nothing is changed). ``vgpu-admin repair-db`` runs it.

Keys, NOT NULL, foreign keys and indexes are read with SQLite's PRAGMAs; a CHECK has no PRAGMA, so the
table's SQL must hold the spec's expression (spaces, case and identifier quotes aside).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from . import schema, stored, table_rebuild
from .errors import DamagedDatabase

_COLUMNS = {
    "pools": ("pool_id", "pool_name", "description", "enabled", "created_at", "updated_at"),
    "vms": ("vm_id", "vm_uuid", "vm_name", "pool_id", "priority", "created_at", "updated_at"),
}
_CHECKS = {
    "pools": (("pool_id", "check(pool_idin('a','b'))"), ("enabled", "check(enabledin(0,1))")),
    "vms": (("pool_id", "check(pool_idin('a','b'))"), ("priority", "check(priorityin(0,1,2))")),
}
_NOT_NULL = {"pools": ("pool_name",), "vms": ("vm_id", "vm_uuid", "pool_id", "priority")}
_INDEXES = {"idx_vm_uuid": "vm_uuid", "idx_vm_pool": "pool_id", "idx_vm_priority": "priority"}


def _index_columns(conn: sqlite3.Connection, name: str) -> list[str]:
    return [row[2] for row in conn.execute("SELECT * FROM pragma_index_info(?)", (name,))]


def missing(conn: sqlite3.Connection) -> list[str]:
    """What the spec's ``pools`` and ``vms`` have and these lack, e.g. ``CHECK on vms.priority``; [] when
    nothing."""
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('pools', 'vms')"))
    gaps: list[str] = []
    for table, columns in _COLUMNS.items():
        if table not in sql:
            gaps.append(f"table {table}")
            continue
        info = {row[1]: row for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))}
        gaps += [f"column {table}.{name}" for name in columns if name not in info]
        gaps += [f"NOT NULL on {table}.{name}" for name in _NOT_NULL[table] if name in info and not info[name][3]]
        text = table_rebuild.normal_sql(sql[table] or "")
        gaps += [f"CHECK on {table}.{column}" for column, check in _CHECKS[table] if check not in text]
        if table == "pools" and [name for name, row in info.items() if row[5]] != ["pool_id"]:
            gaps.append("PRIMARY KEY on pools.pool_id")
        if table == "vms":
            gaps += _vms_keys_and_indexes(conn)
    return gaps


def _vms_keys_and_indexes(conn: sqlite3.Connection) -> list[str]:
    gaps = []
    indexes = list(conn.execute("SELECT name, \"unique\", partial FROM pragma_index_list('vms')"))
    unique = {tuple(_index_columns(conn, name)) for name, is_unique, partial in indexes if is_unique and not partial}
    gaps += [f"UNIQUE on vms.{column}" for column in ("vm_id", "vm_uuid") if (column,) not in unique]
    keys = [(row[2].lower(), row[3], row[4]) for row in conn.execute("SELECT * FROM pragma_foreign_key_list('vms')")]
    if not any(table == "pools" and source == "pool_id" and target in ("pool_id", None) for table, source, target in keys):
        gaps.append("FOREIGN KEY vms.pool_id to pools")
    plain = {name: partial for name, _, partial in indexes}
    gaps += [f"index {name}" for name, column in _INDEXES.items()
             if name not in plain or plain[name] or _index_columns(conn, name) != [column]]
    return gaps


# --- restoring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """What :func:`restore` did: ``restored`` names what the spec has and the file lacked (``CHECK on
    vms.priority``); ``kept`` what the file has beyond the spec that a rebuilt table carried over
    (``column vms.gpu_slot``, ``index idx_gpu_slot``, ``trigger vms_touch``). repair-db adds the tables of ours it
    created again to ``restored`` (``table vgpu_copies_unknown``), and sets ``copies_unknown``: which hosts hold
    copies of a VM is unknown until a scan that every host answers (see :func:`vgpu.locations.copies_unknown`)."""

    restored: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    copies_unknown: bool = False


def restore(conn: sqlite3.Connection) -> Repair:
    """Bring ``pools`` and ``vms`` to the spec's schema inside the caller's write transaction (foreign keys
    must be off, as SQLite's own procedure for changing a table asks). Every row is kept, and so is every
    column, index and trigger the spec does not have. Raises DamagedDatabase for a row that breaks the
    spec's rules and NotCarried for what cannot be kept as it was; the caller then rolls back."""
    gaps = missing(conn)
    if not gaps:
        return Repair()
    tables = [table for table in _COLUMNS if any(_table_of(gap) == table for gap in gaps if not gap.startswith("index "))]
    kept = _rebuild(conn, tables) if tables else []
    for name in _INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute(schema.SPEC_INDEXES[name])
    _check_foreign_keys(conn)
    return Repair(tuple(gaps), tuple(kept))


def _table_of(gap: str) -> str:
    """The table a gap of :func:`missing` is in: ``CHECK on vms.priority`` and ``index idx_vm_pool`` are in vms."""
    if gap.startswith(("table ", "index ", "FOREIGN KEY ")):
        return "pools" if gap == "table pools" else "vms"
    return gap.rsplit(" ", 1)[1].split(".")[0]


def _rebuild(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    """Rebuild ``tables`` to the spec's definition, keeping every row and what the spec lacks; returns what
    was kept beyond the spec. Every row is checked against the spec's rules before anything is changed."""
    present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    _check_rows(conn, present)
    views = _working_views(conn)
    kept: list[str] = []
    for table in tables:
        if table in present:
            kept += table_rebuild.table(conn, table)
        else:
            conn.execute(table_rebuild.SPEC[table])
    pool_ids = {row[0] for row in conn.execute("SELECT pool_id FROM pools")}
    for pool_id in sorted({"A", "B"} - pool_ids):  # a pool's row that was lost
        conn.execute("INSERT INTO pools (pool_id, pool_name, enabled) VALUES (?, ?, 1)", (pool_id, f"Pool {pool_id}"))
    for view in sorted(views - _working_views(conn)):
        raise table_rebuild.NotCarried(f"view {view}", "would no longer work on the rebuilt tables")
    return kept


def _check_rows(conn: sqlite3.Connection, present: set[str]) -> None:
    """Every row against the spec's rules, before anything is changed."""
    pool_rows = conn.execute(f"SELECT {_select(conn, 'pools')} FROM pools").fetchall() if "pools" in present else []
    vm_rows = conn.execute(f"SELECT {_select(conn, 'vms')} FROM vms").fetchall() if "vms" in present else []
    for row in pool_rows:
        stored.pool((*row, 0, 0, 0))  # raises DamagedDatabase naming the row
    for row in vm_rows:
        stored.vm(row)
    _refuse_duplicates(pool_rows, vm_rows)


def _select(conn: sqlite3.Connection, table: str) -> str:
    """The spec's columns of ``table`` as a SELECT list; a column the table lacks reads as NULL."""
    present = {row[1] for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))}
    return ", ".join(name if name in present else f"NULL AS {name}" for name in _COLUMNS[table])


def _working_views(conn: sqlite3.Connection) -> set[str]:
    views = set()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall():
        try:
            conn.execute(f"SELECT * FROM {table_rebuild.quoted(name)} LIMIT 0").fetchall()
        except sqlite3.Error:
            continue  # broken before the repair too: not ours to mend
        views.add(name)
    return views


def _refuse_duplicates(pool_rows: list[tuple[object, ...]], vm_rows: list[tuple[object, ...]]) -> None:
    for table, rows, column, index in (("pools", pool_rows, "pool_id", 0), ("vms", vm_rows, "vm_id", 0),
                                       ("vms", vm_rows, "vm_uuid", 1)):
        seen: set[object] = set()
        for row in rows:
            if row[index] in seen:
                raise DamagedDatabase(table, f"with {column} {stored.shown(row[index])}",
                                      f"a {column} another row has too, where the spec allows each once")
            seen.add(row[index])


def _check_foreign_keys(conn: sqlite3.Connection) -> None:
    # The spec's key alone: a key of the admin's own is carried over with its values, as it was.
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check(vms)").fetchall():
        if parent.lower() != "pools":
            continue
        pool = conn.execute(f"SELECT pool_id FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        raise DamagedDatabase(table, f"at rowid {rowid}", f"pool_id {stored.shown(pool[0] if pool else None)}, "
                              f"where the spec allows only a pool that has a row in {parent}")

"""Pools A and B: listing them with their VM counts, showing one, and renaming.

There are exactly two pools and they always exist (the schema's CHECK constraint and the rows inserted at
initialisation guarantee it), so nothing here creates or deletes a pool.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from . import stored
from .basics import Pool
from .errors import Conflict, NotFound
from .store import Store
from .tables import PoolList

if TYPE_CHECKING:  # built by the functions that import them: list-pools (its start-up is measured) does not
    from .models import PoolDetail, PoolNameChange

_POOL_SQL = """
SELECT p.pool_id, p.pool_name, p.description, p.enabled, p.created_at, p.updated_at,
       COALESCE(SUM(v.priority = 0), 0), COALESCE(SUM(v.priority = 1), 0), COALESCE(SUM(v.priority = 2), 0)
FROM pools p LEFT JOIN vms v ON v.pool_id = p.pool_id
{where}
GROUP BY p.pool_id ORDER BY p.pool_id
"""


def _pool_id(value: object) -> str:
    from .values import parse_pool_id  # here, not at the top: list-pools (its start-up is measured) parses nothing

    return parse_pool_id(value)


# A VM the counts above leave out: in no pool, or of no priority (a damaged row, named by vgpu.stored).
_UNCOUNTED_VM = """
SELECT vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at FROM vms
WHERE pool_id NOT IN (SELECT pool_id FROM pools) OR typeof(priority) <> 'integer' OR priority NOT IN (0, 1, 2)
LIMIT 1
"""

def select_pools(conn: sqlite3.Connection, pool_id: str | None = None) -> list[Pool]:
    """The pools (or one) with their counts; DamagedDatabase for a row that breaks the spec's rules, the
    rows the counts leave out included (a priority of 7 would otherwise just not be counted)."""
    if pool_id is None:
        rows = conn.execute(_POOL_SQL.format(where="")).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM vms").fetchone()[0]
    else:
        rows = conn.execute(_POOL_SQL.format(where="WHERE p.pool_id = ?"), (pool_id,)).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM vms WHERE pool_id = ?", (pool_id,)).fetchone()[0]
    found = [stored.pool(row) for row in rows]
    if sum(pool.vm_count for pool in found) != total:
        left_out = conn.execute(_UNCOUNTED_VM).fetchone()
        if left_out is not None:
            stored.vm(left_out)  # raises, naming the row
    return found


def list_pools(store: Store) -> PoolList:
    """Pool A then Pool B, each with its VM count per priority."""
    with store.reading() as conn:
        return PoolList(select_pools(conn))


def validate_pool_exists(store: Store, pool_id: object) -> str:
    """The canonical pool id (``a`` → ``A``); InvalidValue if it is not A or B, NotFound if the row is gone."""
    canonical = _pool_id(pool_id)
    with store.reading() as conn:
        found = conn.execute("SELECT 1 FROM pools WHERE pool_id = ?", (canonical,)).fetchone()
    if found is None:
        raise NotFound("pool", canonical, "the database has lost that pool's row and may be damaged")
    return canonical


def show_pool(store: Store, pool_id: object) -> PoolDetail:
    """One pool and its VMs (highest priority first, then by vm_id)."""
    canonical = _pool_id(pool_id)
    with store.reading() as conn:
        found = select_pools(conn, canonical)
        if not found:
            raise NotFound("pool", canonical)
        from . import vms  # only here: list-pools, the measured one-shot command, needs no VM types
        from .models import PoolDetail

        members = vms.select_vms(conn, pool_id=canonical)
    return PoolDetail(found[0], tuple(members))


def get_pool_name(store: Store, pool_id: object) -> str:
    """The pool's name, or its default ("Pool A") if the stored one is empty."""
    canonical = _pool_id(pool_id)
    with store.reading() as conn:
        row = conn.execute("SELECT pool_name FROM pools WHERE pool_id = ?", (canonical,)).fetchone()
    return (row[0] if row and row[0] else None) or f"Pool {canonical}"


def set_pool_name(store: Store, pool_id: object, new_name: object) -> Pool:
    """Rename a pool. Metadata only: no VM restarts. Recorded in the audit log."""
    return change_pool_name(store, pool_id, new_name).pool


def change_pool_name(store: Store, pool_id: object, new_name: object) -> PoolNameChange:
    """:func:`set_pool_name`, saying whether the name changed: given the name it already has, the pool is left
    as it is and nothing is recorded (``changed`` is False)."""
    canonical = _pool_id(pool_id)
    from .models import PoolNameChange
    from .values import parse_pool_name

    name = parse_pool_name(new_name)
    with store.writing() as conn:
        row = conn.execute("SELECT pool_name FROM pools WHERE pool_id = ?", (canonical,)).fetchone()
        if row is None:
            raise NotFound("pool", canonical)
        _check_name_is_free(conn, canonical, name)
        changed = row[0] != name
        if changed:
            conn.execute(
                "UPDATE pools SET pool_name = ?, updated_at = CURRENT_TIMESTAMP WHERE pool_id = ?",
                (name, canonical),
            )
            from . import audit  # only on a rename

            audit.record(conn, "rename-pool", canonical, {"pool_name": row[0]}, {"pool_name": name})
        return PoolNameChange(select_pools(conn, canonical)[0], changed)


def _check_name_is_free(conn: sqlite3.Connection, pool_id: str, name: str) -> None:
    """Conflict if the other pool has this name (in any case: "pool a" beside "Pool A" tells no one apart)."""
    for other_id, other_stored in conn.execute("SELECT pool_id, pool_name FROM pools WHERE pool_id <> ?", (pool_id,)):
        other_name = other_stored or f"Pool {other_id}"  # as get_pool_name reads an empty one
        if other_name.casefold() == name.casefold():
            as_named = "" if other_name == name else f' (named "{other_name}")'
            raise Conflict("pool name", name, f"pool {other_id}",
                           sentence=f'pool name "{name}" is already used by pool {other_id}{as_named}')

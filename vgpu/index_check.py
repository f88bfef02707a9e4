"""vgpu's own indexes (schema.indexes_of): found missing or replaced in a database, or created again in it.

idx_operation_lock is what makes an unfinished journal row its VM's lock: without it, or with an index of that
name that is not UNIQUE, nothing in the file refuses a second unfinished row for a VM. A file lacking one of our
indexes (or holding another under its name) is refused on opening; ``vgpu-admin repair-db`` creates it again,
unless two unfinished operations already hold one VM, which no command can settle while the lock is missing.
Only read once the one query of :func:`vgpu.schema.tables_as_created` could not vouch for the file.
"""

from __future__ import annotations

import shlex
import sqlite3

from . import schema
from .table_rebuild import normal_sql  # an index spaced or quoted otherwise is the one we create
from .errors import StoreError



def _gaps(conn: sqlite3.Connection, version: int) -> tuple[list[str], list[str]]:
    """Our indexes at ``version`` that the file lacks, and those it holds defined otherwise."""
    ours = schema.indexes_of(version)
    found = dict(conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN "
                              f"({', '.join('?' * len(ours))})", tuple(ours)))
    missing = [name for name in ours if name not in found]
    changed = [name for name in ours if name in found and normal_sql(found[name] or "") != normal_sql(ours[name])]
    return missing, changed


def refuse_changed(conn: sqlite3.Connection, path: str, version: int) -> None:
    """Refuse, before anything is changed, a file at schema ``version`` lacking an index of ours that version has,
    or holding another under its name."""
    missing, changed = _gaps(conn, version)
    if not missing and not changed:
        return
    what = [f"lacks index {name}, {schema.INDEX_PURPOSES[name]}" for name in missing]
    what += [f"has an index {name} other than the one vgpu-admin creates, {schema.INDEX_PURPOSES[name]}" for name in changed]
    raise StoreError(path, f"database {path} {', and '.join(what)}; nothing was changed. Run 'vgpu-admin repair-db' "
                           f"to create {'it' if len(what) == 1 else 'them'} again")


def restore(conn: sqlite3.Connection, path: str, version: int) -> tuple[str, ...]:
    """Inside repair-db's transaction: create again the indexes of ours the file lacks or holds otherwise, and
    name them (``index idx_operation_lock``). Refused, nothing changed, while two unfinished operations hold one
    VM: the lock cannot be created over them."""
    missing, changed = _gaps(conn, version)
    if "idx_operation_lock" in missing + changed:
        _refuse_doubly_held(conn, path)
    for name in missing + changed:
        conn.execute(f"DROP INDEX IF EXISTS {name}")  # a name of ours (schema.MIGRATIONS), never the file's
        conn.execute(schema.indexes_of(version)[name])
    return tuple(f"index {name}" for name in sorted(missing + changed))


def _refuse_doubly_held(conn: sqlite3.Connection, path: str) -> None:
    """Refuse when a VM has several unfinished operations, saying what the admin must do: recover cannot open
    the file without the lock, and which of the changes the VM has is for someone looking at it to say."""
    held: dict[str, list[int]] = {}  # each VM's unfinished operations, oldest first; VMs by their oldest
    for vm_uuid, op_id in conn.execute(
            "SELECT vm_uuid, op_id FROM vgpu_operations WHERE finished_at IS NULL AND vm_uuid IN (SELECT vm_uuid FROM "
            "vgpu_operations WHERE finished_at IS NULL GROUP BY vm_uuid HAVING count(*) > 1) ORDER BY op_id"):
        held.setdefault(vm_uuid, []).append(int(op_id))
    if not held:
        return
    vm_uuid, ids = next(iter(held.items()))
    later = sorted(op_id for each in held.values() for op_id in each[1:])
    more = len(held) - 1
    others = f" (and {more} more VM{'s' if more > 1 else ''} likewise)" if more else ""
    listed = ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}"
    update = ("UPDATE vgpu_operations SET finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), outcome = 'failed' "
              f"WHERE op_id IN ({', '.join(map(str, later))})")
    raise StoreError(path, f"cannot repair database {path}: VM {vm_uuid}{others} has {len(ids)} unfinished operations "
                           f"(op_id {listed}), where its lock, index idx_operation_lock, allows one: they were started "
                           "while the index was missing; nothing was changed. 'vgpu-admin recover' cannot open the file "
                           "until the index is there, so wait until no session is at work on the VM (each finishes its "
                           "own operation); then, if more than one is left, mark all but the oldest finished (sqlite3 "
                           f"{shlex.quote(path)} \"{update}\"), run 'vgpu-admin repair-db' and 'vgpu-admin recover' "
                           f"(which finishes or undoes the oldest), and check the VM with 'vgpu-admin show-vm "
                           f"--vm-uuid={vm_uuid}'")

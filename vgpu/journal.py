"""The operation journal: each step of a change is written down before it is taken.

An unfinished journal row is also the VM's lock (a partial unique index allows one per VM), so a second
session trying to change the same VM is told who has it and since when, and a crash at any step leaves
enough behind for :func:`vgpu.lifecycle.recover` to finish or roll back the operation.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from typing import Iterator

import attrs

from . import stored
from .errors import Busy, VgpuError
from .models import VM, VMConfig
from .store import Store

# Steps, in order. Each is recorded before it is taken; DB_UPDATED is recorded in the same transaction as
# the database change itself, so "the DB has the new values" is exactly "step is at or past DB_UPDATED".
PLANNED = "planned"
STOPPING = "stopping"
DB_UPDATED = "db-updated"
WRITING_ARGS = "writing-args"
STARTING = "starting"
STEPS = (PLANNED, STOPPING, DB_UPDATED, WRITING_ARGS, STARTING)

DONE = "done"
ROLLED_BACK = "rolled-back"
FAILED = "failed"

# Appended to the owner of an operation its session gave up on part way (an interrupt, an unexpected error,
# a rollback that failed): the row stays open, so the VM stays locked, but no live session claims it.
INTERRUPTED = " (interrupted)"


@attrs.frozen
class Operation:
    """One journalled change to one VM. ``old`` is the registration before (None when registering);
    ``new`` the configuration after (None when removing)."""

    op_id: int
    vm_uuid: str
    kind: str
    step: str
    old: VM | None
    new: VMConfig | None
    was_running: bool | None
    owner: str
    started_at: str

    @property
    def db_updated(self) -> bool:
        return STEPS.index(self.step) >= STEPS.index(DB_UPDATED)

    @property
    def interrupted(self) -> bool:
        """Its session gave it up part way and left it to recover() (see :func:`release`)."""
        return self.owner.endswith(INTERRUPTED)

    @property
    def owner_alive(self) -> bool:
        """False when the owner ran on this machine and its process is gone (a crash or kill), or when it
        gave the operation up (interrupted)."""
        if self.interrupted:
            return False
        host, _, pid = self.owner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return True  # another machine: we cannot tell, assume it is working
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def needs_recovery(self) -> bool:
        """Nobody is working on it any more, so recover() resolves it: its session ended or was
        interrupted, or it is this process's own (left behind by an earlier call)."""
        return not self.owner_alive or self.owner == this_owner()


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dump_vm(vm: VM | None) -> str | None:
    if vm is None:
        return None
    return json.dumps({
        "vm_id": vm.vm_id, "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": vm.pool_id,
        "priority": int(vm.priority), "created_at": vm.created_at, "updated_at": vm.updated_at,
    })


def _json(text: object, column: str, row: str) -> object:
    try:
        return json.loads(text) if type(text) is str and len(text) <= stored.TEXT_MAX else None
    except ValueError:
        raise stored.damaged("vgpu_operations", row, stored.Bad(column, text, "JSON written by vgpu-admin")) from None


def _load_vm(text: str | None, row: str = "") -> VM | None:
    # Checked as a vms row is: recover() writes what it holds back into the DB and QEMU's arguments.
    return None if text is None else stored.vm_record(_json(text, "old", row), "vgpu_operations", row)


def _dump_config(config: VMConfig | None) -> str | None:
    if config is None:
        return None
    return json.dumps({"pool_id": config.pool_id, "priority": int(config.priority), "vm_id": config.vm_id})


def _load_config(text: str | None, row: str = "") -> VMConfig | None:
    return None if text is None else stored.config_record(_json(text, "new", row), "vgpu_operations", row)


_COLUMNS = "op_id, vm_uuid, kind, step, old, new, was_running, owner, started_at"


KINDS = ("reconfigure", "register", "remove", "repair")


def _operation_from_row(row: tuple) -> Operation:
    """A journal row as an Operation; DamagedDatabase for a row vgpu-admin did not write (recover() would act on it)."""
    op_id, vm_uuid, kind, step, old, new, was_running, owner, started_at = row
    key = f"with op_id {stored.shown(op_id)}"
    try:
        stored.vm_uuid(vm_uuid)
        stored.text(owner, "owner", stored.TEXT_MAX, null=False)
        started_at = stored.timestamp(started_at, "started_at")
        running = None if was_running is None else stored.flag(was_running, "was_running")
    except stored.Bad as bad:
        raise stored.damaged("vgpu_operations", key, bad) from None
    return Operation(op_id, vm_uuid, stored.one_of("vgpu_operations", key, "kind", kind, KINDS),
                     stored.one_of("vgpu_operations", key, "step", step, STEPS),
                     _load_vm(old, key), _load_config(new, key), running, owner, started_at)


def _holder(conn: sqlite3.Connection, vm_uuid: str) -> Operation | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM vgpu_operations WHERE vm_uuid = ? AND finished_at IS NULL", (vm_uuid,)
    ).fetchone()
    return None if row is None else _operation_from_row(row)


def busy_error(op: Operation) -> Busy:
    if op.interrupted:
        return Busy(op.vm_uuid, op.started_at, op.op_id, interrupted=True)
    error = Busy(op.vm_uuid, op.started_at, op.op_id)
    if not op.owner_alive:
        error.reword(error.sentence + " (that session has ended; run 'vgpu-admin recover' to finish or undo its change)")
    return error


def check_unlocked(store: Store, vm_uuid: str) -> None:
    """Raise Busy now if another operation holds the VM, so nobody is asked to confirm a change that
    cannot start. (begin() checks again under the write lock; this is only the early warning.)"""
    with store.reading() as conn:
        holder = _holder(conn, vm_uuid)
    if holder is not None:
        raise busy_error(holder)


def begin(
    conn: sqlite3.Connection,
    vm_uuid: str,
    kind: str,
    old: VM | None,
    new: VMConfig | None,
    was_running: bool | None,
) -> Operation:
    """Take the VM's lock and journal a new operation, inside the caller's write transaction."""
    holder = _holder(conn, vm_uuid)
    if holder is not None:
        raise busy_error(holder)
    cursor = conn.execute(
        "INSERT INTO vgpu_operations (vm_uuid, kind, step, old, new, was_running, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (vm_uuid, kind, PLANNED, _dump_vm(old), _dump_config(new),
         None if was_running is None else int(was_running), this_owner()),
    )
    row = conn.execute(f"SELECT {_COLUMNS} FROM vgpu_operations WHERE op_id = ?", (cursor.lastrowid,)).fetchone()
    return _operation_from_row(row)


def set_step(conn: sqlite3.Connection, op: Operation, step: str, new: VMConfig | None = None) -> Operation:
    """Record that ``step`` is about to be taken (or, for DB_UPDATED, has been in this transaction)."""
    if step not in STEPS:
        raise ValueError(f"unknown journal step {step!r}")
    config = new if new is not None else op.new
    conn.execute(
        "UPDATE vgpu_operations SET step = ?, new = ?, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE op_id = ?",
        (step, _dump_config(config), op.op_id),
    )
    return attrs.evolve(op, step=step, new=config)


def advance(store: Store, op: Operation, step: str) -> Operation:
    with store.writing() as conn:
        return set_step(conn, op, step)


def finish(store: Store, op: Operation, outcome: str, detail: str = "") -> None:
    """Close the operation (which releases the VM's lock)."""
    with store.writing() as conn:
        conn.execute(
            "UPDATE vgpu_operations SET finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), outcome = ?,"
            " updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE op_id = ?",
            (f"{outcome}: {detail}" if detail else outcome, op.op_id),
        )


def release(store: Store, op: Operation) -> Operation | None:
    """Give up an operation part way without closing it: the VM stays locked and the row keeps its step,
    but it is marked interrupted, so recover() from any process (this one included) finishes or undoes it.
    Returns the operation as released, or None when it had already been closed. Best effort: it runs while
    another exception is on its way out, which a database failure here must not replace (the row then
    stays this live process's, and recover() in this process still resolves it)."""
    try:
        with store.writing() as conn:
            conn.execute(
                "UPDATE vgpu_operations SET owner = owner || ?, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')"
                " WHERE op_id = ? AND finished_at IS NULL AND owner NOT LIKE ?",
                (INTERRUPTED, op.op_id, f"%{INTERRUPTED}"),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM vgpu_operations WHERE op_id = ? AND finished_at IS NULL", (op.op_id,)
            ).fetchone()
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    return None if row is None else _operation_from_row(row)


@contextlib.contextmanager
def released_on_escape(store: Store, op: Operation) -> Iterator[None]:
    """Whatever escapes the block (an error, KeyboardInterrupt, SystemExit), an operation it leaves open
    is released for recover(), and the escaping exception gets a note saying so (unless it is a VgpuError,
    whose own sentence says what to do)."""
    try:
        yield
    except BaseException as escaping:
        left = release(store, op)
        if left is not None and not isinstance(escaping, VgpuError):
            escaping.add_note(f"The {left.kind} of VM {left.vm_uuid} was interrupted at step {left.step}; "
                              "run 'vgpu-admin recover' to finish or undo it.")
        raise


def select_unfinished(conn: sqlite3.Connection) -> list[Operation]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM vgpu_operations WHERE finished_at IS NULL ORDER BY op_id").fetchall()
    return [_operation_from_row(row) for row in rows]


def unfinished(store: Store) -> list[Operation]:
    """Operations that were started and never finished, oldest first (``needs_recovery`` tells those
    recover() would take from those another session is still working on)."""
    with store.reading() as conn:
        return select_unfinished(conn)


def holder(store: Store, vm_uuid: str) -> Operation | None:
    """The unfinished operation that holds the VM's lock, if any."""
    with store.reading() as conn:
        return _holder(conn, vm_uuid)


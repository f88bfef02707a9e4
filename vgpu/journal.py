"""The operation journal: each step of a change is written down before it is taken.

An unfinished journal row is also the VM's lock (a partial unique index allows one per VM), so a second
session trying to change the same VM is told who has it and since when, and a crash at any step leaves
enough behind for :func:`vgpu.recovery.recover` to finish or roll back the operation.

A row names the session that owns it (:mod:`vgpu.sessions`: host, PID, boot id, process start time).
recover() *claims* a row before it acts (:func:`claim`): in one write transaction it checks that the owner
is gone and makes the row its own, so two recover() runs never work on one operation, and a session that
is still at work is never overtaken.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sqlite3
import threading
from typing import Any, Iterator

import attrs

from . import devargs, sessions, stored
from .errors import Busy, VgpuError
from .models import VM, VMConfig
from .sessions import Session, Verdict
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

_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


@attrs.frozen
class RanWith:
    """The vgpu segment a running VM booted with, journalled by a change that leaves the database as it is
    (apply-vm: the VM runs something other than its registered configuration). Undoing the change gives the
    VM that segment back, as the in-process rollback gives back what it ran with. ``config`` None: it ran
    without a segment."""

    config: VMConfig | None

    @property
    def shown(self) -> str:
        return "no vgpu segment" if self.config is None else devargs.payload(self.config)


def ran_with_of(booted_args: str | None, *, quoted: bool = False) -> RanWith | None:
    """What the journal keeps of the args a VM ran with: its vgpu segment alone, which is checked when read
    back like every configuration here. Never the whole string: the database would then put whatever it
    holds on the VM's QEMU command line. None when there is nothing to give back (``booted_args`` None) or
    the segment cannot be read: recover() then restores the registered one."""
    if booted_args is None:
        return None
    segment = devargs.parse(booted_args, quoted=quoted)
    return None if segment.malformed else RanWith(segment.config)


@attrs.frozen
class ArgsBefore:
    """The VM's device-model args as read just before the change wrote its segment into them, journalled
    with the WRITING_ARGS step. Undoing the change puts back exactly this text, and only over the change's own
    write (see :func:`vgpu.lifecycle.roll_back`); a change that never got to write has none, and its undoing
    writes no args at all. ``text`` None: too long for the journal to keep, so recover() can only put back the
    previous segment."""

    text: str | None


# The most of the args the journal keeps (its ``old`` column is read back only up to stored.TEXT_MAX).
_ARGS_KEPT_MAX = stored.TEXT_MAX // 2


@attrs.frozen
class Operation:
    """One journalled change to one VM. ``old`` is the registration before (None when registering);
    ``new`` the configuration after (None when removing). ``session`` owns it; ``released_at`` is set when
    that session gave it up part way (an interrupt, a rollback that failed), ``recovering_since`` when
    recover() claimed it, and ``reverted`` once a rollback put the old values back in the DB after it had
    taken the new ones. ``host`` names the host of a fleet the VM was changed on, for recover().
    ``ran_with``: the segment the VM ran with, kept (with ``old``) by a change that leaves the database as it
    is, such as apply-vm; None when not kept. ``args_before``: the args as they were before the change wrote
    its segment (None: it has not got that far)."""

    op_id: int
    vm_uuid: str
    kind: str
    step: str
    old: VM | None
    new: VMConfig | None
    was_running: bool | None
    session: Session
    started_at: str
    released_at: str | None = None
    recovering_since: str | None = None
    reverted: bool = False
    host: str | None = None  # the label of the fleet's host it ran against; None: a single unlabelled host
    ran_with: RanWith | None = None  # what the running VM ran with, when the change leaves the DB as it is
    args_before: ArgsBefore | None = None  # the args before the change's write of them; None: not written

    @property
    def owner(self) -> str:
        """The owning session as people read it (``host:pid``)."""
        return self.session.label

    @property
    def db_updated(self) -> bool:
        return STEPS.index(self.step) >= STEPS.index(DB_UPDATED)

    @property
    def interrupted(self) -> bool:
        """Its session gave it up part way and left it to recover() (see :func:`release`)."""
        return self.released_at is not None

    @property
    def at_work_here(self) -> bool:
        """Held by this process, and a thread of it is still working on it (see :func:`at_work`): a bulk
        worker the caller stopped waiting for, say."""
        return not self.interrupted and sessions.is_current(self.session) and _at_work.has(self.vm_uuid)

    @property
    def mine(self) -> bool:
        """Held by this very process and left behind by an earlier call in it: no thread of it is working
        on it any more."""
        return not self.interrupted and sessions.is_current(self.session) and not _at_work.has(self.vm_uuid)

    def liveness(self) -> tuple[Verdict, str]:
        """Whether the owning session is still at work on it, and why we think so (a phrase)."""
        if self.interrupted:
            return Verdict.DEAD, f"session {self.owner} gave it up"
        if self.at_work_here:
            return Verdict.ALIVE, "a thread of this process is still working on it"
        return sessions.judge(self.session)

    @property
    def owner_alive(self) -> bool:
        """False once the owner is known to be gone: it gave the operation up, or it ran on this machine
        and no longer runs (its PID is gone or now another process's, or the machine restarted). A session
        on another host cannot be checked from here and counts as alive."""
        return self.liveness()[0] is not Verdict.DEAD

    @property
    def needs_recovery(self) -> bool:
        """Nobody is working on it any more, so recover() resolves it: its session ended or was
        interrupted, or it is this process's own (left behind by an earlier call, no thread at it)."""
        return not self.owner_alive or self.mine


def this_owner() -> str:
    return sessions.current().label


class _AtWork:
    """The VMs whose operation a thread of this process is working on. Process-wide on purpose, as a
    session is: the journal names the process, and only the process knows which of its threads still run.
    A forked child starts with none (its parent's threads are not its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vms: collections.Counter[str] = collections.Counter()

    def enter(self, vm_uuid: str) -> None:
        with self._lock:
            self._vms[vm_uuid] += 1

    def leave(self, vm_uuid: str) -> None:
        with self._lock:
            self._vms[vm_uuid] -= 1
            if self._vms[vm_uuid] <= 0:
                del self._vms[vm_uuid]

    def has(self, vm_uuid: str) -> bool:
        with self._lock:
            return vm_uuid in self._vms

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._vms = collections.Counter()


_at_work = _AtWork()
os.register_at_fork(after_in_child=_at_work.forget)


@contextlib.contextmanager
def at_work(vm_uuid: str) -> Iterator[None]:
    """For the block, the operation this process holds on the VM is worked on by the calling thread: it is
    in progress (status, scan) and recover(), in this process or another, leaves it alone, even once the
    caller that started the thread has stopped waiting for it. When the block ends, the operation is
    finished, or released for recover() (:func:`released_on_escape`), or, if neither could be written,
    this process's own to recover as before."""
    _at_work.enter(vm_uuid)
    try:
        yield
    finally:
        _at_work.leave(vm_uuid)


def _dump_vm(vm: VM | None, ran_with: RanWith | None = None, args_before: ArgsBefore | None = None) -> str | None:
    """The VM as it was (the ``old`` column); with ``ran_with``, also the segment it ran with, and with
    ``args_before`` the args before the change wrote them, under keys that the rest of the row's readers
    (and earlier versions) pass over, so no new column is needed."""
    if vm is None:
        return None
    record: dict[str, object] = {
        "vm_id": vm.vm_id, "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": vm.pool_id,
        "priority": int(vm.priority), "created_at": vm.created_at, "updated_at": vm.updated_at,
    }
    if ran_with is not None:
        record["ran_with"] = {"config": _config_dict(ran_with.config)}
    if args_before is not None:
        record["args_before"] = {"text": args_before.text}
        dumped = json.dumps(record)
        if len(dumped) <= stored.TEXT_MAX:
            return dumped
        record["args_before"] = {"text": None}  # too long to read back: recorded as written, text not kept
    return json.dumps(record)


def _json(text: object, column: str, row: str) -> object:
    try:
        return json.loads(text) if type(text) is str and len(text) <= stored.TEXT_MAX else None
    except ValueError:
        raise stored.damaged("vgpu_operations", row, stored.Bad(column, text, "JSON written by vgpu-admin")) from None


def _load_vm(text: str | None, row: str = "") -> tuple[VM | None, RanWith | None, ArgsBefore | None]:
    # Checked as a vms row is: recover() writes what it holds back into the DB and QEMU's arguments.
    if text is None:
        return None, None, None
    data = _json(text, "old", row)
    vm = stored.vm_record(data, "vgpu_operations", row)
    extra = data if type(data) is dict else {}
    return vm, _load_ran_with(extra.get("ran_with"), row), _load_args_before(extra.get("args_before"), row)


def _load_args_before(data: object, row: str) -> ArgsBefore | None:
    if data is None:
        return None  # the change did not write the args (or the row was written before this was kept)
    try:
        if type(data) is not dict:
            raise stored.Bad("old", data, "an args_before object written by vgpu-admin")
        return ArgsBefore(stored.text(data.get("text"), "args_before", _ARGS_KEPT_MAX))
    except stored.Bad as bad:
        raise stored.damaged("vgpu_operations", row, bad) from None


def _load_ran_with(data: object, row: str) -> RanWith | None:
    if data is None:
        return None  # not kept: a change of the database, or a row written before it was
    if type(data) is not dict:
        raise stored.damaged("vgpu_operations", row, stored.Bad("old", data, "a ran_with object written by vgpu-admin"))
    config = data.get("config")
    return RanWith(None if config is None else stored.config_record(config, "vgpu_operations", row))


def _config_dict(config: VMConfig | None) -> dict[str, object] | None:
    if config is None:
        return None
    return {"pool_id": config.pool_id, "priority": int(config.priority), "vm_id": config.vm_id}


def _dump_config(config: VMConfig | None) -> str | None:
    return None if config is None else json.dumps(_config_dict(config))


def _load_config(text: str | None, row: str = "") -> VMConfig | None:
    return None if text is None else stored.config_record(_json(text, "new", row), "vgpu_operations", row)


_COLUMNS = ("op_id, vm_uuid, kind, step, old, new, was_running, owner, owner_boot_id, owner_started, started_at, "
            "released_at, recovering_since, reverted, host")


KINDS = ("reconfigure", "register", "remove", "repair")


def _operation_from_row(row: tuple[Any, ...]) -> Operation:
    """A journal row as an Operation; DamagedDatabase for a row vgpu-admin did not write (recover() would act on it)."""
    (op_id, vm_uuid, kind, step, old, new, was_running, owner, boot_id, started, started_at, released_at,
     recovering_since, reverted, host) = row
    key = f"with op_id {stored.shown(op_id)}"
    try:
        stored.vm_uuid(vm_uuid)
        stored.text(owner, "owner", stored.TEXT_MAX, null=False)
        stored.text(boot_id, "owner_boot_id", stored.TIMESTAMP_MAX)
        stored.text(started, "owner_started", stored.TIMESTAMP_MAX)
        started_at = stored.timestamp(started_at, "started_at", null=False)
        released_at = stored.timestamp(released_at, "released_at")
        recovering_since = stored.timestamp(recovering_since, "recovering_since")
        running = None if was_running is None else stored.flag(was_running, "was_running")
        undone = stored.flag(reverted, "reverted")
        # a label, or one kept apart with its old host's URI (vgpu.locations.apart_label): as long as a path
        label = stored.text(host, "host", stored.TEXT_MAX)
    except stored.Bad as bad:
        raise stored.damaged("vgpu_operations", key, bad) from None
    before, ran_with, args_before = _load_vm(old, key)
    return Operation(op_id, vm_uuid, stored.one_of("vgpu_operations", key, "kind", kind, KINDS),
                     stored.one_of("vgpu_operations", key, "step", step, STEPS),
                     before, _load_config(new, key), running,
                     Session.from_label(owner, boot_id, started), started_at, released_at, recovering_since, undone,
                     label or None, ran_with, args_before)


def _select(conn: sqlite3.Connection, op_id: int) -> Operation | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM vgpu_operations WHERE op_id = ? AND finished_at IS NULL", (op_id,)).fetchone()
    return None if row is None else _operation_from_row(row)


def _written(conn: sqlite3.Connection, op_id: int | None) -> Operation:
    """The operation this transaction has just written (so it is there, unfinished)."""
    op = None if op_id is None else _select(conn, op_id)
    assert op is not None, f"operation {op_id} was written in this transaction"
    return op


def select_holder(conn: sqlite3.Connection, vm_uuid: str) -> Operation | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM vgpu_operations WHERE vm_uuid = ? AND finished_at IS NULL", (vm_uuid,)
    ).fetchone()
    return None if row is None else _operation_from_row(row)


def busy_error(op: Operation) -> Busy:
    if op.interrupted:
        return Busy(op.vm_uuid, op.started_at, op.op_id, interrupted=True)
    verdict, why = op.liveness()
    if op.recovering_since is not None and verdict is Verdict.ALIVE:
        return Busy(op.vm_uuid, op.recovering_since, op.op_id, session=op.owner, recovering=True)
    error = Busy(op.vm_uuid, op.started_at, op.op_id, session=op.owner)
    if verdict is Verdict.DEAD:
        error.reword(error.sentence + " (that session has ended; run 'vgpu-admin recover' to finish or undo its change)")
    elif verdict is Verdict.UNKNOWN:
        error.reword(error.sentence + f" ({why}; if that session is gone, 'vgpu-admin recover --take-over' "
                                      "finishes or undoes its change)")
    return error


def check_unlocked(store: Store, vm_uuid: str) -> None:
    """Raise Busy now if another operation holds the VM, so nobody is asked to confirm a change that
    cannot start. (begin() checks again under the write lock; this is only the early warning.)"""
    with store.reading() as conn:
        holder = select_holder(conn, vm_uuid)
    if holder is not None:
        raise busy_error(holder)


def begin(
    conn: sqlite3.Connection,
    vm_uuid: str,
    kind: str,
    old: VM | None,
    new: VMConfig | None,
    was_running: bool | None,
    host: str | None = None,
    ran_with: RanWith | None = None,
) -> Operation:
    """Take the VM's lock and journal a new operation, inside the caller's write transaction. ``host``: the
    label of the fleet's host the VM is on (see :func:`vgpu.hypervisor.fleet.label_for`); ``ran_with``: the
    segment the running VM ran with, for a change that leaves the database as it is (see :class:`RanWith`)."""
    holder = select_holder(conn, vm_uuid)
    if holder is not None:
        raise busy_error(holder)
    me = sessions.current()
    cursor = conn.execute(
        "INSERT INTO vgpu_operations (vm_uuid, kind, step, old, new, was_running, owner, owner_boot_id, owner_started,"
        " host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (vm_uuid, kind, PLANNED, _dump_vm(old, ran_with), _dump_config(new),
         None if was_running is None else int(was_running), me.label, me.boot_id, me.started, host or None),
    )
    return _written(conn, cursor.lastrowid)


def set_step(conn: sqlite3.Connection, op: Operation, step: str, new: VMConfig | None = None) -> Operation:
    """Record that ``step`` is about to be taken (or, for DB_UPDATED, has been in this transaction)."""
    if step not in STEPS:
        raise ValueError(f"unknown journal step {step!r}")
    config = new if new is not None else op.new
    conn.execute(
        f"UPDATE vgpu_operations SET step = ?, new = ?, updated_at = {_NOW} WHERE op_id = ?",
        (step, _dump_config(config), op.op_id),
    )
    return attrs.evolve(op, step=step, new=config)


def set_was_running(conn: sqlite3.Connection, op: Operation, was_running: bool) -> Operation:
    """Record whether the cycle stops (and so starts again) the VM: decided from the power state read once
    the row holds the VM's lock, not before (the lock may have been waited for, and the VM changed)."""
    conn.execute(f"UPDATE vgpu_operations SET was_running = ?, updated_at = {_NOW} WHERE op_id = ?",
                 (int(was_running), op.op_id))
    return attrs.evolve(op, was_running=was_running)


def set_reverted(conn: sqlite3.Connection, op: Operation, step: str) -> Operation:
    """Record, in the transaction that put the old values back in the DB, that they are back: the step
    returns to ``step`` (before DB_UPDATED, so a later recover() rolls back, never forward) and the row
    remembers that the new values had reached the DB and were undone."""
    conn.execute(f"UPDATE vgpu_operations SET step = ?, reverted = 1, updated_at = {_NOW} WHERE op_id = ?", (step, op.op_id))
    return attrs.evolve(op, step=step, reverted=True)


def advance(store: Store, op: Operation, step: str, *, args_before: str | None = None) -> Operation:
    """Record that ``step`` is about to be taken; for WRITING_ARGS, with ``args_before``, also what the
    VM's args are before the write (see :class:`ArgsBefore`). The operation returned keeps that whole text,
    which the in-process rollback puts back, even when it is too long for the journal to keep."""
    if args_before is None:
        with store.writing() as conn:
            return set_step(conn, op, step)
    if step != WRITING_ARGS:
        raise ValueError(f"args_before goes with the {WRITING_ARGS!r} step, not {step!r}")
    kept = ArgsBefore(args_before if len(args_before) <= _ARGS_KEPT_MAX else None)
    with store.writing() as conn:
        conn.execute(f"UPDATE vgpu_operations SET step = ?, old = ?, updated_at = {_NOW} WHERE op_id = ?",
                     (step, _dump_vm(op.old, op.ran_with, kept), op.op_id))
    return attrs.evolve(op, step=step, args_before=ArgsBefore(args_before))


def close(conn: sqlite3.Connection, op: Operation, outcome: str, detail: str = "") -> None:
    """Close the operation inside the caller's write transaction (which releases the VM's lock)."""
    conn.execute(
        f"UPDATE vgpu_operations SET finished_at = {_NOW}, outcome = ?, updated_at = {_NOW} WHERE op_id = ?",
        (f"{outcome}: {detail}" if detail else outcome, op.op_id),
    )


def finish(store: Store, op: Operation, outcome: str, detail: str = "") -> None:
    """Close the operation (which releases the VM's lock)."""
    with store.writing() as conn:
        close(conn, op, outcome, detail)


def release(store: Store, op: Operation) -> Operation | None:
    """Give up an operation part way without closing it: the VM stays locked and the row keeps its step,
    but it is marked released, so recover() from any process (this one included) finishes or undoes it.
    Returns the operation as released, or None when it had already been closed. Best effort: it runs while
    another exception is on its way out, which a database failure here must not replace (the row then
    stays this live process's, and recover() in this process still resolves it)."""
    try:
        with store.writing() as conn:
            conn.execute(
                f"UPDATE vgpu_operations SET released_at = {_NOW}, updated_at = {_NOW}"
                " WHERE op_id = ? AND finished_at IS NULL AND released_at IS NULL",
                (op.op_id,),
            )
            return _select(conn, op.op_id)
    except Exception:  # noqa: BLE001 - see the docstring
        return None


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


# --- recover()'s claim ------------------------------------------------------------------------------------


@attrs.frozen
class Claim:
    """The outcome of :func:`claim`. ``op`` is the operation as it is now: ours to resolve when ``taken``;
    otherwise as another session holds it, with ``why`` saying who and why it was left alone, and
    ``take_over_needed`` when only ``take_over`` would have taken it (its session cannot be checked from here:
    it ran on another host, or was recorded without what tells it from a process reusing its PID)."""

    op: Operation
    taken: bool
    why: str = ""
    take_over_needed: bool = False


def claim(store: Store, op_id: int, *, take_over: bool = False) -> Claim | None:
    """Make operation ``op_id`` this session's to recover, if its owner is gone (or it is this process's
    own and no thread of it is at work on it, or was given up). One write transaction: of two recover()
    runs, one takes it and the other finds it held by a live session. ``take_over`` also takes it from a
    session that cannot be checked from here (Verdict.UNKNOWN: on another host, or recorded by host and PID
    alone while a process runs under that PID). None when the operation was closed meanwhile."""
    me = sessions.current()
    with store.writing() as conn:
        op = _select(conn, op_id)
        if op is None:
            return None
        verdict, why = op.liveness()
        free = op.mine or verdict is Verdict.DEAD or (verdict is Verdict.UNKNOWN and take_over)
        if not free:
            if op.recovering_since is not None:
                return Claim(op, False, f"being recovered by session {op.owner} since {op.recovering_since}")
            if verdict is Verdict.UNKNOWN:
                where = ", where this one cannot check it" if op.session.host != me.host else ""
                return Claim(op, False, f"session {op.owner} started it at {op.started_at} and {why}{where}; if "
                                        "that session is gone, run 'vgpu-admin recover --take-over'",
                             take_over_needed=True)
            return Claim(op, False, f"still in progress in session {op.owner} (started {op.started_at})")
        conn.execute(
            f"UPDATE vgpu_operations SET owner = ?, owner_boot_id = ?, owner_started = ?, released_at = NULL,"
            f" recovering_since = {_NOW}, updated_at = {_NOW} WHERE op_id = ?",
            (me.label, me.boot_id, me.started, op_id),
        )
        return Claim(_written(conn, op_id), True, why)


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
        return select_holder(conn, vm_uuid)

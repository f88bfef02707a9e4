"""Who a session is, and whether it is still alive.

A journal row names the session that owns it. A PID alone cannot say whether that session is alive: after
a reboot, or by chance, the PID belongs to another process, and a PID on another machine means nothing
here. So a session is its host name, its PID, the machine's boot id (``/proc/sys/kernel/random/boot_id``,
new at every boot) and its process's start time (field 22 of ``/proc/PID/stat``, in clock ticks since
boot). A recorded session is alive only when the same machine, under the same name and in the same boot,
still runs a process with that PID *and* that start time (one that has exited and waits to be reaped by its
parent, a zombie, runs nothing).

A session on another machine cannot be checked from here: :func:`judge` says UNKNOWN, and only the admin
can say it is gone (``vgpu-admin recover --take-over``). A session under another host name counts as
another machine's even with this machine's boot id: that is a container sharing this kernel, whose PIDs
belong to its own PID namespace, so our PID table cannot judge it (this machine renamed since looks the
same, and is left to the admin too). So is a session recorded without its boot id or start time (a row of
schema 1, which kept ``host:pid`` alone) whose PID runs now: that may be another process that was given the
PID (after a reboot, low PIDs are almost always reused), and calling it alive would lock the session's VM
for good. Where /proc is missing (not Linux), the PID check is all there is.
"""

from __future__ import annotations

import enum
import os
import socket

import attrs

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@attrs.frozen
class Session:
    host: str
    pid: int
    boot_id: str | None = None  # None: recorded before boot ids were (or where there is none)
    started: str | None = None  # the process's start time in clock ticks since boot; None: unknown

    @property
    def label(self) -> str:
        """How sessions are named to people (and stored in the journal's ``owner`` column)."""
        return f"{self.host}:{self.pid}"

    @classmethod
    def from_label(cls, label: str, boot_id: str | None = None, started: str | None = None) -> "Session":
        """A session as the journal stores it; a label without a numeric PID gets PID 0 (never alive here)."""
        host, _, pid = label.rpartition(":")
        return cls(host, int(pid) if pid.isdigit() else 0, boot_id, started)


class Verdict(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # another machine: cannot be checked from here


def read_boot_id() -> str | None:
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


_START = 19  # the start time, field 22 of /proc/PID/stat, is the 20th field after the command name
_STATE = 0  # the state, field 3


def _stat_after_name(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None when there is no such process, or
    /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields if len(fields) > _START else None


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None when there is no such process
    or /proc cannot say."""
    fields = _stat_after_name(pid)
    return None if fields is None else fields[_START]


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


_current: Session | None = None


def current() -> Session:
    """This process's session (worked out once per process; a forked child gets its own)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = Session(socket.gethostname(), pid, read_boot_id(), process_start(pid))
    return _current


def is_current(session: Session) -> bool:
    here = current()
    return session.label == here.label and session.started in (None, here.started)


def judge(session: Session) -> tuple[Verdict, str]:
    """Whether ``session`` is still running, and why we think so (a phrase for messages)."""
    here = current()
    same_boot = bool(session.boot_id and here.boot_id and session.boot_id == here.boot_id)
    if session.host != here.host:
        # The same boot id under another host name is a container on this kernel (or this machine before a
        # rename): a container's PIDs are of its own PID namespace, so ours cannot say whether it is alive.
        where = ": a container on this machine, or this machine under an earlier name" if same_boot else ""
        return Verdict.UNKNOWN, f"it ran on another host ({session.host}{where})"
    if session.boot_id and here.boot_id and not same_boot:
        return Verdict.DEAD, f"{session.host} has restarted since"
    return _judge_process(session)


def _judge_process(session: Session) -> tuple[Verdict, str]:
    fields = _stat_after_name(session.pid)
    if fields is None:
        if _pid_exists(session.pid) and not os.path.isdir("/proc/self"):
            return Verdict.ALIVE, f"process {session.pid} is running"  # no /proc: the PID is all we know
        return Verdict.DEAD, f"process {session.pid} has ended"
    if fields[_STATE] in ("Z", "X"):  # it exited (killed, say) and only its entry is left until its parent reaps it
        return Verdict.DEAD, f"process {session.pid} has ended"
    if session.started is not None and fields[_START] != session.started:
        return Verdict.DEAD, f"process {session.pid} has ended (the PID now belongs to another process)"
    missing = _identity_missing(session)
    if missing:
        # Schema 1 recorded host:pid alone. Its PID running says nothing: after a reboot (which the missing
        # boot id hides), or by chance, another process has it. Calling that alive would lock the VM for good.
        return Verdict.UNKNOWN, (f"its session was recorded without {missing} (as before schema 2), so vgpu-admin "
                                 f"cannot tell it from the process now running as PID {session.pid}")
    return Verdict.ALIVE, f"process {session.pid} is running"


def _identity_missing(session: Session) -> str:
    """What the recorded session lacks of what tells it from another process given its PID ("" when nothing).
    A boot id counts as missing only where this machine has one (where it has none, no session here has)."""
    missing = [name for name, absent in (("boot id", session.boot_id is None and current().boot_id is not None),
                                         ("start time", session.started is None)) if absent]
    return f"a {' and '.join(missing)}" if missing else ""

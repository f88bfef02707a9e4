"""Run one lifecycle operation in a child process that dies (SIGKILL) or waits at a chosen point.

The child is a real process with its own pid, so the journal row it leaves names an owner that is
really gone after the kill (or really alive while it waits), exactly as after a crash or a ``kill -9``.

Points: a journal step (``planned``, ``stopping``, ``db-updated``, ``writing-args``, ``starting``) means
"right after that step is committed"; ``stopped``, ``args-written`` and ``started`` mean "right after the
VM stopped / the args were written / the VM started", before the next journal write;
``shutdown-requested`` means "while the guest is shutting down" (the simulated host has been asked and
is waiting out its clean_shutdown latency). ``none`` runs the operation to its end.

Actions at the point: ``kill`` (SIGKILL itself) or ``wait`` (print ``reached`` and wait for a line on
stdin). With ``--gate`` the child prints ``ready`` and waits for a line on stdin before it starts, so
the parent can release several children at once. It prints ``ok`` or ``error <Class>: <sentence>``.

    python tests/crashkit.py DB HOST reconfigure UUID POINT ACTION [--gate] [pool=B priority=high ...]
    python tests/crashkit.py DB HOST apply UUID POINT ACTION         (apply-vm: the registered configuration)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOURNAL_POINTS = ("planned", "stopping", "db-updated", "writing-args", "starting")
AFTER_CALLS = {"stopped": "stop_vm", "args-written": "update_device_model_args", "started": "start_vm"}


def spawn(db, host, kind: str, uuid: str, point: str = "none", action: str = "kill", *, gate: bool = False, **change) -> subprocess.Popen:
    """Start the child; talk to it through its stdin/stdout pipes."""
    argv = [sys.executable, str(Path(__file__).resolve()), str(db), str(host), kind, uuid, point, action]
    argv += ["--gate"] if gate else []
    argv += [f"{key}={value}" for key, value in change.items()]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def run(db, host, kind: str, uuid: str, point: str, action: str = "kill", **change) -> subprocess.CompletedProcess:
    child = spawn(db, host, kind, uuid, point, action, **change)
    out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def process_state(pid: int) -> str:
    """The state letter of field 3 of /proc/PID/stat (``Z``: a zombie, ended and not reaped yet)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def wait_until_zombie(pid: int, limit: float = 60.0) -> None:
    """Wait for an ended child that its parent has not reaped to show as a zombie (bounded, so a broken test
    fails instead of hanging)."""
    deadline = time.monotonic() + limit
    while process_state(pid) != "Z":
        assert time.monotonic() < deadline, f"process {pid} never became a zombie"
        time.sleep(0.01)


# --- the child --------------------------------------------------------------------------------------------


def _at_point(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("reached", flush=True)
    sys.stdin.readline()


def _stop_here_store(point: str, action: str):
    from vgpu.store import Store

    class StopHereStore(Store):
        """A store that acts at ``point`` once the transaction that recorded that journal step commits
        (the first time only: later writes, an audit entry say, leave the step where it is)."""

        reached = False

        @contextlib.contextmanager
        def writing(self):
            with super().writing() as conn:
                yield conn
            with self.reading() as conn:
                row = conn.execute("SELECT step FROM vgpu_operations WHERE finished_at IS NULL").fetchone()
            if row is not None and row[0] == point and not StopHereStore.reached:
                StopHereStore.reached = True
                _at_point(action)

    return StopHereStore


def _act_after(module, name: str, action: str) -> None:
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        _at_point(action)
        return result

    setattr(module, name, wrapper)


def _act_while_waiting(action: str) -> None:
    """Act when the simulated host first sleeps: in clean_shutdown, after the request was recorded."""
    import time
    import types

    from vgpu.hypervisor import sim

    def sleep(seconds: float) -> None:
        _at_point(action)
        time.sleep(seconds)

    sim.time = types.SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)


def main(argv: list[str]) -> int:
    db, host_path, kind, uuid, point, action, *rest = argv
    gate = "--gate" in rest
    change = dict(item.split("=", 1) for item in rest if item != "--gate")

    from vgpu import lifecycle
    from vgpu.errors import VgpuError
    from vgpu.hypervisor.sim import SimHost
    from vgpu.store import Store

    store_class = _stop_here_store(point, action) if point in JOURNAL_POINTS else Store
    if point in AFTER_CALLS:
        _act_after(lifecycle, AFTER_CALLS[point], action)
    if point == "shutdown-requested":
        _act_while_waiting(action)
    store, host = store_class(db), SimHost(host_path)
    if gate:
        print("ready", flush=True)
        sys.stdin.readline()
    try:
        if kind == "reconfigure":
            lifecycle.reconfigure_vm(store, host, uuid, confirm=lambda plan: True, **change)
        elif kind == "apply":
            lifecycle.apply_vm(store, host, uuid, confirm=lambda plan: True)
        elif kind == "register":
            lifecycle.register_vm(store, host, uuid, **change)
        elif kind == "remove":
            lifecycle.remove_vm(store, host, uuid)
        else:
            raise SystemExit(f"unknown operation {kind}")
    except VgpuError as error:
        print(f"error {type(error).__name__}: {error}", flush=True)
        return 0
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

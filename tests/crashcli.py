"""Run the real ``vgpu-admin`` command line in a child process that is killed (SIGKILL) or paused at a
named point: the crash matrix's way of cutting a command short exactly where a crash could.

The child is ``python tests/crashcli.py POINT ACTION [--sim PATH] [--gate] -- ARGV...``: it installs the
hooks below (test code only; the product has no hook of its own), then runs ``shell.main.main(ARGV)``,
the entry point's own function, in a real process with its own PID and session, as an admin's would be.

Points (``NAME`` or ``NAME#N`` for the Nth time it is reached in the child):

- a journal step (``planned``, ``stopping``, ``db-updated``, ``writing-args``, ``starting``): right after the
  transaction that moved an operation to that step committed (a rollback moving it back counts too);
- ``claimed``: right after ``recover`` claimed an operation; ``reverted``: right after a rollback put the
  old values back in the database;
- ``stopped``, ``args-written``, ``started``: right after the VM stopped, its args were written, it started
  (:func:`vgpu.lifecycle.stop_vm` / ``update_device_model_args`` / ``start_vm`` returned), forward or back;
- ``shutdown-requested``, ``start-requested``: while the host is still carrying out a clean shutdown or a
  start the child asked for (seen on the simulated host ``--sim`` underneath, whichever backend talks to it).

Actions: ``kill`` (SIGKILL itself) or ``wait`` (say ``crashcli: reached POINT`` on stderr and wait to be
released). With ``--gate`` the child says ``crashcli: ready`` and waits to be released before it starts, so
the parent can let several children go at once. Releasing is writing a byte to a pipe the child inherits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("planned", "stopping", "db-updated", "writing-args", "starting")
AFTER_CALLS = {"stop_vm": "stopped", "update_device_model_args": "args-written",
               "put_back_device_model_args": "args-written", "start_vm": "started"}
WHILE_CALLS = {"stop_vm": ("shutdown-requested", "clean_shutdown"), "start_vm": ("start-requested", "start")}
RELEASE_FD = "CRASHCLI_RELEASE_FD"
MARK = "crashcli: "


class Child:
    """One vgpu-admin child process and the pipe that releases it."""

    def __init__(self, argv: list[str], point: str, action: str, *, sim: str | None = None, gate: bool = False,
                 stdin: str = "", env: dict[str, str] | None = None) -> None:
        read_end, self._release = os.pipe()
        command = [sys.executable, str(Path(__file__).resolve()), point, action]
        command += ["--sim", str(sim)] if sim else []
        command += ["--gate"] if gate else []
        environ = dict(os.environ if env is None else env)
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH", "")]))
        environ[RELEASE_FD] = str(read_end)
        self.process = subprocess.Popen(
            [*command, "--", *map(str, argv)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=environ, cwd=ROOT, pass_fds=(read_end,),
        )
        os.close(read_end)
        self.stderr_seen: list[str] = []
        if stdin:
            self.process.stdin.write(stdin)
            self.process.stdin.flush()

    def wait_for(self, what: str) -> bool:
        """Read the child's stderr until it says ``what`` (True) or ends without saying it (False)."""
        for line in self.process.stderr:
            self.stderr_seen.append(line)
            if line.startswith(MARK + what):
                return True
        return False

    def release(self) -> None:
        if self._release is not None:
            os.write(self._release, b"go")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Let it run to its end: (exit status, stdout, stderr); a killed child's status is -9."""
        try:
            self.release()
        except OSError:
            pass  # it is gone already
        out, err = self.process.communicate(timeout=timeout)
        self._close()
        return self.process.returncode, out, "".join(self.stderr_seen) + err

    def kill(self) -> None:
        """End the child if it is still there (a test's finally: after finish() this does nothing)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        self._close()

    def _close(self) -> None:
        if self._release is not None:
            os.close(self._release)
            self._release = None


def run(argv: list[str], point: str, action: str = "kill", **options) -> tuple[int, str, str]:
    """Run the child to its end (or to its death at ``point``)."""
    return Child(argv, point, action, **options).finish()


# --- the child ------------------------------------------------------------------------------------------------


class _Points:
    """Counts each point as it is reached and acts at the chosen one."""

    def __init__(self, point: str, action: str) -> None:
        name, _, nth = point.partition("#")
        self.name, self.nth, self.action = name, int(nth or 1), action
        self.counts: dict[str, int] = {}

    def reached(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        if name == self.name and self.counts[name] == self.nth:
            self.act(name)

    def act(self, name: str) -> None:
        sys.stdout.flush()
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stderr.write(f"{MARK}reached {name}\n")
        sys.stderr.flush()
        _wait_for_release()


def _wait_for_release() -> None:
    os.read(int(os.environ[RELEASE_FD]), 2)


def _watch_journal(points: _Points) -> None:
    """Report journal points after each write transaction commits."""
    import contextlib
    import socket

    from vgpu.store import Store

    seen: dict[int, tuple] = {}
    real = Store.writing
    me = f"{socket.gethostname()}:{os.getpid()}"

    @contextlib.contextmanager
    def writing(self):
        with real(self) as conn:
            yield conn
        with self.reading() as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(vgpu_operations)")}
            extra = [name if name in columns else "NULL" for name in ("recovering_since", "reverted")]
            rows = conn.execute(f"SELECT op_id, step, owner, {', '.join(extra)} FROM vgpu_operations"
                                " WHERE finished_at IS NULL").fetchall()
        for op_id, step, owner, recovering, reverted in rows:
            before = seen.get(op_id)
            seen[op_id] = (step, owner, recovering, reverted)
            if owner != me:
                continue
            if recovering and (before is None or before[1] != me or not before[2]):
                points.reached("claimed")
            elif before is None and not recovering:
                points.reached(step)  # an operation this process just began
            if before is not None and before[0] != step:
                points.reached(step)
            if reverted and (before is None or not before[3]):
                points.reached("reverted")

    Store.writing = writing


def _watch_calls(points: _Points, sim_path: str | None) -> None:
    from vgpu import lifecycle

    for name, after in AFTER_CALLS.items():
        setattr(lifecycle, name, _after(getattr(lifecycle, name), after, points, sim_path, WHILE_CALLS.get(name)))


def _after(real, after: str, points: _Points, sim_path: str | None, during: tuple[str, str] | None):
    def call(*args, **kwargs):
        if during is None or sim_path is None or during[0] != points.name:
            result = real(*args, **kwargs)
        else:
            result = _watching_host(real, args, kwargs, points, sim_path, *during)
        points.reached(after)
        return result

    return call


def _watching_host(real, args, kwargs, points: _Points, sim_path: str, point: str, operation: str):
    """Run the host call on a thread and report ``point`` once the simulated host shows ``operation``
    under way for the VM (or the call has ended without it)."""
    import time

    from vgpu.hypervisor.sim import SimHost

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = real(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed back to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    sim, vm_uuid = SimHost(sim_path), args[1]
    while worker.is_alive():
        if operation in (sim.current_operations(vm_uuid) or ()):
            points.reached(point)
            break
        time.sleep(0.01)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def main(argv: list[str]) -> int:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    point, action = options[0], options[1]
    sim_path = options[options.index("--sim") + 1] if "--sim" in options else None
    points = _Points(point, action)
    _watch_journal(points)
    _watch_calls(points, sim_path)
    if "--gate" in options:
        sys.stderr.write(f"{MARK}ready\n")
        sys.stderr.flush()
        _wait_for_release()
    from shell.main import main as vgpu_admin

    return vgpu_admin(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Running ``vgpu-admin`` in tests: in-process through ``shell.main.main`` and as a real process.

``run`` calls ``main(argv, console)`` with a Console over string buffers and a scripted stdin, so a test
sees exactly what a person would: the exit code, stdout and stderr. ``run_process`` starts
``python -m shell`` with the test's XDG dirs and piped input, for the few checks that only a real process
can make (the exit status the shell sees, no traceback). ``SpecHost`` is the spec's 23-VM example on a
fresh simulated host and database in a temporary folder, addressed with ``--host sim:PATH --db PATH``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Iterable

import attrs

from shell.console import Console, stdin_reader
from shell.main import main
from vgpu import demo, vms
from vgpu.hypervisor.sim import SimHost
from vgpu.models import VM
from vgpu.store import Store

REPO = Path(__file__).resolve().parent.parent


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def one_error_line(self) -> str:
        """The single line a failing command writes to stderr (fails the test if there are more)."""
        lines = self.err_lines
        assert len(lines) == 1 and self.err.endswith("\n"), f"expected one line on stderr, got {self.err!r}"
        assert "Traceback" not in self.err
        return lines[0]


def run(argv: Iterable[str], stdin: str = "") -> Outcome:
    """``vgpu-admin ARGV`` in this process, answering questions from ``stdin`` (not a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, stdin_reader(out, io.StringIO(stdin)))
    code = main(list(argv), console)
    return Outcome(code, out.getvalue(), err.getvalue())


CLOSED = "closed"  # run_process(stdout=CLOSED): started with its standard output closed, as by >&-


def run_process(argv: Iterable[str], stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60,
                stdout: IO[str] | str | None = None) -> Outcome:
    """The real entry point, ``python -m shell ARGV``, in the test's environment (XDG dirs included).
    ``stdout``: where its output goes (a file such as /dev/full, or CLOSED); by default, into ``Outcome.out``."""
    environ = dict(os.environ if env is None else env)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "shell", *argv], input=stdin, text=True, env=environ, cwd=str(REPO),
        timeout=timeout, encoding="utf-8", stderr=subprocess.PIPE,
        stdout=subprocess.PIPE if stdout is None or stdout == CLOSED else stdout,
        preexec_fn=(lambda: os.close(1)) if stdout == CLOSED else None,
    )
    return Outcome(done.returncode, done.stdout or "", done.stderr)


def digest(path: str | os.PathLike[str]) -> str | None:
    """A file's SHA-256, or None when it does not exist."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


class SpecHost:
    """The spec's example (VM-1..VM-20 registered: 7 in Pool A, 13 in Pool B; VM-21..23 not) on a fresh
    simulated host file and database under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host_file = folder / "host.json"
        self.db = folder / "vgpu.db"
        self.sim = SimHost(self.host_file)
        demo.seed(self.sim, str(self.db))

    @property
    def flags(self) -> list[str]:
        return ["--host", f"sim:{self.host_file}", "--db", str(self.db)]

    def cli(self, *argv: str, stdin: str = "") -> Outcome:
        return run([*argv, *self.flags], stdin)

    @staticmethod
    def uuid(name: str) -> str:
        return demo.demo_uuid(name)

    def vm(self, name: str) -> VM | None:
        """The registration of VM ``name`` (VM-1 .. VM-23), or None."""
        with Store(self.db) as store:
            return vms.find(store, self.uuid(name))

    def pool_of(self, name: str) -> str | None:
        """The pool VM ``name`` is registered in, or None when it is not registered."""
        vm = self.vm(name)
        return vm.pool_id if vm else None

    def vm_by_uuid(self, key: str) -> VM | None:
        with Store(self.db) as store:
            return vms.find(store, key)

    def registered(self) -> list[VM]:
        with Store(self.db) as store:
            return vms.list_vms(store)

    def files(self) -> dict[str, str | None]:
        """Hashes of every file a refused command must leave alone (the DB, its WAL, the host file)."""
        paths = (self.db, Path(f"{self.db}-wal"), self.host_file)
        return {path.name: digest(path) for path in paths}

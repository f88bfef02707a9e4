"""Peak memory of `vgpu-admin status` and `vgpu-admin scan-vms` at 100,000 VMs on a simulated host.

The host has 100,000 VMs, 90% of them registered (with their segment; some with arguments of the admin's
own, a few drifted). Each command runs as a child process, `python -m shell COMMAND --db DB --host sim:PATH`
(from this checkout, or from a regular install under bench/run_all.py: bench/benchpath.py) and its output sent to /dev/null (the terminal is not what is measured),
and its peak resident set size is read from the kernel when it ends (os.wait4's rusage: that child's own
ru_maxrss). For reference the same run measures the interpreter importing the modules the command imports
(shell.main, vgpu.scan, the simulated host): what no command can go below. The target is at most 150 MB
for each command. Exits 1 if a target is missed.

A child's peak counts what it held before it ran its program too (a forked child starts as a copy of its
parent), so the host and database are built in a process of their own and this one imports nothing of vgpu.

    python bench/memory.py [--vms 100000] [--repeat 3] [--keep DIR]

Building the host and the database takes some seconds before the measuring starts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import benchpath  # which vgpu: this checkout, or a regular install under run_all.py
import population

TARGET_MB = 150.0
FLOOR = "import shell.main, vgpu.scan, vgpu.hypervisor.sim"


def paths(directory: Path) -> tuple[Path, Path]:
    return directory / "vgpu.db", directory / "host.sim"


def build(directory: Path, count: int) -> None:
    """``count`` VMs (bench/population.py: 90% registered, a few drifted), unless already built there."""
    from vgpu.hypervisor.sim import SimHost
    from vgpu.store import Store

    db, host_file = paths(directory)
    if db.exists() and host_file.exists():
        return
    host = SimHost(host_file)
    with Store(db) as store:
        population.populate(host, store, count, "3e3e0000-0000-4000-8000-", drift_every=997)
    host.close()


def peak_mb(argv: list[str]) -> float:
    """The child's own peak RSS in MB (Linux reports ru_maxrss in kilobytes)."""
    env = benchpath.child_env(XDG_STATE_HOME=tempfile.gettempdir())
    with open(os.devnull, "w") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read().decode() if child.stderr else ""
        if child.stderr:
            child.stderr.close()
    if child.returncode not in (0, 1):  # 1: the report found something to act on (drift), still a report
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}): {error}")
    return usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="build (or reuse) the host and database in this directory")
    parser.add_argument("--build-only", help=argparse.SUPPRESS)  # the process that builds them
    options = parser.parse_args()
    if options.build_only:
        build(Path(options.build_only), options.vms)
        return 0
    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        directory = Path(options.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--build-only", str(directory), "--vms", str(options.vms)], check=True)
        db, host_file = paths(directory)
        command = [sys.executable, "-m", "shell"]
        where = ["--db", str(db), "--host", f"sim:{host_file}"]
        runs = {
            "floor: python -c '" + FLOOR + "'": [sys.executable, "-c", FLOOR],
            "vgpu-admin status": [*command, "status", *where],
            "vgpu-admin scan-vms": [*command, "scan-vms", *where],
        }
        peaks = {name: max(peak_mb(argv) for _ in range(options.repeat)) for name, argv in runs.items()}
    print(benchpath.measured())
    print(f"peak RSS at {options.vms} VMs on a simulated host (the highest of {options.repeat} runs)")
    missed = False
    for name, peak in peaks.items():
        if name.startswith("floor"):
            print(f"  {name:<70} {peak:7.1f} MB")
            continue
        ok = peak <= TARGET_MB
        missed |= not ok
        print(f"  {name:<70} {peak:7.1f} MB   target <= {TARGET_MB:g} MB   {'OK' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

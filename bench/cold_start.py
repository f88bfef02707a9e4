"""Cold start of a one-shot command: `vgpu-admin list-pools` against `python -c "import sqlite3"`.

Both run as fresh processes of the same interpreter, in pairs (one of each, alternating which goes first,
so drift in machine load hits both alike); the figure is the ratio of the medians. The target is ≤ 2×.
The demo DB is seeded before timing, so the runs measure start-up and one query, not seeding. Bytecode
is compiled first, as `pip install` does for an installed package: machines that set
PYTHONDONTWRITEBYTECODE (this one does) would otherwise recompile every module on every run and time the
compiler instead of the tool.

    python bench/cold_start.py [--pairs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

TARGET = 2.0


def _script() -> list[str]:
    """The installed console script if there is one (what an admin runs), else `python -m shell`."""
    candidate = os.path.join(sysconfig.get_path("scripts"), "vgpu-admin")
    return [candidate] if os.path.exists(candidate) else [sys.executable, "-m", "shell"]


def _compile_bytecode(env: dict[str, str]) -> None:
    """Write .pyc files for the vgpu and shell packages the command will import."""
    code = "import compileall, os, shell, vgpu; [compileall.compile_dir(os.path.dirname(p.__file__), quiet=1) for p in (shell, vgpu)]"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home, "VGPU_HOST": "sim:demo"}
        env.pop("VGPU_DB", None)
        command = [*_script(), "list-pools"]
        baseline = [sys.executable, "-c", "import sqlite3"]
        _compile_bytecode(env)
        _time(command, env)  # seeds the demo
        ours, floor = [], []
        for index in range(args.pairs):
            pair = [(command, ours), (baseline, floor)]
            for argv, bucket in pair if index % 2 else reversed(pair):
                bucket.append(_time(argv, env))
    ratio = statistics.median(ours) / statistics.median(floor)
    print(f"command:  {' '.join(command)}")
    print(f"vgpu-admin list-pools  median {statistics.median(ours) * 1000:7.1f} ms")
    print(f'python -c "import sqlite3"  median {statistics.median(floor) * 1000:7.1f} ms')
    print(f"ratio {ratio:.2f}x   target <= {TARGET:.1f}x   {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

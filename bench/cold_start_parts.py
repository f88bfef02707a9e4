"""Where `vgpu-admin list-pools`'s start-up goes beyond `python -c "import sqlite3"`: each of our modules'
import, then the command's run, on a regular install (the same fresh venv cold_start.py builds).

This is a diagnosis, not a budget: bench/cold_start.py holds the target. Each fresh process imports sqlite3
(list-pools does not import attrs: vgpu/basics.py), then every module of ours that list-pools loads, one at a
time in the order the command loads them, timing each, then runs ``list-pools``. Medians over ``--runs``
processes, in milliseconds. A module's figure includes whatever it imports that no module before it did,
from the standard library too (typing, enum, re). As in vgpu-admin itself (shell/program.py), the garbage
collector is off while modules load, and back on, with their objects frozen, for the run.

    python bench/cold_start_parts.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

from cold_start import clean_env, install

# Run inside the installed environment. ORDER prints the modules of ours that list-pools loads, in the order
# it loads them; PROBE imports sqlite3, then those (argv[1], comma-separated) one at a time, then runs the
# command, and prints {"floor ...": ms, "<module>": ms, ..., "run ...": ms} as JSON.
ORDER = r"""
import sys
before = set(sys.modules)
import shell.program
print(",".join(name for name in sys.modules if name not in before and name.split(".")[0] in ("vgpu", "shell")))
"""
PROBE = r"""
import gc, io, json, sys, time
gc.disable()
started = time.perf_counter()
import sqlite3
figures = {"floor (import sqlite3)": time.perf_counter() - started}
for name in sys.argv[1].split(","):
    started = time.perf_counter()
    __import__(name)
    figures[name] = time.perf_counter() - started
from shell.main import main
gc.freeze()
gc.enable()
sys.stdout, real = io.StringIO(), sys.stdout
started = time.perf_counter()
code = main(["list-pools"])
figures["run (list-pools)"] = time.perf_counter() - started
sys.stdout = real
assert code == 0, code
print(json.dumps({name: seconds * 1000 for name, seconds in figures.items()}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="vgpu-cold-start-parts-")
    try:
        python = os.path.join(install(root), "python")
        home = os.path.join(root, "home")
        os.mkdir(home)
        env = clean_env(home)
        subprocess.run([os.path.join(os.path.dirname(python), "vgpu-admin"), "list-pools"], env=env, cwd=home,
                       check=True, stdout=subprocess.DEVNULL)  # seeds the demo: no first-run work is timed
        order = subprocess.run([python, "-c", ORDER], env=env, cwd=home, check=True, capture_output=True, text=True).stdout
        runs = [json.loads(subprocess.run([python, "-c", PROBE, order.strip()], env=env, cwd=home, check=True,
                                          capture_output=True, text=True).stdout) for _ in range(args.runs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"medians of {args.runs} fresh processes of a regular install, in ms")
    ours = 0.0
    for name in runs[0]:
        median = statistics.median(run[name] for run in runs)
        ours += 0 if name.startswith("floor") else median
        print(f"  {name:<32} {median:7.3f}")
    print(f"  {'ours in all (imports and run)':<32} {ours:7.3f}   (teardown and the console script come on top)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

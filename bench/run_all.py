"""Every bench against a regular (non-editable) install of this checkout, as an admin would run it.

Builds one fresh virtual environment in a temporary directory with a wheel of this checkout and the extras the
benches use (the shell's prompt_toolkit, XenAPI), then runs each bench with that environment's Python, from a
directory outside the checkout, with VGPU_BENCH_INSTALLED=1 and no PYTHONPATH (bench/benchpath.py: `vgpu` and
`shell` then come from site-packages; each bench prints where its vgpu came from). bench/cold_start.py builds
its own, smaller environment (no extras: `vgpu-admin list-pools` needs none) and runs as it would alone.
Each bench prints its figures as ratios against a baseline measured in the same run, with the target beside
them; this prints which met their targets. Exits 1 if any bench missed or failed.

    python bench/run_all.py [--only scan_status,memory]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import cold_start

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ("cold_start", "bulk_register", "register_on_host", "scan_status", "memory", "round_trips",
           "completion", "bulk_reconfigure", "fleet_scan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated bench names (default: all)")
    options = parser.parse_args()
    chosen = options.only.split(",") if options.only else list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    root = tempfile.mkdtemp(prefix="vgpu-benches-")
    outcomes: dict[str, int] = {}
    try:
        python = os.path.join(cold_start.install(root, extras="shell,xapi"), "python")
        workdir = os.path.join(root, "work")
        os.mkdir(workdir)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("VGPU_")}
        env["VGPU_BENCH_INSTALLED"] = "1"
        for name in chosen:
            print(f"\n=== bench/{name}.py", flush=True)
            # cold_start measures its own minimal install; it only needs to be started by some Python
            interpreter = sys.executable if name == "cold_start" else python
            outcomes[name] = subprocess.run([interpreter, os.path.join(HERE, f"{name}.py")], env=env, cwd=workdir).returncode
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n=== summary")
    for name, code in outcomes.items():
        print(f"  {name:<18} {'met its targets' if code == 0 else f'MISSED or failed (exit {code})'}")
    return 0 if all(code == 0 for code in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Which vgpu a bench measures.

Run by hand (`python bench/scan_status.py`), a bench measures this checkout: it is put first on sys.path.
Run by bench/run_all.py, it measures a regular (non-editable) install of this checkout in a fresh virtual
environment, as an admin would run it: VGPU_BENCH_INSTALLED=1 puts the checkout last on sys.path, so `vgpu`
and `shell` come from site-packages and only the test stand-ins (`tests`, never installed) from here.
Every bench prints where its vgpu came from, so a figure is never read without knowing what it measured.
"""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = os.environ.get("VGPU_BENCH_INSTALLED") == "1"

if INSTALLED:
    sys.path.append(REPO)
else:
    sys.path.insert(0, REPO)


def measured() -> str:
    """One line naming the vgpu being measured; refuses to go on if a run that asked for the installed
    package would measure the checkout instead."""
    import vgpu

    where = os.path.dirname(os.path.abspath(vgpu.__file__))
    from_checkout = where.startswith(REPO + os.sep)
    if INSTALLED and from_checkout:
        raise SystemExit(f"asked to measure an installed vgpu but imported {where}")
    return f"measuring vgpu {vgpu.__version__} from {where} ({'this checkout' if from_checkout else 'a regular install'})"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a bench's child `python -m shell` process: the checkout on PYTHONPATH only when
    the bench measures the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if not INSTALLED:
        env["PYTHONPATH"] = REPO
    env.update(extra)
    return env

"""The ``vgpu-admin`` process itself (setup.cfg's console script, and ``python -m shell``): how the
interpreter is set up around :func:`shell.main.entry`, which tests also call inside their own process.

Start-up builds thousands of objects that live as long as the process: classes, functions, attrs' generated
methods, the command table. Python's cyclic garbage collector walks all of them again every few hundred
allocations while they are built, and once more at exit, and finds no garbage in them. That was about an
eighth of ``vgpu-admin list-pools`` (bench/cold_start.py). So collection is off while the modules load;
what they built is then frozen (``gc.freeze``: left out of every later pass, the one at exit included), and
collection is back on before the command runs, so the command's own garbage is collected as usual.
"""

from __future__ import annotations

import gc

gc.disable()

from .main import entry as _run_command  # noqa: E402  (imported with collection off, on purpose)


def entry() -> None:
    gc.freeze()
    gc.enable()
    _run_command()

"""The vgpu-admin process (shell.program): start-up objects are built with the garbage collector off and then
frozen, and the command runs with collection back on. Each check runs in a fresh interpreter: freezing this
test process's objects would change the rest of the suite."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys

from .clikit import REPO


def _fresh_python(script: str) -> str:
    """What ``script`` prints, run in a fresh interpreter from the checkout (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_program_loads_with_collection_off_and_runs_the_command_with_it_on():
    script = (
        "import gc, json, sys\n"
        "import shell.main\n"
        "seen = {}\n"
        "def command():\n"  # stands in for shell.main.entry, which the program runs
        "    seen.update(collecting=gc.isenabled(), frozen=gc.get_freeze_count())\n"
        "shell.main.entry = command\n"
        "import shell.program\n"
        "loading = gc.isenabled()\n"
        "shell.program.entry()\n"
        "print(json.dumps({'collecting while loading': loading, **seen}))\n"
    )
    seen = json.loads(_fresh_python(script))
    assert seen["collecting while loading"] is False
    assert seen["collecting"] is True  # the command's own garbage is collected as usual
    assert seen["frozen"] > 1000  # the modules' objects: kept out of every later pass, the exit's included


def test_the_installed_command_starts_through_the_program():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    lines = [line for line in setup["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert [line.replace(" ", "") for line in lines] == ["vgpu-admin=shell.program:entry"]


def test_python_m_shell_starts_through_the_program():
    script = (
        "import runpy, sys\n"
        "sys.argv = ['vgpu-admin', '--version']\n"
        "try:\n"
        "    runpy.run_module('shell', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as done:\n"
        "    print(done.code, 'shell.program' in sys.modules)\n"
    )
    version, ending = _fresh_python(script).splitlines()
    assert version.startswith("vgpu-admin ")
    assert ending == "0 True"

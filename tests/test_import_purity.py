"""The library knows no screen: importing any of it pulls in neither prompt_toolkit nor the shell, and no
vgpu module prints or reads the terminal."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import vgpu

PACKAGE_DIR = Path(vgpu.__file__).parent
REPO_ROOT = PACKAGE_DIR.parent

# Run in a fresh interpreter: this test process has imported pytest plugins and maybe the shell already.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import vgpu
names = [info.name for info in pkgutil.walk_packages(vgpu.__path__, "vgpu.")]
for name in names:
    importlib.import_module(name)
def ui(module):
    parts = module.split(".")
    return parts[0] == "prompt_toolkit" or "shell" in parts
print(json.dumps({"walked": names, "leaked": sorted(m for m in sys.modules if ui(m))}))
"""


def test_importing_every_vgpu_module_leaves_prompt_toolkit_and_the_shell_out():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {"vgpu.store", "vgpu.vms", "vgpu.pools", "vgpu.audit", "vgpu.convert"} <= set(seen["walked"])
    assert len(seen["walked"]) == len(list(pkgutil.walk_packages(vgpu.__path__, "vgpu.")))
    assert seen["leaked"] == []


def test_the_check_would_see_the_shell_if_it_were_imported():
    # Guards the test above against passing vacuously: the shell is importable from the same place.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    probe = "import sys, shell; print('shell' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


TERMINAL_CALLS = {"print", "input", "breakpoint"}
TERMINAL_MODULES = {"getpass", "readline", "curses", "prompt_toolkit", "shell", "tty", "termios"}


def terminal_use(source: str) -> list[str]:
    """Calls of print()/input()/breakpoint(), sys.stdin/stdout/stderr, and terminal modules imported."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TERMINAL_CALLS:
            found.append(f"line {node.lineno}: {node.func.id}()")
        elif isinstance(node, ast.Attribute) and node.attr in ("stdin", "stdout", "stderr"):
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                found.append(f"line {node.lineno}: sys.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: import {m}" for m in modules if m.split(".")[0] in TERMINAL_MODULES]
    return found


def test_no_vgpu_module_prints_or_reads_the_terminal():
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(sources) >= 10
    offences = {str(path.relative_to(REPO_ROOT)): terminal_use(path.read_text()) for path in sources}
    assert {path: found for path, found in offences.items() if found} == {}


def test_the_scan_recognises_what_it_forbids():
    source = "import getpass\nimport sys\nprint('x')\nname = input()\nsys.stdout.write('y')\n"
    assert sorted(terminal_use(source)) == [
        "line 1: import getpass", "line 3: print()", "line 4: input()", "line 5: sys.stdout",
    ]
    assert terminal_use('"""Example: print(pool.pool_id)"""\n') == []

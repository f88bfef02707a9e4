"""The README's two commands are the project's promise: keep them at the top and keep CI running the second."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", _read("README.md"))


def test_readme_opens_with_the_demo_and_the_test_command():
    commands = _readme_commands()
    assert len(commands) >= 2
    demo, tests = commands[0], commands[1]
    assert demo.startswith("pip install") and "vgpu-admin demo --reset" in demo
    assert "pytest" in tests
    head = "\n".join(_read("README.md").splitlines()[:20])
    assert demo in head and tests in head


def test_ci_runs_the_readmes_test_command_verbatim():
    test_command = _readme_commands()[1]
    ci_lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    assert test_command in ci_lines


def test_demo_command_names_vm_1_of_the_demo():
    from vgpu import demo

    assert f"--vm-uuid={demo.demo_uuid('VM-1')} " in _readme_commands()[0]


def test_ci_runs_each_test_file_on_its_own_after_the_suite():
    ci_lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    assert ".ci/each-test-file" in ci_lines
    assert ci_lines.index(".ci/each-test-file") > ci_lines.index(_readme_commands()[1])
    script = os.path.join(ROOT, ".ci", "each-test-file")
    assert os.access(script, os.X_OK)
    assert "tests/test_*.py" in _read(".ci", "each-test-file")


def test_ci_draws_the_same_hypothesis_examples_every_run():
    """Both CI phases use a derandomized profile, so the run that decides whether work lands cannot go red on
    a new random draw (the each-file phase once did, on a random dev-profile draw)."""
    from hypothesis import settings

    profiles = re.findall(r"HYPOTHESIS_PROFILE=(\w[\w-]*)", _read(".ci", "run"))
    profiles += re.findall(r"HYPOTHESIS_PROFILE=\$\{VGPU_EACH_FILE_PROFILE:-([\w-]+)\}", _read(".ci", "each-test-file"))
    assert len(profiles) == 2, profiles
    for name in profiles:
        assert settings.get_profile(name).derandomize, name


def _steps(command: str) -> list[tuple[list[str], str]]:
    """The README's demo line as its steps: each ``A && B`` part as an argument list, with what ``echo X |``
    pipes into it (run as lists, not through a shell)."""
    import shlex

    steps = []
    for part in command.split(" && "):
        stdin = ""
        if part.startswith("echo ") and " | " in part:
            echoed, part = part.split(" | ", 1)
            stdin = " ".join(shlex.split(echoed)[1:]) + "\n"
        steps.append((shlex.split(part), stdin))
    return steps


@pytest.mark.integration
def test_the_demo_command_works_on_a_fresh_install(tmp_path):
    # What a new machine does with the README's first command: a regular install of this checkout (a copy:
    # pip builds in the tree it is given) into a fresh venv, then the demo, with nothing of ours set.
    import shutil
    import subprocess
    import sys

    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", "notebooks"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VGPU_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"))
    outputs = []
    for argv, stdin in _steps(_readme_commands()[0]):
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=source, env=env, timeout=600)
        assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout)
    assert argv[0] == "vgpu-admin" and argv[1] == "status"
    assert "GPU Virtualization Control Panel" in outputs[-1]
    assert "pool A → B" in outputs[-2]  # the set-pool step applied the move

"""The README's two commands are the project's promise: keep them at the top and keep CI running the second."""

from __future__ import annotations

import os
import re

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

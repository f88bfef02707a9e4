"""Fixtures that reset the world: every test gets its own data/config dirs and, when asked, a fresh store."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import HealthCheck, settings

from vgpu.store import Store

# A run started in the background by a shell without job control (`pytest ... &`, nohup, some CI runners) inherits
# SIGINT ignored, and Python then leaves it ignored: the tests that press Ctrl-C themselves need it to arrive as
# KeyboardInterrupt, as it does for an admin at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# CI's profiles derandomize: the run that decides whether work lands tests the examples the suite was last
# seen passing with, so it cannot go red on a new random draw. Exploring new examples is the dev profile's
# job (random on every run), and a failure found there becomes an @example. "ci-each-file" is the short run
# of .ci/each-test-file, which checks that each file passes on its own.
settings.register_profile(
    "ci", deadline=None, max_examples=100, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci-each-file", deadline=None, max_examples=20, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_XDG_DIRS = {
    "HOME": "home",
    "XDG_DATA_HOME": "data",
    "XDG_CONFIG_HOME": "config",
    "XDG_STATE_HOME": "state",
    "XDG_CACHE_HOME": "cache",
}


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    """Point HOME and every XDG dir at empty temporary folders; forget any DB or host the caller had set."""
    root = tmp_path_factory.mktemp("env")
    for variable, folder in _XDG_DIRS.items():
        path = root / folder
        path.mkdir()
        monkeypatch.setenv(variable, str(path))
    monkeypatch.delenv("VGPU_DB", raising=False)
    monkeypatch.delenv("VGPU_HOST", raising=False)
    # Subprocesses (the real entry point, stand-ins, killed children) import this checkout, never a
    # stale installed copy, whatever their working directory.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH", "")])))
    return root


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "vgpu.db"


@pytest.fixture
def store(db_path):
    """A freshly initialised store (Pool A and Pool B, no VMs), closed after the test."""
    with Store(db_path) as opened:
        yield opened


@pytest.fixture
def snapshot(store):
    """A function returning every row of pools, vms and the audit log, to compare around a refused change."""

    def take() -> dict[str, list[tuple]]:
        with store.reading() as conn:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("pools", "vms", "vgpu_audit")
            }

    return take


@pytest.fixture
def world(tmp_path, store):
    """A simulated host in tmp_path beside ``store`` (tests/lifekit.py's World), for the lifecycle's tests."""
    from .lifekit import World

    return World.create(tmp_path, store)


@pytest.fixture
def four(world):
    """VMs 1-4 registered in Pool A with vm_ids 1-4; 1 and 3 running, 2 and 4 halted."""
    from .lifekit import config

    return [world.add(n, "running" if n % 2 else "halted", config("A", 1, n), f"-vnc :{n}") for n in range(1, 5)]

"""A path with ".." after a directory that does not exist (or a file where one belongs): the kernel needs that
directory to go back up from, so the database or simulated host cannot be opened there, and the command says
so in the one sentence the same path without ".." gets (exit 1), not "internal error"."""

from __future__ import annotations

import pytest

from vgpu.errors import HostUnreachable, StoreError
from vgpu.hypervisor.sim import SimHost
from vgpu.store import Store

from .clikit import run


@pytest.fixture
def env(isolated_environment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a directory\n")
    return tmp_path


def test_a_store_through_a_missing_directory_and_dotdot_names_that_directory(env):
    with pytest.raises(StoreError) as caught:
        Store(f"{env}/nodir/../v.db")
    assert str(caught.value) == f"cannot open database {env}/nodir/../v.db: directory {env}/nodir does not exist"
    with pytest.raises(StoreError) as caught:
        Store("afile/../v.db")
    assert str(caught.value) == f"cannot open database afile/../v.db: {env}/afile is not a directory"
    assert sorted(path.name for path in env.iterdir()) == ["afile"]


@pytest.mark.parametrize("db", ["{}/nodir/v.db", "{}/nodir/../v.db"], ids=["plain", "dotdot"])
def test_db_flag_through_a_missing_directory(env, db):
    outcome = run(["--db", db.format(env), "list-pools"])
    assert outcome.code == 1, outcome
    assert outcome.one_error_line() == (f"error: cannot open database {db.format(env)}: directory {env}/nodir does not exist")


def test_a_configs_db_through_a_missing_directory(env, isolated_environment):
    config = isolated_environment / "config" / "vgpu"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text('db = "sub/../lab.db"\n')
    outcome = run(["list-pools"])
    assert outcome.code == 1, outcome
    assert outcome.one_error_line() == f"error: cannot open database {config}/sub/../lab.db: directory {config}/sub does not exist"


@pytest.mark.parametrize("host", ["{}/nodir/a.json", "{}/nodir/../a.json"], ids=["plain", "dotdot"])
def test_a_sim_host_through_a_missing_directory(env, host):
    outcome = run(["--db", f"{env}/v.db", "--host", f"sim:{host.format(env)}", "scan-vms"])
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert line.startswith(f"error: cannot reach the host: simulated host directory {env}/nodir does not exist"), line
    assert not (env / "a.json").exists()


@pytest.mark.parametrize("host", ["{}/afile/a.json", "{}/afile/../a.json"], ids=["plain", "dotdot"])
def test_a_sim_host_through_a_file(env, host):
    with pytest.raises(HostUnreachable) as caught:
        SimHost(host.format(env)).list_vms()
    assert f"simulated host directory {env}/afile is not a directory" in str(caught.value), caught.value

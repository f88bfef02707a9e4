"""recover asks the host what the VM is doing before it acts, and stops VMs by the same policy as every
other command. Each test kills a real vgpu-admin process (tests/crashcli.py) and runs recover as a real
process, over the simulated host directly and, where it matters, through the xe and XenAPI stand-ins."""

from __future__ import annotations

import time

import pytest

from vgpu import audit, devargs
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState

from . import crashcli
from .clihosts import cli_host
from .clikit import run_process
from .lifekit import World, config

OLD = config("A", 1, 4)
NEW = config("B", 1, 4)
OWN_ARGS = "-vnc 127.0.0.1:4"


@pytest.fixture(params=["sim", "xe", "xapi"])
def through(request, tmp_path, store):
    """(the host as a vgpu-admin process reaches it, a World over the same DB and simulated host)"""
    with cli_host(request.param, tmp_path) as host:
        yield host, World(store, host.sim)


def flags(world, host) -> list[str]:
    return ["--db", str(world.store.path), "--host", host.uri]


def test_recover_while_the_killed_sessions_start_still_runs_changes_nothing_then_finishes(through):
    host, world = through
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_latency("start", 600)  # the host takes its time to start the VM
    code, out, err = crashcli.run(["set-pool", f"--vm-uuid={uuid}", "--pool=B", *flags(world, host)],
                                  "start-requested", "kill", sim=world.sim.path, stdin="yes\n", env=host.env)
    assert code == -9, err
    (op,) = world.open_ops()
    assert op.step == "starting" and world.sim.current_operations(uuid) == ("start",)
    before = world.tables(), world.args(uuid), world.sim.boots(uuid)

    early = run_process(["recover", *flags(world, host)], env=host.env)
    assert early.code == 1, early
    (line,) = early.out_lines
    assert line.startswith(f"reconfigure of VM {uuid} (stopped at step starting): later - ")
    assert "run 'vgpu-admin recover' again" in line
    assert (world.tables(), world.args(uuid), world.sim.boots(uuid)) == before  # not rolled back under the start
    assert world.config(uuid) == NEW  # the database keeps the change the start is booting

    SimHost(world.sim.path, clock=lambda: time.time() + 601).settle()  # the host's start completes
    done = run_process(["recover", *flags(world, host)], env=host.env)
    assert done.code == 0, done
    assert done.out_lines[0].startswith(f"reconfigure of VM {uuid} (stopped at step starting): finished - ")
    assert world.config(uuid) == world.segment(uuid) == NEW
    assert world.sim.boots(uuid)[len(before[2]):] == [devargs.merge(OWN_ARGS, NEW)]  # booted once, the new config
    assert world.power(uuid) is PowerState.RUNNING and world.open_ops() == []


def test_recover_after_a_kill_before_the_shutdown_leaves_the_healthy_vm_running(tmp_path, store):
    world = World.create(tmp_path, store)
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    boots = world.sim.boots(uuid)
    cli = ["--db", str(store.path), "--host", f"sim:{world.sim.path}"]
    code, _, err = crashcli.run(["set-pool", f"--vm-uuid={uuid}", "--pool=B", *cli], "stopping", "kill", stdin="yes\n")
    assert code == -9, err
    recovered = run_process(["recover", *cli])
    assert recovered.code == 0, recovered
    assert recovered.out_lines == [
        f"reconfigure of VM {uuid} (stopped at step stopping): rolled-back - the change had not reached the database; "
        "the VM is running with its previous configuration; recover did not restart it"]
    assert world.sim.boots(uuid) == boots  # never stopped, never booted again
    assert [entry.action for entry in audit.history(store, uuid)] == ["register"]  # no stop
    assert world.power(uuid) is PowerState.RUNNING and world.config(uuid) == world.segment(uuid) == OLD


def write_config(isolated_environment, text: str) -> None:
    folder = isolated_environment / "config" / "vgpu"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")


def test_recover_stops_a_vm_by_the_configured_policy(tmp_path, store, isolated_environment):
    """A session killed once the database had the new values, and the VM started by hand meanwhile with the
    old args still stored: to finish, recover must stop it, and does so under the admin's policy (here:
    0.5 s, never forced), through xe."""
    with cli_host("xe", tmp_path) as host:
        env = {**host.env, "VGPU_XE_SHUTDOWN_WAIT": "2"}  # the guest below ignores it; xe gives up after 2 s
        world = World(store, host.sim)
        uuid = world.add(4, "running", OLD, OWN_ARGS)
        code, _, err = crashcli.run(["set-pool", f"--vm-uuid={uuid}", "--pool=B", *flags(world, host)], "db-updated",
                                    "kill", stdin="yes\n", env=env)
        assert code == -9, err
        # The policy is set for recover only: the change's own clean shutdown, through a stand-in xe process, may
        # take longer than 0.5 s on a busy machine, and the change would not reach the step it is killed at.
        write_config(isolated_environment, "clean_timeout = 0.5\nforce_after_timeout = false\n")
        world.sim.start(uuid)  # by hand: it boots the old segment, which is still the stored one
        world.sim.set_fault("clean_shutdown", "ignore", uuid)
        boots = world.sim.boots(uuid)
        recovered = run_process(["recover", *flags(world, host)], env=env)
    assert recovered.code == 1, recovered  # the VM needs the admin: the shutdown was asked for, not seen through
    (line,) = recovered.out_lines
    assert f"VM {uuid} did not shut down within 0.5s, and forcing it off is not allowed" in line, line
    assert world.power(uuid) is PowerState.RUNNING and world.sim.boots(uuid) == boots  # not forced, not restarted
    assert [entry.new["stop"] for entry in audit.history(store, uuid) if entry.action == "stop"] == ["requested", "clean"]  # newest first
    assert "shutdown-unconfirmed" in [mark.kind for mark in world.marks()]

"""A process killed (SIGKILL) at every step of an operation, then recover(): the DB and the VM's segment
agree, the VM is in its original power state, and nothing is left locked.

The operation runs in a child process (tests/crashkit.py) that kills itself right after the chosen
journal step is committed, or right after the host call that follows it, so the journal row names an
owner that is really dead, as after a crash.
"""

from __future__ import annotations

import signal
import time

import pytest

from vgpu import devargs, journal, lifecycle, recovery
from vgpu.errors import Busy
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState

from . import crashkit
from .lifekit import World, config, vm_uuid

OLD = config("A", 1, 4)
NEW = config("B", 2, 4)
OWN_ARGS = "-vnc 127.0.0.1:4"
KILLED = -signal.SIGKILL

# (starting power state, where the child dies, the journal step left behind, what recover() does)
RECONFIGURE_POINTS = [
    ("running", "planned", "planned", "rolled-back"),
    ("running", "stopping", "stopping", "rolled-back"),
    ("running", "stopped", "stopping", "rolled-back"),
    ("running", "db-updated", "db-updated", "finished"),
    ("running", "writing-args", "writing-args", "finished"),
    ("running", "args-written", "writing-args", "finished"),
    ("running", "starting", "starting", "finished"),
    ("running", "started", "starting", "finished"),
    ("halted", "planned", "planned", "rolled-back"),
    ("halted", "db-updated", "db-updated", "finished"),
    ("halted", "writing-args", "writing-args", "finished"),
    ("halted", "args-written", "writing-args", "finished"),
]


@pytest.fixture
def world(tmp_path, store):
    return World.create(tmp_path, store)


def kill_at(world, kind, uuid, point, **change):
    child = crashkit.run(world.store.path, world.sim.path, kind, uuid, point, "kill", **change)
    assert child.returncode == KILLED, (child.stdout, child.stderr)
    return child


def assert_recovered_and_unlocked(world, uuid, power):
    assert world.agrees(uuid)
    assert devargs.parse(world.args(uuid)).config == world.config(uuid)
    assert world.power(uuid) is power
    assert world.open_ops() == []
    lifecycle.reconfigure_vm(world.store, world.sim, uuid, vm_id=77, confirm=lambda plan: True)
    assert world.config(uuid) == world.segment(uuid)
    assert world.config(uuid).vm_id == 77
    assert world.power(uuid) is power


@pytest.mark.parametrize("power, point, step, action", RECONFIGURE_POINTS,
                         ids=[f"{p}-{point}" for p, point, *_ in RECONFIGURE_POINTS])
def test_reconfigure_killed_at_each_step_then_recover(world, power, point, step, action):
    uuid = world.add(4, power, OLD, OWN_ARGS)
    boots_before = world.sim.boots(uuid)
    kill_at(world, "reconfigure", uuid, point, pool="B", priority="high")

    (op,) = world.open_ops()
    assert (op.kind, op.step, op.was_running) == ("reconfigure", step, power == "running")
    assert not op.owner_alive
    with pytest.raises(Busy) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, priority="low", confirm=lambda plan: True)
    assert "run 'vgpu-admin recover'" in str(caught.value)

    (outcome,) = recovery.recover(world.store, world.sim)
    assert (outcome.op_id, outcome.action) == (op.op_id, action)
    expected = NEW if action == "finished" else OLD
    assert world.config(uuid) == expected
    assert world.args(uuid) == devargs.merge(OWN_ARGS, expected)
    if power == "running" and point != "planned":  # it had been (or may have been) stopped: booted again
        assert world.sim.boots(uuid)[-1] == world.args(uuid)
    else:
        assert world.sim.boots(uuid) == boots_before  # never stopped, never booted again
    assert recovery.recover(world.store, world.sim) == []  # nothing left to do
    assert_recovered_and_unlocked(world, uuid, PowerState(power))


def test_killed_while_the_guest_shuts_down_then_recover_leaves_it_running(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_latency("clean_shutdown", 1.0)
    kill_at(world, "reconfigure", uuid, "shutdown-requested", pool="B")
    (op,) = world.open_ops()
    assert op.step == "stopping"

    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    world.sim.set_latency("clean_shutdown", 0)
    # However long we wait, the shutdown the dead session asked for must not halt the VM after recovery.
    later = SimHost(world.sim.path, clock=lambda: time.time() + 3600)
    assert later.power_state(uuid) is PowerState.RUNNING
    assert world.sim.boots(uuid)[-1] == world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("power", ["running", "halted"])
def test_recover_rolls_back_when_the_vm_will_not_start_with_its_new_config(world, power):
    uuid = world.add(4, power, OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "db-updated", pool="B")
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    (outcome,) = recovery.recover(world.store, world.sim)
    if power == "running":
        assert outcome.action == "rolled-back"
        assert "would not start with its new configuration" in outcome.detail
        assert world.config(uuid) == OLD
    else:
        assert outcome.action == "finished"  # a halted VM is not started, so nothing fails
    assert_recovered_and_unlocked(world, uuid, PowerState(power))


def test_recover_with_the_host_down_fails_and_keeps_the_operation_open(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "writing-args", pool="B")
    world.sim.set_fault("unreachable", "on")
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "failed" and "cannot reach the host" in outcome.detail
    assert len(world.open_ops()) == 1
    world.sim.clear_faults()
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["finished"]
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("point, action", [("db-updated", "finished"), ("writing-args", "finished"), ("args-written", "finished")])
def test_register_killed_at_each_step_then_recover(world, point, action):
    uuid = vm_uuid(6)
    world.sim.add_vm(uuid, "vm-6", "running", OWN_ARGS)
    kill_at(world, "register", uuid, point, pool="B")
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == action
    assert world.config(uuid) == config("B", 1, 1)
    assert world.args(uuid) == devargs.merge(OWN_ARGS, config("B", 1, 1))
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("point", ["planned", "writing-args", "args-written"])
def test_remove_killed_at_each_step_then_recover(world, point):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "remove", uuid, point)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "finished"
    assert world.config(uuid) is None
    assert world.args(uuid) == OWN_ARGS
    assert world.power(uuid) is PowerState.RUNNING
    assert world.open_ops() == []


def test_recover_skips_an_operation_whose_session_is_alive(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    child = crashkit.spawn(world.store.path, world.sim.path, "reconfigure", uuid, "stopping", "wait", pool="B")
    try:
        assert child.stdout.readline() == "reached\n"
        (op,) = world.open_ops()
        assert op.owner_alive and op.owner != journal.this_owner()

        (outcome,) = recovery.recover(world.store, world.sim)
        assert outcome.action == "skipped"
        assert f"still in progress in session {op.owner}" in outcome.detail
        assert world.open_ops() == [op]  # untouched
        with pytest.raises(Busy) as caught:
            lifecycle.reconfigure_vm(world.store, world.sim, uuid, priority="low", confirm=lambda plan: True)
        assert str(caught.value) == f"VM {uuid} is being reconfigured by another session since {op.started_at}"

        out, err = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert out == "ok\n"
    assert world.config(uuid) == config("B", 1, 4)
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)

"""The crash matrix: the real vgpu-admin process killed (SIGKILL) at every named step of register,
reconfigure, rollback and recover on the simulated host, with concurrent recover runs among them.

After each kill, recover runs (as real processes, several at once where marked) until nothing is left,
and then the three facts agree: the DB row, the stored segment (the VM's device-model args) and the booted
segment (what the VM's running QEMU was started with, SimHost.boots) — or, for a running VM that was only
registered, the booted segment is the one it had before: a restart is pending, which is what register
promises. The VM is in the power state it had, it booted at most once per restart the change needed, no
lock is left, and a new change goes through.
"""

from __future__ import annotations

import time

import pytest

from vgpu import devargs, lifecycle
from vgpu.models import PowerState

from . import crashcli
from .clikit import run_process
from .lifekit import World, config, vm_uuid

OLD = config("A", 1, 4)
NEW = config("B", 2, 4)
OWN_ARGS = "-vnc 127.0.0.1:4"
KILLED = -9

RUNNING_POINTS = ["planned", "stopping", "shutdown-requested", "stopped", "db-updated", "writing-args", "args-written",
                  "starting", "start-requested", "started"]
CONCURRENT_POINTS = ["stopping", "stopped", "db-updated", "start-requested"]  # where three recovers race
HALTED_POINTS = ["planned", "db-updated", "writing-args", "args-written"]
REGISTER_POINTS = ["db-updated", "writing-args", "args-written"]
# A change whose new configuration will not boot: killed in its rollback (the first start fails at once).
ROLLBACK_POINTS = ["reverted", "args-written#2", "start-requested", "started"]
# (where the change was killed, where the first recover is killed). A change killed once stopped wrote no
# args, so its recover writes none either: it is killed while it starts the VM again instead.
RECOVER_POINTS = [("stopped", "claimed"), ("stopped", "start-requested"), ("stopped", "started"),
                  ("db-updated", "claimed"), ("db-updated", "args-written"), ("db-updated", "start-requested"),
                  ("db-updated", "started"), ("starting", "claimed")]


@pytest.fixture
def world(tmp_path, store):
    world = World.create(tmp_path, store)
    world.sim.set_latency("clean_shutdown", 0.3)  # long enough to be caught shutting down or starting
    world.sim.set_latency("start", 0.3)
    return world


def cli(world) -> list[str]:
    return ["--db", str(world.store.path), "--host", f"sim:{world.sim.path}"]


def set_pool(world, uuid) -> list[str]:
    return ["update-vm", f"--vm-uuid={uuid}", "--pool=B", "--priority=high", *cli(world)]


def kill(world, argv, point, stdin="yes\n") -> None:
    code, out, err = crashcli.run(argv, point, "kill", sim=world.sim.path, stdin=stdin)
    assert code == KILLED, (point, out, err)


def recover_until_settled(world, *, concurrent: int = 1) -> list[str]:
    """Run recover (``concurrent`` processes at once the first time) until nothing is left; the lines
    that resolved an operation. Operations the host is still busy with are waited for."""
    resolved = []
    for attempt in range(200):
        lines = _recover_together(world, concurrent if attempt == 0 else 1)
        resolved += [line for line in lines if ": finished - " in line or ": rolled-back - " in line]
        assert not any(": failed - " in line or ": not-taken - " in line for line in lines), lines
        if not world.open_ops():
            return resolved
        time.sleep(0.05)  # a start or shutdown the host is still carrying out: give it its time
        world.sim.settle()
    raise AssertionError(f"still unfinished: {world.open_ops()}")


def _recover_together(world, count: int) -> list[str]:
    if count == 1:
        return run_process(["recover", *cli(world)]).out_lines
    children = [crashcli.Child(["recover", *cli(world)], "none", "wait", gate=True) for _ in range(count)]
    try:
        for child in children:
            assert child.wait_for("ready")
        for child in children:
            child.release()
        return [line for child in children for line in child.finish()[1].splitlines()]
    finally:
        for child in children:
            child.kill()


def assert_consistent(world, uuid, power, *, pending_from: str | None = None) -> None:
    """DB row, stored segment and booted segment agree (or the boot is pending, with the args it had
    before), the VM is ``power``, no lock is left, and a new change goes through."""
    assert world.open_ops() == []
    stored = devargs.parse(world.args(uuid)).config
    assert stored == world.config(uuid)
    assert world.power(uuid) is power
    booted = world.sim.booted_device_model_args(uuid)
    if power is PowerState.RUNNING:
        if pending_from is None:
            assert devargs.parse(booted).config == stored
        else:
            assert booted == pending_from and devargs.parse(booted).config != stored  # reported as pending restart
    lifecycle.reconfigure_vm(world.store, world.sim, uuid, vm_id=77, confirm=lambda plan: True)
    assert world.config(uuid).vm_id == 77 == devargs.parse(world.args(uuid)).config.vm_id


RUNNING_CASES = [(point, 1) for point in RUNNING_POINTS] + [(point, 3) for point in CONCURRENT_POINTS]


@pytest.mark.parametrize("point, concurrent", RUNNING_CASES,
                         ids=[f"{point}-{'three-recovers' if n > 1 else 'one-recover'}" for point, n in RUNNING_CASES])
def test_reconfigure_of_a_running_vm_killed_at(world, point, concurrent):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    boots = len(world.sim.boots(uuid))
    kill(world, set_pool(world, uuid), point)
    assert len(world.open_ops()) == 1  # the VM is locked until recovered
    resolved = recover_until_settled(world, concurrent=concurrent)
    assert len(resolved) == 1, resolved  # one recover acted, whatever ran at once
    assert len(world.sim.boots(uuid)) - boots <= 1  # restarted at most once
    assert world.config(uuid) in (OLD, NEW)
    assert_consistent(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("point", HALTED_POINTS)
def test_reconfigure_of_a_halted_vm_killed_at(world, point):
    uuid = world.add(4, "halted", OLD, OWN_ARGS)
    kill(world, set_pool(world, uuid), point)
    assert len(recover_until_settled(world)) == 1
    assert world.sim.boots(uuid) == []  # never started
    assert_consistent(world, uuid, PowerState.HALTED)


@pytest.mark.parametrize("power", ["running", "halted"])
@pytest.mark.parametrize("point", REGISTER_POINTS)
def test_register_killed_at(world, point, power):
    uuid = vm_uuid(6)
    world.sim.add_vm(uuid, "vm-6", power, OWN_ARGS)
    kill(world, ["register-vm", f"--vm-uuid={uuid}", "--pool=B", *cli(world)], point, stdin="")
    (line,) = recover_until_settled(world)
    assert ": finished - the registration and its segment are in place" in line
    assert world.config(uuid) == config("B", 1, 1)
    assert_consistent(world, uuid, PowerState(power), pending_from=OWN_ARGS if power == "running" else None)


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_a_rollback_killed_at(world, point):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    kill(world, set_pool(world, uuid), point)
    (op,) = world.open_ops()
    assert op.reverted  # the DB has its old values again
    (line,) = recover_until_settled(world, concurrent=2)
    assert ": rolled-back - the change had reached the database and was undone by the session that made it" in line
    assert world.config(uuid) == OLD
    world.sim.clear_faults()
    assert_consistent(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("change_point, recover_point", RECOVER_POINTS)
def test_recover_killed_at(world, change_point, recover_point):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    boots = len(world.sim.boots(uuid))
    kill(world, set_pool(world, uuid), change_point)
    kill(world, ["recover", *cli(world)], recover_point, stdin="")
    assert len(world.open_ops()) == 1  # the dead recover's claim is taken by the next one
    resolved = recover_until_settled(world, concurrent=2)
    assert len(resolved) == 1, resolved
    assert len(world.sim.boots(uuid)) - boots <= 1
    assert_consistent(world, uuid, PowerState.RUNNING)


def test_the_matrix_covers_every_journal_step_and_every_host_call():
    steps = set(crashcli.STEPS) | {"claimed", "reverted"} | set(crashcli.AFTER_CALLS.values())
    steps |= {point for point, _ in crashcli.WHILE_CALLS.values()}
    named = {p.partition("#")[0] for p in RUNNING_POINTS + HALTED_POINTS + REGISTER_POINTS + ROLLBACK_POINTS}
    named |= {p for pair in RECOVER_POINTS for p in pair}
    assert steps <= named

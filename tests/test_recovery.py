"""A process killed (SIGKILL) at every step of an operation, then recover(): the DB and the VM's segment
agree, the VM is in its original power state, and nothing is left locked.

The operation runs in a child process (tests/crashkit.py) that kills itself right after the chosen
journal step is committed, or right after the host call that follows it, so the journal row names an
owner that is really dead, as after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import attrs
import pytest

from vgpu import devargs, journal, lifecycle, recovery, sessions, vms
from vgpu.errors import Busy, DamagedDatabase
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Registration

from . import crashcli, crashkit
from .clikit import run_process
from .lifekit import Recorder, Unsure, config, hand_over, other_live_session, vm_uuid

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
    # Killed at "planned", the row holds the VM's lock but the host had not been asked yet (it is, once the
    # lock is held): whether the VM runs is not recorded, and recover puts back what nothing had touched.
    was_running = None if point == "planned" else power == "running"
    assert (op.kind, op.step, op.was_running) == ("reconfigure", step, was_running)
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


def test_recover_of_a_change_cut_short_before_its_stop_reports_no_restoring(world):
    # Killed once "stopping" was journalled, before the host was asked: the VM runs as it was, and recover
    # puts nothing back, so it does not say "Restoring the previous configuration".
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    boots = world.sim.boots(uuid)
    kill_at(world, "reconfigure", uuid, "stopping", pool="B")
    progress = Recorder()
    (outcome,) = recovery.recover(world.store, world.sim, progress)
    assert outcome.action == "rolled-back" and world.sim.boots(uuid) == boots
    assert "rolling-back" not in progress.steps, progress.steps
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def wait_until(condition, what: str, limit: float = 60.0) -> None:
    """Wait for the simulated host to get somewhere by itself (bounded, so a broken host fails the test)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_killed_while_the_guest_shuts_down_then_recover_waits_for_the_host_and_leaves_it_running(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_latency("clean_shutdown", 1.0)
    kill_at(world, "reconfigure", uuid, "shutdown-requested", pool="B")
    (op,) = world.open_ops()
    assert op.step == "stopping"

    before = world.tables(), world.host_picture(uuid)
    if world.sim.current_operations(uuid):  # the guest is still shutting down: nothing is done meanwhile
        (outcome,) = recovery.recover(world.store, world.sim)
        assert (outcome.action, outcome.settled) == ("later", False)
        assert outcome.detail.startswith("the host is still carrying out clean_shutdown on the VM")
        assert (world.tables(), world.host_picture(uuid)) == before
        assert world.open_ops()[0].needs_recovery  # released again: the next recover takes it at once
    wait_until(lambda: world.power(uuid) is PowerState.HALTED, "the guest to halt")

    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert outcome.detail == ("the change had not reached the database; the previous configuration is kept and the VM "
                              "was started again")
    world.sim.set_latency("clean_shutdown", 0)
    # However long we wait, the shutdown the dead session asked for must not halt the VM after recovery.
    later = SimHost(world.sim.path, clock=lambda: time.time() + 3600)
    assert later.power_state(uuid) is PowerState.RUNNING
    assert world.sim.boots(uuid)[-1] == world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_killed_while_the_guest_shuts_down_on_a_host_that_cannot_tell_then_recover_sees_the_stop_through(world):
    """libvirt cannot tell whether a guest still has the shutdown it was asked for: recover must not take the
    running VM for one that kept running, or the guest halts after recovery and stays off, unreported."""
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_latency("clean_shutdown", 1.0)
    kill_at(world, "reconfigure", uuid, "shutdown-requested", pool="B")
    boots = world.sim.boots(uuid)

    (outcome,) = recovery.recover(world.store, Unsure(world.sim), policy=lifecycle.StopPolicy(clean_timeout=60))
    assert outcome.action == "rolled-back" and outcome.settled
    assert outcome.detail == ("the change had not reached the database; the previous configuration is kept and the VM "
                              "was started again")
    assert world.sim.boots(uuid) == [*boots, devargs.merge(OWN_ARGS, OLD)]  # it halted, and was booted again
    world.sim.set_latency("clean_shutdown", 0)
    later = SimHost(world.sim.path, clock=lambda: time.time() + 3600)
    assert later.power_state(uuid) is PowerState.RUNNING  # nothing is left to halt it
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


def test_a_vm_stopped_by_a_change_and_then_gone_from_its_host_is_marked_for_attention(world):
    # Killed after the stop: the VM was running and is halted now; then it left the host (moved, or deleted).
    # recover can finish nothing on it, and must not call that settled: it asks an admin to look.
    from vgpu import attention

    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "writing-args", pool="B")
    world.sim.remove_vm(uuid)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "finished" and "the host no longer has this VM" in outcome.detail
    assert outcome.attention and not outcome.settled  # the CLI says so, and exits 1
    [mark] = _marks(world)
    assert mark.vm_uuid == uuid and mark.kind == attention.NOT_RESTARTED
    assert "was running before" in mark.reason and world.open_ops() == []


def test_a_vm_gone_from_its_host_before_any_stop_is_not_marked(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "planned", pool="B")
    world.sim.remove_vm(uuid)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back" and _marks(world) == []


def _marks(world):
    from vgpu import attention

    with world.store.reading() as conn:
        return attention.select(conn)


RAN = config("B", 2, 9)  # what a VM pending restart runs with, while the database has OLD


def pending_restart(world) -> str:
    """VM 4 registered with OLD and that segment stored, but running with RAN: apply-vm's case."""
    uuid = vm_uuid(4)
    world.sim.add_vm(uuid, "vm-4", "running", devargs.merge(OWN_ARGS, RAN))
    vms.db_register_many(world.store, [Registration(uuid, "vm-4", OLD.pool_id, OLD.priority, OLD.vm_id)])
    world.sim.set_device_model_args(uuid, devargs.merge(OWN_ARGS, OLD))
    return uuid


def test_recover_of_an_apply_cut_after_the_stop_starts_the_vm_with_what_it_ran_with_and_says_so(world):
    """Undoing an apply-vm gives the VM back what it ran with, as the in-process rollback does, and says so:
    not "the previous configuration is kept" while the VM runs the registered one."""
    uuid = pending_restart(world)
    boots = world.sim.boots(uuid)
    kill_at(world, "apply", uuid, "stopped")
    (op,) = world.open_ops()
    assert (op.step, world.power(uuid)) == ("stopping", PowerState.HALTED)

    (outcome,) = recovery.recover(world.store, world.sim)
    assert (outcome.action, outcome.settled) == ("rolled-back", True)
    assert outcome.detail == ("the registered configuration had not been applied; the VM was started again with the "
                              "arguments it ran with before (pool=B;priority=2;vm_id=9), which differ from the "
                              "database: 'vgpu-admin apply-vm' applies it")
    assert world.sim.boots(uuid) == [*boots, devargs.merge(OWN_ARGS, RAN)]
    assert world.config(uuid) == OLD and world.open_ops() == []


def test_recover_of_an_apply_cut_before_the_stop_leaves_the_vm_as_it_was(world):
    uuid = pending_restart(world)
    before = world.host_picture(uuid)
    kill_at(world, "apply", uuid, "stopping")
    (outcome,) = recovery.recover(world.store, world.sim)
    assert (outcome.action, outcome.settled) == ("rolled-back", True)
    # Cut while stopping, with no stop recorded: it may or may not have been stopped; nothing is claimed.
    assert outcome.detail == ("the registered configuration had not been applied; the VM is running with the "
                              "arguments it ran with before; recover did not restart it")
    assert world.host_picture(uuid) == before  # still pending restart, as before the apply
    assert world.config(uuid) == OLD and world.open_ops() == []


def test_recover_of_an_apply_whose_registered_configuration_will_not_start_starts_what_the_vm_ran_with(world):
    uuid = pending_restart(world)
    boots = world.sim.boots(uuid)
    kill_at(world, "apply", uuid, "args-written")
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", uuid)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert (outcome.action, outcome.settled) == ("rolled-back", True)
    assert outcome.detail.startswith("the VM would not start with its registered configuration (")
    assert outcome.detail.endswith("); it was started again with the arguments it ran with before "
                                   "(pool=B;priority=2;vm_id=9), which differ from the database")
    assert world.sim.boots(uuid) == [*boots, devargs.merge(OWN_ARGS, RAN)]
    assert world.config(uuid) == OLD and world.open_ops() == [] and world.marks() == []


@pytest.mark.parametrize("ran_with", [{"config": None}, {"config": {"pool_id": "B", "priority": 2, "vm_id": 9}}])
def test_what_an_apply_ran_with_is_journalled_as_a_checked_segment(world, ran_with):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    booted = OWN_ARGS if ran_with["config"] is None else devargs.merge(OWN_ARGS, RAN)
    kept = journal.ran_with_of(booted)
    with world.store.writing() as conn:
        journal.begin(conn, uuid, "reconfigure", vms.select_vm(conn, uuid), OLD, True, ran_with=kept)
    (op,) = world.open_ops()
    assert op.ran_with == kept == journal.RanWith(None if ran_with["config"] is None else RAN)
    with world.store.writing() as conn:  # what the journal holds goes into QEMU's arguments: it is checked
        conn.execute("UPDATE vgpu_operations SET old = json_set(old, '$.ran_with.config', json(?))",
                     ('{"pool_id": "B -device evil", "priority": 2, "vm_id": 9}',))
    with pytest.raises(DamagedDatabase, match="pool_id 'B -device evil'"):
        world.open_ops()


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


# --- who owns an operation: claims, dead sessions, other hosts ------------------------------------------------


def cli_flags(world) -> list[str]:
    return ["--db", str(world.store.path), "--host", f"sim:{world.sim.path}"]


def test_a_second_recover_leaves_alone_an_operation_another_recover_has_claimed(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "db-updated", pool="B", priority="high")
    first = crashcli.Child(["recover", *cli_flags(world)], "claimed", "wait")
    try:
        assert first.wait_for("reached claimed"), first.stderr_seen
        before = world.tables(), world.host_picture(uuid), world.sim.boots(uuid)
        second = run_process(["recover", *cli_flags(world)])
        assert second.code == 0, second
        (line,) = second.out_lines
        assert line.startswith(f"reconfigure of VM {uuid} (stopped at step db-updated): skipped - "
                               f"being recovered by session {socket.gethostname()}:{first.process.pid} since ")
        assert (world.tables(), world.host_picture(uuid), world.sim.boots(uuid)) == before  # it did nothing
        with pytest.raises(Busy, match=f"is being recovered by session .*:{first.process.pid} since"):
            lifecycle.reconfigure_vm(world.store, world.sim, uuid, priority="low", confirm=lambda plan: True)
        code, out, err = first.finish()
    finally:
        first.kill()
    assert code == 0, err
    assert out.startswith(f"reconfigure of VM {uuid} (stopped at step db-updated): finished")
    assert world.sim.boots(uuid)[len(before[2]):] == [devargs.merge(OWN_ARGS, NEW)]  # booted once, with the new config
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


@pytest.fixture
def unrelated_process():
    """Starts a live process that has nothing to do with vgpu: the new owner of a reused PID."""
    started = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(["sleep", "600"]))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_an_operation_whose_pid_now_belongs_to_another_process_is_recovered(world, unrelated_process):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "db-updated", pool="B")
    unrelated_process = unrelated_process()  # started after the session died, as a process reusing its PID is
    with world.store.writing() as conn:  # the dead session's PID is reused (after a reboot, or by chance)
        conn.execute("UPDATE vgpu_operations SET owner = ?", (f"{socket.gethostname()}:{unrelated_process.pid}",))
    (op,) = world.open_ops()
    assert not op.owner_alive
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "finished"
    assert world.config(uuid) == config("B", 1, 4)
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_an_operation_whose_session_was_killed_and_not_reaped_yet_is_recovered(world):
    """A killed session whose parent has not reaped it (a zombie) is dead: its VM must not stay halted and
    locked while recover says the change is still in progress."""
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    child = crashkit.spawn(world.store.path, world.sim.path, "reconfigure", uuid, "stopped", "wait", pool="B")
    try:
        assert child.stdout.readline() == "reached\n"
        os.kill(child.pid, signal.SIGKILL)  # the OOM killer, or kill -9; the test (its parent) does not reap it yet
        crashkit.wait_until_zombie(child.pid)
        assert world.power(uuid) is PowerState.HALTED
        (op,) = world.open_ops()
        assert not op.owner_alive
        (outcome,) = recovery.recover(world.store, world.sim)
        assert (op.op_id, outcome.action) == (outcome.op_id, "rolled-back")
    finally:
        child.kill()
        child.communicate()
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_an_operation_from_before_a_reboot_is_recovered_though_its_pid_is_alive(world):
    uuid = world.add(4, "halted", OLD, OWN_ARGS)
    with world.store.writing() as conn:
        op = journal.begin(conn, uuid, "reconfigure", vms.select_vm(conn, uuid), NEW, False)
        # A live process of this machine has the PID now; the session ran in an earlier boot.
        hand_over(conn, op.op_id, attrs.evolve(other_live_session(), boot_id="00000000-0000-4000-8000-0000000b007"))
    (op,) = world.open_ops()
    assert op.liveness() == (sessions.Verdict.DEAD, f"{socket.gethostname()} has restarted since")
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert_recovered_and_unlocked(world, uuid, PowerState.HALTED)


def test_an_operation_of_a_session_on_another_host_is_taken_only_when_told(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "stopped", pool="B")
    elsewhere = sessions.Session("db-host-2.invalid", 4242, "00000000-0000-4000-8000-00000000e15e", "1234")
    (cut,) = world.open_ops()
    with world.store.writing() as conn:
        hand_over(conn, cut.op_id, elsewhere)
    (op,) = world.open_ops()
    with pytest.raises(Busy) as busy:
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, priority="low", confirm=lambda plan: True)
    assert str(busy.value) == (f"VM {uuid} is being reconfigured by another session since {op.started_at} (it ran on "
                               "another host (db-host-2.invalid); if that session is gone, 'vgpu-admin recover "
                               "--take-over' finishes or undoes its change)")

    refused = run_process(["recover", *cli_flags(world)])
    assert refused.code == 1, refused
    assert refused.out_lines == [
        f"reconfigure of VM {uuid} (stopped at step stopping): not-taken - session db-host-2.invalid:4242 started it "
        f"at {op.started_at} and it ran on another host (db-host-2.invalid), where this one cannot check it; if that "
        "session is gone, run 'vgpu-admin recover --take-over'"]
    assert world.power(uuid) is PowerState.HALTED and len(world.open_ops()) == 1  # nothing was done

    taken = run_process(["recover", "--take-over", *cli_flags(world)])
    assert taken.code == 0, taken
    assert taken.out_lines[0].startswith(f"reconfigure of VM {uuid} (stopped at step stopping): rolled-back")
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_an_operation_recorded_before_schema_2_whose_pid_runs_again_is_taken_only_when_told(world, unrelated_process):
    """A row of schema 1 (owner boot id and start time NULL since the migration) whose PID a live process has
    now (after a reboot, low PIDs are reused): its session cannot be told from that process. recover must not
    call it in progress and leave the VM halted and locked for good: it says so, exits 1, and --take-over
    takes it."""
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "stopped", pool="B")
    pid = unrelated_process().pid
    (cut,) = world.open_ops()
    with world.store.writing() as conn:
        hand_over(conn, cut.op_id, sessions.Session(socket.gethostname(), pid))
    (op,) = world.open_ops()
    why = (f"its session was recorded without a boot id and start time (as before schema 2), so vgpu-admin cannot "
           f"tell it from the process now running as PID {pid}")
    with pytest.raises(Busy) as busy:
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, priority="low", confirm=lambda plan: True)
    assert str(busy.value) == (f"VM {uuid} is being reconfigured by another session since {op.started_at} ({why}; if "
                               "that session is gone, 'vgpu-admin recover --take-over' finishes or undoes its change)")

    refused = run_process(["recover", *cli_flags(world)])
    assert refused.code == 1, refused
    assert refused.out_lines == [
        f"reconfigure of VM {uuid} (stopped at step stopping): not-taken - session {op.owner} started it at "
        f"{op.started_at} and {why}; if that session is gone, run 'vgpu-admin recover --take-over'"]
    assert world.power(uuid) is PowerState.HALTED and len(world.open_ops()) == 1  # nothing was done

    taken = run_process(["recover", "--take-over", *cli_flags(world)])
    assert taken.code == 0, taken
    assert taken.out_lines[0].startswith(f"reconfigure of VM {uuid} (stopped at step stopping): rolled-back")
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


@pytest.mark.parametrize("owner", ["another host", "schema 1"])
def test_an_operation_whose_session_cannot_be_checked_is_shown_as_needing_take_over_not_in_progress(world, unrelated_process,
                                                                                                     owner):
    """A change whose session vgpu-admin cannot check (another host's, or a schema-1 row whose PID runs again:
    after a reboot PID 1 always does) is neither in progress (it would be said so for good) nor one a plain
    recover takes: status, scan-vms and show-vm say the admin decides, and how (recover --take-over)."""
    from shell import render
    from vgpu import scan

    uuid = world.add(4, "halted", OLD, OWN_ARGS)
    session = (sessions.Session("db-host-2.invalid", 4242, "00000000-0000-4000-8000-00000000e15e", "1234")
               if owner == "another host" else sessions.Session(socket.gethostname(), unrelated_process().pid))
    with world.store.writing() as conn:
        op = journal.begin(conn, uuid, "reconfigure", vms.select_vm(conn, uuid), NEW, False)
        hand_over(conn, op.op_id, session)
    (op,) = world.open_ops()
    why = op.liveness()[1]
    report = scan.status(world.store, world.sim)
    (entry,) = report.unfinished
    assert (entry.in_progress, entry.session_unknown) == (False, why)
    assert (report.in_progress, report.needing_recovery, report.needing_take_over) == ([], [], [entry])
    caption = repr(report).splitlines()[0]
    assert "1 operation whose session cannot be checked (recover --take-over once it is gone)" in caption, caption
    assert "in progress" not in caption and "unfinished operation" not in caption, caption
    assert scan.inspect_vm(world.store, world.sim, uuid).operation == entry
    hint = "cannot tell whether its session is alive: if it is gone, run 'vgpu-admin recover --take-over'"
    (_, line) = render.unfinished_lines(report.unfinished)
    assert line == (f"Operations whose session cannot be checked: 1 (vm-4: reconfigure at step planned, since "
                    f"{op.started_at}, in session {op.owner}: {why}) - vgpu-admin {hint}")
    for command in ("status", "scan-vms"):
        shown = run_process([command, *cli_flags(world)])
        assert shown.code == 0 and shown.out_lines[-1] == line and "in progress" not in shown.out, shown
        assert json.loads(run_process([command, "--format=json", *cli_flags(world)]).out)["unfinished"][0]["session_unknown"] == why
    shown = run_process(["show-vm", "--vm-uuid", uuid, *cli_flags(world)])
    assert shown.code == 0 and "in progress" not in shown.out, shown
    assert shown.out_lines[-1] == (f"⚠ Unfinished operation: reconfigure at step planned, since {op.started_at}, in session "
                                   f"{op.owner} - vgpu-admin {hint} ({why})")
    as_json = json.loads(run_process(["show-vm", "--vm-uuid", uuid, "--format=json", *cli_flags(world)]).out)
    assert as_json["operation"]["session_unknown"] == why and as_json["operation"]["in_progress"] is False


def test_an_operation_of_a_container_on_this_machine_is_taken_only_when_told(world):
    """A session in a container shares this machine's boot id, but its PID is of its own PID namespace: a
    live container session must not be judged dead by our PID table and overtaken."""
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "stopped", pool="B")
    (cut,) = world.open_ops()
    in_container = sessions.Session("ct1", cut.session.pid, sessions.read_boot_id(), cut.session.started)  # its PID: ended here
    with world.store.writing() as conn:
        hand_over(conn, cut.op_id, in_container)
    (op,) = world.open_ops()
    before = world.tables(), world.host_picture(uuid)

    (refused,) = recovery.recover(world.store, world.sim)
    assert (refused.action, refused.settled) == ("not-taken", False)
    assert refused.detail == (f"session ct1:{cut.session.pid} started it at {op.started_at} and it ran on another host "
                              "(ct1: a container on this machine, or this machine under an earlier name), where this "
                              "one cannot check it; if that session is gone, run 'vgpu-admin recover --take-over'")
    assert (world.tables(), world.host_picture(uuid), world.open_ops()) == (*before, [op])  # nothing was done

    (taken,) = recovery.recover(world.store, world.sim, take_over=True)
    assert taken.action == "rolled-back"
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_recover_of_a_vm_that_boots_with_neither_configuration_resolves_it_and_says_what_to_do(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "db-updated", pool="B")
    world.sim.set_fault("start", "fail", uuid)
    recovered = run_process(["recover", *cli_flags(world)])
    assert recovered.code == 1, recovered  # resolved, but the VM needs the admin
    (line,) = recovered.out_lines
    cause = f"the host could not start the device emulator (QEMU) for VM {uuid}: Daemon exited unexpectedly"
    assert line == (f"reconfigure of VM {uuid} (stopped at step db-updated): rolled-back - the VM would not start with "
                    f"its new configuration ({cause}); the previous configuration is kept; ⚠ needs attention: the VM "
                    f"would not start again even with its previous configuration ({cause}): it is halted; fix that on "
                    "the host, then start it")
    assert world.open_ops() == [] and recovery.recover(world.store, world.sim) == []  # not locked, nothing to redo
    assert world.config(uuid) == OLD and world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert world.power(uuid) is PowerState.HALTED
    assert [(mark.vm_uuid, mark.kind) for mark in world.marks()] == [(uuid, "not-restarted")]


def test_a_vm_already_running_its_new_configuration_is_finished_without_another_restart(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "started", pool="B")
    boots = world.sim.boots(uuid)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert (outcome.action, outcome.detail) == ("finished", "the VM was already running with its new configuration; "
                                                            "it was not restarted")
    assert world.sim.boots(uuid) == boots
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)


def test_a_vm_started_by_hand_with_its_old_configuration_is_restarted_to_finish(world):
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    kill_at(world, "reconfigure", uuid, "db-updated", pool="B")
    world.sim.start(uuid)  # someone starts it meanwhile: with the old segment, which is still stored
    (outcome,) = recovery.recover(world.store, world.sim, policy=lifecycle.StopPolicy(clean_timeout=5))
    assert outcome.action == "finished"
    assert world.sim.boots(uuid)[-1] == devargs.merge(OWN_ARGS, config("B", 1, 4))  # it runs the new one now
    assert_recovered_and_unlocked(world, uuid, PowerState.RUNNING)

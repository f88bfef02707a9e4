"""Someone else (HA, an admin, another tool) starts the VM while a change has it stopped, on every backend
that runs over a simulated host: the change is not taken for a failed start of the new configuration.
What the VM booted with decides, as it does for recover(): the new configuration finishes the change with
no restart; another one is restarted into it; a boot the host cannot tell about finishes it as recover()
does, saying so. And a clean shutdown that ends early because the VM was started again is not worded
as a timeout."""

from __future__ import annotations

import threading
import time

import pytest

from vgpu import audit, devargs, journal, lifecycle
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState

from .hostkit import SIMULATED, running_vm_on
from .lifekit import Blind, World, config

OLD = config("A", 1, 4)
NEW = config("B", 1, 4)
OWN_ARGS = "-vnc 127.0.0.1:4"
QUICK = StopPolicy(clean_timeout=5, tick=0.05)
TELLS_BOOTED = {"sim", "xe", "xapi-dom0"}  # a remote XenAPI connection cannot say what a domain booted with


@pytest.fixture(params=SIMULATED)
def backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 4, OLD, OWN_ARGS) as found:
        yield found


def someone_starts_it_at(monkeypatch, step: str, start) -> None:
    """Another party starts the VM just before the change takes journal step ``step``."""
    original = journal.advance

    def advance(store, op, to, **recorded):
        if to == step:
            start()
        return original(store, op, to, **recorded)

    monkeypatch.setattr(journal, "advance", advance)


def to_pool_b(world, host, uuid, policy=QUICK):
    return lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", confirm=lambda plan: True, policy=policy)


def test_a_vm_someone_started_with_the_new_args_finishes_the_change_without_a_restart(backend, monkeypatch):
    under_test, world, uuid = backend
    booted_before = world.sim.boots(uuid)
    someone_starts_it_at(monkeypatch, journal.STARTING, lambda: world.sim.start(uuid))  # after our args write
    result = to_pool_b(world, under_test.host, uuid)
    assert (result.changed, result.restarted, result.running) == (True, True, True)
    assert result.started_by_other == ("new" if under_test.name in TELLS_BOOTED else "unknown")
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)
    assert world.power(uuid) is PowerState.RUNNING
    assert world.sim.boots(uuid) == [*booted_before, world.args(uuid)]  # the other party's start only: no restart
    assert world.open_ops() == [] and world.marks() == []


def test_a_vm_someone_started_with_the_old_args_is_restarted_into_the_change_where_the_host_tells(backend, monkeypatch):
    under_test, world, uuid = backend
    booted_before = world.sim.boots(uuid)
    someone_starts_it_at(monkeypatch, journal.WRITING_ARGS, lambda: world.sim.start(uuid))  # before our args write
    result = to_pool_b(world, under_test.host, uuid)
    assert (result.changed, result.restarted, result.running) == (True, True, True)
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)
    assert world.power(uuid) is PowerState.RUNNING
    assert world.open_ops() == [] and world.marks() == []
    old_args = devargs.merge(OWN_ARGS, OLD)
    if under_test.name in TELLS_BOOTED:  # recover's decision: it runs another configuration, restart it
        assert result.started_by_other == "other"
        assert world.sim.boots(uuid) == [*booted_before, old_args, world.args(uuid)]
    else:  # recover's decision: the host cannot tell, so nothing that may have reached the VM is undone
        assert result.started_by_other == "unknown"
        assert world.sim.boots(uuid) == [*booted_before, old_args]


def test_a_host_that_cannot_tell_what_the_vm_booted_with_finishes_the_change_and_says_so(tmp_path, store, monkeypatch):
    world = World.create(tmp_path, store)
    uuid = world.add(4, "running", OLD, OWN_ARGS, name="VM-4")
    booted_before = world.sim.boots(uuid)
    someone_starts_it_at(monkeypatch, journal.WRITING_ARGS, lambda: world.sim.start(uuid))
    result = to_pool_b(world, Blind(world.sim), uuid)
    assert result.started_by_other == "unknown" and result.restarted
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)
    assert world.sim.boots(uuid) == [*booted_before, devargs.merge(OWN_ARGS, OLD)]  # not restarted: recover would not either
    assert world.open_ops() == []


def _force_off_and_start_during_the_shutdown(sim, uuid) -> threading.Thread:
    """Another party, once our clean shutdown is under way on the host, forces the VM off and starts it."""
    other = sim.reopen()

    def act() -> None:
        deadline = time.monotonic() + 30
        while "clean_shutdown" not in (other.current_operations(uuid) or ()) and time.monotonic() < deadline:
            time.sleep(0.01)
        other.hard_shutdown(uuid)
        other.start(uuid)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_a_shutdown_cut_short_by_someone_restarting_the_vm_is_not_called_a_timeout(backend):
    under_test, world, uuid = backend
    world.sim.set_latency("clean_shutdown", 1.0)
    thread = _force_off_and_start_during_the_shutdown(world.sim, uuid)
    policy = StopPolicy(clean_timeout=60, tick=0.05)
    result = to_pool_b(world, under_test.host, uuid, policy)
    thread.join(30)
    assert "within 60s" not in result.stop_reason
    if result.stopped_how == "forced":  # xapi's task asks the guest again, and the restarted VM halts cleanly
        assert result.stop_reason.startswith(f"VM {uuid} was running again when its clean shutdown ended after ")
        assert "before the 60s deadline" in result.stop_reason
    stops = [entry.new for entry in audit.history(world.store, uuid) if entry.action == "stop"]
    assert stops == [{"stop": result.stopped_how, "reason": result.stop_reason} if result.stop_reason
                     else {"stop": result.stopped_how}]
    assert world.config(uuid) == NEW and world.power(uuid) is PowerState.RUNNING
    assert world.sim.boots(uuid)[-1] == world.args(uuid)
    assert world.open_ops() == []


def test_a_shutdown_that_runs_to_its_deadline_is_still_a_timeout(tmp_path, store):
    world = World.create(tmp_path, store)
    uuid = world.add(4, "running", OLD, OWN_ARGS)
    world.sim.set_fault("clean_shutdown", "ignore", uuid)
    result = to_pool_b(world, world.sim, uuid, StopPolicy(clean_timeout=0.2, tick=0.05))
    assert result.stop_reason == f"VM {uuid} did not shut down within 0.2s"


@pytest.mark.parametrize("step, said", [
    (journal.STARTING, "someone else started it meanwhile, with the new configuration, so it was not started again."),
    (journal.WRITING_ARGS, "someone else started it meanwhile with another configuration, so it was restarted with the new one."),
], ids=["new", "other"])
def test_the_shell_says_someone_else_started_it_and_never_that_the_start_failed(tmp_path, store, monkeypatch, step, said):
    from shell import render

    world = World.create(tmp_path, store)
    uuid = world.add(4, "running", OLD, OWN_ARGS, name="VM-4")
    someone_starts_it_at(monkeypatch, step, lambda: world.sim.start(uuid))
    text = render.reconfigured(to_pool_b(world, world.sim, uuid))
    assert text.endswith(f"\nThe VM was shut down cleanly and reconfigured; {said}")


def test_a_restart_after_someone_else_started_it_that_booted_without_the_change_says_so(tmp_path, store, monkeypatch):
    """Someone else started the VM with another configuration; the change restarts it into the new one, and
    the host drops the args key at that start: "restarted with the new one" would contradict the next line."""
    from shell import render

    world = World.create(tmp_path, store)
    uuid = world.add(4, "running", OLD, OWN_ARGS, name="VM-4")

    def someone_starts_it():
        world.sim.start(uuid)
        world.sim.set_fault("start", "drop_args", uuid)  # our restart then boots without the key

    someone_starts_it_at(monkeypatch, journal.WRITING_ARGS, someone_starts_it)
    result = to_pool_b(world, world.sim, uuid)
    assert result.started_by_other == "other" and result.booted == "other" and result.not_running_with_it
    text = render.reconfigured(result)
    assert "with the new one" not in text and "but it booted without the vgpu segment" in text, text
    with world.store.reading() as conn:
        (detail,) = conn.execute("SELECT outcome FROM vgpu_operations WHERE vm_uuid = ? ORDER BY op_id DESC LIMIT 1",
                                 (uuid,)).fetchone()
    assert "with the new one" not in detail and "booted without" in detail, detail

"""The confirmed reconfigure cycle, stop/start, and registering/removing with the segment, on a SimHost.

Each test states what the admin would check afterwards: the DB row, the VM's device-model args, its power
state, what QEMU was given at its last boot, the audit log and the journal (no VM left locked).
"""

from __future__ import annotations

import contextlib

import pytest

from .clikit import run_process

from vgpu import audit, devargs, journal, lifecycle, recovery, scan, vms
from vgpu.errors import (
    AlreadyRegistered,
    Busy,
    Cancelled,
    Conflict,
    HostUnreachable,
    HypervisorError,
    NotFound,
    NotRegistered,
    ReconfigureFailed,
    ShutDownSincePlan,
    StalePlan,
    StartedSincePlan,
)
from vgpu.hypervisor import codes
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState, Priority

from .lifekit import Blind, FailingProgress, Raising, Recorder, config, hand_over, vm_uuid

OLD = config("A", 1, 1)
NEW = config("B", 2, 1)
OWN_ARGS = "-vnc 127.0.0.1:1 -display none"
QUICK = StopPolicy(clean_timeout=0.05, tick=0.01)


@pytest.fixture
def running(world):
    return world.add(1, "running", OLD, OWN_ARGS)


@pytest.fixture
def halted(world):
    return world.add(2, "halted", config("A", 0, 2), OWN_ARGS)


def yes(plan):
    return True


def to_pool_b(world, uuid, **kwargs):
    kwargs.setdefault("confirm", yes)
    return lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", priority="high", **kwargs)


def assert_settled(world, uuid, expected, power):
    """DB and segment agree on ``expected``, the VM is ``power`` and nothing holds its lock."""
    assert world.config(uuid) == expected
    assert world.segment(uuid) == expected
    assert world.args(uuid) == devargs.merge(OWN_ARGS, expected)
    assert world.power(uuid) is power
    assert world.open_ops() == []


# --- the happy paths ----------------------------------------------------------------------------------------


def test_yes_on_a_running_vm_stops_updates_and_starts_it(world, running):
    asked = []
    result = to_pool_b(world, running, confirm=lambda plan: asked.append(plan) or True)

    (plan,) = asked
    assert plan.needs_restart and plan.power_state is PowerState.RUNNING
    assert plan.changes == {"pool_id": ("A", "B"), "priority": (Priority.MEDIUM, Priority.HIGH)}
    assert result.changed and result.restarted and result.stopped_how == "clean"
    assert result.old == OLD and result.vm.config == NEW
    assert_settled(world, running, NEW, PowerState.RUNNING)
    assert world.sim.boots(running)[-1] == f"{OWN_ARGS} {devargs.render(NEW)}"
    latest = audit.history(world.store, running)[0]
    assert latest.action == "update"
    assert latest.old["pool_id"] == "A" and latest.new == {"vm_id": 1, "vm_name": "vm-1", "pool_id": "B", "priority": 2}


def test_yes_on_a_halted_vm_changes_it_without_starting_it(world, halted):
    asked = []
    result = to_pool_b(world, halted, confirm=lambda plan: asked.append(plan) or True)
    assert not asked[0].needs_restart
    assert result.changed and not result.restarted and result.stopped_how is None
    assert_settled(world, halted, config("B", 2, 2), PowerState.HALTED)
    assert world.sim.boots(halted) == []


def test_a_change_to_the_same_values_asks_nothing_and_does_nothing(world, running):
    before = world.tables(), world.host_picture(running)
    asked = []
    result = lifecycle.reconfigure_vm(world.store, world.sim, running, pool="a", priority=1,
                                      confirm=lambda plan: asked.append(plan) or True)
    assert asked == []
    assert not result.changed and not result.restarted
    assert (world.tables(), world.host_picture(running)) == before


def test_new_vm_id_reaches_the_db_and_the_segment(world, running):
    lifecycle.reconfigure_vm(world.store, world.sim, running, vm_id=42, confirm=yes)
    assert_settled(world, running, config("A", 1, 42), PowerState.RUNNING)


def test_apply_plan_without_asking_for_notebooks(world, running):
    plan = lifecycle.plan_reconfigure(world.store, world.sim, running, priority="low")
    assert world.config(running) == OLD  # planning changes nothing
    result = lifecycle.apply_plan(world.store, world.sim, plan)
    assert result.changed
    assert_settled(world, running, config("A", 0, 1), PowerState.RUNNING)


# --- applying a pending configuration now --------------------------------------------------------------


@pytest.fixture
def pending(world):
    """A running VM registered (vm_id 16) after it booted: its QEMU runs without the segment."""
    uuid = world.add(5, "running", own_args=OWN_ARGS)
    lifecycle.register_vm(world.store, world.sim, uuid, vm_id=16)
    return uuid


def state_of(world, uuid, host=None):
    return scan.inspect_vm(world.store, host or world.sim, uuid).state


@pytest.mark.parametrize("how", ["apply_vm", "same values"])
def test_a_pending_vm_is_restarted_with_its_registered_configuration(world, pending, how):
    registered = config("A", 1, 16)
    audit_before = world.tables()["vgpu_audit"]
    asked = []
    confirm = lambda plan: asked.append(plan) or True  # noqa: E731
    if how == "apply_vm":
        result = lifecycle.apply_vm(world.store, world.sim, pending, confirm=confirm, policy=QUICK)
    else:  # a set-* with the values it already has: nothing to change in the DB, but the VM is not running them
        result = lifecycle.reconfigure_vm(world.store, world.sim, pending, vm_id=16, confirm=confirm, policy=QUICK)
    (plan,) = asked
    assert plan.changes == {} and plan.pending and plan.needs_restart and not plan.is_noop
    assert plan.booted == devargs.ABSENT and plan.new == registered
    assert result.changed and result.restarted and result.stopped_how == "clean"
    assert world.sim.boots(pending)[-1] == devargs.merge(OWN_ARGS, registered)  # QEMU got it at last
    assert_settled(world, pending, registered, PowerState.RUNNING)
    assert state_of(world, pending) == "configured"
    # The registration itself did not change: the audit log gained only the record of how the VM was stopped.
    added = world.tables()["vgpu_audit"][len(audit_before):]
    assert world.tables()["vgpu_audit"][:len(audit_before)] == audit_before
    assert [(row[2], row[3], row[5]) for row in added] == [("stop", pending, '{"stop":"clean"}')]
    with world.store.reading() as conn:
        assert conn.execute("SELECT kind, outcome FROM vgpu_operations ORDER BY op_id DESC LIMIT 1").fetchone() == (
            "reconfigure", "done")


def test_applying_a_vm_that_runs_its_configuration_asks_nothing_and_does_nothing(world, running, halted):
    for uuid in (running, halted):
        before = world.tables(), world.host_picture(uuid)
        result = lifecycle.apply_vm(world.store, world.sim, uuid, confirm=lambda plan: pytest.fail("asked"))
        assert not result.changed and not result.restarted
        assert (world.tables(), world.host_picture(uuid)) == before


def test_no_to_applying_a_pending_vm_leaves_it_running_as_it_was(world, pending):
    before = world.tables(), world.host_picture(pending)
    with pytest.raises(Cancelled):
        lifecycle.apply_vm(world.store, world.sim, pending, confirm=lambda plan: False)
    assert (world.tables(), world.host_picture(pending)) == before
    assert state_of(world, pending) == "pending"


def test_applying_to_a_halted_vm_with_drift_rewrites_its_args_without_starting_it(world, halted):
    world.sim.set_device_model_args(halted, OWN_ARGS)  # the segment lost
    asked = []
    result = lifecycle.apply_vm(world.store, world.sim, halted, confirm=lambda plan: asked.append(plan) or True)
    assert not asked[0].needs_restart and asked[0].stored == devargs.ABSENT
    assert result.changed and not result.restarted
    assert_settled(world, halted, config("A", 0, 2), PowerState.HALTED)
    assert world.sim.boots(halted) == []


def test_when_the_host_cannot_tell_apply_restarts_and_same_values_do_nothing(world, running):
    blind = Blind(world.sim)
    assert state_of(world, running, blind) == "unknown"
    unchanged = lifecycle.reconfigure_vm(world.store, blind, running, pool="A", confirm=lambda plan: pytest.fail("asked"))
    assert not unchanged.changed and unchanged.runs_unknown  # the caller can say: apply-vm restarts it
    boots = len(world.sim.boots(running))
    result = lifecycle.apply_vm(world.store, blind, running, confirm=yes, policy=QUICK)
    assert result.restarted and len(world.sim.boots(running)) == boots + 1
    assert_settled(world, running, OLD, PowerState.RUNNING)


def test_a_vm_that_will_not_start_with_what_is_applied_runs_again_with_what_it_ran_with(world, pending):
    world.sim.set_fault("start", "fail_if_args_contain:vm_id=16", pending)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.apply_vm(world.store, world.sim, pending, confirm=yes, policy=QUICK)
    assert caught.value.rolled_back
    assert str(caught.value).startswith(f"VM {pending} would not start with its registered configuration (")
    assert "started again with the arguments it ran with before" in str(caught.value)
    assert world.power(pending) is PowerState.RUNNING and world.open_ops() == []
    assert world.sim.boots(pending)[-1] == OWN_ARGS  # running as it was before the apply
    assert world.config(pending) == config("A", 1, 16)  # the registration stays ...
    assert state_of(world, pending) == "drift"  # ... and the args say what the VM runs: shown, not hidden


def test_apply_of_an_unregistered_vm_says_how_to_register_it(world):
    uuid = world.add(6, "running")
    with pytest.raises(NotRegistered):
        lifecycle.apply_vm(world.store, world.sim, uuid, confirm=yes)


# --- "no" and a failing confirmation --------------------------------------------------------------------


def _raises(plan):
    raise RuntimeError("widget closed")


@pytest.mark.parametrize("confirm", [lambda plan: False, lambda plan: None, lambda plan: "yes", lambda plan: 1, _raises],
                         ids=["false", "none", "truthy-string", "one", "raises"])
def test_anything_but_true_cancels_and_touches_nothing(world, running, confirm):
    before = world.tables(), world.host_picture(running)
    with pytest.raises(Cancelled) as caught:
        to_pool_b(world, running, confirm=confirm)
    assert "nothing was changed" in str(caught.value)
    assert (world.tables(), world.host_picture(running)) == before
    assert world.power(running) is PowerState.RUNNING
    assert journal.unfinished(world.store) == []
    with world.store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM vgpu_operations").fetchone()[0] == 0


def test_a_callback_that_cancels_itself_is_said_in_its_own_words(world, running):
    def cancels(plan):
        raise Cancelled("Cancelled: 'ok' is neither yes nor no; nothing was changed.")

    before = world.tables(), world.host_picture(running)
    with pytest.raises(Cancelled) as caught:
        to_pool_b(world, running, confirm=cancels)
    assert str(caught.value) == "Cancelled: 'ok' is neither yes nor no; nothing was changed."  # not "the confirmation failed"
    assert (world.tables(), world.host_picture(running)) == before


@pytest.mark.parametrize("state", ["paused", "suspended"])
def test_paused_or_suspended_vm_is_refused_with_a_clear_sentence(world, state):
    uuid = world.add(3, state, OLD)
    before = world.tables(), world.host_picture(uuid)
    asked = []
    with pytest.raises(HypervisorError) as caught:
        to_pool_b(world, uuid, confirm=lambda plan: asked.append(plan) or True)
    assert caught.value.code == codes.VM_BAD_POWER_STATE
    assert str(caught.value) == f"VM {uuid} is {state}; resume it or shut it down first, then try again"
    assert asked == []
    assert (world.tables(), world.host_picture(uuid)) == before


# --- stopping ----------------------------------------------------------------------------------------------


def test_a_guest_that_ignores_shutdown_is_forced_after_the_deadline(world, running):
    world.sim.set_fault("clean_shutdown", "ignore", running)
    progress = Recorder()
    result = to_pool_b(world, running, policy=QUICK, progress=progress)
    assert result.stopped_how == "forced"
    assert progress.steps == ["stopping", "forcing", "stopped", "updating", "starting", "started"]
    forcing = next(e for e in progress.events if e.step == "forcing")
    assert "did not shut down within 0.05s" in forcing.message
    assert_settled(world, running, NEW, PowerState.RUNNING)


def test_a_guest_without_pv_drivers_is_forced_at_once(world, running):
    world.sim.set_fault("clean_shutdown", "lacks_feature", running)
    progress = Recorder()
    result = to_pool_b(world, running, progress=progress)
    assert result.stopped_how == "forced"
    forcing = next(e for e in progress.events if e.step == "forcing")
    assert "cannot shut down cleanly" in forcing.message
    assert_settled(world, running, NEW, PowerState.RUNNING)


@pytest.mark.parametrize("fault, code", [("lacks_feature", codes.VM_LACKS_FEATURE), ("fail", codes.INTERNAL_ERROR)])
def test_without_force_a_refused_clean_stop_changes_nothing(world, running, fault, code):
    world.sim.set_fault("clean_shutdown", fault, running)
    before = world.tables(), world.host_picture(running)
    with pytest.raises(HypervisorError) as caught:
        to_pool_b(world, running, policy=StopPolicy(clean_timeout=0.05, force=False))
    assert caught.value.code == code
    assert str(caught.value).endswith("; nothing was changed")
    assert (world.tables(), world.host_picture(running)) == before
    assert world.open_ops() == [] and world.marks() == []
    world.sim.clear_faults()
    to_pool_b(world, running)  # not left locked
    assert_settled(world, running, NEW, PowerState.RUNNING)


@pytest.mark.parametrize("fault", ["lacks_feature", "ignore"])
def test_a_refused_or_unconfirmed_stop_without_force_reports_no_restoring(world, running, fault):
    # Nothing was changed, so nothing is restored: "Restoring the previous configuration" would say otherwise.
    world.sim.set_fault("clean_shutdown", fault, running)
    progress = Recorder()
    with pytest.raises(HypervisorError):
        to_pool_b(world, running, progress=progress, policy=StopPolicy(clean_timeout=0.05, tick=0.01, force=False))
    assert "rolling-back" not in progress.steps, progress.steps
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING


def test_stop_vm_on_a_halted_vm_says_already(world, halted):
    assert lifecycle.stop_vm(world.sim, halted) == lifecycle.StopOutcome("already")


def test_slow_stop_reports_progress_while_waiting(world, running):
    world.sim.set_latency("clean_shutdown", 0.2)
    progress = Recorder()
    assert lifecycle.stop_vm(world.sim, running, StopPolicy(clean_timeout=5, tick=0.02), progress).how == "clean"
    waiting = [e for e in progress.events if e.step == "stopping"]
    assert waiting[0].elapsed == 0.0
    assert [e.elapsed for e in waiting] == sorted(e.elapsed for e in waiting)
    assert progress.steps == ["stopping", "stopped"]
    assert world.power(running) is PowerState.HALTED


# --- a progress callback that fails -----------------------------------------------------------------------

CYCLE_STEPS = ["stopping", "stopped", "updating", "starting", "started"]


@pytest.mark.parametrize("step", [*CYCLE_STEPS, None], ids=[*CYCLE_STEPS, "every-step"])
def test_a_progress_callback_that_raises_does_not_derail_the_change(world, running, step):
    progress = FailingProgress(step)
    with pytest.warns(RuntimeWarning, match=r"the progress callback failed \(KeyError") as warned:
        result = to_pool_b(world, running, progress=progress)
    assert len(warned) == 1  # once per operation, however often it fails
    assert result.changed and result.restarted
    assert progress.steps == CYCLE_STEPS  # it was still told everything
    assert_settled(world, running, NEW, PowerState.RUNNING)
    lifecycle.reconfigure_vm(world.store, world.sim, running, priority="low", confirm=yes)  # not left locked
    assert_settled(world, running, config("B", 0, 1), PowerState.RUNNING)


def test_a_progress_callback_that_raises_does_not_stop_the_rollback(world, running):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", running)
    with pytest.warns(RuntimeWarning), pytest.raises(ReconfigureFailed) as caught:
        to_pool_b(world, running, progress=FailingProgress("rolling-back"))
    assert caught.value.rolled_back
    assert_settled(world, running, OLD, PowerState.RUNNING)


def test_recover_carries_on_past_a_progress_callback_that_raises(world, running):
    world.sim.set_fault("start", "fail", running)
    with pytest.raises(ReconfigureFailed):
        lifecycle.reconfigure_vm(world.store, Raising(world.sim, "start", HostUnreachable(codes.HOST_UNREACHABLE, "gone"), nth=2),
                                 running, pool="B", confirm=yes)
    world.sim.clear_faults()
    with pytest.warns(RuntimeWarning):
        (outcome,) = recovery.recover(world.store, world.sim, FailingProgress())
    assert outcome.action == "rolled-back"
    assert_settled(world, running, OLD, PowerState.RUNNING)


# --- an unexpected exception or an interrupt part way -------------------------------------------------------

# Where a running VM's cycle can be cut: (host method, its nth call for the VM). power_state is called by
# the plan, by the begin (before the lock is taken) and then by the stop; get_device_model_args by the plan
# (what the args say now), then by the write.
# The host calls the cycle makes once it holds the VM's lock: stop, write the args, start (what it needs to
# know of the VM it read when it took the lock: one describe_vm, the second of the cycle).
CUTS = [("clean_shutdown", 1), ("set_device_model_args", 1), ("start", 1)]
CUT_IDS = [method for method, _ in CUTS]


@pytest.mark.parametrize("method, nth", CUTS, ids=CUT_IDS)
def test_an_unexpected_exception_part_way_is_rolled_back_and_raised(world, running, method, nth):
    host = Raising(world.sim, method, RuntimeError("backend bug"), running, nth)
    with pytest.raises(RuntimeError, match="backend bug") as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="B", priority="high", confirm=yes)
    assert caught.value.__notes__ == [
        f"The change to VM {running} was rolled back: its previous configuration is in place and the VM is running."
    ]
    assert_settled(world, running, OLD, PowerState.RUNNING)  # unlocked, old row and args, running
    with world.store.reading() as conn:
        (outcome,) = conn.execute("SELECT outcome FROM vgpu_operations").fetchone()
    assert outcome == "rolled-back: RuntimeError: backend bug"
    to_pool_b(world, running)
    assert_settled(world, running, NEW, PowerState.RUNNING)


def test_an_unexpected_exception_whose_rollback_fails_too_is_left_to_recover(world, running):
    host = Raising(world.sim, "start", RuntimeError("backend bug"), running, every=True)
    with pytest.raises(RuntimeError) as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="B", confirm=yes)
    assert caught.value.__notes__[0] == f"Rolling back VM {running} also failed (backend bug)."
    assert "run 'vgpu-admin recover' to finish or undo it" in caught.value.__notes__[1]
    (op,) = world.open_ops()
    assert op.interrupted and not op.owner_alive and op.needs_recovery
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert_settled(world, running, OLD, PowerState.RUNNING)


def _interrupt_at(world, uuid, method, nth):
    """Ctrl-C as ``method`` is called for the nth time: the operation is left open, released for recover()."""
    host = Raising(world.sim, method, KeyboardInterrupt, uuid, nth)
    with pytest.raises(KeyboardInterrupt) as caught:
        lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", priority="high", confirm=yes)
    (op,) = world.open_ops()
    assert caught.value.__notes__ == [f"The reconfigure of VM {uuid} was interrupted at step {op.step}; "
                                      "run 'vgpu-admin recover' to finish or undo it."]
    assert op.interrupted and not op.owner_alive and op.needs_recovery
    return op


@pytest.mark.parametrize("method, nth", CUTS, ids=CUT_IDS)
def test_an_interrupt_part_way_leaves_the_change_to_recover_and_says_so(world, running, method, nth):
    op = _interrupt_at(world, running, method, nth)
    with pytest.raises(Busy) as caught:
        to_pool_b(world, running)
    assert caught.value.interrupted and caught.value.operation_id == op.op_id
    assert str(caught.value) == (f"VM {running} has an interrupted change (started {op.started_at}); "
                                 "run 'vgpu-admin recover' to finish or undo it")
    (outcome,) = recovery.recover(world.store, world.sim)  # this very process can resolve it
    assert outcome.action == ("finished" if op.db_updated else "rolled-back")
    assert world.agrees(running) and world.power(running) is PowerState.RUNNING and world.open_ops() == []


def test_an_interrupted_change_is_recovered_by_another_process_while_this_one_lives(world, running):
    op = _interrupt_at(world, running, "set_device_model_args", 1)
    recovered = run_process(["recover", "--db", str(world.store.path), "--host", f"sim:{world.sim.path}"])
    assert recovered.code == 0, recovered
    assert recovered.out.startswith(f"reconfigure of VM {running} (stopped at step {op.step}): finished")
    assert_settled(world, running, NEW, PowerState.RUNNING)


def test_an_interrupt_in_the_progress_callback_is_an_interrupt(world, running):
    def progress(event):
        if event.step == "starting":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        to_pool_b(world, running, progress=progress)
    (op,) = world.open_ops()
    assert op.interrupted and op.step == "starting"
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["finished"]
    assert_settled(world, running, NEW, PowerState.RUNNING)


@pytest.mark.parametrize("call", ["register", "remove", "repair"])
def test_an_interrupt_while_registering_removing_or_repairing_is_left_to_recover(world, running, call):
    host = Raising(world.sim, "set_device_model_args", KeyboardInterrupt)
    fresh = world.add(3, "halted")
    with pytest.raises(KeyboardInterrupt):
        if call == "register":
            lifecycle.register_vm(world.store, host, fresh)
        elif call == "remove":
            lifecycle.remove_vm(world.store, host, running)
        else:
            world.sim.set_device_model_args(running, OWN_ARGS)
            lifecycle.repair_vm(world.store, host, running)
    (op,) = world.open_ops()
    assert op.kind == call and op.interrupted
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["finished"]
    assert world.open_ops() == []
    if call == "remove":
        assert world.config(running) is None and world.args(running) == OWN_ARGS
    else:
        assert world.agrees(fresh if call == "register" else running)
    if call == "register":  # the registration recover finished stands: its one entry, written with its row
        assert [entry.action for entry in audit.history(world.store, fresh)] == ["register"]


# --- a VM that will not start with its new configuration --------------------------------------------------


def test_start_failure_rolls_back_to_the_old_row_and_args_and_starts_it(world, running):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", running)
    progress = Recorder()
    with pytest.raises(ReconfigureFailed) as caught:
        to_pool_b(world, running, progress=progress)
    failure = caught.value
    assert failure.rolled_back and failure.vm_uuid == running
    assert failure.cause.code == codes.FAILED_TO_START_EMULATOR
    assert "the previous configuration was restored and the VM started again" in str(failure)
    assert_settled(world, running, OLD, PowerState.RUNNING)
    assert world.sim.boots(running)[-1] == f"{OWN_ARGS} {devargs.render(OLD)}"
    assert [e.action for e in audit.history(world.store, running)][:2] == ["update", "update"]
    assert progress.steps[-4:] == ["starting", "rolling-back", "starting", "started"]
    world.sim.clear_faults()
    to_pool_b(world, running)
    assert_settled(world, running, NEW, PowerState.RUNNING)


def test_a_vm_that_will_not_start_even_with_its_old_configuration_is_resolved_and_marked(world, running):
    world.sim.set_fault("start", "fail", running)  # neither the new nor the old configuration boots
    with pytest.raises(ReconfigureFailed) as caught:
        to_pool_b(world, running)
    failure = caught.value
    assert failure.rolled_back and failure.restart_error.code == codes.FAILED_TO_START_EMULATOR
    assert str(failure) == (
        f"reconfiguring VM {running} failed ({failure.cause}); its previous configuration is in place, but the VM "
        f"would not start with it either ({failure.restart_error}): it is halted and marked as needing attention; "
        "fix the cause on the host, then start it")
    assert_settled(world, running, OLD, PowerState.HALTED)  # closed: not locked, nothing for recover to do
    assert recovery.recover(world.store, world.sim) == []
    (mark,) = world.marks()
    assert (mark.vm_uuid, mark.kind) == (running, "not-restarted")
    assert "would not start again with its previous configuration" in mark.reason

    world.sim.clear_faults()  # the admin fixes the host and starts the VM: the mark goes with the next look
    world.sim.start(running)
    assert scan.scan(world.store, world.sim).attention == ()
    assert world.marks() == []
    to_pool_b(world, running)
    assert_settled(world, running, NEW, PowerState.RUNNING)


def test_a_rollback_that_fails_on_a_reachable_host_says_so_and_recover_tells_what_happened(world, running):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", running)
    refusing = Raising(world.sim, "set_device_model_args",
                       HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: disk full"), nth=2)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, refusing, running, pool="B", priority="high", confirm=yes)
    assert not caught.value.rolled_back
    assert str(caught.value).endswith("rolling back also failed (the host failed with an internal error: disk full); "
                                      "the VM was stopped for the change and is halted; "
                                      "run 'vgpu-admin recover' once the cause is fixed")
    assert world.sim.power_state(running) is PowerState.HALTED  # as the sentence says
    (op,) = world.open_ops()
    assert op.interrupted and op.reverted and op.step == "stopping"  # the DB has its old values again
    with pytest.raises(Busy) as busy:
        to_pool_b(world, running)  # still locked until recovered
    assert "run 'vgpu-admin recover'" in str(busy.value)

    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert outcome.detail == ("the change had reached the database and was undone by the session that made it; "
                              "the previous configuration is kept and the VM was started again")
    assert_settled(world, running, OLD, PowerState.RUNNING)


def test_halted_vm_with_a_failing_args_write_keeps_its_old_row(world, halted):
    world.sim.set_fault("set_args", "fail", halted)
    before = world.host_picture(halted)
    with pytest.raises(ReconfigureFailed) as caught:
        to_pool_b(world, halted)
    assert caught.value.rolled_back
    assert caught.value.cause.code == codes.INTERNAL_ERROR
    assert world.host_picture(halted) == before
    assert_settled(world, halted, config("A", 0, 2), PowerState.HALTED)


def test_running_vm_with_a_failing_args_write_is_rolled_back_and_restarted(world, running):
    world.sim.set_fault("set_args", "fail", running)
    with pytest.raises(ReconfigureFailed) as caught:
        to_pool_b(world, running)
    assert caught.value.rolled_back
    assert_settled(world, running, OLD, PowerState.RUNNING)
    assert world.sim.boots(running)[-1] == f"{OWN_ARGS} {devargs.render(OLD)}"


# --- the host going away at each step ---------------------------------------------------------------------


class Outage:
    """The host behind ``sim`` becomes unreachable as the ``nth`` call of ``method`` is made."""

    def __init__(self, sim, method: str, nth: int = 1) -> None:
        self.sim, self.method, self.nth, self.calls = sim, method, nth, 0

    def __getattr__(self, name):
        real = getattr(self.sim, name)
        if name != self.method:
            return real

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self.nth:
                self.sim.set_fault("unreachable", "on")
            return real(*args, **kwargs)

        return call


# (method, nth call, whether an operation had begun when the host went away)
# Every host call of the cycle, in order: the plan's read, the read as the lock is taken (a VM the plan saw
# running and the cycle stops has its args read once it is stopped instead), then the changes.
RUNNING_STEPS = [("describe_vm", 1, False), ("clean_shutdown", 1, True), ("get_device_model_args", 1, True),
                 ("set_device_model_args", 1, True), ("start", 1, True)]
HALTED_STEPS = [("describe_vm", 1, False), ("describe_vm", 2, False), ("set_device_model_args", 1, True)]


@pytest.mark.parametrize("power, method, nth, begun",
                         [("running", *step) for step in RUNNING_STEPS] + [("halted", *step) for step in HALTED_STEPS])
def test_host_unreachable_at_each_step_then_recover(world, power, method, nth, begun):
    uuid = world.add(5, power, OLD, OWN_ARGS)
    before = world.tables()
    with pytest.raises((HostUnreachable, ReconfigureFailed)) as caught:
        lifecycle.reconfigure_vm(world.store, Outage(world.sim, method, nth), uuid, pool="B", priority="high", confirm=yes)
    error = caught.value
    cause = error.cause if isinstance(error, ReconfigureFailed) else error
    assert isinstance(cause, HostUnreachable)
    assert "cannot reach the host" in str(error)
    world.sim.clear_faults()
    if not begun:
        assert world.tables() == before
        assert world.open_ops() == []
    else:
        assert not error.rolled_back  # the host was gone for the rollback too
        assert len(world.open_ops()) == 1
        (outcome,) = recovery.recover(world.store, world.sim)
        assert outcome.action in ("finished", "rolled-back")
    assert world.agrees(uuid)
    assert world.power(uuid) is PowerState(power)
    assert world.open_ops() == []
    lifecycle.reconfigure_vm(world.store, world.sim, uuid, vm_id=9, confirm=yes)  # unlocked
    assert world.agrees(uuid) and world.power(uuid) is PowerState(power)


# --- locks, stale plans ------------------------------------------------------------------------------------


def _held_by_another_session(world, uuid):
    with world.store.writing() as conn:
        op = journal.begin(conn, uuid, "reconfigure", vms.select_vm(conn, uuid), NEW, True)
        hand_over(conn, op.op_id)
    return op


def test_a_vm_locked_by_another_live_session_is_busy(world, running):
    op = _held_by_another_session(world, running)
    before = world.tables(), world.host_picture(running)
    with pytest.raises(Busy) as caught:
        to_pool_b(world, running)
    assert str(caught.value) == f"VM {running} is being reconfigured by another session since {op.started_at}"
    assert caught.value.operation_id == op.op_id
    assert (world.tables(), world.host_picture(running)) == before
    with pytest.raises(Busy):
        lifecycle.remove_vm(world.store, world.sim, running)
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["skipped"]


def test_a_lock_left_by_a_dead_session_points_at_recover(world, running):
    with world.store.writing() as conn:
        op = journal.begin(conn, running, "reconfigure", vms.select_vm(conn, running), NEW, True)
        conn.execute("UPDATE vgpu_operations SET owner = ? WHERE op_id = ?", ("some-other-machine.invalid:x", op.op_id))
    with pytest.raises(Busy) as caught:
        to_pool_b(world, running)
    assert str(caught.value).startswith(f"VM {running} is being reconfigured by another session since {op.started_at}")


def test_a_plan_overtaken_by_another_change_is_refused(world, running):
    plan = lifecycle.plan_reconfigure(world.store, world.sim, running, pool="B")
    vms.db_update(world.store, running, priority="low")
    with pytest.raises(StalePlan) as caught:
        lifecycle.apply_plan(world.store, world.sim, plan)
    error = caught.value
    assert str(error) == f"VM vm-1 ({running}) was changed after this plan was made (priority is now low (0)); plan again"
    assert isinstance(error, Conflict) and error.vm_uuid == running
    assert (error.planned, error.current) == (config("A", 1, 1), config("A", 0, 1))
    assert world.config(running) == config("A", 0, 1)
    assert world.power(running) is PowerState.RUNNING
    assert world.open_ops() == []


def test_a_vm_id_taken_after_the_plan_is_refused_before_the_vm_is_stopped(world, running):
    plan = lifecycle.plan_reconfigure(world.store, world.sim, running, vm_id=50)
    other = world.add(2, "halted")
    vms.db_register(world.store, other, vm_id=50)  # another session took it while the plan waited for "yes"
    with pytest.raises(Conflict) as caught:
        lifecycle.apply_plan(world.store, world.sim, plan)
    assert str(caught.value) == f"vm_id 50 is already used by VM {other}"
    assert world.power(running) is PowerState.RUNNING
    assert [entry.action for entry in audit.history(world.store, running)] == ["register"]  # no stop, no restart
    assert world.config(running) == config("A", 1, 1) and world.open_ops() == []


def _changing_vm_id(world, uuid, new_vm_id, db_updated=False):
    """An unfinished change of ``uuid``'s vm_id (1, its old one) to ``new_vm_id``, held by another live session
    (``db_updated``: past the step that wrote the new one to the database): until it ends, or recover finishes
    or undoes it, either id may be the VM's."""
    new = config("A", 1, new_vm_id)
    with world.store.writing() as conn:
        op = journal.begin(conn, uuid, "reconfigure", vms.select_vm(conn, uuid), new, True)
        if db_updated:
            vms.update_record(conn, uuid, new)
            op = journal.set_step(conn, op, journal.DB_UPDATED)
        hand_over(conn, op.op_id)
    return op


@pytest.mark.parametrize(("claimed", "db_updated"), [(1, True), (50, False)], ids=["its-old-vm-id", "its-new-vm-id"])
def test_a_vm_id_an_unfinished_change_may_give_its_vm_is_refused_to_another_vm(world, running, claimed, db_updated):
    # Taken meanwhile, the old id left that change unable to roll back (and recover failing on it every time);
    # the new one, a second VM stopped and restarted for nothing once the first change wrote it.
    _changing_vm_id(world, running, 50, db_updated)
    other = world.add(2, "running", config("A", 1, 2))
    before = world.tables(), world.host_picture(other)
    with pytest.raises(Conflict) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, other, vm_id=claimed, confirm=lambda plan: True)
    assert str(caught.value) == f"vm_id {claimed} is already used by the unfinished change of VM vm-1 ({running})"
    assert (world.tables(), world.host_picture(other)) == before


def test_a_vm_id_claimed_after_the_confirmation_is_refused_before_the_vm_is_stopped(world, running):
    other = world.add(2, "running", config("A", 1, 2))

    def meanwhile_another_session_starts_moving_vm_1_to_50(plan):
        _changing_vm_id(world, running, 50)
        return True

    with pytest.raises(Conflict):
        lifecycle.reconfigure_vm(world.store, world.sim, other, vm_id=50, confirm=meanwhile_another_session_starts_moving_vm_1_to_50)
    assert world.power(other) is PowerState.RUNNING and world.config(other) == config("A", 1, 2)
    assert [entry.action for entry in audit.history(world.store, other)] == ["register"]  # no stop, no restart


def test_registering_skips_and_refuses_the_vm_ids_an_unfinished_change_may_give_its_vm(world, running):
    _changing_vm_id(world, running, 2)  # vm-1 may end with vm_id 1 or 2
    third, fourth = world.add(3, "halted"), world.add(4, "halted")
    assert lifecycle.register_vm(world.store, world.sim, third).vm.vm_id == 3
    with pytest.raises(Conflict) as caught:
        lifecycle.register_vm(world.store, world.sim, fourth, vm_id=2)
    assert str(caught.value) == f"vm_id 2 is already used by the unfinished change of VM vm-1 ({running})"
    assert [vm.vm_id for vm in vms.db_register_many(world.store, [{"vm_uuid": fourth}])] == [4]


def _while_waiting_for_the_database(world, monkeypatch, meanwhile):
    """Runs ``meanwhile`` when the change first asks for the database's write lock, as if another session
    held it for a while (a bulk job, a backup) and the host changed in that time."""
    original, waited = world.store.writing, []

    @contextlib.contextmanager
    def writing():
        if not waited:
            waited.append(True)
            meanwhile()
        with original() as conn:
            yield conn

    monkeypatch.setattr(world.store, "writing", writing)


def test_a_vm_shut_down_while_the_change_waited_for_the_database_is_not_started_again(world, running, monkeypatch):
    # The power state was read before the wait: the VM someone had just shut down was started again. It is
    # now the stop that finds it halted, and the change is refused (see test_power_meanwhile.py).
    _while_waiting_for_the_database(world, monkeypatch, lambda: world.sim.hard_shutdown(running))
    with pytest.raises(ShutDownSincePlan):
        to_pool_b(world, running)
    assert world.power(running) is PowerState.HALTED and world.config(running) == OLD
    assert world.open_ops() == []


def test_a_vm_started_while_the_change_waited_for_the_database_is_refused_and_left_running(world, monkeypatch):
    # The plan saw it halted ("no restart is needed") and that is what was confirmed: it is not stopped and
    # started again (see test_power_meanwhile.py).
    halted = world.add(2, "halted", OLD)
    _while_waiting_for_the_database(world, monkeypatch, lambda: world.sim.start(halted))
    with pytest.raises(StartedSincePlan):
        to_pool_b(world, halted)
    assert world.power(halted) is PowerState.RUNNING and world.config(halted) == OLD
    assert len(world.sim.boots(halted)) == 1 and world.open_ops() == []


def test_remove_does_not_say_a_vm_shut_down_while_it_waited_for_the_database_still_runs(world, running, monkeypatch):
    _while_waiting_for_the_database(world, monkeypatch, lambda: world.sim.hard_shutdown(running))
    result = lifecycle.remove_vm(world.store, world.sim, running)
    assert result.running_with is None and world.power(running) is PowerState.HALTED


def test_remove_says_what_a_vm_restarted_while_it_waited_for_the_database_runs_with(world, running, monkeypatch):
    def another_session_moves_it_to_pool_b():
        world.sim.hard_shutdown(running)
        world.sim.set_device_model_args(running, devargs.merge(OWN_ARGS, NEW))
        world.sim.start(running)

    _while_waiting_for_the_database(world, monkeypatch, another_session_moves_it_to_pool_b)
    assert lifecycle.remove_vm(world.store, world.sim, running).running_with == NEW


def test_a_plan_for_a_vm_removed_meanwhile_is_refused(world, running):
    plan = lifecycle.plan_reconfigure(world.store, world.sim, running, pool="B")
    vms.db_remove(world.store, running)
    with pytest.raises(NotFound):
        lifecycle.apply_plan(world.store, world.sim, plan)
    assert world.power(running) is PowerState.RUNNING
    assert world.open_ops() == []


# --- register and remove ----------------------------------------------------------------------------------


def test_register_writes_the_segment_and_takes_the_host_name(world):
    uuid = vm_uuid(7)
    world.sim.add_vm(uuid, "render node 7", "running", OWN_ARGS)
    result = lifecycle.register_vm(world.store, world.sim, uuid.upper(), pool="b", priority="high")
    assert result.vm.vm_name == "render node 7"
    assert result.vm.config == config("B", 2, 1)
    assert result.applies_at_next_boot
    assert world.args(uuid) == f"{OWN_ARGS} {devargs.render(result.vm.config)}"
    assert world.power(uuid) is PowerState.RUNNING and world.sim.boots(uuid) == [OWN_ARGS]  # not restarted: still the boot it had
    assert world.open_ops() == []


def test_register_a_second_vm_of_the_same_name_returns_both(world):
    first = world.add(1, "running", config("A", 2, 1), name="VM-1")
    second = vm_uuid(8)
    world.sim.add_vm(second, "VM-1", "halted", "")  # the host's name is recorded: the same name
    result = lifecycle.register_vm(world.store, world.sim, second)
    shared = result.shared_name
    assert (shared.name, [vm.vm_uuid for vm in shared.vms]) == ("VM-1", [first, second])
    assert str(shared) == (f"2 VMs are named VM-1: {first} (Pool A, VM ID 1), {second} (Pool A, VM ID 2); "
                           "commands tell them apart by UUID")
    other = vm_uuid(9)
    world.sim.add_vm(other, "VM-9", "halted", "")
    assert lifecycle.register_vm(world.store, world.sim, other).shared_name is None


def test_register_a_vm_named_like_another_vms_uuid_says_whose(world):
    """A name is for display, but every command takes UUIDs: a VM named like another's UUID, copied from a
    list into a command, acts on the other VM. Accepted (the host may name it so), and said."""
    registered = world.add(1, "running", config("A", 2, 1), name="VM-1")
    on_host = vm_uuid(8)
    world.sim.add_vm(on_host, "VM-8", "halted", "")
    for number, name, other, other_name in ((9, registered.upper(), registered, "VM-1"), (10, f" {on_host} ", on_host, "VM-8")):
        uuid = vm_uuid(number)
        world.sim.add_vm(uuid, name, "halted", "")  # the host's name, taken as it is
        result = lifecycle.register_vm(world.store, world.sim, uuid)
        like = result.named_like_uuid
        assert (like.vm.vm_uuid, like.other_uuid, like.other_name) == (uuid, other, other_name)
        assert str(like) == (f"VM {uuid} is named like {other_name}'s UUID {other}: commands take UUIDs, so this "
                             f"name copied where a UUID goes means {other_name}, not this VM")
        assert result.vm.vm_name == name.strip()


def test_register_a_vm_named_like_an_unnamed_vms_uuid_says_so_without_a_name(world):
    unnamed, uuid = vm_uuid(8), vm_uuid(9)
    world.sim.add_vm(unnamed, "", "halted", "")
    world.sim.add_vm(uuid, "VM-9", "halted", "")
    like = lifecycle.register_vm(world.store, world.sim, uuid, vm_name=unnamed).named_like_uuid
    assert str(like) == (f"VM {uuid} is named like another VM's UUID {unnamed}: commands take UUIDs, so this name "
                         "copied where a UUID goes means that VM, not this VM")


def test_register_a_vm_named_its_own_uuid_or_no_ones_warns_of_nothing(world):
    own, stranger = vm_uuid(8), vm_uuid(9)
    world.sim.add_vm(own, own, "halted", "")
    assert lifecycle.register_vm(world.store, world.sim, own).named_like_uuid is None
    world.sim.add_vm(vm_uuid(10), "VM-10", "halted", "")
    assert lifecycle.register_vm(world.store, world.sim, vm_uuid(10), vm_name=stranger).named_like_uuid is None


def test_register_never_puts_the_name_into_the_args(world):
    uuid = vm_uuid(8)
    world.sim.add_vm(uuid, "host-name", "halted", "")
    result = lifecycle.register_vm(world.store, world.sim, uuid, vm_name="pool=B;priority=2 secret-name", vm_id=5)
    assert result.vm.vm_name == "pool=B;priority=2 secret-name"
    assert not result.applies_at_next_boot
    assert world.args(uuid) == devargs.render(config("A", 1, 5))
    assert "secret-name" not in world.args(uuid)


def test_register_a_vm_the_host_does_not_have_changes_nothing(world):
    before = world.tables()
    with pytest.raises(NotFound) as caught:
        lifecycle.register_vm(world.store, world.sim, vm_uuid(99))
    assert "the host has no such VM" in str(caught.value)
    assert world.tables() == before
    assert world.open_ops() == []


def test_register_twice_is_already_registered(world, running):
    before = world.tables(), world.args(running)
    with pytest.raises(AlreadyRegistered):
        lifecycle.register_vm(world.store, world.sim, running, pool="B")
    assert (world.tables(), world.args(running)) == before
    assert world.open_ops() == []


def test_register_undoes_the_row_when_the_segment_cannot_be_written(world):
    uuid = vm_uuid(9)
    world.sim.add_vm(uuid, "vm-9", "running", OWN_ARGS)
    world.sim.set_fault("set_args", "fail", uuid)
    with pytest.raises(HypervisorError) as caught:
        lifecycle.register_vm(world.store, world.sim, uuid)
    assert str(caught.value).endswith("; the VM was not registered")
    assert vms.find(world.store, uuid) is None
    assert world.args(uuid) == OWN_ARGS
    assert world.open_ops() == []
    assert audit.history(world.store, uuid) == []  # never registered: not a register and a remove
    world.sim.clear_faults()
    lifecycle.register_vm(world.store, world.sim, uuid)
    assert world.agrees(uuid)
    assert [entry.action for entry in audit.history(world.store, uuid)] == ["register"]


def test_remove_clears_the_segment_and_keeps_the_admins_args(world, running):
    removed = lifecycle.remove_vm(world.store, world.sim, running)
    assert removed.vm.config == OLD and removed.segment_cleared
    assert vms.find(world.store, running) is None
    assert world.args(running) == OWN_ARGS
    assert world.power(running) is PowerState.RUNNING
    assert audit.history(world.store, running)[0].action == "remove"
    assert world.open_ops() == []


def test_remove_a_vm_the_host_no_longer_has(world, running):
    world.sim.remove_vm(running)
    assert lifecycle.remove_vm(world.store, world.sim, running).segment_cleared is False
    assert vms.find(world.store, running) is None
    assert world.open_ops() == []


def test_remove_with_the_host_down_keeps_the_registration(world, running):
    world.sim.set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable) as caught:
        lifecycle.remove_vm(world.store, world.sim, running)
    assert str(caught.value).endswith("; the VM is still registered")
    world.sim.clear_faults()
    assert world.config(running) == OLD and world.agrees(running)
    assert world.open_ops() == []


def test_remove_an_unregistered_vm_is_not_found(world):
    with pytest.raises(NotFound):
        lifecycle.remove_vm(world.store, world.sim, vm_uuid(42))


# --- a UUID that is not registered ------------------------------------------------------------------------


def _change(world, uuid):
    return lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=yes)


def _remove(world, uuid):
    return lifecycle.remove_vm(world.store, world.sim, uuid)


def test_a_vm_on_the_host_but_not_registered_says_how_to_register_it(world, running):
    uuid = world.add(5, "running", None, OWN_ARGS, name="render box")
    before = world.tables(), world.args(uuid)
    with pytest.raises(NotRegistered) as caught:
        _change(world, uuid.upper())
    error = caught.value
    assert isinstance(error, NotFound) and (error.kind, error.key, error.vm_name) == ("registered VM", uuid, "render box")
    assert str(error) == (f"VM render box ({uuid}) is on the host but not registered; "
                          f"register it first with 'vgpu-admin register-vm --vm-uuid={uuid}'")
    assert (world.tables(), world.args(uuid)) == before
    assert world.open_ops() == []


def test_removing_a_vm_that_is_not_registered_says_there_is_nothing_to_remove(world, running):
    uuid = world.add(5, "running", None, OWN_ARGS, name="render box")
    before = world.tables(), world.args(uuid)
    with pytest.raises(NotRegistered) as caught:
        _remove(world, uuid.upper())
    assert str(caught.value) == f"VM render box ({uuid}) is on the host but not registered; there is nothing to remove"
    assert "register it first" not in str(caught.value)
    assert (world.tables(), world.args(uuid)) == before
    assert world.open_ops() == []


def test_removing_an_unregistered_vm_that_carries_a_segment_points_to_repair(world, running):
    uuid = world.add(5, "running", None, f"{OWN_ARGS} {devargs.render(config('B', 2, 9))}", name="clone")
    with pytest.raises(NotRegistered) as caught:
        _remove(world, uuid)
    assert str(caught.value) == (f"VM clone ({uuid}) is on the host but not registered; there is nothing to remove "
                                 f"(to clear the vgpu segment it carries, run 'vgpu-admin repair-vm --vm-uuid={uuid}')")


@pytest.mark.parametrize("command", [_change, _remove], ids=["reconfigure", "remove"])
def test_a_uuid_neither_registered_nor_on_the_host_says_so(world, running, command):
    with pytest.raises(NotFound) as caught:
        command(world, vm_uuid(42))
    assert not isinstance(caught.value, NotRegistered)
    assert str(caught.value) == (f"registered VM {vm_uuid(42)} not found; the host has no VM with this UUID "
                                 "either (see 'vgpu-admin scan-vms')")


def test_an_unregistered_vm_with_the_host_down_gets_the_databases_answer(world, running):
    uuid = world.add(5, "running", None, OWN_ARGS)
    world.sim.set_fault("unreachable", "on")
    with pytest.raises(NotFound) as caught:
        _change(world, uuid)
    assert not isinstance(caught.value, NotRegistered)
    assert str(caught.value).startswith(f"registered VM {uuid} not found; if the host has this VM, register it")


def test_repair_a_uuid_neither_registered_nor_on_the_host_is_not_found(world, running):
    before = world.tables()
    with pytest.raises(NotFound) as caught:
        lifecycle.repair_vm(world.store, world.sim, vm_uuid(42))
    assert (caught.value.kind, caught.value.key) == ("VM", vm_uuid(42))
    assert str(caught.value) == f"VM {vm_uuid(42)} not found; it is neither registered nor on the host (see 'vgpu-admin scan-vms')"
    assert world.tables() == before and journal.unfinished(world.store) == []


def test_repair_a_registered_vm_the_host_lost_is_not_found_and_journals_nothing(world, running):
    world.sim.remove_vm(running)
    with world.store.reading() as conn:
        journalled = conn.execute("SELECT COUNT(*) FROM vgpu_operations").fetchone()[0]
    with pytest.raises(NotFound) as caught:
        lifecycle.repair_vm(world.store, world.sim, running)
    assert f"'vgpu-admin remove-vm --vm-uuid={running}' unregisters it" in str(caught.value)
    with world.store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM vgpu_operations").fetchone()[0] == journalled
    assert world.config(running) == OLD

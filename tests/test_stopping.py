"""Stop means stopped: every way a clean shutdown can fail falls back to a forced stop when the policy
allows it, on every backend that runs over a simulated host (the faults reach xe and XenAPI through their
own wire formats); the result and the audit log say which path was taken. When forcing is not allowed, a
request the host accepted is not reported as "nothing was changed": the VM is marked as needing attention
until it is seen halted or running again."""

from __future__ import annotations

import pytest

from vgpu import audit, devargs, lifecycle, scan
from vgpu.errors import HypervisorError
from vgpu.hypervisor import codes
from vgpu.lifecycle import ShutdownNotConfirmed, StopPolicy
from vgpu.models import PowerState

from .clikit import SpecHost
from .hostkit import SIMULATED, running_vm_on
from .lifekit import Raising, Recorder, World, config

OLD = config("A", 1, 3)
NEW = config("B", 1, 3)
OWN_ARGS = "-vnc 127.0.0.1:3"
QUICK = StopPolicy(clean_timeout=0.3, tick=0.05)
NO_FORCE = StopPolicy(clean_timeout=0.3, force=False, tick=0.05)
# Only a guest that ignores the request needs our deadline to pass. Every other answer comes at once, but over
# xe the deadline also bounds the vm-shutdown process, which a loaded machine can take longer than 0.3 s to
# start: those cases get a deadline they never come near, so they test the answer, not the machine's speed.
PATIENT = StopPolicy(clean_timeout=60, tick=0.05)
PATIENT_NO_FORCE = StopPolicy(clean_timeout=60, force=False, tick=0.05)


def policy_for(fault: str | None, force: bool = True) -> StopPolicy:
    if fault == "ignore":
        return QUICK if force else NO_FORCE
    return PATIENT if force else PATIENT_NO_FORCE

# Fault → what the host answers. "delivered": the request reached the guest, so it may still halt later.
FAILURES = {
    "fail": (codes.INTERNAL_ERROR, False),  # the host refuses
    "lacks_feature": (codes.VM_LACKS_FEATURE, False),  # no PV drivers
    "not_acknowledged": (codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, True),
    "shutdown_timeout": (codes.VM_SHUTDOWN_TIMEOUT, True),  # the host's own deadline
    "ignore": (codes.OPERATION_TIMED_OUT, True),  # the guest ignores ACPI: our deadline
}


@pytest.fixture(params=SIMULATED)
def backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 3, OLD, OWN_ARGS) as found:
        yield found


def stops(world, uuid) -> list[dict]:
    return [entry.new for entry in audit.history(world.store, uuid) if entry.action == "stop"]


@pytest.mark.parametrize("fault", sorted(FAILURES))
def test_any_failed_clean_shutdown_is_forced_and_the_result_and_audit_say_why(backend, fault):
    under_test, world, uuid = backend
    world.sim.set_fault("clean_shutdown", fault, uuid)
    result = lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=policy_for(fault))
    assert (result.changed, result.restarted, result.stopped_how) == (True, True, "forced")
    assert result.stop_reason  # the clean shutdown's failure, or its deadline
    assert stops(world, uuid) == [{"stop": "forced", "reason": result.stop_reason}]
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)
    assert world.power(uuid) is PowerState.RUNNING
    assert world.sim.boots(uuid)[-1] == world.args(uuid)  # it really booted with the new configuration
    assert world.open_ops() == [] and world.marks() == []


def test_a_vm_that_halted_though_its_clean_shutdown_failed_is_not_called_forced_off(backend):
    under_test, world, uuid = backend
    world.sim.set_fault("clean_shutdown", "halted_but_failed", uuid)  # halts, then reports INTERNAL_ERROR
    progress = Recorder()
    result = lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True,
                                      policy=PATIENT, progress=progress)
    assert (result.changed, result.restarted, result.stopped_how) == (True, True, "halted")
    assert result.stop_reason.startswith("the clean shutdown failed: ")
    assert stops(world, uuid) == [{"stop": "halted", "reason": result.stop_reason}]
    assert not any("forced off" in event.message for event in progress.events)
    assert world.config(uuid) == NEW and world.power(uuid) is PowerState.RUNNING


def test_without_force_a_vm_that_halted_though_its_clean_shutdown_failed_is_audited_and_started_again(backend):
    under_test, world, uuid = backend
    world.sim.set_fault("clean_shutdown", "halted_but_failed", uuid)  # halts, then reports INTERNAL_ERROR
    boots = len(world.sim.boots(uuid))
    progress = Recorder()
    with pytest.raises(HypervisorError) as caught:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True,
                                 policy=PATIENT_NO_FORCE, progress=progress)
    assert caught.value.code == codes.INTERNAL_ERROR and caught.value.vm_restarted
    # a remote XenAPI connection cannot see what the VM booted with, and says so (test_booted_after_start)
    unknown = " (the host cannot tell what it booted with)" if under_test.name == "xapi" else ""
    assert str(caught.value).endswith(f"; its configuration was not changed and the VM was started again{unknown}")
    assert caught.value.vm_booted == ("unknown" if unknown else "new")
    (stop,) = stops(world, uuid)
    assert stop["stop"] == "halted" and stop["reason"].startswith("the clean shutdown failed: "), stop
    assert "rolling-back" not in progress.steps  # nothing was put back: the VM was only started again
    assert "starting" in progress.steps
    assert world.config(uuid) == OLD and world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert world.power(uuid) is PowerState.RUNNING and len(world.sim.boots(uuid)) == boots + 1
    assert world.open_ops() == [] and world.marks() == []


def test_the_shell_and_history_say_the_vm_halted_not_that_it_was_forced_off(tmp_path):
    spec = SpecHost(tmp_path)
    uuid = spec.uuid("VM-2")
    spec.sim.set_fault("clean_shutdown", "halted_but_failed", uuid)
    outcome = spec.cli("set-pool", f"--vm-uuid={uuid}", "--pool=B", stdin="yes\n")
    assert outcome.code == 0, outcome
    assert not any("forced off" in line for line in outcome.out_lines + outcome.err_lines), outcome
    assert outcome.out_lines[-1].startswith("The VM was found halted after its clean shutdown failed (the clean "
                                            "shutdown failed: "), outcome.out_lines[-1]
    history = spec.cli("history", f"--vm-uuid={uuid}").out_lines
    (stop,) = [line for line in history if " | stop | " in line]
    assert " | found halted after its clean shutdown failed (the clean shutdown failed: " in stop, stop


def test_a_clean_stop_is_audited_as_clean(backend):
    under_test, world, uuid = backend
    result = lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=PATIENT)
    assert (result.stopped_how, result.stop_reason) == ("clean", "")
    assert stops(world, uuid) == [{"stop": "clean"}]


@pytest.mark.parametrize("fault", sorted(name for name, (_, delivered) in FAILURES.items() if not delivered))
def test_without_force_a_refused_shutdown_changes_nothing(backend, fault):
    under_test, world, uuid = backend
    world.sim.set_fault("clean_shutdown", fault, uuid)
    before = world.tables(), world.host_picture(uuid)
    with pytest.raises(HypervisorError) as caught:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=policy_for(fault, force=False))
    assert caught.value.code == FAILURES[fault][0]
    assert str(caught.value).endswith("; nothing was changed")
    assert (world.tables(), world.host_picture(uuid)) == before
    assert world.open_ops() == [] and world.marks() == []


@pytest.mark.parametrize("fault", sorted(name for name, (_, delivered) in FAILURES.items() if delivered))
def test_without_force_a_delivered_shutdown_is_not_nothing_and_marks_the_vm(backend, fault):
    under_test, world, uuid = backend
    world.sim.set_fault("clean_shutdown", fault, uuid)
    with pytest.raises(ShutdownNotConfirmed) as caught:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=policy_for(fault, force=False))
    message = str(caught.value)
    assert "nothing was changed" not in message
    assert "forcing it off is not allowed (force_after_timeout = false)" in message
    assert message.endswith("; the shutdown request was delivered, so the VM may still halt by itself. Its configuration "
                            "was not changed, and it is marked as needing attention until it is seen halted or running again")
    assert world.config(uuid) == OLD and world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert world.power(uuid) is PowerState.RUNNING
    assert world.open_ops() == []  # not locked: the admin may try again, with forcing this time
    (mark,) = world.marks()
    assert (mark.vm_uuid, mark.kind) == (uuid, "shutdown-unconfirmed")
    assert stops(world, uuid) == [{"stop": "requested", "reason": message.split("; the shutdown request")[0]}]


def test_an_unconfirmed_shutdown_shows_until_the_vm_is_seen_halted(tmp_path, store):
    world = World.create(tmp_path, store)
    uuid = world.add(3, "running", OLD, OWN_ARGS, name="VM-3")
    world.sim.set_latency("clean_shutdown", 3600)  # the guest takes its time: the host is still shutting it down
    with pytest.raises(ShutdownNotConfirmed):
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=lambda plan: True, policy=NO_FORCE)
    for _ in range(2):  # seen running, with the shutdown still under way on the host: it stays
        (mark,) = scan.scan(world.store, world.sim).attention
        assert mark.vm_uuid == uuid
        assert scan.inspect_vm(world.store, world.sim, uuid).attention == mark
    world.sim.hard_shutdown(uuid)  # it halts (here: the admin forces it off by hand)
    assert scan.status(world.store, world.sim).attention == ()
    assert world.marks() == []


def test_an_unconfirmed_shutdown_the_guest_dropped_ends_when_the_vm_is_seen_running_with_nothing_under_way(tmp_path, store):
    world = World.create(tmp_path, store)
    uuid = world.add(3, "running", OLD, OWN_ARGS)
    world.sim.set_fault("clean_shutdown", "ignore", uuid)
    with pytest.raises(ShutdownNotConfirmed):
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=lambda plan: True, policy=NO_FORCE)
    assert len(world.marks()) == 1
    assert scan.inspect_vm(world.store, world.sim, uuid).attention is None  # running, and the host has nothing under way
    assert world.marks() == []


def test_a_change_that_then_succeeds_clears_the_mark(tmp_path, store):
    world = World.create(tmp_path, store)
    uuid = world.add(3, "running", OLD, OWN_ARGS)
    world.sim.set_latency("clean_shutdown", 3600)
    with pytest.raises(ShutdownNotConfirmed):
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=lambda plan: True, policy=NO_FORCE)
    world.sim.set_latency("clean_shutdown", 0)
    lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=lambda plan: True, policy=QUICK)
    assert world.marks() == []


@pytest.mark.parametrize("force", [True, False])
def test_a_domain_undefined_after_its_shutdown_was_requested_is_not_nothing_and_marks_the_vm(tmp_path, store, force):
    """libvirt: a domain undefined (``virsh undefine``) while a change waits for its clean shutdown runs on
    as a transient domain, and the power button was pressed: when the guest acts on it, libvirt deletes the
    domain. The backend stops asking (see test_libvirt_xml); the change must say the request was delivered
    and what halting will do, and mark the VM, never "nothing was changed"."""
    world = World.create(tmp_path, store)
    uuid = world.add(3, "running", OLD, OWN_ARGS)
    undefined = codes.host_error(codes.VM_UNDEFINED_DURING_SHUTDOWN, [uuid], uuid)
    host = Raising(world.sim, "clean_shutdown", undefined, every=True)
    with pytest.raises(HypervisorError) as caught:
        lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", confirm=lambda plan: True,
                                 policy=StopPolicy(clean_timeout=0.3, force=force, tick=0.05))
    message = str(caught.value)
    assert "nothing was changed" not in message
    assert "the shutdown request was delivered, so the VM may still halt by itself" in message
    assert "it will vanish when it halts unless it is defined again (virsh define)" in message
    assert world.config(uuid) == OLD and world.args(uuid) == devargs.merge(OWN_ARGS, OLD)
    assert world.power(uuid) is PowerState.RUNNING  # never forced: forcing a transient domain deletes it
    assert world.open_ops() == []
    (mark,) = world.marks()
    assert (mark.vm_uuid, mark.kind) == (uuid, "shutdown-unconfirmed")
    assert "virsh define" in mark.reason
    # The history says the stop was asked for, as for any request not seen through.
    assert stops(world, uuid) == [{"stop": "requested", "reason": message.split("; the shutdown request")[0]}]

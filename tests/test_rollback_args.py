"""A rollback gives the VM's device-model args back only where the change wrote them, and then exactly as
the host held them before that write: never the database's segment rendered again over an admin's edit, nor
a write at all when the change failed before writing. recover() undoes by the same rule, from what the
journal recorded of the args before the write."""

from __future__ import annotations

import pytest

from vgpu import attention, devargs, lifecycle, recovery
from vgpu.errors import HypervisorError, ReconfigureFailed
from vgpu.hypervisor import codes
from vgpu.models import PowerState

from .lifekit import Raising, Recorder, config

OLD = config("B", 2, 1)
OWN_ARGS = "-vnc :5"
# The admin's hand edit: a segment that says pool A while the database says B (drift).
HAND_EDITED = f"{OWN_ARGS} -fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=1"
# The database's own configuration, in a spelling QEMU accepts that vgpu would not render.
UNUSUAL_SPELLING = f"{OWN_ARGS} --fw_cfg opt/vgpu/config,string=pool=B;priority=2;vm_id=1"


def yes(plan):
    return True


@pytest.fixture
def running(world):
    return world.add(1, "running", OLD, OWN_ARGS)


def test_a_change_refused_at_the_stop_leaves_the_args_exactly_as_they_were(world, running):
    world.sim.set_device_model_args(running, HAND_EDITED)
    world.sim.set_fault("clean_shutdown", "not_acknowledged", running)
    world.sim.set_fault("hard_shutdown", "fail", running)
    progress = Recorder()
    with pytest.raises(HypervisorError) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, running, vm_id=50, confirm=yes, progress=progress)
    assert caught.value.code == codes.INTERNAL_ERROR
    assert str(caught.value).endswith("; nothing was changed")
    assert world.args(running) == HAND_EDITED  # not the database's segment written over the admin's
    assert "rolling-back" not in progress.steps  # nothing was restored, so nothing says it was
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING
    assert world.open_ops() == []


def test_a_rollback_after_the_write_puts_back_the_text_the_host_held(world, running):
    world.sim.set_device_model_args(running, UNUSUAL_SPELLING)
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", running)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, running, pool="A", confirm=yes)
    assert caught.value.rolled_back
    assert world.args(running) == UNUSUAL_SPELLING  # as read before the write, not rendered again
    assert world.sim.boots(running)[-1] == UNUSUAL_SPELLING
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING


def test_a_rollback_leaves_args_someone_else_wrote_after_the_change(world, running):
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", running)
    theirs = f"{OWN_ARGS} -m 4096 {devargs.render(config('A', 0, 9))}"
    real_start, edited = world.sim.start, []

    def start_after_an_edit(vm_uuid):  # an admin rewrites the args while the new configuration's start is tried
        if not edited:
            edited.append(True)
            world.sim.set_device_model_args(vm_uuid, theirs)
        real_start(vm_uuid)

    world.sim.start = start_after_an_edit
    with pytest.raises(ReconfigureFailed):
        lifecycle.reconfigure_vm(world.store, world.sim, running, pool="A", confirm=yes)
    assert world.args(running) == theirs


def test_recover_of_a_change_cut_short_while_stopping_leaves_the_args_as_they_are(world, running):
    world.sim.set_device_model_args(running, HAND_EDITED)
    interrupting = Raising(world.sim, "clean_shutdown", KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.reconfigure_vm(world.store, interrupting, running, vm_id=50, confirm=yes)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert world.args(running) == HAND_EDITED
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING


def test_recover_puts_back_the_text_the_journal_recorded_before_the_write(world, running):
    world.sim.set_device_model_args(running, UNUSUAL_SPELLING)
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", running)
    # The rollback's own write of the args fails: the change is left to recover().
    refusing = Raising(world.sim, "set_device_model_args",
                       HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: disk full"), nth=2)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, refusing, running, pool="A", confirm=yes)
    assert not caught.value.rolled_back
    assert world.segment(running) == config("A", 2, 1)  # the change's write is still there
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert world.args(running) == UNUSUAL_SPELLING
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING



class _Host:
    """The host behind ``sim``, with some of its methods replaced."""

    def __init__(self, sim, **methods) -> None:
        self.sim, self.methods = sim, methods

    def __getattr__(self, name):
        return self.methods.get(name) or getattr(self.sim, name)


def _first_start_fails_after_an_edit(world, edit, then=lambda: None) -> _Host:
    """The host, except that the change's start of the VM fails once, after someone rewrote its args (``edit``:
    old text -> new text) while it was stopped, as `virsh edit` or `xe vm-param-set` would; ``then`` is
    called after that failure."""
    tried = []

    def start(vm_uuid):
        if tried:
            return world.sim.start(vm_uuid)
        tried.append(True)
        world.sim.set_device_model_args(vm_uuid, edit(world.sim.get_device_model_args(vm_uuid)))
        then()
        raise codes.host_error(codes.FAILED_TO_START_EMULATOR, [vm_uuid, "vm-1", "it failed once"], vm_uuid)

    return _Host(world.sim, start=start)


ADMINS_ARG = "-smbios type=1,serial=admin"
SOMEONE_ELSES = config("B", 0, 9)  # a segment neither the change's nor the previous one
THEIRS = f"{OWN_ARGS} -m 4096 {devargs.render(SOMEONE_ELSES)}"
LEFT = ("the registration was restored, but its args were changed by someone else meanwhile and were left as they "
        "are (segment pool=B;priority=0;vm_id=9)")
DIFFERS = "it runs with a segment that differs from the database: 'vgpu-admin apply-vm' restarts it with its registration"


def test_a_rollback_puts_the_previous_segment_back_within_args_edited_beside_the_changes_own(world, running):
    host = _first_start_fails_after_an_edit(world, lambda args: f"{args} {ADMINS_ARG}")  # the change's segment kept
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="A", confirm=yes)
    assert caught.value.rolled_back
    assert str(caught.value).endswith("; the previous configuration was restored and the VM started again")
    restored = f"{OWN_ARGS} {devargs.render(OLD)} {ADMINS_ARG}"  # the admin's arg kept, the change's own write undone
    assert world.args(running) == restored and world.sim.boots(running)[-1] == restored
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING
    assert world.marks() == [] and world.open_ops() == []


def test_a_rollback_over_a_segment_someone_else_wrote_says_it_was_left_and_what_the_vm_runs(world, running):
    host = _first_start_fails_after_an_edit(world, lambda args: THEIRS)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="A", confirm=yes)
    message = str(caught.value)
    assert "previous configuration was restored" not in message
    assert message.endswith(f"; {LEFT}, and the VM started again with them; {DIFFERS}"), message
    assert world.args(running) == THEIRS and world.sim.boots(running)[-1] == THEIRS
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING
    assert world.open_ops() == []


def test_a_rollback_over_a_segment_someone_else_wrote_that_will_not_start_says_so(world, running):
    host = _first_start_fails_after_an_edit(world, lambda args: THEIRS)
    world.sim.set_fault("start", "fail", running)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="A", confirm=yes)
    assert f"; {LEFT}, but the VM would not start with them either (" in str(caught.value), str(caught.value)
    assert world.args(running) == THEIRS and world.power(running) is PowerState.HALTED
    (mark,) = world.marks()
    assert mark.kind == attention.NOT_RESTARTED and "the args someone else changed meanwhile" in mark.reason


def test_a_halted_vms_rollback_over_a_segment_someone_else_wrote_says_it_was_left(world):
    halted = world.add(1, "halted", OLD, OWN_ARGS)

    def written_then_refused(vm_uuid, args):  # the write lands, someone else writes theirs, then the host errs
        world.sim.set_device_model_args(vm_uuid, args)
        world.sim.set_device_model_args(vm_uuid, THEIRS)
        raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: disk full")

    host = _Host(world.sim, set_device_model_args=written_then_refused)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, halted, pool="A", confirm=yes)
    assert str(caught.value).endswith(f"; {LEFT}"), str(caught.value)
    assert world.args(halted) == THEIRS and world.config(halted) == OLD and world.marks() == []


def test_recover_puts_the_previous_segment_back_within_args_edited_beside_the_changes_own(world, running):
    # The session is cut short while starting the VM; the admin then adds an arg; the start recover tries fails.
    interrupting = Raising(world.sim, "start", KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.reconfigure_vm(world.store, interrupting, running, pool="A", confirm=yes)
    world.sim.set_device_model_args(running, f"{world.args(running)} {ADMINS_ARG}")
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", running)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back" and outcome.detail.endswith("the previous one is restored and the VM was started again")
    assert world.args(running) == f"{OWN_ARGS} {devargs.render(OLD)} {ADMINS_ARG}"
    assert world.config(running) == OLD and world.power(running) is PowerState.RUNNING and world.marks() == []


def test_recover_over_a_segment_someone_else_wrote_says_it_was_left_and_what_the_vm_runs(world, running):
    # The session's rollback restores the registration, then cannot read the args back: recover takes over.
    unreadable = []

    def get_device_model_args(vm_uuid):
        if unreadable:
            raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: busy")
        return world.sim.get_device_model_args(vm_uuid)

    host = _first_start_fails_after_an_edit(world, lambda args: THEIRS, then=lambda: unreadable.append(True))
    host.methods["get_device_model_args"] = get_device_model_args
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, running, pool="A", confirm=yes)
    assert not caught.value.rolled_back and world.config(running) == OLD
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert "previous configuration is kept" not in outcome.detail
    assert outcome.detail.endswith(f"; {LEFT}, and the VM started again with them"), outcome.detail
    assert outcome.attention == DIFFERS and not outcome.settled
    assert world.args(running) == THEIRS and world.power(running) is PowerState.RUNNING and world.config(running) == OLD


def test_a_refused_write_leaves_drifted_args_as_they_were_and_says_the_previous_configuration_is_back(world, running):
    world.sim.set_device_model_args(running, HAND_EDITED)  # drift before the change: not someone else's meanwhile
    world.sim.set_fault("set_args", "fail", running)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, running, vm_id=50, confirm=yes)
    assert str(caught.value).endswith("; the previous configuration was restored and the VM started again")
    assert world.args(running) == HAND_EDITED and world.config(running) == OLD


# Applying a pending configuration (the database unchanged): the VM booted without vgpu's segment, was
# registered since (its stored args got the segment), then an admin added an arg by hand. The change's write is
# a no-op, and the new configuration will not start: the rollback gives back the segment it ran with, and
# nothing else of what it ran with over the admin's edit.
MACHINE, SMP = "-machine pc", "-smp 4"


@pytest.fixture
def pending(world):
    vm = world.add(1, "running", None, MACHINE)
    lifecycle.register_vm(world.store, world.sim, vm, pool="B", priority=2, vm_id=1)
    world.sim.set_device_model_args(vm, f"{world.args(vm)} {SMP}")  # the admin's hand edit
    world.sim.set_fault("start", "fail_if_args_contain:vm_id=1", vm)
    return vm


APPLYING = {
    "apply-vm": lambda world, vm: lifecycle.apply_vm(world.store, world.sim, vm, confirm=yes),
    "set-* with the current values": lambda world, vm: lifecycle.reconfigure_vm(world.store, world.sim, vm, priority=2,
                                                                               confirm=yes),
}


@pytest.mark.parametrize("apply", APPLYING.values(), ids=APPLYING.keys())
def test_a_rollback_of_a_pending_configuration_keeps_an_earlier_hand_edit(world, pending, apply):
    with pytest.raises(ReconfigureFailed) as caught:
        apply(world, pending)
    assert caught.value.rolled_back and caught.value.restarted
    assert world.args(pending) == f"{MACHINE} {SMP}"  # the segment it ran with (none), the admin's arg kept
    assert world.sim.boots(pending)[-1] == f"{MACHINE} {SMP}"
    assert world.config(pending) == OLD and world.power(pending) is PowerState.RUNNING and world.open_ops() == []


def test_a_rollback_of_a_pending_configuration_before_its_write_keeps_an_earlier_hand_edit(world, pending):
    # The args cannot be read once the VM is stopped: the rollback starts it with the segment it ran with.
    unreadable = Raising(world.sim, "get_device_model_args",
                         HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: busy"), pending)
    with pytest.raises(HypervisorError):
        lifecycle.apply_vm(world.store, unreadable, pending, confirm=yes)
    assert world.args(pending) == f"{MACHINE} {SMP}"
    assert world.sim.boots(pending)[-1] == f"{MACHINE} {SMP}"
    assert world.config(pending) == OLD and world.power(pending) is PowerState.RUNNING and world.open_ops() == []


def test_recover_of_a_pending_configuration_keeps_an_earlier_hand_edit(world, pending):
    interrupting = Raising(world.sim, "start", KeyboardInterrupt)  # killed as it starts the VM, its write a no-op
    with pytest.raises(KeyboardInterrupt):
        lifecycle.apply_vm(world.store, interrupting, pending, confirm=yes)
    (outcome,) = recovery.recover(world.store, world.sim)
    assert outcome.action == "rolled-back"
    assert world.args(pending) == f"{MACHINE} {SMP}"
    assert world.config(pending) == OLD and world.power(pending) is PowerState.RUNNING


def test_a_segment_it_ran_with_that_cannot_be_read_is_put_back_as_written_with_the_rest_kept():
    two = f"{devargs.render(config('A', 0, 3))} {devargs.render(config('B', 1, 4))}"  # QEMU reads one only
    assert devargs.parse(two).malformed
    stored = f"{MACHINE} {devargs.render(OLD)} {SMP}"
    assert lifecycle._with_segment_of(stored, f"{MACHINE} {two}", False) == f"{MACHINE} {SMP} {two}"
    assert lifecycle._with_segment_of(stored, MACHINE, False) == f"{MACHINE} {SMP}"

"""A rollback gives the VM's device-model args back only where the change wrote them, and then exactly as
the host held them before that write: never the database's segment rendered again over an admin's edit, nor
a write at all when the change failed before writing. recover() undoes by the same rule, from what the
journal recorded of the args before the write."""

from __future__ import annotations

import pytest

from vgpu import devargs, lifecycle, recovery
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

"""The exit code of a change refused because its VM changed after the plan (DESIGN.md: 0 ok, 1 failed, 2 bad
usage or input, 3 cancelled). Refused with nothing done, it is a plan that no longer holds, as StalePlan is: 2,
whatever changed (the registration, vgpu's segment, the power state: shut down, paused or suspended). Found
once the VM was stopped and started again, the command did something and failed: 1, whatever the error."""

from __future__ import annotations

import pytest

from shell.runner import BAD_INPUT, FAILED, exit_code_for
from vgpu import devargs, lifecycle
from vgpu.errors import VgpuError
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState

from .lifekit import World, config

OLD = config("A", 1, 4)
POLICY = StopPolicy(clean_timeout=5, tick=0.05)


@pytest.fixture
def world(tmp_path, store):
    return World(store, World.create(tmp_path, store).sim)


def refused(world, uuid, *, while_confirming=None, while_stopping=None, **change) -> VgpuError:
    """The error of a change of the VM, the other party acting while it is confirmed, or as it is stopped."""
    done = []

    def confirm(plan):
        if while_confirming:
            while_confirming()
        return True

    def progress(event):
        if while_stopping and event.step == "stopping" and not done:
            done.append(True)
            while_stopping()

    with pytest.raises(VgpuError) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, uuid, confirm=confirm, progress=progress, policy=POLICY,
                                 **(change or {"pool": "B"}))
    return caught.value


def test_a_segment_changed_before_anything_was_done_is_a_stale_plan(world):
    uuid = world.add(4, "halted", OLD)
    boots = len(world.sim.boots(uuid))
    error = refused(world, uuid, while_confirming=lambda: world.sim.set_device_model_args(uuid, devargs.render(config("A", 2, 4))))
    assert "changed on the host after this plan" in str(error) and len(world.sim.boots(uuid)) == boots
    assert exit_code_for(error) == BAD_INPUT


def test_a_segment_changed_while_the_vm_was_stopped_and_started_again_is_a_failure(world):
    uuid = world.add(4, "running", OLD)
    boots = len(world.sim.boots(uuid))
    error = refused(world, uuid, while_stopping=lambda: world.sim.set_device_model_args(uuid, devargs.render(config("A", 2, 4))))
    assert str(error).endswith("the VM was started again"), error
    assert len(world.sim.boots(uuid)) == boots + 1 and world.power(uuid) is PowerState.RUNNING
    assert exit_code_for(error) == FAILED


def test_a_vm_shut_down_since_the_plan_is_a_stale_plan(world):
    uuid = world.add(4, "running", OLD)
    error = refused(world, uuid, while_confirming=lambda: world.sim.hard_shutdown(uuid))
    assert "nothing was changed" in str(error)
    assert exit_code_for(error) == BAD_INPUT


@pytest.mark.parametrize("state", ["paused", "suspended"])
@pytest.mark.parametrize("moment", ["while_confirming", "while_stopping"])
def test_a_vm_paused_or_suspended_since_the_plan_is_a_stale_plan_as_one_shut_down_is(world, state, moment):
    uuid = world.add(4, "running", OLD)
    error = refused(world, uuid, **{moment: lambda: world.sim.add_vm(uuid, "vm-4", state, world.args(uuid))})
    assert str(error).endswith("nothing was changed") and world.power(uuid) is PowerState(state)
    assert exit_code_for(error) == BAD_INPUT

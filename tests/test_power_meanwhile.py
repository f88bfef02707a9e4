"""Someone else shuts down, or pauses, a VM that a change planned to stop and restart, after the plan was
made: before the change begins (while it is confirmed) or as its shutdown is asked for. The change is
refused, nothing is changed, and a VM the admin halted is not started. On every backend that runs over a
simulated host (the other party's action reaches xe and XenAPI through the same simulated host)."""

from __future__ import annotations

import pytest

from shell.runner import BAD_INPUT, exit_code_for
from vgpu import bulk, lifecycle
from vgpu.errors import Conflict, HypervisorError
from vgpu.hypervisor import codes
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState

from .hostkit import SIMULATED, running_vm_on
from .lifekit import config

OLD = config("A", 1, 6)
NEW = config("B", 1, 6)
OWN_ARGS = "-vnc 127.0.0.1:6"
POLICY = StopPolicy(clean_timeout=5, tick=0.05)
MOMENTS = ["while-confirming", "as-the-shutdown-is-asked"]


@pytest.fixture(params=SIMULATED)
def backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 6, OLD, OWN_ARGS) as found:
        yield found


def change_with(under_test, world, uuid, moment, act):
    """Reconfigure the VM to pool B, ``act()`` (the other party) running at ``moment``."""
    done = []

    def confirm(plan):
        if moment == "while-confirming":
            act()
        return True

    def progress(event):
        if moment == "as-the-shutdown-is-asked" and event.step == "stopping" and not done:
            done.append(True)
            act()

    return lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=confirm,
                                    progress=progress, policy=POLICY)


def assert_nothing_changed(world, uuid, before, power):
    assert world.tables() == before
    assert world.config(uuid) == OLD and world.segment(uuid) == OLD
    assert world.power(uuid) is power
    assert world.open_ops() == [] and world.marks() == []


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_vm_shut_down_after_the_plan_is_refused_and_left_halted(backend, moment):
    under_test, world, uuid = backend
    before, boots = world.tables(), len(world.sim.boots(uuid))
    with pytest.raises(Conflict) as caught:
        change_with(under_test, world, uuid, moment, lambda: world.sim.hard_shutdown(uuid))
    assert str(caught.value) == f"VM VM-6 ({uuid}) was shut down after this plan was made; nothing was changed: plan again"
    assert_nothing_changed(world, uuid, before, PowerState.HALTED)
    assert len(world.sim.boots(uuid)) == boots  # not started again
    lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True)  # not left locked
    assert world.config(uuid) == NEW and world.power(uuid) is PowerState.HALTED


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("state", ["paused", "suspended"])
def test_a_vm_paused_or_suspended_after_the_plan_is_refused_and_nothing_changed(backend, moment, state):
    under_test, world, uuid = backend
    before = world.tables()
    with pytest.raises(HypervisorError) as caught:
        change_with(under_test, world, uuid, moment, lambda: world.sim.add_vm(uuid, "VM-6", state, world.args(uuid)))
    assert caught.value.code == codes.VM_BAD_POWER_STATE
    assert str(caught.value) == f"VM {uuid} is {state}; resume it or shut it down first, then try again; nothing was changed"
    assert_nothing_changed(world, uuid, before, PowerState(state))


@pytest.mark.parametrize("how", ["reconfigure", "apply_many"])
def test_a_halted_vm_started_after_the_plan_is_refused_and_left_running(backend, how):
    # The plan said "halted: no restart is needed", and that is what was agreed to: a VM someone started since
    # is not stopped and started again (on an ACPI-less guest, forced off) behind the admin's back.
    under_test, world, uuid = backend
    world.sim.hard_shutdown(uuid)
    before, boots = world.tables(), len(world.sim.boots(uuid))
    if how == "reconfigure":
        with pytest.raises(Conflict) as caught:
            change_with(under_test, world, uuid, "while-confirming", lambda: world.sim.start(uuid))
        error = caught.value
    else:
        plan = bulk.plan_many(world.store, under_test.host, [{"vm_uuid": uuid, "pool": "B"}])
        world.sim.start(uuid)
        result = bulk.apply_many(world.store, under_test.host, plan, policy=POLICY)
        [error] = [failure.error for failure in result.failures]
    assert str(error) == f"VM VM-6 ({uuid}) was started after this plan was made; nothing was changed: plan again"
    assert exit_code_for(error) == BAD_INPUT
    assert_nothing_changed(world, uuid, before, PowerState.RUNNING)
    assert len(world.sim.boots(uuid)) == boots + 1  # the other party's start only: not stopped, not started again

"""ReconfigureFailed's data agrees with what became of the VM, whatever way the rollback went: ``restarted``
only when the VM stopped for the change runs again, ``left_halted`` when it is halted (the rollback failed, or
the VM would not start even with its previous configuration), ``vm_restarted`` as ``restarted``. A script
reads these fields, not the sentence; they must hold through pickle and JSON as well."""

from __future__ import annotations

import json
import pickle

import pytest

from vgpu import convert, devargs, lifecycle
from vgpu.errors import HypervisorError, ReconfigureFailed
from vgpu.hypervisor import codes
from vgpu.models import PowerState

from .lifekit import Raising, config

OLD = config("B", 2, 1)
OWN_ARGS = "-vnc :5"
DISK_FULL = HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: disk full")


def yes(plan):
    return True


def started_again(world, vm):  # the new configuration fails, the previous one starts
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", vm)
    return world.sim


def never_starts(world, vm):
    world.sim.set_fault("start", "fail", vm)
    return world.sim


def rollback_fails(world, vm):  # the rollback's own write of the args fails: left to recover()
    world.sim.set_fault("start", "fail_if_args_contain:pool=A", vm)
    return Raising(world.sim, "set_device_model_args", DISK_FULL, nth=2)


def write_refused(world, vm):
    world.sim.set_fault("set_args", "fail", vm)
    return world.sim


OUTCOMES = {
    "started again": ("running", started_again),
    "would not start again": ("running", never_starts),
    "rollback failed": ("running", rollback_fails),
    "halted, write refused": ("halted", write_refused),
    "running, write refused": ("running", write_refused),
}


@pytest.mark.parametrize("power, arrange", OUTCOMES.values(), ids=OUTCOMES.keys())
def test_the_fields_say_what_became_of_the_vm(world, power, arrange):
    vm = world.add(1, power, OLD, OWN_ARGS)
    host = arrange(world, vm)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, host, vm, pool="A", confirm=yes)
    now = world.power(vm)
    was_running = power == "running"
    for error in (caught.value, pickle.loads(pickle.dumps(caught.value)), convert.from_data(json.loads(json.dumps(convert.to_data(caught.value))), ReconfigureFailed)):
        assert error.restarted == (was_running and now is PowerState.RUNNING), (error.restarted, now, str(error))
        assert error.left_halted == (was_running and now is PowerState.HALTED), (error.left_halted, now, str(error))
        assert error.vm_restarted == error.restarted


def test_a_vm_that_would_not_start_again_is_not_called_restarted(world):
    vm = world.add(1, "running", OLD, OWN_ARGS)
    never_starts(world, vm)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(world.store, world.sim, vm, pool="A", confirm=yes)
    error = caught.value
    assert (error.rolled_back, error.restarted, error.left_halted) == (True, False, True)
    assert error.restart_error is not None and "halted and marked as needing attention" in str(error)
    assert world.power(vm) is PowerState.HALTED and world.args(vm) == devargs.merge(OWN_ARGS, OLD)

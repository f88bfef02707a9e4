"""An admin's edit of a VM's device-model args while a change waits for the VM to shut down is kept: the
args written are the ones the VM has once it is stopped, with only vgpu's segment replaced. If vgpu's own
segment changed meanwhile (someone else changed this VM's vgpu settings), the change is refused, the
database is left as it was and the VM is started again as it is. On every backend that runs over a
simulated host (the edit reaches xe and XenAPI through the same simulated host)."""

from __future__ import annotations

import pytest

from vgpu import devargs, lifecycle
from vgpu.errors import Conflict, SegmentChanged
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState

from .hostkit import SIMULATED, running_vm_on
from .lifekit import config

OLD = config("A", 1, 3)
NEW = config("B", 1, 3)
OWN_ARGS = "-vnc 127.0.0.1:3"
POLICY = StopPolicy(clean_timeout=5, tick=0.05)


@pytest.fixture(params=SIMULATED)
def backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 3, OLD, OWN_ARGS) as (under_test, world, uuid):
        world.sim.set_latency("clean_shutdown", 0.3)
        yield under_test, world, uuid


def while_stopping(world, uuid, new_args):
    """A progress callback that, as the shutdown begins, replaces the VM's args on the host (an admin's edit)."""
    done = []

    def progress(event):
        if event.step == "stopping" and not done:
            done.append(True)
            world.sim.set_device_model_args(uuid, new_args(world.args(uuid)))

    return progress


def test_an_edit_of_other_args_during_the_shutdown_is_kept(backend):
    under_test, world, uuid = backend
    progress = while_stopping(world, uuid, lambda args: args + " -device virtio-rng-pci")
    result = lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True,
                                      progress=progress, policy=POLICY)
    assert result.restarted and world.config(uuid) == NEW
    edited = devargs.merge(OWN_ARGS, OLD) + " -device virtio-rng-pci"
    assert world.args(uuid) == devargs.merge(edited, NEW)  # the edit kept, only the segment replaced
    assert world.sim.boots(uuid)[-1] == world.args(uuid)
    assert world.open_ops() == []


def test_a_change_of_the_vgpu_segment_during_the_shutdown_is_refused_and_the_vm_started_as_it_is(backend):
    under_test, world, uuid = backend
    theirs = devargs.merge(OWN_ARGS + " -device virtio-rng-pci", config("A", 2, 3))
    progress = while_stopping(world, uuid, lambda args: theirs)
    before = world.tables()
    with pytest.raises(Conflict) as caught:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True,
                                 progress=progress, policy=POLICY)
    assert "changed" in str(caught.value) and "\n" not in str(caught.value)
    assert world.config(uuid) == OLD
    assert world.args(uuid) == theirs  # left as the other party wrote it
    assert world.power(uuid) is PowerState.RUNNING and world.sim.boots(uuid)[-1] == theirs
    after = world.tables()
    assert after["vms"] == before["vms"] and after["pools"] == before["pools"]
    assert world.open_ops() == [] and world.marks() == []


def test_a_change_of_the_vgpu_segment_caught_at_the_write_is_refused_as_during_the_shutdown(backend, monkeypatch):
    """The same edit, landing after the args were read (and the database updated) but before they are written,
    where the host tells at the write (libvirt's compare-and-set): refused the same way, the database put back,
    not a configuration the VM 'failed with', nor advice to apply the registration over the admin's edit."""
    under_test, world, uuid = backend
    theirs = devargs.merge(OWN_ARGS + " -device virtio-rng-pci", config("A", 2, 77))
    original = lifecycle.set_args_if_unchanged

    def set_args_if_unchanged(host, vm_uuid, wanted, current):
        monkeypatch.setattr(lifecycle, "set_args_if_unchanged", original)  # once: the rollback writes as usual
        world.sim.set_device_model_args(vm_uuid, theirs)  # the admin's edit lands between our read and our write
        return theirs  # what the host says it found instead of what we read: nothing written

    monkeypatch.setattr(lifecycle, "set_args_if_unchanged", set_args_if_unchanged)
    with pytest.raises(SegmentChanged) as caught:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=POLICY)
    said = str(caught.value)
    assert ("were changed on the host after this plan was made; plan again; its configuration was not changed and the "
            "VM was started again") in said and "failed with" not in said and "apply-vm" not in said, said
    assert caught.value.vm_restarted and world.config(uuid) == OLD and world.args(uuid) == theirs
    assert world.power(uuid) is PowerState.RUNNING and world.sim.boots(uuid)[-1] == theirs
    assert world.open_ops() == [] and world.marks() == []

"""A transient VM (a libvirt domain with no stored definition: ``virsh create``, or undefined while it runs) has
no next boot and its args cannot be written: the views say it is transient instead of "read at the VM's next
boot", and a change is refused when it is planned, before the question and before any shutdown is asked for.
Over the simulated host, made to report a VM transient as libvirt does (the real thing:
tests/test_libvirt_integration.py)."""

from __future__ import annotations

import pytest

from shell import render
from shell.panel import scan_line
from vgpu import bulk, bulk_register, lifecycle, scan, vms
from vgpu.errors import HypervisorError, InvalidRows
from vgpu.hypervisor import codes

from .lifekit import Recorder, Transient, config, vm_uuid

OLD = config("A", 1, 3)


@pytest.fixture
def transient(world):
    uuid = world.add(3, "running", OLD, "-vnc :3")
    return Transient(world.sim, uuid), uuid


def test_a_change_of_a_transient_vm_is_refused_before_it_is_confirmed(world, transient):
    host, uuid = transient
    before, asked, progress = world.tables(), [], Recorder()
    with pytest.raises(HypervisorError) as caught:
        lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", confirm=lambda plan: asked.append(plan) or True,
                                 progress=progress)
    assert caught.value.code == codes.VM_IS_TRANSIENT
    assert "is transient" in str(caught.value) and str(caught.value).endswith("; nothing was changed")
    assert asked == [] and progress.events == []  # no question, no "Shutting down"
    assert world.tables() == before and world.open_ops() == [] and len(world.sim.boots(uuid)) == 1


def test_a_transient_vm_that_already_has_its_configuration_is_left_alone_not_refused(world, transient):
    host, uuid = transient
    result = lifecycle.reconfigure_vm(world.store, host, uuid, pool="A", confirm=lambda plan: True)
    assert result.changed is False


def test_plan_many_refuses_a_transient_vms_row_with_the_others(world, transient):
    host, uuid = transient
    other = world.add(4, "halted", config("A", 1, 4))
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(world.store, host, [{"vm_uuid": other, "pool": "B"}, {"vm_uuid": uuid, "pool": "B"}])
    [problem] = caught.value.problems
    assert problem.row == 2 and problem.error.code == codes.VM_IS_TRANSIENT


def test_show_vm_and_scan_vms_say_a_transient_vm_has_no_next_boot(world, transient):
    host, uuid = transient
    view = scan.inspect_vm(world.store, host, uuid)
    text = render.show_vm(view.vm, view.host_vm, view.segment, view.host_error, view.operation, booted=view.booted,
                          state=view.state)
    assert "next boot" not in text and "transient" in text, text
    [entry] = [entry for entry in scan.scan(world.store, host).registered if entry.vm.vm_uuid == uuid]
    assert "transient" in scan_line(entry)
    plain = world.add(4, "running", config("A", 1, 4))  # other VMs, and other hosts, say what they said
    view = scan.inspect_vm(world.store, host, plain)
    assert "read at the VM's next boot" in render.show_vm(view.vm, view.host_vm, view.segment, None, booted=view.booted,
                                                          state=view.state)


def test_plan_registrations_refuses_a_transient_vms_row_as_register_vm_does(world):
    """A transient VM's segment cannot be written: registering it would leave a registration no repair-vm can
    finish, so its row is a problem of the plan (register_many refuses the batch), and nothing is registered."""
    uuid, other = vm_uuid(7), vm_uuid(8)
    world.sim.add_vm(uuid, "transient-7", "running", "-vnc :7")
    world.sim.add_vm(other, "plain-8", "halted", "-vnc :8")
    host = Transient(world.sim, uuid)
    before = world.tables()
    plan = bulk_register.plan_registrations(world.store, host, [{"vm_uuid": other}, {"vm_uuid": uuid}])
    assert [vm.vm_uuid for vm in plan.vms] == [other]
    [problem] = plan.problems
    assert problem.row == 2 and problem.error.code == codes.VM_IS_TRANSIENT and "is transient" in str(problem.error)
    assert world.tables() == before
    result = bulk_register.register_planned(world.store, host, plan)
    assert [vm.vm_uuid for vm in result.registered] == [other] and result.ok
    assert vms.find(world.store, uuid) is None and world.open_ops() == []

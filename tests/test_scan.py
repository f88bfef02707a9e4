"""scan and status: the host's VMs beside the registrations, from one host listing and one DB read."""

from __future__ import annotations

import pytest

from vgpu import demo, devargs, journal, lifecycle, scan, vms
from vgpu.errors import HostUnreachable, InvalidValue
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority
from vgpu.store import Store

from .counting import CountingHost
from .lifekit import Blind, Raising, config, hand_over, other_live_owner, vm_uuid


@pytest.fixture
def mixed(world):
    """Registered VMs in both pools, deliberately added out of order."""
    numbers = {
        1: ("B", 0, 4), 2: ("A", 2, 9), 3: ("A", 0, 1), 4: ("B", 2, 7), 5: ("A", 2, 3),
        6: ("B", 2, 2), 7: ("A", 1, 5), 8: ("B", 1, 8),
    }
    for number, (pool, priority, vm_id) in numbers.items():
        world.add(number, "running" if number % 2 else "halted", config(pool, priority, vm_id))
    return numbers


def test_groups_pool_a_then_b_each_by_priority_high_to_low_then_vm_id(world, mixed):
    report = scan.scan(world.store, world.sim)
    order = [(entry.vm.pool_id, int(entry.vm.priority), entry.vm.vm_id) for entry in report.registered]
    assert order == [("A", 2, 3), ("A", 2, 9), ("A", 1, 5), ("A", 0, 1),
                     ("B", 2, 2), ("B", 2, 7), ("B", 1, 8), ("B", 0, 4)]
    assert [e.vm.vm_id for e in report.in_pool("A")] == [3, 9, 5, 1]
    assert [e.vm.vm_id for e in report.in_pool("B")] == [2, 7, 8, 4]
    assert report.in_pool("b") == report.in_pool(" B ") == report.in_pool("B")
    running = {vm_uuid(number) for number in mixed if number % 2}
    assert {entry.state for entry in report.registered if entry.vm.vm_uuid in running} == {"configured"}
    assert {entry.state for entry in report.registered if entry.vm.vm_uuid not in running} == {"halted"}
    assert [p.pool_id for p in report.pools] == ["A", "B"]
    assert (report.pools[0].counts.high, report.pools[0].counts.medium, report.pools[0].counts.low) == (2, 1, 1)
    assert report.total_registered == 8 and report.total_unregistered == 0 and report.total_in_system == 8
    assert report.host_error is None


@pytest.mark.parametrize("pool", ["C", "", None, 1])
def test_in_pool_refuses_a_pool_that_does_not_exist_instead_of_answering_none(world, mixed, pool):
    report = scan.scan(world.store, world.sim)
    with pytest.raises(InvalidValue) as caught:
        report.in_pool(pool)
    assert caught.value.field == "pool" and str(caught.value) == f"invalid pool {pool!r}: expected A or B"


def test_each_entry_carries_the_hosts_view(world):
    uuid = world.add(1, "running", config("A", 2, 1), "-vnc :1")
    (entry,) = scan.scan(world.store, world.sim).registered
    assert entry.host_vm.power_state is PowerState.RUNNING
    assert entry.host_vm.device_model_args == f"-vnc :1 {devargs.render(config('A', 2, 1))}"
    assert entry.segment.config == entry.vm.config
    assert entry.vm.vm_uuid == uuid


def test_unregistered_vms_sorted_by_name_then_uuid(world):
    world.add(1, cfg=config("A", 1, 1), name="zeta")
    for number, name in [(2, "beta"), (3, "Alpha"), (4, "gamma"), (5, "alpha"), (6, "Beta")]:
        world.add(number, "halted", name=name)
    report = scan.scan(world.store, world.sim)
    assert [(h.name, h.uuid) for h in report.unregistered] == [
        ("Alpha", vm_uuid(3)), ("alpha", vm_uuid(5)), ("beta", vm_uuid(2)), ("Beta", vm_uuid(6)), ("gamma", vm_uuid(4)),
    ]
    assert report.foreign_segments == ()
    assert report.total_in_system == 6


def test_unregistered_vms_sorted_naturally_numbers_by_value(world):
    for number, name in [(1, "VM-10"), (2, "VM-2"), (3, "vm-1"), (4, "VM-1b"), (5, "VM-100"), (6, "VM")]:
        world.add(number, "halted", name=name)
    report = scan.scan(world.store, world.sim)
    assert [h.name for h in report.unregistered] == ["VM", "vm-1", "VM-1b", "VM-2", "VM-10", "VM-100"]


def test_registered_vms_missing_from_the_host(world):
    kept = world.add(1, cfg=config("A", 1, 1))
    gone = world.add(2, cfg=config("B", 1, 2))
    world.sim.remove_vm(gone)
    report = scan.scan(world.store, world.sim)
    assert [entry.vm.vm_uuid for entry in report.missing] == [gone]
    assert report.missing[0].host_vm is None and report.missing[0].state == "missing"
    assert {entry.vm.vm_uuid: entry.state for entry in report.registered} == {kept: "configured", gone: "missing"}


def test_drift_absent_different_and_malformed_segments(world):
    absent = world.add(1, cfg=config("A", 1, 1), own_args="-vnc :1")
    different = world.add(2, cfg=config("A", 1, 2))
    malformed = world.add(3, cfg=config("B", 2, 3))
    doubled = world.add(4, cfg=config("B", 0, 4))
    fine = world.add(5, cfg=config("B", 0, 5))
    world.sim.set_device_model_args(absent, "-vnc :1")
    world.sim.set_device_model_args(different, devargs.render(config("B", 1, 2)))
    world.sim.set_device_model_args(malformed, "-fw_cfg name=opt/vgpu/config,string=pool=B;priority=9;vm_id=3")
    world.sim.set_device_model_args(doubled, f"{devargs.render(config('B', 0, 4))} {devargs.render(config('B', 0, 4))}")

    report = scan.scan(world.store, world.sim)
    states = {entry.vm.vm_uuid: entry for entry in report.registered}
    assert [entry.vm.vm_uuid for entry in report.drift] == [absent, different, malformed, doubled]  # display order
    assert states[fine].state == "configured"
    assert not states[absent].segment.present
    assert states[different].segment.config == config("B", 1, 2)
    assert states[malformed].segment.malformed and states[doubled].segment.malformed
    assert report.missing == [] and report.foreign_segments == ()


def test_clones_and_leftover_segments_on_unregistered_vms(world):
    parent = world.add(1, cfg=config("A", 2, 7), own_args="-vnc :1")
    world.add(2, "halted", own_args=f"-vnc :1 {devargs.render(config('A', 2, 7))}", name="clone of vm-1")
    world.add(3, "halted", own_args=devargs.render(config("B", 0, 42)), name="leftover")
    world.add(4, "halted", own_args="-fw_cfg name=opt/vgpu/config,string=garbage", name="broken")
    world.add(5, "halted", own_args="-vnc :5", name="plain")

    report = scan.scan(world.store, world.sim)
    foreign = {entry.host_vm.name: entry for entry in report.foreign_segments}
    assert set(foreign) == {"clone of vm-1", "leftover", "broken"}
    assert foreign["clone of vm-1"].owner.vm_uuid == parent
    assert foreign["clone of vm-1"].segment.config == config("A", 2, 7)
    assert foreign["leftover"].owner is None and foreign["leftover"].segment.config == config("B", 0, 42)
    assert foreign["broken"].owner is None and foreign["broken"].segment.malformed
    assert [entry.host_vm.name for entry in report.clones] == ["clone of vm-1"]
    assert [h.name for h in report.unregistered] == ["broken", "clone of vm-1", "leftover", "plain"]
    assert report.registered[0].state == "configured"  # the parent itself is fine


def test_status_with_the_host_down_is_a_db_only_report(world, mixed):
    world.add(20, "running", name="unregistered one")
    world.sim.set_fault("unreachable", "on")
    report = scan.status(world.store, world.sim)
    assert "cannot reach the host" in report.host_error
    assert len(report.registered) == len(mixed)
    assert {entry.state for entry in report.registered} == {"unknown"}
    assert all(entry.host_vm is None for entry in report.registered)
    assert report.unregistered == () and report.foreign_segments == ()
    assert report.missing == [] and report.drift == []
    assert [p.vm_count for p in report.pools] == [4, 4]
    # What the host holds is unknown, not nothing: no count of its unregistered VMs, nor a total.
    assert report.total_registered == 8
    assert report.total_unregistered is None and report.total_in_system is None
    caption = str(report).splitlines()[0]
    assert "0 unregistered" not in caption and "8 in system" not in caption
    assert "unregistered unknown" in caption and "in system unknown" in caption
    assert {record["power_state"] for record in report.records()} == {"unknown"}
    assert {record["running_with"] for record in report.records()} == {"unknown"}


def test_a_host_that_could_not_be_asked_gives_no_segment_not_an_absent_one(world, mixed):
    # The host was never asked: what the VM's args hold is unknown (None), not "no segment" (present False),
    # as a script reading entry.segment.present would take it.
    uuid = world.add(9, "running", config("A", 2, 30))
    gone = world.add(10, "halted", config("B", 0, 31))
    world.sim.remove_vm(gone)
    assert scan.inspect_vm(world.store, world.sim, gone).segment == devargs.ABSENT  # the host answered: none
    world.sim.set_fault("unreachable", "on")
    view = scan.inspect_vm(world.store, world.sim, uuid)
    assert (view.host_vm, view.segment, view.booted, view.state) == (None, None, None, "unknown")
    report = scan.status(world.store, world.sim)
    assert {entry.segment for entry in report.registered} == {None}
    assert report.drift == [] and {record["state"] for record in report.records()} == {"unknown"}


def test_a_host_that_answered_without_the_vm_or_its_segment_says_none_is_there(world):
    bare = world.add(1, "halted", config("A", 1, 1), own_args="-vnc :1")
    world.sim.set_device_model_args(bare, "-vnc :1")
    gone = world.add(2, "halted", config("A", 1, 2))
    world.sim.remove_vm(gone)
    entries = {entry.vm.vm_uuid: entry for entry in scan.scan(world.store, world.sim).registered}
    assert (entries[bare].segment, entries[bare].state) == (devargs.ABSENT, "drift")
    assert (entries[gone].segment, entries[gone].state) == (devargs.ABSENT, "missing")
    assert scan.inspect_vm(world.store, world.sim, bare).segment == devargs.ABSENT
    assert scan.inspect_vm(world.store, world.sim, gone).segment == devargs.ABSENT


def test_scan_with_the_host_down_raises(world, mixed):
    world.sim.set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable) as caught:
        scan.scan(world.store, world.sim)
    assert "cannot reach the host" in str(caught.value)


def test_scan_and_status_make_one_host_call_each(world, mixed):
    world.add(30, "halted", name="spare")
    host = CountingHost(world.sim)
    scan.scan(world.store, host)
    assert host.calls == ["list_vms"]
    scan.status(world.store, host)
    assert host.calls == ["list_vms", "list_vms"]


def test_the_demo_is_the_specs_example(tmp_path):
    host = SimHost(tmp_path / "demo-host.json")
    demo.seed(host, str(tmp_path / "demo.db"))
    with Store(tmp_path / "demo.db") as store:
        report = scan.status(store, host)
    assert len(report.in_pool("A")) == 7
    assert len(report.in_pool("B")) == 13
    assert len(report.unregistered) == 3
    assert report.total_in_system == 23
    assert {(entry.host_vm.power_state, entry.state) for entry in report.registered} == {
        (PowerState.RUNNING, "configured"), (PowerState.HALTED, "halted")}
    assert report.foreign_segments == () and report.host_error is None and report.pending == []
    assert {entry.vm.priority for entry in report.registered} == set(Priority)


# --- what the running VMs booted with --------------------------------------------------------------------


def _state(world, uuid, host=None):
    """The VM's state as scan, status and inspect_vm give it (they must agree)."""
    host = host or world.sim
    states = {entry.vm.vm_uuid: entry.state for report in (scan.scan(world.store, host), scan.status(world.store, host))
              for entry in report.registered if entry.vm.vm_uuid == uuid}
    view = scan.inspect_vm(world.store, host, uuid)
    assert set(states.values()) == {view.state}
    return view.state


def test_a_running_vm_registered_now_is_pending_until_it_restarts(world):
    uuid = world.add(1, "running", own_args="-vnc :1")
    lifecycle.register_vm(world.store, world.sim, uuid, vm_id=16)
    assert _state(world, uuid) == "pending"
    (entry,) = scan.scan(world.store, world.sim).pending
    assert entry.vm.vm_uuid == uuid and entry.booted == devargs.ABSENT  # its QEMU has no segment at all
    assert entry.segment.config == config("A", 1, 16)  # while the stored args are right
    view = scan.inspect_vm(world.store, world.sim, uuid)
    assert view.booted == devargs.ABSENT and view.segment.config == config("A", 1, 16)
    world.sim.hard_shutdown(uuid)
    assert _state(world, uuid) == "halted"
    world.sim.start(uuid)
    assert _state(world, uuid) == "configured"
    assert scan.scan(world.store, world.sim).pending == []


def test_a_vm_that_booted_with_an_older_segment_is_pending(world):
    uuid = world.add(1, "running", config("A", 1, 6))
    vms.db_update(world.store, uuid, vm_id=16)  # the database alone: the args now disagree with it
    assert _state(world, uuid) == "drift"
    lifecycle.repair_vm(world.store, world.sim, uuid)  # the args follow, the running QEMU does not
    assert _state(world, uuid) == "pending"
    (entry,) = scan.status(world.store, world.sim).pending
    assert entry.booted.config == config("A", 1, 6) and entry.segment.config == config("A", 1, 16)


def test_stored_args_that_differ_are_drift_whatever_booted(world):
    uuid = world.add(1, "running", config("B", 2, 3))
    world.sim.set_device_model_args(uuid, "")  # the running QEMU still has it; its next boot would not
    assert _state(world, uuid) == "drift"
    assert scan.scan(world.store, world.sim).booted_unknown == []


def test_a_host_that_cannot_tell_what_booted_says_unknown_never_configured(world):
    running = world.add(1, "running", config("A", 2, 1))
    halted = world.add(2, "halted", config("A", 2, 2))
    host = Blind(world.sim)
    assert _state(world, running, host) == "unknown"
    assert _state(world, halted, host) == "halted"  # no domain: the next boot takes the stored args
    report = scan.scan(world.store, host)
    assert report.host_error is None and [e.vm.vm_uuid for e in report.booted_unknown] == [running]
    assert report.pending == [] and report.drift == []
    running_with = {record["vm_uuid"]: record["running_with"] for record in report.records()}
    assert running_with == {running: "unknown", halted: None}  # running, cannot tell; not running


def test_a_paused_vm_whose_boot_the_host_cannot_tell_is_unknown(world):
    uuid = world.add(1, "paused", config("A", 1, 1))
    assert _state(world, uuid) == "unknown"


# --- changes started and not finished -----------------------------------------------------------------------


def _cut(world, uuid):
    """A change to ``uuid`` cut short by Ctrl-C as the VM is started: left open for recover()."""
    host = Raising(world.sim, "start", KeyboardInterrupt, uuid)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", confirm=lambda plan: True)
    (op,) = [op for op in world.open_ops() if op.vm_uuid == uuid]
    return op


def test_scan_status_and_inspect_vm_name_unfinished_operations(world):
    cut = world.add(1, "running", config("A", 1, 1), name="cut-short")
    busy = world.add(2, "running", config("A", 1, 2), name="being-changed")
    quiet = world.add(3, "running", config("A", 1, 3))
    assert scan.scan(world.store, world.sim).unfinished == ()
    op = _cut(world, cut)
    with world.store.writing() as conn:  # another live session is in the middle of changing VM 2
        other = journal.begin(conn, busy, "reconfigure", vms.select_vm(conn, busy), config("B", 1, 2), True)
        hand_over(conn, other.op_id)

    for report in (scan.scan(world.store, world.sim), scan.status(world.store, world.sim)):
        assert report.unfinished == (
            scan.UnfinishedOperation(op.op_id, cut, "cut-short", "reconfigure", "starting", op.started_at, op.owner, False),
            scan.UnfinishedOperation(other.op_id, busy, "being-changed", "reconfigure", "planned", other.started_at,
                                     other_live_owner(), True),
        )
        assert [o.vm_uuid for o in report.needing_recovery] == [cut]
        assert [o.vm_uuid for o in report.in_progress] == [busy]
        assert "; 1 unfinished operation (run recover); 1 operation in progress —" in report._repr_html_()
    assert scan.inspect_vm(world.store, world.sim, cut).operation.step == "starting"
    assert scan.inspect_vm(world.store, world.sim, busy).operation.in_progress
    assert scan.inspect_vm(world.store, world.sim, quiet).operation is None


def test_an_unfinished_operation_is_named_when_the_vm_is_gone_from_db_and_host(world):
    uuid = world.add(1, "halted", config("A", 1, 1), name="leaving")
    with world.store.writing() as conn:  # a remove killed after the row was deleted, before it was closed
        journal.begin(conn, uuid, "remove", vms.select_vm(conn, uuid), None, None)
        vms.delete_record(conn, uuid)
        conn.execute("UPDATE vgpu_operations SET owner = 'gone.invalid:1', released_at = 'T'")
    world.sim.remove_vm(uuid)
    (op,) = scan.status(world.store, world.sim).unfinished
    assert (op.vm_name, op.kind, op.in_progress) == ("leaving", "remove", False)


def test_an_unregistered_vm_whose_qemu_still_carries_a_vm_id_is_flagged(world):
    # remove-vm clears the stored segment, but the running QEMU keeps its vm_id until the VM stops; the next
    # registration may take that vm_id (the lowest free): two running QEMUs with one vm_id must be shown.
    removed = world.add(1, "running", config("A", 1, 1))
    lifecycle.remove_vm(world.store, world.sim, removed)
    taker = world.add(2, "running")
    assert lifecycle.register_vm(world.store, world.sim, taker).vm.vm_id == 1
    report = scan.scan(world.store, world.sim)
    [foreign] = report.foreign_segments
    assert foreign.host_vm.uuid == removed and foreign.running_only
    assert foreign.segment.config == config("A", 1, 1) and foreign.owner.vm_uuid == taker
    assert report.clones == [foreign]
    [record] = [r for r in report.records() if r["vm_uuid"] == removed]
    assert record["state"] == "unregistered, still running with the vm_id of vm-2 (vm_id 1)"


def test_a_segment_in_the_stored_args_is_not_only_running(world):
    leftover = world.add(3, "halted", own_args=devargs.render(config("B", 2, 42)))
    [foreign] = scan.scan(world.store, world.sim).foreign_segments
    assert foreign.host_vm.uuid == leftover and not foreign.running_only

"""Bulk reconfigure across a fleet: one plan over every host, a concurrency limit per host and one overall,
and the same confirm, journal and recover as on one host."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vgpu import bulk, bulk_register, journal, recovery, scan, vms, workers
from vgpu.errors import DuplicateVM, HostUnreachable, InvalidRows, InvalidValue
from vgpu.hypervisor.fleet import Fleet
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Registration
from vgpu.store import Store

from .counting import UnreachableHost
from .fleetkit import segment, uuid_of


@pytest.fixture
def fleet_of_two(tmp_path):
    """Hosts gpu1 and gpu2, four running registered VMs each (vm_ids 11-14 and 21-24, Pool A)."""
    sims = {label: SimHost(tmp_path / f"{label}.json") for label in ("gpu1", "gpu2")}
    registrations, placed = [], {}
    for host_number, (label, sim) in enumerate(sims.items(), start=1):
        for n in range(1, 5):
            uuid, vm_id = uuid_of(host_number, n), host_number * 10 + n
            sim.add_vm(uuid, f"{label}-vm{n}", "running", segment("A", 1, vm_id))
            registrations.append(Registration(uuid, f"{label}-vm{n}", "A", 1, vm_id))
            placed[uuid] = label
    store = Store(tmp_path / "vgpu.db")
    vms.db_register_many(store, registrations)
    yield store, sims, placed
    store.close()


def test_a_bulk_plan_spans_every_host_and_names_each_vms_host(fleet_of_two):
    store, sims, placed = fleet_of_two
    plan = bulk.plan_many(store, Fleet(sims), [{"vm_uuid": uuid, "pool": "B"} for uuid in placed])
    assert {p.vm_uuid: p.host for p in plan.plans} == placed
    assert [row["host"] for row in plan.records()] == list(placed.values())


def test_the_limits_per_host_and_overall_both_hold(fleet_of_two):
    store, sims, placed = fleet_of_two
    for sim in sims.values():
        sim.set_latency("clean_shutdown", 0.3)
    lock, in_flight, peaks = threading.Lock(), set(), {"gpu1": 0, "gpu2": 0, "all": 0}

    def progress(event):
        with lock:
            if event.step == "stopping":
                in_flight.add(event.vm_uuid)
            elif event.step == "started":
                in_flight.discard(event.vm_uuid)
            for label in ("gpu1", "gpu2"):
                peaks[label] = max(peaks[label], sum(placed[u] == label for u in in_flight))
            peaks["all"] = max(peaks["all"], len(in_flight))

    result = bulk.reconfigure_many(store, Fleet(sims), [{"vm_uuid": uuid, "priority": "high"} for uuid in placed],
                                   confirm=lambda plan: True, progress=progress, concurrency=3, per_host=2)
    assert result.ok and len(result.results) == 8
    assert peaks["gpu1"] <= 2 and peaks["gpu2"] <= 2 and 1 < peaks["all"] <= 3
    for uuid, label in placed.items():
        assert sims[label].power_state(uuid) is PowerState.RUNNING and "priority=2" in sims[label].booted_device_model_args(uuid)
    with store.reading() as conn:
        hosts = dict(conn.execute("SELECT vm_uuid, host FROM vgpu_operations WHERE outcome = 'done'").fetchall())
    assert hosts == placed  # each journal row names its VM's host


def test_the_next_vm_is_taken_from_the_hosts_in_turn(fleet_of_two):
    # The rows list gpu1's four VMs first: one at a time, gpu2 still gets every other turn, not the last four.
    store, sims, placed = fleet_of_two
    order = []
    bulk.reconfigure_many(store, Fleet(sims), [{"vm_uuid": uuid, "pool": "B"} for uuid in placed],
                          confirm=lambda plan: True, concurrency=1,
                          progress=lambda event: event.step == "finished" and order.append(placed[event.vm_uuid]))
    assert order == ["gpu1", "gpu2"] * 4


def test_turns_go_round_every_host_with_work_and_room():
    # Three hosts, two at a time: the third host is not kept waiting until the first two have emptied.
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert [groups[i] for i in _taken_in_order(groups, concurrency=2)] == ["a", "b", "c"] * 3


def _taken_in_order(groups, concurrency, per_group=None):
    """The order ``_Turns`` begins VMs in, each VM finishing in the order it began."""
    turns = workers._Turns(groups, concurrency, per_group)
    under_way, begun = [], []
    while True:
        more = turns.next()
        begun += more
        under_way += more
        if not under_way:
            return begun
        turns.finished(under_way.pop(0))


def test_turns_keep_the_limit_per_host_and_skip_a_host_at_it():
    groups = ["a"] * 4 + ["b"]
    turns = workers._Turns(groups, concurrency=3, per_group=1)
    assert [groups[i] for i in turns.next()] == ["a", "b"]  # room for a third, but a has its one
    assert turns.next() == []
    assert [groups[i] for i in _taken_in_order(groups, concurrency=3, per_group=2)] == ["a", "b", "a", "a", "a"]


def test_a_limit_per_host_below_one_is_refused(fleet_of_two):
    store, sims, placed = fleet_of_two
    plan = bulk.plan_many(store, Fleet(sims), [{"vm_uuid": next(iter(placed)), "pool": "B"}])
    with pytest.raises(InvalidValue, match="per_host"):
        bulk.apply_many(store, Fleet(sims), plan, per_host=0)


def test_rows_on_a_host_that_is_down_are_refused_by_name_with_nothing_changed(fleet_of_two):
    store, sims, placed = fleet_of_two
    sims["gpu2"].set_fault("unreachable", "on")
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(store, Fleet(sims), [{"vm_uuid": uuid, "pool": "B"} for uuid in placed])
    problems = caught.value.problems
    assert [p.row for p in problems] == [5, 6, 7, 8]  # gpu2's VMs; gpu1's rows were fine
    assert all(isinstance(p.error, HostUnreachable) and "host gpu2" in str(p.error) for p in problems)
    assert all(vm.pool_id == "A" for vm in vms.list_vms(store))


def test_a_row_whose_uuid_is_on_two_hosts_is_refused(fleet_of_two):
    store, sims, placed = fleet_of_two
    twin = uuid_of(1, 1)
    sims["gpu2"].add_vm(twin, "copy", "halted", "")
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(store, Fleet(sims), [{"vm_uuid": twin, "pool": "B"}])
    (problem,) = caught.value.problems
    assert isinstance(problem.error, DuplicateVM) and problem.error.hosts == ("gpu1", "gpu2")


@pytest.mark.parametrize("on_existing", ["error", "skip", "update"])
def test_a_registration_row_whose_uuid_is_on_two_hosts_is_refused_as_register_vm_refuses_it(fleet_of_two, on_existing):
    # A new VM copied to a second host, and a registered one likewise (its copy without the segment): neither
    # is planned, not even a segment to write (the last copy listed would win: its name, its host), and
    # nothing is registered or written. A registered VM's row is refused as plan_many refuses it.
    store, sims, placed = fleet_of_two
    new, twin = uuid_of(1, 9), uuid_of(1, 1)
    for label, sim in sims.items():
        sim.add_vm(new, f"new-{label}", "running", "")
    sims["gpu2"].add_vm(twin, "copy", "halted", "")
    rows = [{"uuid": new}, {"uuid": twin, "priority": "high"}, {"uuid": uuid_of(2, 1), "priority": "high"}]
    plan = bulk_register.plan_registrations(store, Fleet(sims), rows, on_existing=on_existing)
    assert (plan.vms, plan.to_write) == ((), ()) and "register" not in [record["action"] for record in plan.records()]
    assert [problem.row for problem in plan.problems] == ([1, 2, 3] if on_existing == "error" else [1, 2])
    for problem in plan.problems[:1 if on_existing == "error" else 2]:  # error: row 2 is registered already
        assert isinstance(problem.error, DuplicateVM) and problem.error.hosts == ("gpu1", "gpu2")
    if on_existing == "update":
        assert [change.vm_uuid for change in plan.updates.plans] == [uuid_of(2, 1)]
    result = bulk_register.register_planned(store, Fleet(sims), plan)
    assert result.registered == () and vms.find(store, new) is None
    assert all(sim.get_device_model_args(new) == "" for sim in sims.values())


def test_an_interrupted_batch_is_recovered_on_each_vms_own_host(fleet_of_two):
    store, sims, placed = fleet_of_two
    first = uuid_of(2, 1)

    class CutAtStart(SimHost):
        def start(self, vm_uuid):
            if vm_uuid == first:
                raise KeyboardInterrupt  # Ctrl-C while gpu2's first VM boots
            super().start(vm_uuid)

        def reopen(self):
            return CutAtStart(self.path)

    fleet = Fleet({"gpu1": sims["gpu1"], "gpu2": CutAtStart(sims["gpu2"].path)})
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": first, "pool": "B"}])
    with pytest.raises(KeyboardInterrupt):
        bulk.apply_many(store, fleet, plan)
    (op,) = journal.unfinished(store)
    assert (op.vm_uuid, op.host) == (first, "gpu2")
    (done,) = recovery.recover(store, Fleet(sims))
    assert done.action == recovery.FINISHED and sims["gpu2"].power_state(first) is PowerState.RUNNING
    assert "pool=B" in sims["gpu2"].booted_device_model_args(first)


def test_registration_rows_of_reachable_hosts_are_planned_while_another_host_is_down(fleet_of_two):
    # A registration CSV run again (on_existing skip or update) while a host is in maintenance: the rows of
    # the hosts that answer go ahead, and a row whose VM may be on the host that is down is refused by name.
    from vgpu import bulk_register

    store, sims, placed = fleet_of_two
    new_on_gpu1, new_on_gpu2 = uuid_of(1, 9), uuid_of(2, 9)
    sims["gpu1"].add_vm(new_on_gpu1, "gpu1-new", "halted", "")
    sims["gpu2"].add_vm(new_on_gpu2, "gpu2-new", "halted", "")
    sims["gpu2"].set_fault("unreachable", "on")
    rows = [{"uuid": uuid_of(1, 1), "pool": "B"}, {"uuid": new_on_gpu1}, {"uuid": new_on_gpu2}, {"uuid": uuid_of(2, 1)}]
    plan = bulk_register.plan_registrations(store, Fleet(sims), rows, on_existing="update")
    assert [vm.vm_uuid for vm in plan.vms] == [new_on_gpu1] and plan.vms[0].vm_name == "gpu1-new"
    assert [p.vm_uuid for p in plan.updates.plans] == [uuid_of(1, 1)]
    assert [problem.row for problem in plan.problems] == [3]  # the new VM no answering host lists
    assert isinstance(plan.problems[0].error, HostUnreachable)
    assert str(plan.problems[0].error).startswith(f"VM {new_on_gpu2} is on none of the hosts that answered; host gpu2:")
    assert [vm.vm_uuid for vm in plan.existing] == [uuid_of(2, 1)]  # unchanged: no change asked of it
    skipped = bulk_register.plan_registrations(store, Fleet(sims), rows, on_existing="skip")
    assert [vm.vm_uuid for vm in skipped.vms] == [new_on_gpu1] and len(skipped.existing) == 2


def test_registration_with_every_host_down_is_the_hosts_error(fleet_of_two):
    from vgpu import bulk_register

    store, sims, _ = fleet_of_two
    for sim in sims.values():
        sim.set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable):
        bulk_register.plan_registrations(store, Fleet(sims), [{"uuid": uuid_of(1, 1)}], on_existing="skip")


def _seen_on(store, uuid, label):
    from vgpu import locations

    with store.writing() as conn:
        locations.record(conn, [(uuid, label, None)])


def test_a_row_whose_vm_was_last_seen_on_a_host_that_is_down_is_refused_though_another_host_has_it(fleet_of_two):
    # gpu2 lists a copy of gpu1's VM while gpu1, where it was last seen, cannot be listed: changing the copy
    # alone would leave gpu1's VM behind with the old configuration (and the same vm_id).
    store, sims, placed = fleet_of_two
    twin = uuid_of(1, 1)
    _seen_on(store, twin, "gpu1")
    sims["gpu2"].add_vm(twin, "copy", "running", segment("A", 1, 11))
    sims["gpu1"].set_fault("unreachable", "on")
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(store, Fleet(sims), [{"vm_uuid": twin, "pool": "B"}, {"vm_uuid": uuid_of(2, 1), "pool": "B"}])
    (problem,) = caught.value.problems
    assert problem.row == 1 and isinstance(problem.error, HostUnreachable)
    assert str(problem.error).startswith(f"VM {twin} is on host gpu2, but it was last seen on host gpu1, which could not be asked")


def test_a_registration_row_whose_vm_was_last_seen_on_a_host_that_is_down_is_refused(fleet_of_two):
    from vgpu import bulk_register

    store, sims, placed = fleet_of_two
    new = uuid_of(1, 9)
    sims["gpu1"].add_vm(new, "new", "halted", "")
    _seen_on(store, new, "gpu1")  # a scan saw it there, unregistered
    sims["gpu2"].add_vm(new, "new-copy", "halted", "")
    sims["gpu1"].set_fault("unreachable", "on")
    rows = [{"uuid": new}, {"uuid": uuid_of(2, 1), "priority": "high"}, {"uuid": uuid_of(1, 1), "priority": "high"}]
    plan = bulk_register.plan_registrations(store, Fleet(sims), rows, on_existing="update")
    assert plan.vms == () and [p.vm_uuid for p in plan.updates.plans] == [uuid_of(2, 1)]
    assert [problem.row for problem in plan.problems] == [1, 3]
    assert str(plan.problems[0].error).startswith(f"VM {new} is on host gpu2, but it was last seen on host gpu1")



def test_a_row_whose_uuid_was_seen_on_two_hosts_is_refused_while_one_of_them_is_down(fleet_of_two):
    # A scan saw gpu1's VM and a copy on gpu2; with gpu2 down, changing gpu1's alone would leave the copy behind
    # with the old configuration and the same vm_id.
    from vgpu import bulk_register, scan

    store, sims, placed = fleet_of_two
    twin, new = uuid_of(1, 1), uuid_of(1, 9)
    sims["gpu2"].add_vm(twin, "copy", "running", segment("A", 1, 11))
    for sim in sims.values():
        sim.add_vm(new, "new", "halted", "")
    assert {c.vm_uuid for c in scan.scan(store, Fleet(sims)).conflicts} == {twin, new}
    sims["gpu2"].set_fault("unreachable", "on")
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(store, Fleet(sims), [{"vm_uuid": twin, "pool": "B"}, {"vm_uuid": uuid_of(1, 2), "pool": "B"}])
    (problem,) = caught.value.problems
    assert problem.row == 1 and isinstance(problem.error, HostUnreachable)
    assert str(problem.error).startswith(f"VM {twin} is on host gpu1, but it was last seen on host gpu2 too, which could not be asked")
    plan = bulk_register.plan_registrations(store, Fleet(sims), [{"uuid": new}], on_existing="skip")
    assert plan.vms == () and str(plan.problems[0].error).startswith(f"VM {new} is on host gpu1, but it was last seen on host gpu2 too")
    assert sims["gpu1"].get_device_model_args(twin) == segment("A", 1, 11)

# --- a copy that appeared since the fleet last looked ------------------------------------------------------


def test_a_change_on_a_long_lived_fleet_finds_a_copy_that_appeared_since_its_last_look(fleet_of_two):
    from vgpu import lifecycle, scan

    store, sims, placed = fleet_of_two
    fleet = Fleet(sims)  # a notebook's connection: it keeps where it saw each VM
    scan.status(store, fleet)
    vm = uuid_of(1, 1)
    sims["gpu2"].add_vm(vm, "copy", "halted", sims["gpu1"].get_device_model_args(vm))  # copied between pools since
    with pytest.raises(DuplicateVM) as caught:
        lifecycle.reconfigure_vm(store, fleet, vm, priority="high", confirm=lambda plan: True)
    assert caught.value.hosts == ("gpu1", "gpu2")
    assert sims["gpu1"].get_device_model_args(vm) == sims["gpu2"].get_device_model_args(vm) == segment("A", 1, 11)
    assert sims["gpu1"].power_state(vm) is PowerState.RUNNING and journal.unfinished(store) == []


def test_a_copy_that_appears_while_the_change_awaits_its_confirmation_is_refused(fleet_of_two):
    from vgpu import lifecycle

    store, sims, placed = fleet_of_two
    fleet = Fleet(sims)
    vm = uuid_of(1, 2)

    def confirm(plan):
        sims["gpu2"].add_vm(vm, "copy", "halted", sims["gpu1"].get_device_model_args(vm))
        return True

    with pytest.raises(DuplicateVM):
        lifecycle.reconfigure_vm(store, fleet, vm, priority="high", confirm=confirm)
    assert sims["gpu1"].get_device_model_args(vm) == segment("A", 1, 12) and sims["gpu1"].power_state(vm) is PowerState.RUNNING
    assert vms.get(store, vm).priority == 1 and journal.unfinished(store) == []


def test_a_bulk_apply_refuses_the_row_whose_vm_gained_a_copy_after_the_plan_and_does_the_rest(fleet_of_two):
    store, sims, placed = fleet_of_two
    fleet = Fleet(sims)
    copied, other = uuid_of(1, 3), uuid_of(1, 4)
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": copied, "pool": "B"}, {"vm_uuid": other, "pool": "B"}])
    sims["gpu2"].add_vm(copied, "copy", "halted", sims["gpu1"].get_device_model_args(copied))
    result = bulk.apply_many(store, fleet, plan)
    assert [failure.vm_uuid for failure in result.failures] == [copied]
    assert isinstance(result.failures[0].error, DuplicateVM)
    assert [done.vm.vm_uuid for done in result.results] == [other]
    assert sims["gpu1"].get_device_model_args(copied) == segment("A", 1, 13) and vms.get(store, copied).pool_id == "A"


def test_a_bulk_apply_lists_each_host_once_instead_of_asking_every_host_about_each_vm(tmp_path, fleet_of_two):
    store, sims, placed = fleet_of_two
    asked: list[tuple[str, str]] = []

    class Counted(SimHost):
        def list_vms(self):
            asked.append((Path(self.path).stem, "list_vms"))
            return super().list_vms()

        def power_state(self, vm_uuid):
            asked.append((Path(self.path).stem, "power_state"))
            return super().power_state(vm_uuid)

        def reopen(self):
            return Counted(self.path)

    fleet = Fleet({label: Counted(sim.path) for label, sim in sims.items()})
    on_gpu1 = [uuid for uuid, label in placed.items() if label == "gpu1"]
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": uuid, "pool": "B"} for uuid in on_gpu1])
    asked.clear()
    result = bulk.apply_many(store, fleet, plan)
    assert result.ok and len(result.results) == 4
    assert asked.count(("gpu2", "list_vms")) == 1  # the one look for copies made since the plan
    assert ("gpu2", "power_state") not in asked  # not asked about each of gpu1's VMs


# --- a host that is down is asked once per bulk call ----------------------------------------------------------


def test_a_bulk_change_asks_a_host_that_is_down_once_for_its_plan_and_its_apply(fleet_of_two):
    store, sims, placed = fleet_of_two
    down = UnreachableHost()
    fleet = Fleet({"gpu1": down, "gpu2": sims["gpu2"]})
    on_gpu2 = [uuid for uuid, label in placed.items() if label == "gpu2"]
    result = bulk.reconfigure_many(store, fleet, [{"vm_uuid": uuid, "priority": "high"} for uuid in on_gpu2],
                                   confirm=lambda plan: True, concurrency=2)
    assert result.ok and len(result.results) == 4
    assert down.attempts == ["list_vms"]  # the plan's listing; the apply's look for copies does not wait on it again
    bulk.reconfigure_many(store, fleet, [{"vm_uuid": on_gpu2[0], "priority": "low"}], confirm=lambda plan: True)
    assert down.attempts == ["list_vms", "list_vms"]  # the next bulk call asks again: it may be back


def test_writing_many_segments_asks_a_host_that_is_down_once_not_once_per_vm(fleet_of_two):
    from vgpu import bulk_register

    store, sims, placed = fleet_of_two
    on_gpu2 = [uuid for uuid, label in placed.items() if label == "gpu2"]
    down = UnreachableHost()
    written, failures = bulk_register.write_segments(store, Fleet({"gpu1": down, "gpu2": sims["gpu2"]}), on_gpu2,
                                                     concurrency=2)
    assert failures == [] and len(written) == 4
    assert len(down.attempts) == 1, down.attempts  # each VM's repair locates it: the workers share what failed


def _connection_to(store, fleet, monkeypatch):
    """A vgpu.connect() connection to ``store`` whose host is ``fleet`` (opened as the settings would be)."""
    from vgpu import opening
    from vgpu.connection import connect

    monkeypatch.setattr(opening, "open_hosts", lambda settings, ask=None: fleet)
    return connect(db=store.path, host="sim:demo")


def test_register_many_asks_a_host_that_is_down_once_for_its_plan_and_its_registering(fleet_of_two, monkeypatch):
    store, sims, _ = fleet_of_two
    new = [uuid_of(2, n) for n in (5, 6)]
    for uuid in new:
        sims["gpu2"].add_vm(uuid, "new", "running", "")
    down = UnreachableHost()
    with _connection_to(store, Fleet({"gpu1": down, "gpu2": sims["gpu2"]}), monkeypatch) as conn:
        result = conn.register_many([{"uuid": uuid} for uuid in new])
        assert result.ok and [vm.vm_uuid for vm in result.registered] == new
        assert len(down.attempts) == 1, down.attempts  # the plan's listing; the segments' writing does not wait again
        conn.register_many([{"uuid": new[0]}], on_existing="skip")
        assert len(down.attempts) == 2, down.attempts  # the next call asks again: it may be back


def test_register_many_planning_again_still_asks_a_host_that_is_down_once(fleet_of_two, monkeypatch):
    from vgpu import bulk_register

    store, sims, _ = fleet_of_two
    new = [uuid_of(2, n) for n in (5, 6)]
    for uuid in (*new, uuid_of(2, 7)):
        sims["gpu2"].add_vm(uuid, "new", "running", "")
    real_plan = bulk_register.plan_registrations
    plans = []

    def plan_then_someone_registers(store, host, rows, **options):
        plans.append(real_plan(store, host, rows, **options))
        if len(plans) == 1:  # another session takes the vm_id this plan chose for the first row
            vms.db_register(store, uuid_of(2, 7), vm_id=plans[0].vms[0].vm_id)
        return plans[-1]

    monkeypatch.setattr(bulk_register, "plan_registrations", plan_then_someone_registers)
    down = UnreachableHost()
    with _connection_to(store, Fleet({"gpu1": down, "gpu2": sims["gpu2"]}), monkeypatch) as conn:
        result = conn.register_many([{"uuid": uuid} for uuid in new])
    assert len(plans) == 2 and result.ok and [vm.vm_uuid for vm in result.registered] == new
    assert len(down.attempts) == 1, down.attempts


def test_a_host_that_goes_down_during_a_bulk_call_is_not_asked_for_the_vms_not_begun_yet(fleet_of_two, monkeypatch):
    # gpu2 is switched off while its first VM's change is part way (stopped, its args being written): that VM
    # gets its honest outcome (its rollback cannot reach gpu2 either: left to recover); gpu2's other VMs,
    # not begun yet, are spared: not journalled, gpu2 not asked about them, and each says why.
    store, sims, placed = fleet_of_two
    on_gpu2 = [uuid for uuid, label in placed.items() if label == "gpu2"]
    first = on_gpu2[0]

    class GoesDown(SimHost):
        def set_device_model_args(self, vm_uuid, value):
            if vm_uuid == first:
                self.set_fault("unreachable", "on")
            super().set_device_model_args(vm_uuid, value)

        def reopen(self):
            return GoesDown(self.path)

    refused = []
    reachable = SimHost._check_reachable

    def counted(faults):
        if faults.get("unreachable"):
            refused.append(threading.current_thread().name)
        reachable(faults)

    fleet = Fleet({"gpu1": sims["gpu1"], "gpu2": GoesDown(sims["gpu2"].path)})
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": uuid, "priority": "high"} for uuid in placed])
    monkeypatch.setattr(SimHost, "_check_reachable", staticmethod(counted))
    result = bulk.apply_many(store, fleet, plan, concurrency=4, per_host=1)
    assert len(result.results) == 4 and all(done.vm.vm_uuid not in on_gpu2 for done in result.results)
    failed = {failure.vm_uuid: failure.message for failure in result.failures}
    assert list(failed) == on_gpu2
    assert "rolling back also failed" in failed[first] and "vgpu-admin recover" in failed[first]
    for uuid in on_gpu2[1:]:
        assert failed[uuid].startswith("host gpu2: cannot reach the host: the simulated host is switched off"), failed[uuid]
        assert f"VM {uuid} was not begun" in failed[uuid] and "recover" not in failed[uuid]
        assert vms.get(store, uuid).priority == 1
    assert [op.vm_uuid for op in journal.unfinished(store)] == [first]  # only the VM part way is left to recover
    with store.reading() as conn:
        begun = {row[0] for row in conn.execute("SELECT vm_uuid FROM vgpu_operations")}
    assert begun.isdisjoint(on_gpu2[1:])  # nothing journalled for the VMs spared
    # gpu2 refused the first VM's cycle alone (its write, its rollback's write, the look at whether it was left
    # halted), and was not asked again in this call: 12 refusals when each VM not begun was tried as well
    assert len(refused) == 3, refused


def test_a_host_that_answers_with_an_error_part_way_through_a_bulk_call_still_gets_the_other_changes(fleet_of_two):
    # Only a host that cannot be reached is spared: one that refuses one VM's write (an internal error) answered.
    store, sims, placed = fleet_of_two
    on_gpu2 = [uuid for uuid, label in placed.items() if label == "gpu2"]
    fleet = Fleet(sims)
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": uuid, "priority": "high"} for uuid in on_gpu2])
    sims["gpu2"].set_fault("set_args", "fail", on_gpu2[0])
    result = bulk.apply_many(store, fleet, plan, per_host=1)
    assert [failure.vm_uuid for failure in result.failures] == [on_gpu2[0]]
    assert [done.vm.vm_uuid for done in result.results] == on_gpu2[1:]


def test_rows_of_a_host_gone_down_between_the_plan_and_the_apply_are_not_begun(fleet_of_two):
    store, sims, placed = fleet_of_two
    fleet = Fleet(sims)
    plan = bulk.plan_many(store, fleet, [{"vm_uuid": uuid, "priority": "high"} for uuid in placed])
    sims["gpu2"].set_fault("unreachable", "on")
    result = bulk.apply_many(store, fleet, plan, per_host=2)
    assert len(result.results) == 4 and len(result.failures) == 4
    assert all("was not begun" in failure.message for failure in result.failures)
    assert journal.unfinished(store) == []  # nothing left to recover: the apply's listing found gpu2 down


# --- bulk writing of segments: a host that stops answering part way -----------------------------------------


def _goes_down_on_write(path: Path, first: str) -> SimHost:
    """A simulated host switched off while the segment of VM ``first`` is being written."""

    class GoesDown(SimHost):
        def set_device_model_args(self, vm_uuid, value):
            if vm_uuid == first:
                self.set_fault("unreachable", "on")
            super().set_device_model_args(vm_uuid, value)

        def reopen(self):
            return GoesDown(self.path)

    return GoesDown(path)


def _refusals_counted(monkeypatch) -> list[str]:
    refused = []
    reachable = SimHost._check_reachable

    def counted(faults):
        if faults.get("unreachable"):
            refused.append(threading.current_thread().name)
        reachable(faults)

    monkeypatch.setattr(SimHost, "_check_reachable", staticmethod(counted))
    return refused


@pytest.mark.parametrize("labels", [("gpu1", "gpu2"), ("gpu2",)], ids=["fleet", "narrowed-to-one"])
def test_writing_segments_does_not_ask_again_a_host_that_stopped_answering_part_way(fleet_of_two, monkeypatch, labels):
    # gpu2 is switched off while its first VM's segment is written: that write fails as it does; gpu2's other
    # VMs, not begun yet, are not begun (nothing journalled, gpu2 not asked about them), each saying why.
    store, sims, placed = fleet_of_two
    on_gpu2 = [uuid for uuid, label in placed.items() if label == "gpu2"]
    for uuid in on_gpu2:
        sims["gpu2"].set_device_model_args(uuid, "")  # drift: each has a segment to write
    scan.scan(store, Fleet(sims))  # where each VM is, remembered (a new fleet has not looked yet)
    first = on_gpu2[0]
    members = {label: sims[label] if label == "gpu1" else _goes_down_on_write(sims["gpu2"].path, first) for label in labels}
    fleet = Fleet(members)
    refused = _refusals_counted(monkeypatch)
    written, failures = bulk_register.write_segments(store, fleet, on_gpu2, concurrency=1)
    assert written == []
    failed = {failure.vm_uuid: failure.message for failure in failures}
    assert list(failed) == on_gpu2
    named = "host gpu2: " if len(labels) > 1 else ""  # a fleet of one host passes its errors through as they are
    for uuid in on_gpu2[1:]:
        assert failed[uuid].startswith(f"{named}cannot reach the host: the simulated host is switched off"), failed[uuid]
        assert f"VM {uuid} was not begun" in failed[uuid] and "write_segments" in failed[uuid], failed[uuid]
    with store.reading() as conn:
        begun = {row[0] for row in conn.execute("SELECT vm_uuid FROM vgpu_operations")}
    assert begun.isdisjoint(on_gpu2[1:])  # nothing journalled for the VMs spared
    assert len(refused) <= 3, refused  # the first VM's write and what follows it; none for the others


def test_writing_segments_goes_on_with_the_other_hosts_vms_when_one_host_stops_answering(fleet_of_two):
    store, sims, placed = fleet_of_two
    for uuid, label in placed.items():
        sims[label].set_device_model_args(uuid, "")
    scan.scan(store, Fleet(sims))
    on_gpu1, on_gpu2 = ([uuid for uuid, label in placed.items() if label == host] for host in ("gpu1", "gpu2"))
    fleet = Fleet({"gpu1": sims["gpu1"], "gpu2": _goes_down_on_write(sims["gpu2"].path, on_gpu2[0])})
    interleaved = [uuid for pair in zip(on_gpu2, on_gpu1) for uuid in pair]  # gpu2 first, down from its first write
    written, failures = bulk_register.write_segments(store, fleet, interleaved, concurrency=1)
    assert [result.vm_uuid for result in written] == on_gpu1
    assert [failure.vm_uuid for failure in failures] == on_gpu2
    assert all("was not begun" in failure.message for failure in failures[1:])


# --- bulk planning of a VM last seen on a host this run does not have ------------------------------------------


def seen_on_gpu2(fleet_of_two):
    """The fleet scanned once (where each VM is, remembered), and one of gpu2's VMs."""
    store, sims, placed = fleet_of_two
    scan.scan(store, Fleet(sims))
    return store, sims, next(uuid for uuid, label in placed.items() if label == "gpu2")


@pytest.mark.parametrize(("elsewhere", "change", "code", "why"), [
    ((), {"priority": "high"}, "VM_ON_HOST_NOT_CONFIGURED", "which is not one of this run's configured hosts"),
    (("gpu2", "gpu3"), {"pool": "B"}, "VM_ON_HOST_LEFT_OUT", "which this run leaves out"),
])
def test_a_bulk_plan_row_of_a_vm_last_seen_on_a_host_this_run_does_not_have_says_so(fleet_of_two, elsewhere, change, code, why):
    store, sims, on_gpu2 = seen_on_gpu2(fleet_of_two)
    with pytest.raises(InvalidRows) as caught:
        bulk.plan_many(store, Fleet({"gpu1": sims["gpu1"]}, elsewhere=list(elsewhere)), [{"vm_uuid": on_gpu2, **change}])
    (problem,) = caught.value.problems
    assert getattr(problem.error, "code", None) == code, problem.error
    assert str(problem.error).startswith(f"VM {on_gpu2} is on none of this run's hosts (gpu1); it was last seen on host "
                                         f"gpu2, {why}"), problem.error


def test_a_registration_plan_update_of_a_vm_on_a_host_no_longer_configured_says_so(fleet_of_two):
    store, sims, on_gpu2 = seen_on_gpu2(fleet_of_two)
    plan = bulk_register.plan_registrations(store, Fleet({"gpu1": sims["gpu1"]}), [{"uuid": on_gpu2, "pool": "B"}],
                                            on_existing="update")
    (problem,) = plan.problems
    assert getattr(problem.error, "code", None) == "VM_ON_HOST_NOT_CONFIGURED", problem.error

"""Batches that tools can follow and stop: reports with done and total naming the VM they finish, a progress
bar with ``progress="auto"``, segments written several at a time, and an interrupt that hands back what was
done, what failed and what was not started."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
import types

import pytest

from vgpu import audit, bulk, bulk_register, journal, lifecycle, recovery, scan, vms, workers
from vgpu.errors import BulkInterrupted, InvalidValue, VgpuError
from vgpu.models import PowerState
from vgpu.sessions import Verdict

from .interruptkit import interrupt_after, interrupt_of
from .lifekit import Raising, Recorder, vm_uuid


@pytest.fixture
def unregistered(world):
    """Six VMs on the host, none registered: a file's worth for register_planned."""
    for number in range(10, 16):
        world.sim.add_vm(vm_uuid(number), f"new-{number}", "running" if number % 2 else "halted", "-vnc :1")
    return [vm_uuid(number) for number in range(10, 16)]


def _to_pool_b(world, uuids):
    return bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "B"} for u in uuids])


def _finishing(events):
    return [(event.step, event.vm_uuid, event.done, event.total) for event in events if event.finishes]


# --- done, total, and the VM each report finishes --------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_every_report_of_a_batch_carries_done_and_total_and_each_vm_is_finished_once(world, four, concurrency):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", four[2])
    progress = Recorder()
    result = bulk.apply_many(world.store, world.sim, _to_pool_b(world, four), progress=progress, concurrency=concurrency)
    assert len(result.results) == 3 and [f.vm_uuid for f in result.failures] == [four[2]]
    assert all(event.total == 4 for event in progress.events)
    finishing = _finishing(progress.events)
    assert [done for _, _, done, _ in finishing] == [1, 2, 3, 4]  # counted in the order they finished
    assert sorted((step, uuid) for step, uuid, _, _ in finishing) == sorted(
        [("finished", four[0]), ("finished", four[1]), ("failed", four[2]), ("finished", four[3])])
    failed = next(event for event in progress.events if event.step == "failed")
    assert failed.message.startswith(f"VM {four[2]} failed: ") and "previous configuration was restored" in failed.message
    for uuid in four:  # a VM's own reports come before the one that finishes it, and count only VMs before it
        own = [event for event in progress.events if event.vm_uuid == uuid]
        assert own[-1].finishes and not any(event.finishes for event in own[:-1])
        assert all(event.done < own[-1].done for event in own[:-1])


def test_register_planned_reports_each_segment_written_with_done_and_total(world, unregistered):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered])
    progress = Recorder()
    result = bulk_register.register_planned(world.store, world.sim, plan, progress=progress, concurrency=2)
    assert result.ok and len(result.segments) == 6
    finishing = _finishing(progress.events)
    assert [done for _, _, done, _ in finishing] == [1, 2, 3, 4, 5, 6]
    assert {uuid for step, uuid, _, total in finishing if step == "finished" and total == 6} == set(unregistered)
    assert {event.step for event in progress.events} == {"writing-segment", "finished"}


def test_a_segment_that_cannot_be_written_is_a_failed_report_and_a_failure(world, unregistered):
    world.sim.set_fault("set_args", "fail", unregistered[1])
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:3]])
    progress = Recorder()
    result = bulk_register.register_planned(world.store, world.sim, plan, progress=progress)
    assert [failure.vm_uuid for failure in result.failures] == [unregistered[1]]
    assert [(step, uuid) for step, uuid, _, _ in _finishing(progress.events) if step == "failed"] == [("failed", unregistered[1])]


# --- segments written several at a time -------------------------------------------------------------------


class _Meeting:
    """A host whose writes wait for ``parties`` writers to meet: writes one at a time never meet, and break
    the barrier (a failure of each VM, not a hang)."""

    def __init__(self, sim, barrier: threading.Barrier, seen: list) -> None:
        self.sim, self.barrier, self.seen = sim, barrier, seen

    def reopen(self):
        self.seen.append(threading.current_thread().name)
        return _Meeting(self.sim.reopen(), self.barrier, self.seen)

    def set_device_model_args(self, vm_uuid, value):
        self.barrier.wait()
        return self.sim.set_device_model_args(vm_uuid, value)

    def __getattr__(self, name):
        return getattr(self.sim, name)


def test_segments_are_written_several_at_a_time_each_writer_with_its_own_connections(world, unregistered):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:4]])
    opened: list = []
    host = _Meeting(world.sim, threading.Barrier(2, timeout=20), opened)
    result = bulk_register.register_planned(world.store, host, plan, concurrency=2)
    assert result.ok, result.failures
    assert len(opened) == 2 and all(name.startswith("vgpu-bulk") for name in opened)
    assert all(world.agrees(uuid) for uuid in unregistered[:4])
    assert world.open_ops() == []


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, "4", True])
def test_a_concurrency_that_is_not_a_whole_number_of_at_least_one_is_refused_before_anything(world, unregistered, concurrency):
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": unregistered[0]}])
    before = world.tables()
    with pytest.raises(InvalidValue, match="invalid concurrency"):
        bulk_register.register_planned(world.store, world.sim, plan, concurrency=concurrency)
    assert world.tables() == before


class _Index:
    """An integer of another type, as numpy.int64 is: it has __index__ and is no int."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"_Index({self.value})"


def _whole_numbers_of_other_types():
    numpy = pytest.importorskip("numpy")
    return [numpy.int64(2), numpy.uint8(2), _Index(2)]


def test_a_concurrency_and_a_per_host_of_any_integer_type_are_taken_as_vm_ids_are(world, four, unregistered):
    # numpy.int64 from a pandas cell: vm_id, priority, history(limit=) and max_rows take one, and so do these
    for number in _whole_numbers_of_other_types():
        moved = bulk.apply_many(world.store, world.sim, _to_pool_b(world, four[:2]), concurrency=number, per_host=number)
        assert moved.ok and len(moved.results) == 2, number
        bulk.apply_many(world.store, world.sim, bulk.plan_many(world.store, world.sim, [{"vm_uuid": u, "pool": "A"} for u in four[:2]]),
                        concurrency=number)
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:2]])
    assert bulk_register.register_planned(world.store, world.sim, plan, concurrency=_Index(2)).ok


@pytest.mark.parametrize("refused", [_Index(0), _Index(-3)])
def test_an_integer_of_another_type_below_one_is_still_refused(world, four, refused):
    with pytest.raises(InvalidValue, match=r"invalid concurrency _Index\(-?\d\): expected a whole number of at least 1"):
        bulk.apply_many(world.store, world.sim, _to_pool_b(world, four[:1]), concurrency=refused)


# --- progress="auto" ---------------------------------------------------------------------------------------


class _FakeBar:
    made: list = []

    def __init__(self, total=None, desc=None, unit=None):
        self.total, self.desc, self.unit, self.n, self.postfix, self.closed = total, desc, unit, 0, {}, False
        _FakeBar.made.append(self)

    def update(self, count=1):
        self.n += count

    def set_postfix(self, **values):
        self.postfix.update(values)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    """tqdm.auto as the batch sees it (tqdm is an optional extra, not installed for the tests)."""
    package, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    auto.tqdm = _FakeBar
    package.auto = auto
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    _FakeBar.made = []
    return _FakeBar


def test_progress_auto_draws_a_tqdm_bar_of_the_vms_when_tqdm_is_installed(world, four, fake_tqdm, capsys):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", four[0])
    result = bulk.apply_many(world.store, world.sim, _to_pool_b(world, four), progress="auto", concurrency=2)
    assert len(result.failures) == 1
    (bar,) = fake_tqdm.made
    assert (bar.total, bar.desc, bar.unit, bar.n, bar.postfix, bar.closed) == (4, "Reconfiguring", "VM", 4, {"failed": 1}, True)
    assert capsys.readouterr() == ("", "")  # the library itself prints nothing


def test_progress_auto_logs_a_line_per_vm_without_tqdm(world, unregistered, monkeypatch, caplog, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:3]])
    with caplog.at_level(logging.INFO, logger="vgpu.progress"):
        bulk_register.register_planned(world.store, world.sim, plan, progress="auto", concurrency=1)
    lines = [record.getMessage() for record in caplog.records if record.name == "vgpu.progress"]
    assert lines == [f"Writing segments [{n}/3] VM {uuid} finished" for n, uuid in enumerate(unregistered[:3], start=1)]
    assert capsys.readouterr() == ("", "")


def test_progress_other_than_a_callback_or_auto_is_refused_before_anything(world, four, unregistered):
    before = world.tables()
    with pytest.raises(InvalidValue, match="invalid progress 'bar': expected a callback, None or 'auto'"):
        bulk.apply_many(world.store, world.sim, _to_pool_b(world, four), progress="bar")
    with pytest.raises(InvalidValue, match="invalid progress"):
        bulk.reconfigure_many(world.store, world.sim, [{"vm_uuid": four[0], "pool": "B"}], confirm=lambda plan: True, progress=7)
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": unregistered[0]}])
    with pytest.raises(InvalidValue, match="invalid progress"):
        bulk_register.register_planned(world.store, world.sim, plan, progress="tqdm")
    assert world.tables() == before and world.open_ops() == []


# --- interrupts hand back the partial result --------------------------------------------------------------


def _ctrl_c_at(uuid: str, step: str):
    """A progress callback pressing Ctrl-C once (SIGINT to this process, received by the main thread) when
    VM ``uuid`` first reports ``step`` (a step reported again while waiting does not press it again)."""
    pressed = threading.Event()

    def progress(event):
        if event.vm_uuid == uuid and event.step == step and not pressed.is_set():
            pressed.set()
            os.kill(os.getpid(), signal.SIGINT)
    return progress


def test_ctrl_c_stops_the_batch_finishes_the_vm_under_way_and_hands_back_the_rest(world, four):
    world.sim.set_latency("clean_shutdown", 1.0)  # Ctrl-C arrives while the first VM is shutting down
    plan = _to_pool_b(world, four)
    try:
        bulk.apply_many(world.store, world.sim, plan, progress=_ctrl_c_at(four[0], "stopping"), concurrency=1)
    except KeyboardInterrupt as caught:  # what a script catches today still catches it
        interrupted = caught
    else:
        pytest.fail("the batch was not interrupted")
    assert isinstance(interrupted, BulkInterrupted) and not isinstance(interrupted, VgpuError)
    partial = interrupted.partial
    assert [r.vm.vm_uuid for r in partial.results] == [four[0]] and partial.failures == () and partial.interrupted == ()
    assert [p.vm_uuid for p in partial.not_started] == four[1:]
    assert str(interrupted) == ("Interrupted: 1 done, 0 failed, 3 not started (their plans are in .partial.not_started); "
                                "the exception's .partial holds the result so far")
    assert world.config(four[0]).pool_id == "B" and world.agrees(four[0]) and world.power(four[0]) is PowerState.RUNNING
    assert all(world.config(u).pool_id == "A" and world.agrees(u) for u in four[1:])  # untouched
    assert world.open_ops() == []
    assert [(row["vm_uuid"], row["outcome"]) for row in partial.records()] == [
        (four[0], "changed"), *((u, "not started") for u in four[1:])]
    again = bulk.apply_many(world.store, world.sim, bulk.BulkPlan(partial.not_started))  # the rest, later
    assert again.ok and all(world.config(u).pool_id == "B" for u in four)


def test_an_interrupt_raised_inside_a_vms_cycle_leaves_that_vm_to_recover_and_says_so(world, four):
    plan = _to_pool_b(world, four)

    def progress(event):
        if event.vm_uuid == four[1] and event.step == "updating":
            raise KeyboardInterrupt

    with pytest.raises(BulkInterrupted) as caught:
        bulk.apply_many(world.store, world.sim, plan, progress=progress, concurrency=1)
    partial = caught.value.partial
    assert [r.vm.vm_uuid for r in partial.results] == [four[0]]
    assert [p.vm_uuid for p in partial.interrupted] == [four[1]] and [p.vm_uuid for p in partial.not_started] == four[2:]
    assert "1 cut part way (run 'vgpu-admin recover' to finish or undo them)" in str(caught.value)
    (op,) = world.open_ops()
    assert op.vm_uuid == four[1] and op.interrupted
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["rolled-back"]


def test_ctrl_c_while_writing_segments_hands_back_the_registered_vms_and_those_still_to_write(world, unregistered):
    world.sim.set_latency("set_args", 1.0)
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:4]])
    with pytest.raises(BulkInterrupted) as caught:
        bulk_register.register_planned(world.store, world.sim, plan, concurrency=1,
                                       progress=_ctrl_c_at(unregistered[0], "writing-segment"))
    partial = caught.value.partial
    assert [vm.vm_uuid for vm in partial.registered] == unregistered[:4]  # one transaction: all registered
    assert [segment.vm_uuid for segment in partial.segments] == [unregistered[0]]
    assert partial.not_started == tuple(unregistered[1:4]) and partial.interrupted == () and not partial.ok
    assert "3 not started (registered, their segments not written yet: write_segments(store, host, partial.not_started)" in str(caught.value)
    assert world.agrees(unregistered[0]) and not any(world.agrees(u) for u in unregistered[1:4])
    written, failures = bulk_register.write_segments(world.store, world.sim, partial.not_started)
    assert len(written) == 3 and failures == [] and all(world.agrees(u) for u in unregistered[:4])


def _registering_interrupted(world, monkeypatch, uuids, module, name):
    """The plan registering ``uuids``, and the interrupt register_planned ended with, landing just after
    ``module.name`` returned (patched for that call only)."""
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in uuids])
    interrupt_after(monkeypatch, module, name)
    caught = interrupt_of(lambda: bulk_register.register_planned(world.store, world.sim, plan))
    monkeypatch.undo()
    return plan, caught


def _registered(world, uuids):
    with world.store.reading() as conn:
        return sorted(vms.select_registered(conn, list(uuids)))


def test_ctrl_c_just_after_the_registering_transaction_hands_back_every_vm_registered_with_none_written(
        world, unregistered, monkeypatch):
    # The transaction has committed, the batch writing the segments has not begun: every VM is registered
    # without its segment, which the partial result and its sentence must say (not a bare KeyboardInterrupt).
    plan, caught = _registering_interrupted(world, monkeypatch, unregistered[:3], vms, "db_register_many")
    assert isinstance(caught, BulkInterrupted), "a bare KeyboardInterrupt, with nothing of what was registered"
    partial = caught.partial
    assert [(vm.vm_uuid, vm.vm_name, vm.config) for vm in partial.registered] == [
        (vm.vm_uuid, vm.vm_name, vm.config) for vm in plan.vms]  # as the database has them, timestamps too
    assert [vm.vm_uuid for vm in partial.registered] == unregistered[:3] and all(vm.created_at for vm in partial.registered)
    assert partial.not_started == tuple(unregistered[:3]) and partial.segments == () and partial.interrupted == ()
    assert str(caught) == (
        "Interrupted: 0 done, 0 failed, 3 not started (registered, their segments not written yet: "
        "write_segments(store, host, partial.not_started) writes them); the exception's .partial holds the result so far")
    assert not any(world.agrees(u) for u in unregistered[:3]) and world.open_ops() == []
    written, failures = bulk_register.write_segments(world.store, world.sim, partial.not_started)
    assert len(written) == 3 and failures == [] and all(world.agrees(u) for u in unregistered[:3])


def test_ctrl_c_after_the_registering_before_the_batch_begins_hands_back_the_vms_still_to_write(
        world, unregistered, monkeypatch):
    # Landing in the batch's setting up (its progress bar made, no VM begun), after the commit.
    plan, caught = _registering_interrupted(world, monkeypatch, unregistered[:2], workers, "reporter")
    assert isinstance(caught, BulkInterrupted), "a bare KeyboardInterrupt, with nothing of what was registered"
    partial = caught.partial
    assert [vm.vm_uuid for vm in partial.registered] == unregistered[:2]
    assert partial.not_started == tuple(unregistered[:2]) and partial.segments == ()
    assert _registered(world, unregistered[:2]) == sorted(unregistered[:2]) and world.open_ops() == []


def test_ctrl_c_inside_the_registering_transaction_registers_nothing_and_stays_a_plain_interrupt(
        world, unregistered, monkeypatch):
    # Before the commit: the transaction is rolled back, nothing is registered, so there is no partial result.
    plan, caught = _registering_interrupted(world, monkeypatch, unregistered[:3], audit, "record_registrations_since")
    assert type(caught) is KeyboardInterrupt and caught.__notes__ == [
        "Interrupted before the registration was committed: nothing was registered or written."]
    assert _registered(world, unregistered[:3]) == [] and world.open_ops() == []
    assert bulk_register.register_planned(world.store, world.sim, plan).ok  # the same plan, as if never begun


def test_an_interrupted_write_of_segments_alone_lists_every_vm_with_its_outcome(world, four):
    # write_segments on its own (a bulk repair) is given only UUIDs; its partial result must still have a row
    # for every VM, as register_planned's does: the written, and those not started (an unregistered VM too).
    world.sim.add_vm(vm_uuid(9), "stray-9", "halted")
    finished = []

    def stop_after_two(event):
        if event.finishes:
            finished.append(event.vm_uuid)
            if len(finished) == 2:
                raise KeyboardInterrupt

    with pytest.raises(BulkInterrupted) as caught:
        bulk_register.write_segments(world.store, world.sim, [*four, vm_uuid(9)], progress=stop_after_two, concurrency=1)
    partial = caught.value.partial
    assert [segment.vm_uuid for segment in partial.segments] == four[:2] and partial.not_started == (*four[2:], vm_uuid(9))
    assert [(record["vm_uuid"], record["vm_name"], record["segment"]) for record in partial.records()] == [
        *((uuid, f"vm-{number}", "written") for number, uuid in enumerate(four[:2], 1)),
        *((uuid, f"vm-{number}", "not written yet (not started)") for number, uuid in enumerate(four[2:], 3)),
        (vm_uuid(9), None, "not written yet (not started)"),
    ]
    assert str(partial).startswith(
        "RegistrationResult: 4 VMs registered, 0 segments not written, 0 interrupted, 3 not started")


def test_ctrl_c_landing_while_a_worker_thread_starts_still_waits_for_that_vm(world, unregistered, monkeypatch):
    # The interrupt lands inside the executor's submit, after the worker thread started (its VM under way)
    # but before the executor recorded the thread, so shutting the executor down does not wait for it. The
    # batch must still wait for the VM under way and report it written, not cut: it was, a moment later.
    world.sim.set_latency("set_args", 0.5)
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": u} for u in unregistered[:3]])
    real_start, pressed = threading.Thread.start, threading.Event()

    def start_then_ctrl_c(thread):
        real_start(thread)
        if thread.name.startswith("vgpu-bulk") and not pressed.is_set():
            pressed.set()
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_ctrl_c)
    with pytest.raises(BulkInterrupted) as caught:
        bulk_register.register_planned(world.store, world.sim, plan, concurrency=1)
    monkeypatch.undo()
    partial = caught.value.partial
    assert [segment.vm_uuid for segment in partial.segments] == [unregistered[0]]
    assert partial.interrupted == () and partial.not_started == tuple(unregistered[1:3])
    assert world.agrees(unregistered[0]) and world.open_ops() == []


def test_an_interrupted_batch_pickles_with_its_partial_result(world, four):
    with pytest.raises(BulkInterrupted) as caught:
        bulk.apply_many(world.store, Raising(world.sim, "set_device_model_args", KeyboardInterrupt, four[0]),
                        _to_pool_b(world, four), concurrency=1)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is BulkInterrupted and str(copy) == str(caught.value)
    assert copy.partial == caught.value.partial and len(copy.partial.not_started) == 3
    assert [r.vm_uuid for r in recovery.recover(world.store, world.sim)] == [four[0]]  # the VM it cut
    assert all(world.agrees(u) for u in four) and world.open_ops() == []


def test_a_lone_vms_reports_keep_done_and_total_at_zero(world, four):
    progress = Recorder()
    lifecycle.reconfigure_vm(world.store, world.sim, four[0], pool="B", confirm=lambda plan: True, progress=progress)
    assert progress.events and all((event.done, event.total) == (0, 0) and not event.finishes for event in progress.events)


# --- a second Ctrl-C stops waiting; the VMs still under way stay in progress -------------------------------


class _Held:
    """The host behind ``sim``, except that writing VM ``vm``'s args presses Ctrl-C, sets ``reached`` and
    waits for ``go``: a VM's cycle held part way for as long as a test needs. Then the write is made or, with
    ``then``, that exception is raised instead (the cycle cut part way, after the caller stopped waiting)."""

    def __init__(self, sim, vm: str, reached: threading.Event, go: threading.Event, then=None, threads=None) -> None:
        self.sim, self.vm, self.reached, self.go, self.then = sim, vm, reached, go, then
        self.threads = [] if threads is None else threads

    def reopen(self) -> "_Held":
        return _Held(self.sim.reopen(), self.vm, self.reached, self.go, self.then, self.threads)

    def set_device_model_args(self, vm_uuid, value):
        if vm_uuid == self.vm and not self.reached.is_set():
            self.threads.append(threading.current_thread())
            self.reached.set()
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: the batch waits for this VM
            assert self.go.wait(timeout=60), "the test never let the held write go"
            if self.then is not None:
                raise self.then
        return self.sim.set_device_model_args(vm_uuid, value)

    def __getattr__(self, name):
        return getattr(self.sim, name)


def _stopped_waiting(world, four, monkeypatch, request, then=None, call=None):
    """``call(held)`` (by default apply_many moving VM 1, running, to pool B), held while writing VM 1's args,
    where Ctrl-C is pressed twice: once as the write begins, again as the batch waits for the VM. Returns
    the BulkInterrupted, the held host, and the event that lets the worker go on."""
    reached, go = threading.Event(), threading.Event()
    held = _Held(world.sim, four[0], reached, go, then)
    request.addfinalizer(go.set)  # a failing test does not leave the worker waiting
    real_wait = workers._Batch.wait_until_idle

    def ctrl_c_again(batch):
        os.kill(os.getpid(), signal.SIGINT)
        real_wait(batch)

    if call is None:
        call = lambda host: bulk.apply_many(world.store, host, _to_pool_b(world, four[:1]), concurrency=1)  # noqa: E731
    monkeypatch.setattr(workers._Batch, "wait_until_idle", ctrl_c_again)
    with pytest.raises(BulkInterrupted) as caught:
        call(held)
    monkeypatch.undo()
    assert reached.is_set() and not go.is_set()  # the call returned while the VM's worker still waits
    return caught.value, held, go


def _in_progress_here(world, uuid):
    (op,) = world.open_ops()
    assert op.vm_uuid == uuid and op.step == journal.WRITING_ARGS
    assert not op.interrupted and not op.needs_recovery and op.liveness()[0] is Verdict.ALIVE
    assert [(entry.vm_uuid, entry.in_progress) for entry in scan.status(world.store, world.sim).unfinished] == [(uuid, True)]
    (skipped,) = recovery.recover(world.store, world.sim)
    assert skipped.action == "skipped" and skipped.detail.startswith("still in progress in session"), skipped
    return op


def _join(held):
    (thread,) = held.threads
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_a_second_ctrl_c_returns_at_once_and_recover_leaves_the_vm_to_its_worker_which_finishes_it(world, four, monkeypatch, request):
    stopped, held, go = _stopped_waiting(world, four, monkeypatch, request)
    _in_progress_here(world, four[0])
    assert world.config(four[0]).pool_id == "B" and world.power(four[0]) is PowerState.HALTED  # recover did nothing
    assert [plan.vm_uuid for plan in stopped.partial.interrupted] == [four[0]]
    assert str(stopped) == ("Interrupted: 0 done, 0 failed, 1 still under way (this process stopped waiting for it: "
                            "its change goes on in the background until done, rolled back or left to 'vgpu-admin "
                            "recover'), 0 not started; the exception's .partial holds the result so far")
    go.set()
    _join(held)
    assert world.open_ops() == [] and recovery.recover(world.store, world.sim) == []  # nothing left to recover
    assert world.config(four[0]).pool_id == "B" and world.agrees(four[0]) and world.power(four[0]) is PowerState.RUNNING


def test_a_vm_cut_after_the_caller_stopped_waiting_is_released_by_its_worker_for_recover(world, four, monkeypatch, request):
    _, held, go = _stopped_waiting(world, four, monkeypatch, request, then=KeyboardInterrupt())
    _in_progress_here(world, four[0])
    go.set()
    _join(held)
    (op,) = world.open_ops()
    assert op.interrupted and op.needs_recovery  # given up by the thread that was doing it, as it ended
    assert [r.action for r in recovery.recover(world.store, world.sim)] == ["finished"]
    assert world.open_ops() == [] and world.config(four[0]).pool_id == "B" and world.agrees(four[0])
    assert world.power(four[0]) is PowerState.RUNNING


def test_writing_segments_stopped_waiting_says_the_vm_is_still_under_way(world, four, monkeypatch, request):
    from vgpu import bulk_register

    world.sim.set_device_model_args(four[0], "")  # its segment is to be written again
    stopped, held, go = _stopped_waiting(world, four, monkeypatch, request,
                                         call=lambda host: bulk_register.write_segments(world.store, host, [four[0]], concurrency=1))
    assert str(stopped).startswith("Interrupted: 0 done, 0 failed, 1 still under way (this process stopped waiting")
    go.set()
    _join(held)
    assert world.open_ops() == [] and world.agrees(four[0])


def _rows_still_under_way(world, four, kind):
    """(kind's call of VM 1, what the row of a VM still under way says): apply_many's error column, or the
    segment column of write_segments' and register_planned's (a file run again: VM 1's segment to write)."""
    if kind == "apply_many":
        return (lambda host: bulk.apply_many(world.store, host, _to_pool_b(world, four[:1]), concurrency=1)), "error"
    world.sim.set_device_model_args(four[0], "")  # its segment is to be written again
    if kind == "write_segments":
        return (lambda host: bulk_register.write_segments(world.store, host, [four[0]], concurrency=1)), "segment"
    plan = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": four[0]}], on_existing="skip")
    assert plan.to_write == (four[0],)
    return (lambda host: bulk_register.register_planned(world.store, host, plan, concurrency=1)), "segment"


@pytest.mark.parametrize("kind", ["apply_many", "write_segments", "register_planned"])
def test_the_partial_result_says_a_vm_still_under_way_is_so_not_that_it_needs_recover(world, four, monkeypatch, request, kind):
    # The exception's sentence says the VM is still under way; its row said "run 'vgpu-admin recover'",
    # which then finds nothing to do once the thread ends.
    call, column = _rows_still_under_way(world, four, kind)
    stopped, held, go = _stopped_waiting(world, four, monkeypatch, request, call=call)
    (record,) = [record for record in stopped.partial.records() if record["vm_uuid"] == four[0]]
    assert record[column].startswith("still under way (this process stopped waiting for it)"), record
    assert "run 'vgpu-admin recover'" not in record[column]
    assert "1 still under way" in str(stopped.partial).splitlines()[0]
    assert not stopped.partial.ok
    go.set()
    _join(held)
    assert world.open_ops() == [] and recovery.recover(world.store, world.sim) == [] and world.agrees(four[0])

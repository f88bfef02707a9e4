"""Several processes registering into one DB file at once: no errors, no lost rows, no duplicate vm_ids."""

from __future__ import annotations

import multiprocessing
import traceback

from vgpu import audit, vms
from vgpu.store import Store

PROCESSES = 8
PER_PROCESS = 250


def uuid_for(worker: int, number: int) -> str:
    return f"{worker:08x}-0000-4000-8000-{number:012x}"


def register_in_a_process(path: str, worker: int, start, results) -> None:
    """Child process: open its own store, wait for the others, then register PER_PROCESS VMs with auto ids."""
    ids: list[int] = []
    errors: list[str] = []
    try:
        with Store(path) as store:
            start.wait(timeout=60)
            for number in range(PER_PROCESS):
                try:
                    ids.append(vms.db_register(store, uuid_for(worker, number), vm_name=f"w{worker}-{number}").vm_id)
                except Exception:  # reported to the parent, which fails the test with it
                    errors.append(traceback.format_exc())
    except Exception:
        errors.append(traceback.format_exc())
    results.put((worker, ids, errors))


def test_eight_processes_register_2000_vms_with_distinct_ids(tmp_path):
    # Nobody creates the file first: the processes also race to initialise the schema.
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")  # no inherited SQLite handles or locks
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=register_in_a_process, args=(path, worker, start, results)) for worker in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    try:
        reports = [results.get(timeout=120) for _ in workers]
    finally:
        for process in workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [error for _, _, errs in reports for error in errs]
    assert errors == [], errors[0]
    assert all(process.exitcode == 0 for process in workers)

    total = PROCESSES * PER_PROCESS
    returned_ids = [vm_id for _, ids, _ in reports for vm_id in ids]
    assert sorted(returned_ids) == list(range(1, total + 1))
    with Store(path) as store:
        registered = vms.list_vms(store)
        entries = audit.history(store)
    assert len(registered) == total
    assert sorted(vm.vm_id for vm in registered) == list(range(1, total + 1))
    assert {vm.vm_uuid for vm in registered} == {uuid_for(w, n) for w in range(PROCESSES) for n in range(PER_PROCESS)}
    by_uuid = {vm.vm_uuid: vm.vm_id for vm in registered}
    for worker, ids, _ in reports:  # each process got back the id that was stored for its VM
        assert ids == [by_uuid[uuid_for(worker, n)] for n in range(PER_PROCESS)]
    assert len(entries) == total and {e.action for e in entries} == {"register"}


def register_a_batch_in_a_process(path: str, worker: int, results) -> None:
    try:
        with Store(path) as store:
            vms.db_register_many(store, [{"vm_uuid": uuid_for(100 + worker, n)} for n in range(100)])
        results.put((worker, ""))
    except Exception:
        results.put((worker, traceback.format_exc()))


def test_concurrent_register_many_batches_never_collide(tmp_path):
    path = str(tmp_path / "batches.db")
    Store(path).close()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=register_a_batch_in_a_process, args=(path, w, results)) for w in range(4)]
    for process in workers:
        process.start()
    reports = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    assert [error for _, error in reports if error] == []
    with Store(path) as store:
        ids = sorted(vm.vm_id for vm in vms.list_vms(store))
    assert ids == list(range(1, 4 * 100 + 1))

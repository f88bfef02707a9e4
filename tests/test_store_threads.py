"""A Store serves the thread that opened it: another thread gets a clear StoreError, never two threads'
statements interleaved in one connection (one thread's COMMIT would commit the other's half-done writes)."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from vgpu import pools, vms
from vgpu.errors import StoreError
from vgpu.store import Store

UUID = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


def _in_another_thread(fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


@pytest.mark.parametrize("use", [
    lambda store: pools.list_pools(store),                   # a read
    lambda store: vms.db_register(store, UUID, pool="B"),     # a write
])
def test_another_thread_gets_a_sentence_saying_to_reopen(store, snapshot, use):
    before = snapshot()
    with pytest.raises(StoreError) as caught:
        _in_another_thread(lambda: use(store))
    assert str(caught.value) == (
        f"database {store.path} serves another thread, and a Store serves one thread only; give this thread its "
        "own with store.reopen() (conn.reopen() for a vgpu.connect() connection)"
    )
    assert caught.value.path == store.path
    assert snapshot() == before
    assert [pool.pool_id for pool in pools.list_pools(store)] == ["A", "B"]  # its own thread carries on


def test_a_store_reopened_in_another_thread_is_that_threads_own(store):
    def register_there():
        with store.reopen() as own:
            return vms.db_register(own, UUID, pool="B").vm_id

    assert _in_another_thread(register_there) == 1
    assert vms.get(store, UUID).pool_id == "B"


def test_a_store_may_be_closed_by_another_thread(db_path):
    opened = Store(db_path)
    _in_another_thread(opened.close)
    with pytest.raises(StoreError, match="was closed"):
        pools.list_pools(opened)


def test_a_store_reopened_here_serves_the_thread_it_is_handed_to(store):
    # executor.submit(work, store.reopen()): the reopened store is the worker's, its first user
    own = store.reopen()
    try:
        assert _in_another_thread(lambda: vms.db_register(own, UUID, pool="B").vm_id) == 1
        with pytest.raises(StoreError, match="serves another thread, and a Store serves one thread only"):
            pools.list_pools(own)  # now the worker's: this thread may no longer use it
    finally:
        own.close()
    assert vms.get(store, UUID).pool_id == "B"


def test_a_reopened_store_used_here_first_stays_this_threads(store):
    with store.reopen() as own:
        pools.list_pools(own)
        with pytest.raises(StoreError, match="serves another thread"):
            _in_another_thread(lambda: pools.list_pools(own))


def test_a_reopened_store_that_two_threads_use_at_once_serves_one_of_them(store):
    own = store.reopen()
    ready = threading.Barrier(2)
    outcomes: list[str] = []

    def use() -> None:
        ready.wait()
        try:
            pools.list_pools(own)
            outcomes.append("served")
        except StoreError:
            outcomes.append("refused")

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    own.close()
    assert sorted(outcomes) == ["refused", "served"]

"""A Store serves the thread that opened it: another thread gets a clear StoreError, never two threads'
statements interleaved in one connection (one thread's COMMIT would commit the other's half-done writes)."""

from __future__ import annotations

import concurrent.futures

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
        f"database {store.path} was opened by another thread, and a Store serves only the thread that "
        "opened it; call store.reopen() in this thread for a connection of its own"
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

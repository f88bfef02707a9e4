"""The background name refresher: builds on its own connections, swaps atomically, coalesces, never raises."""

from __future__ import annotations

import threading

import pytest

from shell import names
from shell.context import Context
from shell.console import Console
from shell.refresher import Refresher
from vgpu import config, errors
from vgpu.store import Store

from .clikit import SpecHost

WAIT = 30  # seconds; generous, never asserted on


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


@pytest.fixture
def shell_store(spec):
    with Store(spec.db) as opened:
        yield opened


def refreshed(refresher: Refresher) -> names.NameCache:
    refresher.request()
    assert refresher.wait(WAIT)
    return refresher.cache


def test_builds_names_from_the_db_and_the_host(spec, shell_store):
    cache = refreshed(Refresher(shell_store, spec.sim))
    assert cache.host_ok and cache.db_ok
    assert len(cache.registered) == 20 and [vm.name for vm in cache.unregistered] == ["VM-21", "VM-22", "VM-23"]
    assert [(p.pool_id, p.vm_count) for p in cache.pools] == [("A", 7), ("B", 13)]
    vm3 = next(vm for vm in cache.registered if vm.name == "VM-3")
    assert (vm3.uuid, vm3.meta) == (spec.uuid("VM-3"), "VM-3 · Pool A")


def test_unregistered_names_complete_in_natural_order(spec, shell_store):
    for number in (10, 9):
        spec.sim.add_vm(f"9a9a9a9a-0000-4000-8000-{number:012d}", f"VM-{number + 20}", "halted")
    cache = names.build(shell_store, spec.sim)
    assert [vm.name for vm in cache.unregistered] == ["VM-21", "VM-22", "VM-23", "VM-29", "VM-30"]
    spec.sim.add_vm("9a9a9a9a-0000-4000-8000-000000000100", "VM-100", "halted")
    cache = names.build(shell_store, spec.sim)
    assert [vm.name for vm in cache.unregistered][-2:] == ["VM-30", "VM-100"]


def test_builds_on_its_own_connections_not_the_shells(spec, shell_store):
    seen = []

    def build(store, host):
        seen.append((store, host, threading.current_thread()))
        return names.build(store, host)

    refreshed(Refresher(shell_store, spec.sim, build=build))
    ((store, host, thread),) = seen
    assert store is not shell_store and store.path == shell_store.path
    assert host is not spec.sim and host.path == spec.sim.path
    assert thread is not threading.main_thread()


def test_db_only_when_the_host_is_unreachable(spec, shell_store):
    spec.sim.set_fault("unreachable", "on")
    cache = refreshed(Refresher(shell_store, spec.sim))
    assert not cache.host_ok and cache.db_ok
    assert len(cache.registered) == 20 and cache.unregistered == () and cache.on_host == ()
    assert all("not on the host" not in vm.meta for vm in cache.registered)  # unknown is not missing


def test_db_only_without_a_host(shell_store):
    cache = refreshed(Refresher(shell_store, None))
    assert not cache.host_ok and len(cache.registered) == 20


def test_host_only_without_a_db(spec):
    cache = refreshed(Refresher(None, spec.sim))
    assert not cache.db_ok and cache.host_ok and len(cache.unregistered) == 23


def test_a_change_shows_after_the_next_refresh(spec, shell_store):
    refresher = Refresher(shell_store, spec.sim)
    before = refreshed(refresher)
    spec.sim.add_vm("99999999-0000-4000-8000-000000000099", "fresh-vm")
    after = refreshed(refresher)
    assert "fresh-vm" in [vm.name for vm in after.unregistered]
    assert "fresh-vm" not in [vm.name for vm in before.unregistered]  # a snapshot never changes under a reader


class Gate:
    """A build function that blocks until released and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, store, host) -> names.NameCache:
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT)
        return names.NameCache(pools=(names.PoolName("A", "Pool A", self.calls),))


def test_requests_during_a_build_coalesce_into_one_more(shell_store):
    gate = Gate()
    refresher = Refresher(shell_store, None, build=gate)
    refresher.request()
    assert gate.started.wait(WAIT)
    assert refresher.refreshing
    for _ in range(5):
        refresher.request()
    gate.release.set()
    assert refresher.wait(WAIT)
    assert gate.calls == 2
    assert refresher.cache.pools[0].vm_count == 2  # the newest build won
    assert not refresher.refreshing


def test_readers_see_whole_snapshots_only(shell_store):
    built = [names.NameCache(pools=(names.PoolName("A", "Pool A", n),)) for n in range(50)]
    produced = iter(built)
    refresher = Refresher(shell_store, None, build=lambda store, host: next(produced))
    seen = set()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.add(id(refresher.cache))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in built:
        refresher.request()
        assert refresher.wait(WAIT)
    stop.set()
    reader.join(WAIT)
    assert seen <= {id(cache) for cache in built} | {id(names.EMPTY)}
    assert refresher.cache is built[-1]


def test_no_exception_escapes_the_thread(shell_store, monkeypatch):
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)

    def broken(store, host):
        raise RuntimeError("boom")

    refresher = Refresher(shell_store, None, build=broken)
    refresher.request()
    assert refresher.wait(WAIT)
    assert escaped == []
    assert refresher.cache is names.EMPTY  # the old names stay
    assert refresher.last_error == "RuntimeError: boom"


def test_a_store_that_cannot_reopen_keeps_the_old_names(tmp_path, monkeypatch):
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    store = Store(tmp_path / "gone.db")
    store.close()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # reopening now fails: the path is a directory
    refresher = Refresher(store, None)
    refresher.request()
    assert refresher.wait(WAIT)
    assert escaped == [] and refresher.cache is names.EMPTY
    assert "is a directory" in refresher.last_error


def test_swap_notifications_and_a_failing_listener(shell_store):
    calls = []

    def listener():
        calls.append(1)
        raise RuntimeError("redraw failed")

    refresher = Refresher(shell_store, None, on_swap=listener)
    cache = refreshed(refresher)
    assert len(calls) == 2  # "refreshing" shown, then the new names
    assert len(cache.registered) == 20 and cache.db_ok  # the build went on despite the listener


def test_closed_refresher_ignores_requests(shell_store):
    gate = Gate()
    refresher = Refresher(shell_store, None, build=gate)
    refresher.close()
    refresher.request()
    assert refresher.wait(WAIT) and gate.calls == 0


def test_the_background_refresh_never_asks_for_a_password(tmp_path):
    ctx = Context(config.load({"db": str(tmp_path / "x.db"), "host": "sim:demo"}), Console(None, None, None))
    failure = []

    def ask():
        try:
            ctx._password()
        except errors.ConfigError as error:
            failure.append(str(error))

    worker = threading.Thread(target=ask)
    worker.start()
    worker.join(WAIT)
    assert failure and "VGPU_XAPI_PASSWORD" in failure[0]

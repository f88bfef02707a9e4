"""A database that cannot be written (read-only, a full disk, an I/O error), before a change or part way
through one: one sentence naming the file and the cause, what became of the VM, and exit 1.

Tests run as root, whom file modes do not stop, so writes are made to fail in two ways that hold for root:
a connection opened through SQLite's read-only URI (a real SQLITE_READONLY), and a connection that raises
SQLite's own error for a full disk or a failing one at each write (SQLite offers no other way to make a
healthy disk fail). test_store.py runs the chmod cases in a process stripped of root's override.
"""

from __future__ import annotations

import sqlite3

import pytest

from vgpu import devargs, journal, lifecycle, recovery, store as store_module, store_faults, vms
from vgpu.errors import ReconfigureFailed, StoreError
from vgpu.models import PowerState, Priority
from vgpu.store import Store

from .clikit import SpecHost
from .lifekit import config

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def sqlite_error(text: str, name: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(text)
    error.sqlite_errorname, error.sqlite_errorcode = name, code
    return error


FULL = sqlite_error("database or disk is full", "SQLITE_FULL", 13)
IO_WRITE = sqlite_error("disk I/O error", "SQLITE_IOERR_WRITE", 778)


class Unwritable:
    """A connection whose writes work until :meth:`fail` is called, then fail as ``how`` says: "read-only"
    (the file reopened through a read-only URI, so SQLite itself refuses) or an error to raise."""

    def __init__(self, real: sqlite3.Connection, path: str) -> None:
        self._real, self._path, self._raise = real, path, None

    def fail(self, how: str | sqlite3.OperationalError) -> None:
        if how == "read-only":
            self._real.close()
            self._real = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None,
                                         check_same_thread=False)
        else:
            self._raise = how

    def execute(self, sql: str, *args):
        if self._raise is not None and sql.lstrip().upper().startswith(WRITES):
            raise self._raise
        return self._real.execute(sql, *args)

    def executemany(self, sql: str, *args):
        if self._raise is not None and sql.lstrip().upper().startswith(WRITES):
            raise self._raise
        return self._real.executemany(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


@pytest.fixture
def connections(monkeypatch):
    """Every connection a Store opens from now on, as an Unwritable; ``fail_all(how)`` makes them all fail."""
    opened: list[Unwritable] = []
    real_connect = store_module._connect

    def connect(path: str, busy_timeout: float):
        conn = Unwritable(real_connect(path, busy_timeout), path)
        opened.append(conn)
        return conn

    monkeypatch.setattr(store_module, "_connect", connect)

    def fail_all(how) -> None:
        for conn in opened:
            conn.fail(how)

    return fail_all


@pytest.mark.parametrize(("how", "cause"), [("read-only", "SQLite opened it read-only"), (FULL, "the disk is full"),
                                            (IO_WRITE, "the disk reported an I/O error (SQLITE_IOERR_WRITE)")],
                         ids=["read-only", "full", "io-error"])
def test_a_write_that_fails_names_the_file_and_the_cause(db_path, connections, how, cause):
    with Store(db_path) as store:
        connections(how)
        with pytest.raises(StoreError) as caught:
            vms.db_register(store, "22222222-2222-4222-8222-222222222222")
    assert str(caught.value).startswith(f"could not write to database {db_path}: {cause}")
    assert "attempt to write" not in str(caught.value)


def test_an_io_error_on_a_full_disk_says_the_disk_is_full(db_path, connections, monkeypatch):
    class Statvfs:
        f_flag, f_bavail, f_files, f_favail = 0, 0, 100, 50

    monkeypatch.setattr(store_faults.os, "statvfs", lambda path: Statvfs())
    with Store(db_path) as store:
        connections(IO_WRITE)
        with pytest.raises(StoreError, match=r"could not write to database .*: the disk is full$"):
            vms.db_register(store, "22222222-2222-4222-8222-222222222222")


def test_an_io_error_on_a_read_only_mount_says_so(db_path, connections, monkeypatch):
    class Statvfs:
        f_flag, f_bavail, f_files, f_favail = store_faults.os.ST_RDONLY, 10, 100, 50

    monkeypatch.setattr(store_faults.os, "statvfs", lambda path: Statvfs())
    with Store(db_path) as store:
        connections(IO_WRITE)
        with pytest.raises(StoreError, match=r"could not write to database .*: the file system holding it is mounted read-only$"):
            vms.db_register(store, "22222222-2222-4222-8222-222222222222")


# --- part way through a change ----------------------------------------------------------------------------


def failing_after_the_stop(monkeypatch, fail_all, how) -> None:
    real_stop = lifecycle.stop_vm

    def stop(*args, **kwargs):
        stopped = real_stop(*args, **kwargs)
        fail_all(how)  # the VM is halted, and the next write (the audit of the stop) fails
        return stopped

    monkeypatch.setattr(lifecycle, "stop_vm", stop)


@pytest.mark.parametrize("how", ["read-only", FULL, IO_WRITE], ids=["read-only", "full", "io-error"])
def test_a_database_that_stops_taking_writes_after_the_stop_restarts_the_vm_and_says_recover(
        world, monkeypatch, connections, how, tmp_path):
    uuid = world.add(1, "running", config("A", 1, 1))
    store = Store(world.store.path)  # opened through `connections`
    failing_after_the_stop(monkeypatch, connections, how)
    with pytest.raises(StoreError) as caught:
        lifecycle.reconfigure_vm(store, world.sim, uuid, priority="high", confirm=lambda plan: True)
    text = str(caught.value)
    assert text.startswith(f"could not write to database {world.store.path}: ")
    assert "the VM was stopped for the change and started again with its previous configuration" in text
    assert "run 'vgpu-admin recover' once the database can be written" in text
    assert world.power(uuid) is PowerState.RUNNING and world.segment(uuid) == config("A", 1, 1)
    assert world.config(uuid) == config("A", 1, 1)
    store.close()
    # Once it can be written, recover closes the change the database could not record.
    assert [done.vm_uuid for done in recovery.recover(world.store, world.sim)] == [uuid]
    assert journal.unfinished(world.store) == [] and world.power(uuid) is PowerState.RUNNING


def test_a_database_that_stops_taking_writes_once_updated_says_the_vm_is_halted(world, monkeypatch, connections):
    uuid = world.add(1, "running", config("A", 1, 1))
    store = Store(world.store.path)
    real_update = lifecycle.update_device_model_args

    def update(*args, **kwargs):
        connections(FULL)  # the DB has the new values; writing them back fails
        raise lifecycle.HypervisorError("INTERNAL_ERROR", "the host failed")

    monkeypatch.setattr(lifecycle, "update_device_model_args", update)
    with pytest.raises(ReconfigureFailed) as caught:
        lifecycle.reconfigure_vm(store, world.sim, uuid, priority="high", confirm=lambda plan: True)
    monkeypatch.setattr(lifecycle, "update_device_model_args", real_update)
    text = str(caught.value)
    assert f"could not write to database {world.store.path}: the disk is full" in text
    assert "the VM was stopped for the change and is halted" in text
    assert "run 'vgpu-admin recover' once the database can be written" in text
    assert world.power(uuid) is PowerState.HALTED
    store.close()


def test_the_command_line_says_it_in_one_line_and_exits_1(tmp_path, monkeypatch, connections):
    spec = SpecHost(tmp_path)
    failing_after_the_stop(monkeypatch, connections, "read-only")
    outcome = spec.cli("set-priority", "--vm-uuid", spec.uuid("VM-1"), "--priority", "low", stdin="yes\n")
    assert outcome.code == 1
    last = outcome.err_lines[-1]
    assert "Traceback" not in outcome.err
    assert last.startswith(f"error: could not write to database {spec.db}: ")
    assert "started again with its previous configuration" in last and "vgpu-admin recover" in last
    assert spec.vm("VM-1").priority is Priority.HIGH


def test_a_database_read_only_before_a_change_says_nothing_was_changed(tmp_path, monkeypatch, connections):
    spec = SpecHost(tmp_path)
    real_prepare = store_module._prepare

    def prepare(conn, *args):
        real_prepare(conn, *args)
        conn.fail("read-only")

    monkeypatch.setattr(store_module, "_prepare", prepare)
    outcome = spec.cli("set-priority", "--vm-uuid", spec.uuid("VM-1"), "--priority", "low", stdin="yes\n")
    assert outcome.code == 1
    assert outcome.err_lines[-1] == (f"error: could not write to database {spec.db}: SQLite opened it read-only "
                                     "(changes need write access to it and its directory); nothing was changed")
    assert spec.sim.power_state(spec.uuid("VM-1")) is PowerState.RUNNING


# --- a database SQLite cannot even open to read -----------------------------------------------------------

# What SQLite says on opening a WAL database on a read-only mount: it cannot create the -shm file it needs
# even to read, so a read fails as well as a write.
CANTOPEN = sqlite_error("unable to open database file", "SQLITE_CANTOPEN", 14)


def cannot_open(*args):
    raise CANTOPEN


@pytest.fixture
def unopenable(monkeypatch):
    """Calling it makes every Store opened from then on fail as SQLite fails on a read-only mount: at its
    first statement."""
    real_connect = store_module._connect

    def connect(path: str, busy_timeout: float):
        conn = Unwritable(real_connect(path, busy_timeout), path)
        conn.execute = conn.executemany = cannot_open
        return conn

    return lambda: monkeypatch.setattr(store_module, "_connect", connect)


def mounted_read_only(monkeypatch) -> None:
    class Statvfs:
        f_flag, f_bavail, f_files, f_favail = store_faults.os.ST_RDONLY, 10, 100, 50

    monkeypatch.setattr(store_faults.os, "statvfs", lambda path: Statvfs())


def test_a_database_on_a_read_only_mount_says_so_when_opened(db_path, monkeypatch, unopenable):
    unopenable()
    mounted_read_only(monkeypatch)
    with pytest.raises(StoreError) as caught:
        Store(db_path)
    assert str(caught.value) == (f"cannot open database {db_path}: the file system holding it is mounted read-only "
                                 "(SQLite creates its -wal and -shm files beside it, even to read)")


def test_a_database_sqlite_cannot_open_in_a_read_only_directory_names_the_directory(db_path, monkeypatch, unopenable):
    unopenable()
    real_access = store_faults.os.access
    directory = str(db_path.parent)
    monkeypatch.setattr(store_faults.os, "access",
                        lambda path, mode: False if str(path) == directory else real_access(path, mode))
    with pytest.raises(StoreError) as caught:
        Store(db_path)
    assert str(caught.value) == (f"cannot open database {db_path}: its directory {directory} is read-only "
                                 "(SQLite writes its -wal and -shm files there)")


def test_a_database_sqlite_cannot_open_for_another_reason_keeps_sqlites_words(db_path, unopenable):
    unopenable()
    with pytest.raises(StoreError) as caught:
        Store(db_path)
    assert str(caught.value) == f"cannot open database {db_path}: unable to open database file"


def test_listing_a_database_on_a_read_only_mount_says_why_in_one_line(tmp_path, monkeypatch, unopenable):
    spec = SpecHost(tmp_path)
    unopenable()
    mounted_read_only(monkeypatch)
    outcome = spec.cli("list-vms")
    assert outcome.code == 1 and "Traceback" not in outcome.err
    assert outcome.err_lines[-1] == (f"error: cannot open database {spec.db}: the file system holding it is mounted "
                                     "read-only (SQLite creates its -wal and -shm files beside it, even to read)")


# --- at the last step: closing a change that is in place ------------------------------------------------------


def failing_after(monkeypatch, fail_all, name: str) -> None:
    """lifecycle.``name`` works, then every write fails: the change's last write (its close) is refused."""
    real = getattr(lifecycle, name)

    def then_fail(*args, **kwargs):
        done = real(*args, **kwargs)
        fail_all(FULL)
        return done

    monkeypatch.setattr(lifecycle, name, then_fail)


@pytest.mark.parametrize("power, step, state", [
    ("running", "start_vm", "the VM is running with its new configuration"),
    ("halted", "update_device_model_args", "the VM is halted and starts with its new configuration"),
])
def test_a_database_full_at_a_changes_last_step_says_the_change_is_in_place_and_recover_closes_it(
        world, monkeypatch, connections, power, step, state):
    uuid = world.add(1, power, config("A", 1, 1))
    store = Store(world.store.path)
    failing_after(monkeypatch, connections, step)
    with pytest.raises(StoreError) as caught:
        lifecycle.reconfigure_vm(store, world.sim, uuid, pool="B", confirm=lambda plan: True)
    text = str(caught.value)
    assert text.startswith(f"could not write to database {world.store.path}: the disk is full")
    assert f"the change to VM {uuid} is in place: {state}" in text
    assert "run 'vgpu-admin recover' once the database can be written" in text
    assert world.power(uuid) is PowerState(power) and world.segment(uuid) == config("B", 1, 1)
    store.close()
    assert [done.action for done in recovery.recover(world.store, world.sim)] == [recovery.FINISHED]
    assert journal.unfinished(world.store) == [] and world.power(uuid) is PowerState(power)


# --- recover after a session that rolled back what the database could not record ----------------------------


def test_recover_does_not_say_a_vm_the_session_stopped_and_restarted_kept_running(world, monkeypatch, connections):
    uuid = world.add(1, "running", config("A", 1, 1))
    store = Store(world.store.path)
    failing_after_the_stop(monkeypatch, connections, FULL)  # the stop's audit row is refused too
    with pytest.raises(StoreError):
        lifecycle.reconfigure_vm(store, world.sim, uuid, priority="high", confirm=lambda plan: True)
    store.close()
    [done] = recovery.recover(world.store, world.sim)
    assert done.action == recovery.ROLLED_BACK
    assert "kept running" not in done.detail
    assert "the VM is running with its previous configuration; recover did not restart it" in done.detail


def test_recover_says_a_vm_whose_stop_was_recorded_was_started_again(world, monkeypatch, connections):
    uuid = world.add(1, "running", config("A", 1, 1))
    store = Store(world.store.path)
    real_stop_recorded = lifecycle.stop_recorded

    def stop_recorded(*args, **kwargs):
        stopped = real_stop_recorded(*args, **kwargs)  # the audit has the stop
        connections(FULL)
        return stopped

    monkeypatch.setattr(lifecycle, "stop_recorded", stop_recorded)
    with pytest.raises(StoreError):
        lifecycle.reconfigure_vm(store, world.sim, uuid, priority="high", confirm=lambda plan: True)
    store.close()
    [done] = recovery.recover(world.store, world.sim)
    assert done.action == recovery.ROLLED_BACK
    assert "kept running" not in done.detail
    assert "the VM was stopped for the change and has been started again since" in done.detail
    assert world.power(uuid) is PowerState.RUNNING and world.segment(uuid) == config("A", 1, 1)


def failing_at_close(monkeypatch, fail_all) -> None:
    """Every write fails from the moment a change is closed (journal.finish): the host work is done."""
    real = journal.finish

    def fail_then_finish(*args, **kwargs):
        fail_all(FULL)
        return real(*args, **kwargs)

    monkeypatch.setattr(journal, "finish", fail_then_finish)


RECOVER_LATER = ("; run 'vgpu-admin recover' once the database can be written, to close the change "
                 "(the VM stays locked until then)")


def closing_refused(world, monkeypatch, connections, command) -> str:
    """Run ``command(store)`` with its closing write refused; the sentence it raises, checked to start
    with the cause and end with what to do. recover() then closes the change (what the sentence promises)."""
    store = Store(world.store.path)
    failing_at_close(monkeypatch, connections)
    with pytest.raises(StoreError) as caught:
        command(store)
    store.close()
    monkeypatch.undo()
    text = str(caught.value)
    assert text.startswith(f"could not write to database {world.store.path}: the disk is full; ")
    assert text.endswith(RECOVER_LATER)
    assert [done.action for done in recovery.recover(world.store, world.sim)] == [recovery.FINISHED]
    assert journal.unfinished(world.store) == []
    return text


@pytest.mark.parametrize("power", ["running", "halted"])
def test_a_database_full_once_a_registrations_segment_is_written_says_it_is_in_place(world, monkeypatch, connections, power):
    uuid = world.add(1, power)
    text = closing_refused(world, monkeypatch, connections,
                           lambda store: lifecycle.register_vm(store, world.sim, uuid, pool="A", vm_id=1))
    when = "when it starts" if power == "halted" else "at its next boot"
    assert (f"the change to VM {uuid} is in place: it is registered and its vgpu segment written; the VM is "
            f"{power}, so this takes effect {when}{RECOVER_LATER}") in text
    assert world.segment(uuid) == vms.get(world.store, uuid).config and world.power(uuid) is PowerState(power)


@pytest.mark.parametrize("power", ["running", "halted"])
def test_a_database_full_once_a_vm_is_removed_says_it_is_in_place(world, monkeypatch, connections, power):
    uuid = world.add(1, power, config("A", 1, 1))
    text = closing_refused(world, monkeypatch, connections, lambda store: lifecycle.remove_vm(store, world.sim, uuid))
    when = "when it starts" if power == "halted" else "at its next boot"
    assert (f"the change to VM {uuid} is in place: it is unregistered and its vgpu segment cleared; the VM is "
            f"{power}, so this takes effect {when}{RECOVER_LATER}") in text
    assert world.segment(uuid) is None and vms.find(world.store, uuid) is None


def test_a_database_full_once_a_vm_the_host_lost_is_removed_says_it_is_unregistered(world, monkeypatch, connections):
    uuid = world.add(1, "halted", config("A", 1, 1))
    world.sim.remove_vm(uuid)
    text = closing_refused(world, monkeypatch, connections, lambda store: lifecycle.remove_vm(store, world.sim, uuid))
    assert (f"the change to VM {uuid} is in place: it is unregistered (the host no longer has the VM)"
            f"{RECOVER_LATER}") in text


@pytest.mark.parametrize("registered", [True, False])
def test_a_database_full_once_a_segment_is_repaired_says_it_is_in_place(world, monkeypatch, connections, registered):
    uuid = world.add(1, "running", config("A", 1, 1) if registered else None, "-vnc 127.0.0.1:3")
    world.sim.set_device_model_args(uuid, devargs.merge("-vnc 127.0.0.1:3", config("B", 2, 2)))  # wrong, or a leftover
    text = closing_refused(world, monkeypatch, connections, lambda store: lifecycle.repair_vm(store, world.sim, uuid))
    done = "its vgpu segment matches the database" if registered else "its vgpu segment is removed (the VM is not registered)"
    assert (f"the change to VM {uuid} is in place: {done}; the VM is running, so this takes effect at its next boot"
            f"{RECOVER_LATER}") in text
    assert world.segment(uuid) == (config("A", 1, 1) if registered else None)

"""A database file deleted, or replaced by another (a backup restored with ``mv backup.db vgpu.db``), while a
Store, a Connection or the vgpu> shell has it open: nothing is written to either file through the old
connection, whose WAL is not left to be read as the new file's (the shell's side: test_replaced_db_shell.py)."""

from __future__ import annotations

import os
import sqlite3

import pytest

import vgpu
from vgpu import lifecycle, pools
from vgpu.errors import StoreError, VgpuError
from vgpu.store import Store

from .clikit import SpecHost


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def backup_named(db, backup, pool_a_name: str) -> None:
    """A copy of ``db`` (as ``sqlite3 db ".backup backup"`` makes), with Pool A renamed in the copy only."""
    source, copy = sqlite3.connect(db), sqlite3.connect(backup)
    source.backup(copy)
    copy.execute("UPDATE pools SET pool_name = ? WHERE pool_id = 'A'", (pool_a_name,))
    copy.commit()
    source.close()
    copy.close()


def pool_a_name_and_integrity(db) -> tuple[str, str]:
    """What a process opening ``db`` now reads: Pool A's name, and SQLite's integrity check."""
    conn = sqlite3.connect(db)
    try:
        name = conn.execute("SELECT pool_name FROM pools WHERE pool_id = 'A'").fetchone()[0]
        return name, conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()



def refused_move(store, spec, vm1, **options) -> str:
    """Moving VM-1 to pool B through ``store``, refused by the database (StoreError): its sentence, the store closed."""
    with pytest.raises(StoreError) as caught:
        lifecycle.reconfigure_vm(store, spec.sim, vm1, pool="B", confirm=lambda plan: True, **options)
    store.close()
    return str(caught.value)

def test_a_write_after_the_file_was_replaced_is_refused_and_writes_nothing(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    os.replace(spec.folder / "backup.db", spec.db)
    with pytest.raises(StoreError) as caught:
        pools.set_pool_name(store, "A", "Zed")
    assert str(caught.value).startswith(f"database {spec.db} was replaced by another file since it was opened")
    assert "nothing was written" in str(caught.value) and "Open it again" in str(caught.value)
    with pytest.raises(StoreError, match="was replaced"):  # and stays refused: it is not the file it was
        pools.set_pool_name(store, "A", "Zed")
    store.close()
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")


def test_changes_made_before_the_file_was_replaced_do_not_reach_the_new_file(spec):
    # The old connection's last changes are still in vgpu.db-wal, which SQLite finds by name: read with
    # the restored file, they would overwrite its pages (or make it "malformed").
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    pools.set_pool_name(store, "A", "Zed")
    os.replace(spec.folder / "backup.db", spec.db)
    store.close()
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")
    with Store(spec.db) as reopened:
        assert pools.list_pools(reopened)[0].pool_name == "Restored"


def test_a_write_after_the_file_was_deleted_is_refused_and_creates_nothing(spec):
    store = Store(spec.db)
    pools.set_pool_name(store, "A", "Zed")  # frames in the WAL, which stays behind the deleted file
    os.unlink(spec.db)
    with pytest.raises(StoreError) as caught:
        pools.set_pool_name(store, "A", "Other")
    assert str(caught.value).startswith(f"database {spec.db} was deleted since it was opened")
    assert "nothing was written" in str(caught.value)
    store.close()
    assert not spec.db.exists()
    # A backup restored later is read as it is, not through what the old connection left in the WAL.
    wal = spec.folder / "vgpu.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_connection_refuses_to_write_to_a_replaced_database(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    with vgpu.connect(db=spec.db, host=f"sim:{spec.host_file}") as conn:
        conn.list_pools()
        os.replace(spec.folder / "backup.db", spec.db)
        with pytest.raises(StoreError, match="was replaced by another file"):
            conn.rename_pool("A", "Zed")
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")


def test_a_change_under_way_when_the_file_is_replaced_does_not_finish_in_either_file(spec):
    vm1 = spec.uuid("VM-1")
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)

    def swap_before_the_update(event) -> None:
        if event.step == "updating":  # the VM is stopped and the journal says so; the DB update is next
            os.replace(spec.folder / "backup.db", spec.db)

    with pytest.raises(VgpuError) as caught:
        lifecycle.reconfigure_vm(store, spec.sim, vm1, pool="B", confirm=lambda plan: True, progress=swap_before_the_update)
    store.close()
    assert "was replaced by another file during the change" in str(caught.value)
    assert "nothing was changed in any database" in str(caught.value)  # and no recover: its journal row is not in the file there
    assert spec.sim.power_state(vm1) is lifecycle.PowerState.RUNNING
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")
    assert spec.pool_of("VM-1") == "A"
    with Store(spec.db) as restored, restored.reading() as conn:
        assert conn.execute("SELECT count(*) FROM vgpu_operations WHERE finished_at IS NULL").fetchone()[0] == 0


# --- the file deleted or replaced while a change has the VM stopped ------------------------------------------


def swap_or_delete(spec, how: str) -> None:
    if how == "replaced":
        os.replace(spec.folder / "backup.db", spec.db)
    else:
        os.unlink(spec.db)


@pytest.mark.parametrize("how", ["replaced", "deleted"])
def test_a_file_gone_during_the_shutdown_wait_starts_the_vm_again_and_says_no_database_changed(spec, how):
    vm1 = spec.uuid("VM-1")
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    old_segment = spec.sim.get_device_model_args(vm1)

    def gone_while_stopping(event) -> None:
        if event.step == "stopping" and not gone:  # the shutdown wait
            gone.append(how)
            swap_or_delete(spec, how)

    gone: list[str] = []

    text = refused_move(store, spec, vm1, progress=gone_while_stopping)
    said = "replaced by another file" if how == "replaced" else "deleted"
    assert text.startswith(f"database {spec.db} was {said} during the change to VM {vm1}")
    assert text.count(said) == 1 and "rolling back also failed" not in text
    assert "the VM was stopped for the change and started again with its previous configuration" in text
    assert "nothing was changed in any database" in text
    assert "recover" not in text and "this connection" not in text
    assert spec.sim.power_state(vm1) is lifecycle.PowerState.RUNNING
    assert spec.sim.get_device_model_args(vm1) == old_segment


def then(monkeypatch, name: str, act) -> None:
    """lifecycle.``name`` does its work, then ``act()`` runs (the admin's hand on the file, at that step)."""
    real = getattr(lifecycle, name)

    def step_then_act(*args, **kwargs):
        done = real(*args, **kwargs)
        act()
        return done

    monkeypatch.setattr(lifecycle, name, step_then_act)


def test_a_file_replaced_once_the_change_was_written_to_it_says_what_the_vm_runs(spec, monkeypatch):
    vm1 = spec.uuid("VM-1")
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    old_segment = spec.sim.get_device_model_args(vm1)

    def swap():
        if (spec.folder / "backup.db").exists():  # the new args are written; the journal's next step is refused
            os.replace(spec.folder / "backup.db", spec.db)

    then(monkeypatch, "update_device_model_args", swap)
    text = refused_move(store, spec, vm1)
    assert text.startswith(f"database {spec.db} was replaced by another file during the change to VM {vm1}, "
                           "after the change had been written to the file it replaced")
    assert "the VM was stopped for the change and started again with its previous configuration" in text
    assert "recover" not in text and "this connection" not in text and "scan-vms" in text
    assert spec.sim.power_state(vm1) is lifecycle.PowerState.RUNNING
    assert spec.sim.get_device_model_args(vm1) == old_segment
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")


def test_the_command_line_says_a_file_deleted_during_a_change_in_its_own_words(spec, monkeypatch):
    vm1 = spec.uuid("VM-1")
    then(monkeypatch, "stop_vm", lambda: os.unlink(spec.db))
    outcome = spec.cli("set-priority", "--vm-uuid", vm1, "--priority", "low", stdin="yes\n")
    assert outcome.code == 1 and "Traceback" not in outcome.err
    last = outcome.err_lines[-1]
    assert last.startswith(f"error: database {spec.db} was deleted during the change to VM {vm1}")
    assert "this connection" not in last and "recover" not in last
    assert spec.sim.power_state(vm1) is lifecycle.PowerState.RUNNING


def test_the_command_line_words_a_file_deleted_under_a_command_for_a_command(spec, monkeypatch):
    then(monkeypatch, "find_host_vm", lambda: os.unlink(spec.db))
    outcome = spec.cli("register-vm", "--vm-uuid", spec.uuid("VM-21"))
    assert outcome.code == 1
    last = outcome.err_lines[-1]
    assert last.startswith(f"error: database {spec.db} was deleted since it was opened; nothing was written")
    assert "this connection" not in last and "a new command" in last


def test_a_store_refuses_to_read_a_replaced_file(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    assert pools.list_pools(store)[0].pool_name != "Restored"
    os.replace(spec.folder / "backup.db", spec.db)
    with pytest.raises(StoreError, match="was replaced by another file since it was opened"):
        pools.list_pools(store)
    store.close()


def test_a_connection_refuses_to_show_a_deleted_file(spec):
    with vgpu.connect(db=spec.db, host=f"sim:{spec.host_file}") as conn:
        conn.list_pools()
        os.unlink(spec.db)
        with pytest.raises(StoreError, match="was deleted since it was opened"):
            conn.list_pools()


def test_each_transaction_looks_at_the_file_once(spec, monkeypatch):
    store = Store(spec.db)
    real_stat, looks = os.stat, []

    def stat(path, *args, **kwargs):
        if os.fspath(path) == store.path:
            looks.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with store.reading() as conn:
        conn.execute("SELECT count(*) FROM vms").fetchone()
    assert len(looks) == 1
    with store.writing() as conn:
        conn.execute("UPDATE pools SET pool_name = pool_name WHERE pool_id = 'A'")
    assert len(looks) == 2
    monkeypatch.undo()
    store.close()


def test_a_file_deleted_once_the_vm_started_with_its_change_says_it_runs_the_change(spec, monkeypatch):
    vm1 = spec.uuid("VM-1")
    store = Store(spec.db)
    then(monkeypatch, "start_vm", lambda: os.unlink(spec.db))  # the change is in place; closing it is refused
    text = refused_move(store, spec, vm1)
    assert text.startswith(f"database {spec.db} was deleted during the change to VM {vm1}, after the change had been "
                           "written to it; the VM is running with its new configuration")
    assert "recover" not in text
    assert spec.sim.power_state(vm1) is lifecycle.PowerState.RUNNING

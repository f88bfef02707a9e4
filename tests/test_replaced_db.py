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


def test_a_write_after_the_file_was_replaced_is_refused_and_writes_nothing(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    store = Store(spec.db)
    os.replace(spec.folder / "backup.db", spec.db)
    with pytest.raises(StoreError) as caught:
        pools.set_pool_name(store, "A", "Zed")
    assert str(caught.value).startswith(f"database {spec.db} was replaced by another file since it was opened")
    assert "nothing was written" in str(caught.value) and "open it again" in str(caught.value)
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
    assert "was replaced by another file" in str(caught.value)
    assert "recover" in str(caught.value)
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")
    assert spec.pool_of("VM-1") == "A"
    with Store(spec.db) as restored, restored.reading() as conn:
        assert conn.execute("SELECT count(*) FROM vgpu_operations WHERE finished_at IS NULL").fetchone()[0] == 0

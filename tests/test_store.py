"""The store: the spec's schema to the letter, initialisation, migration, and every unusable-file error."""

from __future__ import annotations

import os
import re
import sqlite3
import stat

import pytest

from vgpu import journal, pools, schema, vms
from vgpu.errors import StoreError, VgpuError
from vgpu.store import DEFAULT_BUSY_TIMEOUT, Store

UUID_1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
UUID_2 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f8"

# The spec's DATABASE SCHEMA (FINAL), copied here rather than imported so the test checks schema.py against
# the spec. The one change is the documented fix: the invalid DEFAULT 'Pool A' OR 'Pool B' is left out.
SPEC_POOLS = """
CREATE TABLE pools (
    pool_id CHAR(1) PRIMARY KEY CHECK(pool_id IN ('A', 'B')),
    pool_name TEXT NOT NULL,
    description TEXT,
    enabled INTEGER DEFAULT 1 CHECK(enabled IN (0, 1)),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)"""
SPEC_VMS = """
CREATE TABLE vms (
    vm_id INTEGER NOT NULL UNIQUE,
    vm_uuid TEXT UNIQUE NOT NULL,
    vm_name TEXT,
    pool_id CHAR(1) NOT NULL DEFAULT 'A' CHECK(pool_id IN ('A', 'B')),
    priority INTEGER NOT NULL DEFAULT 1 CHECK(priority IN (0, 1, 2)),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (pool_id) REFERENCES pools(pool_id)
)"""
SPEC_INDEXES = {
    "idx_vm_uuid": "CREATE INDEX idx_vm_uuid ON vms(vm_uuid)",
    "idx_vm_pool": "CREATE INDEX idx_vm_pool ON vms(pool_id)",
    "idx_vm_priority": "CREATE INDEX idx_vm_priority ON vms(priority)",
}
SPEC_POOL_ROWS = "INSERT INTO pools (pool_id, pool_name, enabled) VALUES ('A', 'Pool A', 1), ('B', 'Pool B', 1)"


def normalized(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def raw(path) -> sqlite3.Connection:
    """A plain connection, as the scheduler or an admin with the sqlite3 CLI would open the file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def master_sql(path, kind: str) -> dict[str, str]:
    with raw(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = ? AND sql IS NOT NULL", (kind,))
        return {name: normalized(sql) for name, sql in rows}


def one_line(error: Exception) -> str:
    text = str(error)
    assert text and "\n" not in text
    return text


# --- the schema -------------------------------------------------------------------------------------------


def test_tables_are_the_specs_to_the_letter(store, db_path):
    tables = master_sql(db_path, "table")
    assert tables["pools"] == normalized(SPEC_POOLS)
    assert tables["vms"] == normalized(SPEC_VMS)


def test_the_three_spec_indexes_exist_exactly(store, db_path):
    indexes = master_sql(db_path, "index")
    on_vms = {name: sql for name, sql in indexes.items() if re.search(r"\bON vms\(", sql)}
    assert on_vms == SPEC_INDEXES


def test_spec_default_clause_is_not_valid_sql_hence_the_fix():
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        conn.execute("CREATE TABLE pools (pool_name TEXT NOT NULL DEFAULT 'Pool A' OR 'Pool B')")


def test_pool_a_and_b_are_inserted_at_initialisation(store, db_path):
    with raw(db_path) as conn:
        rows = conn.execute("SELECT pool_id, pool_name, description, enabled FROM pools ORDER BY pool_id").fetchall()
        stamps = conn.execute("SELECT COUNT(*) FROM pools WHERE created_at IS NOT NULL AND updated_at IS NOT NULL")
        assert stamps.fetchone()[0] == 2
    assert rows == [("A", "Pool A", None, 1), ("B", "Pool B", None, 1)]


def test_reopening_keeps_data_and_does_not_insert_pools_again(db_path):
    with Store(db_path) as first:
        vms.db_register(first, UUID_1)
    with Store(db_path) as second:
        assert [vm.vm_uuid for vm in vms.list_vms(second)] == [UUID_1]
        assert [pool.pool_id for pool in pools.list_pools(second)] == ["A", "B"]


def test_schema_version_and_application_id_are_recorded(store, db_path):
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert schema.LATEST_VERSION == len(schema.MIGRATIONS) >= 1


def test_our_own_tables_exist_beside_the_specs(store, db_path):
    tables = set(master_sql(db_path, "table"))
    assert {"pools", "vms", "vgpu_audit", "vgpu_operations"} <= tables


def test_column_defaults_apply_to_a_bare_insert(store, db_path):
    with raw(db_path) as conn:
        conn.execute("INSERT INTO vms (vm_id, vm_uuid) VALUES (9, ?)", (UUID_1,))
        row = conn.execute("SELECT pool_id, priority, vm_name, created_at IS NOT NULL FROM vms").fetchone()
    assert row == ("A", 1, None, 1)


BAD_ROWS = [
    ("INSERT INTO pools (pool_id, pool_name) VALUES ('C', 'Pool C')", "CHECK"),
    ("UPDATE pools SET enabled = 2 WHERE pool_id = 'A'", "CHECK"),
    ("UPDATE pools SET pool_name = NULL WHERE pool_id = 'A'", "NOT NULL"),
    ("INSERT INTO pools (pool_id, pool_name) VALUES ('A', 'again')", "UNIQUE"),
    ("INSERT INTO vms (vm_id, vm_uuid, pool_id) VALUES (1, 'u1', 'C')", "CHECK"),
    ("INSERT INTO vms (vm_id, vm_uuid, priority) VALUES (1, 'u1', 3)", "CHECK"),
    ("INSERT INTO vms (vm_id, vm_uuid, priority) VALUES (1, 'u1', -1)", "CHECK"),
    ("INSERT INTO vms (vm_id, vm_uuid, priority) VALUES (1, 'u1', NULL)", "NOT NULL"),
    ("INSERT INTO vms (vm_id, vm_uuid) VALUES (NULL, 'u1')", "NOT NULL"),
    ("INSERT INTO vms (vm_id, vm_uuid) VALUES (1, NULL)", "NOT NULL"),
    ("INSERT INTO vms (vm_id, vm_uuid) VALUES (7, 'u2')", "UNIQUE"),
    ("INSERT INTO vms (vm_id, vm_uuid) VALUES (8, 'taken')", "UNIQUE"),
]


@pytest.mark.parametrize(("statement", "constraint"), BAD_ROWS)
def test_constraints_reject_bad_rows_written_by_raw_sql(store, db_path, statement, constraint):
    with raw(db_path) as conn:
        conn.execute("INSERT INTO vms (vm_id, vm_uuid) VALUES (7, 'taken')")
        before = conn.execute("SELECT * FROM vms UNION ALL SELECT pool_id, pool_name, enabled, 0, 0, 0, 0 FROM pools").fetchall()
        with pytest.raises(sqlite3.IntegrityError, match=constraint):
            conn.execute(statement)
        after = conn.execute("SELECT * FROM vms UNION ALL SELECT pool_id, pool_name, enabled, 0, 0, 0, 0 FROM pools").fetchall()
    assert after == before


def test_foreign_key_rejects_a_vm_in_a_pool_whose_row_is_gone(store, db_path):
    with raw(db_path) as conn:
        conn.execute("DELETE FROM pools WHERE pool_id = 'B'")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute("INSERT INTO vms (vm_id, vm_uuid, pool_id) VALUES (1, 'u1', 'B')")


def test_foreign_key_keeps_a_pool_that_still_has_vms(store, db_path):
    vms.db_register(store, UUID_1, pool="A")
    with raw(db_path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute("DELETE FROM pools WHERE pool_id = 'A'")


# --- the connection ---------------------------------------------------------------------------------------


def test_connection_has_foreign_keys_wal_and_busy_timeout(store):
    with store.reading() as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(DEFAULT_BUSY_TIMEOUT * 1000)


def test_busy_timeout_is_configurable_and_kept_by_reopen(db_path):
    with Store(db_path, busy_timeout=2.5) as store, store.reopen() as other:
        assert other is not store and other.path == store.path
        for opened in (store, other):
            with opened.reading() as conn:
                assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500


def test_reopened_store_sees_committed_writes(store):
    with store.reopen() as other:
        vms.db_register(other, UUID_1)
    assert vms.get(store, UUID_1).vm_id == 1


def test_writing_commits_when_the_block_finishes(store, db_path):
    with store.writing() as conn:
        conn.execute("UPDATE pools SET description = 'gpu farm' WHERE pool_id = 'A'")
    with raw(db_path) as conn:
        assert conn.execute("SELECT description FROM pools WHERE pool_id = 'A'").fetchone()[0] == "gpu farm"


def test_writing_rolls_back_when_the_block_raises(store, db_path):
    with pytest.raises(RuntimeError, match="boom"):
        with store.writing() as conn:
            conn.execute("UPDATE pools SET description = 'gpu farm' WHERE pool_id = 'A'")
            raise RuntimeError("boom")
    with raw(db_path) as conn:
        assert conn.execute("SELECT description FROM pools WHERE pool_id = 'A'").fetchone()[0] is None
    with store.writing() as conn:  # and the connection is usable again
        conn.execute("UPDATE pools SET description = 'x' WHERE pool_id = 'B'")


def test_store_works_as_a_context_manager_and_closes(db_path):
    with Store(db_path) as store:
        assert repr(store) == f"Store({str(db_path)!r})"
    for use in (lambda: vms.list_vms(store), lambda: vms.db_register(store, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7")):
        with pytest.raises(StoreError) as caught:  # a VgpuError: a notebook's `except VgpuError` catches it
            use()
        assert str(caught.value) == f"database {db_path} was closed; open it again with Store(path)"


# --- new files --------------------------------------------------------------------------------------------


def test_new_database_file_is_private_to_its_owner(tmp_path):
    path = tmp_path / "fresh.db"
    old_umask = os.umask(0)  # even a permissive umask must not widen it
    try:
        with Store(path):
            modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in os.listdir(tmp_path)}
    finally:
        os.umask(old_umask)
    assert modes["fresh.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes  # -wal and -shm follow the DB file


def test_opening_accepts_a_str_path(tmp_path):
    with Store(str(tmp_path / "as-text.db")) as store:
        assert vms.list_vms(store) == []


# --- adopting and migrating -------------------------------------------------------------------------------


def test_adopts_a_database_made_by_the_specs_init_script(tmp_path):
    path = tmp_path / "scheduler.db"
    with raw(path) as conn:
        for statement in (SPEC_POOLS, SPEC_POOL_ROWS, SPEC_VMS, *SPEC_INDEXES.values()):
            conn.execute(statement)
        conn.execute("INSERT INTO vms (vm_id, vm_uuid, vm_name, pool_id, priority) VALUES (4, ?, 'old', 'B', 2)", (UUID_1,))
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0
    with Store(path) as store:
        assert [(vm.vm_id, vm.vm_name, vm.pool_id, int(vm.priority)) for vm in vms.list_vms(store)] == [(4, "old", "B", 2)]
        assert vms.db_register(store, "1" * 8 + "-1111-1111-1111-" + "1" * 12).vm_id == 1
    assert master_sql(path, "table")["vms"] == normalized(SPEC_VMS)
    assert "vgpu_audit" in master_sql(path, "table")
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert conn.execute("SELECT COUNT(*) FROM pools").fetchone()[0] == 2


def test_a_version_1_journal_is_migrated_with_its_interrupted_rows_released(tmp_path):
    path = tmp_path / "v1.db"
    with raw(path) as conn:  # a database written by the previous release, with two open operations
        for script in (schema.SPEC_TABLES, schema.OUR_TABLES_V1):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'repair', 'planned', 'h1:12')", (UUID_1,))
        conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'remove', 'planned', 'h2:34 (interrupted)')", (UUID_2,))
    with Store(path) as store:
        first, second = journal.unfinished(store)
    assert (first.owner, first.interrupted, first.session.boot_id, first.session.started) == ("h1:12", False, None, None)
    assert (second.owner, second.interrupted) == ("h2:34", True)  # the suffix became released_at
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION == 7
        assert "vgpu_attention" in master_sql(path, "table")


def test_initialises_an_existing_empty_file(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert [pool.pool_id for pool in pools.list_pools(store)] == ["A", "B"]


def test_refuses_a_newer_schema_version_and_leaves_the_file_alone(db_path):
    Store(db_path).close()
    newer = schema.LATEST_VERSION + 1
    with raw(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    before = db_path.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(db_path)
    text = one_line(caught.value)
    assert str(db_path) in text and f"schema version {newer}" in text and "upgrade vgpu-admin" in text
    assert caught.value.path == str(db_path)
    assert db_path.read_bytes() == before


# --- files that are not usable ----------------------------------------------------------------------------


def assert_refused(path, *words: str) -> StoreError:
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as caught:
        Store(path)
    error = caught.value
    assert isinstance(error, VgpuError) and error.path == str(path)
    text = one_line(error)
    assert str(path) in text
    for word in words:
        assert word in text
    if before is not None:
        assert path.read_bytes() == before
    return error


def test_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    assert_refused(path, "is not a vgpu database")


def test_an_sqlite_database_of_another_application(tmp_path):
    path = tmp_path / "other.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    assert_refused(path, "is an SQLite database but not a vgpu database", "recipes")


def test_an_sqlite_database_with_pools_and_vms_but_another_application_id(tmp_path):
    path = tmp_path / "lookalike.db"
    with raw(path) as conn:
        conn.execute(SPEC_POOLS)
        conn.execute(SPEC_VMS)
        conn.execute("PRAGMA application_id = 1234")
    assert_refused(path, "not a vgpu database", "pools, vms")


def test_a_missing_directory(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "vgpu.db"
    assert_refused(path, "does not exist", str(tmp_path / "no" / "such" / "dir"))
    assert not (tmp_path / "no").exists()


def test_a_directory_in_place_of_the_file(tmp_path):
    assert_refused(tmp_path, "is a directory")


def test_a_corrupt_database_gives_the_damaged_sentence(db_path):
    with Store(db_path) as store:
        vms.db_register_many(store, [{"vm_uuid": f"{n:08x}-0000-4000-8000-000000000000"} for n in range(300)])
    size = db_path.stat().st_size
    page = 4096
    assert size > 10 * page
    with open(db_path, "r+b") as handle:  # keep page 1 (header and schema), overwrite the middle
        handle.seek(page)
        handle.write(bytes(range(256)) * ((size - 2 * page) // 256))
    with Store(db_path) as store:
        for read in (vms.list_vms, pools.list_pools):
            with pytest.raises(StoreError) as caught:
                read(store)
            text = one_line(caught.value)
            assert f"database {db_path} is damaged" in text and "restore it from a backup" in text
        with pytest.raises(StoreError, match="is damaged"):
            vms.db_register(store, UUID_1)


# --- a read-only database ---------------------------------------------------------------------------------

READ_ONLY_PROBE = """
import json, sys
from vgpu import vms
from vgpu.errors import StoreError
from vgpu.store import Store

steps = {}
try:
    store = Store(sys.argv[1])
    steps["open"] = "ok"
    steps["read"] = [vm.vm_uuid for vm in vms.list_vms(store)]
    vms.db_register(store, "22222222-2222-4222-8222-222222222222")
    steps["write"] = "ok"
except StoreError as error:
    steps["error"] = str(error)
print(json.dumps(steps))
"""


def run_bound_by_file_modes(*args: str) -> dict:
    """Run READ_ONLY_PROBE in a process that file permissions bind, and return what it saw.

    Tests run as root here, and root ignores file modes. The obvious demotion, ``user=65534`` (nobody),
    cannot even start the interpreter on this machine: it lives under /root (mode 0700), as does pytest's
    tmp dir. So root keeps uid 0 but gives up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv, from
    util-linux), after which the owner bits of a root-owned file are all that count, as for any user.
    """
    import json
    import shutil
    import subprocess
    import sys

    import vgpu

    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root ignores file modes and setpriv (util-linux) is missing to drop that override")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(vgpu.__file__))}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", READ_ONLY_PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def read_only_db(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "vgpu.db"
    with Store(path) as store:
        vms.db_register(store, UUID_1)
    path.chmod(0o444)
    yield path
    folder.chmod(0o755)


def registered_uuids(path) -> list[str]:
    with raw(path) as conn:
        return [uuid for (uuid,) in conn.execute("SELECT vm_uuid FROM vms")]


def test_a_read_only_file_can_be_read_but_a_write_says_read_only(read_only_db):
    seen = run_bound_by_file_modes(str(read_only_db))
    assert seen["open"] == "ok" and seen["read"] == [UUID_1]
    assert "write" not in seen
    assert seen["error"] == (
        f"could not write to database {read_only_db}: the file is read-only "
        "(changes need write access to it and its directory)"
    )
    assert registered_uuids(read_only_db) == [UUID_1]


def test_a_read_only_file_in_a_read_only_directory_says_read_only(read_only_db):
    read_only_db.parent.chmod(0o555)  # SQLite cannot even create the -wal/-shm files it needs to read
    seen = run_bound_by_file_modes(str(read_only_db))
    assert "write" not in seen
    assert seen["error"] == (  # the file comes first: making the directory writable alone would not do
        f"could not write to database {read_only_db}: the file is read-only "
        "(changes need write access to it and its directory)"
    )
    assert registered_uuids(read_only_db) == [UUID_1]


def test_a_writable_file_in_a_read_only_directory_names_the_directory(read_only_db):
    read_only_db.chmod(0o644)
    read_only_db.parent.chmod(0o555)  # the file may be written, but SQLite cannot create its -wal and -shm
    seen = run_bound_by_file_modes(str(read_only_db))
    assert "write" not in seen
    assert seen["error"].startswith(f"could not write to database {read_only_db}: its directory {read_only_db.parent} "
                                    "is read-only"), seen
    assert registered_uuids(read_only_db) == [UUID_1]


def test_a_refused_commit_is_rolled_back_and_the_store_stays_usable(store, snapshot):
    before = snapshot()
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with store.writing() as conn:
            conn.execute("PRAGMA defer_foreign_keys = ON")  # the FK is checked at COMMIT, which then fails
            conn.execute("DELETE FROM pools WHERE pool_id = 'B'")
            conn.execute("INSERT INTO vms (vm_id, vm_uuid, pool_id) VALUES (1, ?, 'B')", (UUID_1,))
    assert snapshot() == before
    assert vms.db_register(store, UUID_1).vm_id == 1


def test_a_new_database_in_a_directory_without_write_access(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        seen = run_bound_by_file_modes(str(folder / "vgpu.db"))
    finally:
        folder.chmod(0o755)
    assert seen == {"error": f"cannot create database {folder / 'vgpu.db'}: permission denied"}
    assert not (folder / "vgpu.db").exists()

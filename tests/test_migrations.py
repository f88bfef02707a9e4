"""Opening a database of another version: the user_version and application_id in its header are checked
before anything is changed, a version its tables contradict is refused with a sentence (not SQLite's words),
and the spec's init script run as written (its pools table refused by SQLite) is adopted."""

from __future__ import annotations

import socket
import sqlite3
import subprocess

import pytest

from vgpu import journal, locations, pools, schema, vms
from vgpu.sessions import Verdict
from vgpu.errors import StoreError
from vgpu.store import Store, repair_schema

from .test_store import SPEC_INDEXES, SPEC_POOL_ROWS, SPEC_POOLS, SPEC_VMS, UUID_1, one_line, raw

# The spec's pools statement as the spec writes it: SQLite refuses it, so its init script makes vms alone.
SPEC_POOLS_AS_WRITTEN = SPEC_POOLS.replace("pool_name TEXT NOT NULL,", "pool_name TEXT NOT NULL DEFAULT 'Pool A' OR 'Pool B',")


def spec_file(path, *, pools_table: bool = True, user_version: int = 0) -> None:
    """A database made by the spec's init script (application_id 0), with one VM."""
    with raw(path) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")  # as the sqlite3 tool runs a script: a VM without pools is kept
        statements = (SPEC_POOLS, SPEC_POOL_ROWS) if pools_table else ()
        for statement in (*statements, SPEC_VMS, *SPEC_INDEXES.values()):
            conn.execute(statement)
        conn.execute("INSERT INTO vms (vm_id, vm_uuid, vm_name, pool_id, priority) VALUES (4, ?, 'old', 'B', 2)", (UUID_1,))
        conn.execute(f"PRAGMA user_version = {user_version:d}")


def ours_set_to(path, version: int) -> None:
    """A database vgpu-admin made, whose user_version was then set to ``version`` by hand."""
    Store(path).close()
    with raw(path) as conn:
        conn.execute(f"PRAGMA user_version = {version:d}")


def version_1_tables(conn) -> None:
    """The tables of a schema-1 vgpu database (the spec's and ours as version 1 made them), marked as ours."""
    for script in (schema.SPEC_TABLES, schema.OUR_TABLES_V1):
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")


def refused(path, *words: str) -> str:
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(path)
    text = one_line(caught.value)
    assert str(path) in text and "nothing was changed" in text, text
    for word in words:
        assert word in text, text
    assert path.read_bytes() == before
    return text


def tables(path) -> set[str]:
    with raw(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# --- a user_version vgpu-admin did not write ----------------------------------------------------------------


@pytest.mark.parametrize("version", [7, 5, 100, 1, 2, -1])
def test_a_spec_database_whose_user_version_another_program_set_is_refused_before_anything_changes(tmp_path, version):
    path = tmp_path / "scheduler.db"
    spec_file(path, user_version=version)
    text = refused(path, f"user_version {version}", "application_id", "0")
    assert "PRAGMA user_version = 0" in text, text
    assert tables(path) == {"pools", "vms"}
    with pytest.raises(StoreError):  # repair-db does not take it for a database with nothing to repair
        repair_schema(path)


@pytest.mark.parametrize("version", [-1, -7, schema.LATEST_VERSION + 100])
def test_a_vgpu_database_with_a_version_outside_the_known_ones_is_refused(tmp_path, version):
    path = tmp_path / "v.db"
    ours_set_to(path, version)
    if version > schema.LATEST_VERSION:
        refused_words = ("newer than this vgpu-admin understands",)
    else:
        refused_words = (f"schema version {version}", f"0 to {schema.LATEST_VERSION}")
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert all(word in one_line(caught.value) for word in refused_words), caught.value
    assert path.read_bytes() == before


def test_a_version_1_database_set_to_minus_1_is_refused_naming_the_version_of_its_tables(tmp_path):
    path = tmp_path / "v1.db"
    with raw(path) as conn:
        version_1_tables(conn)
        conn.execute("PRAGMA user_version = -1")
    text = refused(path, "schema version -1", "PRAGMA user_version = 1")
    assert "owner_boot_id" not in text


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_a_vgpu_database_whose_version_is_lower_than_its_tables_is_refused_with_a_sentence(tmp_path, version):
    path = tmp_path / "v.db"
    ours_set_to(path, version)
    text = refused(path, f"schema version {version}", f"those of version {schema.LATEST_VERSION}",
                   f"PRAGMA user_version = {schema.LATEST_VERSION}")
    assert "already exists" not in text and "duplicate column" not in text, text


def test_a_migration_that_meets_a_table_already_there_says_so_and_changes_nothing(tmp_path):
    # A version 1 file that has a column of version 3 besides (no table of a later version says so): SQLite's
    # "duplicate column name" during the migration becomes the sentence, and the migration is rolled back.
    path = tmp_path / "v1.db"
    with raw(path) as conn:
        version_1_tables(conn)
        conn.execute("ALTER TABLE vgpu_operations ADD COLUMN host TEXT")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("PRAGMA journal_mode = WAL")  # as vgpu leaves it: opening it changes nothing by itself
    text = refused(path, "schema version 1", "does not match its tables", "duplicate column name: host")
    assert "vgpu_attention" not in tables(path)  # version 2's table, created before the failing step: rolled back
    assert text


def test_a_version_1_operation_whose_pid_runs_again_is_not_called_in_progress_and_is_taken_when_told(tmp_path):
    """Version 1 recorded a session as host:pid alone; the migration leaves its boot id and start time NULL.
    Once a live process has that PID (after a reboot, low PIDs are reused), the row must not lock its VM for
    good: its session cannot be checked, so recover leaves it to the admin and --take-over takes it."""
    path = tmp_path / "v1.db"
    reuser = subprocess.Popen(["sleep", "600"])
    try:
        with raw(path) as conn:
            version_1_tables(conn)
            conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'repair', 'planned', ?)",
                         (UUID_1, f"{socket.gethostname()}:{reuser.pid}"))
            conn.execute("PRAGMA user_version = 1")
            conn.execute("PRAGMA journal_mode = WAL")
        with Store(path) as store:
            (op,) = journal.unfinished(store)
            assert op.liveness()[0] is Verdict.UNKNOWN
            refused = journal.claim(store, op.op_id)
            assert refused is not None and not refused.taken and refused.take_over_needed, refused
            taken = journal.claim(store, op.op_id, take_over=True)
            assert taken is not None and taken.taken, taken
    finally:
        reuser.kill()
        reuser.wait()


# --- the spec's init script as written ------------------------------------------------------------------------


def test_the_specs_pools_statement_as_written_is_refused_by_sqlite():
    with pytest.raises(sqlite3.OperationalError, match='near "OR"'):
        sqlite3.connect(":memory:").execute(SPEC_POOLS_AS_WRITTEN)


def test_a_database_made_by_the_specs_init_script_as_written_is_adopted_with_pools_created(tmp_path):
    path = tmp_path / "scheduler.db"
    spec_file(path, pools_table=False)
    with Store(path) as store:
        assert [(pool.pool_id, pool.pool_name) for pool in pools.list_pools(store)] == [("A", "Pool A"), ("B", "Pool B")]
        assert [(vm.vm_id, vm.vm_name, vm.pool_id) for vm in vms.list_vms(store)] == [(4, "old", "B")]
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    Store(path).close()  # and it opens again as complete


def test_a_vms_table_that_is_not_the_specs_without_pools_is_still_not_a_vgpu_database(tmp_path):
    path = tmp_path / "other.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE vms (name TEXT, memory INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a vgpu database"):
        Store(path)
    assert path.read_bytes() == before


# --- a user_version higher than the tables show, or a table of ours dropped ------------------------------------

UUID_2 = "22222222-2222-2222-2222-222222222222"


def schema_3_file(path, *, user_version: int = 3) -> None:
    """A fleet's database as schema 3 left it (no copies tables), one VM's place remembered, marked as ours and
    in WAL as vgpu leaves it; then its user_version set to ``user_version`` by hand."""
    with raw(path) as conn:
        for script in (schema.SPEC_TABLES, *schema.MIGRATIONS[:3]):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
        conn.execute("INSERT INTO vgpu_locations (vm_uuid, host) VALUES (?, 'gpu1')", (UUID_1,))
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {user_version:d}")
        conn.execute("PRAGMA journal_mode = WAL")


def test_a_schema_3_file_migrates_as_before(tmp_path):
    path = tmp_path / "v3.db"
    schema_3_file(path)
    with Store(path) as store, store.reading() as conn:
        assert locations.copies_unknown(conn)
    assert {"vgpu_location_copies", "vgpu_copies_unknown"} <= tables(path)


@pytest.mark.parametrize("version", [4, 5])
def test_a_schema_3_file_whose_version_was_set_higher_is_refused_naming_the_version_of_its_tables(tmp_path, version):
    path = tmp_path / "v3.db"
    schema_3_file(path, user_version=version)
    lacks = ("vgpu_location_copies", "vgpu_copies_unknown")[:version - 3]  # the tables its version has
    text = refused(path, f"schema version {version}", "those of version 3, without " + " and ".join(lacks),
                   "vgpu-admin repair-db")
    assert "no such table" not in text, text


@pytest.mark.parametrize("version", [4, 5])
def test_repair_db_creates_the_copies_tables_a_schema_3_file_set_higher_lacks_with_copies_unknown(tmp_path, version):
    path = tmp_path / "v3.db"
    schema_3_file(path, user_version=version)
    repair = repair_schema(path)
    # the tables its version has (version 4 has no vgpu_copies_unknown yet: opening it migrates, and marks)
    created = ("table vgpu_location_copies", "table vgpu_copies_unknown")[:version - 3]
    assert repair.restored == created and repair.copies_unknown
    with Store(path) as store, store.reading() as conn:
        assert locations.copies_unknown(conn)  # never trusted: copies are unknown until a scan every host answers
        assert locations.select_last_hosts(conn) == {UUID_1: ("gpu1",)}


def current_without(path, table: str) -> None:
    """A database vgpu made (a place and a copy remembered), one of vgpu's own tables since dropped."""
    with Store(path) as store, store.writing() as conn:
        locations.record(conn, [(UUID_1, "gpu1", None)])
        conn.execute("INSERT INTO vgpu_location_copies (vm_uuid, host) VALUES (?, 'gpu2')", (UUID_1,))
    with raw(path) as conn:
        conn.execute(f"DROP TABLE {table}")


def test_a_current_file_without_its_copies_unknown_table_is_refused_and_repair_db_creates_it_marked(tmp_path):
    path = tmp_path / "v.db"
    current_without(path, "vgpu_copies_unknown")
    refused(path, f"schema version {schema.LATEST_VERSION}", "it lacks vgpu_copies_unknown",
            f"which version {schema.LATEST_VERSION} has", "vgpu-admin repair-db")
    repair = repair_schema(path)
    assert repair.restored == ("table vgpu_copies_unknown",) and repair.copies_unknown
    with Store(path) as store, store.reading() as conn:
        assert locations.copies_unknown(conn)  # the dropped table may have held the mark: set, not trusted away
        assert locations.select_last_hosts(conn) == {UUID_1: ("gpu1", "gpu2")}  # the copy kept


def test_a_current_file_without_its_copies_table_is_refused_and_repair_db_creates_it_empty_and_marked(tmp_path):
    path = tmp_path / "v.db"
    current_without(path, "vgpu_location_copies")
    refused(path, f"schema version {schema.LATEST_VERSION}", "vgpu_location_copies", "vgpu-admin repair-db")
    repair = repair_schema(path)
    assert repair.restored == ("table vgpu_location_copies",) and repair.copies_unknown
    with Store(path) as store, store.reading() as conn:
        assert locations.copies_unknown(conn)  # the copies it held are gone: any host may hold one
    Store(path).close()


@pytest.mark.parametrize("table", ["vgpu_audit", "vgpu_operations", "vgpu_attention", "vgpu_locations"])
def test_a_current_file_without_a_table_of_ours_repair_db_cannot_make_again_is_refused_and_not_repaired(tmp_path, table):
    path = tmp_path / "v.db"
    current_without(path, table)
    text = refused(path, f"schema version {schema.LATEST_VERSION}", table, "restore a backup")
    assert "no such table" not in text and "repair-db" not in text, text
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        repair_schema(path)
    assert table in one_line(caught.value) and "nothing was changed" in one_line(caught.value)
    assert path.read_bytes() == before


def test_a_version_1_file_set_to_3_is_refused_with_the_version_to_set_back(tmp_path):
    # Its missing tables hold what nothing learns again (repair-db cannot make them): the version is the fault.
    path = tmp_path / "v1.db"
    with raw(path) as conn:
        version_1_tables(conn)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("PRAGMA journal_mode = WAL")
    text = refused(path, "schema version 3", "those of version 1, without vgpu_attention and vgpu_locations",
                   "PRAGMA user_version = 1")
    assert "repair-db" not in text, text
    with pytest.raises(StoreError, match="PRAGMA user_version = 1"):
        repair_schema(path)


def test_a_current_file_without_its_copies_known_on_table_is_refused_and_repair_db_creates_it_marked(tmp_path):
    # Empty, it names no host whose copies are known; with the mark set, a change asks every other host.
    path = tmp_path / "v.db"
    current_without(path, "vgpu_copies_known_on")
    refused(path, "vgpu_copies_known_on", "vgpu-admin repair-db")
    repair = repair_schema(path)
    assert repair.restored == ("table vgpu_copies_known_on",) and repair.copies_unknown
    with Store(path) as store, store.reading() as conn:
        assert locations.copies_unknown(conn)
        assert locations.select_last_hosts(conn) == {UUID_1: ("gpu1", "gpu2")}


# --- an index of ours dropped or replaced ---------------------------------------------------------------------


def test_our_indexes_are_derived_from_the_migrations_and_each_says_what_it_is_for():
    assert schema.indexes_of(schema.LATEST_VERSION) == {
        "idx_audit_subject": "CREATE INDEX idx_audit_subject ON vgpu_audit(subject)",
        "idx_operation_lock": "CREATE UNIQUE INDEX idx_operation_lock ON vgpu_operations(vm_uuid) WHERE finished_at IS NULL",
    }
    assert set(schema.INDEX_PURPOSES) == set(schema.indexes_of(schema.LATEST_VERSION))


def current_with(path, *statements: str) -> None:
    """A database vgpu made, then changed by ``statements`` (an index of ours dropped, say)."""
    Store(path).close()
    with raw(path) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.parametrize("index", ["idx_operation_lock", "idx_audit_subject"])
def test_a_current_file_without_an_index_of_ours_is_refused_and_repair_db_creates_it(tmp_path, index):
    path = tmp_path / "v.db"
    current_with(path, f"DROP INDEX {index}")
    with raw(path) as conn:
        assert not schema.tables_as_created(conn)
    refused(path, f"lacks index {index}, {schema.INDEX_PURPOSES[index]}", "vgpu-admin repair-db")
    assert repair_schema(path).restored == (f"index {index}",)
    with raw(path) as conn:
        assert schema.tables_as_created(conn)  # as created: the one query vouches for it again
    Store(path).close()


def test_a_lock_index_that_is_not_unique_is_refused_and_repair_db_makes_it_unique_again(tmp_path):
    path = tmp_path / "v.db"
    current_with(path, "DROP INDEX idx_operation_lock",
                 "CREATE INDEX idx_operation_lock ON vgpu_operations(vm_uuid) WHERE finished_at IS NULL")
    refused(path, "has an index idx_operation_lock other than the one vgpu-admin creates", "vgpu-admin repair-db")
    assert repair_schema(path).restored == ("index idx_operation_lock",)
    with raw(path) as conn:
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'idx_operation_lock'").fetchone()[0] == \
            schema.indexes_of(schema.LATEST_VERSION)["idx_operation_lock"]


def test_a_lock_index_written_another_way_is_accepted_after_the_full_check(tmp_path):
    # The same index, spaced and quoted otherwise: not the text vgpu writes, so the full check decides, and keeps it.
    path = tmp_path / "v.db"
    current_with(path, "DROP INDEX idx_operation_lock",
                 'CREATE UNIQUE INDEX "idx_operation_lock" ON vgpu_operations (vm_uuid)  WHERE finished_at IS NULL')
    Store(path).close()


def test_a_schema_3_file_without_its_lock_index_is_refused_before_it_is_migrated(tmp_path):
    # Migrated, it would open once and be refused from then on: refused now, still at version 3.
    path = tmp_path / "v3.db"
    schema_3_file(path)
    with raw(path) as conn:
        conn.execute("DROP INDEX idx_operation_lock")
    refused(path, "lacks index idx_operation_lock", "vgpu-admin repair-db")
    assert repair_schema(path).restored == ("index idx_operation_lock",)
    Store(path).close()
    assert {"vgpu_location_copies", "vgpu_copies_unknown"} <= tables(path)


def test_a_version_6_database_gets_the_host_identities_table_and_keeps_its_places(tmp_path):
    """Schema 7 adds vgpu_host_identities: empty after the upgrade (which host an old label named is not known,
    so it is not guessed), every place kept."""
    path = tmp_path / "v6.db"
    Store(path).close()
    with raw(path) as conn:
        conn.execute("DROP TABLE vgpu_host_identities")
        conn.execute("INSERT INTO vgpu_locations (vm_uuid, host) VALUES (?, 'gpu2')", (UUID_1,))
        conn.execute("PRAGMA user_version = 6")
    Store(path).close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION == 7
        assert conn.execute("SELECT COUNT(*) FROM vgpu_host_identities").fetchone()[0] == 0
        assert conn.execute("SELECT vm_uuid, host FROM vgpu_locations").fetchall() == [(UUID_1, "gpu2")]

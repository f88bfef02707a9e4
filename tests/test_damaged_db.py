"""A database changed behind vgpu-admin's back (issue 11): rows that break the spec's rules, and a schema
without the spec's constraints or indexes.

Such a file is a damaged database: every command says so in one sentence naming the row (exit 1, never the
exit code of bad user input, never an internal error), and `repair-db` restores a schema that lacks the
spec's constraints, keeping every row.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from vgpu import schema_check
from vgpu.schema import LATEST_VERSION

from .clikit import SpecHost, digest

READS = [["list-pools"], ["list-vms"], ["status"], ["scan-vms"], ["show-pool", "--pool-id=A"]]


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def raw(spec) -> sqlite3.Connection:
    return sqlite3.connect(spec.db, isolation_level=None)


def plant(spec, *statements: str, params=()) -> None:
    """Write past the CHECK constraints, as a tool that switches them off (or a hand edit) can."""
    conn = raw(spec)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    for statement in statements:
        conn.execute(statement, params)
    conn.close()


def damaged(outcome, *words: str) -> str:
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert "internal error" not in line and "is damaged" in line, line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize("command", READS)
def test_a_priority_of_7_is_a_damaged_database_naming_the_row(spec, command):
    plant(spec, "UPDATE vms SET priority = 7 WHERE vm_name = 'VM-3'")
    line = damaged(spec.cli(*command), str(spec.db), spec.uuid("VM-3"), "priority 7", "0, 1 or 2")
    assert line == (f"error: database {spec.db} is damaged: the vms row with vm_uuid {spec.uuid('VM-3')} has "
                    "priority 7, where the spec allows 0, 1 or 2; correct or delete that row (sqlite3), or restore "
                    "the database from a backup")


def test_a_pool_c_row_is_damage_not_a_third_pool(spec):
    plant(spec, "INSERT INTO pools (pool_id, pool_name, enabled) VALUES ('C', 'Pool C', 1)")
    damaged(spec.cli("list-pools"), "pools row with pool_id 'C'", "A or B")


@pytest.mark.parametrize("command", READS[:4] + [["show-vm", "--vm-uuid={vm}"], ["set-pool", "--vm-uuid={vm}", "--pool=A"]])
def test_a_vm_in_pool_c_is_damage_not_bad_input(spec, command):
    conn = raw(spec)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("UPDATE vms SET pool_id = 'C' WHERE vm_name = 'VM-5'")
    conn.close()
    files = spec.files()
    damaged(spec.cli(*[word.format(vm=spec.uuid("VM-5")) for word in command], stdin="yes\n"), "pool_id 'C'")
    assert spec.files() == files


@pytest.mark.parametrize("column,value,rule", [
    ("vm_id", "'seven'", "a whole number from 1 to 2147483647"),
    ("vm_id", "-3", "a whole number from 1 to 2147483647"),
    ("vm_id", str(2**40), "a whole number from 1 to 2147483647"),
    ("vm_uuid", "'not-a-uuid'", "a lower-case UUID"),
    ("vm_name", "'" + "n" * 300 + "'", "text of at most 255 characters or NULL"),
    ("priority", "1.5", "0, 1 or 2"),
])
def test_every_column_is_read_with_bounds(spec, column, value, rule):
    plant(spec, f"UPDATE vms SET {column} = {value} WHERE vm_name = 'VM-2' OR vm_uuid = ?", params=(spec.uuid("VM-2"),))
    damaged(spec.cli("list-vms"), rule)


def test_a_planted_journal_row_is_damage_and_recover_writes_nothing(spec):
    host_before = digest(spec.host_file)
    new = json.dumps({"pool_id": "A -device evil", "priority": 2, "vm_id": 1})
    conn = raw(spec)
    conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, old, new, was_running, owner) "
                 "VALUES (?, 'reconfigure', 'db-updated', NULL, ?, 1, 'elsewhere:1 (interrupted)')", (spec.uuid("VM-1"), new))
    conn.close()
    damaged(spec.cli("recover"), "vgpu_operations row with op_id 1", "pool_id 'A -device evil'")
    damaged(spec.cli("status"), "vgpu_operations row")
    assert digest(spec.host_file) == host_before


def test_an_audit_entry_that_is_not_json_is_damage(spec):
    conn = raw(spec)
    conn.execute("INSERT INTO vgpu_audit (action, subject, old, new) VALUES ('update', ?, 'not json', NULL)",
                 (spec.uuid("VM-1"),))
    conn.close()
    damaged(spec.cli("history"), "vgpu_audit row with entry_id", "old 'not json'")


# --- a schema without the spec's constraints -----------------------------------------------------------------


def strip_constraints(spec, table: str, sql: str) -> None:
    """Rebuild ``table`` with ``sql`` (no CHECKs, say), keeping its rows, the file marked as vgpu's."""
    conn = raw(spec)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    conn.execute(sql)
    conn.execute(f"INSERT INTO {table} SELECT * FROM old_{table}")
    conn.execute(f"DROP TABLE old_{table}")
    conn.close()


LOOSE_VMS = """CREATE TABLE vms (vm_id INTEGER NOT NULL UNIQUE, vm_uuid TEXT UNIQUE NOT NULL, vm_name TEXT,
    pool_id CHAR(1) NOT NULL DEFAULT 'A', priority INTEGER NOT NULL DEFAULT 1, created_at TIMESTAMP, updated_at TIMESTAMP,
    FOREIGN KEY (pool_id) REFERENCES pools(pool_id))"""


def test_a_database_without_the_checks_or_indexes_is_refused_until_repair_db(spec):
    strip_constraints(spec, "vms", LOOSE_VMS)  # the three indexes went with the old table
    files = spec.files()
    refused = spec.cli("list-vms")
    assert refused.code == 1
    line = refused.one_error_line()
    assert line == (f"error: database {spec.db} lacks the spec's CHECK on vms.pool_id, CHECK on vms.priority, "
                    "index idx_vm_uuid, index idx_vm_pool and 1 more; run 'vgpu-admin repair-db' to restore them")
    assert spec.files() == files
    repaired = spec.cli("repair-db")
    assert repaired.code == 0, repaired
    assert repaired.out_lines == [f"Restored in {spec.db}: CHECK on vms.pool_id, CHECK on vms.priority, index idx_vm_uuid, "
                                  "index idx_vm_pool, index idx_vm_priority. Every row was kept."]
    assert len(spec.registered()) == 20
    with raw(spec) as conn:
        assert schema_check.missing(conn) == []
    assert spec.cli("repair-db").out_lines == [f"The database {spec.db} already has the spec's constraints and indexes; nothing to repair."]


def test_one_missing_index_is_refused_and_restored(spec):
    conn = raw(spec)
    conn.execute("DROP INDEX idx_vm_priority")
    conn.close()
    assert "index idx_vm_priority" in spec.cli("status").one_error_line()
    assert spec.cli("repair-db").out_lines == [f"Restored in {spec.db}: index idx_vm_priority. Every row was kept."]
    assert spec.cli("status").code == 0


def test_repair_db_refuses_rows_that_break_the_rules_and_changes_nothing(spec):
    strip_constraints(spec, "vms", LOOSE_VMS)
    plant(spec, "UPDATE vms SET priority = 9 WHERE vm_name = 'VM-4'")
    files = spec.files()
    damaged(spec.cli("repair-db"), "priority 9", spec.uuid("VM-4"))
    assert spec.files() == files


def test_a_database_of_the_specs_tables_without_checks_is_not_adopted(tmp_path):
    from .clikit import run

    path = tmp_path / "scheduler.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE pools (pool_id CHAR(1) PRIMARY KEY, pool_name TEXT NOT NULL, description TEXT, "
                 "enabled INTEGER DEFAULT 1, created_at TIMESTAMP, updated_at TIMESTAMP)")
    conn.execute(LOOSE_VMS)
    conn.execute("INSERT INTO pools (pool_id, pool_name) VALUES ('A', 'Pool A'), ('B', 'Pool B')")
    conn.close()
    before = digest(path)
    outcome = run(["--db", str(path), "--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
    assert outcome.code == 1 and "lacks the spec's CHECK on pools.pool_id" in outcome.one_error_line()
    assert digest(path) == before
    assert run(["--db", str(path), "--host", f"sim:{tmp_path / 'host.json'}", "repair-db"]).code == 0
    assert run(["--db", str(path), "--host", f"sim:{tmp_path / 'host.json'}", "list-pools"]).code == 0


# --- the one-query check of a database vgpu made --------------------------------------------------------


def test_a_database_vgpu_made_is_found_complete_without_the_pragma_walk(tmp_path, monkeypatch):
    from vgpu import schema
    from vgpu.store import Store

    with Store(tmp_path / "v.db") as store:
        assert schema.tables_as_created(store._conn)
    # Opened again, the one query answers: the full check (a dozen PRAGMAs on every start-up) is not run.
    monkeypatch.setattr(schema_check, "missing", lambda conn: pytest.fail("the full check ran for a file vgpu made"))
    Store(tmp_path / "v.db").close()


def test_opening_a_database_vgpu_made_asks_sqlite_four_statements_and_one_for_the_tables(tmp_path, monkeypatch):
    # Every command's start-up: the check of vgpu's own tables rides in the one query on sqlite_master.
    from vgpu import store as store_module
    from vgpu.store import Store

    Store(tmp_path / "v.db").close()
    statements: list[str] = []
    connect = store_module._connect

    def traced(*args):
        conn = connect(*args)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(store_module, "_connect", traced)
    Store(tmp_path / "v.db").close()
    asked = [statement for statement in statements if not statement.startswith("--")]  # a pragma's echo
    assert len(asked) == 4 and sum("sqlite_master" in statement for statement in asked) == 1, asked


def test_a_complete_schema_written_another_way_gets_the_full_check_and_is_adopted(tmp_path):
    from vgpu import schema
    from vgpu.store import Store

    # The spec's tables and indexes, with the spec's constraints, as its own init script (or a DBA) might lay
    # them out: not the text vgpu writes, so the one query cannot vouch for them and the PRAGMAs decide.
    path = tmp_path / "scheduler.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (schema.SPEC_POOLS, schema.SPEC_VMS, *schema.SPEC_INDEXES.values()):
        conn.execute(" ".join(statement.split()))
    conn.execute("INSERT INTO pools (pool_id, pool_name) VALUES ('A', 'Pool A'), ('B', 'Pool B')")
    assert not schema.tables_as_created(conn) and schema_check.missing(conn) == []
    conn.close()
    Store(path).close()


@pytest.mark.parametrize("change", [
    "DROP INDEX idx_vm_pool",
    "CREATE INDEX idx_extra ON vms(vm_name)",
    "CREATE TRIGGER vms_touch AFTER UPDATE ON vms BEGIN SELECT 1; END",
])
def test_anything_but_the_schema_as_vgpu_creates_it_is_not_vouched_for_by_the_one_query(tmp_path, change):
    from vgpu import schema
    from vgpu.store import Store

    Store(tmp_path / "v.db").close()
    conn = sqlite3.connect(tmp_path / "v.db", isolation_level=None)
    conn.execute(change)
    assert not schema.tables_as_created(conn)
    conn.close()


# --- what an admin added to the spec's tables survives repair-db ------------------------------------------------

ADDED_COLUMNS = (
    "gpu_slot INTEGER",
    "note TEXT DEFAULT 'none'",
    "weight REAL NOT NULL DEFAULT 1.5",
    "tag TEXT CHECK (length(tag) <= 8)",
)


def add_to_vms(spec) -> None:
    """An admin's own columns (several declared types, defaults, a CHECK), index, trigger and view on vms."""
    conn = raw(spec)
    for column in ADDED_COLUMNS:
        conn.execute(f"ALTER TABLE vms ADD COLUMN {column}")
    conn.execute("UPDATE vms SET gpu_slot = vm_id + 100, note = 'n' || vm_id, weight = vm_id / 4.0, tag = 't' || vm_id")
    conn.execute("CREATE TABLE slot_log (vm_uuid TEXT, old_slot INTEGER, new_slot INTEGER)")
    conn.execute("CREATE INDEX idx_gpu_slot ON vms(gpu_slot) WHERE gpu_slot IS NOT NULL")
    conn.execute("CREATE TRIGGER vms_slot_log AFTER UPDATE OF gpu_slot ON vms BEGIN "
                 "INSERT INTO slot_log VALUES (new.vm_uuid, old.gpu_slot, new.gpu_slot); END")
    conn.execute("CREATE VIEW vm_slots AS SELECT vm_uuid, gpu_slot, weight FROM vms ORDER BY vm_uuid")
    conn.close()


def admin_schema(spec) -> list[tuple[str, str, str]]:
    with raw(spec) as conn:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name IN "
                                   "('idx_gpu_slot', 'vms_slot_log', 'vm_slots', 'slot_log')"))


def test_repair_db_keeps_the_columns_indexes_triggers_and_views_an_admin_added(spec):
    strip_constraints(spec, "vms", LOOSE_VMS)
    add_to_vms(spec)
    with raw(spec) as conn:
        rows = sorted(conn.execute("SELECT rowid, * FROM vms"))
        view = conn.execute("SELECT * FROM vm_slots").fetchall()
    added = admin_schema(spec)
    repaired = spec.cli("repair-db")
    assert repaired.code == 0, repaired
    assert repaired.out_lines == [
        f"Restored in {spec.db}: CHECK on vms.pool_id, CHECK on vms.priority, index idx_vm_uuid, index idx_vm_pool, "
        "index idx_vm_priority. Every row was kept, and so was what the spec does not have: column vms.gpu_slot, "
        "column vms.note, column vms.weight, column vms.tag, index idx_gpu_slot, trigger vms_slot_log."]
    with raw(spec) as conn:
        assert schema_check.missing(conn) == []
        assert sorted(conn.execute("SELECT rowid, * FROM vms")) == rows
        assert conn.execute("SELECT * FROM vm_slots").fetchall() == view
        columns = {row[1]: row[2:5] for row in conn.execute("SELECT * FROM pragma_table_info('vms')")}
        assert columns["gpu_slot"] == ("INTEGER", 0, None)
        assert columns["note"] == ("TEXT", 0, "'none'")
        assert columns["weight"] == ("REAL", 1, "1.5")
        conn.execute("INSERT INTO vms (vm_id, vm_uuid) VALUES (99, '99999999-9999-4999-8999-999999999999')")
        assert conn.execute("SELECT note, weight FROM vms WHERE vm_id = 99").fetchone() == ("none", 1.5)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE vms SET tag = 'far too long a tag' WHERE vm_id = 99")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE vms SET priority = 7 WHERE vm_id = 99")
        conn.execute("UPDATE vms SET gpu_slot = 5 WHERE vm_id = 99")
        assert conn.execute("SELECT * FROM slot_log").fetchall() == [("99999999-9999-4999-8999-999999999999", None, 5)]
        conn.execute("DELETE FROM vms WHERE vm_id = 99")
    assert admin_schema(spec) == added
    assert len(spec.registered()) == 20
    assert spec.cli("list-vms").code == 0


def test_the_testers_repro_keeps_gpu_slot_and_its_value(tmp_path):
    from vgpu import schema

    from .clikit import run

    path = tmp_path / "own.db"
    conn = sqlite3.connect(path)
    conn.executescript(schema.SPEC_TABLES.replace(" CHECK(priority IN (0, 1, 2))", ""))
    conn.execute("ALTER TABLE vms ADD COLUMN gpu_slot INTEGER")
    conn.execute("INSERT INTO vms (vm_id, vm_uuid, vm_name, gpu_slot) VALUES (1, '33333333-3333-4333-8333-333333333333', 'vm3', 7)")
    conn.commit()
    conn.close()
    repaired = run(["--db", str(path), "--host", f"sim:{tmp_path / 'h.json'}", "repair-db"])
    assert repaired.out_lines == [f"Restored in {path}: CHECK on vms.priority. Every row was kept, and so was what "
                                  "the spec does not have: column vms.gpu_slot."]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT vm_name, gpu_slot FROM vms").fetchall() == [("vm3", 7)]


def test_repair_db_keeps_what_an_admin_added_to_a_specs_column_and_the_tables_own_constraints(spec):
    strip_constraints(spec, "vms", LOOSE_VMS.replace("vm_name TEXT,", "vm_name TEXT COLLATE NOCASE,")
                      .replace("FOREIGN KEY", "UNIQUE (vm_name, pool_id), FOREIGN KEY"))
    repaired = spec.cli("repair-db")
    assert repaired.code == 0, repaired
    assert repaired.out_lines[0].endswith("Every row was kept, and so was what the spec does not have: "
                                          "COLLATE NOCASE on vms.vm_name, UNIQUE (vm_name, pool_id) on vms.")
    with raw(spec) as conn:
        assert schema_check.missing(conn) == []
        assert conn.execute("SELECT count(*) FROM vms WHERE vm_name = 'vm-3'").fetchone() == (1,)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute("UPDATE vms SET vm_name = 'VM-4' WHERE vm_name = 'VM-3' AND pool_id = "
                         "(SELECT pool_id FROM vms WHERE vm_name = 'VM-4')")
    assert len(spec.registered()) == 20


def test_a_table_rebuilt_with_nothing_added_is_the_specs_text_again(spec):
    from vgpu import schema

    strip_constraints(spec, "vms", LOOSE_VMS)
    assert spec.cli("repair-db").code == 0
    with raw(spec) as conn:
        assert schema.tables_as_created(conn)


def test_repair_db_refuses_a_row_that_breaks_an_added_columns_own_check_and_changes_nothing(spec):
    strip_constraints(spec, "vms", LOOSE_VMS)
    add_to_vms(spec)
    plant(spec, "UPDATE vms SET tag = 'far too long a tag' WHERE vm_name = 'VM-4'")
    files = spec.files()
    refused = spec.cli("repair-db")
    assert refused.code == 1, refused
    assert refused.one_error_line() == (
        f"error: cannot repair database {spec.db}: a vms row breaks a constraint the spec does not have "
        "(SQLite says: CHECK constraint failed: length(tag) <= 8); nothing was changed")
    assert spec.files() == files



# --- a table of vgpu's own dropped ----------------------------------------------------------------------------


def test_a_dropped_copies_unknown_table_is_refused_in_one_sentence_until_repair_db_creates_it(spec):
    conn = raw(spec)
    conn.execute("DROP TABLE vgpu_copies_unknown")
    conn.close()
    files = spec.files()
    for command in (["list-vms"], ["scan-vms"], ["status"]):
        refused = spec.cli(*command)
        assert refused.code == 1 and refused.one_error_line() == (
            f"error: database {spec.db} has schema version {LATEST_VERSION}, which does not match its tables: it lacks "
            f"vgpu_copies_unknown, which version {LATEST_VERSION} has; nothing was changed. Run 'vgpu-admin repair-db' to create it, "
            "empty: which hosts hold copies of a VM is then unknown until a scan that every host answers"), refused
    assert spec.files() == files
    repaired = spec.cli("repair-db")
    assert repaired.code == 0 and repaired.out_lines == [
        f"Restored in {spec.db}: table vgpu_copies_unknown. Every row was kept. Which hosts hold copies of a VM is "
        "unknown until a scan that every host answers: until then, a change asks every host"], repaired
    assert spec.cli("scan-vms").code == 0 and len(spec.registered()) == 20
    assert spec.cli("repair-db").out_lines == [f"The database {spec.db} already has the spec's constraints and indexes; nothing to repair."]


def test_a_dropped_journal_is_refused_and_repair_db_says_to_restore_a_backup(spec):
    conn = raw(spec)
    conn.execute("DROP TABLE vgpu_operations")
    conn.close()
    files = spec.files()
    for command in (["list-vms"], ["repair-db"]):
        refused = spec.cli(*command)
        assert refused.code == 1 and refused.one_error_line() == (
            f"error: database {spec.db} has schema version {LATEST_VERSION}, which does not match its tables: it lacks "
            f"vgpu_operations, which version {LATEST_VERSION} has; nothing was changed. It was changed by hand or by another "
            "program: restore a backup"), refused
    assert spec.files() == files


# --- an index of vgpu's own dropped or replaced -----------------------------------------------------------------

LOCK_PURPOSE = ("which makes a change's unfinished journal row its VM's lock, so that two sessions never change one VM "
                "at once")


def claim(spec, name: str) -> None:
    """A change to VM ``name`` under way in this (live) session: its journal row holds the VM's lock."""
    from vgpu import journal, vms
    from vgpu.models import VMConfig
    from vgpu.store import Store

    with Store(spec.db) as store, store.writing() as conn:
        vm = vms.select_vm(conn, spec.uuid(name))
        journal.begin(conn, vm.vm_uuid, "reconfigure", vm, VMConfig("B", vm.priority, vm.vm_id), False)


def test_a_dropped_lock_index_is_refused_in_one_sentence_until_repair_db_creates_it(spec):
    conn = raw(spec)
    conn.execute("DROP INDEX idx_operation_lock")
    conn.close()
    files = spec.files()
    for command in (["list-vms"], ["scan-vms"]):
        refused = spec.cli(*command)
        assert refused.code == 1 and refused.one_error_line() == (
            f"error: database {spec.db} lacks index idx_operation_lock, {LOCK_PURPOSE}; nothing was changed. Run "
            "'vgpu-admin repair-db' to create it again"), refused
    assert spec.files() == files
    repaired = spec.cli("repair-db")
    assert repaired.code == 0 and repaired.out_lines == [
        f"Restored in {spec.db}: index idx_operation_lock. Every row was kept."], repaired
    assert spec.cli("list-vms").code == 0
    # The lock works again: a second session's change to a VM already claimed is refused, and so is a second
    # unfinished row written by any other program.
    claim(spec, "VM-1")
    busy = spec.cli("set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=A", stdin="yes\n")
    assert busy.code != 0 and "is being reconfigured by another session" in busy.one_error_line(), busy
    conn = raw(spec)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'reconfigure', 'planned', 'x:1')",
                     (spec.uuid("VM-1"),))
    conn.close()


def test_a_dropped_audit_index_is_refused_naming_what_it_is_for(spec):
    conn = raw(spec)
    conn.execute("DROP INDEX idx_audit_subject")
    conn.close()
    assert spec.cli("status").one_error_line() == (
        f"error: database {spec.db} lacks index idx_audit_subject, which finds a VM's history quickly; nothing was "
        "changed. Run 'vgpu-admin repair-db' to create it again")
    assert spec.cli("repair-db").out_lines == [f"Restored in {spec.db}: index idx_audit_subject. Every row was kept."]
    assert spec.cli("history").code == 0


def test_a_lock_index_replaced_by_one_that_is_not_unique_is_refused_until_repair_db(spec):
    conn = raw(spec)
    conn.execute("DROP INDEX idx_operation_lock")
    conn.execute("CREATE INDEX idx_operation_lock ON vgpu_operations(vm_uuid) WHERE finished_at IS NULL")
    conn.close()
    files = spec.files()
    refused = spec.cli("list-vms")
    assert refused.code == 1 and refused.one_error_line() == (
        f"error: database {spec.db} has an index idx_operation_lock other than the one vgpu-admin creates, "
        f"{LOCK_PURPOSE}; nothing was changed. Run 'vgpu-admin repair-db' to create it again"), refused
    assert spec.files() == files
    assert spec.cli("repair-db").out_lines == [f"Restored in {spec.db}: index idx_operation_lock. Every row was kept."]
    claim(spec, "VM-2")
    conn = raw(spec)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'reconfigure', 'planned', 'x:1')",
                     (spec.uuid("VM-2"),))
    conn.close()


def test_repair_db_will_not_create_the_lock_while_two_unfinished_operations_hold_one_vm(spec):
    # Two sessions claimed VM-1 while the index was gone: which change it has, no command can tell.
    claim(spec, "VM-3")  # a VM held once is no obstacle
    conn = raw(spec)
    conn.execute("DROP INDEX idx_operation_lock")
    for owner in ("gone.invalid:1", "gone.invalid:2"):
        conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, owner) VALUES (?, 'reconfigure', 'planned', ?)",
                     (spec.uuid("VM-1"), owner))
    conn.close()
    files = spec.files()
    refused = spec.cli("repair-db")
    uuid = spec.uuid("VM-1")
    assert refused.code == 1 and refused.one_error_line() == (
        f"error: cannot repair database {spec.db}: VM {uuid} has 2 unfinished operations (op_id 2 and 3), where its "
        "lock, index idx_operation_lock, allows one: they were started while the index was missing; nothing was "
        "changed. 'vgpu-admin recover' cannot open the file until the index is there, so wait until no session is at "
        "work on the VM (each finishes its own operation); then, if more than one is left, mark all but the oldest "
        f"finished (sqlite3 {spec.db} \"UPDATE vgpu_operations SET finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), "
        "outcome = 'failed' WHERE op_id IN (3)\"), run 'vgpu-admin repair-db' and 'vgpu-admin recover' (which finishes "
        f"or undoes the oldest), and check the VM with 'vgpu-admin show-vm --vm-uuid={uuid}'"), refused
    assert spec.files() == files
    assert spec.cli("recover").one_error_line().startswith(f"error: database {spec.db} lacks index idx_operation_lock")
    # As the sentence says: all but the oldest marked finished, repair-db creates the lock.
    conn = raw(spec)
    conn.execute("UPDATE vgpu_operations SET finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), outcome = 'failed' "
                 "WHERE op_id IN (3)")
    conn.close()
    assert spec.cli("repair-db").out_lines == [f"Restored in {spec.db}: index idx_operation_lock. Every row was kept."]

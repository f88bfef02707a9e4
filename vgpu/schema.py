"""The database schema and its forward migrations.

``pools`` and ``vms`` are the spec's tables to the letter (the host's scheduler reads them), with one fix:
the spec's ``DEFAULT 'Pool A' OR 'Pool B'`` is not valid SQL, so pool names are inserted explicitly instead.
Everything else here is ours: the audit log, the operation journal and its per-VM lock.

The version lives in ``PRAGMA user_version`` and the file is marked as ours with ``PRAGMA application_id``;
both sit in the database header, so they change in the same transaction as the tables.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Collection

if TYPE_CHECKING:
    import sqlite3

APPLICATION_ID = 0x76475055  # "vGPU"

SPEC_POOLS = """
CREATE TABLE pools (
    pool_id CHAR(1) PRIMARY KEY CHECK(pool_id IN ('A', 'B')),
    pool_name TEXT NOT NULL,
    description TEXT,
    enabled INTEGER DEFAULT 1 CHECK(enabled IN (0, 1)),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
"""

SPEC_POOL_ROWS = """
INSERT INTO pools (pool_id, pool_name, enabled) VALUES
    ('A', 'Pool A', 1),
    ('B', 'Pool B', 1);
"""

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
);
"""

SPEC_INDEXES = {
    "idx_vm_uuid": "CREATE INDEX idx_vm_uuid ON vms(vm_uuid);",
    "idx_vm_pool": "CREATE INDEX idx_vm_pool ON vms(pool_id);",
    "idx_vm_priority": "CREATE INDEX idx_vm_priority ON vms(priority);",
}

SPEC_TABLES = SPEC_POOLS + SPEC_POOL_ROWS + SPEC_VMS + "\n" + "\n".join(SPEC_INDEXES.values()) + "\n"

OUR_TABLES_V1 = """
CREATE TABLE vgpu_audit (
    entry_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX idx_audit_subject ON vgpu_audit(subject);

-- One row per reconfigure-style operation. The step is written *before* it is taken, so recover()
-- knows how far an interrupted operation got. An unfinished row is the VM's lock.
CREATE TABLE vgpu_operations (
    op_id INTEGER PRIMARY KEY,
    vm_uuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    old TEXT,
    new TEXT,
    was_running INTEGER,
    owner TEXT NOT NULL,
    started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    finished_at TEXT,
    outcome TEXT
);
CREATE UNIQUE INDEX idx_operation_lock ON vgpu_operations(vm_uuid) WHERE finished_at IS NULL;
"""

# Version 2: a session is known by more than "host:pid" (the boot id and the process start time tell a dead
# session from a reused PID or a reboot); a row its session gave up is marked by released_at instead of an
# " (interrupted)" suffix on owner; recover() claims a row (recovering_since) before it acts; reverted says a
# rollback put the old values back after the DB had taken the new ones; and VMs a command left in a state
# an admin must look at (a shutdown requested and not confirmed, a VM that would not start again) are marked.
JOURNAL_V2 = """
ALTER TABLE vgpu_operations ADD COLUMN owner_boot_id TEXT;
ALTER TABLE vgpu_operations ADD COLUMN owner_started TEXT;
ALTER TABLE vgpu_operations ADD COLUMN released_at TEXT;
ALTER TABLE vgpu_operations ADD COLUMN recovering_since TEXT;
ALTER TABLE vgpu_operations ADD COLUMN reverted INTEGER NOT NULL DEFAULT 0 CHECK (reverted IN (0, 1));
UPDATE vgpu_operations SET released_at = updated_at, owner = substr(owner, 1, length(owner) - length(' (interrupted)'))
    WHERE owner LIKE '% (interrupted)';

CREATE TABLE vgpu_attention (
    vm_uuid TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('shutdown-unconfirmed', 'not-restarted')),
    since TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
"""

# Version 3: a fleet (several hosts, one database). Each operation records the label of the host it ran
# against (NULL: a single host named by its URI alone), so recover() goes back to that host; and where each
# VM was last seen (the host's label and, in a XAPI pool, the member it was resident on) is remembered, so
# a host that cannot be reached still has its registered VMs shown as such, and list-vms can say where
# each VM is without asking any host. A VM is found again by its UUID: this is a hint, never the truth.
FLEET_V3 = """
ALTER TABLE vgpu_operations ADD COLUMN host TEXT;

CREATE TABLE vgpu_locations (
    vm_uuid TEXT PRIMARY KEY,
    host TEXT NOT NULL CHECK (host <> ''),
    resident_on TEXT,
    seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
"""

# Version 4: a UUID listed by several hosts at once (a copy between pools) is remembered on each of them, not
# only on the one vgpu_locations names: while one of them cannot be reached, a change made on another alone
# would leave its copy behind with the old configuration and the same vm_id, so the change must ask every
# host the UUID was last seen on. Rows here are the hosts besides vgpu_locations.host; a scan that lists the
# UUID on one host alone (every other answering) removes them.
FLEET_COPIES_V4 = """
CREATE TABLE vgpu_location_copies (
    vm_uuid TEXT NOT NULL,
    host TEXT NOT NULL CHECK (host <> ''),
    PRIMARY KEY (vm_uuid, host)
);
"""

# Version 5: which hosts hold copies of a UUID may not be known yet. Schema 3 kept one host per UUID, so a fleet's
# database upgraded from it (places remembered, no copies) cannot say that a UUID a scan saw on two hosts is
# on both: until a scan that every host of the fleet answered (which records each copy; it emptied this table
# until version 6, which keeps it and lists the hosts asked instead), a change refuses while any host that might hold a copy cannot be asked. A database upgraded at
# version 4 with places and no copies cannot tell whether it came from version 3, and is treated the same.
_COPIES_UNKNOWN_TABLE = """
CREATE TABLE vgpu_copies_unknown (
    since TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
"""
COPIES_UNKNOWN_V5 = _COPIES_UNKNOWN_TABLE + """
INSERT INTO vgpu_copies_unknown (since) SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE EXISTS (SELECT 1 FROM vgpu_locations) AND NOT EXISTS (SELECT 1 FROM vgpu_location_copies);
"""

# Version 6: after an upgrade from schema 3, which hosts' copies are known is kept host by host. A scan that every
# host of its run answered records the copies among those hosts alone: one it did not ask (taken out of [hosts], or
# holding nothing but copies, so that no table names it) may still hold a copy, and a database cannot tell such a
# host from a new one. So the mark of version 5 stays, and the hosts such a scan asked are listed here: a change
# asks every other host of its run as well, and is refused while one of them cannot be asked.
COPIES_KNOWN_ON_V6 = """
CREATE TABLE vgpu_copies_known_on (
    host TEXT PRIMARY KEY CHECK (host <> '')
);
"""

# Version 7: which host each label names, as a scan or a change last found it there: its URI as the "same URI; keep
# one" check spells it (vgpu.host_uri.host_key: a sim file's real path, a XAPI's host and port, no user, never a
# password). Places and copies are kept by label, so a host renamed in [hosts] (or named under another label by
# another config over the same database) looked like a second host still holding a copy, and every change of its
# VMs was refused for good; a remembered label whose identity is one of a run's hosts is that host, and its rows
# move under the run's label. A label remembered before this version has no row here: it is not guessed.
HOST_IDENTITIES_V7 = """
CREATE TABLE vgpu_host_identities (
    host TEXT PRIMARY KEY CHECK (host <> ''),
    identity TEXT NOT NULL CHECK (identity <> '')
);
"""

# MIGRATIONS[n] takes a database at version n to version n + 1. Version 0 is either an empty file or a
# database made by the spec's own init script (pools and vms only), which we adopt rather than refuse.
MIGRATIONS: tuple[str, ...] = (OUR_TABLES_V1, JOURNAL_V2, FLEET_V3, FLEET_COPIES_V4, COPIES_UNKNOWN_V5, COPIES_KNOWN_ON_V6,
                                HOST_IDENTITIES_V7)
LATEST_VERSION = len(MIGRATIONS)


def _created_by(step: str) -> list[str]:
    return re.findall(r"CREATE TABLE (\w+)", step)


def version_of_tables(tables: Collection[str]) -> int:
    """The schema version a database's own tables are those of: the last migration that created one of them
    (each creates a table of its own), 0 for none. Read only when a file's user_version is in doubt: a version
    lower than this one would run migrations over tables they already made."""
    for version in range(LATEST_VERSION, 0, -1):
        if set(_created_by(MIGRATIONS[version - 1])) & set(tables):
            return version
    return 0


def tables_of(version: int) -> list[str]:
    """Our tables at schema ``version``, in the order its migrations create them."""
    return [name for step in MIGRATIONS[:version] for name in _created_by(step)]


def indexes_of(version: int) -> dict[str, str]:
    """Our indexes at schema ``version``, by name, each with its CREATE statement as sqlite_master keeps it (the
    text as written, less the semicolon)."""
    return {name: statement for step in MIGRATIONS[:version]
            for statement, name in re.findall(r"(CREATE (?:UNIQUE )?INDEX (\w+) [^;]*);", step)}


# What each index of ours is for, named when a file lacks one. idx_operation_lock is what makes "claim before
# acting" hold: journal.begin checks for a holder under the write lock, and the index refuses a second unfinished
# row for a VM whoever writes it.
INDEX_PURPOSES = {
    "idx_audit_subject": "which finds a VM's history quickly",
    "idx_operation_lock": "which makes a change's unfinished journal row its VM's lock, so that two sessions never "
                          "change one VM at once",
}


def missing_tables(version: int, tables: Collection[str]) -> list[str]:
    """Our tables that schema ``version`` has and ``tables`` lack: dropped, or a user_version set by hand."""
    return [name for name in tables_of(version) if name not in tables]


# Our tables that repair-db may create again, empty, when one is missing: they only say which hosts hold copies
# of a UUID (and which hosts' copies are known), which a scan that every host answers learns again. Created
# again, they cannot say it, so the "copies unknown" mark is set (MARK_COPIES_UNKNOWN) and vgpu_copies_known_on
# emptied (a host listed there vouched for copies that may be gone): until that scan, a change asks every host of
# the run. The
# others hold what nothing can learn again (the audit log, the journal, attention marks, places): a file
# without one of those is restored from a backup.
RECREATABLE = {"vgpu_location_copies": FLEET_COPIES_V4, "vgpu_copies_unknown": _COPIES_UNKNOWN_TABLE,
               "vgpu_copies_known_on": COPIES_KNOWN_ON_V6}
MARK_COPIES_UNKNOWN = """INSERT INTO vgpu_copies_unknown (since) SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE NOT EXISTS (SELECT 1 FROM vgpu_copies_unknown)"""


# What sqlite_master holds for pools and vms when vgpu created them (or repair-db rebuilt them): SQLite keeps
# each CREATE statement's text as written, less the semicolon, and names the UNIQUE and PRIMARY KEY indexes
# itself. A file that holds exactly these was made by this schema, so it has every constraint and index the
# spec asks for; anything else (the spec's own init script, a hand-made table) gets schema_check's full check.
_AS_CREATED = frozenset({
    ("table", "pools", SPEC_POOLS.strip().removesuffix(";")),
    ("index", "sqlite_autoindex_pools_1", None),
    ("table", "vms", SPEC_VMS.strip().removesuffix(";")),
    ("index", "sqlite_autoindex_vms_1", None),
    ("index", "sqlite_autoindex_vms_2", None),
    *(("index", name, statement.removesuffix(";")) for name, statement in SPEC_INDEXES.items()),
})


_OURS = tuple(tables_of(LATEST_VERSION))
_OUR_INDEXES = indexes_of(LATEST_VERSION)
_AS_CREATED_WITH_OURS = (_AS_CREATED | {("table", name, None) for name in _OURS}
                         | {("index", name, statement) for name, statement in _OUR_INDEXES.items()})
_AS_CREATED_QUERY = ("SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('pools', 'vms') UNION ALL "
                     f"SELECT 'table', name, NULL FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(_OURS))}) "
                     f"UNION ALL SELECT 'index', name, sql FROM sqlite_master WHERE type = 'index' AND name IN "
                     f"({', '.join('?' * len(_OUR_INDEXES))})")


def tables_as_created(conn: sqlite3.Connection) -> bool:
    """Whether ``pools`` and ``vms`` are exactly as this schema creates them, every table of ours at the latest
    version is there and every index of ours is as created (a lock index that is no longer UNIQUE locks nothing):
    one query instead of the dozen PRAGMAs of :func:`vgpu.schema_check.missing` and a look at our tables and
    indexes, which every start-up would otherwise pay."""
    return frozenset(conn.execute(_AS_CREATED_QUERY, (*_OURS, *_OUR_INDEXES))) == _AS_CREATED_WITH_OURS


"""The SQLite store: opening a database file safely, migrating it, and transactions.

Every connection runs with foreign keys on, WAL and a busy timeout; every write happens inside
``BEGIN IMMEDIATE`` so two processes never both read "vm_id 5 is free" and then both take it. The SQL for
each table lives with the module that owns the concept (pools.py, vms.py, audit.py, journal.py); this module
only knows files, connections and transactions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from _thread import allocate_lock, get_ident  # without importing threading on every start-up
from typing import TYPE_CHECKING, Iterator

from . import schema, trust
from .errors import DamagedDatabase, IncompleteSchema, StoreError

if TYPE_CHECKING:
    from .schema_check import Repair

DEFAULT_BUSY_TIMEOUT = 30.0


class Store:
    """One open vgpu database, for the thread that opened it: another thread gets a connection of its own from
    :meth:`reopen` (any thread may close it)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._owner: int | None = get_ident()  # None: the first thread to use it (see reopen)
        self._claiming = allocate_lock()
        self._conn = _connect(self.path, busy_timeout)
        # The file opened, as the path names it now: each transaction checks that it still does (see _check_file).
        self._opened = _file_identity(self.path)
        self._moved: str | None = None  # "replaced" or "deleted" once a transaction found it so: the connection is closed
        try:
            _prepare(self._conn, self.path, busy_timeout)
        except BaseException:
            self._conn.close()
            raise

    def reopen(self) -> "Store":
        """A second, independent connection to the same file, for the thread that first uses it: this one, or
        the one it is handed to (``executor.submit(work, store.reopen())``). It serves that thread only."""
        opened = Store(self.path, busy_timeout=self.busy_timeout)
        opened._owner = None  # opened here, often for another thread: its first transaction says which
        return opened

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs. Refused (StoreError), as a write is, once the path names
        another file than the one opened, or none: a notebook must not go on showing a deleted file's rows."""
        self._check_thread()
        self._check_file()
        with self._translated_errors():
            self._conn.execute("BEGIN DEFERRED")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed if the block finishes, rolled back if it raises. Refused (StoreError,
        nothing written) once the path names another file than the one opened, or none."""
        self._check_thread()
        self._check_file()
        with self._translated_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # a refused COMMIT leaves it open: drop it, or the store is wedged
                    self._conn.execute("ROLLBACK")
                raise

    def file_changed(self) -> str | None:
        """How the path no longer names the file this store opened: "replaced" (another file is there now, such
        as a backup restored with ``mv``), "deleted", or None while it still does. One stat."""
        now = _file_identity(self.path)
        if now is not None and now == self._opened:
            return None
        return "deleted" if now is None else "replaced"

    @property
    def moved(self) -> str | None:
        """"replaced" or "deleted" once a transaction found the path naming another file than the one opened,
        or none (every transaction is refused from then on); None until then."""
        return self._moved

    def close(self) -> None:
        if self._moved is None and self.file_changed() is not None:
            self._retire()
        else:
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def _check_thread(self) -> None:
        # The connection is opened with check_same_thread=False so that any thread may close it, and a store
        # reopened in one thread may serve another; sharing it is still wrong (two threads' transactions
        # would interleave on one connection), so say so.
        if self._owner is None:
            with self._claiming:  # two threads using a reopened store at once: one gets it, the other is refused
                if self._owner is None:
                    self._owner = get_ident()
        if get_ident() != self._owner:
            # worded for a Store's caller and a Connection's alike (the Connection's methods reach it)
            raise StoreError(self.path, f"database {self.path} serves another thread, and a Store serves one thread "
                             "only; give this thread its own with store.reopen() (conn.reopen() for a vgpu.connect() "
                             "connection)")

    def _check_file(self) -> None:
        """Before each transaction (one stat): the file opened must still be the one the path names. Through a
        connection to a file deleted or replaced since, a read shows rows that are gone, and a change would be
        lost (written to the old file), or worse, written through the WAL that SQLite finds beside the path,
        into the new file (which then reads as "malformed")."""
        if self._moved is None:
            change = self.file_changed()
            if change is None:
                return
            self._moved = change
            self._retire()
        self._refuse_if_moved()

    def _refuse_if_moved(self) -> None:
        if self._moved == "replaced":
            raise StoreError(self.path, f"database {self.path} was replaced by another file since it was opened; nothing "
                             "was written. Open it again (a new command, Store or connection) to use the file there now")
        if self._moved == "deleted":  # worded for a library caller and the command line alike
            raise StoreError(self.path, f"database {self.path} was deleted since it was opened; nothing was written. "
                             "Restore it before opening it again: a new command, Store or connection would create a "
                             "new, empty database")

    def _retire(self) -> None:
        """Close the connection to a file the path no longer names. Its last changes may still be in the WAL,
        which SQLite finds by the path's name: whoever opens the file there now would read them as its own
        pages. SQLite skips the checkpoint on closing a moved file, so checkpoint here: through this connection
        they go into the old file, where they belong, and the WAL is emptied."""
        try:
            with contextlib.suppress(sqlite3.Error):  # best effort: a connection already closed, a busy reader
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

    @contextlib.contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except DamagedDatabase as exc:  # a row read in the block broke the spec's rules: say which file
            if not exc.path:
                exc.locate(self.path)
            raise
        except sqlite3.OperationalError as exc:
            raise _operational_error(self.path, exc) from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise  # the owning module turns these into Conflict errors with the right field
            if isinstance(exc, sqlite3.ProgrammingError):
                if "closed" in str(exc):  # used after `with Store(...)` ended, easily done in a notebook
                    raise StoreError(self.path, f"database {self.path} was closed; open it again with Store(path)") from exc
                raise  # other misuse (another thread's connection): a bug, not a damaged file
            raise StoreError(self.path, f"database {self.path} is damaged ({exc}); restore it from a backup") from exc


def _file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names (through any symlink), or None when it names none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _operational_error(path: str, exc: sqlite3.OperationalError) -> StoreError:
    from . import store_faults  # only once something failed: kept off every command's start-up

    unwritable = store_faults.sentence(path, exc)  # read-only, full or failing: the cause, not SQLite's words
    if unwritable is not None:
        return StoreError(path, unwritable)
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(path, f"database {path} stayed locked by another process; try again")
    if "unable to open" in text:
        return StoreError(path, f"cannot open database {path}: {text}")
    return StoreError(path, f"database {path}: {text}")


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    if "\0" in path:
        raise StoreError(path, f"cannot open database {path!r}: the path holds a NUL character")
    directory = trust.missing_directory(path)
    if directory is not None:
        problem = f"{directory} is not a directory" if os.path.lexists(directory) else f"directory {directory} does not exist"
        raise StoreError(path, f"cannot open database {path}: {problem}")
    if os.path.isdir(path):
        raise StoreError(path, f"cannot open database {path}: it is a directory")
    # Trusted as ssh trusts its files (vgpu.trust): root carries out what the database says. SQLite is given
    # the real path checked, and keeps its -wal and -shm beside it (not beside a symlink to it).
    try:
        real = trust.real_path_if_present(path, "database")
        if real is not None:
            name = os.path.basename(real)
            trust.check_beside(real, (f"{name}-wal", f"{name}-shm", f"{name}-journal"), "database")
        else:
            real = trust.check_new_file(path, "database")
            _create_private_file(path, real)
    except PermissionError:  # a user who may not even look at it or a directory above it
        raise StoreError(path, f"cannot open database {path}: permission denied") from None
    except NotADirectoryError as exc:  # a directory on the way replaced by a file since the look above
        raise StoreError(path, f"cannot open database {path}: {exc.filename} is not a directory") from None
    except FileNotFoundError:  # a directory on the way removed since the look above
        gone = trust.missing_directory(path) or os.path.dirname(os.path.abspath(path))
        raise StoreError(path, f"cannot open database {path}: directory {gone} does not exist") from None
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so every transaction is explicit.
        # check_same_thread=False: a Store may be closed by another thread (a batch closes its workers'
        # stores); using it from another thread is refused by Store._check_thread with a clear sentence.
        conn = sqlite3.connect(real, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(path, f"cannot open database {path}: {exc}") from exc
    return conn


def _create_private_file(path: str, real: str) -> None:
    """Create the DB file (``path``, at ``real``) readable and writable by its owner only (SQLite gives
    -wal/-shm the same mode), never through a symlink: one planted since the checks above makes this fail,
    not write elsewhere."""
    try:
        trust.create_private(real)
    except PermissionError as exc:
        raise StoreError(path, f"cannot create database {path}: permission denied") from exc
    except OSError as exc:
        raise StoreError(path, f"cannot create database {path}: {exc.strerror}") from exc


def _prepare(conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        application_id, version = _header(conn)
        current = application_id == schema.APPLICATION_ID and version == schema.LATEST_VERSION
        if not current:
            _check_ours(conn, path, application_id, version)
        if current or {"pools", "vms"} & _table_names(conn):
            # before any change: a refused file is left as it was; a file being adopted may lack pools (the
            # spec's init script as written: SQLite refuses its pools), which the migration creates; one being
            # migrated has its own tables checked by _migrate, inside the migration's lock
            _refuse_incomplete(conn, path, pools_created=application_id == 0, ours_at=version if current else 0)
        _set_wal(conn, busy_timeout)
        if not current:
            _migrate(conn, path)
    except sqlite3.OperationalError as exc:
        raise _operational_error(path, exc) from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(path, f"{path} is not a vgpu database (SQLite says: {exc})") from exc


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    """The file's application_id and user_version, read together: another process migrating the file sets
    both in one transaction, and a mark read before it with a version read after would not match."""
    application_id, version = conn.execute(
        "SELECT application_id, user_version FROM pragma_application_id(), pragma_user_version()").fetchone()
    return int(application_id), int(version)


def _refuse_incomplete(conn: sqlite3.Connection, path: str, *, pools_created: bool = False, ours_at: int = 0) -> None:
    """Refuse a file whose pools and vms lack the spec's constraints or indexes, or (``ours_at``: its schema
    version) that lacks a table of ours its version has, or an index of ours as that version creates it."""
    if schema.tables_as_created(conn):
        return  # made by vgpu: complete (the usual case, answered by one query)
    from . import schema_check  # a file vgpu did not make, or one changed by hand: every PRAGMA asked

    gaps = [gap for gap in schema_check.missing(conn) if not (pools_created and gap == "table pools")]
    if gaps:
        raise IncompleteSchema(path, gaps)
    _refuse_missing_tables(path, ours_at, _table_names(conn))
    if ours_at:
        from . import index_check

        index_check.refuse_changed(conn, path, ours_at)


def _refuse_missing_tables(path: str, version: int, tables: set[str]) -> None:
    """Refuse a file at schema ``version`` without a table of ours that version has: its user_version was set
    higher by hand, or the table was dropped. Every query on that table would fail with SQLite's words."""
    missing = schema.missing_tables(version, tables)
    if not missing:
        return
    made_by = schema.version_of_tables(tables)
    names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
    if not schema.missing_tables(made_by, tables):  # a version's tables and nothing of later ones
        what = f"they are those of version {made_by}, without {names}"
    else:
        what = f"it lacks {names}, which version {version} has"
    if all(name in schema.RECREATABLE for name in missing):
        advice = (f"Run 'vgpu-admin repair-db' to create {'it' if len(missing) == 1 else 'them'}, empty: which hosts "
                  "hold copies of a VM is then unknown until a scan that every host answers")
    elif made_by < version and not schema.missing_tables(made_by, tables):
        advice = _set_version_advice(path, made_by)
    else:
        advice = "It was changed by hand or by another program: restore a backup"
    raise StoreError(path, f"database {path} has schema version {version}, which does not match its tables: {what}; "
                           f"nothing was changed. {advice}")


def repair_schema(path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Repair:
    """Restore the spec's constraints and indexes in the database at ``path`` (``vgpu-admin repair-db``), the
    tables of ours that may be created again (schema.RECREATABLE) and our indexes (index_check): returns what
    was missing (``restored``, empty when nothing was) and what the tables had beyond the spec and still have
    (``kept``). Every row is
    kept, and every column, index and trigger an admin added; a row that breaks the spec's rules is named
    (DamagedDatabase), as is anything that cannot be kept as it was (StoreError), and nothing is changed. The file must already be a vgpu or spec database."""
    from . import index_check, schema_check  # repair-db only
    from .table_rebuild import NotCarried

    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreError(path, f"cannot repair database {path}: it does not exist")
    conn = _connect(path, busy_timeout)
    try:
        # Foreign keys off while the tables are rebuilt (SQLite's procedure for changing a table's schema):
        # a pragma that only takes effect outside a transaction, so before BEGIN.
        conn.execute("PRAGMA foreign_keys = OFF")
        application_id, version = _header(conn)
        _check_ours(conn, path, application_id, version)
        conn.execute("BEGIN IMMEDIATE")
        try:
            created = _create_missing_tables(conn, path) if application_id == schema.APPLICATION_ID else ()
            indexes = index_check.restore(conn, path, _header(conn)[1]) if application_id == schema.APPLICATION_ID else ()
            spec = schema_check.restore(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except DamagedDatabase as exc:
        exc.locate(path)
        raise
    except NotCarried as exc:
        raise StoreError(path, f"cannot repair database {path}: {exc.what} {exc.why}; nothing was changed") from exc
    except sqlite3.OperationalError as exc:
        raise _operational_error(path, exc) from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(path, f"{path} is not a vgpu database (SQLite says: {exc})") from exc
    finally:
        conn.close()
    return schema_check.Repair((*created, *indexes, *spec.restored), spec.kept, copies_unknown=bool(created))


def _create_missing_tables(conn: sqlite3.Connection, path: str) -> tuple[str, ...]:
    """Inside repair-db's transaction: create again, empty, the tables of ours the file's schema version has and
    it lacks, when each is one that may be (schema.RECREATABLE), mark copies unknown and forget which hosts'
    copies a scan learnt; refuse (nothing changed) when one is not. Read inside the lock: another process may
    have migrated the file meanwhile."""
    version = _header(conn)[1]
    missing = schema.missing_tables(version, _table_names(conn))
    if not missing:
        return ()
    if not all(name in schema.RECREATABLE for name in missing):
        _refuse_missing_tables(path, version, _table_names(conn))  # raises: the sentence opening it gives
    for name in missing:
        _run_script(conn, schema.RECREATABLE[name])
    if "vgpu_copies_unknown" in schema.tables_of(version):  # at 4 the mark is not there yet: the migration
        # to 5, when the file is next opened, sets it for a file with places and no copies, as this one now is
        conn.execute(schema.MARK_COPIES_UNKNOWN)
    if "vgpu_copies_known_on" in schema.tables_of(version):
        # each host listed there vouched for the copies recorded on it, which may have gone with the table made again
        conn.execute("DELETE FROM vgpu_copies_known_on")
    return tuple(f"table {name}" for name in missing)


def _set_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL. The switch needs the file to itself and SQLite reports "locked" at once instead of
    waiting (processes opening a new file together all try it), so wait here, up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows}


def _check_ours(conn: sqlite3.Connection, path: str, application_id: int, version: int) -> None:
    """Refuse, before anything is changed, a file that is not a vgpu database, or whose user_version no
    vgpu-admin wrote: one outside 0 to LATEST_VERSION, or any but 0 on a file without vgpu's mark (the spec's
    init script leaves 0; another program set any other, and migrating from it would skip our tables)."""
    tables = _table_names(conn) - {"sqlite_sequence"}
    if application_id == schema.APPLICATION_ID:
        if version > schema.LATEST_VERSION:
            raise StoreError(
                path,
                f"database {path} has schema version {version}, newer than this vgpu-admin understands "
                f"({schema.LATEST_VERSION}); upgrade vgpu-admin",
            )
        if version < 0:
            made_by = schema.version_of_tables(tables)
            raise StoreError(path, f"database {path} has schema version {version}, which no vgpu-admin writes (this one "
                                   f"understands 0 to {schema.LATEST_VERSION}), and its tables are those of version "
                                   f"{made_by}; nothing was changed. {_set_version_advice(path, made_by)}")
        return
    if application_id == 0 and _adoptable(conn, tables):
        if version != 0:
            raise StoreError(path, f"database {path} has user_version {version} but application_id 0, not vgpu-admin's "
                                   "mark: another program set that version, and a database vgpu-admin did not make is "
                                   "adopted only at user_version 0, as the spec's init script leaves it; nothing was "
                                   f"changed. {_set_version_advice(path, 0)}")
        return  # empty, or made by the spec's init script: ours to initialise or adopt
    listed = ", ".join(sorted(tables)) or "no tables"
    raise StoreError(path, f"{path} is an SQLite database but not a vgpu database (it has {listed})")


def _adoptable(conn: sqlite3.Connection, tables: set[str]) -> bool:
    """Empty, or made by the spec's init script: pools and vms; or vms alone, as that script leaves a file when
    run as written (SQLite refuses its pools' DEFAULT 'Pool A' OR 'Pool B'), provided vms is the spec's."""
    if not tables or {"pools", "vms"} <= tables:
        return True
    if "vms" not in tables or "pools" in tables:
        return False
    from . import schema_check  # only for a file with vms and no pools

    return schema_check.missing(conn) == ["table pools"]


def _set_version_advice(path: str, version: int) -> str:
    import shlex  # only on this refusal

    return (f"If nothing else uses user_version, set it back to {version} (sqlite3 {shlex.quote(path)} "
            f"'PRAGMA user_version = {version}') and try again; otherwise restore a backup")


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again inside the lock: another process may have migrated while we waited.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = _table_names(conn)
        made_by = schema.version_of_tables(tables)
        if made_by > version:  # the steps from version would meet tables they already made
            raise StoreError(path, f"database {path} has schema version {version}, which does not match its tables: "
                                   f"they are those of version {made_by}; nothing was changed. "
                                   + _set_version_advice(path, made_by))
        _refuse_missing_tables(path, version, tables)  # the steps from version would need tables it lacks
        if version:  # migrated, it would be refused on its next opening: say so now, before anything changes
            from . import index_check

            index_check.refuse_changed(conn, path, version)
        if version == 0 and "pools" not in tables:
            # a new file; or the spec's init script's run as written: vms alone, pools refused by SQLite
            _run_script(conn, schema.SPEC_POOLS + schema.SPEC_POOL_ROWS if "vms" in tables else schema.SPEC_TABLES)
        try:
            for step in schema.MIGRATIONS[version:]:
                _run_script(conn, step)
        except sqlite3.OperationalError as exc:
            if "already exists" not in str(exc) and "duplicate column name" not in str(exc):
                raise
            raise StoreError(path, f"database {path} has schema version {version}, which does not match its tables "
                                   f"(SQLite says: {exc}); nothing was changed. Its user_version or tables were "
                                   "changed by hand or by another program: restore a backup") from exc
        conn.execute(f"PRAGMA user_version = {schema.LATEST_VERSION:d}")
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our transaction first; run the statements one by one instead.
    for statement in _split_statements(script):
        conn.execute(statement)


def _split_statements(script: str) -> list[str]:
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements

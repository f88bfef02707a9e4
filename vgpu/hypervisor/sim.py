"""A simulated host whose state persists in a file: for the demo, the tests and teaching.

Several processes may share one host file (the xe and XenAPI stand-ins run over it, tests kill processes
mid-operation), so the file is an SQLite database with one row per VM: a call reads or writes only the rows
it needs, inside a transaction (a write one takes the file's write lock), so what a call costs does not grow
with the number of VMs on the host, and a process killed part way leaves the file as it was before its
transaction. Threads of one process take turns on a host file through a lock of their own, so that they
never meet SQLite's busy waiting. Waiting (latencies, a slow guest) happens outside any transaction, so
concurrent operations on different VMs overlap as they would on a real host. A host file of the earlier
format (one JSON document) is converted in place when it is first opened.

Faults and latencies are part of the state, so a test (or a teacher) can set them from outside:

    host = SimHost("/tmp/host.json")
    host.set_fault("start", "fail_if_args_contain:pool=B", vm_uuid)   # won't boot in pool B
    host.set_latency("clean_shutdown", 1.0)

A clean shutdown and a start are requests the host carries out on its own time, whatever becomes of the
client that asked: each is recorded with the moment it completes (``halt_at``, ``start_at``), and until
then :meth:`SimHost.current_operations` names it, as xapi's ``current_operations`` does. A VM's boots
(the args each domain was started with) are recorded when a start completes; a VM added as running is
taken to have booted with the args it was added with. Each boot is a new domain, numbered as Xen numbers
them (one counter for the host), and keeps the whole platform map it was started with: what xenopsd writes
into xenstore, which the xe and XenAPI stand-ins serve from :meth:`SimHost.domains`.

Fault kinds: ``clean_shutdown``: ``ignore`` (the guest never obeys), ``lacks_feature`` (no PV drivers),
``fail`` (the host refuses), ``not_acknowledged`` (the guest does not take the request up:
VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT), ``shutdown_timeout`` (the host's own deadline passes: VM_SHUTDOWN_TIMEOUT),
``halted_but_failed`` (the VM halts, yet the host reports INTERNAL_ERROR);
``hard_shutdown``, ``set_args``, ``list``: ``fail``; ``start``: ``fail``, ``fail_if_args_contain:TEXT``
or ``drop_args`` (the VM boots without its args key, as on a stock xapi whose platform filter drops keys
it does not know: its stored args are kept); ``unreachable`` (any VM, value ``on``). A fault applies to one
VM or to all (``*``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from .. import trust
from ..models import HostVM, PowerState
from . import codes
from .base import DEFAULT_ARGS_KEY

FAULT_KINDS = ("clean_shutdown", "hard_shutdown", "start", "set_args", "list", "unreachable")
LATENCY_KINDS = ("clean_shutdown", "hard_shutdown", "start", "list", "set_args")

# The host file. A VM's platform map, its domain ({"domid", "platform"}) and its boots are JSON; the other
# columns are what a listing and a settle read without parsing them.
_APPLICATION_ID = 0x76536D48  # "vSmH": a host file, never mistaken for (or by) a vgpu database
_SCHEMA = """
CREATE TABLE vm (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    power_state TEXT NOT NULL,
    platform TEXT NOT NULL DEFAULT '{}',
    halt_at REAL,
    start_at REAL,
    start_args TEXT,
    start_domain TEXT,
    domain TEXT,
    boots TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE fault (vm_uuid TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (vm_uuid, kind));
CREATE TABLE latency (kind TEXT PRIMARY KEY, seconds REAL NOT NULL);
CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counter VALUES ('next_domid', 1);
"""
_VM_COLUMNS = ("name", "power_state", "platform", "halt_at", "start_at", "start_args", "start_domain", "domain", "boots")
_JSON_COLUMNS = frozenset({"platform", "start_domain", "domain", "boots"})
_SELECT_VM = f"SELECT {', '.join(_VM_COLUMNS)} FROM vm WHERE uuid = ?"
# A name is bound as bytes when it holds lone surrogates (a host's undecodable bytes, kept by
# surrogateescape), which sqlite3 cannot encode as text; CAST stores those bytes as text, and _TEXT reads
# them back the same (JSON columns escape surrogates themselves; json_extract() gives them back as such bytes).
_BIND = {column: "CAST(? AS TEXT)" if column == "name" else "?" for column in _VM_COLUMNS}
_UPDATE_VM = f"UPDATE vm SET {', '.join(f'{column} = {_BIND[column]}' for column in _VM_COLUMNS)} WHERE uuid = ?"
_UPSERT_VM = (f"INSERT INTO vm (uuid, {', '.join(_VM_COLUMNS)}) VALUES (?, {', '.join(_BIND[column] for column in _VM_COLUMNS)}) "
              f"ON CONFLICT (uuid) DO UPDATE SET {', '.join(f'{column} = excluded.{column}' for column in _VM_COLUMNS)}")
_TEXT = functools.partial(str, encoding="utf-8", errors="surrogatepass")
BUSY_TIMEOUT = 30.0

# One VM for add_vms: (uuid, name, power_state, device_model_args[, platform]).
VMRow = tuple[str, str, PowerState | str, str] | tuple[str, str, PowerState | str, str, Mapping[str, str] | None]

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    """One lock per host file in this process: its threads take turns instead of SQLite's busy waiting."""
    with _path_locks_guard:
        return _path_locks.setdefault(path, threading.Lock())


class SimHost:
    """A simulated host at ``path``. Implements :class:`vgpu.hypervisor.base.Hypervisor`."""

    def __init__(self, path: str | os.PathLike[str], *, args_key: str = DEFAULT_ARGS_KEY, clock: Callable[[], float] = time.time) -> None:
        self.path = os.fspath(path)
        self.uri = f"sim:{self.path}"
        self.args_key = args_key
        self._clock = clock
        self._lock = _lock_for(os.path.abspath(self.path))  # held for every transaction, so one connection serves every thread
        self._conn: sqlite3.Connection | None = None
        self._opened_for: tuple[int, int, int] | None = None  # the file (device, inode) and process it was opened in
        # What json_extract() finds the args under (a key with a double quote is read in Python instead).
        self._args_path = None if '"' in args_key else f'$."{args_key}"'

    # --- the host file ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction on the host file: committed when a writing block finishes without raising, rolled
        back otherwise. Readers do not write: what they settle (a shutdown or start whose time has come) the
        next writer settles again from the same ``halt_at``/``start_at``."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT" if write else "ROLLBACK")
            except sqlite3.DatabaseError as exc:
                raise self._unreadable(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        """The connection (the caller holds the lock), opened anew when the file was replaced (the demo's
        reset) or removed, or in a child process (a connection never crosses a fork)."""
        try:
            status = os.stat(self.path)
            identity: tuple[int, int, int] | None = (status.st_dev, status.st_ino, os.getpid())
        except (FileNotFoundError, NotADirectoryError):  # the second: a file where a directory belongs (said below)
            identity = None
        except OSError as exc:
            problem = trust.unfollowable(exc)
            if problem is None:
                raise
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host file {self.path}: {problem}"]) from None
        if self._conn is not None and identity == self._opened_for:
            return self._conn
        self._drop()
        directory = trust.missing_directory(self.path)
        if directory is not None:
            problem = "is not a directory" if os.path.lexists(directory) else "does not exist"
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host directory {directory} {problem}"])
        if os.path.isdir(self.path):  # sim:/some/dir, the folder rather than the file in it
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host file {self.path} is a directory, not a host file"])
        if identity is None:
            trust.create_private(self.path)  # owner-only, like the vgpu database; never through a symlink
        else:
            _convert_json_file(self.path)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        conn.text_factory = _TEXT
        try:
            _prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unreadable(exc) from exc
        status = os.stat(self.path)
        self._conn, self._opened_for = conn, (status.st_dev, status.st_ino, os.getpid())
        return conn

    def _drop(self) -> None:
        """Forget the connection, closing it unless it was inherited from a parent process."""
        if self._conn is not None and self._opened_for is not None and self._opened_for[2] == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = self._opened_for = None

    def _unreadable(self, exc: Exception) -> Exception:
        if "locked" in str(exc):  # another process held its write lock past the busy timeout
            return codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host file {self.path} stayed locked by another process"])
        return codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host file {self.path} is unreadable: {exc}"])

    def _load(self, conn: sqlite3.Connection, vm_uuid: str) -> dict[str, Any] | None:
        row = conn.execute(_SELECT_VM, (vm_uuid,)).fetchone()
        if row is None:
            return None
        vm = dict(zip(_VM_COLUMNS, row))
        for column in _JSON_COLUMNS:
            if vm[column] is not None:
                vm[column] = json.loads(vm[column])
        return vm

    @staticmethod
    def _store(conn: sqlite3.Connection, vm_uuid: str, vm: dict[str, Any]) -> None:
        conn.execute(_UPDATE_VM, (*_row(vm), vm_uuid))

    # --- faults and latencies -----------------------------------------------------------------------------

    def set_fault(self, kind: str, value: str | None, vm_uuid: str = "*") -> None:
        """Inject (or, with ``value=None``, clear) a fault for one VM or all of them."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        with self._transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM fault WHERE vm_uuid = ? AND kind = ?", (vm_uuid, kind))
            else:
                conn.execute("INSERT OR REPLACE INTO fault (vm_uuid, kind, value) VALUES (?, ?, ?)", (vm_uuid, kind, value))

    def clear_faults(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM fault")

    def set_latency(self, kind: str, seconds: float) -> None:
        if kind not in LATENCY_KINDS:
            raise ValueError(f"unknown latency kind {kind!r}; expected one of {', '.join(LATENCY_KINDS)}")
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO latency (kind, seconds) VALUES (?, ?)", (kind, float(seconds)))

    @staticmethod
    def _faults(conn: sqlite3.Connection, vm_uuid: str = "*") -> dict[str, str]:
        """The faults that apply to one VM (or, for ``*``, to all): its own over the host-wide ones."""
        found: dict[str, str] = {}
        for who, kind, value in conn.execute("SELECT vm_uuid, kind, value FROM fault WHERE vm_uuid IN ('*', ?)", (vm_uuid,)):
            if who != "*" or kind not in found:
                found[kind] = value
        return found

    @staticmethod
    def _check_reachable(faults: dict[str, str]) -> None:
        if faults.get("unreachable"):
            raise codes.host_error(codes.HOST_UNREACHABLE, ["the simulated host is switched off (fault 'unreachable')"])

    @staticmethod
    def _latency_in(conn: sqlite3.Connection, kind: str) -> float:
        row = conn.execute("SELECT seconds FROM latency WHERE kind = ?", (kind,)).fetchone()
        return 0.0 if row is None else float(row[0])

    def _latency(self, kind: str) -> float:
        with self._transaction(write=False) as conn:
            return self._latency_in(conn, kind)

    # --- building a host ---------------------------------------------------------------------------------

    def add_vm(self, vm_uuid: str, name: str, power_state: PowerState | str = PowerState.HALTED, device_model_args: str = "", platform: dict[str, str] | None = None) -> None:
        self.add_vms([(vm_uuid, name, power_state, device_model_args, platform)])

    def add_vms(self, rows: Iterable[VMRow]) -> None:
        """Add many VMs at once: (uuid, name, power_state, device_model_args[, platform]) tuples."""
        with self._transaction() as conn:
            values = []
            for row in rows:
                vm_uuid, name, power, args = row[:4]
                platform = dict(row[4] or {}) if len(row) > 4 else {}
                if args:
                    platform[self.args_key] = args
                power_state = PowerState(power).value
                vm: dict[str, Any] = {"name": name, "power_state": power_state, "platform": platform, "halt_at": None, "start_at": None,
                      "start_args": None, "start_domain": None, "domain": None, "boots": []}
                if power_state == "running":
                    # A VM that is already running booted with what it has now (as far as anyone can tell).
                    vm["domain"] = self._new_domain(conn, platform)
                    vm["boots"].append(platform.get(self.args_key, ""))
                values.append((vm_uuid.lower(), *_row(vm)))
            conn.executemany(_UPSERT_VM, values)

    def remove_vm(self, vm_uuid: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM vm WHERE uuid = ?", (vm_uuid,))

    def settle(self) -> None:
        """Carry out now every start and shutdown whose time has come by this host's clock, and write it
        down (readers only see them; a test with a clock ahead uses this to let slow operations finish)."""
        now = self._clock()
        with self._transaction() as conn:
            due = [uuid for (uuid,) in conn.execute(
                "SELECT uuid FROM vm WHERE (halt_at IS NOT NULL AND halt_at <= ?) OR (start_at IS NOT NULL AND start_at <= ?)",
                (now, now))]
            for vm_uuid in due:
                vm = self._load(conn, vm_uuid)
                assert vm is not None
                self._settle(vm)
                self._store(conn, vm_uuid, vm)

    def boots(self, vm_uuid: str) -> list[str]:
        """The device-model args each boot of this VM was given, oldest first (what QEMU saw)."""
        with self._transaction(write=False) as conn:
            return list(self._vm(conn, vm_uuid)["boots"])

    # --- the protocol ------------------------------------------------------------------------------------

    def _vm(self, conn: sqlite3.Connection, vm_uuid: str, faults: dict[str, str] | None = None) -> dict[str, Any]:
        self._check_reachable(self._faults(conn, vm_uuid) if faults is None else faults)
        vm = self._load(conn, vm_uuid.lower())
        if vm is None:
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        self._settle(vm)
        return vm

    @staticmethod
    def _new_domain(conn: sqlite3.Connection, platform: dict[str, str]) -> dict[str, Any]:
        """A domain for a VM being started: the host's next domid, and a copy of the platform map it boots
        with (what xenopsd writes into xenstore). Made when the start is asked for, as Xen builds the domain
        first, so every reader of the host file sees the same number."""
        (domid,) = conn.execute("UPDATE counter SET value = value + 1 WHERE name = 'next_domid' RETURNING value - 1").fetchone()
        return {"domid": domid, "platform": dict(platform)}

    def _settle(self, vm: dict[str, Any]) -> None:
        """A requested clean shutdown or start completes when its time comes, whether or not anyone waited."""
        now = self._clock()
        if vm["power_state"] == "running" and vm.get("halt_at") is not None and vm["halt_at"] <= now:
            self._halt(vm)
        if vm.get("start_at") is not None and vm["start_at"] <= now:
            vm["power_state"] = "running"
            vm["domain"] = vm.get("start_domain")
            vm["boots"].append(vm.get("start_args") or "")
            vm["start_at"] = vm["start_args"] = vm["start_domain"] = None

    @staticmethod
    def _halt(vm: dict[str, Any]) -> None:
        vm["power_state"] = "halted"
        vm["halt_at"] = None
        vm["domain"] = None

    @staticmethod
    def _operations(vm: dict[str, Any]) -> tuple[str, ...]:
        pending = []
        if vm.get("start_at") is not None:
            pending.append("start")
        if vm.get("halt_at") is not None:
            pending.append("clean_shutdown")
        return tuple(pending)

    def _refuse_if_busy(self, vm: dict[str, Any], vm_uuid: str) -> None:
        if vm.get("start_at") is not None:
            raise codes.host_error(codes.OTHER_OPERATION_IN_PROGRESS, ["VM", vm_uuid, "start"], vm_uuid)

    def _booted(self, vm: dict[str, Any]) -> str | None:
        if vm["power_state"] != "running":
            return None
        domain = vm.get("domain")
        if domain is not None:
            args: str = domain["platform"].get(self.args_key, "")
            return args
        last: str | None = vm["boots"][-1] if vm["boots"] else None  # a host file written before domains were kept
        return last

    def list_vms(self) -> list[HostVM]:
        delay = self._latency("list")
        if delay:
            time.sleep(delay)
        now = self._clock()
        with self._transaction(write=False) as conn:
            faults = self._faults(conn)
            self._check_reachable(faults)
            if faults.get("list"):
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated listing failure (fault 'list')"])
            return [self._host_vm(row, now) for row in conn.execute(self._listing_sql(), {"path": self._args_path})]

    def describe_vm(self, vm_uuid: str) -> HostVM:
        now = self._clock()
        with self._transaction(write=False) as conn:
            self._check_reachable(self._faults(conn, vm_uuid))
            row = conn.execute(self._listing_sql("WHERE uuid = :uuid"), {"path": self._args_path, "uuid": vm_uuid.lower()}).fetchone()
        if row is None:
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        return self._host_vm(row, now)

    def _listing_sql(self, where: str = "") -> str:
        """One row per VM with what a listing shows, the args already picked out of the JSON maps (by SQLite,
        so that a listing of many VMs parses no map in Python)."""
        if self._args_path is None:
            args = "platform, json_extract(domain, '$.platform'), json_extract(start_domain, '$.platform')"
        else:
            args = ("json_extract(platform, :path), json_extract(domain, '$.platform' || substr(:path, 2)), "
                    "json_extract(start_domain, '$.platform' || substr(:path, 2))")
        return (f"SELECT uuid, name, power_state, halt_at, start_at, domain IS NOT NULL, {args}, "
                f"json_extract(boots, '$[#-1]') FROM vm {where} ORDER BY rowid")


    def _host_vm(self, row: tuple[Any, ...], now: float) -> HostVM:
        uuid, name, power, halt_at, start_at, has_domain, stored, booted, starting, last_boot = row
        if self._args_path is None:  # maps, not values: read the key in Python
            stored, booted, starting = (None if text is None else json.loads(text).get(self.args_key) for text in (stored, booted, starting))
        if power == "running" and halt_at is not None and halt_at <= now:
            power, has_domain = "halted", False
        if start_at is not None and start_at <= now:
            power, has_domain, booted = "running", True, starting
        if power != "running":
            booted = None
        elif has_domain:
            booted = booted or ""
        else:
            booted = last_boot  # a host file written before domains were kept
        stored = stored or ""
        if booted == stored:
            booted = stored  # one string, not two alike: a listing of many VMs holds every one
        return HostVM(uuid, name, PowerState(power), stored, booted)

    def power_state(self, vm_uuid: str) -> PowerState:
        with self._transaction(write=False) as conn:
            return PowerState(self._vm(conn, vm_uuid)["power_state"])

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        with self._transaction(write=False) as conn:
            return self._booted(self._vm(conn, vm_uuid))

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        with self._transaction(write=False) as conn:
            return self._operations(self._vm(conn, vm_uuid))

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        with self._transaction() as conn:
            faults = self._faults(conn, vm_uuid)
            vm = self._vm(conn, vm_uuid, faults)
            self._refuse_if_busy(vm, vm_uuid)
            if vm["power_state"] == "halted" and halted_ok:
                return True
            if vm["power_state"] != "running":
                raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, "running", vm["power_state"]], vm_uuid)
            fault = faults.get("clean_shutdown")
            if fault == "lacks_feature":
                raise codes.host_error(codes.VM_LACKS_FEATURE, [vm_uuid], vm_uuid)
            if fault == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated clean shutdown failure"], vm_uuid)
            if fault == "not_acknowledged":
                raise codes.host_error(codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, [vm_uuid], vm_uuid)
            if fault == "shutdown_timeout":
                raise codes.host_error(codes.VM_SHUTDOWN_TIMEOUT, [vm_uuid, "1200"], vm_uuid)
            if fault == "halted_but_failed":
                self._halt(vm)
            elif fault != "ignore" and vm.get("halt_at") is None:
                vm["halt_at"] = self._clock() + self._latency_in(conn, "clean_shutdown")
            self._store(conn, vm_uuid.lower(), vm)
            halt_at = vm.get("halt_at")
        if fault == "halted_but_failed":  # raised once the transaction has kept the halt
            raise codes.host_error(codes.INTERNAL_ERROR, ["simulated failure after the VM halted"], vm_uuid)
        if halt_at is None:  # the guest ignores the request: it will still be running at the deadline
            time.sleep(max(0.0, timeout))
            return False
        wait = halt_at - self._clock()
        if wait > timeout:
            time.sleep(max(0.0, timeout))
            return False
        if wait > 0:
            time.sleep(wait)
        return self.power_state(vm_uuid) is PowerState.HALTED

    def hard_shutdown(self, vm_uuid: str) -> bool:
        self._sleep_for("hard_shutdown")
        with self._transaction() as conn:
            faults = self._faults(conn, vm_uuid)
            vm = self._vm(conn, vm_uuid, faults)
            if faults.get("hard_shutdown") == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated forced shutdown failure"], vm_uuid)
            forced: bool = vm["power_state"] != "halted"
            self._halt(vm)
            vm["start_at"] = vm["start_args"] = vm["start_domain"] = None  # forcing a VM off also ends a start under way
            self._store(conn, vm_uuid.lower(), vm)
        return forced

    def start(self, vm_uuid: str) -> None:
        """Ask for a start and wait until it completes (it completes even if the caller is gone by then)."""
        with self._transaction() as conn:
            faults = self._faults(conn, vm_uuid)
            vm = self._vm(conn, vm_uuid, faults)
            self._refuse_if_busy(vm, vm_uuid)
            if vm["power_state"] != "halted":
                raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, "halted", vm["power_state"]], vm_uuid)
            args = vm["platform"].get(self.args_key, "")
            fault = faults.get("start") or ""
            if fault == "fail" or (fault.startswith("fail_if_args_contain:") and fault.split(":", 1)[1] in args):
                raise codes.host_error(
                    codes.FAILED_TO_START_EMULATOR, [vm_uuid, "vgpu", "Daemon exited unexpectedly"], vm_uuid
                )
            booted_with = dict(vm["platform"])
            if fault == "drop_args":  # booted without the key; the VM's record keeps it
                booted_with.pop(self.args_key, None)
                args = ""
            vm["start_at"] = self._clock() + self._latency_in(conn, "start")
            vm["start_args"] = args
            vm["start_domain"] = self._new_domain(conn, booted_with)
            self._store(conn, vm_uuid.lower(), vm)
            start_at = vm["start_at"]
        wait = start_at - self._clock()
        if wait > 0:
            time.sleep(wait)
        with self._transaction() as conn:
            vm = self._vm(conn, vm_uuid)  # settles the start (and writes it down) now that its time has come
            self._store(conn, vm_uuid.lower(), vm)

    def get_device_model_args(self, vm_uuid: str) -> str:
        with self._transaction(write=False) as conn:
            args: str = self._vm(conn, vm_uuid)["platform"].get(self.args_key, "")
            return args

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._sleep_for("set_args")
        with self._transaction() as conn:
            faults = self._faults(conn, vm_uuid)
            vm = self._vm(conn, vm_uuid, faults)
            if faults.get("set_args") == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated platform write failure"], vm_uuid)
            if value:
                vm["platform"][self.args_key] = value
            else:
                vm["platform"].pop(self.args_key, None)
            self._store(conn, vm_uuid.lower(), vm)

    def platform(self, vm_uuid: str) -> dict[str, str]:
        """The VM's whole platform map (the xe and XenAPI stand-ins serve it)."""
        with self._transaction(write=False) as conn:
            return dict(self._vm(conn, vm_uuid)["platform"])

    def domains(self) -> dict[int, tuple[str, dict[str, str]]]:
        """The running domains, by domid: the VM's UUID and the platform map its domain was started with."""
        with self._transaction(write=False) as conn:
            self._check_reachable(self._faults(conn))
            found = {}
            for (vm_uuid,) in conn.execute("SELECT uuid FROM vm WHERE domain IS NOT NULL OR start_domain IS NOT NULL ORDER BY rowid"):
                vm = self._load(conn, vm_uuid)
                assert vm is not None
                self._settle(vm)
                if vm.get("domain") is not None and vm["power_state"] != "halted":
                    found[vm["domain"]["domid"]] = (vm_uuid, dict(vm["domain"]["platform"]))
            return found

    def domid(self, vm_uuid: str) -> int:
        """The VM's current domain id, or -1 when it has none (halted), as XAPI reports ``domid``."""
        with self._transaction(write=False) as conn:
            domain = self._vm(conn, vm_uuid).get("domain")
            return -1 if domain is None else int(domain["domid"])

    def set_platform_key(self, vm_uuid: str, key: str, value: str | None) -> None:
        """Set or (``None``) remove any platform key: what ``xe vm-param-set platform:KEY=`` does."""
        with self._transaction() as conn:
            vm = self._vm(conn, vm_uuid)
            if value is None:
                vm["platform"].pop(key, None)
            else:
                vm["platform"][key] = value
            self._store(conn, vm_uuid.lower(), vm)

    def _sleep_for(self, kind: str) -> None:
        delay = self._latency(kind)
        if delay:
            time.sleep(delay)

    def reopen(self) -> "SimHost":
        return SimHost(self.path, args_key=self.args_key, clock=self._clock)

    def close(self) -> None:
        """Close the connection to the host file (the next call opens it again)."""
        with self._lock:
            self._drop()

    def __repr__(self) -> str:
        return f"SimHost({self.path!r})"


def _row(vm: dict[str, Any]) -> tuple[object, ...]:
    """A VM's columns as stored, in the order of _VM_COLUMNS."""
    return tuple(json.dumps(vm.get(column), separators=(",", ":")) if column in _JSON_COLUMNS and vm.get(column) is not None
                 else _bindable(vm.get(column)) for column in _VM_COLUMNS)


def _bindable(value: Any) -> Any:
    """A string sqlite3 can bind: itself, or its bytes when it holds lone surrogates (see _BIND)."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    return value


def _prepare(conn: sqlite3.Connection) -> None:
    """Settings for a host file, and its tables when it is new. No fsync: the file is a simulation, so a power
    cut is not one of the things it must survive; a killed process is (SQLite's rollback journal)."""
    conn.execute("PRAGMA synchronous = OFF")
    if conn.execute("PRAGMA application_id").fetchone()[0] == _APPLICATION_ID:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != _APPLICATION_ID:  # again, inside the lock
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise sqlite3.DatabaseError("it is an SQLite database, but not a simulated host's")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _convert_json_file(path: str) -> None:
    """A host file of the earlier format (one JSON document) becomes an SQLite host file with the same VMs,
    faults, latencies and domain counter, replacing it atomically; processes opening it at once take turns
    on the lock file the earlier format used. Anything else is left for SQLite to judge."""
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"{":
                return
    except OSError:
        return
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            return  # converted meanwhile by another process, or not JSON after all: SQLite says what it is
        _write_converted(path, state)
    with contextlib.suppress(OSError):
        os.remove(path + ".lock")


def _write_converted(path: str, state: dict[str, Any]) -> None:
    temporary = f"{path}.converting-{os.getpid()}"
    conn = sqlite3.connect(temporary, isolation_level=None)
    try:
        _prepare(conn)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_UPSERT_VM, [(vm_uuid, *_row({"boots": [], **vm})) for vm_uuid, vm in state.get("vms", {}).items()])
        conn.executemany("INSERT OR REPLACE INTO fault (vm_uuid, kind, value) VALUES (?, ?, ?)",
                         [(who, kind, value) for kind, faults in state.get("faults", {}).items() for who, value in faults.items()])
        conn.executemany("INSERT OR REPLACE INTO latency (kind, seconds) VALUES (?, ?)", list(state.get("latency", {}).items()))
        conn.execute("UPDATE counter SET value = ? WHERE name = 'next_domid'", (int(state.get("next_domid", 1)),))
        conn.execute("COMMIT")
    finally:
        conn.close()
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)

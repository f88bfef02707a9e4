"""``vgpu.connect()``: the database and the host(s) that ``vgpu-admin`` would use, behind one object.

As ``sqlite_utils.Database`` is for sqlite-utils, a :class:`Connection` is where a script or a notebook
starts: ``vgpu.connect()`` resolves the settings exactly as ``vgpu-admin`` does (arguments first, then
``VGPU_DB``/``VGPU_HOST``, the user's and the system's ``config.toml``, the defaults), opens the database,
and opens the host on first use (a XenAPI login is a network round trip; listing pools needs none)::

    import vgpu

    with vgpu.connect() as conn:                      # or connect(db="/var/lib/vgpu/vgpu.db", host="xe:")
        plan = conn.plan_registrations(rows, on_existing="skip")
        conn.register_planned(plan, progress="auto", concurrency=8)
        conn.status()

Each method calls one function of the library's modules with the connection's store and host, and takes
that function's keyword options (``progress=``, ``concurrency=``, ``on_existing=``, ``confirm=``, ...) with
their types and defaults, so that a user's type checker sees a misspelt or mistyped one; the function checks
the values. Calls that stop VMs get the settings' stop policy (``clean_timeout``, ``force_after_timeout``)
unless given ``policy=``. The module functions stay: ``conn.store`` and ``conn.host`` are what they take.

A Connection serves the thread that opened it, as its Store does: another thread gets its own from
``conn.reopen()``, called there or handed to it (the bulk calls already give each of their workers
connections of their own).
"""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Any, Callable, Final, Iterable, Mapping, Sequence, Union

from . import config, hostspecs, opening
from .errors import ConfigError, InvalidRows, InvalidValue, StaleRegistrations, StoreError
from .power import silent  # the functions' own default progress, and the methods' (a few light modules)
from .store import Store

if TYPE_CHECKING:  # annotations only: a connection imports each module when a method first needs it
    from .bulk import BulkFailure, BulkPlan, BulkResult
    from .bulk_register import RegistrationPlan, RegistrationResult
    from .hypervisor.base import Hypervisor
    from .locations import ForgetHostPlan
    from .lifecycle import ReconfigurePlan, ReconfigureResult, RegisterResult, RemoveResult, RepairResult
    from .models import VM, Pool, PoolDetail
    from .power import ProgressCallback, StopPolicy
    from .recovery import Recovery
    from .reporting import ProgressOption
    from .scan import ScanReport, VMView
    from .tables import AuditList, PoolList, VMList

__all__ = ["Connection", "connect", "resolve_settings"]

# What connect() takes as ``host``: one URI (or a label of config.toml [hosts], or several, comma-separated,
# as VGPU_HOST takes them), a list of such words (as --host given several times), or {label: URI}.
HostArgument = Union[str, Sequence[str], Mapping[str, str], None]
# Rows for the bulk calls: a list of dicts or Registrations, a DataFrame, {label: row}, any result's records().
Rows = Union[Iterable[Any], Mapping[Any, Any]]


class SettingsPolicy(enum.Enum):
    """``policy=`` left out of a call that stops VMs: the settings' stop policy (:attr:`Connection.policy`),
    which each connection has its own of, so no StopPolicy can stand for it as a default."""

    POLICY = "the settings' stop policy"

    def __repr__(self) -> str:  # as help() shows the default
        return "<the settings' stop policy>"


SETTINGS_POLICY: Final = SettingsPolicy.POLICY

_HOST_FORMS = "a URI (such as xe: or sim:PATH), a label of config.toml [hosts], a list of LABEL=URI or labels, or {label: URI}"
# How many times register_many plans and registers when other sessions keep registering VMs in between (each
# attempt changes nothing unless it succeeds); then the StaleRegistrations reaches the caller.
REGISTER_MANY_ATTEMPTS = 5
_SETTINGS = ("args_key", "clean_timeout", "force_after_timeout", "password_file", "parallel_hosts")  # besides db and host


def connect(db: str | os.PathLike[str] | None = None, host: HostArgument = None, *,
            password: opening.AskPassword | None = None, **settings: Any) -> Connection:
    """Open the database and (on first use) the host(s) that ``vgpu-admin`` would use, with ``db`` and
    ``host`` (and any of ``args_key``, ``clean_timeout``, ``force_after_timeout``, ``password_file``,
    ``parallel_hosts``) in place of what the environment and the config files say.

    ``password(who)`` is asked for a XenAPI host's password when ``VGPU_XAPI_PASSWORD`` is unset and the
    config names no ``password_file``; ``who`` names the host. A bad value is an InvalidValue (or a
    ConfigError for a config file's), and nothing is opened."""
    _check_password(password)
    return Connection(resolve_settings(db, host, **settings), password=password)


def _check_password(password: object) -> None:
    """A callback, or None: a password itself (a str) would otherwise fail only at the first login."""
    if password is None or callable(password):
        return
    kind = type(password).__name__  # never the value: it may be the password
    raise InvalidValue("password", kind, "a function password(who) that returns the password",
                       sentence=f"invalid password (a {kind}, not shown): expected a function password(who) "
                                "that returns the password")


def resolve_settings(db: str | os.PathLike[str] | None = None, host: HostArgument = None, **settings: Any) -> config.Settings:
    """The settings :func:`connect` opens: :func:`vgpu.config.load` with these arguments in place of the
    command line's flags, the host URIs checked as ``vgpu-admin`` checks them."""
    explicit: dict[str, Any] = {"db": _db_path(db), "host": _host_words(host)}
    for name, value in settings.items():
        explicit[name] = _setting(name, value)
    try:
        resolved = config.load(explicit)
    except ConfigError as error:
        if error.source != hostspecs.FLAG:
            raise  # a config file's or the environment's: said as vgpu-admin says it
        # The host argument: a bad argument, named as this call names it, not as the command line's --host.
        raise InvalidValue("host", _masked(host), _HOST_FORMS, sentence=error.sentence.partition(": ")[2]) from None
    opening.check_hosts(resolved)
    return resolved


def _db_path(db: object) -> str | None:
    if db is None:
        return None
    path: str = config.check_setting("db", os.fspath(db) if isinstance(db, os.PathLike) else db)
    return path


def _host_words(host: object) -> str | list[str] | None:
    if host is None:
        return None
    if isinstance(host, Mapping):
        words = [f"{label}={uri}" for label, uri in host.items() if isinstance(label, str) and isinstance(uri, str)]
        ok = len(words) == len(host)
    elif isinstance(host, str):
        words, ok = hostspecs.split_words(host), True  # checked as a list: an empty item ("gpu1,,gpu2") names no host
    else:
        words = list(host) if isinstance(host, (list, tuple)) else []
        ok = all(isinstance(word, str) for word in words)
    if not ok or not words or not all(word.strip() for word in words):
        raise InvalidValue("host", _masked(host), _HOST_FORMS)
    return host if isinstance(host, str) else words


def _masked(host: object) -> object:
    """The host argument as an error keeps it (a caller may log it): each URI's password, if any, masked."""
    from .uri_password import mask_passwords  # only on a refusal

    return mask_passwords(host)


def _setting(name: str, value: object) -> object:
    """One of connect()'s other settings, checked by the rule a config file's is (config.check_setting)."""
    if name not in _SETTINGS:
        raise InvalidValue("setting", name, ["db", "host", "password", *_SETTINGS])
    if name == "password_file" and isinstance(value, os.PathLike):
        value = os.fspath(value)
    return config.check_setting(name, value)


class Connection:
    """The database and the host(s) of one run, and the library's calls on them. See :mod:`vgpu.connection`.

    ``settings`` are what was resolved (:class:`vgpu.config.Settings`); ``store`` is the open database;
    ``host`` the host or fleet, opened on first use. A context manager: ``with vgpu.connect() as conn:``
    closes both at the end."""

    def __init__(self, settings: config.Settings, *, password: opening.AskPassword | None = None,
                 store: Store | None = None) -> None:
        self.settings = settings
        self._password = password
        # the settings' database, unless one is given already open (reopen() gives its own store's reopen())
        self._store: Store | None = store if store is not None else opening.open_store(settings)
        self._host: Hypervisor | None = None
        self._closed = False

    # --- what it holds ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The database (:class:`vgpu.store.Store`), for the module functions."""
        if self._store is None:
            raise self._closed_error()
        return self._store

    @property
    def host(self) -> Hypervisor:
        """The host, or a Fleet of several, opened on first use; for the module functions."""
        if self._closed:
            raise self._closed_error()
        if self._host is None:
            self._host = opening.open_hosts(self.settings, self._password)
        return self._host

    @property
    def policy(self) -> StopPolicy:
        """How calls that stop a VM stop it, unless given ``policy=``: the settings' clean_timeout and
        force_after_timeout."""
        return opening.stop_policy(self.settings)

    def reopen(self) -> Connection:
        """Another connection with the same settings, for another thread: it serves the thread that first uses
        it, here or the one it is handed to (``executor.submit(work, conn.reopen())``), and that one only, as
        :meth:`vgpu.store.Store.reopen` does; its host opens there, on first use."""
        return Connection(self.settings, password=self._password, store=self.store.reopen())

    def close(self) -> None:
        """Close the database and the host (if it was opened). Closing twice is harmless."""
        self._closed = True
        store, host, self._store, self._host = self._store, self._host, None, None
        try:
            if store is not None:
                store.close()
        finally:
            if host is not None:
                host.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        specs = self.settings.hosts
        if len(specs) == 1 and not specs[0].label:
            where = f"host={self.settings.host!r}"  # sim:demo as the settings name it
        else:
            where = f"hosts={', '.join(f'{spec.label}={spec.uri}' for spec in specs)!r}"
        return f"<vgpu.Connection db={self.settings.db!r} {where}{' (closed)' if self._closed else ''}>"

    def _closed_error(self) -> StoreError:
        return StoreError(self.settings.db, f"the connection to {self.settings.db} was closed; open another with vgpu.connect()")

    # --- pools -----------------------------------------------------------------------------------------
    # Each method takes its function's options, with their types and defaults (a test holds them to the
    # function's), so a user's type checker sees a misspelt or mistyped one; the function checks the values.

    def list_pools(self) -> PoolList:
        """Both pools with their VM counts (:func:`vgpu.pools.list_pools`)."""
        from . import pools

        return pools.list_pools(self.store)

    def show_pool(self, pool_id: object) -> PoolDetail:
        """One pool and its VMs, highest priority first (:func:`vgpu.pools.show_pool`)."""
        from . import pools

        return pools.show_pool(self.store, pool_id)

    def rename_pool(self, pool_id: object, name: object) -> Pool:
        """Set a pool's display name; no VM restarts (:func:`vgpu.pools.set_pool_name`)."""
        from . import pools

        return pools.set_pool_name(self.store, pool_id, name)

    # --- VMs -------------------------------------------------------------------------------------------

    def list_vms(self, *, pool: object = None, priority: object = None) -> VMList:
        """Registered VMs, optionally of one ``pool`` and/or ``priority`` (:func:`vgpu.vms.list_vms`)."""
        from . import vms

        return vms.list_vms(self.store, pool=pool, priority=priority)

    def get_vm(self, vm_uuid: object) -> VM:
        """A registered VM; NotFound if it is not registered (:func:`vgpu.vms.get`)."""
        from . import vms

        return vms.get(self.store, vm_uuid)

    def find_vm(self, vm_uuid: object) -> VM | None:
        """A registered VM, or None (:func:`vgpu.vms.find`)."""
        from . import vms

        return vms.find(self.store, vm_uuid)

    def inspect_vm(self, vm_uuid: object) -> VMView:
        """One VM as the database and the host see it, with its state (:func:`vgpu.scan.inspect_vm`)."""
        from . import scan

        return scan.inspect_vm(self.store, self.host, vm_uuid)

    def register_vm(self, vm_uuid: object, *, vm_name: object = None, pool: object = None, priority: object = None,
                    vm_id: object = None) -> RegisterResult:
        """Register a VM of the host and write its segment (:func:`vgpu.lifecycle.register_vm`)."""
        from . import lifecycle

        return lifecycle.register_vm(self.store, self.host, vm_uuid, vm_name=vm_name, pool=pool, priority=priority,
                                     vm_id=vm_id)

    def remove_vm(self, vm_uuid: object) -> RemoveResult:
        """Unregister a VM and clear its segment (:func:`vgpu.lifecycle.remove_vm`)."""
        from . import lifecycle

        return lifecycle.remove_vm(self.store, self.host, vm_uuid)

    def repair_vm(self, vm_uuid: object) -> RepairResult:
        """Rewrite a VM's segment from the database (:func:`vgpu.lifecycle.repair_vm`)."""
        from . import lifecycle

        return lifecycle.repair_vm(self.store, self.host, vm_uuid)

    def plan_reconfigure(self, vm_uuid: object, *, pool: object = None, priority: object = None,
                         vm_id: object = None) -> ReconfigurePlan:
        """What changing a VM's ``pool``, ``priority`` or ``vm_id`` would do; changes nothing
        (:func:`vgpu.lifecycle.plan_reconfigure`)."""
        from . import lifecycle

        return lifecycle.plan_reconfigure(self.store, self.host, vm_uuid, pool=pool, priority=priority, vm_id=vm_id)

    def reconfigure_vm(self, vm_uuid: object, *, pool: object = None, priority: object = None, vm_id: object = None,
                       confirm: Callable[[ReconfigurePlan], bool], progress: ProgressCallback = silent,
                       policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY) -> ReconfigureResult:
        """The confirmed cycle: stop, update, start (:func:`vgpu.lifecycle.reconfigure_vm`)."""
        from . import lifecycle

        return lifecycle.reconfigure_vm(self.store, self.host, vm_uuid, pool=pool, priority=priority, vm_id=vm_id,
                                        confirm=confirm, progress=progress, policy=self._policy(policy))

    def plan_apply(self, vm_uuid: object) -> ReconfigurePlan:
        """What :meth:`apply_vm` would do; changes nothing (:func:`vgpu.lifecycle.plan_apply`)."""
        from . import lifecycle

        return lifecycle.plan_apply(self.store, self.host, vm_uuid)

    def apply_vm(self, vm_uuid: object, *, confirm: Callable[[ReconfigurePlan], bool], progress: ProgressCallback = silent,
                 policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY) -> ReconfigureResult:
        """Make a VM run with its registered configuration now (:func:`vgpu.lifecycle.apply_vm`)."""
        from . import lifecycle

        return lifecycle.apply_vm(self.store, self.host, vm_uuid, confirm=confirm, progress=progress,
                                  policy=self._policy(policy))

    def apply_plan(self, plan: ReconfigurePlan, *, progress: ProgressCallback = silent,
                   policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY) -> ReconfigureResult:
        """Apply a plan of :meth:`plan_reconfigure` or :meth:`plan_apply` (already confirmed)
        (:func:`vgpu.lifecycle.apply_plan`)."""
        from . import lifecycle

        return lifecycle.apply_plan(self.store, self.host, plan, progress=progress, policy=self._policy(policy))

    # --- scan and status -------------------------------------------------------------------------------

    def scan(self, *, tolerate_host_errors: bool = False) -> ScanReport:
        """The host beside the database: every VM's state, drift, clones (:func:`vgpu.scan.scan`)."""
        from . import scan

        return scan.scan(self.store, self.host, tolerate_host_errors=tolerate_host_errors)

    def status(self) -> ScanReport:
        """As :meth:`scan`, but a host that cannot be reached gives the database's view with
        ``host_error`` instead of an error (:func:`vgpu.scan.status`)."""
        from . import scan

        return scan.status(self.store, self.host)

    # --- many VMs at once ------------------------------------------------------------------------------

    def plan_many(self, changes: Rows) -> BulkPlan:
        """One plan for many changes (rows of ``vm_uuid`` and ``pool``/``priority``/``vm_id``); changes
        nothing (:func:`vgpu.bulk.plan_many`)."""
        from . import bulk

        return bulk.plan_many(self.store, self.host, changes)

    def apply_many(self, plan: BulkPlan, *, progress: ProgressOption = silent, policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY,
                   concurrency: int = 4, per_host: int | None = None) -> BulkResult:
        """Apply a read and confirmed bulk plan; ``progress`` a callback or ``"auto"``
        (:func:`vgpu.bulk.apply_many`)."""
        from . import bulk

        return bulk.apply_many(self.store, self.host, plan, progress=progress, policy=self._policy(policy),
                               concurrency=concurrency, per_host=per_host)

    def reconfigure_many(self, changes: Rows, *, confirm: Callable[[BulkPlan], bool], progress: ProgressOption = silent,
                         policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY, concurrency: int = 4,
                         per_host: int | None = None) -> BulkResult:
        """Plan, ask ``confirm`` once, apply (:func:`vgpu.bulk.reconfigure_many`)."""
        from . import bulk

        return bulk.reconfigure_many(self.store, self.host, changes, confirm=confirm, progress=progress,
                                     policy=self._policy(policy), concurrency=concurrency, per_host=per_host)

    def plan_registrations(self, rows: Rows, *, on_existing: str = "error") -> RegistrationPlan:
        """Check every row for registration; changes nothing. ``on_existing``: ``"error"``, ``"skip"`` or
        ``"update"`` (:func:`vgpu.bulk_register.plan_registrations`)."""
        from . import bulk_register

        return bulk_register.plan_registrations(self.store, self.host, rows, on_existing=on_existing)

    def register_planned(self, plan: RegistrationPlan, *, progress: ProgressOption = silent,
                         concurrency: int = 4) -> RegistrationResult:
        """Register a plan's VMs in one transaction, then write their segments
        (:func:`vgpu.bulk_register.register_planned`)."""
        from . import bulk_register

        return bulk_register.register_planned(self.store, self.host, plan, progress=progress, concurrency=concurrency)

    def register_many(self, rows: Rows, *, on_existing: str = "error", progress: ProgressOption = silent,
                      concurrency: int = 4) -> RegistrationResult:
        """Plan and register in one call, all the rows or none: any bad row is an InvalidRows naming every
        one, and nothing is registered. A plan overtaken by other sessions' registrations before it is
        registered (a vm_id it chose taken, a VM registered) is made again, up to REGISTER_MANY_ATTEMPTS times.
        ``on_existing`` is ``"error"`` or ``"skip"``: ``"update"`` changes registered VMs, which may restart them:
        plan it with :meth:`plan_registrations`, read ``plan.updates``, and apply them with :meth:`apply_many`."""
        from .hypervisor.fleet import one_operation

        if on_existing == "update":
            raise InvalidValue("on_existing", "update", ["error", "skip"], sentence=(
                "register_many() takes on_existing 'error' or 'skip', not 'update', which may restart VMs: "
                "plan_registrations(rows, on_existing='update'), then apply_many(plan.updates) once you have read it"))
        if on_existing not in ("error", "skip"):
            raise InvalidValue("on_existing", on_existing, ["error", "skip"])
        # One bulk call, one fleet operation: a host that is down is waited on once, not by every plan and
        # registering of it.
        with one_operation(self.host):
            for attempt in range(1, REGISTER_MANY_ATTEMPTS + 1):
                plan = self.plan_registrations(rows, on_existing=on_existing)
                if plan.problems:
                    raise InvalidRows(plan.problems)
                try:
                    return self.register_planned(plan, progress=progress, concurrency=concurrency)
                except StaleRegistrations:
                    # another session registered VMs between the planning and the registering; nothing was changed,
                    # and the caller never saw this plan: a new one sees what that session did
                    if attempt == REGISTER_MANY_ATTEMPTS:
                        raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def write_segments(self, vm_uuids: Iterable[str], *, progress: ProgressOption = silent,
                       concurrency: int = 4) -> tuple[list[RepairResult], list[BulkFailure]]:
        """Rewrite many VMs' segments from the database, a bulk repair (:func:`vgpu.bulk_register.write_segments`)."""
        from . import bulk_register

        return bulk_register.write_segments(self.store, self.host, vm_uuids, progress=progress, concurrency=concurrency)

    # --- hosts retired for good ------------------------------------------------------------------------

    def plan_forget_host(self, label: object) -> ForgetHostPlan:
        """What forgetting host ``label`` (retired for good, taken out of the settings' hosts) would remove;
        changes nothing (:func:`vgpu.locations.plan_forget_host`)."""
        from . import locations

        return locations.plan_forget_host(self.store, label, self.settings.configured_uris)

    def forget_host(self, label: object, *, confirm: Callable[[ForgetHostPlan], bool]) -> ForgetHostPlan:
        """Forget host ``label``: where VMs were last seen there and the copies recorded there, in one
        transaction, after ``confirm`` says yes; no VM is unregistered. A host the settings configure is
        refused (:func:`vgpu.locations.forget_host`). Asks no host."""
        from . import locations

        return locations.forget_host(self.store, label, self.settings.configured_uris, confirm=confirm)

    # --- history and recovery --------------------------------------------------------------------------

    def history(self, subject: str | None = None, *, limit: int | None = None) -> AuditList:
        """Recorded changes, newest first, of one VM UUID or pool id (``subject``) or of everything
        (:func:`vgpu.audit.history`)."""
        from . import audit

        return audit.history(self.store, subject, limit=limit)

    def recover(self, *, progress: ProgressCallback = silent, policy: StopPolicy | SettingsPolicy = SETTINGS_POLICY,
                take_over: bool = False) -> list[Recovery]:
        """Finish or undo every unfinished change whose session has ended (:func:`vgpu.recovery.recover`)."""
        from . import recovery

        return recovery.recover(self.store, self.host, progress=progress, policy=self._policy(policy), take_over=take_over)

    def _policy(self, given: StopPolicy | SettingsPolicy) -> StopPolicy:
        """The call's stop policy, or the settings' (:attr:`policy`) when it gives none. A ``policy=None``
        given reaches the function, which refuses it, as every bad policy."""
        return self.policy if given is SETTINGS_POLICY else given

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

Each method calls one function of the library's modules with the connection's store and host, and passes
its keyword options through (``progress=``, ``concurrency=``, ``on_existing=``, ``confirm=``, ...), checked
first: an option the function does not take is an InvalidValue naming it and the ones it takes. Calls that
stop VMs get the settings' stop policy (``clean_timeout``, ``force_after_timeout``) unless given
``policy=``. The module functions stay: ``conn.store`` and ``conn.host`` are what they take.

A Connection serves the thread that opened it, as its Store does: another thread gets its own from
``conn.reopen()``, called there or handed to it (the bulk calls already give each of their workers
connections of their own).
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, TypeVar, Union

from . import config, hostspecs, opening
from .errors import ConfigError, InvalidRows, InvalidValue, StaleRegistrations, StoreError
from .store import Store

if TYPE_CHECKING:  # annotations only: a connection imports each module when a method first needs it
    from .bulk import BulkFailure, BulkPlan, BulkResult
    from .bulk_register import RegistrationPlan, RegistrationResult
    from .hypervisor.base import Hypervisor
    from .locations import ForgetHostPlan
    from .lifecycle import ReconfigurePlan, ReconfigureResult, RegisterResult, RemoveResult, RepairResult
    from .models import VM, Pool, PoolDetail
    from .power import StopPolicy
    from .recovery import Recovery
    from .scan import ScanReport, VMView
    from .tables import AuditList, PoolList, VMList

__all__ = ["Connection", "connect", "resolve_settings"]

T = TypeVar("T")

# What connect() takes as ``host``: one URI (or a label of config.toml [hosts], or several, comma-separated,
# as VGPU_HOST takes them), a list of such words (as --host given several times), or {label: URI}.
HostArgument = Union[str, Sequence[str], Mapping[str, str], None]
# Rows for the bulk calls: a list of dicts or Registrations, a DataFrame, {label: row}, any result's records().
Rows = Union[Iterable[Any], Mapping[Any, Any]]

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

    def list_pools(self, **options: Any) -> PoolList:
        """Both pools with their VM counts (:func:`vgpu.pools.list_pools`)."""
        from . import pools

        return self._call("list_pools", pools.list_pools, (self.store,), options)

    def show_pool(self, pool_id: object, **options: Any) -> PoolDetail:
        """One pool and its VMs, highest priority first (:func:`vgpu.pools.show_pool`)."""
        from . import pools

        return self._call("show_pool", pools.show_pool, (self.store, pool_id), options)

    def rename_pool(self, pool_id: object, name: object, **options: Any) -> Pool:
        """Set a pool's display name; no VM restarts (:func:`vgpu.pools.set_pool_name`)."""
        from . import pools

        return self._call("rename_pool", pools.set_pool_name, (self.store, pool_id, name), options)

    # --- VMs -------------------------------------------------------------------------------------------

    def list_vms(self, **options: Any) -> VMList:
        """Registered VMs, optionally of one ``pool`` and/or ``priority`` (:func:`vgpu.vms.list_vms`)."""
        from . import vms

        return self._call("list_vms", vms.list_vms, (self.store,), options)

    def get_vm(self, vm_uuid: object, **options: Any) -> VM:
        """A registered VM; NotFound if it is not registered (:func:`vgpu.vms.get`)."""
        from . import vms

        return self._call("get_vm", vms.get, (self.store, vm_uuid), options)

    def find_vm(self, vm_uuid: object, **options: Any) -> VM | None:
        """A registered VM, or None (:func:`vgpu.vms.find`)."""
        from . import vms

        return self._call("find_vm", vms.find, (self.store, vm_uuid), options)

    def inspect_vm(self, vm_uuid: object, **options: Any) -> VMView:
        """One VM as the database and the host see it, with its state (:func:`vgpu.scan.inspect_vm`)."""
        from . import scan

        return self._call("inspect_vm", scan.inspect_vm, (self.store, self.host, vm_uuid), options)

    def register_vm(self, vm_uuid: object, **options: Any) -> RegisterResult:
        """Register a VM of the host and write its segment; options ``vm_name``, ``pool``, ``priority``,
        ``vm_id`` (:func:`vgpu.lifecycle.register_vm`)."""
        from . import lifecycle

        return self._call("register_vm", lifecycle.register_vm, (self.store, self.host, vm_uuid), options)

    def remove_vm(self, vm_uuid: object, **options: Any) -> RemoveResult:
        """Unregister a VM and clear its segment (:func:`vgpu.lifecycle.remove_vm`)."""
        from . import lifecycle

        return self._call("remove_vm", lifecycle.remove_vm, (self.store, self.host, vm_uuid), options)

    def repair_vm(self, vm_uuid: object, **options: Any) -> RepairResult:
        """Rewrite a VM's segment from the database (:func:`vgpu.lifecycle.repair_vm`)."""
        from . import lifecycle

        return self._call("repair_vm", lifecycle.repair_vm, (self.store, self.host, vm_uuid), options)

    def plan_reconfigure(self, vm_uuid: object, **options: Any) -> ReconfigurePlan:
        """What changing a VM's ``pool``, ``priority`` or ``vm_id`` would do; changes nothing
        (:func:`vgpu.lifecycle.plan_reconfigure`)."""
        from . import lifecycle

        return self._call("plan_reconfigure", lifecycle.plan_reconfigure, (self.store, self.host, vm_uuid), options)

    def reconfigure_vm(self, vm_uuid: object, **options: Any) -> ReconfigureResult:
        """The confirmed cycle: stop, update, start. Options ``pool``, ``priority``, ``vm_id``, ``confirm``
        (required), ``progress``, ``policy`` (:func:`vgpu.lifecycle.reconfigure_vm`)."""
        from . import lifecycle

        return self._call("reconfigure_vm", lifecycle.reconfigure_vm, (self.store, self.host, vm_uuid), options)

    def plan_apply(self, vm_uuid: object, **options: Any) -> ReconfigurePlan:
        """What :meth:`apply_vm` would do; changes nothing (:func:`vgpu.lifecycle.plan_apply`)."""
        from . import lifecycle

        return self._call("plan_apply", lifecycle.plan_apply, (self.store, self.host, vm_uuid), options)

    def apply_vm(self, vm_uuid: object, **options: Any) -> ReconfigureResult:
        """Make a VM run with its registered configuration now. Options ``confirm`` (required),
        ``progress``, ``policy`` (:func:`vgpu.lifecycle.apply_vm`)."""
        from . import lifecycle

        return self._call("apply_vm", lifecycle.apply_vm, (self.store, self.host, vm_uuid), options)

    def apply_plan(self, plan: ReconfigurePlan, **options: Any) -> ReconfigureResult:
        """Apply a plan of :meth:`plan_reconfigure` or :meth:`plan_apply` (already confirmed). Options
        ``progress``, ``policy`` (:func:`vgpu.lifecycle.apply_plan`)."""
        from . import lifecycle

        return self._call("apply_plan", lifecycle.apply_plan, (self.store, self.host, plan), options)

    # --- scan and status -------------------------------------------------------------------------------

    def scan(self, **options: Any) -> ScanReport:
        """The host beside the database: every VM's state, drift, clones; option ``tolerate_host_errors``
        (:func:`vgpu.scan.scan`)."""
        from . import scan

        return self._call("scan", scan.scan, (self.store, self.host), options)

    def status(self, **options: Any) -> ScanReport:
        """As :meth:`scan`, but a host that cannot be reached gives the database's view with
        ``host_error`` instead of an error (:func:`vgpu.scan.status`)."""
        from . import scan

        return self._call("status", scan.status, (self.store, self.host), options)

    # --- many VMs at once ------------------------------------------------------------------------------

    def plan_many(self, changes: Rows, **options: Any) -> BulkPlan:
        """One plan for many changes (rows of ``vm_uuid`` and ``pool``/``priority``/``vm_id``); changes
        nothing (:func:`vgpu.bulk.plan_many`)."""
        from . import bulk

        return self._call("plan_many", bulk.plan_many, (self.store, self.host, changes), options)

    def apply_many(self, plan: BulkPlan, **options: Any) -> BulkResult:
        """Apply a read and confirmed bulk plan. Options ``progress`` (a callback or ``"auto"``),
        ``policy``, ``concurrency``, ``per_host`` (:func:`vgpu.bulk.apply_many`)."""
        from . import bulk

        return self._call("apply_many", bulk.apply_many, (self.store, self.host, plan), options)

    def reconfigure_many(self, changes: Rows, **options: Any) -> BulkResult:
        """Plan, ask ``confirm`` (required) once, apply. Options as :meth:`apply_many`, and ``confirm``
        (:func:`vgpu.bulk.reconfigure_many`)."""
        from . import bulk

        return self._call("reconfigure_many", bulk.reconfigure_many, (self.store, self.host, changes), options)

    def plan_registrations(self, rows: Rows, **options: Any) -> RegistrationPlan:
        """Check every row for registration; changes nothing. Option ``on_existing``: ``"error"``,
        ``"skip"`` or ``"update"`` (:func:`vgpu.bulk_register.plan_registrations`)."""
        from . import bulk_register

        return self._call("plan_registrations", bulk_register.plan_registrations, (self.store, self.host, rows), options)

    def register_planned(self, plan: RegistrationPlan, **options: Any) -> RegistrationResult:
        """Register a plan's VMs in one transaction, then write their segments. Options ``progress``,
        ``concurrency`` (:func:`vgpu.bulk_register.register_planned`)."""
        from . import bulk_register

        return self._call("register_planned", bulk_register.register_planned, (self.store, self.host, plan), options)

    def register_many(self, rows: Rows, **options: Any) -> RegistrationResult:
        """Plan and register in one call, all the rows or none: any bad row is an InvalidRows naming every
        one, and nothing is registered. A plan overtaken by other sessions' registrations before it is
        registered (a vm_id it chose taken, a VM registered) is made again, up to REGISTER_MANY_ATTEMPTS times. Options ``on_existing`` (``"error"`` or ``"skip"``), ``progress``,
        ``concurrency``. ``on_existing="update"`` changes registered VMs, which may restart them: plan it
        with :meth:`plan_registrations`, read ``plan.updates``, and apply them with :meth:`apply_many`."""
        from . import bulk_register
        from .hypervisor.fleet import one_operation

        planning, registering = _split("register_many", options, bulk_register.plan_registrations, 3,
                                       bulk_register.register_planned, 3)
        on_existing = planning.get("on_existing", "error")
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
                plan = self.plan_registrations(rows, **planning)
                if plan.problems:
                    raise InvalidRows(plan.problems)
                try:
                    return self.register_planned(plan, **registering)
                except StaleRegistrations:
                    # another session registered VMs between the planning and the registering; nothing was changed,
                    # and the caller never saw this plan: a new one sees what that session did
                    if attempt == REGISTER_MANY_ATTEMPTS:
                        raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def write_segments(self, vm_uuids: Iterable[str], **options: Any) -> tuple[list[RepairResult], list[BulkFailure]]:
        """Rewrite many VMs' segments from the database (a bulk repair). Options ``progress``,
        ``concurrency`` (:func:`vgpu.bulk_register.write_segments`)."""
        from . import bulk_register

        return self._call("write_segments", bulk_register.write_segments, (self.store, self.host, vm_uuids), options)

    # --- hosts retired for good ------------------------------------------------------------------------

    def plan_forget_host(self, label: object, **options: Any) -> ForgetHostPlan:
        """What forgetting host ``label`` (retired for good, taken out of the settings' hosts) would remove;
        changes nothing (:func:`vgpu.locations.plan_forget_host`)."""
        from . import locations

        return self._call("plan_forget_host", locations.plan_forget_host,
                          (self.store, label, self.settings.configured_uris), options)

    def forget_host(self, label: object, **options: Any) -> ForgetHostPlan:
        """Forget host ``label``: where VMs were last seen there and the copies recorded there, in one
        transaction, after ``confirm`` (required) says yes; no VM is unregistered. A host the settings
        configure is refused (:func:`vgpu.locations.forget_host`). Asks no host."""
        from . import locations

        return self._call("forget_host", locations.forget_host, (self.store, label, self.settings.configured_uris), options)

    # --- history and recovery --------------------------------------------------------------------------

    def history(self, subject: object = None, **options: Any) -> AuditList:
        """Recorded changes, newest first, of one VM UUID or pool id (``subject``) or of everything; option
        ``limit`` (:func:`vgpu.audit.history`)."""
        from . import audit

        return self._call("history", audit.history, (self.store, subject), options)

    def recover(self, **options: Any) -> list[Recovery]:
        """Finish or undo every unfinished change whose session has ended. Options ``progress``,
        ``policy``, ``take_over`` (:func:`vgpu.recovery.recover`)."""
        from . import recovery

        return self._call("recover", recovery.recover, (self.store, self.host), options)

    # --- how every method calls its function -----------------------------------------------------------

    def _call(self, name: str, target: Callable[..., T], args: tuple[object, ...], options: dict[str, Any]) -> T:
        """``target(*args, **options)``, the options checked first against what ``target`` takes after
        ``args``; the settings' stop policy unless the call gives one."""
        allowed = _check_options(name, options, target, len(args))
        if "policy" in allowed and "policy" not in options:
            options = {**options, "policy": self.policy}
        return target(*args, **options)


def _options_of(target: Callable[..., object], given: int) -> tuple[list[str], list[str]]:
    """The keyword options ``target`` takes after its first ``given`` parameters, and those without a default."""
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [param for param in list(inspect.signature(target).parameters.values())[given:] if param.kind in keyword]
    return [param.name for param in params], [param.name for param in params if param.default is inspect.Parameter.empty]


def _check_options(name: str, options: Mapping[str, object], target: Callable[..., object], given: int,
                   also: Sequence[str] = ()) -> list[str]:
    """Refuse an option ``target`` does not take (nor ``also``), or a required one missing; returns the options."""
    allowed, required = _options_of(target, given)
    every = [*allowed, *also]
    for option in options:
        if option not in every:
            takes = f"its options are {', '.join(every)}" if every else "it takes none"
            raise InvalidValue("option", option, every, sentence=f"{name}() takes no option {option!r}; {takes}")
    for option in required:
        if option not in options:
            raise InvalidValue(option, None, f"{option}=", sentence=f"{name}() needs the option {option}= "
                                                               f"(its options are {', '.join(every)})")
    return allowed


def _split(name: str, options: Mapping[str, Any], first: Callable[..., object], first_given: int,
           second: Callable[..., object], second_given: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` of a method calling two functions: each one's own, every one checked against the two."""
    takes_first, _ = _options_of(first, first_given)
    takes_second, _ = _options_of(second, second_given)
    _check_options(name, options, first, first_given, also=takes_second)
    return ({key: value for key, value in options.items() if key in takes_first},
            {key: value for key, value in options.items() if key not in takes_first})

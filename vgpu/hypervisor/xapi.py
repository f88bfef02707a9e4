"""The XenAPI backend: a XenServer/XCP-ng pool master over XML-RPC, through the official SDK (PyPI ``XenAPI``).

``xapi://root@host``, ``xapis://root@host`` or, on dom0, ``xapi+unix:`` (see :mod:`.xapi_uri` for the URI
forms, TLS options and where the password comes from). The session is opened on the first call and
logged out by :meth:`XapiHost.close`; a session belongs to one thread, so worker threads take
:meth:`XapiHost.reopen`.

Decisions worth knowing:

- A pool member answers every login with ``HOST_IS_SLAVE`` and its master's address. By default we do not
  follow it: the user named a host, and silently sending their password to another address would surprise
  them. The error names the master, so the fix is one edit of the URI. Since pool masters change on
  failover, a host may be given ``follow_master``: the addresses and networks its login may be redirected
  to. The password then goes to the master only when the master's address is one of them (same scheme,
  port and TLS options as the URI); any other address is refused, naming it. The master found is kept for
  the next sessions (reopen).
- A listing is ``VM.get_all_records`` and, when some VM is running, ``host.get_all_records``, for the names
  of the pool's members (``HostVM.resident_on``): two calls, whatever the VM count.
- Clean shutdown and start run as ``Async.VM.*`` tasks polled against a deadline, because the synchronous
  calls can block for many minutes inside xapi: a socket timeout could not honour the caller's deadline,
  and would report a slow start as an unreachable host.
- Every XAPI failure becomes :func:`codes.host_error` (one table of sentences for all backends); every
  transport failure becomes ``HostUnreachable`` with a plain sentence. Nothing else escapes, and the
  password is scrubbed from whatever text a server sends back. A failure that refers to a pool member or
  an SR by reference (``HOST_OFFLINE [host]``) costs one more call, ``host.get_name_label``, so that the
  sentence names it; a reference that cannot be looked up reads "a pool member", never ``OpaqueRef:…``.
- Round trips: a VM's ref (``OpaqueRef:…``) is looked up once and kept, by UUID, for this host object and
  those :meth:`XapiHost.reopen` makes (a ref names the VM for every session); a listing gives every VM's.
  A call that meets ``HANDLE_INVALID`` for a kept ref (the VM was deleted, or re-created under the same
  UUID) forgets it, looks the VM up again and tries once more. :meth:`XapiHost.describe_vm` reads one VM's
  record in one call (the first time with its lookup, ``VM.get_all_records_where``). A finished task is
  left to xapi, which destroys completed tasks itself (``timeout_tasks`` in xen-api's
  ``ocaml/xapi/db_gc_util.ml``: 65 minutes after they finish, sooner past its task limit), rather than
  spending a round trip per task on ``task.destroy``. So a reconfigure of a running VM costs 10 calls,
  login and logout included.
- What a running VM booted with: xapi keeps no record of it. ``VM.last_booted_record`` is not filled at
  start since 2017 (xen-api commit 37dc4fb03c; it holds only a suspended VM's xenopsd state, and an older
  value is never cleared), and ``VM.get_boot_record`` returns the current record (``xapi_vm.ml``). The
  domain's platform map is in dom0's xenstore (see :mod:`vgpu.hypervisor.xenstore`), so on dom0
  (``xapi+unix:``) it is read from there, one ``xenstore-ls`` per listing; a remote connection says None
  (unknown), never a guess. ``VM.current_operations`` names what xapi is still doing to a VM.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
import xmlrpc.client
from typing import Any, Callable, Iterator, Sequence

import attrs

from ..basics import UUID_PATTERN
from ..errors import HypervisorError, InvalidValue
from ..models import HostVM, PowerState
from . import codes
from .base import DEFAULT_ARGS_KEY
from .xapi_transport import CALL_TIMEOUT, TRANSPORT_ERRORS, new_session, unreachable_reason
from .xapi_uri import Credentials, XapiTarget, allows, parse_uri
from .xenstore import Xenstore

START_TIMEOUT = 600.0  # VM.start waits for the guest's devices (vGPU, disks): minutes are normal
_MAX_HOPS = 3  # a member, then its master; one more when a failover is under way

ORIGINATOR = "vgpu-admin"  # shown to the admin in xapi's session list and audit log
API_VERSION = "1.0"  # the client's API version; xapi records it and serves every version the same
_IN_PROGRESS = ("pending", "cancelling")
_POLL_FIRST, _POLL_MAX = 0.05, 1.0
_UUID = re.compile(UUID_PATTERN, re.IGNORECASE)
# Older hosts name a guest without PV drivers more precisely; callers need one code for "only force works".
_ALIASES = {"VM_LACKS_FEATURE_SHUTDOWN": codes.VM_LACKS_FEATURE, "VM_MISSING_PV_DRIVERS": codes.VM_LACKS_FEATURE}


class XapiHost:
    """A XenAPI host. Implements :class:`vgpu.hypervisor.base.Hypervisor`."""

    def __init__(
        self,
        target: XapiTarget,
        credentials: Credentials,
        *,
        args_key: str = DEFAULT_ARGS_KEY,
        call_timeout: float = CALL_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
        xenstore: Xenstore | None = None,
        follow_master: Sequence[str] = (),
        refs: dict[str, str] | None = None,
    ) -> None:
        """``xenstore`` reads the local xenstore, where running domains' boot arguments are: only for a
        connection to the host this runs on (dom0). ``follow_master``: the addresses (IPs, networks such as
        ``10.0.2.0/24``, host names) a pool member's HOST_IS_SLAVE answer may send the login to. ``refs``:
        VM refs by UUID, shared with the host object this one was reopened from."""
        self.uri = target.display
        self.args_key = args_key
        self._target = target
        self._credentials = credentials
        self._call_timeout = call_timeout
        self._start_timeout = start_timeout
        self._xenstore = xenstore
        self._follow = tuple(follow_master)
        self._session: Any = None
        self._refs: dict[str, str] = {} if refs is None else refs  # VM UUID (lower case) -> ref, kept across sessions
        self._names: dict[str, str] = {}  # pool member or SR ref -> its name, looked up for an error's sentence

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        args_key: str = DEFAULT_ARGS_KEY,
        password: Callable[[], str | None] | None = None,
        call_timeout: float = CALL_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
        xenstore: Xenstore | None = None,
        follow_master: Sequence[str] = (),
    ) -> "XapiHost":
        """``password`` is a prompt, called at most once, when VGPU_XAPI_PASSWORD is unset (it returns None when
        it cannot ask). On dom0 (``xapi+unix:``) the local xenstore is read with ``xenstore-ls`` unless
        ``xenstore`` says otherwise.
        ``follow_master``: see the module docstring (xapi:// and xapis:// only)."""
        target = parse_uri(uri)
        if follow_master and target.is_local:
            raise InvalidValue("follow_master", list(follow_master), "nothing for xapi+unix: (a local socket has no master to follow)")
        if xenstore is None and target.is_local:
            xenstore = Xenstore()
        return cls(target, Credentials(target, password), args_key=args_key, call_timeout=call_timeout,
                   start_timeout=start_timeout, xenstore=xenstore, follow_master=follow_master)

    # --- session and error translation -----------------------------------------------------------------

    def _api(self) -> Any:
        if self._session is None:
            secret = self._credentials.secret()
            for _hop in range(_MAX_HOPS):
                session = new_session(self._target, self._call_timeout)
                login = session.xenapi.login_with_password
                try:
                    self._guarded(lambda: login(self._credentials.user, secret.reveal(), API_VERSION, ORIGINATOR))
                except HypervisorError as error:
                    if error.code != codes.HOST_IS_SLAVE or not self._follow:
                        raise
                    self._target = self._master_of(error)  # raises unless the config allows it
                    continue
                self._session = session
                break
            else:
                raise codes.host_error(codes.HOST_IS_SLAVE, [self._target.host])
        return self._session.xenapi

    def _master_of(self, refusal: HypervisorError) -> XapiTarget:
        """Where a member's HOST_IS_SLAVE answer points: the same URI with the master's address, if
        ``follow_master`` allows that address; otherwise the refusal, saying why it was not followed."""
        master = str(refusal.details[0]) if refusal.details else ""
        if not master or not allows(self._follow, master):
            refusal.reword(f"{self._target.display} is a pool member, not the pool master; its master is at "
                           f"{master or '?'}, which follow_master ({', '.join(self._follow)}) does not allow, so the "
                           "password was not sent there: add that address to follow_master, or connect to the master")
            raise refusal
        return attrs.evolve(self._target, host=master.strip("[]"))

    def prepare(self) -> None:
        """Resolve the password now, on the calling thread (a fleet fans calls out to worker threads, which
        may not prompt)."""
        self._credentials.secret()

    def _call(self, method: str, *args: Any, vm: str | None = None) -> Any:
        function = functools.reduce(getattr, method.split("."), self._api())
        return self._guarded(lambda: function(*args), vm)

    def _guarded(self, thunk: Callable[[], Any], vm: str | None = None, *, naming: bool = True) -> Any:
        """``naming``: an error whose details refer to a pool member or SR looks its name up (see _host_error)."""
        from XenAPI import Failure

        try:
            return thunk()
        except Failure as exc:
            raise self._host_error(exc.details, vm, naming) from None
        except xmlrpc.client.Fault as exc:  # the SDK's own: bad answers, or 504 for a login that timed out
            if exc.faultCode == 504:
                raise self._unreachable(TimeoutError(exc.faultString)) from None
            fault = f"XML-RPC fault {exc.faultCode}: {exc.faultString}"
            raise self._host_error([codes.INTERNAL_ERROR, fault], vm) from None
        except TRANSPORT_ERRORS as exc:
            raise self._unreachable(exc) from None
        except _MALFORMED as exc:  # the SDK reading an answer that is not XAPI's (a failure without a code)
            raise _not_understood(exc) from None

    def _host_error(self, details: Sequence[Any], vm: str | None, naming: bool = True) -> HypervisorError:
        words = [self._credentials.scrub(str(word)) for word in details] or [codes.INTERNAL_ERROR]
        code, params = _ALIASES.get(words[0], words[0]), words[1:]
        if code == codes.SESSION_AUTHENTICATION_FAILED and not params:
            params = [self._credentials.user]
        named = codes.NAMED_OBJECTS.get(code)
        if named is not None and naming:
            index, cls = named
            if index < len(params) and codes.is_ref(params[index]):
                params[index] = self._name_of(cls, params[index])
        return codes.host_error(code, params, vm)

    def _name_of(self, cls: str, ref: str) -> str:
        """The name of the pool member (or SR) an error refers to, "" when it cannot be had: one call, made
        only on that error's path, so an operation that succeeds costs no more round trips."""
        if ref in self._names:  # a failed clean shutdown and the forced one after it name the same member
            return self._names[ref]
        if self._session is None:
            return ""
        getter = getattr(getattr(self._session.xenapi, cls), "get_name_label")
        with contextlib.suppress(HypervisorError):
            self._names[ref] = str(self._guarded(lambda: getter(ref), naming=False))
        return self._names.get(ref, "")

    def _unreachable(self, exc: BaseException) -> HypervisorError:
        reason = unreachable_reason(exc, self._target, self._call_timeout)
        return codes.host_error(codes.HOST_UNREACHABLE, [self._credentials.scrub(reason)])

    def _quietly(self, method: str, *args: Any) -> None:
        """A best-effort call (cancel or destroy a task) whose failure must not hide the real outcome."""
        with contextlib.suppress(HypervisorError):
            self._call(method, *args)

    def _ref(self, vm_uuid: str) -> str:
        key = vm_uuid.lower()
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = self._call("VM.get_by_uuid", vm_uuid, vm=vm_uuid)
        return ref

    def _on_vm(self, method: str, vm_uuid: str, *args: Any) -> Any:
        """``method(ref, *args)`` for the VM. A kept ref the host no longer knows (HANDLE_INVALID for a VM:
        deleted, or re-created under the same UUID) is looked up again, and the call made once more."""
        ref = self._ref(vm_uuid)
        try:
            return self._call(method, ref, *args, vm=vm_uuid)
        except HypervisorError as exc:
            if not _stale(exc, ref):
                raise
        self._refs.pop(vm_uuid.lower(), None)
        return self._call(method, self._ref(vm_uuid), *args, vm=vm_uuid)

    def _record(self, vm_uuid: str) -> dict[str, Any]:
        """The VM's record in one call: by its kept ref, or (not yet known) found by UUID, ref and all."""
        if vm_uuid.lower() in self._refs:
            kept: dict[str, Any] = self._on_vm("VM.get_record", vm_uuid)
            return kept
        if not _UUID.fullmatch(vm_uuid):  # it goes into a query expression: nothing but a UUID may
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        found = self._call("VM.get_all_records_where", f'field "uuid" = "{vm_uuid.lower()}"', vm=vm_uuid)
        if not found:
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        record: dict[str, Any]
        ref, record = next(iter(found.items()))
        self._refs[vm_uuid.lower()] = ref
        return record

    # --- the protocol ------------------------------------------------------------------------------------

    def list_vms(self) -> list[HostVM]:
        records = []
        listed = self._call("VM.get_all_records")
        with _understood():
            for ref, record in listed.items():
                if _is_guest(record):
                    records.append(record)
                    self._refs[str(record["uuid"]).lower()] = ref
            running = {str(record["uuid"]).lower(): int(record.get("domid", -1)) for record in records if _has_domain(record)}
        booted = self._booted_here(running) if running else {}
        members = self._member_names() if running else {}
        with _understood():
            return [self._host_vm(record, booted, members) for record in records]

    def _member_names(self) -> dict[str, str]:
        """Pool member ref -> its name (what ``resident_on`` refers to)."""
        return {ref: str(record.get("name_label", "")) for ref, record in self._call("host.get_all_records").items()}

    def describe_vm(self, vm_uuid: str) -> HostVM:
        record = self._record(vm_uuid)
        booted: dict[str, str] = {}
        if _has_domain(record) and self._xenstore is not None:
            with _understood():
                domid = int(record.get("domid", -1))
            if domid >= 0:
                booted = self._xenstore.booted_args(self.args_key, vm_uuid, domid) or {}
        with _understood():
            return self._host_vm(record, booted, {})  # which member it runs on costs a call a reconfigure does not need

    def _booted_here(self, domids: dict[str, int]) -> dict[str, str]:
        """VM UUID -> booted args, for every domain of this host's xenstore ({} when it cannot be read): the
        domain of the ``domids`` the host reports (VM UUID -> domid), not any other naming the VM."""
        if self._xenstore is None:
            return {}
        return self._xenstore.booted_args(self.args_key, live=domids) or {}

    def _host_vm(self, record: dict[str, Any], booted: dict[str, str], members: dict[str, str]) -> HostVM:
        platform = record.get("platform") or {}
        vm_uuid = str(record["uuid"])
        has_domain = _has_domain(record)
        return HostVM(
            vm_uuid,
            str(record.get("name_label", "")),
            _power_state(record.get("power_state")),
            str(platform.get(self.args_key, "")),
            booted.get(vm_uuid.lower()) if has_domain else None,
            resident_on=members.get(str(record.get("resident_on", ""))) or None if has_domain else None,
        )

    def power_state(self, vm_uuid: str) -> PowerState:
        return _power_state(self._on_vm("VM.get_power_state", vm_uuid))

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            task = self._on_vm("Async.VM.clean_shutdown", vm_uuid)
            if self._await(task, deadline, vm_uuid):
                return True
        except HypervisorError as exc:
            if halted_ok and _already_halted(exc):
                return True
            raise
        # Cancelled at the deadline; the guest may still have made it in the last instant.
        return self.power_state(vm_uuid) is PowerState.HALTED

    def _await(self, task: str, deadline: float, vm_uuid: str) -> bool:
        """True once the task succeeded; False if it was still running at the deadline (it is then cancelled).

        The first look comes after a short wait (a task is never done the instant it is made, so an
        immediate look is a wasted round trip), then at doubling intervals. Finished tasks are left for xapi
        to collect (see the module docstring).
        """
        delay = _POLL_FIRST
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        while (status := self._call("task.get_status", task)) in _IN_PROGRESS:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._quietly("task.cancel", task)
                return False
            delay = min(delay * 2, _POLL_MAX)
            time.sleep(min(delay, remaining))
        if status == "failure":
            raise self._host_error(self._call("task.get_error_info", task), vm_uuid)
        return bool(status == "success")  # bool(): the SDK's answers are untyped

    def hard_shutdown(self, vm_uuid: str) -> bool:
        try:
            self._on_vm("VM.hard_shutdown", vm_uuid)
        except HypervisorError as exc:
            if not _already_halted(exc):
                raise
            return False
        return True

    def start(self, vm_uuid: str) -> None:
        deadline = time.monotonic() + self._start_timeout
        task = self._on_vm("Async.VM.start", vm_uuid, False, False)  # not paused, not forced
        if not self._await(task, deadline, vm_uuid):
            raise codes.host_error(codes.OPERATION_TIMED_OUT, [], vm_uuid)

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        self._ref(vm_uuid)  # an unknown VM is an error here too, whatever xenstore can say
        if self._xenstore is None:
            return None  # remote: xapi keeps no record of it (see the module docstring)
        domid = int(self._on_vm("VM.get_domid", vm_uuid))
        if domid < 0:
            return None
        booted = self._xenstore.booted_args(self.args_key, vm_uuid, domid)
        return None if booted is None else booted.get(vm_uuid.lower())

    def tells_booted(self, vm_uuid: str) -> bool:
        """Only on dom0 (xenstore): a remote connection cannot see what a VM booted with (see base.tells_booted)."""
        return self._xenstore is not None

    def booted_after_start(self, vm_uuid: str) -> str | None:
        """:meth:`booted_device_model_args` of a VM just started (so known to exist), with no XenAPI call: on
        dom0 one ``xenstore-ls`` of every domain; remote, None (unknown) at once."""
        if self._xenstore is None:
            return None
        booted = self._xenstore.booted_args(self.args_key, vm_uuid)
        return None if booted is None else booted.get(vm_uuid.lower())

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        operations = self._on_vm("VM.get_current_operations", vm_uuid)
        return tuple(str(op) for op in operations.values())  # task ref -> operation (start, clean_shutdown...)

    def get_device_model_args(self, vm_uuid: str) -> str:
        platform = self._on_vm("VM.get_platform", vm_uuid)
        return str(platform.get(self.args_key, ""))

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        # remove + add, not set_platform: set_platform writes back the whole map, so a key someone else
        # changed between our read and our write would silently revert. These two calls touch our key only.
        # Between them the key is briefly absent; vgpu writes it while the VM is halted (or for its next
        # boot), and recover() finishes an operation interrupted there.
        self._on_vm("VM.remove_from_platform", vm_uuid, self.args_key)
        if value:
            self._on_vm("VM.add_to_platform", vm_uuid, self.args_key, value)

    def reopen(self) -> "XapiHost":
        """A new session to the same host, sharing the already-resolved password (no second prompt)."""
        reopened = XapiHost(self._target, self._credentials, args_key=self.args_key, call_timeout=self._call_timeout,
                            start_timeout=self._start_timeout, xenstore=self._xenstore, follow_master=self._follow,
                            refs=self._refs)
        reopened.uri = self.uri  # the host as configured, even when a followed master serves it
        return reopened

    def close(self) -> None:
        """Log out (idempotent). A host that vanished cannot be logged out of; that is not an error."""
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(HypervisorError):
                self._guarded(session.xenapi.session.logout)

    def __enter__(self) -> "XapiHost":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XapiHost({self.uri!r})"


def _stale(error: HypervisorError, ref: str) -> bool:
    """HANDLE_INVALID for a VM ref: the host no longer knows the ref (another object's is another matter)."""
    details = [str(word) for word in error.details]
    return error.code == codes.HANDLE_INVALID and (details[:1] == ["VM"] or ref in details)


# What reading an answer that is not in XAPI's form raises: a record without its uuid, a failure without its
# code, a map that is a string. The host's fault, said as such, not an internal error of ours.
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def _not_understood(exc: BaseException) -> HypervisorError:
    return codes.host_error(codes.MALFORMED_ANSWER, [f"{type(exc).__name__}: {exc}"])


@contextlib.contextmanager
def _understood() -> Iterator[None]:
    """Reading the host's records: a field XAPI always sends, missing or of another type, is a host error."""
    try:
        yield
    except _MALFORMED as exc:
        raise _not_understood(exc) from None


def _is_guest(record: dict[str, Any]) -> bool:
    return not (record.get("is_control_domain") or record.get("is_a_template") or record.get("is_a_snapshot"))


def _has_domain(record: dict[str, Any]) -> bool:
    """A running or paused VM has a domain (and a QEMU) that booted with some args."""
    return _power_state(record.get("power_state")) in (PowerState.RUNNING, PowerState.PAUSED)


def _power_state(value: Any) -> PowerState:
    """XAPI capitalises power states on the wire (``Running``); anything unexpected is UNKNOWN."""
    try:
        return PowerState(str(value).lower())
    except ValueError:
        return PowerState.UNKNOWN


def _already_halted(exc: HypervisorError) -> bool:
    """VM_BAD_POWER_STATE [vm, expected, actual] with actual 'halted': the stop the caller wanted is done."""
    return exc.code == codes.VM_BAD_POWER_STATE and len(exc.details) > 2 and str(exc.details[2]).lower() == "halted"

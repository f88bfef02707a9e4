"""The ``xe:`` backend: the xe CLI on a XCP-ng/XenServer dom0, run as a subprocess.

Every call is an argument list (never a shell, so a value is one argv element whatever it holds), has a
timeout, and inherits the caller's environment (plus ``env``, which tests use to point the stand-in at a
simulated host). xe's text formats live in :mod:`vgpu.hypervisor.xe_format`; its errors become
:mod:`vgpu.hypervisor.codes` codes and sentences, so nothing but a HypervisorError leaves this module.

The listing is one ``xe vm-list`` whose ``platform`` column prints the map as ``key: value; key: value``
with no escaping (``--minimal`` cannot help: it prints only a record's first field), so a value holding
``"; word: "`` reads as two entries. The device-model args are taken from that column only when
:func:`xe_format.read_key` finds the text certain (no args key at all, or the args alone in the map); every
other VM's args are read exactly with ``vm-param-get param-key=``, several at a time. A real host's VMs all
have other platform keys (timeoffset, acpi, ...), so there every VM with args costs that read: a scan one
process per such VM, ``describe_vm`` one. ``describe_vm_best_reading`` skips it and says its args are a guess
(:func:`xe_format.best_reading`): a reconfigure's plan takes that only for a running VM it is to restart,
whose args are read exactly once it is stopped, so such a reconfigure costs 5 xe processes (``vm-list``,
``vm-shutdown``, ``vm-param-get``, ``vm-param-set``, ``vm-start``); every other plan reads them exactly.

xe prints names raw too, line breaks included, so a VM's name can print lines that read as its own fields or
as other VMs. A second call, ``xe vm-list --minimal``, gives the UUIDs the host has exactly, and
:func:`xe_format.vouch` says which records can be taken as printed; a VM whose record cannot (its name or map
held such lines, or another record claims its UUID) has each field read with ``vm-param-get``. So a scan
costs two xe calls plus one per VM carrying args among other platform keys (three per VM whose record was
tampered with), and the args written back are always read exactly first.

What a running VM booted with is not in xapi's records on a current host (``last-boot-record`` stays empty:
see :mod:`vgpu.hypervisor.xenstore`), so it is read from dom0's xenstore, where xenopsd wrote the platform
map each domain was started with: one ``xenstore-ls`` per listing. A VM running on another host of the pool,
one with two domains here in a listing (which does not read dom-id, so cannot say which is live), or a dom0
whose xenstore cannot be read, gives None (unknown). ``current-operations`` is xe's own field.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
from typing import Callable, Mapping, Sequence, TypeVar

import attrs

from ..basics import UUID_PATTERN
from ..devargs import FW_CFG_NAME  # the name of vgpu's segment, to count in a map
from ..errors import HypervisorError
from ..models import HostVM, PowerState
from . import codes, xe_format
from .base import DEFAULT_ARGS_KEY
from .xe_format import XeFailure
from .xenstore import Xenstore

XE_FAILED = "XE_FAILED"  # xe failed in a way no code describes: its first line of stderr is the sentence
INVALID_VALUE = "INVALID_VALUE"

_GUESTS = ("is-control-domain=false", "is-a-template=false", "is-a-snapshot=false")
_LISTED = frozenset({"uuid", "name-label", "power-state", "platform"})
_DESCRIBED = _LISTED | {"dom-id"}
_LIST_ARGS = ("vm-list", *_GUESTS, "params=uuid,name-label,power-state,platform")
_UUIDS_ARGS = ("vm-list", *_GUESTS, "params=uuid", "--minimal")  # exact: a UUID holds no comma or line break
_DESCRIBE_PARAMS = "params=uuid,name-label,power-state,platform,dom-id"
_UUID = re.compile(UUID_PATTERN, re.IGNORECASE)
# xe sends its arguments to xapi as newline-separated lines (newcli.ml), and argv cannot hold NUL.
_UNSENDABLE = ("\n", "\r", "\0")
EXACT_READS_AT_ONCE = 8  # VMs read exactly at once (vm-param-get) while a listing reads what it cannot vouch for
_T = TypeVar("_T")


@attrs.frozen
class _Output:
    returncode: int
    stdout: str
    stderr: str


def _never(failure: XeFailure) -> bool:
    return False


def _key_missing(failure: XeFailure) -> bool:
    return failure.code == xe_format.KEY_NOT_IN_MAP


def _already_halted(failure: XeFailure) -> bool:
    return failure.code == codes.VM_BAD_POWER_STATE and failure.detail(2) == "halted"


def _has_domain(state: PowerState) -> bool:
    """A running or paused VM has a domain (and a QEMU) that booted with some args."""
    return state in (PowerState.RUNNING, PowerState.PAUSED)


def _value(printed: str) -> str:
    """What ``vm-param-get`` printed, without the one newline xe adds to the value."""
    return printed[:-1] if printed.endswith("\n") else printed


def _power(text: str) -> PowerState:
    try:
        return PowerState(text.strip().lower())
    except ValueError:
        return PowerState.UNKNOWN


class XeHost:
    """A XCP-ng/XenServer host driven through ``xe``. Implements :class:`vgpu.hypervisor.base.Hypervisor`.

    ``timeout`` bounds quick calls (listing, reads, writes); ``power_timeout`` bounds ``vm-start`` and a
    forced shutdown, which wait for the host to finish. A clean shutdown is bounded by its own deadline.
    """

    def __init__(
        self,
        xe_path: str = "xe",
        *,
        args_key: str = DEFAULT_ARGS_KEY,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        power_timeout: float = 600.0,
        xenstore_ls: str = "xenstore-ls",
    ) -> None:
        if not args_key or "=" in args_key or any(part in args_key for part in (*_UNSENDABLE, "; ", ": ")):
            # "; " and ": " too: xe prints the map unescaped, and a key holding them could not be found in it
            raise HypervisorError(INVALID_VALUE, f"invalid platform key {args_key!r} for the device-model args: it must be non-empty, without '=', '; ', ': ' or line breaks")
        self.xe_path = xe_path
        self.args_key = args_key
        self.env = dict(env or {})
        self.timeout = timeout
        self.power_timeout = power_timeout
        self.xenstore = Xenstore(xenstore_ls, env=self.env, timeout=timeout)
        self.uri = "xe:" if xe_path == "xe" else f"xe:{xe_path}"

    # --- the protocol ------------------------------------------------------------------------------------

    def list_vms(self) -> list[HostVM]:
        records = xe_format.parse_records(self._call(_LIST_ARGS))
        # After the listing: a VM created in between is not in it, and one deleted in between is dropped.
        listing = xe_format.vouch(records, xe_format.parse_minimal(self._call(_UUIDS_ARGS)), _LISTED)
        args = {vm_uuid: xe_format.read_key(record["platform"], self.args_key) for vm_uuid, record in listing.records.items()}
        exact_args = self._each(self._args_if_present, [vm_uuid for vm_uuid, value in args.items() if value is None])
        found = self._each(self._vm_exactly, [vm_uuid for vm_uuid in listing.uuids if vm_uuid not in listing.records])
        for vm_uuid, record in listing.records.items():
            value = args[vm_uuid] if args[vm_uuid] is not None else exact_args.get(vm_uuid)
            if value is not None:  # None: deleted between the listing and the exact read
                found[vm_uuid] = HostVM(vm_uuid, record["name-label"], _power(record["power-state"]), value)
        listed = [found[vm_uuid] for vm_uuid in listing.uuids if vm_uuid in found]
        if not any(_has_domain(vm.power_state) for vm in listed):
            return listed
        booted = self.xenstore.booted_args(self.args_key) or {}
        return [attrs.evolve(vm, booted_args=booted.get(vm.uuid.lower())) if _has_domain(vm.power_state) else vm
                for vm in listed]

    def describe_vm(self, vm_uuid: str) -> HostVM:
        """One ``xe vm-list uuid=…`` (plus, for a running VM, one ``xenstore-ls`` of its domain), and one
        ``vm-param-get`` of the args when the listing cannot say them for sure (a real host's VMs: see the
        module's docstring). A record that does not read cleanly (a name holding lines shaped like fields)
        is read exactly instead."""
        seen, exact = self.describe_vm_best_reading(vm_uuid)
        return seen if exact else self._with_exact_args(seen, vm_uuid)

    def _with_exact_args(self, seen: HostVM, vm_uuid: str) -> HostVM:
        args = self._args_if_present(vm_uuid)
        if args is None:  # deleted since the listing
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        return attrs.evolve(seen, device_model_args=args)

    def describe_vm_best_reading(self, vm_uuid: str) -> tuple[HostVM, bool]:
        """:meth:`describe_vm` without its exact read of the args (see hypervisor.base.describe_best_reading),
        and whether the args are exact: :func:`xe_format.best_reading` of the listed map, False when that is
        a guess."""
        records = xe_format.parse_records(self._call(["vm-list", self._uuid_arg(vm_uuid), _DESCRIBE_PARAMS], vm_uuid))
        listing = xe_format.vouch(records, [vm_uuid.lower()], _DESCRIBED)
        record = listing.records.get(vm_uuid.lower())
        if record is None:
            return self._described_exactly(vm_uuid, listed=bool(listing.uuids)), True
        platform = record["platform"]
        exact = xe_format.read_key(platform, self.args_key) is not None
        guess = xe_format.best_reading(platform, self.args_key)
        host_vm = HostVM(record["uuid"], record["name-label"], _power(record["power-state"]), guess)
        if not exact and platform.count(FW_CFG_NAME) != guess.count(FW_CFG_NAME):
            # The guess leaves out a vgpu segment the map holds (args with "; word: " before it): a change planned
            # on it would stop the VM only to find another segment once it is stopped and refuse, every time.
            host_vm, exact = self._with_exact_args(host_vm, vm_uuid), True
        domid = record["dom-id"].strip()
        if not _has_domain(host_vm.power_state) or not domid.isdigit():
            return host_vm, exact
        booted = self.xenstore.booted_args(self.args_key, vm_uuid, int(domid))
        return attrs.evolve(host_vm, booted_args=None if booted is None else booted.get(vm_uuid.lower())), exact

    def power_state(self, vm_uuid: str) -> PowerState:
        return _power(self._call(["vm-param-get", self._uuid_arg(vm_uuid), "param-name=power-state"], vm_uuid))

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        args = ["vm-shutdown", self._uuid_arg(vm_uuid)]
        output = self._run(args, timeout)
        if output is None:  # killed at the deadline; a forced shutdown cancels xapi's pending clean one
            return False
        _, failure = self._check(output, args, vm_uuid,
                                 lambda f: (halted_ok and _already_halted(f)) or f.code == xe_format.VM_SHUTDOWN_TIMEOUT)
        return failure is None or failure.code != xe_format.VM_SHUTDOWN_TIMEOUT

    def hard_shutdown(self, vm_uuid: str) -> bool:
        # There is no vm-force-shutdown; forcing a halted VM is VM_BAD_POWER_STATE, which means it is stopped.
        _, halted = self._attempt(["vm-shutdown", self._uuid_arg(vm_uuid), "--force"], vm_uuid, self.power_timeout,
                                  _already_halted)
        return halted is None

    def start(self, vm_uuid: str) -> None:
        self._call(["vm-start", self._uuid_arg(vm_uuid)], vm_uuid, self.power_timeout)

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        domid = self._call(["vm-param-get", self._uuid_arg(vm_uuid), "param-name=dom-id"], vm_uuid).strip()
        if not domid.isdigit():  # -1: no domain (halted)
            return None
        booted = self.xenstore.booted_args(self.args_key, vm_uuid, int(domid))
        return None if booted is None else booted.get(vm_uuid.lower())

    def booted_after_start(self, vm_uuid: str) -> str | None:
        """:meth:`booted_device_model_args` of a VM just started (so known to exist): one ``xenstore-ls``
        of every domain, no xe process. None when no domain here is the VM's, several are (a leftover
        domain beside the new one: without xe's dom-id, xenstore cannot say which is live), or xenstore cannot
        be read."""
        booted = self.xenstore.booted_args(self.args_key, vm_uuid)
        return None if booted is None else booted.get(vm_uuid.lower())

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        text = self._call(["vm-param-get", self._uuid_arg(vm_uuid), "param-name=current-operations"], vm_uuid)
        return tuple(op for op in text.strip().split("; ") if op)  # xe joins a set with "; "

    def get_device_model_args(self, vm_uuid: str) -> str:
        args = ["vm-param-get", self._uuid_arg(vm_uuid), "param-name=platform", f"param-key={self.args_key}"]
        value, missing = self._attempt(args, vm_uuid, None, _key_missing)
        return "" if missing else _value(value)

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        if any(char in value for char in _UNSENDABLE):
            raise HypervisorError(INVALID_VALUE, "device-model arguments cannot hold line breaks or NUL characters: xe cannot pass them to the host")
        if value:
            self._call(["vm-param-set", self._uuid_arg(vm_uuid), f"platform:{self.args_key}={value}"], vm_uuid)
            return
        args = ["vm-param-remove", self._uuid_arg(vm_uuid), "param-name=platform", f"param-key={self.args_key}"]
        self._attempt(args, vm_uuid, None, _key_missing)  # absent already: done

    def reopen(self) -> "XeHost":
        return XeHost(self.xe_path, args_key=self.args_key, env=self.env, timeout=self.timeout,
                      power_timeout=self.power_timeout, xenstore_ls=self.xenstore.ls_path)

    def close(self) -> None:
        """Nothing to release: every call is its own xe process and xapi session."""

    def __repr__(self) -> str:
        return f"XeHost({self.xe_path!r})"

    # --- listing -----------------------------------------------------------------------------------------

    def _described_exactly(self, vm_uuid: str, listed: bool) -> HostVM:
        """describe_vm for a VM whose record did not read cleanly: every field read on its own."""
        host_vm = self._vm_exactly(vm_uuid) if listed else None
        if host_vm is None:  # vm-list filters: an unknown UUID lists nothing
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        if not _has_domain(host_vm.power_state):
            return host_vm
        return attrs.evolve(host_vm, booted_args=self.booted_device_model_args(vm_uuid))

    def _vm_exactly(self, vm_uuid: str) -> HostVM | None:
        """A VM whose listed record cannot be trusted (its name or map held lines shaped like xe's fields),
        read with one vm-param-get per field, each printing one raw value; None when it is gone."""
        try:
            name = _value(self._call(["vm-param-get", self._uuid_arg(vm_uuid), "param-name=name-label"], vm_uuid))
            state = self.power_state(vm_uuid)
            args = self.get_device_model_args(vm_uuid)
        except HypervisorError as exc:
            if exc.code == codes.UUID_INVALID:
                return None
            raise
        return HostVM(vm_uuid, name, state, args)

    def _each(self, read: Callable[[str], _T | None], vm_uuids: list[str]) -> dict[str, _T]:
        """``read`` of each VM (each its own xe processes, so several run at once); a VM it finds gone
        (None: deleted since the listing) is left out."""
        if not vm_uuids:
            return {}
        with concurrent.futures.ThreadPoolExecutor(min(EXACT_READS_AT_ONCE, len(vm_uuids)), "vgpu-xe") as pool:
            reads = {vm_uuid: pool.submit(read, vm_uuid) for vm_uuid in vm_uuids}
            found = {vm_uuid: future.result() for vm_uuid, future in reads.items()}
        return {vm_uuid: value for vm_uuid, value in found.items() if value is not None}

    def _args_if_present(self, vm_uuid: str) -> str | None:
        try:
            return self.get_device_model_args(vm_uuid)
        except HypervisorError as exc:
            if exc.code == codes.UUID_INVALID:
                return None
            raise

    # --- running xe --------------------------------------------------------------------------------------

    def _uuid_arg(self, vm_uuid: str) -> str:
        # Checked here because xe would read a line break in an argument as a second argument.
        if not _UUID.fullmatch(vm_uuid):
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        return f"uuid={vm_uuid}"

    def _call(self, args: Sequence[str], vm_uuid: str | None = None, timeout: float | None = None) -> str:
        """xe's stdout; any failure is raised as a HypervisorError."""
        stdout, _ = self._attempt(args, vm_uuid, timeout, _never)
        return stdout

    def _attempt(
        self, args: Sequence[str], vm_uuid: str | None, timeout: float | None, accept: Callable[[XeFailure], bool]
    ) -> tuple[str, XeFailure | None]:
        """(stdout, None), or ("", failure) for a failure ``accept`` allows; any other failure is raised."""
        limit = self.timeout if timeout is None else timeout
        output = self._run(args, limit)
        if output is None:
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"'xe {args[0]}' did not answer within {limit:g} seconds"])
        return self._check(output, args, vm_uuid, accept)

    def _check(
        self, output: _Output, args: Sequence[str], vm_uuid: str | None, accept: Callable[[XeFailure], bool]
    ) -> tuple[str, XeFailure | None]:
        if output.returncode == 0:
            return output.stdout, None
        failure = xe_format.parse_error(output.stderr)
        if failure.code is not None and accept(failure):
            return "", failure
        raise self._error(failure, output.returncode, args, vm_uuid)

    def _error(self, failure: XeFailure, returncode: int, args: Sequence[str], vm_uuid: str | None) -> HypervisorError:
        if failure.code is None:
            sentence = failure.first_line or f"'xe {args[0]}' failed with exit status {returncode} and printed no message"
            return HypervisorError(XE_FAILED, sentence)
        details = failure.details
        if failure.code == codes.UUID_INVALID and vm_uuid:
            details = ("VM", vm_uuid)
        elif failure.code == codes.SESSION_AUTHENTICATION_FAILED and not details:
            details = ("root",)  # xe on dom0 logs in as root unless told otherwise
        elif failure.code == codes.HOST_UNREACHABLE:
            details = (f"xe could not talk to xapi ({failure.first_line})",)
        elif failure.code in codes.NAMED_OBJECTS:  # a pool member or SR: named, never by its reference
            index = codes.NAMED_OBJECTS[failure.code][0]
            details = tuple(xe_format.object_name(value) if at == index else value for at, value in enumerate(details))
        return codes.host_error(failure.code, details, vm_uuid)

    def _run(self, args: Sequence[str], timeout: float) -> _Output | None:
        """Run xe; None when it was still running at ``timeout`` (it is then killed, with anything it started)."""
        argv = [self.xe_path, *args]
        env = {**os.environ, **self.env} if self.env else None
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
            )
        except OSError as exc:
            raise codes.host_error(codes.HOST_UNREACHABLE, [self._cannot_run(exc)]) from None
        try:
            stdout, stderr = process.communicate(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            self._kill(process)
            return None
        except BaseException:  # interrupted: leave no xe behind
            self._kill(process)
            raise
        return _Output(process.returncode, stdout.decode("utf-8", "surrogateescape"), stderr.decode("utf-8", "replace"))

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        # xe runs in its own session, so its process group is ours to end (stunnel helpers included).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # something outside the group still holds the pipes: stop reading
            process.wait()

    def _cannot_run(self, exc: OSError) -> str:
        if isinstance(exc, FileNotFoundError):
            return f"the xe command was not found ('{self.xe_path}'); run on a XCP-ng/XenServer dom0 or give its path as xe:/path/to/xe"
        if isinstance(exc, PermissionError):
            return f"permission denied running '{self.xe_path}'"
        return f"could not run '{self.xe_path}': {exc.strerror or exc}"

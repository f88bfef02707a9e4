"""The libvirt backend (``qemu:///system`` or any libvirt URI), over libvirt-python.

The device-model arguments are the domain's ``<qemu:commandline>`` ``<qemu:arg>`` entries, shown to the
protocol as one string (see :mod:`vgpu.hypervisor.libvirt_xml` for the exact, reversible form). They are
read from, and written back into, the *inactive* definition, so a change takes effect at the next start,
as it does on XAPI, and a redefinition from that XML keeps the UUID and everything else. A domain that
keeps vgpu's blob as libvirt's own fw_cfg entry (``<sysinfo type='fwcfg'>``) shows it first among them,
as libvirt hands it to QEMU, and has it written back there (:mod:`vgpu.hypervisor.libvirt_fwcfg`).

What a running domain booted with is its *live* definition (``XMLDesc(0)`` of an active domain): libvirt
builds it from the inactive one when the domain starts, and a later ``defineXML`` changes only the
inactive one, so the live ``<qemu:commandline>`` is what this QEMU was started with. What libvirt is still
doing to a domain comes from its state (``shutdown``: being shut down) and its control info (a job or a
monitor command under way). A shutdown request the guest has not acted on yet shows in neither, so for an
active domain with nothing shown the answer is None (cannot tell), never "nothing under way".

Cost of :meth:`LibvirtHost.list_vms`: one ``getAllDomainStats`` call brings every domain and its state;
the arguments need each domain's XML, one more call per domain, two for an active one (about 0.1 ms each
on the local socket here, so about 1 s for 10,000 domains; over ``qemu+ssh`` each call is a network round
trip). libvirt has no call that returns many domains' XML at once.

The connection is opened on first use, not when the host object is made: a command that can answer from
the database alone (``status``, ``show-vm``) still answers when libvirtd is down.

libvirt errors become :class:`~vgpu.errors.HypervisorError` with the nearest XAPI-style code of
:mod:`vgpu.hypervisor.codes`, so the sentence a person reads is the same whichever backend failed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from ..errors import HostUnreachable, HypervisorError, InvalidValue
from ..models import HostVM, PowerState
from . import codes, libvirt_fwcfg, libvirt_xml

try:
    import libvirt
except ImportError:  # the backend is optional: the other backends work without libvirt-python
    libvirt = None
else:
    # libvirt's default handler prints every error to stderr; the library never prints, and every
    # error reaches the caller as an exception anyway.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

MISSING_MODULE = "libvirt-python is not installed; pip install 'vgpu-admin[libvirt]'"
RESEND_EVERY = 3.0  # seconds: a shutdown request that reaches a guest still booting is lost, so ask again
POLL_EVERY = 0.2  # seconds between power-state checks while waiting for a guest to stop


class LibvirtHost:
    """A libvirt host. Implements :class:`vgpu.hypervisor.base.Hypervisor`; connects on first use."""

    args_quoted = True  # the args string is libvirt_xml.join_args of the <qemu:arg> list

    def __init__(self, uri: str = "qemu:///system") -> None:
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._closed = False

    # --- reading --------------------------------------------------------------------------------------

    def list_vms(self) -> list[HostVM]:
        with _translated():
            stats = self._connection().getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            # One more call for all of them, not one per domain: the few that have no stored definition.
            transient = {dom.UUIDString() for dom in self._connection().listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
        vms = (self._host_vm(dom, fields.get("state.state"), dom.UUIDString() in transient)
               for dom, fields in stats if dom.ID() != 0)  # 0: Xen's dom0
        return [vm for vm in vms if vm is not None]

    def _host_vm(self, dom: libvirt.virDomain, state: int | None, transient: bool) -> HostVM | None:
        try:
            args = _inactive_args(dom)
            power = _power_of(dom, state)
            booted = _live_args(dom) if _has_domain(state) else _saved_args(dom) if power is PowerState.SUSPENDED else None
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None  # a transient domain that went away since the listing
            raise _host_error(exc) from exc
        return HostVM(dom.UUIDString().lower(), dom.name(), power, args, booted, transient=transient)

    def describe_vm(self, vm_uuid: str) -> HostVM:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            state = dom.state()[0]
            transient = not dom.isPersistent()
        host_vm = self._host_vm(dom, state, transient)
        if host_vm is None:  # a transient domain that went away since the lookup
            raise codes.host_error(codes.UUID_INVALID, [vm_uuid], vm_uuid)
        return host_vm

    def power_state(self, vm_uuid: str) -> PowerState:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            return _power_of(dom, dom.state()[0])

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            state = dom.state()[0]
            if _has_domain(state):
                return _live_args(dom)
            return _saved_args(dom) if _power_of(dom, state) is PowerState.SUSPENDED else None

    def booted_after_start(self, vm_uuid: str) -> str | None:
        """What a domain just started booted with (see :func:`vgpu.hypervisor.base.booted_after_start`); None
        unless it runs: paused right after its start (virsh suspend, a watchdog), it is not running, and the
        caller then asks its power state."""
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            return _live_args(dom) if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING else None

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            state = dom.state()[0]
            if state == libvirt.VIR_DOMAIN_SHUTOFF:
                return ()  # a job on an inactive domain (a start) shows only once it runs
            operations = ["shutdown"] if state == libvirt.VIR_DOMAIN_SHUTDOWN else []
            control = dom.controlInfo()[0]
            if control == libvirt.VIR_DOMAIN_CONTROL_JOB:
                operations.append("job")  # a migration, save, dump or snapshot: virsh domjobinfo names it
            elif control == libvirt.VIR_DOMAIN_CONTROL_OCCUPIED:
                operations.append("monitor command")
        # libvirt keeps no record of a shutdown request (the power button) that the guest is still working
        # on: the domain stays "running" with no job until the guest powers off. So an active domain with
        # nothing shown may yet halt by itself: that is "cannot tell", not "nothing".
        return tuple(operations) or None

    def get_device_model_args(self, vm_uuid: str) -> str:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            return _inactive_args(dom)

    # --- changing -------------------------------------------------------------------------------------

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._define_args(vm_uuid, value, None)

    def set_device_model_args_if_unchanged(self, vm_uuid: str, value: str, expected: str) -> str | None:
        """Write ``value`` unless the domain's args are no longer ``expected``, the ones it was computed from:
        None when written (or already ``value``), else the args found, nothing written. The whole <qemu:arg>
        list is replaced, so a value computed from args read before an admin's virsh edit would throw the edit
        away; the definition is read before defining anyway, so the comparison costs no call (see
        :func:`vgpu.hypervisor.base.set_args_if_unchanged`). libvirt has no compare-and-define: an edit in the
        microseconds between that read and the define is still overwritten."""
        return self._define_args(vm_uuid, value, expected)

    def args_if_changed(self, vm_uuid: str, expected: str) -> str | None:
        """The domain's args where they are no longer ``expected``, else None (see
        :func:`vgpu.hypervisor.base.args_if_changed`): one read of its definition, as a write would make."""
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            found = _inactive_args(dom)
        return None if found == expected else found

    def _define_args(self, vm_uuid: str, value: str, expected: str | None) -> str | None:
        argv = _argv(value)
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            # SECURE keeps secrets (a VNC password, say) that the plain XML leaves out and a redefinition would lose.
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
            found = libvirt_fwcfg.argv_of(xml)
            if found == argv:
                return None
            if expected is not None and libvirt_xml.join_args(found) != expected:
                return libvirt_xml.join_args(found)
            new_xml = libvirt_fwcfg.with_argv(xml, argv)  # vgpu's blob back into a fw_cfg entry, if it has one
            if not dom.isPersistent():
                raise codes.host_error(codes.VM_IS_TRANSIENT, [vm_uuid], vm_uuid)
            self._connection().defineXML(new_xml)
        return None

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        dom = self._domain(vm_uuid)
        deadline = time.monotonic() + timeout
        resend_at = 0.0
        with _translated(vm_uuid):
            _refuse_transient(dom, vm_uuid)
            power = _power_state(dom.state()[0])
            if power is PowerState.HALTED:
                _refuse_saved(dom, vm_uuid, PowerState.HALTED)
                if halted_ok:
                    return True
            if power in (PowerState.HALTED, PowerState.PAUSED, PowerState.SUSPENDED):
                # As XAPI: only a running VM is shut down cleanly (a paused guest never sees the request).
                raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, PowerState.RUNNING.value, power.value], vm_uuid)
            if not libvirt_xml.can_shut_down_cleanly(dom.XMLDesc(0)):
                raise codes.libvirt_lacks_clean_shutdown(vm_uuid)
            while (state := dom.state())[0] != libvirt.VIR_DOMAIN_SHUTOFF:
                now = time.monotonic()
                if resend_at > 0.0 and (now >= deadline or now >= resend_at):  # after a request
                    # Undefined since the request: pressing the power button again, or forcing it off after a
                    # False, would delete the domain when it halts (libvirt forgets a transient domain then).
                    _refuse_undefined_since_request(dom, vm_uuid)
                if now >= deadline:
                    return False
                if now >= resend_at:
                    _request_shutdown(dom)
                    resend_at = now + RESEND_EVERY
                time.sleep(min(POLL_EVERY, deadline - now))
            _refuse_saved(dom, vm_uuid, PowerState.HALTED)  # saved meanwhile (virsh managedsave): not shut down
            _refuse_shut_off_otherwise(vm_uuid, state[1])
        return True

    def is_transient(self, vm_uuid: str) -> bool:
        """The domain has no stored definition (see HostVM.transient); answered by libvirtd from memory."""
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            return not dom.isPersistent()

    def refusal_advice(self, vm_uuid: str, state: PowerState) -> str | None:
        """What frees a domain a change refuses for its power state, where libvirt's way is not the usual
        "resume it or shut it down": a managed save image (see :func:`_power_of`). None: the usual words."""
        if state is not PowerState.SUSPENDED:
            return None
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            return codes.LIBVIRT_FREE_SAVED if dom.hasManagedSaveImage(0) else None

    def hard_shutdown(self, vm_uuid: str) -> bool:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            _refuse_transient(dom, vm_uuid)
            if _is_off(dom):
                return False
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                # It stopped by itself between the check and the destroy: that is what was asked.
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or not _is_off(dom):
                    raise
                return False
        return True

    def start(self, vm_uuid: str) -> None:
        dom = self._domain(vm_uuid)
        with _translated(vm_uuid):
            _refuse_saved(dom, vm_uuid, PowerState.HALTED)  # it would resume the saved state, not boot with its args
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            raise self._start_error(exc, dom, vm_uuid) from exc

    def _start_error(self, exc: libvirt.libvirtError, dom: libvirt.virDomain, vm_uuid: str) -> HypervisorError:
        if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
            actual = self.power_state(vm_uuid).value
            return codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, PowerState.HALTED.value, actual], vm_uuid)
        error = _host_error(exc, vm_uuid)
        if error.code != codes.INTERNAL_ERROR:
            return error
        # error.details[0]: libvirt's message without its own "internal error: ", which our sentence's "could
        # not start the device emulator" already says
        return codes.host_error(codes.FAILED_TO_START_EMULATOR, [vm_uuid, dom.name(), error.details[0]], vm_uuid)

    # --- connection -----------------------------------------------------------------------------------

    def reopen(self) -> LibvirtHost:
        return LibvirtHost(self.uri)

    def close(self) -> None:
        conn, self._conn, self._closed = self._conn, None, True
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _connection(self) -> libvirt.virConnect:
        if self._closed:
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"the connection to {self.uri} was closed"])
        if self._conn is None:
            if libvirt is None:
                raise HostUnreachable(codes.HOST_UNREACHABLE, MISSING_MODULE, [MISSING_MODULE])
            with _translated():
                self._conn = libvirt.open(self.uri)
        return self._conn

    def _domain(self, vm_uuid: str) -> libvirt.virDomain:
        conn = self._connection()
        try:
            return conn.lookupByUUIDString(vm_uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):  # unknown, or not a UUID
                raise codes.host_error(codes.UUID_INVALID, [vm_uuid], vm_uuid) from exc
            raise _host_error(exc, vm_uuid) from exc


# --- helpers ------------------------------------------------------------------------------------------------


def _argv(value: str) -> list[str]:
    try:
        argv = libvirt_xml.split_args(value)
    except ValueError as exc:
        raise InvalidValue("device-model arguments", value, "QEMU arguments separated by spaces, with balanced quotes") from exc
    if libvirt_fwcfg.unstorable_outside_blobs(argv):
        raise InvalidValue("device-model arguments", value, libvirt_fwcfg.UNSTORABLE)
    return argv


def _args_of(domain_xml: str) -> str:
    """The domain's arguments as the protocol's string: its own fw_cfg entries for vgpu's blob, as libvirt
    passes them to QEMU, then its ``<qemu:arg>`` values (see :mod:`vgpu.hypervisor.libvirt_fwcfg`)."""
    return libvirt_xml.join_args(libvirt_fwcfg.argv_of(domain_xml))


def _inactive_args(dom: libvirt.virDomain) -> str:
    return _args_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _live_args(dom: libvirt.virDomain) -> str | None:
    """The arguments of the running domain's own definition: what its QEMU was started with. None when the
    domain stopped since its state was read (libvirt then gives the inactive definition, which has no id)."""
    xml = dom.XMLDesc(0)
    if libvirt_xml.domain_id(xml) is None:
        return None
    return _args_of(xml)


def _has_domain(state: int | None) -> bool:
    """Whether the domain has a QEMU process that booted with some arguments (running, paused, ...)."""
    return state is not None and state != libvirt.VIR_DOMAIN_SHUTOFF and _power_state(state) is not PowerState.UNKNOWN


def _refuse_undefined_since_request(dom: libvirt.virDomain, vm_uuid: str) -> None:
    """After a clean shutdown was requested: a domain undefined since is transient, and that request may
    still halt it, which deletes it. isPersistent() is answered by libvirtd from memory: cheap each time."""
    if not dom.isPersistent():
        raise codes.host_error(codes.VM_UNDEFINED_DURING_SHUTDOWN, [vm_uuid], vm_uuid)


def _refuse_transient(dom: libvirt.virDomain, vm_uuid: str) -> None:
    """A transient domain (no stored definition) is deleted when it stops: no stop of ours may end it."""
    if not dom.isPersistent():
        raise codes.host_error(codes.VM_IS_TRANSIENT, [vm_uuid], vm_uuid)


def _power_of(dom: libvirt.virDomain, state: int | None) -> PowerState:
    """The domain's power state; one that is off with a managed save image (``virsh managedsave``, or
    libvirt-guests at the host's shutdown) is suspended, as XAPI calls a VM whose next start resumes a saved
    state: that start does not boot, so it does not read the args written since."""
    power = _power_state(state)
    if power is PowerState.HALTED and dom.hasManagedSaveImage(0):
        return PowerState.SUSPENDED
    return power


def _saved_args(dom: libvirt.virDomain) -> str | None:
    """The arguments the saved state was booted with (kept in the image's definition): what the domain
    resumes with. None when libvirt cannot show that definition."""
    try:
        xml = dom.managedSaveGetXMLDesc(0)
    except libvirt.libvirtError:
        return None
    return _args_of(xml)


def _refuse_saved(dom: libvirt.virDomain, vm_uuid: str, needed: PowerState) -> None:
    if dom.hasManagedSaveImage(0):
        raise codes.libvirt_saved(vm_uuid, needed.value)


def _shut_off_how(reason: int) -> str | None:
    """libvirt's shut-off reason in words, for a domain that went off while its clean shutdown was awaited;
    None for VIR_DOMAIN_SHUTOFF_SHUTDOWN, the one reason that is the guest powering off (ACPI or agent).
    Any other is not a clean shutdown, though the domain is off: destroyed (virsh destroy), crashed (its
    QEMU died without the guest powering off), saved, migrated, reverted to a snapshot, failed, killed by
    libvirtd, or UNKNOWN (libvirtd lost sight of it, e.g. a QEMU that died while libvirtd restarted): a
    clean shutdown is said only when libvirt says so."""
    if reason == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN:
        return None
    return {
        libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "by being destroyed (virsh destroy)",
        libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "by crashing (its QEMU process ended without the guest powering off)",
        libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "by being migrated to another host",
        libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "by being saved (virsh save)",
        libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "by a failure libvirt reported",
        libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "by a revert to a snapshot",
        libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "by libvirtd itself",
    }.get(reason, "for a reason libvirt does not know")


def _refuse_shut_off_otherwise(vm_uuid: str, reason: int) -> None:
    """A domain found off after its clean shutdown was requested, but shut off by something else: an error,
    so that power.stop_vm reports it as a clean shutdown that failed while the VM halted anyway (``halted``,
    found halted; with forcing off, :func:`vgpu.power.halted_despite`), never "shut down cleanly"."""
    how = _shut_off_how(reason)
    if how is not None:
        raise codes.libvirt_shut_off_otherwise(vm_uuid, how)


def _is_off(dom: libvirt.virDomain) -> bool:
    return bool(dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF)  # bool(): libvirt-python is untyped


def _request_shutdown(dom: libvirt.virDomain) -> None:
    try:
        dom.shutdown()
    except libvirt.libvirtError as exc:
        # "domain is not running": it went off since the last look, which the caller's loop sees next.
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
            raise


def _power_state(state: int | None) -> PowerState:
    if libvirt is None or state is None:
        return PowerState.UNKNOWN
    return {
        libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,  # running, waiting on a resource
        libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.RUNNING,  # still running while it shuts down
        libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
        libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
        libvirt.VIR_DOMAIN_SHUTOFF: PowerState.HALTED,
        # NOSTATE and CRASHED: a crashed domain may still hold its QEMU process (on_crash=preserve)
    }.get(state, PowerState.UNKNOWN)


@contextlib.contextmanager
def _translated(vm_uuid: str | None = None) -> Iterator[None]:
    """Turn a libvirt error raised in the block into a HypervisorError with a sentence."""
    try:
        yield
    except HypervisorError:
        raise  # already a sentence (no connection, or libvirt-python missing: then there is no libvirtError)
    except libvirt.libvirtError as exc:
        raise _host_error(exc, vm_uuid) from exc


def _message(exc: libvirt.libvirtError) -> str:
    return exc.get_error_message() or str(exc)


def _host_error(exc: libvirt.libvirtError, vm_uuid: str | None = None) -> HypervisorError:
    """The nearest XAPI-style code for a libvirt error; libvirt's own message travels in the details."""
    code, origin, message = exc.get_error_code(), exc.get_error_domain(), _message(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN and vm_uuid is not None:  # undefined while we worked on it
        return codes.host_error(codes.UUID_INVALID, [vm_uuid], vm_uuid)
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC) or origin in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE):
        return codes.host_error(codes.HOST_UNREACHABLE, [message])
    if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED, libvirt.VIR_ERR_AUTH_UNAVAILABLE, libvirt.VIR_ERR_ACCESS_DENIED, libvirt.VIR_ERR_OPERATION_DENIED):
        return codes.host_error(codes.PERMISSION_DENIED, [message], vm_uuid)
    if code in (libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_ERR_AGENT_UNRESPONSIVE):
        return codes.host_error(codes.OPERATION_TIMED_OUT, [message], vm_uuid)
    # libvirt's own messages already read as sentences ("XML error: ...", "unsupported configuration: ..."); its
    # "internal error: ..." ones would say so twice after our "the host failed with an internal error: ".
    return codes.host_error(codes.INTERNAL_ERROR, [message.removeprefix("internal error: ")], vm_uuid)

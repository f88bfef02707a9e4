"""Host error codes and the sentences a person is shown for them.

XAPI's error codes (``VM_BAD_POWER_STATE``, ``VM_LACKS_FEATURE``, ...) are the lingua franca: the xe and
XenAPI backends receive them, the simulated host raises them, and the libvirt backend maps its own errors
onto the nearest one. One table here, so the same failure reads the same whichever backend met it.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..errors import ConfigError, HostUnreachable, HypervisorError, VgpuError

VM_BAD_POWER_STATE = "VM_BAD_POWER_STATE"
VM_LACKS_FEATURE = "VM_LACKS_FEATURE"
VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT = "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT"  # the guest did not take up the request
VM_SHUTDOWN_TIMEOUT = "VM_SHUTDOWN_TIMEOUT"  # the host's own deadline for a clean shutdown passed
UUID_INVALID = "UUID_INVALID"
HANDLE_INVALID = "HANDLE_INVALID"
FAILED_TO_START_EMULATOR = "FAILED_TO_START_EMULATOR"
INTERNAL_ERROR = "INTERNAL_ERROR"
SESSION_AUTHENTICATION_FAILED = "SESSION_AUTHENTICATION_FAILED"
HOST_IS_SLAVE = "HOST_IS_SLAVE"
OTHER_OPERATION_IN_PROGRESS = "OTHER_OPERATION_IN_PROGRESS"
HOST_UNREACHABLE = "HOST_UNREACHABLE"
# ours: the host was never contacted, since a setting it needs is unusable (no password and no terminal to ask
# at, an unsafe password file): not "unreachable", nor "could not be listed" (a host that answered with an error)
HOST_NOT_ASKED = "HOST_NOT_ASKED"
OPERATION_TIMED_OUT = "OPERATION_TIMED_OUT"
NO_HOSTS_AVAILABLE = "NO_HOSTS_AVAILABLE"
# What an admin meets starting or stopping a VM in a pool; parameters as xen-api's datamodel_errors.ml has them.
HOST_OFFLINE = "HOST_OFFLINE"  # [host]: the master cannot contact the member the VM is on (or is to run on)
HOST_NOT_LIVE = "HOST_NOT_LIVE"  # [] (or [host]): the member chosen to run the VM is not heard from
HOST_NOT_ENOUGH_FREE_MEMORY = "HOST_NOT_ENOUGH_FREE_MEMORY"  # [needed, available] in bytes, when a VM starts
VM_REQUIRES_SR = "VM_REQUIRES_SR"  # [vm, sr]: the member chosen to run the VM cannot reach a disk's SR
PERMISSION_DENIED = "PERMISSION_DENIED"
VM_IS_TRANSIENT = "VM_IS_TRANSIENT"  # libvirt: a domain with no stored definition to change
# ours (libvirt): a domain undefined after its clean shutdown was requested; it vanishes when it halts
VM_UNDEFINED_DURING_SHUTDOWN = "VM_UNDEFINED_DURING_SHUTDOWN"
# ours (libvirt): a domain found shut off while its clean shutdown was awaited, but by something else (destroyed,
# crashed, ...), as libvirt's shut-off reason says: not a clean shutdown, though the VM is halted
VM_SHUT_OFF_OTHERWISE = "VM_SHUT_OFF_OTHERWISE"
# ours: a VM whose start the host said failed runs all the same, so the change it may run with is not undone
VM_RUNNING_AFTER_FAILED_START = "VM_RUNNING_AFTER_FAILED_START"
# ours: a VM whose start the host said failed (or outlived our wait) is still being started, so nothing is undone under it
VM_STARTING_AFTER_FAILED_START = "VM_STARTING_AFTER_FAILED_START"
MALFORMED_ANSWER = "MALFORMED_ANSWER"  # ours: the host answered, but not in its protocol's form
VM_ON_HOST_LEFT_OUT = "VM_ON_HOST_LEFT_OUT"  # ours: no host of a run narrowed by --host has the VM; another may
# ours: no host of the run has the VM, and it was last seen on a host the run does not have at all (taken out of
# [hosts]), which may still have it
VM_ON_HOST_NOT_CONFIGURED = "VM_ON_HOST_NOT_CONFIGURED"


# Details that are references to other objects: code -> (index, XenAPI class). A sentence names the object,
# never shows its reference (OpaqueRef:…, which means nothing to a person), so each backend puts the object's
# name there, or "" when it cannot have it: xe prints "<uuid> (<name-label>)" (xe_format.object_name reads
# it); the XenAPI backend asks <class>.get_name_label, one call made only when the error happens.
NAMED_OBJECTS: dict[str, tuple[int, str]] = {HOST_OFFLINE: (0, "host"), HOST_NOT_LIVE: (0, "host"), VM_REQUIRES_SR: (1, "SR")}
def failure_code(error: VgpuError, otherwise: str = HOST_UNREACHABLE) -> str:
    """The code of a host's failure, as a fleet reports the host: its own (a HypervisorError's),
    HOST_NOT_ASKED for a setting that kept it from being asked (a ConfigError), else ``otherwise``."""
    if isinstance(error, HypervisorError):
        return error.code
    return HOST_NOT_ASKED if isinstance(error, ConfigError) else otherwise


_REF_PREFIX = "OpaqueRef:"


def is_ref(value: object) -> bool:
    """A XenAPI object reference (``OpaqueRef:…``), which no sentence shows."""
    return str(value).startswith(_REF_PREFIX)


# What narrowed a run to some of its configured hosts, as vgpu.config.Settings.narrowed_by words it (settings
# load no hypervisor code, so it spells them too): the flag, the environment variable, or a config file's host key
NARROWED_BY_FLAG, NARROWED_BY_ENVIRONMENT, _NARROWED_BY_CONFIG = "--host", "VGPU_HOST", "host = in "


def widen_advice(narrowed_by: str, target: str) -> str:
    """How to ask a host the run leaves out (``target``: its label, or "naming its host"), as whatever narrowed
    the run (``narrowed_by``) can be undone: --host given on this command line, VGPU_HOST, or a config's host.
    --host wins over the other two, so it is always advice that can be followed."""
    if narrowed_by == NARROWED_BY_FLAG:
        return f"run without --host, or with --host {target}"
    return f"run with --host {target}, or {narrowing_undone(narrowed_by)}"


def narrowing_undone(narrowed_by: str) -> str:
    """What undoes a narrowing other than --host (``narrowed_by``): ``unset VGPU_HOST``, or ``take host = out of
    PATH``; ``run without --host`` for --host itself."""
    if narrowed_by == NARROWED_BY_FLAG:
        return "run without --host"
    if narrowed_by == NARROWED_BY_ENVIRONMENT:
        return "unset VGPU_HOST"
    return f"take host = out of {narrowed_by.removeprefix(_NARROWED_BY_CONFIG)}"


def left_out(members: str, others: str, vm_uuid: str, narrowed_by: str = NARROWED_BY_FLAG) -> HypervisorError:
    """VM_ON_HOST_LEFT_OUT for a VM no host of the run (of hosts ``members``) has, which may be on one of the
    hosts ``others`` the run leaves out (``narrowed_by`` left them out)."""
    return HypervisorError(VM_ON_HOST_LEFT_OUT, f"VM {vm_uuid} is on none of this run's hosts ({members}); it may be on "
                                                f"{others}, which this run leaves out ({narrowed_by}): "
                                                f"{widen_advice(narrowed_by, 'naming its host')}", [members, others])


def _detail(details: Sequence[str], index: int, default: str = "?") -> str:
    return str(details[index]) if len(details) > index and details[index] != "" else default


def _name(details: Sequence[str], index: int) -> str | None:
    """An object's name given as a detail; None when there is none (missing, empty, or a reference)."""
    value = _detail(details, index, "")
    return None if value == "" or is_ref(value) else value


def _amount(detail: object) -> str | None:
    """A number of bytes as a person reads it (``4.0 GiB``, ``1000 MiB``); None when it is not a number."""
    text = str(detail)
    if not text.isdigit():
        return None
    count = int(text)
    for unit, size, digits in (("GiB", 1 << 30, 1), ("MiB", 1 << 20, 0), ("KiB", 1 << 10, 0)):
        if count >= size:
            return f"{count / size:.{digits}f} {unit}"
    return f"{count} bytes"


def _offline(details: Sequence[str], subject: str) -> str:
    member = _name(details, 0)
    who = f"pool member {member}" if member else "a pool member"
    return f"{who} is offline: the pool master cannot contact it, so it cannot act on {subject}"


def _not_live(details: Sequence[str], subject: str) -> str:
    member = _name(details, 0)
    if member:
        return f"pool member {member} is not live: the pool master has not heard from it, so it cannot run {subject}"
    return f"the pool member chosen to run {subject} is not live: the pool master has not heard from it"


def _too_little_memory(details: Sequence[str], subject: str) -> str:
    said = f"not enough free memory on the host to start {subject}"
    amounts = [_amount(detail) for detail in details[:2]]
    if len(amounts) < 2 or None in amounts:  # xapi's host evacuation sends [vm ref] instead: no amounts to give
        return said
    return f"{said} (needs {amounts[0]}, {amounts[1]} free)"


def _requires_sr(details: Sequence[str], subject: str) -> str:
    sr = _name(details, 1)
    which = f'storage repository "{sr}"' if sr else "a storage repository"
    return f"{subject} needs {which} (one of its disks is there), which the pool member chosen to run it cannot reach"


# Codes whose words depend on what their details hold (a name or a reference, a number or not).
_WORDED: dict[str, Callable[[Sequence[str], str], str]] = {
    HOST_OFFLINE: _offline,
    HOST_NOT_LIVE: _not_live,
    HOST_NOT_ENOUGH_FREE_MEMORY: _too_little_memory,
    VM_REQUIRES_SR: _requires_sr,
}


# Code → sentence. {vm} reads "VM <uuid>" (or "the VM"); {0} {1} {2} are the error's details, and a missing
# detail reads "?" unless _MISSING_DETAIL gives the code a better word.
_SENTENCES = {
    VM_BAD_POWER_STATE: "{vm} is {2}, but the operation needs it {1}",
    VM_LACKS_FEATURE: "{vm} cannot shut down cleanly (no PV drivers or guest agent); only a forced stop works",
    VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT: "{vm} did not acknowledge the request to shut down",
    VM_SHUTDOWN_TIMEOUT: "{vm} did not finish shutting down before the host's own deadline",
    UUID_INVALID: "{vm} does not exist on the host",
    HANDLE_INVALID: "{vm} does not exist on the host",
    FAILED_TO_START_EMULATOR: "the host could not start the device emulator (QEMU) for {vm}: {2}",
    INTERNAL_ERROR: "the host failed with an internal error: {0}",
    SESSION_AUTHENTICATION_FAILED: "the host refused the login for user {0}: wrong user name or password",
    HOST_IS_SLAVE: "this host is a pool member, not the pool master; connect to the master at {0}",
    OTHER_OPERATION_IN_PROGRESS: "another operation is already running on {vm}; wait for it to finish and try again",
    HOST_UNREACHABLE: "cannot reach the host: {0}",
    HOST_NOT_ASKED: "the host was not asked: {0}",
    OPERATION_TIMED_OUT: "the host did not finish the operation on {vm} in time",
    NO_HOSTS_AVAILABLE: "no host in the pool has the resources to start {vm}",
    PERMISSION_DENIED: "the host refused the operation on {vm}: permission denied",
    VM_ON_HOST_LEFT_OUT: "{vm} is on none of this run's hosts ({0}); it may be on {1}, which this run leaves out "
                         "(--host): run without --host, or with --host naming its host",  # see left_out
    VM_ON_HOST_NOT_CONFIGURED: "{vm} is on none of this run's hosts ({0}); it was last seen on host {1}, which is not one "
                               "of this run's configured hosts (not in [hosts], nor given by --host), so it may still be "
                               "there: give that host again ({2}) to act on it, or, if it is gone for "
                               "good, 'vgpu-admin forget-host {1}'",
    MALFORMED_ANSWER: "the host's answer could not be understood ({0}); is it a XenServer/XCP-ng host, or a proxy in front of one?",
    VM_IS_TRANSIENT: "{vm} is transient (the host keeps no definition of it once it stops), so its arguments cannot "
                     "be changed and vgpu does not stop it; define it first (virsh define)",
    VM_SHUT_OFF_OTHERWISE: "{vm} was shut off {1}, not by its clean shutdown",
    VM_RUNNING_AFTER_FAILED_START: ("{vm} is {1}, though the host said its start failed: it may run with the "
                                    "change, so the change was not undone"),
    VM_STARTING_AFTER_FAILED_START: ("{vm} is still being started by the host ({1}), though its start was reported "
                                     "failed: it may come up with the change, so the change was not undone"),
    VM_UNDEFINED_DURING_SHUTDOWN: "{vm} was undefined after its clean shutdown was requested (it is transient now), "
                                  "so vgpu stopped repeating the request and does not force it off",
}


def give_again(label: str) -> str:
    """How a refusal tells the admin to give host ``label`` again: ``in [hosts], or --host gpu2=URI``; for a label
    kept apart once its name was given to another host (vgpu.locations.apart_label: ``gpu2@sim:/srv/b.json``,
    which no config can name), that host's URI under a label of the admin's choosing."""
    name, apart, identity = label.partition("@")
    if apart:
        return f"its URI {identity} under a label other than {name}, which names another host now: in [hosts], or --host LABEL=URI"
    return f"in [hosts], or --host {label}=URI"


# The same failure on KVM has another cause: a domain hears a clean shutdown through its ACPI power button or
# a guest agent, and PV drivers mean nothing there (install-libvirt.md gives this cause).
_LIBVIRT_LACKS_CLEAN_SHUTDOWN = "{vm} cannot shut down cleanly (ACPI off and no agent channel); only a forced stop works"
# libvirt's "suspended" is a managed save image, which only a start resumes (virsh resume is for a paused
# domain); install-libvirt.md says the same.
LIBVIRT_FREE_SAVED = ("start it and shut it down, or discard the saved state (virsh managedsave-remove), "
                      "then try again")
_MISSING_DETAIL = {FAILED_TO_START_EMULATOR: "no reason given", INTERNAL_ERROR: "no message", HOST_UNREACHABLE: "no answer"}


def sentence_for(code: str, details: Sequence[str] = (), vm: str | None = None) -> str:
    """A plain sentence for a host error code; ``vm`` names the VM when the caller knows it."""
    subject = f"VM {vm}" if vm else "the VM"
    if code in _WORDED:
        return _WORDED[code](details, subject)
    template = _SENTENCES.get(code)
    if template is None:
        shown = [str(detail) for detail in details if not is_ref(detail)]  # a reference names nothing to a person
        extra = f" ({', '.join(shown)})" if shown else ""
        return f"the host refused the operation on {subject}: {code}{extra}"
    missing = _MISSING_DETAIL.get(code, "?")
    return template.format(*(_detail(details, index, missing) for index in range(3)), vm=subject)


def libvirt_lacks_clean_shutdown(vm_uuid: str) -> HypervisorError:
    """VM_LACKS_FEATURE as the libvirt backend says it, naming libvirt's cause rather than XAPI's."""
    return HypervisorError(VM_LACKS_FEATURE, _LIBVIRT_LACKS_CLEAN_SHUTDOWN.format(vm=f"VM {vm_uuid}"), [vm_uuid])


def libvirt_shut_off_otherwise(vm_uuid: str, how: str) -> HypervisorError:
    """VM_SHUT_OFF_OTHERWISE: the domain went off while its clean shutdown was awaited, ``how`` (libvirt's
    shut-off reason in words: "by being destroyed"), not by the guest powering off."""
    return host_error(VM_SHUT_OFF_OTHERWISE, [vm_uuid, how], vm_uuid)


def libvirt_saved(vm_uuid: str, needed: str) -> HypervisorError:
    """VM_BAD_POWER_STATE for a libvirt domain with a managed save image, saying what frees it."""
    return HypervisorError(VM_BAD_POWER_STATE, f"VM {vm_uuid} is suspended (its next start resumes a saved state), "
                           f"but the operation needs it {needed}; {LIBVIRT_FREE_SAVED}", [vm_uuid, needed, "suspended"])


def left_out_last_seen(members: str, label: str, vm_uuid: str, narrowed_by: str = NARROWED_BY_FLAG) -> HypervisorError:
    """VM_ON_HOST_LEFT_OUT for a VM last seen on host ``label``, which the run (of hosts ``members``) leaves out
    (``narrowed_by`` left it out)."""
    return HypervisorError(VM_ON_HOST_LEFT_OUT, f"VM {vm_uuid} is on none of this run's hosts ({members}); it was last "
                                                f"seen on host {label}, which this run leaves out ({narrowed_by}), so it "
                                                f"may still be there: {widen_advice(narrowed_by, label)}", [members, label])


def vm_missing(error: HypervisorError) -> bool:
    """The host has no such VM (never had it, or it was deleted): XAPI says UUID_INVALID for a UUID it does
    not know and HANDLE_INVALID for a reference to a VM deleted since."""
    return error.code in (UUID_INVALID, HANDLE_INVALID)


def host_error(code: str, details: Sequence[str] = (), vm: str | None = None) -> HypervisorError:
    """The HypervisorError (or HostUnreachable) for a host error code, with its sentence."""
    cls = HostUnreachable if code == HOST_UNREACHABLE else HypervisorError
    return cls(code, sentence_for(code, details, vm), details)

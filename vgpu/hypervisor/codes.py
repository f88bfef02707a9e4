"""Host error codes and the sentences a person is shown for them.

XAPI's error codes (``VM_BAD_POWER_STATE``, ``VM_LACKS_FEATURE``, ...) are the lingua franca: the xe and
XenAPI backends receive them, the simulated host raises them, and the libvirt backend maps its own errors
onto the nearest one. One table here, so the same failure reads the same whichever backend met it.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import HostUnreachable, HypervisorError

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
OPERATION_TIMED_OUT = "OPERATION_TIMED_OUT"
NO_HOSTS_AVAILABLE = "NO_HOSTS_AVAILABLE"
PERMISSION_DENIED = "PERMISSION_DENIED"
VM_IS_TRANSIENT = "VM_IS_TRANSIENT"  # libvirt: a domain with no stored definition to change
# ours (libvirt): a domain undefined after its clean shutdown was requested; it vanishes when it halts
VM_UNDEFINED_DURING_SHUTDOWN = "VM_UNDEFINED_DURING_SHUTDOWN"
MALFORMED_ANSWER = "MALFORMED_ANSWER"  # ours: the host answered, but not in its protocol's form
VM_ON_HOST_LEFT_OUT = "VM_ON_HOST_LEFT_OUT"  # ours: no host of a run narrowed by --host has the VM; another may
# ours: no host of the run has the VM, and it was last seen on a host the run does not have at all (taken out of
# [hosts]), which may still have it
VM_ON_HOST_NOT_CONFIGURED = "VM_ON_HOST_NOT_CONFIGURED"


def _detail(details: Sequence[str], index: int, default: str = "?") -> str:
    return str(details[index]) if len(details) > index and details[index] != "" else default


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
    OPERATION_TIMED_OUT: "the host did not finish the operation on {vm} in time",
    NO_HOSTS_AVAILABLE: "no host in the pool has the resources to start {vm}",
    PERMISSION_DENIED: "the host refused the operation on {vm}: permission denied",
    VM_ON_HOST_LEFT_OUT: "{vm} is on none of this run's hosts ({0}); it may be on {1}, which this run leaves out: "
                         "run without --host, or with --host naming its host",
    VM_ON_HOST_NOT_CONFIGURED: "{vm} is on none of this run's hosts ({0}); it was last seen on host {1}, which is not one "
                               "of this run's configured hosts (not in [hosts], nor given by --host), so it may still be "
                               "there: give that host again (in [hosts], or --host {1}=URI) to act on it",
    MALFORMED_ANSWER: "the host's answer could not be understood ({0}); is it a XenServer/XCP-ng host, or a proxy in front of one?",
    VM_IS_TRANSIENT: "{vm} is transient (the host keeps no definition of it once it stops), so its arguments cannot "
                     "be changed and vgpu does not stop it; define it first (virsh define)",
    VM_UNDEFINED_DURING_SHUTDOWN: "{vm} was undefined after its clean shutdown was requested (it is transient now), "
                                  "so vgpu stopped repeating the request and does not force it off",
}
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
    template = _SENTENCES.get(code)
    if template is None:
        extra = f" ({', '.join(str(d) for d in details)})" if details else ""
        return f"the host refused the operation on {subject}: {code}{extra}"
    missing = _MISSING_DETAIL.get(code, "?")
    return template.format(*(_detail(details, index, missing) for index in range(3)), vm=subject)


def libvirt_lacks_clean_shutdown(vm_uuid: str) -> HypervisorError:
    """VM_LACKS_FEATURE as the libvirt backend says it, naming libvirt's cause rather than XAPI's."""
    return HypervisorError(VM_LACKS_FEATURE, _LIBVIRT_LACKS_CLEAN_SHUTDOWN.format(vm=f"VM {vm_uuid}"), [vm_uuid])


def libvirt_saved(vm_uuid: str, needed: str) -> HypervisorError:
    """VM_BAD_POWER_STATE for a libvirt domain with a managed save image, saying what frees it."""
    return HypervisorError(VM_BAD_POWER_STATE, f"VM {vm_uuid} is suspended (its next start resumes a saved state), "
                           f"but the operation needs it {needed}; {LIBVIRT_FREE_SAVED}", [vm_uuid, needed, "suspended"])


def vm_missing(error: HypervisorError) -> bool:
    """The host has no such VM (never had it, or it was deleted): XAPI says UUID_INVALID for a UUID it does
    not know and HANDLE_INVALID for a reference to a VM deleted since."""
    return error.code in (UUID_INVALID, HANDLE_INVALID)


def host_error(code: str, details: Sequence[str] = (), vm: str | None = None) -> HypervisorError:
    """The HypervisorError (or HostUnreachable) for a host error code, with its sentence."""
    cls = HostUnreachable if code == HOST_UNREACHABLE else HypervisorError
    return cls(code, sentence_for(code, details, vm), details)

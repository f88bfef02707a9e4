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


def _detail(details: Sequence[str], index: int, default: str = "?") -> str:
    return str(details[index]) if len(details) > index and details[index] != "" else default


def sentence_for(code: str, details: Sequence[str] = (), vm: str | None = None) -> str:
    """A plain sentence for a host error code; ``vm`` names the VM when the caller knows it."""
    subject = f"VM {vm}" if vm else "the VM"
    if code == VM_BAD_POWER_STATE:
        expected, actual = _detail(details, 1), _detail(details, 2)
        return f"{subject} is {actual}, but the operation needs it {expected}"
    if code == VM_LACKS_FEATURE:
        return f"{subject} cannot shut down cleanly (no PV drivers or guest agent); only a forced stop works"
    if code in (UUID_INVALID, HANDLE_INVALID):
        return f"{subject} does not exist on the host"
    if code == FAILED_TO_START_EMULATOR:
        return f"the host could not start the device emulator (QEMU) for {subject}: {_detail(details, 2, 'no reason given')}"
    if code == INTERNAL_ERROR:
        return f"the host failed with an internal error: {_detail(details, 0, 'no message')}"
    if code == SESSION_AUTHENTICATION_FAILED:
        return f"the host refused the login for user {_detail(details, 0)}: wrong user name or password"
    if code == HOST_IS_SLAVE:
        return f"this host is a pool member, not the pool master; connect to the master at {_detail(details, 0)}"
    if code == OTHER_OPERATION_IN_PROGRESS:
        return f"another operation is already running on {subject}; wait for it to finish and try again"
    if code == HOST_UNREACHABLE:
        return f"cannot reach the host: {_detail(details, 0, 'no answer')}"
    if code == OPERATION_TIMED_OUT:
        return f"the host did not finish the operation on {subject} in time"
    if code == NO_HOSTS_AVAILABLE:
        return f"no host in the pool has the resources to start {subject}"
    if code == PERMISSION_DENIED:
        return f"the host refused the operation on {subject}: permission denied"
    if code == VM_IS_TRANSIENT:
        return f"{subject} is transient (the host keeps no definition of it once it stops), so its arguments cannot be changed"
    extra = f" ({', '.join(str(d) for d in details)})" if details else ""
    return f"the host refused the operation on {subject}: {code}{extra}"


def host_error(code: str, details: Sequence[str] = (), vm: str | None = None) -> HypervisorError:
    """The HypervisorError (or HostUnreachable) for a host error code, with its sentence."""
    cls = HostUnreachable if code == HOST_UNREACHABLE else HypervisorError
    return cls(code, sentence_for(code, details, vm), details)

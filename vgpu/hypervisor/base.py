"""The one protocol every hypervisor backend implements.

The lifecycle and scan code talk only to this protocol, so a simulated host, the xe CLI, the XenAPI SDK
and libvirt are interchangeable. Every method raises :class:`vgpu.errors.HypervisorError` (or
:class:`vgpu.errors.HostUnreachable`) carrying the host's own code and a sentence a person understands;
nothing else escapes a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from ..basics import DEFAULT_ARGS_KEY
from ..errors import VgpuError

if TYPE_CHECKING:  # for annotations only: importing the protocol builds none of the VM value types
    from ..models import HostVM, PowerState

__all__ = ["Hypervisor", "DEFAULT_ARGS_KEY", "args_quoted", "booted_after_start", "describe", "describe_best_reading", "is_transient", "refusal_advice", "set_args_if_unchanged", "tells_booted"]  # the key is defined in vgpu.basics, named here for the backends


def args_quoted(host: object, vm_uuid: str | None = None) -> bool:
    """Whether ``host`` keeps its device-model args as a shell-quoted argument list (libvirt's backend, whose
    arguments may hold spaces) rather than words separated by whitespace (xe, XenAPI, the simulated host):
    :mod:`vgpu.devargs` reads the two differently. A backend says so with ``args_quoted = True``; a fleet,
    which mixes both kinds, answers for the host of ``vm_uuid`` (``args_quoted_for``)."""
    per_vm = getattr(host, "args_quoted_for", None)
    if vm_uuid is not None and per_vm is not None:
        return per_vm(vm_uuid) is True
    return getattr(host, "args_quoted", False) is True


def refusal_advice(host: object, vm_uuid: str, state: PowerState) -> str | None:
    """What frees a VM that a change refuses for its power state, when its backend has its own words
    (``refusal_advice``: libvirt's "suspended" is a managed save image, which no resume call resumes); None
    for the usual ones, and when the host cannot say (the refusal must not become a host error)."""
    own = getattr(host, "refusal_advice", None)
    if own is None:
        return None
    try:
        advice = own(vm_uuid, state)
    except VgpuError:
        return None
    return advice if isinstance(advice, str) else None


def is_transient(host: object, vm_uuid: str) -> bool:
    """Whether the VM is transient (see HostVM.transient, which listings and ``describe_vm`` carry), for a
    caller that did not list or describe it: asked of a backend that has ``is_transient`` (libvirt), False
    on the others, whose VMs never are."""
    own = getattr(host, "is_transient", None)
    return own is not None and own(vm_uuid) is True


def tells_booted(host: object, vm_uuid: str) -> bool:
    """Whether the host can say what this VM booted with at all (``booted_device_model_args`` is then None only
    for a VM that is not running): False for a backend whose ``tells_booted`` says so (a remote XenAPI
    connection, which sees no xenstore), True on the others."""
    own = getattr(host, "tells_booted", None)
    return own is None or own(vm_uuid) is True


@runtime_checkable
class Hypervisor(Protocol):
    uri: str

    def list_vms(self) -> list[HostVM]:
        """Every guest VM (no control domain, templates or snapshots), in one call to the host."""

    def describe_vm(self, vm_uuid: str) -> HostVM:
        """One VM as ``list_vms`` reports it (name, power state, stored and booted args), in one request to
        the host where the backend has one (XenAPI: one record; xe: one ``vm-list``), except ``resident_on``,
        left None (naming the pool member would cost another call). A reconfigure reads the VM this way when
        it plans and when it begins, so that each costs one round trip."""

    def power_state(self, vm_uuid: str) -> PowerState:
        """The VM's current power state."""

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        """Ask the guest to shut down and wait up to ``timeout`` seconds.

        True once it is halted (or already was, unless ``halted_ok`` is False: then a VM halted when asked
        is refused, VM_BAD_POWER_STATE [uuid, "running", "halted"], as XAPI refuses it: the caller that
        believed it running learns someone else stopped it, with no read of its own). False if it is
        still running at the deadline. Raises HypervisorError when the guest cannot do a clean shutdown at
        all (code ``VM_LACKS_FEATURE``), and VM_BAD_POWER_STATE for a paused or suspended VM.
        """

    def hard_shutdown(self, vm_uuid: str) -> bool:
        """Power the VM off now: True once it did. A VM that is already halted is not an error, and False:
        nothing was forced (so no caller reports "forced off")."""

    def start(self, vm_uuid: str) -> None:
        """Boot the VM and return once the host reports it running."""

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        """The device-model args the VM's running (or paused) domain was started with ("" when it booted
        with none); None when it has no domain (halted, suspended), or when the host cannot tell (then nobody
        may call it configured). ``list_vms`` gives the same as ``HostVM.booted_args``."""

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        """What the host is still doing to the VM (a start, a shutdown someone asked for), as the host names
        it; () when nothing, None when the host cannot tell."""

    def get_device_model_args(self, vm_uuid: str) -> str:
        """The VM's device-model arguments as one string ("" when it has none)."""

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        """Replace the VM's device-model arguments; "" removes them."""

    def reopen(self) -> "Hypervisor":
        """An independent connection to the same host, for another thread (bulk operations)."""

    def close(self) -> None:
        """Release the connection (log out of a session, close a socket)."""


def describe(host: Hypervisor, vm_uuid: str) -> HostVM:
    """``host.describe_vm(vm_uuid)``; for a host object without it (a wrapper written before it existed),
    the same facts from ``power_state``, ``get_device_model_args`` and ``booted_device_model_args``."""
    method: Callable[[str], HostVM] | None = getattr(host, "describe_vm", None)
    if method is not None:
        return method(vm_uuid)
    from ..models import HostVM, PowerState

    state = host.power_state(vm_uuid)
    args = host.get_device_model_args(vm_uuid)
    booted = host.booted_device_model_args(vm_uuid) if state in (PowerState.RUNNING, PowerState.PAUSED) else None
    return HostVM(vm_uuid, "", state, args, booted)


def describe_best_reading(host: Hypervisor, vm_uuid: str) -> tuple[HostVM, bool]:
    """``describe(host, vm_uuid)`` and True, or, from a backend with its own ``describe_vm_best_reading``
    (xe), the VM with a best reading of its stored args, at less cost, and whether they are exact. xe's
    one ``vm-list`` prints the platform map unescaped, so on a real host (other keys beside the args) it
    cannot say the args for certain, and :meth:`Hypervisor.describe_vm` pays an exact read for them. A
    caller may take a reading that is not exact only where the args are read exactly again before anything
    is decided or written on them (a reconfigure that stops the VM: once it is stopped)."""
    own: Callable[[str], tuple[HostVM, bool]] | None = getattr(host, "describe_vm_best_reading", None)
    return own(vm_uuid) if own is not None else (describe(host, vm_uuid), True)


def set_args_if_unchanged(host: Hypervisor, vm_uuid: str, value: str, expected: str) -> str | None:
    """Write ``value`` as the VM's device-model args, computed from ``expected`` (the args as the caller read
    them), unless the host holds other args by now (an admin's edit since that read): None when written (or
    already ``value``), else the args found, nothing written, for the caller to merge its change into.

    Only a backend with its own ``set_device_model_args_if_unchanged`` compares: libvirt, whose write reads
    the domain's definition before defining it anyway, so the comparison costs no call, and whose write
    replaces the whole <qemu:arg> list, so a stale value would throw an admin's edit away. Any other is
    written as before: xe and XenAPI would pay one more xe process or XenAPI call per write to compare (the
    round trips tests/test_round_trips.py counts), for a window that is the caller's own few milliseconds."""
    own: Callable[[str, str, str], str | None] | None = getattr(host, "set_device_model_args_if_unchanged", None)
    if own is not None:
        return own(vm_uuid, value, expected)
    host.set_device_model_args(vm_uuid, value)
    return None


def args_if_changed(host: Hypervisor, vm_uuid: str, expected: str) -> str | None:
    """The VM's device-model args where they are no longer ``expected`` (the args as the caller read them: an
    admin's edit since), else None; None too on a host that cannot tell without one more call (xe, XenAPI: see
    :func:`set_args_if_unchanged`), which is not asked. Only a backend with its own ``args_if_changed`` (libvirt)
    compares: for a caller with nothing to write, which would otherwise never look again."""
    own: Callable[[str, str], str | None] | None = getattr(host, "args_if_changed", None)
    return own(vm_uuid, expected) if own is not None else None


def booted_after_start(host: Hypervisor, vm_uuid: str) -> str | None:
    """What a VM the caller has just started booted with, as ``booted_device_model_args`` says it, at the
    least cost the backend has (its own ``booted_after_start``): xe and XenAPI on dom0 read every domain
    from xenstore once, the VM's found by its ``vm`` node, instead of asking xapi for its domid first (the
    start has just shown that the VM exists), so no xe process or XenAPI call; a remote XenAPI connection,
    which cannot tell, asks nothing."""
    own: Callable[[str], str | None] | None = getattr(host, "booted_after_start", None)
    return own(vm_uuid) if own is not None else host.booted_device_model_args(vm_uuid)

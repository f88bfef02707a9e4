"""Stopping and starting a VM under a stop policy, with progress while the host works.

Stop means stopped: whatever way a clean shutdown fails (the host refuses it, the guest does not
acknowledge it, it times out on the host or here, the guest has no PV drivers or ignores ACPI), the VM is
forced off when the policy allows it, and :class:`StopOutcome` says which path was taken and why. When the
policy forbids forcing and the request reached the host, the VM may still halt by itself later:
:class:`ShutdownNotConfirmed` says so, so that no caller reports "nothing was changed".

The host call runs on a daemon thread while the caller's thread reports progress, so an interrupt (Ctrl-C)
ends the waiting at once: the host carries on with what it was asked, and the caller leaves its operation
to recover(). Nothing here talks to a person; ``progress`` is the caller's callback.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Callable, Final

import attrs

from .errors import HostUnreachable, HypervisorError, InvalidValue, ShutdownNotConfirmed
from .hypervisor import codes
from .hypervisor.base import Hypervisor
from .models import PowerState


@attrs.frozen
class Progress:
    """One progress report. ``elapsed`` counts seconds since the step began, for the "still waiting" reports
    (then ``message`` says what is awaited, e.g. "waiting for VM-3 to shut down"); ``limit`` is the step's
    deadline in seconds, 0 when it has none.

    In a batch (:mod:`vgpu.bulk`, :mod:`vgpu.bulk_register`) every report also says how far the batch is:
    ``total`` VMs, ``done`` of them finished (succeeded or failed) so far; each VM's last report has the
    step ``finished`` or ``failed`` and names that VM, counted in its ``done``. Outside a batch both are 0."""

    vm_uuid: str
    step: str
    message: str
    elapsed: float = 0.0
    limit: float = 0.0
    done: int = 0
    total: int = 0

    @property
    def finishes(self) -> bool:
        """This report is the last of its VM in a batch: ``done`` counts it."""
        return self.step in FINISHING_STEPS


FINISHED, FAILED = "finished", "failed"
FINISHING_STEPS = (FINISHED, FAILED)


ProgressCallback = Callable[[Progress], None]


@attrs.frozen
class StopPolicy:
    """How to stop a VM: a clean shutdown with a deadline, then (unless ``force`` is off) a forced one."""

    clean_timeout: float = 120.0
    force: bool = True
    tick: float = 1.0  # seconds between "still waiting" progress reports


DEFAULT_POLICY = StopPolicy()


def check_policy(policy: object) -> StopPolicy:
    """``policy`` if it is a StopPolicy; an InvalidValue before anything is done otherwise (a string would
    only fail at the first stop, in the middle of the change)."""
    if not isinstance(policy, StopPolicy):
        raise InvalidValue("policy", policy, "a StopPolicy, such as vgpu.power.StopPolicy(clean_timeout=60, force=True)")
    return policy


def one_vms_progress(progress: object) -> ProgressCallback:
    """A single VM's ``progress``: a callback, or None for none; an InvalidValue before anything is done
    otherwise (``"auto"``, a bar over many VMs, is for the bulk calls)."""
    if progress is None:
        return silent
    if not callable(progress):
        raise InvalidValue("progress", progress, "a callback or None")
    return progress

ALREADY, CLEAN, FORCED, HALTED = "already", "clean", "forced", "halted"


@attrs.frozen
class StopOutcome:
    """How a VM was stopped: ``already`` (it was halted), ``clean``, ``forced``, or ``halted``: the clean
    shutdown failed (or ran past its deadline), and the forced one that followed found the VM halted all the
    same, so nothing was forced. ``reason`` says why a forced stop was called for (the clean shutdown's
    failure, or its deadline)."""

    how: str
    reason: str = ""


# Failures after which a forced stop must not follow: it could not help (the host is gone, the VM is not
# there or not running, we may not), would cut another tool's operation short, or would delete a transient domain.
_NOT_FORCEABLE = (codes.OTHER_OPERATION_IN_PROGRESS, codes.PERMISSION_DENIED, codes.UUID_INVALID,
                  codes.HANDLE_INVALID, codes.VM_BAD_POWER_STATE, codes.VM_IS_TRANSIENT,
                  codes.VM_UNDEFINED_DURING_SHUTDOWN)
# Failures that mean the request reached the guest (it was sent, and not seen through): the VM may still
# halt by itself. Any other failure is a refusal: nothing was asked of the guest.
DELIVERED = (codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, codes.VM_SHUTDOWN_TIMEOUT, codes.OPERATION_TIMED_OUT)


class _Silent:
    """The default progress callback, which reports nothing. An object rather than a function so that
    help() shows the default as ``<no progress>``, not as a function's address."""

    def __call__(self, _: Progress) -> None:
        pass

    def __repr__(self) -> str:
        return "<no progress>"


silent: Final = _Silent()


class _GuardedProgress:
    """A caller's progress callback that cannot derail an operation: what it raises is swallowed (with one
    warning per operation), because a half-done change is worse than a missed report. KeyboardInterrupt and
    other BaseExceptions still get through: an interrupt is the caller's wish, not a reporting failure."""

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback
        self.failed = False

    def __call__(self, event: Progress) -> None:
        try:
            self.callback(event)
        except Exception as error:
            if not self.failed:
                self.failed = True
                warnings.warn(f"the progress callback failed ({type(error).__name__}: {error}) at step "
                              f"{event.step!r} of VM {event.vm_uuid}; the operation carries on", RuntimeWarning, stacklevel=2)


def guarded(progress: ProgressCallback) -> ProgressCallback:
    """``progress`` wrapped so that its exceptions never reach the operation reporting to it."""
    if progress is silent or isinstance(progress, _GuardedProgress):
        return progress
    return _GuardedProgress(progress)


def _waiting(fn: Callable[[], object], first: Progress, waiting: str, progress: ProgressCallback, tick: float) -> object:
    """Run a blocking host call, reporting ``first`` and then, every ``tick`` seconds while it runs,
    ``waiting`` with the time spent. The call runs on a daemon thread: an interrupt of the caller's thread
    ends the wait at once, and nothing (the interpreter's exit included) waits for the call to return."""
    progress(first)
    if progress is silent:
        return fn()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread below
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="vgpu-wait", daemon=True).start()
    started = time.monotonic()
    while not done.wait(tick):
        progress(Progress(first.vm_uuid, first.step, waiting, time.monotonic() - started, first.limit))
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


def _who(vm_uuid: str, name: str | None) -> str:
    return name or f"VM {vm_uuid}"


def stop_vm(
    host: Hypervisor,
    vm_uuid: str,
    policy: StopPolicy = DEFAULT_POLICY,
    progress: ProgressCallback = silent,
    *,
    name: str | None = None,
    power: PowerState | None = None,
    halted_ok: bool = True,
) -> StopOutcome:
    """Stop a VM: a clean shutdown within the policy's deadline; if that fails in any way, forced (when the
    policy allows). Raises ShutdownNotConfirmed when forcing is not allowed and the request reached the
    host, or the host's refusal as it is when nothing was asked of the guest. ``name`` is the VM's name
    for the progress reports; ``power`` its power state if the caller has just read it (not read again).
    ``halted_ok=False``, for a caller that believes the VM running (``power`` from an earlier look): a VM
    found halted is refused, VM_BAD_POWER_STATE [uuid, "running", "halted"], not called stopped already,
    since someone else stopped it (the clean shutdown's own refusal tells, with no read of ours)."""
    progress = guarded(progress)
    if (host.power_state(vm_uuid) if power is None else power) is PowerState.HALTED:
        if not halted_ok:
            raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, PowerState.RUNNING.value, PowerState.HALTED.value], vm_uuid)
        return StopOutcome(ALREADY)
    first = Progress(vm_uuid, "stopping", f"Shutting down VM {vm_uuid} (clean, up to {policy.clean_timeout:g}s)",
                     limit=policy.clean_timeout)
    began = time.monotonic()

    def shutdown() -> bool:  # the keyword only when it says something: a host object written before it keeps working
        if halted_ok:
            return host.clean_shutdown(vm_uuid, policy.clean_timeout)
        return host.clean_shutdown(vm_uuid, policy.clean_timeout, halted_ok=False)

    try:
        stopped = _waiting(shutdown, first,
                           f"waiting for {_who(vm_uuid, name)} to shut down", progress, policy.tick)
    except HypervisorError as error:
        if isinstance(error, HostUnreachable) or error.code in _NOT_FORCEABLE:
            raise
        if not policy.force:
            if error.code in DELIVERED:
                raise ShutdownNotConfirmed(vm_uuid, policy.clean_timeout, error) from error
            raise
        reason = _forcing_reason(error)
    else:
        if stopped:
            progress(Progress(vm_uuid, "stopped", f"VM {vm_uuid} shut down cleanly"))
            return StopOutcome(CLEAN)
        if not policy.force:
            raise ShutdownNotConfirmed(vm_uuid, policy.clean_timeout)
        reason = _not_halted(vm_uuid, policy.clean_timeout, time.monotonic() - began)
    progress(Progress(vm_uuid, "forcing", f"{reason}; forcing it off"))
    if host.hard_shutdown(vm_uuid) is False:  # None: a host object written before it said; it did force
        progress(Progress(vm_uuid, "stopped", f"VM {vm_uuid} was found halted: it stopped despite the failure, so nothing was forced"))
        return StopOutcome(HALTED, reason)
    progress(Progress(vm_uuid, "stopped", f"VM {vm_uuid} forced off"))
    return StopOutcome(FORCED, reason)


def _forcing_reason(error: HypervisorError) -> str:
    """Why a VM whose clean shutdown failed with ``error`` had to be forced off (or was found halted)."""
    return str(error) if error.code == codes.VM_LACKS_FEATURE else f"the clean shutdown failed: {error}"


def halted_despite(host: Hypervisor, vm_uuid: str, error: HypervisorError) -> str:
    """For a clean shutdown refused with ``error`` and not forced (forcing is off, so :func:`stop_vm` raised
    it as it was): the reason a :class:`StopOutcome` ``halted`` gives when the VM halted all the same, so
    that its stop is not left unsaid; "" when it is not halted, when the error cannot have come with a halt of
    ours (the host gone, the VM not running, a request delivered: ShutdownNotConfirmed says that one), or
    when the host cannot say. Asked on this failure path only."""
    if isinstance(error, HostUnreachable) or error.code in _NOT_FORCEABLE or error.code in DELIVERED:
        return ""
    try:
        halted = host.power_state(vm_uuid) is PowerState.HALTED
    except HypervisorError:
        return ""
    return _forcing_reason(error) if halted else ""


def _not_halted(vm_uuid: str, timeout: float, waited: float) -> str:
    """Why a clean shutdown that ended with the VM running did not stop it. A backend gives up only at the
    deadline (or at the host's own, when that comes first: xe), so an earlier end means the VM halted and was
    running again by then: someone else forced it off and started it, which ends the wait early. Told by
    the clock alone, so the usual path asks the host nothing more."""
    if waited >= timeout:
        return f"VM {vm_uuid} did not shut down within {timeout:g}s"
    return (f"VM {vm_uuid} was running again when its clean shutdown ended after {waited:.1f}s, before the "
            f"{timeout:g}s deadline: someone else started it again (or the host's own shutdown deadline came first)")


def start_vm(host: Hypervisor, vm_uuid: str, progress: ProgressCallback = silent, tick: float = 1.0, *,
             name: str | None = None) -> None:
    """Start a VM and return once the host reports it running."""
    progress = guarded(progress)
    first = Progress(vm_uuid, "starting", f"Starting VM {vm_uuid}")
    _waiting(lambda: host.start(vm_uuid), first, f"waiting for {_who(vm_uuid, name)} to start", progress, tick)
    progress(Progress(vm_uuid, "started", f"VM {vm_uuid} is running"))

"""Changing VMs on the host: the confirmed reconfigure cycle, and registering/removing with the segment.

The cycle is ``plan → confirm → [stop if running] → update DB → update device-model args → [start if it
was running]``. Each step is journalled (:mod:`vgpu.journal`) before it is taken. Any failure part way (a
host error, or an unexpected exception) rolls back what was done (old DB row, old segment, VM started again
if it was running) and says so; if even the rollback fails, or an interrupt (Ctrl-C) cuts the cycle, the
operation stays open, released for :func:`vgpu.recovery.recover` from any process.

Nothing here talks to a person: ``confirm`` and ``progress`` are callbacks the caller supplies (the shell
asks yes/no at the terminal, a notebook may show a widget or answer in code).
"""

from __future__ import annotations

import concurrent.futures
import time
import warnings
from typing import Callable

import attrs

from . import devargs, journal, values, vms
from .errors import Cancelled, HypervisorError, NotFound, NotRegistered, ReconfigureFailed, StalePlan, VgpuError
from .hypervisor import codes
from .hypervisor.base import Hypervisor, args_quoted
from .models import VM, HostVM, PowerState, VMConfig
from .store import Store


@attrs.frozen
class Progress:
    """One progress report. ``elapsed`` counts seconds since the step began (for waiting messages)."""

    vm_uuid: str
    step: str
    message: str
    elapsed: float = 0.0


ProgressCallback = Callable[[Progress], None]


@attrs.frozen
class StopPolicy:
    """How to stop a VM: a clean shutdown with a deadline, then (unless ``force`` is off) a forced one."""

    clean_timeout: float = 120.0
    force: bool = True
    tick: float = 1.0  # seconds between "still waiting" progress reports


DEFAULT_POLICY = StopPolicy()


def silent(_: Progress) -> None:
    """The default progress callback."""


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


# --- single steps -----------------------------------------------------------------------------------------


def _waiting(fn: Callable[[], object], vm_uuid: str, step: str, message: str, progress: ProgressCallback, tick: float) -> object:
    """Run a blocking host call, reporting progress every ``tick`` seconds while it runs."""
    progress(Progress(vm_uuid, step, message))
    if progress is silent:
        return fn()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vgpu-wait") as pool:
        future = pool.submit(fn)
        while True:
            try:
                return future.result(timeout=tick)
            except concurrent.futures.TimeoutError:
                progress(Progress(vm_uuid, step, message, time.monotonic() - started))


def stop_vm(
    host: Hypervisor,
    vm_uuid: str,
    policy: StopPolicy = DEFAULT_POLICY,
    progress: ProgressCallback = silent,
) -> str:
    """Stop a VM: clean shutdown within the policy's deadline, then forced. Returns how it stopped:
    ``"already"`` (it was halted), ``"clean"`` or ``"forced"``."""
    progress = guarded(progress)
    if host.power_state(vm_uuid) is PowerState.HALTED:
        return "already"
    message = f"Shutting down VM {vm_uuid} (clean, up to {policy.clean_timeout:g}s)"
    try:
        stopped = _waiting(lambda: host.clean_shutdown(vm_uuid, policy.clean_timeout), vm_uuid, "stopping", message, progress, policy.tick)
    except HypervisorError as error:
        if error.code != codes.VM_LACKS_FEATURE or not policy.force:
            raise
        progress(Progress(vm_uuid, "forcing", f"{error}; forcing it off"))
        stopped = False
    else:
        if not stopped:
            if not policy.force:
                raise codes.host_error(codes.OPERATION_TIMED_OUT, [], vm_uuid)
            progress(Progress(vm_uuid, "forcing", f"VM {vm_uuid} did not shut down within {policy.clean_timeout:g}s; forcing it off"))
    if stopped:
        progress(Progress(vm_uuid, "stopped", f"VM {vm_uuid} shut down cleanly"))
        return "clean"
    host.hard_shutdown(vm_uuid)
    progress(Progress(vm_uuid, "stopped", f"VM {vm_uuid} forced off"))
    return "forced"


def start_vm(host: Hypervisor, vm_uuid: str, progress: ProgressCallback = silent, tick: float = 1.0) -> None:
    """Start a VM and return once the host reports it running."""
    progress = guarded(progress)
    _waiting(lambda: host.start(vm_uuid), vm_uuid, "starting", f"Starting VM {vm_uuid}", progress, tick)
    progress(Progress(vm_uuid, "started", f"VM {vm_uuid} is running"))


def update_device_model_args(host: Hypervisor, vm_uuid: str, config: VMConfig | None) -> str:
    """Set (or with None, remove) vgpu's segment in the VM's device-model args, keeping everything else.
    Returns the new args. Writes nothing when they already say so."""
    current = host.get_device_model_args(vm_uuid)
    wanted = devargs.merge(current, config, quoted=args_quoted(host))
    if wanted != current:
        host.set_device_model_args(vm_uuid, wanted)
    return wanted


# --- reconfigure ------------------------------------------------------------------------------------------


@attrs.frozen
class ReconfigurePlan(vms.ChangePlan):
    """A change plus the VM's power state: what a reconfigure would do, computed without changing anything."""

    power_state: PowerState

    @property
    def vm_uuid(self) -> str:
        return self.vm.vm_uuid

    @property
    def needs_restart(self) -> bool:
        return not self.is_noop and self.power_state is PowerState.RUNNING


@attrs.frozen
class ReconfigureResult:
    vm: VM
    old: VMConfig
    changed: bool
    restarted: bool
    stopped_how: str | None = None  # "clean" or "forced" when the VM was stopped


def check_power_state(vm_uuid: str, state: PowerState) -> None:
    if state not in (PowerState.RUNNING, PowerState.HALTED):
        raise HypervisorError(
            codes.VM_BAD_POWER_STATE,
            f"VM {vm_uuid} is {state.value}; resume it or shut it down first, then try again",
            [vm_uuid, "running or halted", state.value],
        )


def plan_reconfigure(store: Store, host: Hypervisor, vm_uuid: object, pool: object = None, priority: object = None, vm_id: object = None) -> ReconfigurePlan:
    """Validate a change to a registered VM and say what it would do (restart or not). Changes nothing."""
    try:
        change = vms.plan_change(store, vm_uuid, pool, priority, vm_id)
    except NotFound as missing:
        raise explain_unregistered(host, missing) from None
    journal.check_unlocked(store, change.vm.vm_uuid)
    state = host.power_state(change.vm.vm_uuid)
    check_power_state(change.vm.vm_uuid, state)
    return ReconfigurePlan(change.vm, change.new, state)


def ask(confirm: Callable[[object], bool], plan: object) -> None:
    """Ask the caller's confirm callback; anything but True (an exception included) cancels."""
    try:
        answer = confirm(plan)
    except Exception as error:  # a callback that fails must fail closed, whatever it raised
        raise Cancelled(f"Cancelled: the confirmation failed ({error}); nothing was changed.") from error
    if answer is not True:
        raise Cancelled()


def reconfigure_vm(
    store: Store,
    host: Hypervisor,
    vm_uuid: object,
    pool: object = None,
    priority: object = None,
    vm_id: object = None,
    *,
    confirm: Callable[[ReconfigurePlan], bool],
    progress: ProgressCallback = silent,
    policy: StopPolicy = DEFAULT_POLICY,
) -> ReconfigureResult:
    """The spec's workflow: plan, confirm, stop if running, update DB, update args, start if it was running.

    Raises Cancelled (nothing touched) when ``confirm`` says no or raises. A no-op change returns at once
    with ``changed=False`` and asks nothing.
    """
    plan = plan_reconfigure(store, host, vm_uuid, pool, priority, vm_id)
    if plan.is_noop:
        return ReconfigureResult(plan.vm, plan.current, changed=False, restarted=False)
    ask(confirm, plan)
    return apply_plan(store, host, plan, progress=progress, policy=policy)


def _begin(store: Store, host: Hypervisor, plan: ReconfigurePlan) -> journal.Operation:
    state = host.power_state(plan.vm_uuid)
    check_power_state(plan.vm_uuid, state)
    with store.writing() as conn:
        current = vms.select_vm(conn, plan.vm_uuid)
        if current is None:
            raise NotFound("registered VM", plan.vm_uuid, "it was removed after the plan was made")
        # Take the lock before comparing: a change still in progress is "busy", not a stale plan.
        op = journal.begin(conn, plan.vm_uuid, "reconfigure", current, plan.new, state is PowerState.RUNNING)
        if current.config != plan.current:
            raise StalePlan(plan.vm_uuid, current.vm_name, plan.current, current.config)
        return op


def apply_plan(
    store: Store,
    host: Hypervisor,
    plan: ReconfigurePlan,
    *,
    progress: ProgressCallback = silent,
    policy: StopPolicy = DEFAULT_POLICY,
) -> ReconfigureResult:
    """Carry out a plan the caller has already confirmed (notebooks inspect plans, then apply them)."""
    if plan.is_noop:
        return ReconfigureResult(plan.vm, plan.current, changed=False, restarted=False)
    progress = guarded(progress)
    op = _begin(store, host, plan)
    stopped_how = None
    with journal.released_on_escape(store, op):  # an interrupt, or a rollback that failed: recover() takes over
        try:
            if op.was_running:
                op = journal.advance(store, op, journal.STOPPING)
                stopped_how = stop_vm(host, op.vm_uuid, policy, progress)
            progress(Progress(op.vm_uuid, "updating", "Updating the database and the device-model args"))
            with store.writing() as conn:
                updated = vms.update_record(conn, op.vm_uuid, plan.new)
                op = journal.set_step(conn, op, journal.DB_UPDATED)
            op = journal.advance(store, op, journal.WRITING_ARGS)
            update_device_model_args(host, op.vm_uuid, plan.new)
            if op.was_running:
                op = journal.advance(store, op, journal.STARTING)
                start_vm(host, op.vm_uuid, progress, policy.tick)
        except VgpuError as failure:
            raise _roll_back_after(store, host, op, failure, progress) from failure
        except Exception as failure:  # a bug or an unmapped error: the VM still gets its old configuration back
            _roll_back_unexpected(store, host, op, failure, progress)
            raise
    journal.finish(store, op, journal.DONE)
    return ReconfigureResult(updated, plan.current, changed=True, restarted=bool(op.was_running), stopped_how=stopped_how)


def roll_back(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback = silent) -> None:
    """Put back the VM's old registration and segment, and start it if it was running. Idempotent."""
    progress = guarded(progress)
    progress(Progress(op.vm_uuid, "rolling-back", f"Restoring the previous configuration of VM {op.vm_uuid}"))
    old = op.old.config
    with store.writing() as conn:
        current = vms.select_vm(conn, op.vm_uuid)
        if current is not None and current.config != old:
            vms.update_record(conn, op.vm_uuid, old)
        if op.db_updated:
            # The DB holds the old values again; the journal must say so in the same transaction, or a
            # recover() after a failure below would roll *forward* to the new values the DB no longer has.
            journal.set_step(conn, op, journal.STOPPING if op.was_running else journal.PLANNED)
    update_device_model_args(host, op.vm_uuid, old)
    if op.was_running and host.power_state(op.vm_uuid) is PowerState.HALTED:
        start_vm(host, op.vm_uuid, progress)


def _roll_back_after(store: Store, host: Hypervisor, op: journal.Operation, failure: VgpuError, progress: ProgressCallback) -> VgpuError:
    """Undo a failed reconfigure and return the error to raise: the failure itself when nothing had
    changed yet, else ReconfigureFailed saying whether the rollback worked."""
    try:
        roll_back(store, host, op, progress)
    except VgpuError as rollback_error:
        # Leave the journal open (released by apply_plan): recover() will try again, the VM stays locked meanwhile.
        return ReconfigureFailed(op.vm_uuid, failure, rolled_back=False, rollback_error=rollback_error)
    journal.finish(store, op, journal.ROLLED_BACK, str(failure))
    if not op.db_updated:
        failure.reword(failure.sentence + "; nothing was changed")
        return failure
    return ReconfigureFailed(op.vm_uuid, failure, rolled_back=True)


def _roll_back_unexpected(store: Store, host: Hypervisor, op: journal.Operation, failure: Exception, progress: ProgressCallback) -> None:
    """Undo a reconfigure that an unexpected exception (not a VgpuError: a bug) stopped. The exception
    itself is re-raised by the caller, so its traceback reaches the log; a note on it says what became of
    the VM."""
    try:
        roll_back(store, host, op, progress)
    except Exception as rollback_error:  # the row stays open and released_on_escape hands it to recover()
        failure.add_note(f"Rolling back VM {op.vm_uuid} also failed ({rollback_error}).")
        return
    journal.finish(store, op, journal.ROLLED_BACK, f"{type(failure).__name__}: {failure}")
    running = " and the VM is running" if op.was_running else ""
    failure.add_note(f"The change to VM {op.vm_uuid} was rolled back: its previous configuration is in place{running}.")


# --- register and remove, with the segment ----------------------------------------------------------------


@attrs.frozen
class RegisterResult:
    vm: VM
    host_vm: HostVM

    @property
    def applies_at_next_boot(self) -> bool:
        """The segment is written now; a running VM's QEMU only reads it when it next boots."""
        return self.host_vm.power_state is not PowerState.HALTED


def explain_unregistered(host: Hypervisor, missing: NotFound) -> NotFound:
    """For a command that talks to the host anyway, given a VM that is not registered: NotRegistered when
    the host has the VM (register it first), else NotFound saying the host lacks it too. Costs one host
    listing, on this path only; a host that cannot be listed leaves ``missing`` as it was."""
    if missing.kind != "registered VM":
        return missing
    try:
        host_vm = next((vm for vm in host.list_vms() if vm.uuid == missing.key), None)
    except HypervisorError:
        return missing
    if host_vm is None:
        return NotFound("registered VM", missing.key, "the host has no VM with this UUID either (see 'vgpu-admin scan-vms')")
    return NotRegistered(host_vm.uuid, host_name(host_vm))


def find_host_vm(host: Hypervisor, vm_uuid: str) -> HostVM:
    for host_vm in host.list_vms():
        if host_vm.uuid == vm_uuid:
            return host_vm
    raise NotFound("VM", vm_uuid, "the host has no such VM (see 'vgpu-admin scan-vms')")


def register_vm(
    store: Store,
    host: Hypervisor,
    vm_uuid: object,
    vm_name: object = None,
    pool: object = None,
    priority: object = None,
    vm_id: object = None,
) -> RegisterResult:
    """Register a VM that exists on the host and write its segment (read by QEMU at its next boot).

    Without ``vm_name`` the host's name for the VM is recorded. If the segment cannot be written the
    registration is undone and the host's error raised: nothing changes.
    """
    reg = vms.make_registration(vm_uuid, vm_name, pool, priority, vm_id)
    host_vm = find_host_vm(host, reg.vm_uuid)
    if reg.vm_name is None:
        reg = attrs.evolve(reg, vm_name=host_name(host_vm))
    with store.writing() as conn:
        op = journal.begin(conn, reg.vm_uuid, "register", None, None, None)
        vm = vms.insert_registration(conn, reg)
        op = journal.set_step(conn, op, journal.DB_UPDATED, vm.config)
    with journal.released_on_escape(store, op):
        try:
            op = journal.advance(store, op, journal.WRITING_ARGS)
            update_device_model_args(host, vm.vm_uuid, vm.config)
        except VgpuError as failure:
            with store.writing() as conn:
                vms.delete_record(conn, vm.vm_uuid)
            journal.finish(store, op, journal.ROLLED_BACK, str(failure))
            failure.reword(failure.sentence + "; the VM was not registered")
            raise failure
    journal.finish(store, op, journal.DONE)
    return RegisterResult(vm, host_vm)


def host_name(host_vm: HostVM) -> str | None:
    try:
        return values.parse_vm_name(host_vm.name)
    except VgpuError:
        return None  # a host name we would not accept from a user is not recorded either


@attrs.frozen
class RemoveResult:
    vm: VM  # the registration as it was
    segment_cleared: bool  # False when the host no longer has the VM (nothing to clear)


def remove_vm(store: Store, host: Hypervisor, vm_uuid: object) -> RemoveResult:
    """Unregister a VM and clear its segment. A VM the host no longer has is just unregistered."""
    try:
        vm = vms.get(store, vm_uuid)
    except NotFound as missing:
        raise explain_unregistered(host, missing) from None
    # Ask the host before journalling, as repair_vm does: a host that refuses us at once (no password, no
    # such host) leaves nothing behind, not an operation that locks the VM until recover.
    try:
        cleared = _on_host(host, vm.vm_uuid)
    except HypervisorError as failure:
        failure.reword(failure.sentence + "; the VM is still registered")
        raise
    with store.writing() as conn:
        op = journal.begin(conn, vm.vm_uuid, "remove", vm, None, None)
    with journal.released_on_escape(store, op):
        try:
            op = journal.advance(store, op, journal.WRITING_ARGS)
            if cleared:
                update_device_model_args(host, vm.vm_uuid, None)
        except HypervisorError as failure:
            if not codes.vm_missing(failure):
                journal.finish(store, op, journal.ROLLED_BACK, str(failure))
                failure.reword(failure.sentence + "; the VM is still registered")
                raise failure
            cleared = False
        with store.writing() as conn:
            removed = vms.delete_record(conn, vm.vm_uuid)
            journal.set_step(conn, op, journal.DB_UPDATED)
    journal.finish(store, op, journal.DONE)
    return RemoveResult(removed, cleared)



def _on_host(host: Hypervisor, vm_uuid: str) -> bool:
    """Whether the host has the VM (any other host error is raised)."""
    try:
        host.get_device_model_args(vm_uuid)
    except HypervisorError as error:
        if not codes.vm_missing(error):
            raise
        return False
    return True


# --- repair -----------------------------------------------------------------------------------------------


@attrs.frozen
class RepairResult:
    """What repair_vm did: the segment now matches the DB (``expected`` None: no segment, unregistered)."""

    vm_uuid: str
    expected: VMConfig | None
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def repair_vm(store: Store, host: Hypervisor, vm_uuid: object) -> RepairResult:
    """Make a VM's device-model args agree with the database: a registered VM's segment is rewritten, an
    unregistered VM's (a clone's, or a leftover) removed. Takes effect at the VM's next boot."""
    canonical = values.parse_uuid(vm_uuid)
    vm = vms.find(store, canonical)
    expected = vm.config if vm is not None else None
    before = _args_to_repair(host, canonical, vm)  # read before journalling: a refusal changes nothing
    with store.writing() as conn:
        op = journal.begin(conn, canonical, "repair", vm, expected, None)
    with journal.released_on_escape(store, op):
        try:
            after = update_device_model_args(host, canonical, expected)
        except VgpuError as failure:
            journal.finish(store, op, journal.FAILED, str(failure))
            raise
    journal.finish(store, op, journal.DONE)
    return RepairResult(canonical, expected, before, after)


def _args_to_repair(host: Hypervisor, vm_uuid: str, vm: VM | None) -> str:
    """The VM's device-model args; NotFound (bad input, like register-vm's) when the host has no such VM."""
    try:
        return host.get_device_model_args(vm_uuid)
    except HypervisorError as error:
        if not codes.vm_missing(error):
            raise
    if vm is None:
        raise NotFound("VM", vm_uuid, "it is neither registered nor on the host (see 'vgpu-admin scan-vms')")
    raise NotFound("VM", vm_uuid, f"the host has no such VM, though it is registered: "
                                  f"'vgpu-admin remove-vm --vm-uuid={vm_uuid}' unregisters it")

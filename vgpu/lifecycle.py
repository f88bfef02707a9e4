"""Changing VMs on the host: the confirmed reconfigure cycle, and registering/removing with the segment.

The cycle is ``plan → confirm → [stop if running] → update DB → update device-model args → [start if it
was running]``. Each step is journalled (:mod:`vgpu.journal`) before it is taken. Any failure part way (a
host error, or an unexpected exception) rolls back what was done (old DB row, old segment, VM started again
if it was running) and says so; if even the rollback fails, or an interrupt (Ctrl-C) cuts the cycle, the
operation stays open, released for :func:`vgpu.recovery.recover` from any process. A VM that will not
start again even with its old configuration is left halted and marked as needing attention
(:mod:`vgpu.attention`), with its operation closed: there is nothing left for recover() to do.

Stopping and starting (the stop policy, progress while waiting) are :mod:`vgpu.power`'s; its names are
re-exported here. Nothing here talks to a person: ``confirm`` and ``progress`` are callbacks the caller
supplies (the shell asks yes/no at the terminal, a notebook may show a widget or answer in code).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

import attrs

from . import attention, audit, devargs, journal, locations, naming, values, vms
from .basics import NAME_MAX
from .confirming import ask, check_confirm
from .errors import (Conflict, DuplicateVM, HostUnreachable, HypervisorError, InvalidValue, NotFound, NotRegistered,
                     PausedSincePlan, ReconfigureFailed, SegmentChanged, ShutDownSincePlan, ShutdownNotConfirmed, StalePlan, StartedSincePlan, StoreError,
                     VgpuError)
from .hypervisor import codes
from .hypervisor.base import (Hypervisor, args_if_changed, args_quoted, booted_after_start, describe, describe_best_reading,
                              refusal_advice, set_args_if_unchanged, tells_booted)
from .hypervisor.fleet import Fleet, as_fleet, label_for, locate_again, one_fleet_operation
from .devargs import SegmentState
from .models import VM, HostVM, PowerState, VMConfig
from .naming import NamedLikeUUID, SharedName
from .power import (  # noqa: F401 - stopping and starting live in vgpu.power; callers know them from here
    DEFAULT_POLICY as DEFAULT_POLICY,  # "X as X": re-exported, for type checkers too (PEP 484)
    Progress as Progress,
    ProgressCallback as ProgressCallback,
    StopOutcome as StopOutcome,
    StopPolicy as StopPolicy,
    check_policy,
    guarded as guarded,
    halted_despite,
    one_vms_progress,
    silent as silent,
    start_vm as start_vm,
    stop_vm as stop_vm,
)
from .store import Store



# --- single steps -----------------------------------------------------------------------------------------


_WRITE_ATTEMPTS = 5  # writes of one segment met by yet another edit of the args each time: someone keeps editing


def update_device_model_args(host: Hypervisor, vm_uuid: str, config: VMConfig | None, current: str | None = None, *,
                             before_writing: Callable[[], None] | None = None, vm_name: str | None = None) -> str:
    """Set (or with None, remove) vgpu's segment in the VM's device-model args, keeping everything else.
    Returns the new args. Writes nothing when they already say so. ``current``: the args as read by the
    caller, under the VM's lock (saves reading them again). ``before_writing`` is called before the first
    write (not at all when there is none).

    The write is based on ``current``: where the host can tell at no cost that its args are other ones by
    now (libvirt, see :func:`vgpu.hypervisor.base.set_args_if_unchanged`), an admin edited them since the
    caller's read (a reconfigure reads them once the VM is stopped, then updates the database first). An
    edit outside vgpu's segment is kept: the segment is merged into the args found and written again. An
    edit of vgpu's own segment is refused as :func:`check_segment_unchanged` refuses it (SegmentChanged,
    naming the VM as ``vm_name``), the args left as found; so is one found when there is nothing to write,
    where the host can tell at no cost (libvirt: :func:`vgpu.hypervisor.base.args_if_changed`)."""
    read_earlier = current is not None  # args read here, just now, cannot have been edited since
    if current is None:
        current = host.get_device_model_args(vm_uuid)
    quoted = args_quoted(host, vm_uuid)
    wanted = devargs.merge(current, config, quoted=quoted)
    if wanted == current:
        found = args_if_changed(host, vm_uuid, current) if read_earlier else None
        if found is not None and devargs.parse(found, quoted=quoted) != devargs.parse(current, quoted=quoted):
            raise SegmentChanged(vm_uuid, vm_name, found)
        return wanted
    if before_writing is not None:
        before_writing()
    for _ in range(_WRITE_ATTEMPTS):
        found = set_args_if_unchanged(host, vm_uuid, wanted, current)
        if found is None:
            return wanted
        if devargs.parse(found, quoted=quoted) != devargs.parse(current, quoted=quoted):
            raise SegmentChanged(vm_uuid, vm_name, found)
        current, wanted = found, devargs.merge(found, config, quoted=quoted)
        if wanted == current:
            return wanted
    vm = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
    raise Conflict("device-model args of VM", vm_uuid, "edits on the host", sentence=(
        f"the device-model args of {vm} changed on the host each time vgpu was about to write its segment "
        f"({_WRITE_ATTEMPTS} times); they were left as they are: try again once nobody else edits them"))


def put_back_device_model_args(host: Hypervisor, vm_uuid: str, args: str, current: str | None = None, *,
                               before_writing: Callable[[], None]) -> None:
    """Give the VM's device-model args back exactly the text ``args`` (a rollback's undoing of its own write),
    calling ``before_writing`` first; nothing when they say so already. ``current``: as just read."""
    if (host.get_device_model_args(vm_uuid) if current is None else current) != args:
        before_writing()
        host.set_device_model_args(vm_uuid, args)


def record_stop(store: Store, vm_uuid: str, how: str, reason: str = "") -> None:
    """Write down in the audit log how vgpu-admin stopped a VM: ``clean``, ``forced`` (and why), ``halted``
    (it halted though its clean shutdown failed, and why) or ``requested`` (a clean shutdown asked for and not
    seen through)."""
    with store.writing() as conn:
        audit.record(conn, "stop", vm_uuid, None, {"stop": how, "reason": reason} if reason else {"stop": how})


def stop_recorded(store: Store, host: Hypervisor, vm_uuid: str, policy: StopPolicy, progress: ProgressCallback,
                  name: str | None = None, power: PowerState | None = None, *, halted_ok: bool = True) -> StopOutcome:
    """:func:`stop_vm`, with the audit log saying which path was taken (a shutdown requested and not
    seen through included, before its error goes on its way: ShutdownNotConfirmed, or a libvirt domain
    undefined while its shutdown was awaited, whose guest got the request too; and, forcing being off, a
    VM that halted though its clean shutdown failed, as with forcing on)."""
    try:
        stop = stop_vm(host, vm_uuid, policy, progress, name=name, power=power, halted_ok=halted_ok)
    except HypervisorError as failure:
        if isinstance(failure, ShutdownNotConfirmed) or failure.code == codes.VM_UNDEFINED_DURING_SHUTDOWN:
            record_stop(store, vm_uuid, "requested", str(failure))
        elif not policy.force and (reason := halted_despite(host, vm_uuid, failure)):
            record_stop(store, vm_uuid, "halted", reason)
        raise
    if stop.how != "already":
        record_stop(store, vm_uuid, stop.how, stop.reason)
    return stop


def close(store: Store, op: journal.Operation, outcome: str, detail: str = "", power: PowerState | None = None) -> None:
    """Close the operation; with ``power`` (the VM's state as the operation leaves it, nothing under way on
    the host) also clear an attention mark that this state resolves."""
    with store.writing() as conn:
        journal.close(conn, op, outcome, detail)
        if power is not None:
            for mark in attention.select(conn, op.vm_uuid):
                if attention.resolved(mark, power, ()):
                    attention.clear(conn, op.vm_uuid)


# --- reconfigure ------------------------------------------------------------------------------------------


@attrs.frozen
class ReconfigurePlan(vms.ChangePlan):
    """A change plus what the host says of the VM: what a reconfigure would do, computed without changing
    anything.

    ``stored`` is the VM's stored segment and ``booted`` the one its running domain booted with (None when
    not read, not running, or the host cannot tell), parsed from ``stored_args`` and ``booted_args``. A plan with no change to the database still has work
    to do when the stored segment is wrong (it is rewritten) or the running VM booted with something else
    (it is restarted): that is how a pending configuration is applied. ``apply_now`` (apply_vm) also
    restarts a running VM whose boot the host cannot tell.
    """

    power_state: PowerState
    # The VM's device-model args when planned (None: not read). For a running VM the plan restarts, they may be
    # the best reading of xe's listing (see hypervisor.base.describe_best_reading): the change reads them
    # exactly once the VM is stopped and refuses (SegmentChanged) when vgpu's segment there is not this one's.
    stored_args: str | None = None
    booted_args: str | None = None  # what its running domain booted with (None: not running, or unknown)
    apply_now: bool = False
    args_quoted: bool = False  # the host keeps its args as a quoted argument list (see hypervisor.base.args_quoted)
    host: str = ""  # over a fleet: the label of the VM's host (bulk work keeps a limit per host)

    @property
    def vm_uuid(self) -> str:
        return self.vm.vm_uuid

    @property
    def stored(self) -> SegmentState | None:
        return None if self.stored_args is None else devargs.parse(self.stored_args, quoted=self.args_quoted)

    @property
    def booted(self) -> SegmentState | None:
        return None if self.booted_args is None else devargs.parse(self.booted_args, quoted=self.args_quoted)

    @property
    def running(self) -> bool:
        return self.power_state is PowerState.RUNNING

    @property
    def pending(self) -> bool:
        """The running VM is known to have booted with something other than the new configuration."""
        return self.running and self.booted is not None and self.booted.config != self.new

    @property
    def runs_unknown(self) -> bool:
        """The VM is running and the host cannot tell what it booted with."""
        return self.running and self.booted is None

    @property
    def needs_restart(self) -> bool:
        return self.running and (bool(self.changes) or self.pending or (self.apply_now and self.booted is None))

    @property
    def is_noop(self) -> bool:
        stored_right = self.stored is None or self.stored.config == self.new
        return not self.changes and stored_right and not self.needs_restart


@attrs.frozen
class ReconfigureResult:
    vm: VM
    old: VMConfig
    changed: bool  # something was done: the database, the args, or a restart into the new configuration
    restarted: bool
    stopped_how: str | None = None  # "clean", "forced" or "halted" (it halted though the clean shutdown failed)
    stop_reason: str = ""  # why it had to be forced (the clean shutdown's failure, or its deadline)
    runs_unknown: bool = False  # nothing was done, but the host cannot tell what the running VM booted with
    running: bool = False  # the VM was running: restarted, or left running when it already ran with the change
    # Someone else (HA, an admin) started the VM while the change had it stopped, and it then ran: RUNS_NEW
    # (the new configuration: left running), RUNS_OTHER (another one: restarted with the new one) or
    # RUNS_UNKNOWN (the host cannot tell: left running, as recover() leaves it). "" when this change started it.
    # With ``restarted`` False: a VM the change found halted, started by someone else before its args were
    # written, and never restarted (RUNS_OTHER then runs another configuration until it is).
    started_by_other: str = ""
    # What the VM booted with once this change started it, the host asked right after (see what_it_booted):
    # RUNS_NEW, RUNS_OTHER, NOT_RUNNING (no longer running right after the start) or RUNS_UNKNOWN (the host
    # cannot tell); "" when this change started nothing.
    booted: str = ""
    booted_with: SegmentState | None = None  # RUNS_OTHER: the segment it booted with (none, or another one)
    # RUNS_OTHER: its args no longer hold the new segment either (someone changed them after the change wrote
    # them): True; they do (the host started it without them, as xapi's platform filter does): False; None
    # when the host could not say.
    args_changed: bool | None = None

    @property
    def not_running_with_it(self) -> bool:
        """The change is done, but the VM it started is not running with its configuration: it booted with
        something else (RUNS_OTHER), or was no longer running right after the start (NOT_RUNNING)."""
        return self.booted in (RUNS_OTHER, NOT_RUNNING)

    @property
    def why_not_running_with_it(self) -> str:
        """When :attr:`not_running_with_it`, the sentence saying why and what to do; "" otherwise."""
        booted = Booted(self.booted, self.booted_with, self.args_changed)
        return not_running_with_it(self.vm.vm_uuid, booted) if self.not_running_with_it else ""


def check_only_copy(store: Store, host: Hypervisor, vm_uuid: str, found_on: str | None) -> None:
    """Over a fleet, before changing the VM found on host ``found_on``: when it was last seen on other hosts of
    the run (instead, or as well: a copy), each is asked too, and the change refused if one cannot say it no
    longer has the VM (see :meth:`Fleet.check_only_copy`); so is every host of the run whose copies the database
    cannot tell (upgraded from schema 3, and not asked by a scan since). A host it was last seen on that the run does not have (taken
    out of [hosts], or left out by --host) refuses it too (see :meth:`Fleet.outside_run`). One host named by its
    URI, or a VM seen only where it is now, asks nothing more."""
    if isinstance(host, Fleet) and host.labels != ("",) and found_on:
        locations.adopt_same_hosts(store, host)  # a label of one of these hosts under another name is that host
        last_seen, copies_unknown = locations.last_seen(store, vm_uuid, host.labels)
        host.check_only_copy(vm_uuid, found_on, last_seen, copies_unknown=copies_unknown)


def check_power_state(vm_uuid: str, state: PowerState, host: Hypervisor | None = None) -> None:
    """Refuse a VM neither running nor halted, saying what frees it (``host``'s own words, if it has some)."""
    if state not in (PowerState.RUNNING, PowerState.HALTED):
        raise _neither_running_nor_halted(vm_uuid, state, host)


def check_not_busy(host: Hypervisor, vm_uuid: str, state: PowerState, outcome: str = "nothing was changed",
                   then: str = " (a running VM is then restarted by the change)") -> None:
    """Refuse a halted VM the host is still working on (another admin's ``xe vm-start``: xapi shows a VM
    halted until its start completes, and the start has read its args already), saying ``outcome`` and, after
    "try again once it is done", ``then``: the change would say "at its next start" of a VM about to run
    with its old arguments. Only a halted VM is asked (one call); a host that cannot tell (None) lets it
    through, as before."""
    if state is not PowerState.HALTED:
        return
    operations = host.current_operations(vm_uuid)
    if not operations:
        return
    doing = ("is being started by the host (by another admin or tool), so it will run with its current arguments"
             if "start" in operations else f"is halted, but the host is busy with it ({', '.join(operations)})")
    raise HypervisorError(codes.OTHER_OPERATION_IN_PROGRESS,
                          f"VM {vm_uuid} {doing}; {outcome}: try again once it is done{then}", ["VM", vm_uuid])


def _neither_running_nor_halted(vm_uuid: str, state: PowerState, host: Hypervisor | None = None) -> HypervisorError:
    advice = refusal_advice(host, vm_uuid, state) if host is not None else None
    return HypervisorError(
        codes.VM_BAD_POWER_STATE,
        f"VM {vm_uuid} is {state.value}; {advice or 'resume it or shut it down first, then try again'}",
        [vm_uuid, "running or halted", state.value],
    )


@one_fleet_operation
def plan_reconfigure(store: Store, host: Hypervisor, vm_uuid: object, pool: object = None, priority: object = None, vm_id: object = None) -> ReconfigurePlan:
    """Validate a change to a registered VM and say what it would do (restart or not). Changes nothing.

    Values the VM already has still make a plan with work to do when the VM is pending restart (its
    running domain booted with something else) or its stored args are wrong."""
    try:
        change = vms.plan_change(store, vm_uuid, pool, priority, vm_id)
    except NotFound as missing:
        raise explain_unregistered(host, missing) from None
    return _host_plan(store, host, change)


@one_fleet_operation
def plan_apply(store: Store, host: Hypervisor, vm_uuid: object) -> ReconfigurePlan:
    """What :func:`apply_vm` would do: the VM's registered configuration, unchanged, made the one its args
    say and its running domain booted with. Changes nothing."""
    try:
        vm = vms.get(store, vm_uuid)
    except NotFound as missing:
        raise explain_unregistered(host, missing) from None
    return _host_plan(store, host, vms.ChangePlan(vm, vm.config), apply_now=True)


def _host_plan(store: Store, host: Hypervisor, change: vms.ChangePlan, apply_now: bool = False) -> ReconfigurePlan:
    """The change with what the host says of the VM: power state, stored segment, booted segment."""
    vm_uuid = change.vm.vm_uuid
    journal.check_unlocked(store, vm_uuid)
    # One round trip: power state, stored and booted args, the stored ones maybe a best reading (xe).
    seen, exact = _asked_for_plan(store, host, vm_uuid, describe_best_reading)
    check_only_copy(store, host, vm_uuid, seen.host)
    check_power_state(vm_uuid, seen.power_state, host)
    check_not_busy(host, vm_uuid, seen.power_state)
    booted = seen.booted_args if seen.power_state is PowerState.RUNNING else None
    plan = ReconfigurePlan(change.vm, change.new, seen.power_state, seen.device_model_args, booted, apply_now,
                           args_quoted(host, vm_uuid))
    if not exact and not (plan.running and plan.needs_restart):
        # A best reading serves only a plan that stops the VM (needs_restart does not depend on the stored
        # args): args_once_stopped reads them exactly then, and refuses when vgpu's segment is not the plan's.
        # Any other plan decides on them (is_noop) and _begin writes over what it reads: read them exactly.
        plan = attrs.evolve(plan, stored_args=_asked_for_plan(store, host, vm_uuid, _stored_args))
    return check_not_transient(seen, plan)


def _stored_args(host: Hypervisor, vm_uuid: str) -> str:
    return host.get_device_model_args(vm_uuid)


_Answer = TypeVar("_Answer")


def _asked_for_plan(store: Store, host: Hypervisor, vm_uuid: str, ask: Callable[[Hypervisor, str], _Answer]) -> _Answer:
    """``ask(host, vm_uuid)`` for a plan: a VM the host does not have is the registered VM gone (or on a
    host the run does not ask)."""
    try:
        return ask(host, vm_uuid)
    except HypervisorError as error:
        elsewhere = locations.not_in_run(store, host, vm_uuid, error)
        if elsewhere is None and codes.vm_missing(error):
            raise registered_but_gone(store, host, vm_uuid) from None
        raise elsewhere or error


def check_not_transient(seen: HostVM, plan: ReconfigurePlan) -> ReconfigurePlan:
    """``plan``, unless it has work to do on a transient VM (see HostVM.transient): refused when it is planned,
    before it is confirmed, since its args cannot be written and no stop of vgpu's may end it (stopping it
    deletes it). The host refuses both anyway, but only once the change has begun and said it is shutting down."""
    if not plan.is_noop:
        check_writable(plan.vm_uuid, seen, "; nothing was changed")
    return plan


def check_writable(vm_uuid: str, seen: HostVM, outcome: str = "") -> None:
    """Refuse a VM whose args cannot be written because it is transient (see HostVM.transient), as planned:
    a change (check_not_transient), or a registration in a bulk plan, whose segment could never be written.
    ``outcome`` ends the sentence (what the refusal left)."""
    if seen.transient:
        refused = codes.host_error(codes.VM_IS_TRANSIENT, [vm_uuid], vm_uuid)
        refused.reword(refused.sentence + outcome)
        raise refused


@one_fleet_operation
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
    check_confirm(confirm)
    progress, policy = one_vms_progress(progress), check_policy(policy)
    plan = plan_reconfigure(store, host, vm_uuid, pool, priority, vm_id)
    return _confirmed(store, host, plan, confirm, progress, policy)


@one_fleet_operation
def apply_vm(
    store: Store,
    host: Hypervisor,
    vm_uuid: object,
    *,
    confirm: Callable[[ReconfigurePlan], bool],
    progress: ProgressCallback = silent,
    policy: StopPolicy = DEFAULT_POLICY,
) -> ReconfigureResult:
    """Make a registered VM run with its registered configuration now, through the same confirmed,
    journalled cycle as a change: a running VM that is pending restart (or whose boot the host cannot tell)
    is stopped, its args rewritten from the database and started again; a halted VM with wrong args gets
    them rewritten. A VM already running with it returns at once (``changed=False``), asking nothing."""
    check_confirm(confirm)
    progress, policy = one_vms_progress(progress), check_policy(policy)
    plan = plan_apply(store, host, vm_uuid)
    return _confirmed(store, host, plan, confirm, progress, policy)


def _confirmed(store: Store, host: Hypervisor, plan: ReconfigurePlan, confirm: Callable[[ReconfigurePlan], bool],
               progress: ProgressCallback, policy: StopPolicy) -> ReconfigureResult:
    if plan.is_noop:
        return ReconfigureResult(plan.vm, plan.current, changed=False, restarted=False, runs_unknown=plan.runs_unknown,
                                 running=plan.running)
    ask(confirm, plan)
    return apply_plan(store, host, plan, progress=progress, policy=policy)


def _begin(store: Store, host: Hypervisor, plan: ReconfigurePlan,
           look_again: bool = True) -> tuple[journal.Operation, PowerState, str | None]:
    """Take the VM's lock (its journal row), then say what the host has now: the power state the cycle
    starts from, and the args the new segment is merged into (None: read once the VM is stopped, by
    :func:`args_once_stopped`, which every stopped VM has anyway, so that an admin's edit during the
    shutdown wait is kept).

    A VM the plan saw running and the cycle is to stop is not read here: that would be a round trip whose
    every finding is found later at no cost. A VM shut down, paused or suspended since then refuses the
    stop itself (``halted_ok=False``, see :func:`_not_stopped`), and a vgpu segment changed since is found
    by :func:`args_once_stopped`. Any other VM (planned halted, or running with its stored args only to
    rewrite) is read here, and a vgpu segment changed since the plan is refused before anything is done, as
    is a VM planned halted that someone started since (StartedSincePlan: the plan said no restart is needed).
    The host is asked after the lock, not before: taking it may wait for another session's write, and a VM
    shut down meanwhile must not be started again, nor one started meanwhile stopped."""
    with _nothing_changed_if_unwritable(), store.writing() as conn:
        current = vms.select_vm(conn, plan.vm_uuid)
        if current is None:
            raise NotFound("registered VM", plan.vm_uuid, "it was removed after the plan was made")
        # Take the lock before comparing: a change still in progress is "busy", not a stale plan.
        op = journal.begin(conn, plan.vm_uuid, "reconfigure", current, plan.new, None, label_for(host, plan.vm_uuid),
                           journal.ran_with_of(_ran_with(plan), quoted=plan.args_quoted))  # so recover() can undo as we do
        if current.config != plan.current:
            raise StalePlan(plan.vm_uuid, current.vm_name, plan.current, current.config)
        if plan.new.vm_id != current.vm_id:  # taken since the plan was made: refused before the VM is stopped
            vms.check_vm_id_free(conn, plan.new.vm_id, plan.vm_uuid)
    stops = plan.running and plan.needs_restart
    power, args = PowerState.RUNNING, None
    try:
        if look_again:
            locate_again(host, plan.vm_uuid)  # a copy on another host since the plan (or a notebook's last look)
        if not stops:
            seen = describe(host, plan.vm_uuid)
            check_power_state(plan.vm_uuid, seen.power_state, host)
            check_not_busy(host, plan.vm_uuid, seen.power_state)  # a start someone asked for since the plan
            if seen.power_state is PowerState.RUNNING and not plan.running:
                # The plan said "halted: no restart is needed", and that is what was confirmed.
                raise StartedSincePlan(plan.vm_uuid, plan.vm.vm_name)
            check_segment_unchanged(plan, seen.device_model_args)
            power, args = seen.power_state, seen.device_model_args
    except BaseException as refused:
        journal.finish(store, op, journal.ROLLED_BACK, f"nothing was done: {refused}")
        raise
    # Restarted: a VM the plan saw running and found needing it; not one whose stored args only are rewritten.
    with store.writing() as conn:
        return journal.set_was_running(conn, op, stops), power, args


@contextlib.contextmanager
def _nothing_changed_if_unwritable() -> Iterator[None]:
    """A database that refuses the first write of a change (its journal row): nothing was done yet."""
    try:
        yield
    except StoreError as refused:
        refused.reword(refused.sentence + "; nothing was changed")
        raise


@one_fleet_operation
def apply_plan(
    store: Store,
    host: Hypervisor,
    plan: ReconfigurePlan,
    *,
    progress: ProgressCallback = silent,
    policy: StopPolicy = DEFAULT_POLICY,
) -> ReconfigureResult:
    """Carry out a plan the caller has already confirmed (notebooks inspect plans, then apply them)."""
    return _apply(store, host, plan, progress, policy, look_again=True)


@one_fleet_operation
def apply_located_plan(store: Store, host: Hypervisor, plan: ReconfigurePlan, *, progress: ProgressCallback = silent,
                       policy: StopPolicy = DEFAULT_POLICY) -> ReconfigureResult:
    """:func:`apply_plan`, for a caller that has just listed every host of a fleet (a bulk apply, once for
    all its VMs): the hosts are not asked again where the VM is."""
    return _apply(store, host, plan, progress, policy, look_again=False)


def _apply(store: Store, host: Hypervisor, plan: ReconfigurePlan, progress: ProgressCallback, policy: StopPolicy,
           look_again: bool) -> ReconfigureResult:
    values.check_kind("apply_plan", "plan", plan, ReconfigurePlan,
                      "a bulk plan is applied by apply_many()" if type(plan).__name__ == "BulkPlan" else "")
    progress, policy = one_vms_progress(progress), check_policy(policy)
    if plan.is_noop:
        return ReconfigureResult(plan.vm, plan.current, changed=False, restarted=False, running=plan.running)
    progress = guarded(progress)
    op, power, args = _begin(store, host, plan, look_again)
    stop = None
    with journal.released_on_escape(store, op):  # an interrupt, or a rollback that failed: recover() takes over
        try:
            if op.was_running:
                op = journal.advance(store, op, journal.STOPPING)
                # Believed running (the plan's look, or _begin's): halted since then is refused, not "already".
                stop = stop_recorded(store, host, op.vm_uuid, policy, progress, plan.vm.vm_name, PowerState.RUNNING,
                                     halted_ok=False)
                args = args_once_stopped(host, plan)
            progress(Progress(op.vm_uuid, "updating", "Updating the database and the device-model args"))
            with store.writing() as conn:
                updated = vms.update_record(conn, op.vm_uuid, plan.new)
                op = journal.set_step(conn, op, journal.DB_UPDATED)
                locations.seen_by_change(conn, host, op.vm_uuid)  # found moved: its place follows, as a scan's would
            if args is None:
                args = host.get_device_model_args(op.vm_uuid)
            op = journal.advance(store, op, journal.WRITING_ARGS, args_before=args)  # what a rollback puts back
            update_device_model_args(host, op.vm_uuid, plan.new, args, vm_name=plan.vm.vm_name)
            started_by_other = ""
            if op.was_running:
                op = journal.advance(store, op, journal.STARTING)
                started_by_other = _start_unless_started(store, host, op, plan, progress, policy)
        except SegmentChanged as refused:  # the VM starts again with the args as they are, the other party's segment kept
            raise _roll_back_after(store, host, op, refused, progress) from refused
        except HypervisorError as refused:
            if stop is None and op.step == journal.STOPPING and refused.code == codes.VM_BAD_POWER_STATE:
                raise _not_stopped(store, host, op, plan, refused) from refused  # nothing to undo: not rolled back
            raise _roll_back_after(store, host, op, refused, progress, _ran_with(plan)) from refused
        except VgpuError as failure:
            raise _roll_back_after(store, host, op, failure, progress, _ran_with(plan)) from failure
        except Exception as failure:  # a bug or an unmapped error: the VM still gets its old configuration back
            _roll_back_unexpected(store, host, op, failure, progress, _ran_with(plan))
            raise
    started_before_write = _started_before_write(host, plan) if not op.was_running and power is PowerState.HALTED else ""
    started_by_other = started_by_other or started_before_write
    running = power is PowerState.RUNNING or bool(op.was_running) or bool(started_before_write)
    started_it = bool(op.was_running) and started_by_other in ("", RUNS_OTHER)
    booted = what_it_booted(host, plan.vm_uuid, plan.new) if started_it else Booted("")
    try:
        close(store, op, journal.DONE, _STARTED_BEFORE_WRITE.get(started_before_write) or _done_detail(started_by_other, booted),
              power=PowerState.RUNNING if running else PowerState.HALTED)
        mark_not_running(store, op.vm_uuid, booted, "it was running before it was reconfigured, and was started with "
                                                    "its new configuration")  # after close, which clears resolved marks
    except StoreError as unrecorded:
        raise _done_unrecorded(store, op, unrecorded, _runs_new_state(running, started_by_other)) from None
    return ReconfigureResult(updated, plan.current, changed=True, restarted=bool(op.was_running),
                             running=power is PowerState.RUNNING or bool(started_before_write),
                             stopped_how=stop.how if stop else None, stop_reason=stop.reason if stop else "",
                             started_by_other=started_by_other, booted=booted.runs, booted_with=booted.segment,
                             args_changed=booted.args_changed)


RUNS_NEW, RUNS_OTHER, RUNS_UNKNOWN = "new", "other", "unknown"
NOT_RUNNING = "not-running"  # what_it_booted: the VM just started was not running right after (halted, crashed, moved)
_HOW_NOT_RUNNING = "it halted, paused, crashed or left the host"  # how NOT_RUNNING is said

# What the journal keeps of a change whose VM someone else started while it was stopped.
_STARTED_BY_OTHER = {
    RUNS_NEW: "started by someone else meanwhile, with the new configuration; not restarted",
    RUNS_OTHER: "started by someone else meanwhile, with another configuration; restarted with the new one",
    RUNS_UNKNOWN: "started by someone else meanwhile; the host cannot say with which configuration; not restarted",
}


def what_it_runs(host: Hypervisor, vm_uuid: str, booted_args: str | None, new: VMConfig | None) -> str:
    """What a running VM booted with, against a change's ``new`` configuration: RUNS_NEW, RUNS_OTHER, or
    RUNS_UNKNOWN when the host cannot tell. recover() and a change whose start someone else beat both decide
    by it: the new configuration finishes the change with no restart, another one is restarted into it, and
    an unknown one is left running (a change that may have reached the VM is never undone)."""
    if booted_args is None:
        return RUNS_UNKNOWN
    return RUNS_NEW if devargs.parse(booted_args, quoted=args_quoted(host, vm_uuid)).config == new else RUNS_OTHER


@attrs.frozen
class Booted:
    """What a VM a change started booted with: see ReconfigureResult's fields of the same names."""

    runs: str
    segment: SegmentState | None = None
    args_changed: bool | None = None


def what_it_booted(host: Hypervisor, vm_uuid: str, new: VMConfig | None) -> Booted:
    """What the VM a change (or recover) has just started booted with, the host asked once it runs (at no
    extra xe process or XenAPI call: see hypervisor.base.booted_after_start): "started again with it" is
    said only of RUNS_NEW. RUNS_OTHER (it booted without the ``new`` segment, or with another) also says
    whether its args still hold the new segment: if they do, the host started it without them (xapi's
    platform filter drops keys it does not know); if not, someone changed them after they were written.
    No booted args: the power state says whether the host cannot tell (RUNS_UNKNOWN: it runs) or the VM is
    no longer running (NOT_RUNNING: halted, crashed or gone from the host since its start). A host that
    fails to say is RUNS_UNKNOWN: the change itself is done either way."""
    try:
        booted_args = booted_after_start(host, vm_uuid)
        # no booted args from a host that can tell them: not running (asked only then; a remote XenAPI
        # connection, which cannot tell, pays no call for it and stays within its round trips)
        if booted_args is None and tells_booted(host, vm_uuid) and not _still_running(host, vm_uuid):
            return Booted(NOT_RUNNING)
    except HypervisorError:
        return Booted(RUNS_UNKNOWN)
    runs = what_it_runs(host, vm_uuid, booted_args, new)
    if runs != RUNS_OTHER or booted_args is None:
        return Booted(runs)
    quoted = args_quoted(host, vm_uuid)
    try:  # only on this path: a boot that went as asked costs nothing more
        args_changed: bool | None = devargs.parse(host.get_device_model_args(vm_uuid), quoted=quoted).config != new
    except HypervisorError:
        args_changed = None
    return Booted(runs, devargs.parse(booted_args, quoted=quoted), args_changed)


# What the journal keeps of a change whose halted VM someone else started before its args were written.
_STARTED_BEFORE_WRITE = {
    RUNS_NEW: "started by someone else before its args were written, with the new configuration",
    RUNS_OTHER: ("started by someone else before its args were written, with another configuration; not restarted "
                 "(the change was confirmed as needing no restart)"),
    RUNS_UNKNOWN: "started by someone else before its args were written; the host cannot say with which configuration; not restarted",
}


def _started_before_write(host: Hypervisor, plan: ReconfigurePlan) -> str:
    """Whether someone else started the VM this change found halted between its last look and its args write:
    "" when it is still halted, else what it booted with (:func:`what_it_runs`), since the start may have read
    the args before they were written. One power-state read, on this path only, after the write; what it
    booted with is read as after a start of ours (no xe process or XenAPI call). It is not restarted: the
    change was confirmed as needing none (as StartedSincePlan says of a start seen before the write). A host
    that fails to answer says "" (the change is done either way)."""
    try:
        if host.power_state(plan.vm_uuid) not in (PowerState.RUNNING, PowerState.PAUSED):
            return ""
    except HypervisorError:
        return ""
    try:
        booted_args = booted_after_start(host, plan.vm_uuid)
    except HypervisorError:
        booted_args = None
    return what_it_runs(host, plan.vm_uuid, booted_args, plan.new)


def _still_running(host: Hypervisor, vm_uuid: str) -> bool:
    """Whether a VM just started whose booted args the host did not give is running now: asked only on that
    path. Paused right after its start is not running (nor "started with it"), and a host that no longer has
    it (moved, deleted) says it is not."""
    try:
        return host.power_state(vm_uuid) is PowerState.RUNNING
    except HypervisorError as error:
        if codes.vm_missing(error):
            return False
        raise


def _done_detail(started_by_other: str, booted: Booted) -> str:
    """What the journal keeps of a change that is done: who started the VM, and what it booted with when
    that was not the change's configuration."""
    said = [_STARTED_BY_OTHER[started_by_other]] if started_by_other else []
    if booted.runs in (RUNS_OTHER, NOT_RUNNING):
        if started_by_other == RUNS_OTHER:  # restarted, but not "with the new one": what follows says how it booted
            said[0] = said[0].removesuffix(" with the new one")
        said.append(started_short(booted))
    return "; ".join(said)


def started_short(booted: Booted, again: bool = False) -> str:
    """How a VM that was started did not end up running with its configuration (``booted.runs`` RUNS_OTHER
    or NOT_RUNNING), for the journal and recover's report: "started, but ..." ("started again, but ..."
    after a rollback)."""
    started = "started again" if again else "started"
    if booted.runs == NOT_RUNNING:
        return f"{started}, but it was not running right after ({_HOW_NOT_RUNNING})"
    segment = booted_without(booted.segment) if booted.segment is not None else "with something else"
    return f"{started}, but it booted {segment} ({_why_booted_other(booted)})"


def _why_booted_other(booted: Booted) -> str:
    """Why a VM booted with something else than its args hold, as far as they tell: changed since they were
    written; held the same when it booted without any segment (the host dropped the key: xapi's platform
    filter); held the same when it booted with another segment (the host started it with the args it held
    before their last write: read before it, or a start that outlived our wait)."""
    if booted.args_changed is None:
        return "the host cannot say why"
    if booted.args_changed:
        return "its args were changed by someone else after they were written"
    if booted.segment is not None and booted.segment.present and booted.segment.config is None:
        return "its booted segment cannot be read: see what its args and the host's logs say"
    if booted.segment is not None and booted.segment.present:
        return "the host started it with the args it held before they were last written"
    return "the host started it without its args key"


def not_running_with_it(vm_uuid: str, booted: Booted, expected: str = "its registered configuration") -> str:
    """The error sentence for a VM started again by a change, a rollback or recover that is not running with
    its configuration (``booted.runs`` RUNS_OTHER or NOT_RUNNING), saying why and what to do. ``expected``
    names what it was to boot with."""
    if booted.runs == NOT_RUNNING:
        return (f"VM {vm_uuid} was started again but is not running: {_HOW_NOT_RUNNING} right "
                f"after its start ('vgpu-admin show-vm --vm-uuid={vm_uuid}' shows it now)")
    apply = f"'vgpu-admin apply-vm --vm-uuid={vm_uuid}'"
    if booted.args_changed:
        why = (f"someone else changed its args after they were written ('vgpu-admin show-vm --vm-uuid={vm_uuid}' "
               f"shows them; {apply} writes them again and restarts it)")
    elif booted.args_changed is None:
        why = (f"the host started it without its vgpu segment, or someone else changed its args meanwhile "
               f"(see 'vgpu-admin show-vm --vm-uuid={vm_uuid}')")
    elif booted.segment is not None and booted.segment.present and booted.segment.config is None:
        why = (f"it booted with a vgpu segment that cannot be read, though its args hold the registered one "
               f"('vgpu-admin show-vm --vm-uuid={vm_uuid}' shows them; {apply} restarts it with them)")
    elif booted.segment is not None and booted.segment.present:
        why = (f"the host started it with the args it held before they were last written ({apply} restarts it "
               f"with its registered configuration)")
    else:
        why = ("the host started it without its vgpu segment, though its args hold it: xapi passes the VM only the platform "
               "keys it knows unless the pool has the 'no platform filter' feature (see docs/install-xcp-ng.md "
               "section 4); restarting it again will not help")
    return f"VM {vm_uuid} was started again but did not boot with {expected}: {why}"


def booted_without(segment: SegmentState) -> str:
    """How a VM booted that did not boot with a change's segment, after "it booted"."""
    if not segment.present:
        return "without the vgpu segment"
    return f"with another vgpu segment ({devargs.payload(segment.config)})" if segment.config is not None \
        else "with an unreadable vgpu segment"


def _start_unless_started(store: Store, host: Hypervisor, op: journal.Operation, plan: ReconfigurePlan,
                          progress: ProgressCallback, policy: StopPolicy) -> str:
    """Start the VM with the new configuration; "" once it is running. A start refused because the VM runs
    already means someone else (HA, an admin) started it while the change had it stopped, not that the new
    configuration failed: what it booted with decides (:func:`what_it_runs`), which is returned."""
    try:
        start_vm(host, op.vm_uuid, progress, policy.tick, name=plan.vm.vm_name)
        return ""
    except HypervisorError as refused:
        seen = running_after(host, op.vm_uuid, refused)
        if seen is None:
            raise
        if refused.code not in _NOT_OURS:
            # Our start ran it, whatever the host answered (xenopsd failing once the domain is up): what it
            # booted with is judged as after any start of ours; never undo a change that reached the VM.
            progress(Progress(op.vm_uuid, "starting", f"VM {op.vm_uuid} is running, though the host said its start "
                                                      f"failed ({refused})"))
            return ""
    runs = what_it_runs(host, op.vm_uuid, seen.booted_args, plan.new)
    if runs == RUNS_OTHER:  # as recover() would: restart it with the new configuration
        progress(Progress(op.vm_uuid, "starting", f"VM {op.vm_uuid} was started by someone else with another "
                                                  "configuration; restarting it with the new one"))
        stop_recorded(store, host, op.vm_uuid, policy, progress, plan.vm.vm_name, seen.power_state)
        start_vm(host, op.vm_uuid, progress, policy.tick, name=plan.vm.vm_name)
    return runs


# Refusals of a start that mean ours never ran: the VM runs already, or the host was busy with it (another
# admin's start, which may have finished since): a VM found running after them was started by someone else.
_NOT_OURS = (codes.VM_BAD_POWER_STATE, codes.OTHER_OPERATION_IN_PROGRESS)


def running_after(host: Hypervisor, vm_uuid: str, refused: HypervisorError) -> HostVM | None:
    """After a start the host said failed (``refused``): the VM as the host sees it if it is running all the
    same (its start went on, or failed only after the domain came up, or someone else started it), else None.
    One round trip, on that path only; a host that cannot be reached, or fails to answer, is not asked again."""
    if isinstance(refused, HostUnreachable):
        return None
    try:
        seen = describe(host, vm_uuid)
    except HypervisorError:
        return None
    return seen if seen.power_state is PowerState.RUNNING else None


def _not_stopped(store: Store, host: Hypervisor, op: journal.Operation, plan: ReconfigurePlan,
                 refused: HypervisorError) -> VgpuError:
    """The host refused to stop the VM because it is not running (VM_BAD_POWER_STATE): someone else shut it
    down, paused or suspended it after the plan. Nothing was done, and the journal says so first of all:
    until it does, the change reads as stopping a VM that was running, and recover() would start the VM the
    admin halted. A crash between the host's answer and this one write still leaves that reading (there
    is nothing to tell the two apart by). Returns the error to raise: ShutDownSincePlan for a halted VM,
    else the sentence a paused or suspended VM gets at the plan."""
    found = str(refused.details[2]).lower() if len(refused.details) > 2 else ""
    error: VgpuError
    if found == PowerState.HALTED.value:
        error = ShutDownSincePlan(op.vm_uuid, plan.vm.vm_name)
    else:
        if found in _STATE_NAMES:  # paused or suspended: the plan's sentence, as a plan that no longer holds
            said = _neither_running_nor_halted(op.vm_uuid, PowerState(found), host)
            error = PausedSincePlan(said.code, said.sentence, said.details)
        else:
            error = refused
        error.reword(error.sentence + "; nothing was changed")
    journal.finish(store, op, journal.ROLLED_BACK, f"nothing was done: {error}")
    return error


_STATE_NAMES = {state.value for state in PowerState}


def check_segment_unchanged(plan: ReconfigurePlan, args: str) -> None:
    """Refuse (SegmentChanged) when vgpu's segment in ``args`` is not the one the plan read: someone else
    changed this VM's vgpu settings on the host since. A plan that did not read the args checks nothing."""
    if plan.stored_args is not None and devargs.parse(args, quoted=plan.args_quoted) != plan.stored:
        raise SegmentChanged(plan.vm_uuid, plan.vm.vm_name, args)


def args_once_stopped(host: Hypervisor, plan: ReconfigurePlan) -> str:
    """The VM's args as they are once it is stopped, for the new segment to be merged into: an admin may
    have edited the rest of them (another -device, other platform keys) while the shutdown was waited for,
    and writing what was read before the stop would throw that edit away. Refuses as
    :func:`check_segment_unchanged` does when vgpu's own segment changed meanwhile."""
    args = host.get_device_model_args(plan.vm_uuid)
    check_segment_unchanged(plan, args)
    return args


@attrs.frozen
class Restored:
    """What :func:`roll_back` did besides restoring the DB row and the segment: ``restarted`` when it
    started the VM again; ``start_error`` when the VM would not start even with its previous configuration
    (it is then halted, and marked as needing attention)."""

    restarted: bool = False
    start_error: HypervisorError | None = None
    # The args someone else changed vgpu's segment in after the change wrote it (neither the change's segment
    # nor the previous one), left as they are: what they hold. None: the previous segment is in place.
    args_left: SegmentState | None = None
    booted: Booted | None = None  # restarted (or found running): what it booted with, against what its args held
    # Not started by the rollback, but found running once it was done: the change's start, said to have failed,
    # went on (or someone else started it), so it may have booted with the args being undone.
    found_running: bool = False

    @property
    def runs_again(self) -> bool:
        """The VM runs again after the rollback: started by it, or found started meanwhile."""
        return self.restarted or self.found_running

    @property
    def runs(self) -> str:
        """What the VM started again booted with (RUNS_NEW: what was put back), "" when not started again."""
        return self.booted.runs if self.booted is not None else ""

    @property
    def not_running_with_it(self) -> bool:
        """Started again, but not running with what was put back: it booted with something else, or halted."""
        return self.runs in (RUNS_OTHER, NOT_RUNNING)


def started_again(restored: Restored) -> str:
    """How a VM a rollback started again booted, as said after "the VM": "started again" only when the host
    saw it boot with what was put back; else that the host cannot tell, or what it booted with and why."""
    if restored.found_running:  # not started by the rollback: what it booted with is said all the same
        said = "started meanwhile (not by the rollback)"
        if restored.runs == RUNS_NEW:
            return f"{said} and runs with it"
        if restored.runs in (RUNS_OTHER, NOT_RUNNING) and restored.booted is not None:
            return f"{said}, {started_short(restored.booted).removeprefix('started, ')}"
        return f"{said}; the host cannot tell what it booted with"
    if restored.booted is None or restored.runs == RUNS_NEW:
        return "started again"
    if restored.runs == RUNS_UNKNOWN:
        return "started again (the host cannot tell what it booted with)"
    return started_short(restored.booted, again=True)


def args_left_sentence(restored: Restored) -> str:
    """What a rollback that left someone else's args as they are (``restored.args_left`` not None) says
    about them, and about the VM's start with them."""
    assert restored.args_left is not None
    said = (f"the registration was restored, but its args were changed by someone else meanwhile and were left as "
            f"they are ({_segment_shown(restored.args_left)})")
    if not restored.runs_again:
        return said
    return said + (", and the VM started again with them" if started_again(restored) == "started again"
                   else f", and the VM {started_again(restored)}")


def runs_unregistered(restored: Restored, registered: VMConfig) -> str:
    """What an admin must know of a VM a rollback started again with someone else's args: "" unless their
    segment differs from ``registered``, the configuration the database holds."""
    if not restored.restarted or restored.args_left is None or restored.args_left.config == registered:
        return ""
    return ("it runs with a segment that differs from the database: 'vgpu-admin apply-vm' restarts it with its "
            "registration")


def _segment_shown(segment: SegmentState) -> str:
    if segment.config is not None:
        return f"segment {devargs.payload(segment.config)}"
    return f"segment unreadable: {segment.reason}" if segment.present else "no vgpu segment"


def would_not_start(error: HypervisorError) -> bool:
    """The host refused to start the VM for a reason of the VM's own (its emulator, its resources), not
    because it is gone, busy with another operation, or running already: trying again will not help."""
    transient = (codes.OTHER_OPERATION_IN_PROGRESS, codes.VM_BAD_POWER_STATE, codes.UUID_INVALID, codes.HANDLE_INVALID)
    return not isinstance(error, HostUnreachable) and error.code not in transient


def _ran_with(plan: ReconfigurePlan) -> str | None:
    """The args to put back if applying ``plan`` fails: for a plan that changes nothing in the database
    (applying a pending configuration), the args the VM ran with; otherwise None (the old segment)."""
    return plan.booted_args if not plan.changes and plan.running else None


def roll_back(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback = silent,
              ran_with: str | None = None) -> Restored:
    """Put back the VM's old registration and, if the change wrote them, its args, and start it if it was
    running. Idempotent.

    The args are put back only where the change wrote them (``op.args_before``): as the host held them
    before that write, and only over the change's own write (:func:`_undo_args_write`). A change that failed
    before writing them leaves them exactly as they are, whatever they say. Args in which someone else changed
    vgpu's segment since the change wrote it are left as they are too, and the VM started with them: the
    result's ``args_left`` says so (:func:`args_left_sentence`).

    ``ran_with``: the args the VM ran with, when the old registration is the new one (applying a pending
    configuration): the segment in them is put back instead of the previous one, the rest of the args as the
    host held them (:func:`_with_segment_of`), so the VM runs again with the segment it ran with before.

    If the VM will not start even with its old configuration, it is left halted and marked as needing
    attention, and the refusal is returned in :class:`Restored`; any other failure is raised (the caller
    leaves the operation to recover())."""
    progress = guarded(progress)
    said: list[bool] = []

    def restoring() -> None:
        # Said once, before the first thing put back: a change refused before it changed anything (a stop
        # refused or not seen through, a recover finding the VM as it was) restores nothing, and says nothing.
        if not said:
            said.append(True)
            progress(Progress(op.vm_uuid, "rolling-back", f"Restoring the previous configuration of VM {op.vm_uuid}"))

    before = op.old
    assert before is not None, "a reconfigure (the one operation rolled back) journals the VM as it was"
    asked_to_start = op.was_running and op.step == journal.STARTING  # before the registration's restore moves it
    if asked_to_start:
        _refuse_undoing_what_runs(host, op)
    old = before.config
    try:
        op = _restore_registration(store, op, old, restoring)
    except StoreError:
        if store.moved is None:
            raise
        # The file was deleted or replaced during the change: the one that took the new values (if any) is
        # gone, and the one there now never had them. The VM still gets its old configuration back.
    left = None
    if op.args_before is not None:
        left = _undo_args_write(host, op, ran_with, restoring)
    elif ran_with is not None and op.was_running and host.power_state(op.vm_uuid) is PowerState.HALTED:
        # Applying a pending configuration, undone after the VM was stopped and before any args were written:
        # it is started again with the segment it ran with, as recover() does (recovery._ran_with_args).
        current = host.get_device_model_args(op.vm_uuid)
        put_back_device_model_args(host, op.vm_uuid, _with_segment_of(current, ran_with, args_quoted(host, op.vm_uuid)),
                                   current, before_writing=restoring)
    power = host.power_state(op.vm_uuid) if op.was_running else None
    if asked_to_start and power is PowerState.RUNNING:
        # Halted when asked above, running now: the change's start went on after all (or someone else started
        # it) while this was undone, so it may have booted with the args being undone; the host says.
        held = _segment_held(host, op.vm_uuid)
        return Restored(args_left=left, booted=_booted_as_held(host, op.vm_uuid, held), found_running=True)
    if asked_to_start and power in _NEITHER:
        # Halted when asked above, now neither running nor halted: started meanwhile (the change's own start
        # went on, or someone else's) and paused: said, and marked, not left unsaid.
        return _found_not_running(store, op, left)
    if power is not PowerState.HALTED:
        return Restored(args_left=left)
    # "Started again" must mean it booted with what its args hold as it is started (what was put back, or the
    # args as they were, drift included): the host is asked once it runs, as after a change's own start.
    held = _segment_held(host, op.vm_uuid)
    # No "Restoring" for the start itself: a VM that halted though the change's stop failed has nothing put
    # back, and is only started again (start_vm says so).
    try:
        start_vm(host, op.vm_uuid, progress, name=before.vm_name)
    except HypervisorError as refused:
        if _power_or_none(host, op.vm_uuid) in _NEITHER:  # a domain, left paused or suspended: not "halted"
            if refused.code in _NOT_OURS:  # someone else's start made it, not ours
                return _found_not_running(store, op, left)
            return Restored(restarted=True, args_left=left, booted=_not_running(store, op, _started_again_with(left)))
        if running_after(host, op.vm_uuid, refused) is not None:
            booted = _booted_as_held(host, op.vm_uuid, held)
            if refused.code in _NOT_OURS:
                # Refused because it runs already, or the host was busy starting it: someone else started it (or
                # the change's own start went on) after the look above. The rollback did not start it, nor says so.
                return Restored(args_left=left, booted=booted, found_running=True)
            return Restored(restarted=True, args_left=left, booted=booted)  # ours ran it, whatever the host said
        if not would_not_start(refused):
            raise
        if store.moved is None:  # a file deleted or replaced meanwhile has no place for the mark: the error says it
            with_what = "the args someone else changed meanwhile" if left is not None else "its previous configuration"
            with store.writing() as conn:
                attention.mark(conn, op.vm_uuid, attention.NOT_RESTARTED,
                               f"it was running before a change that failed, and would not start again with "
                               f"{with_what} ({refused}); fix that on the host, then start the VM")
        return Restored(start_error=refused, args_left=left)
    booted = _booted_as_held(host, op.vm_uuid, held)
    mark_not_running(store, op.vm_uuid, booted, _started_again_with(left))
    return Restored(restarted=True, args_left=left, booted=booted)


_NEITHER = (PowerState.PAUSED, PowerState.SUSPENDED)  # neither running nor halted: not running, in a rollback's words


def _started_again_with(left: SegmentState | None) -> str:
    what = "the args someone else changed meanwhile" if left is not None else "its previous configuration"
    return f"it was running before a change that failed, and was started again with {what}"


def _not_running(store: Store, op: journal.Operation, why_started: str) -> Booted:
    """A VM a rollback restarted (or found started) that is not running, marked as needing attention."""
    booted = Booted(NOT_RUNNING)
    mark_not_running(store, op.vm_uuid, booted, why_started)
    return booted


def _found_not_running(store: Store, op: journal.Operation, left: SegmentState | None) -> Restored:
    """A VM found started meanwhile (not by the rollback), and not running: paused or suspended."""
    why = "it was running before a change that failed, and was started meanwhile by someone else (not by the rollback)"
    return Restored(args_left=left, booted=_not_running(store, op, why), found_running=True)


def _power_or_none(host: Hypervisor, vm_uuid: str) -> PowerState | None:
    try:
        return host.power_state(vm_uuid)
    except HypervisorError:
        return None


def mark_not_running(store: Store, vm_uuid: str, booted: Booted, why_started: str) -> None:
    """Mark a VM that was running before a change, and that a start of ours (``why_started``: the change's,
    a rollback's, recover's) left not running right after (``booted.runs`` NOT_RUNNING), as needing
    attention until a command sees it running: status and scan then say so, not just "halted". Nothing
    for any other outcome, nor where the database file was replaced meanwhile (the error says it)."""
    if booted.runs != NOT_RUNNING or store.moved is not None:
        return
    with store.writing() as conn:
        attention.mark(conn, vm_uuid, attention.NOT_RESTARTED,
                       f"{why_started}, but was not running right after ({_HOW_NOT_RUNNING}): "
                       "see what the host says of it, then resume or start it")


def _booted_as_held(host: Hypervisor, vm_uuid: str, held: SegmentState | None) -> Booted:
    """What a VM a rollback started (or found started) booted with, against the segment its args held."""
    return Booted(RUNS_UNKNOWN) if held is None else what_it_booted(host, vm_uuid, held.config)


def _refuse_undoing_what_runs(host: Hypervisor, op: journal.Operation) -> None:
    """Before undoing a change whose start the host said failed, ask the host, since the change may have
    reached the VM: a VM running, paused or suspended with the new configuration (its start went on, or failed
    only once the domain was up), or with one the host cannot tell, is not undone (VM_RUNNING_AFTER_FAILED_START:
    recover finishes it, once a paused or suspended VM is resumed); nor is a VM the host is still starting (a start that
    outlived our wait: VM_STARTING_AFTER_FAILED_START, for recover once that start is done). A host that cannot be
    asked fails the rollback the same way: it is left to recover."""
    operations = host.current_operations(op.vm_uuid)
    if operations and "start" in operations:
        raise codes.host_error(codes.VM_STARTING_AFTER_FAILED_START, [op.vm_uuid, ", ".join(operations)], op.vm_uuid)
    if operations:  # busy with something else (an export): nothing is undone under it either, as the host would refuse
        raise codes.host_error(codes.OTHER_OPERATION_IN_PROGRESS, ["VM", op.vm_uuid, ", ".join(operations)], op.vm_uuid)
    seen = describe(host, op.vm_uuid)
    # Suspended too: the change had it halted, so it was started since, and may carry the change (unknown).
    has_domain = seen.power_state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED)
    if has_domain and what_it_runs(host, op.vm_uuid, seen.booted_args, op.new) != RUNS_OTHER:
        raise codes.host_error(codes.VM_RUNNING_AFTER_FAILED_START, [op.vm_uuid, seen.power_state.value], op.vm_uuid)


def _segment_held(host: Hypervisor, vm_uuid: str) -> SegmentState | None:
    """vgpu's segment in the VM's args as a rollback starts it again; None when the host fails to say (the
    VM is started all the same: what it booted with is then unknown)."""
    try:
        return devargs.parse(host.get_device_model_args(vm_uuid), quoted=args_quoted(host, vm_uuid))
    except HypervisorError:
        return None


def _undo_args_write(host: Hypervisor, op: journal.Operation, ran_with: str | None,
                     restoring: Callable[[], None]) -> SegmentState | None:
    """Undo the change's write of the VM's args, calling ``restoring`` first; only the change's own write.

    Args that hold exactly that write get back the text the host held before it (with ``ran_with``'s segment,
    see :func:`roll_back`). Args someone else edited around the change's segment, that segment kept, get the
    previous segment back in its place, their edit kept. Args that never took the write, or hold the previous
    segment already, are left as they are. So are args in which someone else changed vgpu's segment itself:
    their segment is returned (None in every other case)."""
    assert op.args_before is not None and op.old is not None and op.new is not None
    current = host.get_device_model_args(op.vm_uuid)
    quoted = args_quoted(host, op.vm_uuid)
    before = op.args_before.text  # None: too long for the journal to keep (recover only); the segments decide
    if before is not None and current == devargs.merge(before, op.new, quoted=quoted):
        put_back = before if ran_with is None else _with_segment_of(before, ran_with, quoted)
        put_back_device_model_args(host, op.vm_uuid, put_back, current, before_writing=restoring)
        return None
    if current == before:
        return None  # the write never landed
    found = devargs.parse(current, quoted=quoted)
    previous = devargs.SegmentState(True, op.old.config) if ran_with is None else devargs.parse(ran_with, quoted=quoted)
    if (found.present, found.config) == (previous.present, previous.config):
        return None
    if found.config == op.new and not previous.malformed:  # the change's own segment: put the previous one in its place
        update_device_model_args(host, op.vm_uuid, previous.config, current, before_writing=restoring)
        return None
    return found


def _with_segment_of(args: str, ran_with: str, quoted: bool) -> str:
    """``args`` with vgpu's segment as it is in ``ran_with`` (the args a VM ran with), everything else kept:
    undoing the application of a pending configuration gives the VM back the segment it ran with, never the
    rest of what it ran with, which would throw away an admin's edit of the other args made since it booted.
    A segment that cannot be read is put back as written, after the rest."""
    segment = devargs.parse(ran_with, quoted=quoted)
    if not segment.malformed:
        return devargs.merge(args, segment.config, quoted=quoted)
    rest = devargs.strip(args, quoted=quoted)
    return f"{rest} {segment.raw}" if rest else str(segment.raw)


def _restore_registration(store: Store, op: journal.Operation, old: VMConfig, restoring: Callable[[], None]) -> journal.Operation:
    """Put the old registration back in the database, when it took the new values or holds others (changed
    by hand meanwhile), calling ``restoring`` first. Not written otherwise: a database that stopped taking
    writes before the update (read-only, full) does not keep the VM from getting its old configuration back
    and starting again."""
    if not op.db_updated and _registered_config(store, op.vm_uuid) in (None, old):
        return op
    restoring()
    with store.writing() as conn:
        current = vms.select_vm(conn, op.vm_uuid)
        if current is not None and current.config != old:
            vms.update_record(conn, op.vm_uuid, old)
        if op.db_updated:
            # The DB holds the old values again; the journal must say so in the same transaction, or a
            # recover() after a failure below would roll *forward* to the new values the DB no longer has.
            op = journal.set_reverted(conn, op, journal.STOPPING if op.was_running else journal.PLANNED)
    return op


def _registered_config(store: Store, vm_uuid: str) -> VMConfig | None:
    with store.reading() as conn:
        current = vms.select_vm(conn, vm_uuid)
    return None if current is None else current.config


def _roll_back_after(store: Store, host: Hypervisor, op: journal.Operation, failure: VgpuError, progress: ProgressCallback,
                     ran_with: str | None = None) -> VgpuError:
    """Undo a failed reconfigure and return the error to raise: the failure itself when the configuration
    had not changed yet, else ReconfigureFailed saying whether the rollback worked."""
    if isinstance(failure, HypervisorError) and failure.code == codes.VM_UNDEFINED_DURING_SHUTDOWN and not op.db_updated:
        return _undefined_while_stopping(store, op, failure)
    if isinstance(failure, HypervisorError) and failure.code == codes.VM_IS_TRANSIENT and not op.db_updated:
        # The host refused to stop a domain that stopping would delete, before anything was asked of it or
        # written: there is nothing to undo, and writing the old segment back would be refused the same way.
        close(store, op, journal.ROLLED_BACK, str(failure), power=PowerState.RUNNING)
        failure.reword(failure.sentence + "; nothing was changed")
        return failure
    try:
        restored = roll_back(store, host, op, progress, ran_with)
    except VgpuError as rollback_error:
        # Leave the journal open (released by apply_plan): recover() will try again, the VM stays locked meanwhile.
        starting = isinstance(rollback_error, HypervisorError) and rollback_error.code == codes.VM_STARTING_AFTER_FAILED_START
        return ReconfigureFailed(op.vm_uuid, failure, rolled_back=False, rollback_error=rollback_error,
                                 left_halted=not starting and _left_halted(host, op))  # not "halted" while it starts
    try:
        return _closed_after_rollback(store, host, op, failure, restored, ran_with)
    except StoreError as unrecorded:  # the VM has its old configuration back; the database could not say so
        if store.moved is not None:
            return _file_gone(store, op, _restored_state(restored, op), failure)
        return _unrecorded(op, failure, restored, unrecorded)


def _left_halted(host: Hypervisor, op: journal.Operation) -> bool:
    """The change stopped the VM, and it is halted now (as far as the host can say)."""
    if not op.was_running or op.step == journal.PLANNED:
        return False
    try:
        return host.power_state(op.vm_uuid) is PowerState.HALTED
    except HypervisorError:
        return False


def _restored_state(restored: Restored, op: journal.Operation) -> str:
    """What a rollback gave the VM, as the end of a sentence."""
    if restored.args_left is not None:
        assert op.old is not None
        left = args_left_sentence(restored)
        if restored.start_error is not None:
            return f"{left}, but the VM would not start with them ({restored.start_error}) and is halted"
        advice = runs_unregistered(restored, op.old.config)
        return f"{left}; {advice}" if advice else left
    if restored.start_error is not None:
        return f"its previous configuration is in place, but the VM would not start with it ({restored.start_error}) and is halted"
    if restored.restarted and started_again(restored) == "started again":
        return "the VM was stopped for the change and started again with its previous configuration"
    if restored.runs_again:
        return f"its previous configuration is in place; the VM was stopped for the change and {started_again(restored)}"
    return "the VM keeps its previous configuration"


def _runs_new_state(running: bool, started_by_other: str) -> str:
    """What a reconfigured VM runs, as the end of a sentence."""
    if running and started_by_other == RUNS_UNKNOWN:
        return "the VM is running (started by someone else meanwhile; the host cannot say with which configuration)"
    if running:
        return "the VM is running with its new configuration"
    return "the VM is halted and starts with its new configuration"


def _done_unrecorded(store: Store, op: journal.Operation, unrecorded: StoreError, state: str) -> StoreError:
    """The change is in place on the host (``state`` says what the VM has), but the database refused the
    last write (closing it): say so, and that recover() closes it once the database can be written (it
    finds the change made: a reconfigure's VM running or halted as it should be, a register's, remove's or
    repair's segment as the database wants it, and closes it as finished)."""
    if store.moved is not None:
        return _file_gone(store, op, state)
    unrecorded.reword(f"{unrecorded.sentence}; the change to VM {op.vm_uuid} is in place: {state}; {_RECOVER_ONCE_WRITABLE}")
    return unrecorded


# What an error says when the host side is settled but the database could not record it.
_RECOVER_ONCE_WRITABLE = ("run 'vgpu-admin recover' once the database can be written, to close the change (the VM "
                          "stays locked until then)")


def _file_gone(store: Store, op: journal.Operation, state: str, failure: VgpuError | None = None) -> StoreError:
    """The database file was deleted or replaced during the change: what the VM has (``state``: undone on
    the host, or the change in place), and what the database there now knows of it. Not "run recover": the
    change's journal row is in the file that was there, which recover() will never read."""
    replaced = store.moved == "replaced"
    how = "replaced by another file" if replaced else "deleted"
    if not op.db_updated:
        when, known = "", "nothing was changed in any database"
    elif replaced:
        when = ", after the change had been written to the file it replaced"
        known = "'vgpu-admin scan-vms' shows whether the file there now agrees with the VM"
    else:
        when = ", after the change had been written to it"
        known = "once the database is restored, 'vgpu-admin scan-vms' shows whether it agrees with the VM"
    if not replaced:
        known += " (restore it before the next command, or that command creates a new, empty database)"
    what = "" if failure is None or isinstance(failure, StoreError) else f", and reconfiguring it failed ({failure})"
    return StoreError(store.path, f"database {store.path} was {how} during the change to VM {op.vm_uuid}{when}{what}; "
                                  f"{state}; {known}")


def _unrecorded(op: journal.Operation, failure: VgpuError, restored: Restored, unrecorded: StoreError) -> StoreError:
    """The rollback worked, but closing the change could not be written: say so, and what the VM runs."""
    state = _restored_state(restored, op)
    what = "" if isinstance(failure, StoreError) else f" after reconfiguring VM {op.vm_uuid} failed ({failure})"
    unrecorded.reword(f"{unrecorded.sentence}{what}; {state}; {_RECOVER_ONCE_WRITABLE}")
    return unrecorded


def _closed_after_rollback(store: Store, host: Hypervisor, op: journal.Operation, failure: VgpuError, restored: Restored,
                           ran_with: str | None) -> VgpuError:
    if restored.start_error is not None:
        close(store, op, journal.ROLLED_BACK, f"{failure}; the VM would not start again: {restored.start_error}")
        return ReconfigureFailed(op.vm_uuid, failure, rolled_back=True, restart_error=restored.start_error,
                                 args_left=args_left_sentence(restored) if restored.args_left is not None else "")
    left = _restored_state(restored, op) if restored.args_left is not None else ""
    if isinstance(failure, ShutdownNotConfirmed):
        return _unconfirmed_stop(store, host, op, failure, restored)
    close(store, op, journal.ROLLED_BACK, _rolled_back_detail(failure, restored), power=_power_after(op, restored))
    again = started_again(restored)
    # A refusal, not a configuration that failed: nothing was changed on the host (the args are the other
    # party's, as its sentence says) and the database is back, even when it had taken the new values (an edit
    # of the segment found at the write: see update_device_model_args).
    if not op.db_updated or isinstance(failure, SegmentChanged):
        tail = f"; its configuration was not changed and the VM was {again}" if restored.runs_again else "; nothing was changed"
        failure.reword(failure.sentence + tail)
        return _restarted_as(failure, restored)
    error = ReconfigureFailed(op.vm_uuid, failure, rolled_back=True, restarted=restored.restarted, args_left=left,
                              started_again=again if restored.runs_again else "")
    if ran_with is not None and not left:
        error.reword(f"VM {op.vm_uuid} would not start with its registered configuration ({failure}); it was "
                     "started again with the arguments it ran with before, which now differ from the database "
                     "(see 'vgpu-admin show-vm')" if again == "started again" else
                     f"VM {op.vm_uuid} would not start with its registered configuration ({failure}); the arguments "
                     f"it ran with before were put back and it was {again} (see 'vgpu-admin show-vm')")
    return _restarted_as(error, restored)


_Failure = TypeVar("_Failure", bound=VgpuError)


def _restarted_as(error: _Failure, restored: Restored) -> _Failure:
    """``error``, saying (for a script) whether the rollback started the VM again and what it booted with."""
    error.vm_restarted = restored.restarted
    error.vm_booted = restored.runs
    return error


def _rolled_back_detail(failure: VgpuError, restored: Restored) -> str:
    """What the journal keeps of a change rolled back: the failure and, when the VM started again is not
    running with what was put back, that too."""
    return f"{failure}; {started_again(restored)}" if restored.not_running_with_it else str(failure)


def _power_after(op: journal.Operation, restored: Restored) -> PowerState | None:
    """The VM's power state as a rollback leaves it, for the journal: not known when it was started again
    and was not running right after."""
    if restored.runs == NOT_RUNNING:
        return None
    return PowerState.RUNNING if op.was_running else PowerState.HALTED


def _unconfirmed_stop(store: Store, host: Hypervisor, op: journal.Operation, failure: ShutdownNotConfirmed,
                      restored: Restored) -> ShutdownNotConfirmed:
    """A clean shutdown the host accepted and forcing was not allowed: the change is not made, but the
    request was delivered. Unless the VM halted meanwhile (and was started again), it may halt at any
    moment: it is marked as needing attention until a command sees it halted or running again."""
    if restored.restarted:
        close(store, op, journal.ROLLED_BACK, _rolled_back_detail(failure, restored), power=_power_after(op, restored))
        failure.reword(failure.sentence + f"; it halted meanwhile and was {started_again(restored)}, with its "
                                          "configuration unchanged")
        return _restarted_as(failure, restored)
    return _request_delivered(store, op, failure, str(failure.cause or "deadline passed"))


def _undefined_while_stopping(store: Store, op: journal.Operation, failure: HypervisorError) -> HypervisorError:
    """The domain was undefined after its clean shutdown was requested: nothing was changed but that request,
    which the guest may still act on, and libvirt then deletes the now transient domain. Nothing can be
    undone (the old segment cannot be written to a transient domain, and is there anyway): the VM is marked,
    as for a request not seen through (:func:`_unconfirmed_stop`), and the admin told how to keep it."""
    return _request_delivered(store, op, failure, str(failure), transient=True)


_HypervisorFailure = TypeVar("_HypervisorFailure", bound=HypervisorError)


def _request_delivered(store: Store, op: journal.Operation, failure: _HypervisorFailure, why: str, *,
                       transient: bool = False) -> _HypervisorFailure:
    """The change is closed as not made, but its clean shutdown request reached the guest, which may still act
    on it: the VM is marked as needing attention until seen halted or running again, and ``failure`` says so.
    A ``transient`` domain also vanishes when it halts, unless it is defined again."""
    vanishes = ", and being transient it will then vanish: define it again (virsh define)" if transient else ""
    with store.writing() as conn:
        journal.close(conn, op, journal.ROLLED_BACK, str(failure))
        attention.mark(conn, op.vm_uuid, attention.SHUTDOWN_UNCONFIRMED,
                       f"a clean shutdown was requested and not seen through ({why}), so it may still halt by "
                       f"itself{vanishes}; once it has halted, start it, or run the change again")
    unless = (", and being transient it will vanish when it halts unless it is defined again (virsh define)"
              if transient else "")
    failure.reword(f"{failure.sentence}; the shutdown request was delivered, so the VM may still halt by itself{unless}. "
                   "Its configuration was not changed, and it is marked as needing attention until it is seen "
                   "halted or running again")
    return failure


def _roll_back_unexpected(store: Store, host: Hypervisor, op: journal.Operation, failure: Exception, progress: ProgressCallback,
                          ran_with: str | None = None) -> None:
    """Undo a reconfigure that an unexpected exception (not a VgpuError: a bug) stopped. The exception
    itself is re-raised by the caller, so its traceback reaches the log; a note on it says what became of
    the VM."""
    try:
        restored = roll_back(store, host, op, progress, ran_with)
    except Exception as rollback_error:  # the row stays open and released_on_escape hands it to recover()
        failure.add_note(f"Rolling back VM {op.vm_uuid} also failed ({rollback_error}).")
        return
    said = f"{type(failure).__name__}: {failure}"
    close(store, op, journal.ROLLED_BACK, f"{said}; {started_again(restored)}" if restored.not_running_with_it else said)
    if restored.args_left is not None:
        failure.add_note(f"The change to VM {op.vm_uuid} was rolled back: {_restored_state(restored, op)}.")
        return
    if restored.start_error is not None:
        failure.add_note(f"The change to VM {op.vm_uuid} was rolled back: its previous configuration is in place, but "
                         f"the VM would not start with it ({restored.start_error}) and is marked as needing attention.")
        return
    running = " and the VM is running" if op.was_running else ""
    if restored.runs_again and started_again(restored) != "started again":
        running = f" and the VM was {started_again(restored)}"
    failure.add_note(f"The change to VM {op.vm_uuid} was rolled back: its previous configuration is in place{running}.")


# --- register and remove, with the segment ----------------------------------------------------------------


@attrs.frozen
class RegisterResult:
    vm: VM
    host_vm: HostVM
    shared_name: SharedName | None = None  # the VM's name is another registered VM's too: worth a warning
    named_like_uuid: NamedLikeUUID | None = None  # the VM's name is another VM's UUID: worth a warning too
    args_quoted: bool = False  # the host keeps its args as a quoted argument list (see hypervisor.base.args_quoted)
    # Why the host's name for the VM was not recorded (too long, or not one printable line): what a VM name
    # must be. None when it was, or when a name was given, or when the host has none.
    host_name_refused: str | None = None

    @property
    def applies_at_next_boot(self) -> bool:
        """The segment is written now; a running VM's QEMU only reads it when it next boots."""
        return self.host_vm.power_state is not PowerState.HALTED

    @property
    def runs_it_already(self) -> bool:
        """The running VM's QEMU already has this configuration (registered again, as it ran)."""
        booted = self.host_vm.booted_args
        return booted is not None and devargs.parse(booted, quoted=self.args_quoted).config == self.vm.config


def explain_unregistered(host: Hypervisor, missing: NotFound, *, removing: bool = False) -> NotFound:
    """For a command that talks to the host anyway, given a VM that is not registered: NotRegistered when
    the host has the VM (register it first; when ``removing``, there is nothing to remove), else NotFound
    saying the host lacks it too. Costs one host listing, on this path only; a host that cannot be listed
    leaves ``missing`` as it was."""
    if missing.kind != "registered VM":
        return missing
    try:
        host_vm = next((vm for vm in host.list_vms() if vm.uuid == missing.key), None)
    except HypervisorError:
        return missing
    if host_vm is None:
        return NotFound("registered VM", missing.key, "the host has no VM with this UUID either (see 'vgpu-admin scan-vms')")
    return NotRegistered(host_vm.uuid, host_name(host_vm), _nothing_to_remove(host_vm, args_quoted(host, host_vm.uuid)) if removing else None)


def _nothing_to_remove(host_vm: HostVM, quoted: bool) -> str:
    """A VM that was never registered may still carry a segment (a clone's, a leftover): repair clears it."""
    if not devargs.parse(host_vm.device_model_args, quoted=quoted).present:
        return "there is nothing to remove"
    return (f"there is nothing to remove (to clear the vgpu segment it carries, "
            f"run 'vgpu-admin repair-vm --vm-uuid={host_vm.uuid}')")


def find_host_vm(store: Store, host: Hypervisor, vm_uuid: str) -> tuple[HostVM, list[HostVM], tuple[str, ...]]:
    """The VM as its host lists it, every VM the hosts listed (register checks the name against them
    without asking again), and the hosts that listed no such UUID. Over a fleet every host is listed: a host
    that is down does not stop finding the VM on another, and two hosts listing it is DuplicateVM (never a
    guess); one no host lists is refused as repair-vm refuses it (:func:`_on_no_host`)."""
    listings = as_fleet(host).survey()
    listed = [host_vm for listing in listings for host_vm in listing.vms]
    found = [host_vm for host_vm in listed if host_vm.uuid == vm_uuid]
    if len(found) > 1:
        raise DuplicateVM(vm_uuid, [host_vm.host for host_vm in found])
    if found:
        return found[0], listed, tuple(listing.label for listing in listings if listing.ok and listing.label != found[0].host)
    for listing in listings:
        if listing.error is not None:
            raise listing.error
    raise _on_no_host(store, host, vm_uuid)


def _on_no_host(store: Store, host: Hypervisor, vm_uuid: str) -> VgpuError:
    """A VM no host of the run lists, every one having answered: over a fleet, the refusal naming a host it may
    be on that the run does not ask (last seen there, or left out by --host: see :func:`locations.not_in_run`),
    else that no host of the fleet has it; on one host, that the host has no such VM."""
    if isinstance(host, Fleet) and host.labels != ("",):
        refusal = locations.not_in_run(store, host, vm_uuid)
        if refusal is not None:
            return refusal
        if host.several:
            missing = NotFound("VM", vm_uuid)
            missing.reword(f"{host.on_no_host(vm_uuid)} (see 'vgpu-admin scan-vms')")
            return missing
    return NotFound("VM", vm_uuid, "the host has no such VM (see 'vgpu-admin scan-vms')")


@one_fleet_operation
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

    Without ``vm_name`` the host's name for the VM is recorded; a name given blank is refused (a typo, not a
    request for the host's name). If the segment cannot be written the registration is undone and the
    host's error raised: nothing changes.
    """
    if isinstance(vm_name, str) and not vm_name.strip():
        raise InvalidValue("VM name", vm_name, f"a non-empty printable text of at most {NAME_MAX} characters",
                           sentence=f"invalid VM name {vm_name!r}: expected a non-empty printable text of at most "
                                    f"{NAME_MAX} characters (leave the name out for the host's name)")
    reg = vms.make_registration(vm_uuid, vm_name, pool, priority, vm_id)
    host_vm, listed, without = find_host_vm(store, host, reg.vm_uuid)
    check_only_copy(store, host, reg.vm_uuid, host_vm.host)
    check_not_busy(host, reg.vm_uuid, host_vm.power_state, "the VM was not registered",
                   " (a running VM is not restarted: it takes its segment at its next boot)")
    refused = None
    if reg.vm_name is None:
        name, refused = _host_name_or_refusal(host_vm)
        reg = attrs.evolve(reg, vm_name=name)
    with store.writing() as conn:
        op = journal.begin(conn, reg.vm_uuid, "register", None, None, None, host_vm.host)
        vm = vms.insert_registration(conn, reg)
        op = journal.set_step(conn, op, journal.DB_UPDATED, vm.config)
        # a label remembered as another host has that host's rows kept apart first (seen_listed would, after)
        locations.record_identities(conn, locations.identities(host, [host_vm.host]))
        locations.record(conn, [(vm.vm_uuid, host_vm.host, host_vm.resident_on)])  # a fleet's: where it is
        locations.seen_listed(conn, host, vm.vm_uuid, host_vm.host, without)
    with journal.released_on_escape(store, op):
        try:
            op = journal.advance(store, op, journal.WRITING_ARGS)
            update_device_model_args(host, vm.vm_uuid, vm.config)
        except VgpuError as failure:
            with store.writing() as conn:
                vms.withdraw_registration(conn, vm.vm_uuid)  # history shows no register, nor a remove
            journal.finish(store, op, journal.ROLLED_BACK, str(failure))
            failure.reword(failure.sentence + "; the VM was not registered")
            raise failure
    _finish_in_place(store, op, lambda: _segment_state(host, vm.vm_uuid, "it is registered and its vgpu segment written"))
    with store.reading() as conn:
        shared = naming.shared_names(conn, [vm])
        like_uuid = naming.named_like_uuid(conn, vm, listed)
    return RegisterResult(vm, host_vm, shared[0] if shared else None, like_uuid, args_quoted(host, vm.vm_uuid), refused)


def _finish_in_place(store: Store, op: journal.Operation, state: Callable[[], str]) -> None:
    """Close a register, remove or repair whose host work is done. A database that refuses the write gets
    :func:`_done_unrecorded`'s sentence, ``state()`` saying what is on the host, not a bare StoreError."""
    try:
        journal.finish(store, op, journal.DONE)
    except StoreError as unrecorded:
        raise _done_unrecorded(store, op, unrecorded, state()) from None


def _segment_state(host: Hypervisor, vm_uuid: str, done: str) -> str:
    """``done`` (the segment written or cleared), and when it takes effect: the VM's power state as the host
    says now, asked only on this failure path (a host that cannot say leaves the state out)."""
    try:
        power = host.power_state(vm_uuid)
    except HypervisorError:
        return f"{done}, which takes effect at the VM's next boot"
    if power is PowerState.HALTED:
        return f"{done}; the VM is halted, so this takes effect when it starts"
    return f"{done}; the VM is {power.value}, so this takes effect at its next boot"


def host_name(host_vm: HostVM) -> str | None:
    return _host_name_or_refusal(host_vm)[0]


def _host_name_or_refusal(host_vm: HostVM) -> tuple[str | None, str | None]:
    """The host's name for the VM as it is recorded, and, when it is not (a name we would not accept from a
    user is not recorded either), what a VM name must be."""
    try:
        return values.parse_vm_name(host_vm.name), None
    except InvalidValue as refused:
        return None, f"a VM name is {refused.allowed}"


@attrs.frozen
class RemoveResult:
    vm: VM  # the registration as it was
    segment_cleared: bool  # False when the host no longer has the VM (nothing to clear)
    # What the VM's running QEMU booted with, when it is running with a segment: it keeps it until it stops
    # (scan shows it meanwhile, as an unregistered VM still running with a vm_id), None otherwise.
    running_with: VMConfig | None = None


@one_fleet_operation
def remove_vm(store: Store, host: Hypervisor, vm_uuid: object) -> RemoveResult:
    """Unregister a VM and clear its segment. A VM the host no longer has is just unregistered."""
    try:
        vm = vms.get(store, vm_uuid)
    except NotFound as missing:
        raise explain_unregistered(host, missing, removing=True) from None
    # Ask the host before journalling, as repair_vm does: a host that refuses us at once (no password, no
    # such host) leaves nothing behind, not an operation that locks the VM until recover.
    try:
        seen = _on_host_or_refused(store, host, vm.vm_uuid)
        if seen is not None:
            check_only_copy(store, host, vm.vm_uuid, seen.host)
            check_not_busy(host, vm.vm_uuid, seen.power_state, then="")  # its start read the segment
    except HypervisorError as failure:
        failure.reword(failure.sentence + "; the VM is still registered")
        raise
    cleared = seen is not None
    label = label_for(host, vm.vm_uuid) if cleared else None
    with store.writing() as conn:
        op = journal.begin(conn, vm.vm_uuid, "remove", vm, None, None, label)
        if cleared:
            locations.seen_by_change(conn, host, vm.vm_uuid)
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
    _finish_in_place(store, op, lambda: _segment_state(host, vm.vm_uuid, "it is unregistered and its vgpu segment cleared")
                     if cleared else "it is unregistered (the host no longer has the VM)")
    return RemoveResult(removed, cleared, _running_with(host, _still_on_host(host, vm.vm_uuid) if cleared else None))


def _still_on_host(host: Hypervisor, vm_uuid: str) -> HostVM | None:
    """The VM as the host describes it once it is unregistered, not as it was before the lock: it may have
    stopped, or been restarted by another session's change, while this one waited for the database. None
    when the host cannot say now (the removal is done; only what it runs with goes unsaid)."""
    try:
        return _on_host(host, vm_uuid)
    except HypervisorError:
        return None


def _running_with(host: Hypervisor, seen: HostVM | None) -> VMConfig | None:
    """The configuration a running VM's QEMU booted with, if the host can tell and it had one."""
    if seen is None or not seen.booted_args or seen.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
        return None
    return devargs.parse(seen.booted_args, quoted=args_quoted(host, seen.uuid)).config



def _on_host(host: Hypervisor, vm_uuid: str, look_again: bool = False) -> HostVM | None:
    """The VM as the host describes it, or None when the host has no such VM (any other host error is raised).
    ``look_again``: over a fleet, every host is asked again first (:func:`locate_again`), as before a change."""
    try:
        if look_again:
            locate_again(host, vm_uuid)
        return describe(host, vm_uuid)
    except HypervisorError as error:
        if not codes.vm_missing(error):
            raise
        return None


def _on_host_or_refused(store: Store, host: Hypervisor, vm_uuid: str) -> HostVM | None:
    """:func:`_on_host` (every host asked again first), for a VM about to be taken for gone when no host has it:
    one that may still be on a host the run does not ask (taken out of [hosts], or left out by --host) raises
    the refusal naming it (see :func:`locations.not_in_run`) instead."""
    try:
        seen = _on_host(host, vm_uuid, look_again=True)
    except HypervisorError as error:
        raise locations.not_in_run(store, host, vm_uuid, error) or error
    if seen is None and (elsewhere := locations.not_in_run(store, host, vm_uuid)) is not None:
        raise elsewhere
    return seen


# --- repair -----------------------------------------------------------------------------------------------


@attrs.frozen
class RepairResult:
    """What repair_vm did: the segment now matches the DB (``expected`` None: no segment, unregistered).
    ``booted_args``: what the running VM booted with (None when it is halted or the host cannot tell)."""

    vm_uuid: str
    expected: VMConfig | None
    before: str
    after: str
    booted_args: str | None = None
    args_quoted: bool = False  # the host keeps its args as a quoted argument list (see hypervisor.base.args_quoted)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def booted(self) -> SegmentState | None:
        return None if self.booted_args is None else devargs.parse(self.booted_args, quoted=self.args_quoted)

    @property
    def pending(self) -> bool:
        """A registered VM running with something else than its (now rewritten) segment: restart it."""
        return self.expected is not None and self.booted is not None and self.booted.config != self.expected


@one_fleet_operation
def repair_vm(store: Store, host: Hypervisor, vm_uuid: object) -> RepairResult:
    """Make a VM's device-model args agree with the database: a registered VM's segment is rewritten, an
    unregistered VM's (a clone's, or a leftover) removed. Takes effect at the VM's next boot."""
    canonical = values.parse_uuid(vm_uuid)
    vm = vms.find(store, canonical)
    expected = vm.config if vm is not None else None
    seen = _to_repair(store, host, canonical, vm)  # read before journalling: a refusal changes nothing
    check_only_copy(store, host, canonical, label_for(host, canonical))
    # A start under way has read the args: "at its next boot" would be said of a VM about to run without them.
    check_not_busy(host, canonical, seen.power_state, then="")
    before = seen.device_model_args
    with store.writing() as conn:
        op = journal.begin(conn, canonical, "repair", vm, expected, None, label_for(host, canonical))
        locations.seen_by_change(conn, host, canonical)
    with journal.released_on_escape(store, op):
        try:
            after = update_device_model_args(host, canonical, expected)
        except VgpuError as failure:
            journal.finish(store, op, journal.FAILED, str(failure))
            raise
    _finish_in_place(store, op, lambda: _segment_state(
        host, canonical, "its vgpu segment matches the database" if expected is not None
        else "its vgpu segment is removed (the VM is not registered)"))
    return RepairResult(canonical, expected, before, after, _booted_quietly(host, canonical),
                        args_quoted(host, canonical))


def _booted_quietly(host: Hypervisor, vm_uuid: str) -> str | None:
    """What the VM's running domain booted with, for a report after the fact: a host that fails to say
    is "cannot tell" here, since the change itself is done."""
    try:
        return host.booted_device_model_args(vm_uuid)
    except HypervisorError:
        return None


def _to_repair(store: Store, host: Hypervisor, vm_uuid: str, vm: VM | None) -> HostVM:
    """The VM as the host describes it (its power state and device-model args, in one round trip); NotFound
    (bad input, like register-vm's) when the host has no such VM."""
    try:
        locate_again(host, vm_uuid)  # over a fleet: a copy on another host since it last looked is refused
        return describe(host, vm_uuid)
    except HypervisorError as error:
        if not codes.vm_missing(error):
            raise (locations.not_in_run(store, host, vm_uuid, error) if vm is not None else None) or error
    if vm is None:
        raise NotFound("VM", vm_uuid, "it is neither registered nor on the host (see 'vgpu-admin scan-vms')")
    raise registered_but_gone(store, host, vm_uuid)


def registered_but_gone(store: Store, host: Hypervisor, vm_uuid: str) -> VgpuError:
    """The error for a registered VM the host says it has no such VM of (bad input, as for repair-vm, set-*
    and apply-vm alike, with the one remedy): over a fleet, the refusal naming a host the run leaves out that
    may have it (see :func:`locations.not_in_run`); else NotFound saying how to unregister it."""
    elsewhere = locations.not_in_run(store, host, vm_uuid)
    if elsewhere is not None:
        return elsewhere
    return NotFound("VM", vm_uuid, f"the host has no such VM, though it is registered: "
                                   f"'vgpu-admin remove-vm --vm-uuid={vm_uuid}' unregisters it")

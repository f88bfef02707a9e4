"""Finishing or undoing operations that a crash, a kill or an interrupt left unfinished.

recover() goes through the unfinished operations, oldest first. It *claims* each one before it acts
(:func:`vgpu.journal.claim`): only an operation whose session is gone (or gave it up, or is this process's
own) is taken, in one write transaction, so two recover() runs never work on one operation, and a session
still at work is never overtaken. An operation of a session on another host cannot be checked from here, nor
one recorded by host and PID alone (schema 1) whose PID now runs: it is taken only with ``take_over``.

Then it asks the host what the VM is doing now, and decides:

- the host is still carrying out something on the VM (a start or a shutdown the dead session asked for):
  **later**, nothing is changed; run recover again once the host is done;
- the VM already runs the new configuration: **finish** (database and arguments), with no extra restart;
- the database has the new values: **finish**: write the segment, start the VM if it was running (or
  restart it, when it runs an older configuration); if it will not start with the new configuration,
  roll back instead;
- it does not: **roll back**: put back the args the journal recorded before the change's write (only if it
  wrote them, and only over that write), start the VM if it was running and is halted. A VM
  that kept running with its old configuration is not touched, unless the host cannot tell whether the
  shutdown the session asked for is still coming (libvirt): then the stop is seen through and the VM
  started again, so that it cannot halt by itself after recovery.

Over a fleet, each operation goes back to the host it was made on (its journal row names it), never to a
host found by UUID alone; an operation of a host this run does not include (``--host LABEL``) is left
alone, as ``other-host``. The labels are read as this run's hosts name them first
(:func:`vgpu.locations.adopt_same_hosts`): an operation of a host renamed in ``[hosts]`` goes to it under its
new label, and one of a host whose label now names another host is that old host's, left alone.

Stops follow the caller's :class:`~vgpu.power.StopPolicy`, as everywhere. What a host cannot tell (None for
the booted arguments or the operations under way) never leads to undoing a change that may have reached the
VM. A VM that will not start even with its old configuration is left halted, its operation closed, and the
VM marked as needing attention (:mod:`vgpu.attention`). An operation left open (later, failed) is released
again, so the next recover takes it at once.
"""

from __future__ import annotations

import attrs

from . import attention, audit, devargs, journal, lifecycle, locations, vms
from .errors import HostUnreachable, HypervisorError, ShutdownNotConfirmed, VgpuError
from .hypervisor import codes
from .hypervisor.base import Hypervisor, args_quoted
from .hypervisor.fleet import for_operation, named_for
from .models import PowerState
from .power import DEFAULT_POLICY, ProgressCallback, StopPolicy, check_policy, guarded, one_vms_progress, silent
from .values import parse_flag
from .store import Store

FINISHED, ROLLED_BACK, SKIPPED, LATER, NOT_TAKEN, FAILED = "finished", "rolled-back", "skipped", "later", "not-taken", "failed"
OTHER_HOST = "other-host"


@attrs.frozen
class Recovery:
    """What recover() did with one unfinished operation. ``action``: ``finished`` or ``rolled-back`` (it
    is closed), ``skipped`` (a live session, or another recover, has it), ``later`` (the host is still busy
    with the VM: nothing was changed), ``not-taken`` (its session cannot be checked from here: see ``take_over``),
    ``other-host`` (it was made on a host of the fleet that this run does not include: left alone) or
    ``failed``; ``detail`` says why. ``attention`` is set when the VM needs the admin even so (it would not
    start again, or a shutdown was requested and not seen through)."""

    op_id: int
    vm_uuid: str
    kind: str
    step: str
    action: str
    detail: str = ""
    attention: str = ""

    @property
    def settled(self) -> bool:
        """Nothing left for the admin to do about it (a live session's operation counts: it is in hand)."""
        return self.action in (FINISHED, ROLLED_BACK, SKIPPED) and not self.attention


@attrs.frozen
class _Outcome:
    action: str
    detail: str
    attention: str = ""
    power: PowerState | None = None  # the VM's state as recovery leaves it, when known (clears a mark)


class _Later(Exception):
    """The host is still busy with the VM: leave the operation as it is and come back."""


def recover(
    store: Store,
    host: Hypervisor,
    progress: ProgressCallback = silent,
    *,
    policy: StopPolicy = DEFAULT_POLICY,
    take_over: bool = False,
) -> list[Recovery]:
    """Resolve every unfinished operation whose session has ended or given it up (or that this process
    left behind). ``policy`` governs every stop recovery makes. ``take_over`` also takes operations of
    sessions that cannot be checked from here (on other hosts, or recorded by host and PID alone while a
    process runs under that PID): only when the admin knows they are gone."""
    progress, policy = guarded(one_vms_progress(progress)), check_policy(policy)
    take_over = parse_flag("take_over", take_over)
    results = []
    # each operation's host as this run's hosts name it: a label renamed in [hosts] is that host, and one given to
    # another host has its operations kept apart (left alone, as a host not configured), never taken there
    locations.adopt_same_hosts(store, host)
    with store.reading() as conn:
        remembered = locations.select_identities(conn)  # each label's URI, for the advice of a run of one host
    for listed in journal.unfinished(store):
        # the host of the fleet it was made on
        target, elsewhere = for_operation(host, listed.host, remembered.get(listed.host or ""))
        if target is None:
            results.append(Recovery(listed.op_id, listed.vm_uuid, listed.kind, listed.step, OTHER_HOST, elsewhere))
            continue
        claim = journal.claim(store, listed.op_id, take_over=take_over)
        if claim is None:
            continue  # closed meanwhile, by its own session or another recover
        op = claim.op
        if not claim.taken:
            results.append(Recovery(op.op_id, op.vm_uuid, op.kind, op.step, NOT_TAKEN if claim.take_over_needed else SKIPPED, claim.why))
            continue
        results.append(_recover_one(store, target, op, progress, policy, run=host))
    return results


def _recover_one(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback, policy: StopPolicy,
                 *, run: Hypervisor) -> Recovery:
    """Recover ``op`` on ``host``, its member of the fleet ``run`` (which names that host in an error about it)."""
    handler = {"reconfigure": _reconfigure, "register": _register, "remove": _remove, "repair": _repair}[op.kind]
    with journal.released_on_escape(store, op):  # an interrupt: the next recover takes it again
        try:
            outcome = handler(store, host, op, progress, policy)
        except _Later as later:
            journal.release(store, op)
            return Recovery(op.op_id, op.vm_uuid, op.kind, op.step, LATER, str(later))
        except VgpuError as error:
            journal.release(store, op)
            return Recovery(op.op_id, op.vm_uuid, op.kind, op.step, FAILED, str(named_for(run, op.host, error)))
    done = journal.DONE if outcome.action == FINISHED else journal.ROLLED_BACK
    lifecycle.close(store, op, done, f"recovered: {outcome.detail}", power=outcome.power)
    return Recovery(op.op_id, op.vm_uuid, op.kind, op.step, outcome.action, outcome.detail, outcome.attention)


# --- what the host says ---------------------------------------------------------------------------------------


@attrs.frozen
class _Look:
    power: PowerState
    operations: tuple[str, ...] | None  # None: the host cannot tell
    booted: str | None  # the args the running domain booted with; None when halted or the host cannot tell


def _busy(operations: tuple[str, ...]) -> _Later:
    return _Later(f"the host is still carrying out {', '.join(operations)} on the VM; nothing was changed: "
                  "run 'vgpu-admin recover' again once it is done")


def _look(host: Hypervisor, vm_uuid: str) -> _Look:
    operations = host.current_operations(vm_uuid)
    if operations:
        raise _busy(operations)
    power = host.power_state(vm_uuid)
    lifecycle.check_power_state(vm_uuid, power, host)
    booted = host.booted_device_model_args(vm_uuid) if power is PowerState.RUNNING else None
    return _Look(power, operations, booted)


def _later_if_busy(error: HypervisorError) -> None:
    """The host refused because it is busy with the VM (a start the interrupted session asked for, say):
    leave everything as it is rather than undo anything under it."""
    if error.code == codes.OTHER_OPERATION_IN_PROGRESS:
        raise _Later(f"the host is busy with another operation on the VM ({error.code}); nothing more was done: "
                     "run 'vgpu-admin recover' again once it is done") from error
    if error.code == codes.VM_STARTING_AFTER_FAILED_START:  # the rollback would not undo under that start
        raise _Later(f"{error}; run 'vgpu-admin recover' again once that start is done") from error


def _later_if_starting(host: Hypervisor, vm_uuid: str, failure: HostUnreachable) -> None:
    """Our start outlived its wait (or the answer was lost), and the host is still carrying it out: nothing is
    done under it (as a change's rollback does not undo under it); run again once it is done. A host that
    cannot be asked is the failure itself."""
    try:
        operations = host.current_operations(vm_uuid)
    except HypervisorError:
        return
    if operations and "start" in operations:
        raise _Later(f"the host is still starting the VM ({failure}); nothing more was done: run 'vgpu-admin "
                     "recover' again once that start is done") from failure


def _name(op: journal.Operation) -> str | None:
    return op.old.vm_name if op.old is not None else None


# --- reconfigure --------------------------------------------------------------------------------------------


def _reconfigure(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    try:
        look = _look(host, op.vm_uuid)
    except HypervisorError as error:
        if not codes.vm_missing(error):
            raise
        return _vm_gone(store, op)
    if look.power is PowerState.RUNNING and lifecycle.what_it_runs(host, op.vm_uuid, look.booted, op.new) == lifecycle.RUNS_NEW:
        return _already_new(store, host, op)
    if not op.db_updated:
        return _undo(store, host, op, look, progress, policy)
    return _complete(store, host, op, look, progress, policy)


def _vm_gone(store: Store, op: journal.Operation) -> _Outcome:
    kept = "new" if op.db_updated else "previous"
    detail = f"the host no longer has this VM; the database keeps its {kept} configuration (see 'vgpu-admin scan-vms')"
    action = FINISHED if op.db_updated else ROLLED_BACK
    if not (op.was_running and op.step != journal.PLANNED):
        return _Outcome(action, detail)
    # The session may have stopped it: a VM that was running may now be halted wherever it went (moved to
    # another host of the fleet, whose args this operation never wrote): an admin must look, not "settled".
    text = ("it was running before a change that was cut short, and its host no longer has it: if it moved to "
            "another host, check its args there ('vgpu-admin repair-vm') and start it; if it was deleted, "
            "'vgpu-admin remove-vm' unregisters it")
    with store.writing() as conn:
        attention.mark(conn, op.vm_uuid, attention.NOT_RESTARTED, text)
    return _Outcome(action, detail, attention=text)


def _already_new(store: Store, host: Hypervisor, op: journal.Operation) -> _Outcome:
    """The VM runs the new configuration already (the interrupted session's start completed): the DB and
    the segment are made to say so, with no restart."""
    assert op.new is not None, "a reconfigure journals its new configuration"
    if not op.db_updated:
        with store.writing() as conn:
            vms.update_record(conn, op.vm_uuid, op.new)
            journal.set_step(conn, op, journal.DB_UPDATED)
    lifecycle.update_device_model_args(host, op.vm_uuid, op.new)
    return _Outcome(FINISHED, "the VM was already running with its new configuration; it was not restarted", power=PowerState.RUNNING)


def _history(op: journal.Operation) -> str:
    if op.ran_with is not None:  # apply-vm: the database was not to change
        return "the registered configuration had not been applied"
    if op.reverted:
        return "the change had reached the database and was undone by the session that made it"
    return "the change had not reached the database"


def _undo(store: Store, host: Hypervisor, op: journal.Operation, look: _Look, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    why = _history(op)
    if look.power is PowerState.RUNNING and op.was_running and op.step == journal.STOPPING and look.operations is None:
        # The host cannot say whether the shutdown the interrupted session asked for is still coming: see it
        # through (as the policy allows), then start the VM again, or it could halt by itself after recovery.
        try:
            lifecycle.stop_recorded(store, host, op.vm_uuid, policy, progress, _name(op))
        except ShutdownNotConfirmed as unconfirmed:
            return _undo_unconfirmed(store, host, op, unconfirmed, progress, why)
        except HypervisorError as error:
            _later_if_busy(error)
            raise
    restored = _roll_back(store, host, op, progress)
    if restored.args_left is not None:
        return _args_left(why, op, restored)
    if restored.start_error is not None:
        return _not_restarted(why, restored.start_error)
    if restored.runs_again:
        return _restarted(op, restored, f"{why}; {_started_again(op, restored)}")
    if look.power is PowerState.RUNNING:
        runs = "the arguments it ran with before" if op.ran_with is not None else "its previous configuration"
        return _Outcome(ROLLED_BACK, f"{why}; {_found_running(store, op, runs)}", power=PowerState.RUNNING)
    return _Outcome(ROLLED_BACK, f"{why}; the previous configuration is kept", power=None if op.was_running else PowerState.HALTED)


def _found_running(store: Store, op: journal.Operation, runs: str) -> str:
    """What became of a VM found running with what it ran before (``runs``), which recover leaves as it is.
    A change cut short while stopping it may have stopped it, and its session started it again (a rollback
    the database could not record): the audit log's stop row says so; without one, nothing is claimed."""
    if not (op.was_running and op.step == journal.STOPPING):
        return f"the VM kept running with {runs} and was not restarted"
    if op.reverted:  # the change reached the database, after the stop
        stopped = True
    else:
        with store.reading() as conn:
            stopped = audit.stopped_since(conn, op.vm_uuid, op.started_at)
    if stopped:
        return f"the VM was stopped for the change and has been started again since, with {runs}; recover did not restart it"
    return f"the VM is running with {runs}; recover did not restart it"


def _undo_unconfirmed(store: Store, host: Hypervisor, op: journal.Operation, unconfirmed: ShutdownNotConfirmed,
                      progress: ProgressCallback, why: str) -> _Outcome:
    restored = _roll_back(store, host, op, progress)
    if restored.args_left is not None and restored.runs_again:
        return _args_left(why, op, restored)
    if restored.runs_again:
        return _restarted(op, restored, f"{why}; {_started_again(op, restored)}")
    text = _mark_unconfirmed(store, op, unconfirmed, "once it has, start it")
    kept = ("the previous configuration is kept" if restored.args_left is None
            else lifecycle.args_left_sentence(restored))
    return _Outcome(ROLLED_BACK, f"{why}; {kept}", attention=text)


def _mark_unconfirmed(store: Store, op: journal.Operation, unconfirmed: ShutdownNotConfirmed, then: str) -> str:
    text = f"{unconfirmed}; the request was delivered, so the VM may still halt by itself: {then}"
    with store.writing() as conn:
        attention.mark(conn, op.vm_uuid, attention.SHUTDOWN_UNCONFIRMED, text)
    return text


def _not_restarted(why: str, start_error: HypervisorError) -> _Outcome:
    text = (f"the VM would not start again even with its previous configuration ({start_error}): it is halted; "
            "fix that on the host, then start it")
    return _Outcome(ROLLED_BACK, f"{why}; the previous configuration is kept", attention=text)


def _args_left(why: str, op: journal.Operation, restored: lifecycle.Restored) -> _Outcome:
    """Undone, but for the args: someone else had changed vgpu's segment in them since the change wrote it,
    and they were left as they are (lifecycle.roll_back)."""
    assert op.old is not None
    detail = f"{why}; {lifecycle.args_left_sentence(restored)}"
    if restored.start_error is not None:
        return _Outcome(ROLLED_BACK, detail, attention=f"the VM would not start again with them "
                                                      f"({restored.start_error}): it is halted; fix that on the host, "
                                                      "then start it")
    if restored.not_running_with_it:
        return _restarted(op, restored, detail)
    power = PowerState.RUNNING if restored.runs_again else None
    return _Outcome(ROLLED_BACK, detail, attention=lifecycle.runs_unregistered(restored, op.old.config), power=power)


def _started_again(op: journal.Operation, restored: lifecycle.Restored) -> str:
    """What undoing gave the VM that it was started with: its previous configuration or, for a change that
    left the database as it is (apply-vm), the segment it ran with before; and what it booted with."""
    again = lifecycle.started_again(restored)
    if op.ran_with is None:
        return f"the previous configuration is kept and the VM was {again}"
    if again != "started again":
        return f"the arguments it ran with before ({op.ran_with.shown}) were put back and the VM was {again}"
    return (f"the VM was started again with the arguments it ran with before ({op.ran_with.shown}), which differ "
            "from the database: 'vgpu-admin apply-vm' applies it")


def _restarted(op: journal.Operation, restored: lifecycle.Restored, detail: str) -> _Outcome:
    """Rolled back and started again: settled only if the host did not see the VM boot with something else
    than what was put back, or halt right after (as a change finished by recover, _started_with_new)."""
    if not restored.not_running_with_it:
        return _Outcome(ROLLED_BACK, detail, power=PowerState.RUNNING)
    assert restored.booted is not None
    put_back = "its previous configuration" if op.ran_with is None else "the arguments it ran with before"
    text = lifecycle.not_running_with_it(op.vm_uuid, restored.booted, put_back)
    return _Outcome(ROLLED_BACK, detail, attention=text,
                    power=PowerState.RUNNING if restored.runs == lifecycle.RUNS_OTHER else None)


def _roll_back(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback) -> lifecycle.Restored:
    try:
        return lifecycle.roll_back(store, host, op, progress, _ran_with_args(host, op))
    except HypervisorError as error:
        _later_if_busy(error)
        raise


def _ran_with_args(host: Hypervisor, op: journal.Operation) -> str | None:
    """The args to give a halted VM back, as the in-process rollback does (lifecycle's ran_with), when the
    change left the database as it is: its stored args with the segment it ran with. None (the registered
    segment) when none was kept, or when the VM still runs: it still has what it ran with, and its stored
    args are as they were (an undone change never got as far as writing them)."""
    if op.ran_with is None or host.power_state(op.vm_uuid) is not PowerState.HALTED:
        return None
    stored_args = host.get_device_model_args(op.vm_uuid)
    return devargs.merge(stored_args, op.ran_with.config, quoted=args_quoted(host, op.vm_uuid))


def _complete(store: Store, host: Hypervisor, op: journal.Operation, look: _Look, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    """The DB has the new values: write the segment, and bring the VM up with them if it was running."""
    op = _write_new_segment(store, host, op)
    if not op.was_running:
        return _Outcome(FINISHED, "the new configuration is in place")
    if look.power is PowerState.RUNNING:
        if lifecycle.what_it_runs(host, op.vm_uuid, look.booted, op.new) == lifecycle.RUNS_UNKNOWN:
            # cannot tell what it runs: never undo a change that may have reached it
            return _Outcome(FINISHED, "the new configuration is in place; the host cannot say which configuration the "
                                      "running VM booted with: if it started before the change, restart it to apply it")
        try:  # it runs an older configuration (someone started it meanwhile): restart it with the new one
            lifecycle.stop_recorded(store, host, op.vm_uuid, policy, progress, _name(op))
        except ShutdownNotConfirmed as unconfirmed:
            text = _mark_unconfirmed(store, op, unconfirmed, "once it has, start it to apply the new configuration")
            return _Outcome(FINISHED, "the new configuration is in place, but the VM still runs an older one", attention=text)
        except HypervisorError as error:
            _later_if_busy(error)
            raise
    try:
        lifecycle.start_vm(host, op.vm_uuid, progress, policy.tick, name=_name(op))
    except HypervisorError as failure:
        _later_if_busy(failure)
        if isinstance(failure, HostUnreachable):
            _later_if_starting(host, op.vm_uuid, failure)
        if failure.code != codes.VM_BAD_POWER_STATE and lifecycle.running_after(host, op.vm_uuid, failure) is not None:
            # it runs all the same (the start failed only after the domain came up): never undo a change that
            # may have reached it; what it booted with is said as after any start
            return _started_with_new(store, op, lifecycle.what_it_booted(host, op.vm_uuid, op.new))
        if not lifecycle.would_not_start(failure):
            raise
        try:
            restored = _roll_back(store, host, op, progress)
        except HypervisorError as refused:
            if refused.code != codes.VM_RUNNING_AFTER_FAILED_START:
                raise
            if refused.details[1:2] in ((PowerState.PAUSED.value,), (PowerState.SUSPENDED.value,)):  # not "started with it"
                raise _Later(f"{refused}; resume it (or shut it down), then run 'vgpu-admin recover' again") from refused
            # Up by the time the rollback asked (a domain that came up after the look above): nothing was
            # undone, and a change that reached the VM is finished, as the error itself says recover does.
            return _started_with_new(store, op, lifecycle.what_it_booted(host, op.vm_uuid, op.new))
        which = "new" if op.ran_with is None else "registered"
        why = f"the VM would not start with its {which} configuration ({failure})"
        if restored.args_left is not None:
            return _args_left(why, op, restored)
        if restored.start_error is not None:
            return _not_restarted(why, restored.start_error)
        again = lifecycle.started_again(restored)
        if op.ran_with is not None and again == "started again":
            return _Outcome(ROLLED_BACK, f"{why}; it was started again with the arguments it ran with before "
                                         f"({op.ran_with.shown}), which differ from the database", power=PowerState.RUNNING)
        if op.ran_with is not None:
            return _restarted(op, restored, f"{why}; the arguments it ran with before ({op.ran_with.shown}) were put "
                                            f"back and it was {again}")
        return _restarted(op, restored, f"{why}; the previous one is restored and the VM was {again}")
    return _started_with_new(store, op, lifecycle.what_it_booted(host, op.vm_uuid, op.new))


def _started_with_new(store: Store, op: journal.Operation, booted: lifecycle.Booted) -> _Outcome:
    """A change finished by starting its VM, with what the host says it booted with (as a live change says
    it): "started with it" only when the host saw it boot with the new configuration; a VM that booted with
    something else, or is not running right after, needs the admin."""
    done = "the new configuration is in place and the VM was"
    if booted.runs == lifecycle.RUNS_NEW:
        return _Outcome(FINISHED, f"{done} started with it", power=PowerState.RUNNING)
    if booted.runs == lifecycle.RUNS_UNKNOWN:
        return _Outcome(FINISHED, f"{done} started; the host cannot tell what it booted with", power=PowerState.RUNNING)
    text = lifecycle.not_running_with_it(op.vm_uuid, booted)
    lifecycle.mark_not_running(store, op.vm_uuid, booted, "it was running before a change that was cut short, and "
                                                          "recover started it with its new configuration")
    return _Outcome(FINISHED, f"{done} {lifecycle.started_short(booted)}", attention=text,
                    power=PowerState.RUNNING if booted.runs == lifecycle.RUNS_OTHER else None)


def _write_new_segment(store: Store, host: Hypervisor, op: journal.Operation) -> journal.Operation:
    """Write the new segment into the VM's args as the session would have, journalling first what they are
    before the write when the session had not got that far (past it, what is there now may be its write):
    undoing the change puts that text back (lifecycle.roll_back)."""
    current = host.get_device_model_args(op.vm_uuid)
    if op.step == journal.DB_UPDATED:
        op = journal.advance(store, op, journal.WRITING_ARGS, args_before=current)
    lifecycle.update_device_model_args(host, op.vm_uuid, op.new, current)
    return op


# --- register, remove, repair: no stop, no start -------------------------------------------------------------


def _quiet_host(host: Hypervisor, vm_uuid: str) -> bool:
    """Raise _Later when the host is busy with the VM; False when the host no longer has it."""
    try:
        operations = host.current_operations(vm_uuid)
    except HypervisorError as error:
        if codes.vm_missing(error):
            return False
        raise
    if operations:
        raise _busy(operations)
    return True


def _register(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    vm = vms.find(store, op.vm_uuid)
    if vm is None:
        return _Outcome(ROLLED_BACK, "the VM was never registered")
    if not _quiet_host(host, op.vm_uuid):
        return _Outcome(FINISHED, "the VM is registered, but the host no longer has it (see 'vgpu-admin scan-vms')")
    lifecycle.update_device_model_args(host, op.vm_uuid, vm.config)
    return _Outcome(FINISHED, "the registration and its segment are in place")


def _remove(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    if _quiet_host(host, op.vm_uuid):
        try:
            lifecycle.update_device_model_args(host, op.vm_uuid, None)
        except HypervisorError as failure:
            if not codes.vm_missing(failure):
                raise
    with store.writing() as conn:
        if vms.select_vm(conn, op.vm_uuid) is not None:
            vms.delete_record(conn, op.vm_uuid)
    return _Outcome(FINISHED, "the VM is unregistered and its segment cleared")


def _repair(store: Store, host: Hypervisor, op: journal.Operation, progress: ProgressCallback, policy: StopPolicy) -> _Outcome:
    vm = vms.find(store, op.vm_uuid)
    if not _quiet_host(host, op.vm_uuid):
        return _Outcome(FINISHED, "the host no longer has the VM: there is no segment to repair")
    lifecycle.update_device_model_args(host, op.vm_uuid, vm.config if vm is not None else None)
    return _Outcome(FINISHED, "the segment matches the database")

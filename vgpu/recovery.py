"""Finishing or undoing operations that were interrupted (a crash, a kill, a lost connection).

For each unfinished journal entry the rule is simple and the same at every step: if the database already
holds the new values, finish the change (write the segment, start the VM if it was running); otherwise put
the old segment back and restart the VM if it was running. If finishing fails because the VM will not
start with its new configuration, roll back instead. Afterwards the DB and the VM's segment agree and the
VM is in the power state it had before the operation began.
"""

from __future__ import annotations

import functools

import attrs

from . import journal, lifecycle, vms
from .errors import HypervisorError, VgpuError
from .hypervisor import codes
from .hypervisor.base import Hypervisor
from .models import PowerState
from .store import Store


@attrs.frozen
class Recovery:
    """What recover() did with one interrupted operation: ``finished``, ``rolled-back``, ``skipped`` or
    ``failed`` (then ``detail`` says why and the operation stays open)."""

    op_id: int
    vm_uuid: str
    kind: str
    step: str
    action: str
    detail: str = ""


def recover(
    store: Store,
    host: Hypervisor,
    progress: lifecycle.ProgressCallback = lifecycle.silent,
    *,
    policy: lifecycle.StopPolicy = lifecycle.DEFAULT_POLICY,
) -> list[Recovery]:
    """Resolve every unfinished operation whose session has ended or was interrupted (or that this process
    left behind).
    ``policy`` governs finishing a stop the interrupted session had begun."""
    progress = lifecycle.guarded(progress)
    results = []
    for op in journal.unfinished(store):
        if not op.needs_recovery:
            results.append(Recovery(op.op_id, op.vm_uuid, op.kind, op.step, "skipped",
                                    f"still in progress in session {op.owner} (started {op.started_at})"))
            continue
        results.append(_recover_one(store, host, op, progress, policy))
    return results


def _recover_one(store: Store, host: Hypervisor, op: journal.Operation, progress, policy: lifecycle.StopPolicy) -> Recovery:
    handler = {
        "reconfigure": functools.partial(_reconfigure, policy=policy),
        "register": _register, "remove": _remove, "repair": _repair,
    }[op.kind]
    try:
        action, detail = handler(store, host, op, progress)
    except VgpuError as error:
        return Recovery(op.op_id, op.vm_uuid, op.kind, op.step, "failed", str(error))
    journal.finish(store, op, journal.DONE if action == "finished" else journal.ROLLED_BACK, f"recovered: {detail}")
    return Recovery(op.op_id, op.vm_uuid, op.kind, op.step, action, detail)


def _reconfigure(store: Store, host: Hypervisor, op: journal.Operation, progress, policy: lifecycle.StopPolicy) -> tuple[str, str]:
    if not op.db_updated:
        if op.was_running and op.step == journal.STOPPING:
            # The session may have died while the guest was shutting down: finish that stop (or force it)
            # before starting the VM again, or the guest would halt by itself after recovery.
            lifecycle.stop_vm(host, op.vm_uuid, policy, progress)
        lifecycle.roll_back(store, host, op, progress)
        return "rolled-back", "the change had not reached the database; the previous configuration is kept"
    lifecycle.update_device_model_args(host, op.vm_uuid, op.new)
    if op.was_running and host.power_state(op.vm_uuid) is PowerState.HALTED:
        try:
            lifecycle.start_vm(host, op.vm_uuid, progress)
        except HypervisorError as failure:
            lifecycle.roll_back(store, host, op, progress)
            return "rolled-back", f"the VM would not start with its new configuration ({failure}); the previous one is restored"
    return "finished", "the new configuration is in place"


def _register(store: Store, host: Hypervisor, op: journal.Operation, progress) -> tuple[str, str]:
    vm = vms.find(store, op.vm_uuid)
    if vm is None:
        return "rolled-back", "the VM was never registered"
    lifecycle.update_device_model_args(host, op.vm_uuid, vm.config)
    return "finished", "the registration and its segment are in place"


def _remove(store: Store, host: Hypervisor, op: journal.Operation, progress) -> tuple[str, str]:
    try:
        lifecycle.update_device_model_args(host, op.vm_uuid, None)
    except HypervisorError as failure:
        if not codes.vm_missing(failure):
            raise
    with store.writing() as conn:
        if vms.select_vm(conn, op.vm_uuid) is not None:
            vms.delete_record(conn, op.vm_uuid)
    return "finished", "the VM is unregistered and its segment cleared"


def _repair(store: Store, host: Hypervisor, op: journal.Operation, progress) -> tuple[str, str]:
    vm = vms.find(store, op.vm_uuid)
    lifecycle.update_device_model_args(host, op.vm_uuid, vm.config if vm is not None else None)
    return "finished", "the segment matches the database"

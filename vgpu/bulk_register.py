"""Registering many VMs at once (a CSV in a notebook): check every row, then register the good ones.

:func:`plan_registrations` reads the DB and one host listing and changes nothing: it gives the VMs the good
rows would become and every problem with the others. :func:`register_planned` registers the planned VMs in
one transaction (:func:`vgpu.vms.register_many`: all of them or none), then writes each one's segment with
:func:`write_segments`. Each write is journalled (:func:`vgpu.lifecycle.repair_vm`), so a crash part way is
finished by ``recover``; a write the host refuses is reported for that VM, which stays registered and shows
as drift in a scan until ``vgpu-admin repair-vm`` (or ``write_segments`` again) puts the segment there.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import attrs

from . import lifecycle, naming, tables, vms
from .bulk import BulkFailure
from .errors import InvalidRows, RowProblem, VgpuError
from .hypervisor.base import Hypervisor
from .lifecycle import ProgressCallback, Progress, RepairResult
from .models import VM, Registration
from .naming import SharedName
from .store import Store


@attrs.frozen(repr=False)  # its repr is its table (tables.Tabular), bounded however many rows it holds
class RegistrationPlan(tables.Tabular):
    """The good rows as they would be registered (``rows[i]`` is the input row of ``vms[i]``), and every
    problem with the other rows."""

    vms: tuple[VM, ...]
    rows: tuple[int, ...]
    problems: tuple[RowProblem, ...] = ()
    shared_names: tuple[SharedName, ...] = ()  # planned VMs named like another VM: registered all the same

    @staticmethod
    def _view(plan: "RegistrationPlan") -> tuple[str, list[tables.Record]]:
        records = [{"row": row, **tables.vm_record(vm)} for row, vm in zip(plan.rows, plan.vms)]
        refused = len({problem.row for problem in plan.problems})
        return f"{tables.plural(len(plan.vms), 'VM')} to register; {tables.plural(refused, 'row')} refused", records

    @property
    def invalid(self) -> InvalidRows | None:
        """Every problem as one InvalidRows (a table in a notebook), or None when every row is good. Not a
        refusal: register_planned goes ahead with the other rows, so it says so instead of 'nothing was changed'."""
        return InvalidRows(self.problems, PLAN_LEAVES_OUT) if self.problems else None


PLAN_LEAVES_OUT = "the plan leaves these rows out"


@attrs.frozen(repr=False)
class RegistrationResult(tables.Tabular):
    """The VMs registered, and for each the segment written (or the reason it was not)."""

    registered: tuple[VM, ...]
    segments: tuple[RepairResult, ...]
    failures: tuple[BulkFailure, ...]

    @staticmethod
    def _view(result: "RegistrationResult") -> tuple[str, list[tables.Record]]:
        failed = {failure.vm_uuid: str(failure.error) for failure in result.failures}
        records = [{**tables.vm_record(vm), "segment": "not written: " + failed[vm.vm_uuid] if vm.vm_uuid in failed else "written"}
                   for vm in result.registered]
        return f"{tables.plural(len(result.registered), 'VM')} registered, {len(result.failures)} segments not written", records

    @property
    def ok(self) -> bool:
        return not self.failures


def plan_registrations(store: Store, host: Hypervisor, items: Iterable[Registration | Mapping[str, object]]) -> RegistrationPlan:
    """Check every row (values, duplicates in the batch and in the DB, the VM on the host) without changing
    anything. A row without a name gets the host's name for the VM, as ``register-vm`` does. A name another
    VM has too is not a problem (names are for display): ``shared_names`` lists each, with the UUIDs."""
    on_host = {host_vm.uuid: host_vm for host_vm in host.list_vms()}
    good, problems = vms.check_many(store, items, exists=on_host.__contains__)
    planned = [vm if vm.vm_name else attrs.evolve(vm, vm_name=lifecycle.host_name(on_host[vm.vm_uuid])) for vm in good.values()]
    with store.reading() as conn:
        shared = naming.shared_names(conn, planned)
    return RegistrationPlan(tuple(planned), tuple(good), tuple(problems), shared)


def register_planned(store: Store, host: Hypervisor, plan: RegistrationPlan, *, progress: ProgressCallback = lifecycle.silent) -> RegistrationResult:
    """Register the plan's VMs with the vm_ids it shows, in one transaction (a vm_id taken since the plan
    refuses them all: plan again), then write their segments."""
    if not plan.vms:
        return RegistrationResult((), (), ())
    try:
        registered = vms.db_register_many(store, [Registration(vm.vm_uuid, vm.vm_name, vm.pool_id, vm.priority, vm.vm_id) for vm in plan.vms])
    except InvalidRows as refused:
        # register_many numbers the planned VMs from 1; the person knows the rows of their file, as the plan shows them
        raise InvalidRows([RowProblem(plan.rows[problem.row - 1], problem.error) for problem in refused.problems]) from refused
    written, failures = write_segments(store, host, [vm.vm_uuid for vm in registered], progress=progress)
    return RegistrationResult(tuple(registered), tuple(written), tuple(failures))


def write_segments(store: Store, host: Hypervisor, vm_uuids: Iterable[str], *, progress: ProgressCallback = lifecycle.silent) -> tuple[list[RepairResult], list[BulkFailure]]:
    """Make each VM's segment agree with the database (read by QEMU at the VM's next boot). One VM's
    failure does not stop the others."""
    progress = lifecycle.guarded(progress)
    written: list[RepairResult] = []
    failures: list[BulkFailure] = []
    for vm_uuid in vm_uuids:
        progress(Progress(vm_uuid, "writing-segment", f"Writing the vgpu segment of VM {vm_uuid}"))
        try:
            written.append(lifecycle.repair_vm(store, host, vm_uuid))
        except VgpuError as error:
            failures.append(BulkFailure(vm_uuid, error))
            progress(Progress(vm_uuid, "failed", f"VM {vm_uuid}: {error}"))
    return written, failures

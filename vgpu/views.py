"""The table views of the library's compound results: a pool with its VMs, a scan, a bulk plan and its result.

Each is a function from the result to a caption and one flat record per row (see :mod:`vgpu.tables`), named
as the result class's ``_view``. Apart from vgpu.tables because only those results need them, and none of
them is on a one-shot command's start-up, which is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .tables import VM_COLUMNS, changes_text, config_record, config_text, join_captions, plain, plural, vm_record, yes_no

if TYPE_CHECKING:
    from .bulk import BulkPlan, BulkResult
    from .devargs import SegmentState
    from .lifecycle import ReconfigureResult
    from .models import PoolDetail
    from .scan import ForeignSegment, ScanReport
    from .tables import Record


def pool_detail_view(detail: PoolDetail) -> tuple[str, list[Record]]:
    pool, counts = detail.pool, detail.pool.counts
    state = "enabled" if pool.enabled else "disabled"
    caption = (f'Pool {pool.pool_id} "{pool.pool_name}": {state}, {plural(pool.vm_count, "VM")} '
               f"(high {counts.high}, medium {counts.medium}, low {counts.low})")
    return caption, [vm_record(vm) for vm in detail.vms]


def _unregistered_state(foreign: ForeignSegment | None) -> str:
    if foreign is None:
        return "unregistered"
    if foreign.running_only:
        whose = f"the vm_id of {foreign.owner.display_name} (vm_id {foreign.owner.vm_id})" if foreign.owner else "a vgpu segment"
        return f"unregistered, still running with {whose}"
    if foreign.owner is None:
        return "unregistered, carries a leftover vgpu segment"
    return f"unregistered, clone of {foreign.owner.display_name} (carries vm_id {foreign.owner.vm_id})"


def _booted_text(segment: SegmentState | None) -> str | None:
    """What a running VM booted with, for a table cell: its configuration, ``no segment``, ``unreadable``."""
    if segment is None:
        return None
    if segment.config is not None:
        return config_text(segment.config)
    return "unreadable segment" if segment.present else "no segment"


SCAN_COLUMNS = (*VM_COLUMNS, "power_state", "state", "running_with", "host", "resident_on")
BULK_PLAN_COLUMNS = (*VM_COLUMNS, "power_state", "current", "new", "change", "restart", "host")
BULK_RESULT_COLUMNS = (*VM_COLUMNS, "outcome", "old", "new", "restarted", "stopped", "error")


def scan_view(report: ScanReport) -> tuple[str, list[Record]]:
    rows = []
    for entry in report.registered:
        # No host VM: missing from a host that answered (None), or unknown when no host could be listed.
        power = plain(entry.host_vm.power_state) if entry.host_vm is not None else None if entry.host_known else "unknown"
        rows.append({**vm_record(entry.vm), "power_state": power, "state": entry.state,
                     # a running VM whose boot the host cannot tell (or a host that could not be asked): unknown,
                     # not None, which says the VM is not running
                     "running_with": "unknown" if entry.state == "unknown" else _booted_text(entry.booted),
                     "host": ", ".join(entry.conflict) or entry.host,
                     "resident_on": entry.resident_on})
    foreign = {(item.host_vm.uuid, item.host_vm.host): item for item in report.foreign_segments}
    copies = report.copies_by_uuid()
    for host_vm in report.unregistered:
        rows.append({
            "vm_uuid": host_vm.uuid, "vm_name": host_vm.name, "pool_id": None, "priority": None,
            "priority_value": None, "vm_id": None, "power_state": plain(host_vm.power_state),
            "state": _unregistered_state(foreign.get((host_vm.uuid, host_vm.host))), "running_with": None,
            "host": host_vm.host, "resident_on": host_vm.resident_on,
        })
        twins = copies.get(host_vm.uuid)
        if twins is not None:  # on several hosts: one row naming each, and no one copy's power, as a registered VM's
            rows[-1].update(power_state=None, state=f"unregistered, on {len(twins)} hosts",
                            host=", ".join(copy.host for copy in twins), resident_on=None)
    pools = [f'Pool {pool.pool_id} "{pool.pool_name}": {plural(len(report.in_pool(pool.pool_id)), "VM")}' for pool in report.pools]
    caption = join_captions([
        *pools, _count(report.total_unregistered, "unregistered"), _count(report.total_in_system, "in system"),
        f"{len(report.missing)} missing from the host" if report.missing else "",
        f"{len(report.drift)} with drift" if report.drift else "",
        f"{len(report.pending)} pending restart" if report.pending else "",
        f"{len(report.booted_unknown)} running with an unknown configuration" if report.booted_unknown else "",
        # the host's sentence says what went wrong ("cannot reach the host: ..."): a prefix of ours would say it twice
        f"{report.host_error} (showing the database only)" if report.host_error else "",
        *(f"{host.label} unreachable: {host.error}" for host in report.unreachable if not report.host_error),
        f"{plural(len(report.conflicts), 'UUID')} on several hosts" if report.conflicts else "",
        # registered VMs last seen on a host this run does not have (not_shown says which, and why)
        f"{report.elsewhere} registered not shown (on hosts not in this run)" if report.elsewhere else "",
        f"{plural(len(report.needing_recovery), 'unfinished operation')} (run recover)" if report.needing_recovery else "",
        f"{plural(len(report.in_progress), 'operation')} in progress" if report.in_progress else "",
        f"{plural(len(report.needing_take_over), 'operation')} whose session cannot be checked (recover --take-over "
        "once it is gone)" if report.needing_take_over else "",
    ])
    return caption, rows


def _count(number: int | None, what: str) -> str:
    return f"{what} unknown" if number is None else f"{number} {what}"


def bulk_plan_view(bulk: BulkPlan) -> tuple[str, list[Record]]:
    """One row per VM: the configuration it would have (the columns a change row has), its power state, its
    current configuration, the change and whether it restarts."""
    rows = [{
        **config_record(plan.vm, plan.new), "power_state": plain(plan.power_state),
        "current": config_text(plan.current), "new": config_text(plan.new),
        "change": changes_text(plan.changes), "restart": yes_no(plan.needs_restart), "host": plan.host,
    } for plan in bulk.plans]
    caption = f"{plural(len(bulk.plans), 'VM')}: {len(bulk.changing)} to change, {bulk.restarts} to restart"
    return caption, rows


def bulk_result_view(result: BulkResult) -> tuple[str, list[Record]]:
    """One row per VM: its configuration now (or, for a failure, the one asked for: the records of a result
    planned again retry what failed), the outcome, the old and new configuration, and any error."""
    rows = [{
        **vm_record(done.vm), "outcome": _done_outcome(done),
        "old": config_text(done.old), "new": config_text(done.vm.config), "restarted": yes_no(done.restarted),
        "stopped": done.stopped_how, "error": done.why_not_running_with_it or None,
    } for done in result.results]
    rows += [{
        **(config_record(failure.plan.vm, failure.plan.new) if failure.plan else {"vm_uuid": failure.vm_uuid, "vm_name": None}),
        "outcome": "failed",
        "old": config_text(failure.plan.current) if failure.plan else None,
        "new": config_text(failure.plan.new) if failure.plan else None,
        "restarted": None, "stopped": None, "error": failure.message,
    } for failure in result.failures]
    under_way = {plan.vm_uuid for plan in result.under_way}
    left = [("under way" if plan.vm_uuid in under_way else "interrupted", plan) for plan in result.interrupted]
    left += [("not started", plan) for plan in result.not_started]
    rows += [{
        **config_record(plan.vm, plan.new), "outcome": outcome, "old": config_text(plan.current),
        "new": config_text(plan.new), "restarted": None, "stopped": None, "error": _LEFT_NOTES.get(outcome),
    } for outcome, plan in left]
    summary = f"{len(result.results)} changed, {len(result.failures)} failed"
    short = sum(1 for done in result.results if done.not_running_with_it)
    if short:
        summary += f" ({short} of the changed not running with it)"
    counts = {outcome: sum(1 for left_as, _ in left if left_as == outcome) for outcome in ("interrupted", "under way", "not started")}
    for outcome, count in counts.items():
        if count:
            summary += f", {count} {'still under way' if outcome == 'under way' else outcome}"
    return summary, rows


def _done_outcome(done: ReconfigureResult) -> str:
    """A changed VM's outcome: ``changed`` (or ``unchanged``), unless the VM the change started is not
    running with its configuration: ``booted without segment``, ``booted other segment`` or ``not running``."""
    if done.booted == "not-running":
        return "not running"
    if done.booted == "other":
        return "booted other segment" if done.booted_with is not None and done.booted_with.present else "booted without segment"
    return "changed" if done.changed else "unchanged"


# What the row of a VM cut part way says, and of one still under way when a second Ctrl-C stopped the waiting:
# its thread goes on and ends it (recover leaves it alone meanwhile, and finds nothing to do once it is done).
_CUT_NOTE = "cut part way: run 'vgpu-admin recover'"
UNDER_WAY_NOTE = ("still under way (this process stopped waiting for it): it goes on in the background until done, "
                  "rolled back or left to 'vgpu-admin recover'")
_LEFT_NOTES = {"interrupted": _CUT_NOTE, "under way": UNDER_WAY_NOTE}

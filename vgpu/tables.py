"""Library results as tables, for notebooks: ``records()`` for pandas users, ``_repr_html_`` for Jupyter.

A result class mixes in :class:`Tabular` and names its view, a function from the result to a caption and
a list of flat records (one dict per row, values JSON-ready: strings, numbers, booleans or None). Jupyter
calls ``_repr_html_``; ``pandas.DataFrame(result.records())`` needs nothing more from the library, which
never imports pandas or IPython. This module imports nothing of vgpu's, so the models can use it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # names for annotations only: this module is imported on every start-up
    Record = dict[str, Any]

PRIORITY_NOTE = "priority: low 0, medium 1, high 2 (0 is the lowest)"


class Tabular:
    """Mixin: ``records()`` and ``_repr_html_()`` from the class's ``_view``."""

    __slots__ = ()  # and a class attribute ``_view``: the function giving (caption, records)

    def records(self) -> list[Record]:
        """One flat, JSON-ready dict per row (``pandas.DataFrame(result.records())``)."""
        return type(self)._view(self)[1]

    def _repr_html_(self) -> str:
        caption, rows = type(self)._view(self)
        return html_table(rows, caption)


class ResultList(Tabular, list):
    """A plain list of library results that also shows itself as a table; equal to the same plain list."""

    __slots__ = ()

    @staticmethod
    def _row(item: Any) -> Record:
        raise NotImplementedError

    _noun = "item"

    def __getitem__(self, index):  # a slice (the first ten VMs) still shows itself as a table
        found = list.__getitem__(self, index)
        return type(self)(found) if isinstance(index, slice) else found

    @staticmethod
    def _view(items: "ResultList") -> tuple[str, list[Record]]:
        return plural(len(items), items._noun), [items._row(item) for item in items]


# --- HTML ------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    import html  # only when a notebook renders: html.entities is not free to import

    return "" if value is None else html.escape(str(value))


def html_table(rows: list[Record], caption: str = "") -> str:
    """An HTML table of flat records, every header, value and the caption escaped."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    note = f" — {PRIORITY_NOTE}" if "priority" in columns else ""
    parts = ['<table class="vgpu-table">']
    if caption or note:
        parts.append(f'<caption style="text-align:left">{_cell(caption + note)}</caption>')
    parts.append("<thead><tr>" + "".join(f"<th>{_cell(column)}</th>" for column in columns) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{_cell(row.get(column))}</td>" for column in columns) + "</tr>")
    if not rows:
        parts.append("<tr><td><em>none</em></td></tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


# --- flat values -----------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready scalar: enums by their name, anything unusual by its repr."""
    if isinstance(value, enum.Enum):
        label = getattr(value, "label", None)  # Priority by its name, PowerState by its value
        return label if isinstance(label, str) else plain(value.value)
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)


def config_text(config: Any) -> str:
    """``pool A, high (2), vm_id 7``."""
    return f"pool {config.pool_id}, {config.priority.describe()}, vm_id {config.vm_id}"


def changes_text(changes: dict[str, tuple[Any, Any]]) -> str:
    """``pool A → B; priority high (2) → low (0)``."""
    names = {"pool_id": "pool", "priority": "priority", "vm_id": "vm_id"}
    parts = []
    for field, (old, new) in changes.items():
        show = (lambda p: p.describe()) if field == "priority" else str
        parts.append(f"{names.get(field, field)} {show(old)} → {show(new)}")
    return "; ".join(parts) or "no change"


def mapping_text(data: dict | None) -> str | None:
    """An audit entry's record as ``key=value, ...`` (None stays None)."""
    if data is None:
        return None
    return ", ".join(f"{key}={value}" for key, value in sorted(data.items()))


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def join_captions(parts: Iterable[str]) -> str:
    return "; ".join(part for part in parts if part)


# --- rows ------------------------------------------------------------------------------------------------


def vm_record(vm: Any) -> Record:
    return {
        "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": vm.pool_id,
        "priority": vm.priority.label, "priority_value": int(vm.priority), "vm_id": vm.vm_id,
    }


def pool_record(pool: Any) -> Record:
    counts = pool.counts
    return {
        "pool_id": pool.pool_id, "pool_name": pool.pool_name, "enabled": pool.enabled, "vms": pool.vm_count,
        "high": counts.high, "medium": counts.medium, "low": counts.low, "description": pool.description,
    }


def audit_row(entry: Any) -> Record:
    return {
        "entry_id": entry.entry_id, "at": entry.at, "action": entry.action, "subject": entry.subject,
        "old": mapping_text(entry.old), "new": mapping_text(entry.new),
    }


class VMList(ResultList):
    """Registered VMs (``vms.list_vms``, ``vms.register_many``)."""

    __slots__ = ()
    _noun = "VM"
    _row = staticmethod(vm_record)


class PoolList(ResultList):
    """Pools with their VM counts (``pools.list_pools``)."""

    __slots__ = ()
    _noun = "pool"
    _row = staticmethod(pool_record)


class AuditList(ResultList):
    """Recorded changes, newest first (``audit.history``)."""

    __slots__ = ()
    _noun = "change"
    _row = staticmethod(audit_row)


# --- views of compound results ---------------------------------------------------------------------------


def pool_detail_view(detail: Any) -> tuple[str, list[Record]]:
    pool, counts = detail.pool, detail.pool.counts
    state = "enabled" if pool.enabled else "disabled"
    caption = (f'Pool {pool.pool_id} "{pool.pool_name}": {state}, {plural(pool.vm_count, "VM")} '
               f"(high {counts.high}, medium {counts.medium}, low {counts.low})")
    return caption, [vm_record(vm) for vm in detail.vms]


def _unregistered_state(foreign: Any) -> str:
    if foreign is None:
        return "unregistered"
    if foreign.owner is None:
        return "unregistered, carries a leftover vgpu segment"
    return f"unregistered, clone of {foreign.owner.display_name} (carries vm_id {foreign.owner.vm_id})"


def _booted_text(segment: Any) -> str | None:
    """What a running VM booted with, for a table cell: its configuration, ``no segment``, ``unreadable``."""
    if segment is None:
        return None
    if segment.config is not None:
        return config_text(segment.config)
    return "unreadable segment" if segment.present else "no segment"


def scan_view(report: Any) -> tuple[str, list[Record]]:
    rows = []
    for entry in report.registered:
        power = plain(entry.host_vm.power_state) if entry.host_vm is not None else None
        rows.append({**vm_record(entry.vm), "power_state": power, "state": entry.state,
                     "running_with": _booted_text(entry.booted), "host": ", ".join(entry.conflict) or entry.host,
                     "resident_on": entry.resident_on})
    foreign = {(item.host_vm.uuid, item.host_vm.host): item for item in report.foreign_segments}
    for host_vm in report.unregistered:
        rows.append({
            "vm_uuid": host_vm.uuid, "vm_name": host_vm.name, "pool_id": None, "priority": None,
            "priority_value": None, "vm_id": None, "power_state": plain(host_vm.power_state),
            "state": _unregistered_state(foreign.get((host_vm.uuid, host_vm.host))), "running_with": None,
            "host": host_vm.host, "resident_on": host_vm.resident_on,
        })
    pools = [f'Pool {pool.pool_id} "{pool.pool_name}": {plural(len(report.in_pool(pool.pool_id)), "VM")}' for pool in report.pools]
    caption = join_captions([
        *pools, f"{report.total_unregistered} unregistered", f"{report.total_in_system} in system",
        f"{len(report.missing)} missing from the host" if report.missing else "",
        f"{len(report.drift)} with drift" if report.drift else "",
        f"{len(report.pending)} pending restart" if report.pending else "",
        f"{len(report.booted_unknown)} running with an unknown configuration" if report.booted_unknown else "",
        f"host not reachable: {report.host_error}" if report.host_error else "",
        *(f"{host.label} unreachable: {host.error}" for host in report.unreachable if not report.host_error),
        f"{plural(len(report.conflicts), 'UUID')} on several hosts" if report.conflicts else "",
        f"{plural(len(report.needing_recovery), 'unfinished operation')} (run recover)" if report.needing_recovery else "",
        f"{plural(len(report.in_progress), 'operation')} in progress" if report.in_progress else "",
    ])
    return caption, rows


def bulk_plan_view(bulk: Any) -> tuple[str, list[Record]]:
    rows = [{
        "vm_uuid": plan.vm_uuid, "vm_name": plan.vm.vm_name, "power_state": plain(plan.power_state),
        "current": config_text(plan.current), "new": config_text(plan.new),
        "change": changes_text(plan.changes), "restart": yes_no(plan.needs_restart), "host": plan.host,
    } for plan in bulk.plans]
    caption = f"{plural(len(bulk.plans), 'VM')}: {len(bulk.changing)} to change, {bulk.restarts} to restart"
    return caption, rows


def bulk_result_view(result: Any) -> tuple[str, list[Record]]:
    rows = [{
        "vm_uuid": done.vm.vm_uuid, "vm_name": done.vm.vm_name, "outcome": "changed" if done.changed else "unchanged",
        "old": config_text(done.old), "new": config_text(done.vm.config), "restarted": yes_no(done.restarted),
        "stopped": done.stopped_how, "error": None,
    } for done in result.results]
    rows += [{
        "vm_uuid": failure.vm_uuid, "vm_name": failure.plan.vm.vm_name if failure.plan else None, "outcome": "failed",
        "old": config_text(failure.plan.current) if failure.plan else None,
        "new": config_text(failure.plan.new) if failure.plan else None,
        "restarted": None, "stopped": None, "error": failure.message,
    } for failure in result.failures]
    return f"{len(result.results)} changed, {len(result.failures)} failed", rows


def _allowed(error: Any) -> Any:
    if hasattr(error, "allowed"):  # InvalidValue
        allowed = error.allowed
        return allowed if isinstance(allowed, str) else ", ".join(str(item) for item in allowed)
    if hasattr(error, "holder"):  # Conflict
        return f"a {error.field} not already used by {error.holder}"
    if hasattr(error, "kind"):  # NotFound
        return f"an existing {error.kind}"
    return None


def problem_record(problem: Any) -> Record:
    """One row of a bulk operation's problems: which row, which field, the value, what is allowed."""
    error = problem.error
    field = getattr(error, "field", getattr(error, "kind", None))
    value = getattr(error, "value", getattr(error, "key", None))
    return {"row": problem.row, "field": field, "value": plain(value), "allowed": _allowed(error), "problem": str(error)}


def invalid_rows_view(error: Any) -> tuple[str, list[Record]]:
    rows = sorted({problem.row for problem in error.problems})
    caption = f"{plural(len(error.problems), 'problem')} in {plural(len(rows), 'row')}; {error.outcome}"
    return caption, [problem_record(problem) for problem in error.problems]

"""Library results as tables, in a notebook or at a Python prompt: a bounded display, and every row as data.

A result class mixes in :class:`Tabular` and names its view, a function from the result to a caption and
a list of flat records (one dict per row, values JSON-ready: strings, numbers, booleans or None). From
that view the result gets:

- ``records()`` (every row) and ``to_pandas()`` (a DataFrame of every row; pandas is imported only then,
  and a missing pandas is a MissingDependency naming ``pip install pandas``);
- a display: its text repr and ``_repr_html_`` (what Jupyter shows and saves) show at most
  ``options.max_rows`` rows, then "… N more rows", with a summary line (the view's caption) and the counts
  per pool and state of every row, so a 100,000-VM status renders as small as a 30-VM one. Per call:
  ``to_string(max_rows=…)``, ``to_html(max_rows=…)`` and ``table(max_rows=…)`` (which a notebook cell
  displays); ``max_rows=None`` shows every row.

The library never imports pandas or IPython otherwise. This module imports nothing of vgpu's but the root of
its errors, so the models and the errors can use it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Self, SupportsIndex, TypeVar, overload

from .error_root import InvalidValue, MissingDependency

if TYPE_CHECKING:  # names for annotations only: this module is imported on every start-up
    import pandas

    from .basics import Pool
    from .bulk import BulkPlan, BulkResult
    from .devargs import SegmentState
    from .errors import InvalidRows, RowProblem
    from .models import VM, AuditEntry, PoolDetail, VMConfig
    from .scan import ForeignSegment, ScanReport

    Record = dict[str, Any]

_Item = TypeVar("_Item")

PRIORITY_NOTE = "priority: low 0, medium 1, high 2 (0 is the lowest)"

DEFAULT_MAX_ROWS = 30  # as pandas' display.max_rows (60) keeps a notebook readable: a screenful
DEFAULT_MAX_COLWIDTH = 200  # characters of a cell shown: a problem's whole sentence, not a pasted megabyte
# The columns whose values are counted under a table (each value up to its first comma, colon or
# parenthesis: "unregistered, clone of VM-1 (…)" counts as "unregistered"), at most MAX_COUNTED values each.
COUNTED = ("pool_id", "state", "power_state", "outcome", "action", "field")
MAX_COUNTED = 8


# --- options ---------------------------------------------------------------------------------------------


def _limit(field: str, value: object, least: int) -> int | None:
    """A display limit as given: a whole number of at least ``least``, or None for no limit."""
    if value is None:
        return None
    index = getattr(type(value), "__index__", None)  # int, numpy.int64, ...; never a bool or a float
    number: int | None = index(value) if index is not None and not isinstance(value, bool) else None
    if number is None or number < least:
        raise InvalidValue(field, value, f"a whole number of at least {least}, or None for no limit")
    return number


class DisplayOptions:
    """How results display themselves (text repr and HTML), as pandas' display options do:
    ``vgpu.tables.options.max_rows = 100``. ``max_rows``: the rows shown at most (None: every row);
    ``max_colwidth``: the characters of a cell shown at most (None: whole cells). ``reset()`` restores the
    defaults. ``records()`` and ``to_pandas()`` always give everything."""

    __slots__ = ("_max_rows", "_max_colwidth")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._max_rows: int | None = DEFAULT_MAX_ROWS
        self._max_colwidth: int | None = DEFAULT_MAX_COLWIDTH

    @property
    def max_rows(self) -> int | None:
        return self._max_rows

    @max_rows.setter
    def max_rows(self, value: int | None) -> None:
        self._max_rows = _limit("max_rows", value, 1)

    @property
    def max_colwidth(self) -> int | None:
        return self._max_colwidth

    @max_colwidth.setter
    def max_colwidth(self, value: int | None) -> None:
        self._max_colwidth = _limit("max_colwidth", value, 4)

    def __repr__(self) -> str:
        return f"DisplayOptions(max_rows={self._max_rows!r}, max_colwidth={self._max_colwidth!r})"


options = DisplayOptions()


class _UseOption:
    """The default of a per-call ``max_rows``: whatever ``options.max_rows`` says when the table is drawn."""

    def __repr__(self) -> str:
        return "options.max_rows"


OPTION: Any = _UseOption()


def _rows_limit(max_rows: object) -> int | None:
    return options.max_rows if max_rows is OPTION else _limit("max_rows", max_rows, 1)


# --- the mixin -------------------------------------------------------------------------------------------


class Tabular:
    """Mixin: ``records()``, ``to_pandas()`` and a bounded display, from the class's ``_view``."""

    __slots__ = ()
    _columns: tuple[str, ...] = ()  # the columns of a table with no rows (for to_pandas)

    if TYPE_CHECKING:  # each class names its own, a function of the result: called as type(self)._view(self)
        def _view(self) -> tuple[str, list[Record]]: ...

    def records(self) -> list[Record]:
        """One flat, JSON-ready dict per row, every row (``pandas.DataFrame(result.records())``)."""
        return type(self)._view(self)[1]

    def to_pandas(self) -> pandas.DataFrame:
        """Every row as a pandas DataFrame (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas
        except ImportError:
            raise MissingDependency("pandas", "to_pandas()", "pip install pandas") from None
        records = self.records()
        return pandas.DataFrame(records, columns=None if records else list(type(self)._columns))

    def to_string(self, max_rows: int | None = OPTION) -> str:
        """The display as text: at most ``max_rows`` rows (default ``options.max_rows``; None: every row)."""
        return _text(_shown(self, _rows_limit(max_rows)))

    def to_html(self, max_rows: int | None = OPTION) -> str:
        """The display as an HTML table, every value escaped, at most ``max_rows`` rows as for to_string."""
        return _html(_shown(self, _rows_limit(max_rows)))

    def table(self, max_rows: int | None = OPTION) -> "Table":
        """The display with its own ``max_rows``, for a notebook cell: ``report.table(max_rows=200)``."""
        return Table(self, _rows_limit(max_rows))

    def __repr__(self) -> str:
        return self.to_string()

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's text/plain: the same text
        printer.text(self.to_string())


class Table:
    """A result's display with a row limit of its own (what ``Tabular.table()`` returns)."""

    __slots__ = ("result", "max_rows")

    def __init__(self, result: Tabular, max_rows: int | None) -> None:
        self.result = result
        self.max_rows = max_rows

    def __repr__(self) -> str:
        return self.result.to_string(self.max_rows)

    def _repr_html_(self) -> str:
        return self.result.to_html(self.max_rows)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class ResultList(Tabular, list[_Item]):
    """A plain list of library results that also shows itself as a table; equal to the same plain list."""

    __slots__ = ()

    @staticmethod
    def _row(item: _Item, /) -> Record:
        raise NotImplementedError

    _noun = "item"

    @overload
    def __getitem__(self, index: SupportsIndex) -> _Item: ...
    @overload
    def __getitem__(self, index: slice) -> Self: ...

    def __getitem__(self, index: SupportsIndex | slice) -> _Item | Self:
        if isinstance(index, slice):  # a slice (the first ten VMs) still shows itself as a table
            return type(self)(list.__getitem__(self, index))
        return list.__getitem__(self, index)

    def _view(items: ResultList[Any]) -> tuple[str, list[Record]]:
        return plural(len(items), items._noun), [items._row(item) for item in items]


class ProblemTable(Tabular, tuple["RowProblem[Hashable]", ...]):
    """The problems of a bulk operation (``RowProblem`` objects, a tuple), as a table: row, field, value,
    what is allowed, the sentence. Empty when every row is good, and still a table (``to_pandas()`` then
    gives an empty DataFrame with those columns)."""

    __slots__ = ()
    _columns = ("row", "field", "value", "allowed", "problem")

    def _view(problems: ProblemTable) -> tuple[str, list[Record]]:
        rows = len({problem.row for problem in problems})
        return f"{plural(len(problems), 'problem')} in {plural(rows, 'row')}", [problem_record(p) for p in problems]


# --- drawing ---------------------------------------------------------------------------------------------


class _Shown:
    """What a display shows: the result's name, its summary, the first rows (cut to the column width),
    how many rows there are in all, and the counts per pool and state of every row. (A plain class: a
    NamedTuple costs a fraction of a millisecond to create, and this module is on every start-up.)"""

    __slots__ = ("title", "caption", "columns", "rows", "total", "counts")

    def __init__(self, title: str, caption: str, columns: list[str], rows: list[list[Any]], total: int, counts: list[str]) -> None:
        self.title, self.caption, self.columns, self.rows, self.total, self.counts = title, caption, columns, rows, total, counts


def _shown(result: Tabular, max_rows: int | None) -> _Shown:
    caption, records = type(result)._view(result)
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    if not records:
        columns = list(type(result)._columns)
    first = records if max_rows is None else records[:max_rows]
    width = options.max_colwidth
    rows = [[_clip(record.get(column), width) for column in columns] for record in first]
    note = f" — {PRIORITY_NOTE}" if "priority" in columns else ""
    return _Shown(type(result).__name__, caption + note, columns, rows, len(records), _counts(records, columns))


def _clip(value: Any, width: int | None) -> Any:
    if isinstance(value, str) and width is not None and len(value) > width:
        return value[: width - 1] + "…"
    return value


def _category(value: Any) -> str:
    if value is None:
        return "none"
    text = str(value)
    for stop in (",", ":", " ("):
        text = text.split(stop, 1)[0]
    return text.strip() or "none"


def _counts(records: list[Record], columns: list[str]) -> list[str]:
    """``pool_id: A 950, B 950, none 100`` for each counted column, values in the order they first appear."""
    lines = []
    for column in COUNTED:
        if column not in columns or not records:
            continue
        counts: dict[str, int] = {}
        for record in records:
            key = _category(record.get(column))
            counts[key] = counts.get(key, 0) + 1
        if len(counts) == len(records):
            continue  # every value different (two pools, two rows): nothing to count
        shown = [f"{key} {count}" for key, count in list(counts.items())[:MAX_COUNTED]]
        if len(counts) > MAX_COUNTED:
            shown.append(f"… {len(counts) - MAX_COUNTED} others")
        lines.append(f"{column}: {', '.join(shown)}")
    return lines


def _more(shown: _Shown) -> str:
    hidden = shown.total - len(shown.rows)
    return f"… {plural(hidden, 'more row')} ({shown.total} in all): .records() or .to_pandas() gives every row"


def _text_cell(value: Any) -> str:
    return "" if value is None else str(value)


def _text(shown: _Shown) -> str:
    lines = [f"{shown.title}: {shown.caption}"]
    cells = [[_text_cell(value) for value in row] for row in shown.rows]
    widths = [max([len(column), *(len(row[index]) for row in cells)]) for index, column in enumerate(shown.columns)]
    numeric = [all(isinstance(row[index], (int, float)) and not isinstance(row[index], bool) for row in shown.rows if row[index] is not None)
               for index in range(len(shown.columns))]
    lines.append("  ".join(column.ljust(width) for column, width in zip(shown.columns, widths)).rstrip())
    for row in cells:
        parts = [cell.rjust(width) if right else cell.ljust(width) for cell, width, right in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
    if not shown.rows:
        lines.append("(none)")
    if len(shown.rows) < shown.total:
        lines.append(_more(shown))
    lines.extend(shown.counts)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    import html  # only when a notebook renders: html.entities is not free to import

    return "" if value is None else html.escape(str(value))


def _html(shown: _Shown) -> str:
    columns = shown.columns
    parts = ['<table class="vgpu-table">']
    counts = f"<br><small>{_cell('; '.join(shown.counts))}</small>" if shown.counts else ""
    if shown.caption or counts:
        parts.append(f'<caption style="text-align:left">{_cell(shown.caption)}{counts}</caption>')
    parts.append("<thead><tr>" + "".join(f"<th>{_cell(column)}</th>" for column in columns) + "</tr></thead>")
    parts.append("<tbody>")
    for row in shown.rows:
        parts.append("<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>")
    if not shown.rows:
        parts.append("<tr><td><em>none</em></td></tr>")
    if len(shown.rows) < shown.total:
        parts.append(f'<tr><td colspan="{max(len(columns), 1)}"><em>{_cell(_more(shown))}</em></td></tr>')
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


def config_text(config: VMConfig) -> str:
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


def mapping_text(data: dict[str, Any] | None) -> str | None:
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


def vm_record(vm: VM) -> Record:
    return {
        "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": vm.pool_id,
        "priority": vm.priority.label, "priority_value": int(vm.priority), "vm_id": vm.vm_id,
    }


def pool_record(pool: Pool) -> Record:
    counts = pool.counts
    return {
        "pool_id": pool.pool_id, "pool_name": pool.pool_name, "enabled": pool.enabled, "vms": pool.vm_count,
        "high": counts.high, "medium": counts.medium, "low": counts.low, "description": pool.description,
    }


def audit_row(entry: AuditEntry) -> Record:
    return {
        "entry_id": entry.entry_id, "at": entry.at, "action": entry.action, "subject": entry.subject,
        "old": mapping_text(entry.old), "new": mapping_text(entry.new),
    }


VM_COLUMNS = ("vm_uuid", "vm_name", "pool_id", "priority", "priority_value", "vm_id")

# The columns of records() (and of to_data's VMs) that are there for reading, not input: bulk operations read
# past them, so a result's records go back in as they are (vgpu.rows). ``priority_value`` is the priority's
# number, shown beside its name: ``priority`` is what counts.
OUTPUT_COLUMNS = frozenset({
    "priority_value", "power_state", "state", "row", "action", "change", "segment", "current", "new", "restart",
    "outcome", "old", "restarted", "stopped", "error", "created_at", "updated_at", "running_with", "host",
    "resident_on",
})


class VMList(ResultList["VM"]):
    """Registered VMs (``vms.list_vms``, ``vms.db_register_many``)."""

    __slots__ = ()
    _noun = "VM"
    _row = staticmethod(vm_record)
    _columns = VM_COLUMNS


class PoolList(ResultList["Pool"]):
    """Pools with their VM counts (``pools.list_pools``)."""

    __slots__ = ()
    _noun = "pool"
    _row = staticmethod(pool_record)
    _columns = ("pool_id", "pool_name", "enabled", "vms", "high", "medium", "low", "description")


class AuditList(ResultList["AuditEntry"]):
    """Recorded changes, newest first (``audit.history``)."""

    __slots__ = ()
    _noun = "change"
    _row = staticmethod(audit_row)
    _columns = ("entry_id", "at", "action", "subject", "old", "new")


# --- views of compound results ---------------------------------------------------------------------------


def pool_detail_view(detail: PoolDetail) -> tuple[str, list[Record]]:
    pool, counts = detail.pool, detail.pool.counts
    state = "enabled" if pool.enabled else "disabled"
    caption = (f'Pool {pool.pool_id} "{pool.pool_name}": {state}, {plural(pool.vm_count, "VM")} '
               f"(high {counts.high}, medium {counts.medium}, low {counts.low})")
    return caption, [vm_record(vm) for vm in detail.vms]


def _unregistered_state(foreign: ForeignSegment | None) -> str:
    if foreign is None:
        return "unregistered"
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


def scan_view(report: ScanReport) -> tuple[str, list[Record]]:
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


def config_record(vm: VM, config: VMConfig) -> Record:
    """A VM's row with a configuration of its own (the one asked for): what a change row reads back."""
    return {
        "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": config.pool_id, "priority": config.priority.label,
        "priority_value": int(config.priority), "vm_id": config.vm_id,
    }


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
        **vm_record(done.vm), "outcome": "changed" if done.changed else "unchanged",
        "old": config_text(done.old), "new": config_text(done.vm.config), "restarted": yes_no(done.restarted),
        "stopped": done.stopped_how, "error": None,
    } for done in result.results]
    rows += [{
        **(config_record(failure.plan.vm, failure.plan.new) if failure.plan else {"vm_uuid": failure.vm_uuid, "vm_name": None}),
        "outcome": "failed",
        "old": config_text(failure.plan.current) if failure.plan else None,
        "new": config_text(failure.plan.new) if failure.plan else None,
        "restarted": None, "stopped": None, "error": failure.message,
    } for failure in result.failures]
    left = [("interrupted", plan) for plan in result.interrupted] + [("not started", plan) for plan in result.not_started]
    rows += [{
        **config_record(plan.vm, plan.new), "outcome": outcome, "old": config_text(plan.current),
        "new": config_text(plan.new), "restarted": None, "stopped": None,
        "error": "cut part way: run 'vgpu-admin recover'" if outcome == "interrupted" else None,
    } for outcome, plan in left]
    summary = f"{len(result.results)} changed, {len(result.failures)} failed"
    for outcome, plans in (("interrupted", result.interrupted), ("not started", result.not_started)):
        if plans:
            summary += f", {len(plans)} {outcome}"
    return summary, rows


def _allowed(error: Any) -> Any:
    if hasattr(error, "allowed"):  # InvalidValue
        allowed = error.allowed
        return allowed if isinstance(allowed, str) else ", ".join(str(item) for item in allowed)
    if hasattr(error, "holder"):  # Conflict
        return f"a {error.field} not already used by {error.holder}"
    if hasattr(error, "kind"):  # NotFound
        return f"an existing {error.kind}"
    return None


def problem_record(problem: RowProblem[Hashable]) -> Record:
    """One row of a bulk operation's problems: which row, which field, the value, what is allowed."""
    error = problem.error
    field = getattr(error, "field", getattr(error, "kind", None))
    value = getattr(error, "value", getattr(error, "key", None))
    return {"row": problem.row, "field": field, "value": plain(value), "allowed": _allowed(error), "problem": str(error)}


def invalid_rows_view(error: InvalidRows) -> tuple[str, list[Record]]:
    rows = {problem.row for problem in error.problems}  # counted, never sorted: labels may be of mixed types
    caption = f"{plural(len(error.problems), 'problem')} in {plural(len(rows), 'row')}; {error.outcome}"
    return caption, [problem_record(problem) for problem in error.problems]

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
its errors, so the models and the errors can use it. The drawing is :mod:`vgpu.drawing`'s, the views of the
compound results (a scan, a bulk plan) :mod:`vgpu.views`'.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Self, SupportsIndex, TypeVar, overload

from .error_root import InvalidValue, MissingDependency

if TYPE_CHECKING:  # names for annotations only: this module is imported on every start-up
    import pandas

    from .basics import Pool
    from .errors import InvalidRows, RowProblem
    from .models import VM, AuditEntry, VMConfig

    Record = dict[str, Any]

_Item = TypeVar("_Item")

DEFAULT_MAX_ROWS = 30  # as pandas' display.max_rows (60) keeps a notebook readable: a screenful
DEFAULT_MAX_COLWIDTH = 200  # characters of a cell shown: a problem's whole sentence, not a pasted megabyte
# Drawing a table (vgpu.drawing) and the views of compound results (vgpu.views) live apart: this module is on
# every start-up, which is measured, and neither is needed before a result is displayed.


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


def _whole_numbers_with_blanks(records: list[Record]) -> list[str]:
    """The columns whose values are whole numbers where they are not blank (None): a vm_id column with the
    unregistered VMs' blanks, which pandas would turn to float and plan_many would then refuse."""
    if not records:
        return []
    found = []
    for column in records[0]:
        values = [record.get(column) for record in records]
        present = [value for value in values if value is not None]
        if present and len(present) < len(values) and all(type(value) is int for value in present):
            found.append(column)
    return found


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
        frame = pandas.DataFrame(records, columns=None if records else list(type(self)._columns))
        for column in _whole_numbers_with_blanks(records):
            frame[column] = frame[column].astype("Int64")  # pandas would make them floats, 1.0 for vm_id 1
        return frame

    def to_string(self, max_rows: int | None = OPTION) -> str:
        """The display as text: at most ``max_rows`` rows (default ``options.max_rows``; None: every row)."""
        from . import drawing  # on the first display: a one-shot command draws no table

        return drawing.text(drawing.shown(self, _rows_limit(max_rows), options.max_colwidth))

    def to_html(self, max_rows: int | None = OPTION) -> str:
        """The display as an HTML table, every value escaped, at most ``max_rows`` rows as for to_string."""
        from . import drawing

        return drawing.html(drawing.shown(self, _rows_limit(max_rows), options.max_colwidth))

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
        rows = count_rows(problems)
        return f"{plural(len(problems), 'problem')} in {plural(rows, 'row')}", [problem_record(p) for p in problems]


# --- flat values -----------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready scalar: enums by their name, anything unusual by its repr."""
    if isinstance(value, enum.Enum):
        label = getattr(value, "label", None)  # Priority by its name, PowerState by its value
        return label if isinstance(label, str) else plain(value.value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    return repr(value)


def json_float(value: float) -> float | str:
    """A float as strict JSON takes it: inf, -inf and nan, which JSON has not (json.dumps writes Infinity and
    NaN, which strict parsers refuse), as their repr (``'inf'``; numpy's too, as a float's)."""
    return value if math.isfinite(value) else repr(float(value))


def row_label(label: Any) -> Any:
    """An input row's label as JSON takes it: a number (numpy's and pandas' integers included) or a string
    as it is, anything else (a DatetimeIndex's Timestamp, a MultiIndex's tuple) as its text. The result's
    ``rows`` keep the labels themselves, to index the caller's DataFrame with."""
    if isinstance(label, float):
        return json_float(label)
    if label is None or isinstance(label, (str, bool, int)):
        return label
    if hasattr(label, "__index__"):
        return label.__index__()
    return str(label)


def count_rows(problems: Iterable[RowProblem[Hashable]]) -> int:
    """The rows the problems are about: by their numbers where known, as a DataFrame's index may repeat a
    label (two rows under label 5 are two), else by their labels (counted, never sorted: labels may be of
    mixed types)."""
    return len({("row", problem.position) if problem.position is not None else ("label", problem.row) for problem in problems})


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


def config_record(vm: VM, config: VMConfig) -> Record:
    """A VM's row with a configuration of its own (the one asked for): what a change row reads back."""
    return {
        "vm_uuid": vm.vm_uuid, "vm_name": vm.vm_name, "pool_id": config.pool_id, "priority": config.priority.label,
        "priority_value": int(config.priority), "vm_id": config.vm_id,
    }


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
    return {"row": row_label(problem.row), "field": field, "value": plain(value), "allowed": _allowed(error), "problem": str(error)}


def invalid_rows_view(error: InvalidRows) -> tuple[str, list[Record]]:
    caption = f"{plural(len(error.problems), 'problem')} in {plural(count_rows(error.problems), 'row')}; {error.outcome}"
    return caption, [problem_record(problem) for problem in error.problems]

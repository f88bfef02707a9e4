"""Rows of a table as a CSV file or a notebook hands them over: which key gives which field, and blank cells.

Bulk operations take rows as :func:`labelled` reads them: a list of mappings (``csv.DictReader``, dicts built
in code, ``df.to_dict("records")``), numbered from 1; or rows that carry their own labels, which problems
then name: a pandas DataFrame (its index) or a mapping of label to row (``df.to_dict("index")``).

A :class:`Header` reads each row's keys the way a person means them: ``" Pool"``, ``"UUID"`` and a
spreadsheet's byte-order mark on the first header (``"\\ufeffuuid"``) all name their field. The columns the
library itself writes into records() (``priority_value``, ``state``, ...: :data:`vgpu.tables.OUTPUT_COLUMNS`)
are read past, so a result's records go back in as they are. What it cannot read is a problem with that row,
never a guess: a key that names no field (a typo must not quietly leave a default in place), one field under
two keys, no UUID column, or more cells than the header.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, Mapping, NamedTuple, Sequence, TypeGuard, TypeVar

from .errors import InvalidColumns, InvalidValue, NotRows, RowProblem
from .tables import OUTPUT_COLUMNS
from .values import parse_uuid

if TYPE_CHECKING:
    from typing import Protocol

    class _Frame(Protocol):
        """What a pandas DataFrame is to this module (duck-typed: pandas is never imported here)."""

        @property
        def index(self) -> Iterable[Hashable]: ...
        def to_dict(self, orient: str) -> list[dict[Hashable, Any]]: ...

Row = Mapping[Any, object]  # one row: keys are the caller's (str as a rule: a key of another type is a problem)
# Reads one row: its fields (None where it has no cell), the problems with its columns, and its layout.
Reader = Callable[[Row], "tuple[tuple[object, ...], list[InvalidValue], Layout]"]

_T = TypeVar("_T")

_BOM = "\ufeff"  # Excel's "CSV UTF-8" starts the file, and so the first header, with it


def blank(value: object) -> bool:
    """None, empty or spaces, or what pandas puts in an empty cell: NaN, or pd.NA in a nullable column."""
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and value != value):
        return True
    return _pandas_na(value)


def not_given(value: object) -> bool:
    """An argument left out: None, or pandas' own missing value (pd.NA, what a nullable column's empty cell
    is when a frame is gone through row by row). Unlike blank(), "", spaces and NaN are values given."""
    return value is None or _pandas_na(value)


def _pandas_na(value: object) -> bool:
    pandas = sys.modules.get("pandas")  # never imported here: a pd.NA can only come from a loaded pandas
    return pandas is not None and value is getattr(pandas, "NA", None)


def missing_label(label: object) -> bool:
    """Whether a row's label is a missing value (None, a NaN of any float type, NaT, pd.NA), as pandas
    fills an index it could not: these are one label, though a NaN is not equal to another NaN (nor to
    itself) and so would pass unseen where a label repeats."""
    if label is None or _pandas_na(label):
        return True
    try:
        return bool(label != label)
    except (TypeError, ValueError):  # a label whose comparison is not a truth value is not a NaN
        return False


def as_list(items: Iterable[object]) -> list[object]:
    """``items`` as a list of rows. NotRows for what iterates as something else: a pandas DataFrame (its
    column names), a single row (its keys) or a string (its characters)."""
    if isinstance(items, (str, Mapping)) or items is None or not hasattr(items, "__iter__"):
        raise NotRows(type(items).__name__, "pass a list of rows ([row] for one)")
    listed = list(items)
    # Table-like but not a DataFrame (labelled() takes those): has to_dict and iterates as its column labels.
    if listed and hasattr(items, "to_dict") and not any(isinstance(item, Mapping) for item in listed):
        raise NotRows(type(items).__name__, 'pass df.to_dict("records"), one dict per row')
    return listed


def labelled(items: Iterable[object]) -> tuple[Sequence[object], list[Hashable] | None]:
    """The rows of ``items`` and their labels, or None where rows are numbered from 1 (a list).

    A pandas DataFrame gives its rows and its index (any index: labels may repeat); a mapping whose values
    are all rows gives its values and its keys (``df.to_dict("index")``; an empty mapping has no rows).
    Anything else is read by :func:`as_list`."""
    if isinstance(items, Mapping):
        if all(isinstance(row, Mapping) for row in items.values()):
            return list(items.values()), list(items.keys())
    elif _is_dataframe(items):
        return items.to_dict("records"), list(items.index)
    listed = items if isinstance(items, (list, tuple)) else as_list(items)
    return listed, None


def _is_dataframe(items: object) -> TypeGuard[_Frame]:
    # Duck-typed, never imported: the library does not load pandas for its callers.
    return all(hasattr(items, name) for name in ("to_dict", "index", "columns", "iloc"))


def row_name(labels: list[Hashable] | None) -> Callable[[int], Hashable]:
    """A function from a row's position (from 1) to what problems call it: its label, or the position."""
    if labels is None:
        return lambda position: position
    return lambda position: labels[position - 1]


class RepeatedLabels:
    """The labels several rows have: ``label in repeated``. The missing labels (:func:`missing_label`) count
    as one, whichever kind each is."""

    def __init__(self, labels: Sequence[Hashable] | None) -> None:
        seen: set[Hashable] = set()
        repeated: set[Hashable] = set()
        missing = 0
        for label in labels or ():
            if missing_label(label):
                missing += 1
                continue
            (repeated if label in seen else seen).add(label)
        self._labels = frozenset(repeated)
        self._missing = missing > 1

    def __contains__(self, label: object) -> bool:
        if missing_label(label):
            return self._missing
        return label in self._labels

    def __bool__(self) -> bool:
        return self._missing or bool(self._labels)


def repeated_labels(labels: Sequence[Hashable] | None) -> RepeatedLabels:
    """The labels several rows have (a DataFrame's index may repeat one, a missing one too); none for
    numbered rows."""
    return RepeatedLabels(labels)


def row_reference(labels: list[Hashable] | None) -> Callable[[int], str]:
    """How a sentence names a row by its position (from 1): "row 5", or "row 5 (position 2)" where another
    row has that label too, so that two rows are never named alike."""
    name, repeated = row_name(labels), repeated_labels(labels)

    def reference(position: int) -> str:
        label = name(position)
        return f"row {label} (position {position})" if label in repeated else f"row {label}"
    return reference


def problem_labeller(labels: list[Hashable] | None) -> Callable[[RowProblem[int]], RowProblem[Hashable]]:
    """A problem found by row number, made to name its row as the caller does (its label, or the number),
    keeping the number as its position (and naming it too where the label repeats)."""
    name, repeated = row_name(labels), repeated_labels(labels)
    return lambda problem: RowProblem(name(problem.row), problem.error, problem.row, label_repeats=name(problem.row) in repeated)


def normal_key(key: str) -> str:
    return key.lstrip(_BOM).strip().lower()


class Layout(NamedTuple):
    """How one shape of row (its keys, in order) maps onto the fields."""

    keys: tuple[object, ...]  # for each field, the row's key that gives it, or ABSENT
    problems: tuple[Callable[[Row], InvalidValue], ...]  # each makes one problem for a row of this shape
    unsure: frozenset[int]  # fields whose value cannot be known (no column, or two): not checked

    def has(self, field: int) -> bool:
        return self.keys[field] is not ABSENT

    def named_vm(self, values: tuple[object, ...]) -> str | None:
        """The canonical UUID of the VM a row of this shape names (field 0), even a row refused for another
        field, so that a later row naming that VM is seen to repeat it; None where it names none that can be
        read (no UUID column, two, or a bad UUID)."""
        return self.named(values, 0, parse_uuid)

    def named(self, values: tuple[object, ...], field: int, parse: Callable[[object], _T]) -> _T | None:
        """Field ``field`` of a row of this shape as ``parse`` reads it, even in a row refused for another
        field (a vm_id a later row may repeat); None where the row gives none that can be read (no column,
        two, a blank cell, or a bad value: a guess would name a value the row never gave)."""
        if field in self.unsure or blank(values[field]):
            return None
        try:
            return parse(values[field])
        except InvalidValue:
            return None


ABSENT = object()  # the key of a field a row has no column for: no mapping has it, so .get() gives None


class Header:
    """The columns one kind of row may have: the field (by position) each key names, and each field's name
    for messages. Field 0 is required."""

    def __init__(self, field_of_key: Mapping[str, int], names: Sequence[str], ignored: frozenset[str] = OUTPUT_COLUMNS) -> None:
        self.field_of_key = field_of_key
        self.names = tuple(names)
        self.ignored = ignored  # keys read past: what records() adds for reading (priority_value, state, ...)

    def layout(self, keys: Sequence[object]) -> Layout:
        by_field: list[list[object]] = [[] for _ in self.names]
        unknown: list[object] = []
        extra = False
        for key in keys:
            field = self.field_of_key.get(normal_key(key)) if isinstance(key, str) else None
            if field is not None:
                by_field[field].append(key)
            elif isinstance(key, str) and normal_key(key) in self.ignored:
                continue
            elif key is None:  # csv.DictReader's key for the cells beyond the header
                extra = True
            else:
                unknown.append(key)
        problems: list[Callable[[Row], InvalidValue]] = []
        if extra:
            problems.append(lambda item: InvalidColumns.extra_cells(_cells(item[None])))
        if not by_field[0]:
            spellings = [key for key, field in self.field_of_key.items() if field == 0]
            problems.append(lambda item: InvalidColumns.missing(spellings, self.names[0]))
        for field, given in enumerate(by_field):
            if len(given) > 1:
                problems.append(_doubled(given, self.names[field]))
        if unknown:
            # a typo such as "prio" must not quietly leave the default in place
            text = ", ".join(sorted(str(key) for key in unknown))
            problems.append(lambda item: InvalidValue("column", text, sorted(self.field_of_key)))
        keys_by_field = tuple(given[0] if len(given) == 1 else ABSENT for given in by_field)
        unsure = frozenset(field for field, given in enumerate(by_field) if len(given) > 1 or (field == 0 and not given))
        return Layout(keys_by_field, tuple(problems), unsure)

    def reader(self) -> Reader:
        """A function reading one row: its fields (None where it has no cell), the problems with its columns,
        and its layout. Made once per batch: rows of one shape share one layout."""
        layouts: dict[tuple[object, ...], Layout] = {}

        def read(item: Row) -> tuple[tuple[object, ...], list[InvalidValue], Layout]:
            keys = tuple(item)
            layout = layouts.get(keys)
            if layout is None:
                layout = layouts[keys] = self.layout(keys)
            values = tuple(map(item.get, layout.keys))
            return values, [problem(item) for problem in layout.problems] if layout.problems else [], layout

        return read


def _doubled(keys: list[object], name: str) -> Callable[[Row], InvalidValue]:
    return lambda item: InvalidColumns.doubled(keys, name)


def _cells(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple)) else [value]

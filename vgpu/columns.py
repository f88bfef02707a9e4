"""Validate a uniform batch of registration rows a column at a time: the fast path of bulk registration.

A batch read from a CSV file or built in a notebook is almost always uniform: every row a dict with the
same keys, every value in its canonical spelling. Such a batch is checked here with one C-level pass per
column (a regular expression over all the UUIDs at once, one dict lookup per pool or priority cell) instead
of five parser calls per row, which is what keeps ``vms.register_many`` near the speed of a raw insert.

:func:`uniform_columns` only ever accepts: it returns the parsed columns when every cell is one the
per-row parsers of :mod:`vgpu.values` would accept with the same result, and None otherwise, whereupon the
caller parses row by row and reports every problem. So this module never decides that anything is wrong,
and a property test holds the two paths to the same answer.
"""

from __future__ import annotations

import re
from typing import Any, Sequence, TypeGuard

from .basics import NAME_MAX, VM_ID_MAX, Priority
from .models import DEFAULT_POOL, DEFAULT_PRIORITY
from .values import _POOL_BY_TEXT, _PRIORITY_BY_TEXT, _UUID_RE

# Which Registration field (by position: vm_uuid, vm_name, pool, priority, vm_id) each key of a row means.
FIELD_OF_KEY = {
    "vm_uuid": 0, "uuid": 0,
    "vm_name": 1, "name": 1,
    "pool": 2, "pool_id": 2,
    "priority": 3,
    "vm_id": 4,
}

_UUID_LINES = re.compile(f"(?:{_UUID_RE.pattern}\n)*{_UUID_RE.pattern}")
_UUID_LENGTH = 36
# A blank optional cell (None or "") takes the default, as in vms._parse_row. Only str keys besides
# None: an int key would let True (== 1) through as a priority.
# (Copied by their items: to a type checker a dict of str keys is no dict of str-or-None keys; its pairs are.)
_POOL_OF_CELL: dict[str | None, str] = {**dict(_POOL_BY_TEXT.items()), None: DEFAULT_POOL, "": DEFAULT_POOL}
_PRIORITY_OF_CELL: dict[str | None, Priority] = {**dict(_PRIORITY_BY_TEXT.items()), None: DEFAULT_PRIORITY, "": DEFAULT_PRIORITY}

Columns = tuple[list[str], list[str | None], list[str], list[Priority], list[int | None]]
Cells = list[Any]  # one column of the caller's rows: any values, each checked here before it is used


def uniform_columns(items: Sequence[object]) -> Columns | None:
    """The five parsed columns (vm_uuid, vm_name, pool_id, priority, vm_id) of ``items``, or None when the
    batch is not uniform or any cell needs the per-row parsers (to be cleaned up, or to be refused)."""
    if not items or not _all_dicts(items):
        return None
    keys = tuple(items[0])
    fields = [FIELD_OF_KEY.get(key) for key in keys]
    if None in fields or len(set(fields)) != len(fields) or 0 not in fields:
        return None  # an unknown key, two spellings of one field, or no UUID: the per-row path explains
    if set(map(len, items)) != {len(keys)}:
        return None
    try:  # every row has the first row's keys and as many keys, so exactly the same keys
        cells = {field: [item[key] for item in items] for key, field in zip(keys, fields)}
        uuids = _uuids(cells[0])
        names: list[str | None] | None = _names(cells[1]) if 1 in cells else [None] * len(items)
        pools = [_POOL_OF_CELL[cell] for cell in cells[2]] if 2 in cells else [DEFAULT_POOL] * len(items)
        priorities = [_PRIORITY_OF_CELL[cell] for cell in cells[3]] if 3 in cells else [DEFAULT_PRIORITY] * len(items)
        vm_ids: list[int | None] | None = _vm_ids(cells[4]) if 4 in cells else [None] * len(items)
    except (KeyError, TypeError, AttributeError, ValueError):  # a missing key, an unhashable or odd cell
        return None
    if uuids is None or names is None or vm_ids is None:
        return None
    return uuids, names, pools, priorities, vm_ids


def _all_dicts(items: Sequence[object]) -> TypeGuard[Sequence[dict[Any, Any]]]:
    return set(map(type, items)) == {dict}


def _uuids(cells: Cells) -> list[str] | None:
    # One match over all of them. Each matched line is exactly one UUID, so the joined length rules out a
    # cell that smuggles in a second line.
    if set(map(type, cells)) != {str}:
        return None  # a str subclass (numpy.str_) is stored as the plain str the per-row parser makes
    joined = "\n".join(cells)
    if len(joined) != (_UUID_LENGTH + 1) * len(cells) - 1 or not _UUID_LINES.fullmatch(joined):
        return None
    return cells


def _names(cells: Cells) -> list[str | None] | None:
    stripped = [cell.strip() for cell in cells]
    # The concatenation is printable exactly when every name is.
    if max(map(len, stripped)) > NAME_MAX or not "".join(stripped).isprintable():
        return None
    return [name or None for name in stripped]  # an empty name means "no name"


def _vm_ids(cells: Cells) -> list[int | None] | None:
    if all(cell is None or cell == "" for cell in cells):
        return [None] * len(cells)
    if all(type(cell) is int and 1 <= cell <= VM_ID_MAX for cell in cells):
        return cells
    return None

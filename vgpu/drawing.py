"""Drawing a result as a bounded table, as text or HTML: what :class:`vgpu.tables.Tabular`'s displays call.

Given a result's view (its caption and flat records), :func:`shown` picks the rows to show and counts the
values per pool and state of every row; :func:`text` and :func:`html` draw that. Imported on a result's first
display, not before: a one-shot command, whose start-up is measured, never draws a table. Of vgpu's modules
it imports only vgpu.escape (vgpu.tables imports it). Text is what a terminal shows: every character of a
value that does not print (a VM's name, chosen by a guest's owner) is written as its escape, as vgpu-admin's
own output does, so a name cannot clear the screen or forge a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .escape import shown as printable

if TYPE_CHECKING:  # the result's type, for annotations only: vgpu.tables imports this module
    from .tables import Tabular

Record = dict[str, Any]

PRIORITY_NOTE = "priority: low 0, medium 1, high 2 (0 is the lowest)"

# The columns whose values are counted under a table (each value up to its first comma, colon or
# parenthesis: "unregistered, clone of VM-1 (…)" counts as "unregistered"), at most MAX_COUNTED values each.
COUNTED = ("pool_id", "state", "power_state", "outcome", "action", "field")
MAX_COUNTED = 8


class Shown:
    """What a display shows: the result's name, its summary, the first rows (cut to the column width),
    how many rows there are in all, and the counts per pool and state of every row."""

    __slots__ = ("title", "caption", "columns", "rows", "total", "counts")

    def __init__(self, title: str, caption: str, columns: list[str], rows: list[list[Any]], total: int, counts: list[str]) -> None:
        self.title, self.caption, self.columns, self.rows, self.total, self.counts = title, caption, columns, rows, total, counts


def shown(result: Tabular, max_rows: int | None, width: int | None) -> Shown:
    """What ``result`` displays: its view's first ``max_rows`` rows (None: all), cells cut at ``width``
    characters (None: whole), titled with its class's name."""
    caption, records = type(result)._view(result)
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    if not records:
        columns = list(type(result)._columns)
    first = records if max_rows is None else records[:max_rows]
    rows = [[_clip(record.get(column), width) for column in columns] for record in first]
    note = f" — {PRIORITY_NOTE}" if "priority" in columns else ""
    return Shown(type(result).__name__, caption + note, columns, rows, len(records), _counts(records, columns))


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


def _more(shown: Shown) -> str:
    hidden = shown.total - len(shown.rows)
    rows = "row" if hidden == 1 else "rows"  # not tables.plural: tables imports this module
    return f"… {hidden} more {rows} ({shown.total} in all): .records() or .to_pandas() gives every row"


def _text_cell(value: Any) -> str:
    return "" if value is None else printable(value)


def text(shown: Shown) -> str:
    lines = [f"{shown.title}: {printable(shown.caption)}"]
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
    lines.extend(printable(line) for line in shown.counts)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    from html import escape  # only when a notebook renders: html.entities is not free to import

    return "" if value is None else escape(str(value))


def html(shown: Shown) -> str:
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

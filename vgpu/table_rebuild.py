"""Rebuilding ``pools`` or ``vms`` to the spec's definition without losing what an admin added to it.

SQLite cannot add a CHECK to a table in place, so repair-db follows SQLite's procedure for changing a table
(https://www.sqlite.org/lang_altertable.html#otheralter): inside the caller's transaction, with foreign keys
off, it saves the table's indexes and triggers, copies the rows aside, drops the table, creates it with the
spec's definition plus every column and constraint the spec lacks, copies every column back (rowids too),
and re-creates the indexes and triggers. A column or constraint is carried in the words it was declared with,
taken from the CREATE TABLE text in ``sqlite_master``: SQLite has no PRAGMA for a CHECK or a COLLATE. What
cannot be carried as it was raises NotCarried, and the caller rolls back.

The rows wait in a temporary table rather than the new table being made under another name and renamed: a
rename would store the table's name quoted (no longer the spec's text) and is refused while a view names the
table that was dropped.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from . import schema

SPEC = {"pools": schema.SPEC_POOLS.strip().removesuffix(";"), "vms": schema.SPEC_VMS.strip().removesuffix(";")}

# A string, a quoted identifier, a comment, a bracket or comma, blanks, or a run of anything else.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|\Z)"""
                    r"""|[(),]|\s+|[^\s'"`\[(),\-/]+|[-/]""", re.S)
_TABLE_CONSTRAINT = {"constraint", "primary", "unique", "check", "foreign"}
# The words that start a clause of a column definition (NOT starts one only as NOT NULL: a REFERENCES
# clause may say NOT DEFERRABLE; AS belongs to GENERATED ALWAYS AS).
_CLAUSE = {"constraint", "primary", "null", "unique", "check", "default", "collate", "references", "generated", "as"}
_NOISE = re.compile(r"[\s\"`\[\]]+")


class NotCarried(Exception):
    """Something an admin added to ``pools`` or ``vms`` that a rebuild cannot carry over as it was: ``what``
    names it, ``why`` says why. The caller rolls back, so nothing is changed."""

    def __init__(self, what: str, why: str) -> None:
        self.what = what
        self.why = why
        super().__init__(f"{what} {why}")


@dataclass(frozen=True)
class TableSql:
    columns: dict[str, str]  # the column's name, lower-cased (SQLite ignores case) -> its definition
    constraints: tuple[str, ...]
    options: str  # what follows the closing bracket: WITHOUT ROWID, STRICT


def table(conn: sqlite3.Connection, name: str) -> list[str]:
    """Rebuild table ``name`` (pools or vms); returns what it had beyond the spec and still has."""
    old = parse(conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()[0])
    columns, constraints, kept = _definition(name, old, parse(SPEC[name]))
    saved = [row for row in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND "
                                         "type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid", (name,))
             if row[1] not in schema.SPEC_INDEXES]
    # Generated columns are computed again, never copied; rowids are kept, as something may refer to them.
    copied = [quoted(column) for column, hidden in conn.execute("SELECT name, hidden FROM pragma_table_xinfo(?)", (name,))
              if hidden == 0]
    if "without rowid" not in _normal_words(old.options):
        copied.insert(0, "rowid")
    staging = f"vgpu_repair_{name}"
    conn.execute(f"CREATE TEMP TABLE {staging} AS SELECT {', '.join(copied)} FROM main.{name}")
    conn.execute(f"DROP TABLE main.{name}")
    try:
        conn.execute(_create(name, columns, constraints))
    except sqlite3.Error as exc:
        raise NotCarried(", ".join(kept), f"cannot be declared with the spec's {name} (SQLite says: {exc})") from exc
    try:
        conn.execute(f"INSERT INTO main.{name} ({', '.join(copied)}) SELECT * FROM temp.{staging}")
    except sqlite3.IntegrityError as exc:
        raise NotCarried(f"a {name} row", f"breaks a constraint the spec does not have (SQLite says: {exc})") from exc
    conn.execute(f"DROP TABLE temp.{staging}")
    for kind, item, sql in saved:
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            raise NotCarried(f"{kind} {item}", f"cannot be re-created on the rebuilt {name} (SQLite says: {exc})") from exc
        kept.append(f"{kind} {item}")
    return kept


def _definition(name: str, old: TableSql, spec: TableSql) -> tuple[list[str], list[str], list[str]]:
    """The new table's column definitions and constraints, and what of them is not the spec's, named."""
    columns, kept = [], []
    for column, definition in spec.columns.items():
        specs = {normal_sql(clause) for clause in _clauses(definition)}
        extra = [clause for clause in _clauses(old.columns.get(column, "")) if normal_sql(clause) not in specs
                 and not _the_specs_own(name, column, clause)]
        columns.append(" ".join([definition, *extra]))
        kept += [f"{clause} on {name}.{column}" for clause in extra]
    for column, definition in old.columns.items():
        if column not in spec.columns:
            columns.append(definition)
            kept.append(f"column {name}.{column_name(definition)}")
    constraints = list(spec.constraints)
    for constraint in old.constraints:
        if normal_sql(constraint) not in {normal_sql(known) for known in spec.constraints}:
            constraints.append(constraint)
            kept.append(f"{constraint} on {name}")
    return columns, constraints, kept


def _the_specs_own(table: str, column: str, clause: str) -> bool:
    """Whether a clause of a spec column is the spec's to decide: its DEFAULT (and NULL, and a constraint's
    name) are restored, not carried; ``pool_id ... REFERENCES pools(pool_id)`` is the spec's foreign key."""
    if clause.split(None, 1)[0].lower() in ("default", "null", "constraint"):
        return True
    return (table, column) == ("vms", "pool_id") and normal_sql(clause) in ("referencespools(pool_id)", "referencespools")


def _clauses(definition: str) -> list[str]:
    """The clauses of a column definition after its name and type: NOT NULL, DEFAULT 1, CHECK(...)."""
    tokens = [token for token in _TOKEN.findall(definition) if not token.startswith(("--", "/*"))]
    clauses: list[str] = []
    depth, words = 0, [token.lower() for token in tokens]
    for index, token in enumerate(tokens[1:], start=1):  # tokens[0] is the name
        word = words[index]
        starts = depth == 0 and (word in _CLAUSE or (word == "not" and _next_word(words, index) == "null"))
        if word == "null" and _previous_word(words, index) == "not" or word == "as" and _previous_word(words, index) == "always":
            starts = False
        if starts:
            clauses.append(token)
        elif clauses:
            clauses[-1] += token
        depth += {"(": 1, ")": -1}.get(token, 0)
    return [" ".join(clause.split()) for clause in clauses]


def _next_word(words: list[str], index: int) -> str:
    return next((word for word in words[index + 1:] if word.strip()), "")


def _previous_word(words: list[str], index: int) -> str:
    return next((word for word in reversed(words[:index]) if word.strip()), "")


def parse(sql: str) -> TableSql:
    """The parts of ``sql``, a CREATE TABLE statement as sqlite_master holds it (so known to be valid).
    Comments are dropped: one left at the end of a definition would swallow the comma put after it."""
    parts: list[str] = []
    depth, current, tail = 0, "", ""
    for token in _TOKEN.findall(sql):
        if token.startswith(("--", "/*")):
            token = " "
        if depth == 0 and token != "(":
            tail += token if parts else ""
            continue
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth == 1 and token in ("(", ","):
            parts.append(current.strip())
            current = ""
        elif depth == 0:
            parts.append(current.strip())
        else:
            current += token
    parts = [part for part in parts if part]
    columns: dict[str, str] = {}
    constraints: list[str] = []
    for part in parts:
        if re.split(r"[\s(]", part, maxsplit=1)[0].lower() in _TABLE_CONSTRAINT:
            constraints.append(part)
        else:
            columns[column_name(part).lower()] = part
    return TableSql(columns, tuple(constraints), tail.strip())


def column_name(definition: str) -> str:
    """The name a column definition declares, without its quotes."""
    word = _TOKEN.match(definition.strip())
    text = word.group(0) if word else definition
    if text[:1] in "\"`" and len(text) > 1:
        return text[1:-1].replace(text[0] * 2, text[0])
    return text[1:-1] if text[:1] == "[" else text


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create(name: str, columns: list[str], constraints: list[str]) -> str:
    if columns == list(parse(SPEC[name]).columns.values()) and constraints == list(parse(SPEC[name]).constraints):
        return SPEC[name]  # the spec's text to the letter, which schema.tables_as_created knows
    body = ",\n    ".join([*columns, *constraints])
    return f"CREATE TABLE {name} (\n    {body}\n)"


def normal_sql(sql: str) -> str:
    """A statement as compared with another: spaced or quoted otherwise (as SQLite keeps what was written), the
    same statement compares equal. schema_check and index_check compare by it too."""
    return _NOISE.sub("", sql).lower()


def _normal_words(sql: str) -> str:
    return " ".join(sql.lower().split())

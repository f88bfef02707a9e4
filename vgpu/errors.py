"""One exception root for the whole library.

Every error a caller can meet is a :class:`VgpuError`. Each subclass keeps the data that caused it
(the field, the bad value, the key that was not found, the hypervisor's error code) so scripts can act
on it, and renders one sentence for humans via ``str()``. The shell maps the class to an exit code; the
library never decides how an error is shown.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from . import tables


class VgpuError(Exception):
    """Root of every error raised by the vgpu library."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence

    def reword(self, sentence: str) -> None:
        """Say ``sentence`` instead (kept in ``args`` too, so the error prints and pickles the same): for a
        subclass whose sentence is not its parent's, or a caller adding what became of the change."""
        self.sentence = sentence
        self.args = (sentence,)


def _allowed_text(allowed: Sequence[str] | str) -> str:
    if isinstance(allowed, str):
        return allowed
    items = list(allowed)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


class InvalidValue(VgpuError):
    """A value a user or caller supplied is not one the field accepts. ``sentence`` replaces the usual
    "invalid FIELD VALUE: expected ..." where that would not read well (an empty change has no value to quote)."""

    def __init__(self, field: str, value: object, allowed: Sequence[str] | str, *, sentence: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(sentence or f"invalid {field} {_shown(value)}: expected {_allowed_text(allowed)}")


def _shown(value: object) -> str:
    """The value's repr on one line: a pandas Series given as a row has a repr of many lines. (A string's
    repr escapes its line breaks already, and is shown whole: the user should see what they typed.)"""
    text = repr(value)
    return " ".join(text.split()) if "\n" in text else text


class InvalidColumns(InvalidValue):
    """A row's columns are wrong, whatever their values: the VM UUID column is missing, one field is given
    under two names, or the row has more cells than the header. ``columns`` holds the columns concerned (the
    extra cells themselves for a row that has more cells than its header)."""

    def __init__(self, columns: Sequence[object], allowed: str, sentence: str) -> None:
        super().__init__("column", ", ".join(map(str, columns)), allowed)
        self.columns = tuple(columns)
        self.reword(sentence)

    @classmethod
    def missing(cls, spellings: Sequence[str], name: str) -> "InvalidColumns":
        others = " or ".join(spellings[1:])
        column = f"{spellings[0]} (or {others})" if others else spellings[0]
        return cls((), f"a {' or '.join(spellings)} column", f"no {column} column: every row needs the {name}")

    @classmethod
    def doubled(cls, keys: Sequence[object], name: str) -> "InvalidColumns":
        quoted = _allowed_text([repr(key) for key in keys]).replace(" or ", " and ")
        each = "both" if len(keys) == 2 else "all"
        return cls(keys, f"one column for the {name}", f"columns {quoted} {each} give the {name}; keep one of them")

    @classmethod
    def extra_cells(cls, cells: Sequence[object]) -> "InvalidColumns":
        extra = ", ".join(map(repr, cells))
        return cls(cells, "no more cells than the header", f"the row has more cells than the header (extra: {extra})")


class NotRows(InvalidValue):
    """A bulk operation was handed something other than a list of rows: a pandas DataFrame (iterating one
    gives its column names), a single row, or a string. ``value`` is the type's name."""

    def __init__(self, type_name: str, hint: str) -> None:
        super().__init__("rows", type_name, f"a list of rows; {hint}")
        self.reword(f"expected a list of rows, not a {type_name}; {hint}")


class RowProblem:
    """One problem with one row of a bulk operation (row numbers start at 1)."""

    __slots__ = ("row", "error")

    def __init__(self, row: int, error: VgpuError) -> None:
        self.row = row
        self.error = error

    def __repr__(self) -> str:
        return f"RowProblem(row={self.row}, error={self.error!r})"

    def __str__(self) -> str:
        return f"row {self.row}: {self.error}"


class InvalidRows(VgpuError, tables.Tabular):
    """A bulk operation was refused; ``problems`` lists every bad row, not just the first (in a notebook,
    a table of row, field, value and what is allowed). ``outcome`` says what became of the rows: nothing
    was changed, unless the caller says otherwise (a plan that goes ahead without them)."""

    _view = tables.invalid_rows_view

    def __init__(self, problems: Iterable[RowProblem], outcome: str = "nothing was changed") -> None:
        self.problems = list(problems)
        self.outcome = outcome
        count, rows = len(self.problems), len({problem.row for problem in self.problems})
        first = self.problems[0] if self.problems else "no rows"
        more = f" (and {count - 1} more)" if count > 1 else ""
        plural = tables.plural
        what = plural(rows, "bad row") if count == rows else f"{plural(count, 'problem')} in {plural(rows, 'row')}"
        super().__init__(f"{what}, {outcome}: {first}{more}")


class NotFound(VgpuError):
    """Something named by its key does not exist (a registered VM, a host VM, a pool, ...)."""

    def __init__(self, kind: str, key: object, hint: str = "") -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key} not found" + (f"; {hint}" if hint else ""))


class NotRegistered(NotFound):
    """The VM is on the host but not registered, and the command needs a registration (``vm_name`` is the
    host's name for it, or None)."""

    def __init__(self, vm_uuid: str, vm_name: str | None = None) -> None:
        super().__init__("registered VM", vm_uuid)
        self.vm_name = vm_name
        who = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        self.reword(f"{who} is on the host but not registered; "
                    f"register it first with 'vgpu-admin register-vm --vm-uuid={vm_uuid}'")


class Conflict(VgpuError):
    """The change would break a uniqueness rule (vm_id, UUID or pool name already taken). ``sentence``
    replaces the usual one where the value needs quoting (a name with spaces)."""

    def __init__(self, field: str, value: object, holder: str, *, sentence: str | None = None) -> None:
        self.field = field
        self.value = value
        self.holder = holder
        super().__init__(sentence or f"{field} {value} is already used by {holder}")


class StalePlan(Conflict):
    """The VM was changed between a plan and its apply. ``planned`` is the configuration the plan was made
    from and ``current`` the one the VM has now (each with ``pool_id``, ``priority`` and ``vm_id``)."""

    def __init__(self, vm_uuid: str, vm_name: str | None, planned: object, current: object) -> None:
        super().__init__("configuration of VM", vm_uuid, "a change made after this plan")
        self.vm_uuid = vm_uuid
        self.planned = planned
        self.current = current
        now = [f"{label} is now {show(getattr(current, field))}" for field, label, show in _CONFIG_FIELDS
               if getattr(current, field) != getattr(planned, field)]
        vm = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        self.reword(f"{vm} was changed after this plan was made ({', '.join(now)}); plan again")


_CONFIG_FIELDS = (("pool_id", "pool", str), ("priority", "priority", lambda priority: priority.describe()), ("vm_id", "vm_id", str))


class StoreError(VgpuError):
    """The database file cannot be used (missing directory, corrupt, read-only, not a vgpu DB)."""

    def __init__(self, path: str, sentence: str) -> None:
        self.path = path
        super().__init__(sentence)


class DamagedDatabase(StoreError):
    """A row of the database breaks the spec's rules (a priority of 7, a pool C, a vm_id that is text): the
    file was changed behind vgpu-admin's back. ``table`` and ``row`` say where, ``problem`` what. The Store
    that read it fills in ``path``."""

    def __init__(self, table: str, row: str, problem: str, path: str = "") -> None:
        self.table = table
        self.row = row
        self.problem = problem
        super().__init__(path, "")
        self.locate(path)

    def locate(self, path: str) -> None:
        self.path = path
        where = f"database {path}" if path else "the database"
        self.reword(f"{where} is damaged: the {self.table} row {self.row} has {self.problem}; correct or delete "
                    "that row (sqlite3), or restore the database from a backup")


class IncompleteSchema(StoreError):
    """The database lacks constraints or indexes of the spec's schema (a CHECK, a key, an index), so it would
    keep rows that break the spec's rules: refused until ``vgpu-admin repair-db`` restores them. ``missing``
    names each one."""

    def __init__(self, path: str, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        listed = ", ".join(self.missing[:4]) + (f" and {len(self.missing) - 4} more" if len(self.missing) > 4 else "")
        super().__init__(path, f"database {path} lacks the spec's {listed}; run 'vgpu-admin repair-db' to restore them")


class HypervisorError(VgpuError):
    """The host refused or failed an operation; ``code`` is the host's own error code."""

    def __init__(self, code: str, sentence: str, details: Sequence[str] = ()) -> None:
        self.code = code
        self.details = tuple(details)
        super().__init__(sentence)


class HostUnreachable(HypervisorError):
    """The host (or its management tool) could not be reached at all."""


class Busy(VgpuError):
    """Another session holds the VM's reconfiguration lock, or (``interrupted``) an operation its session
    gave up part way does, until ``vgpu-admin recover`` finishes or undoes it."""

    def __init__(self, vm_uuid: str, since: str, operation_id: int | None = None, *, interrupted: bool = False) -> None:
        self.vm_uuid = vm_uuid
        self.since = since
        self.operation_id = operation_id
        self.interrupted = interrupted
        if interrupted:
            super().__init__(f"VM {vm_uuid} has an interrupted change (started {since}); "
                             "run 'vgpu-admin recover' to finish or undo it")
        else:
            super().__init__(f"VM {vm_uuid} is being reconfigured by another session since {since}")


class Cancelled(VgpuError):
    """The user (or the confirm callback) declined; nothing was changed."""

    def __init__(self, sentence: str = "Operation cancelled; nothing was changed.") -> None:
        super().__init__(sentence)


class ReconfigureFailed(VgpuError):
    """The VM would not start with its new configuration; ``rolled_back`` says whether the old one is back."""

    def __init__(self, vm_uuid: str, cause: VgpuError, rolled_back: bool, rollback_error: VgpuError | None = None) -> None:
        self.vm_uuid = vm_uuid
        self.cause = cause
        self.rolled_back = rolled_back
        self.rollback_error = rollback_error
        if rolled_back:  # only after the DB took the new values: the new configuration is what failed
            super().__init__(f"VM {vm_uuid} failed with its new configuration ({cause}); "
                             "the previous configuration was restored and the VM started again")
        else:  # may have failed at any step, the stop included
            super().__init__(f"reconfiguring VM {vm_uuid} failed ({cause}) and rolling back also failed "
                             f"({rollback_error}); run 'vgpu-admin recover' once the host is reachable")


class ConfigError(VgpuError):
    """A configuration file or setting is unusable."""

    def __init__(self, source: str, sentence: str) -> None:
        self.source = source
        super().__init__(f"{source}: {sentence}")


class UnsafeFile(ConfigError):
    """A file vgpu-admin would trust (a config file, a password file, the database) could be changed by
    someone other than root and the user running it, or a password file read by others: refused as OpenSSH
    refuses such files (see vgpu.trust). ``path`` is the file, ``problem`` what is wrong with it or a directory
    above it, ``fix`` the command that makes it safe."""

    def __init__(self, path: str, what: str, problem: str, fix: str) -> None:
        self.path = path
        self.what = what
        self.problem = problem
        self.fix = fix
        super().__init__(path, "")
        self.reword(f"refusing the {what} {path}: {problem}; fix: {fix}")


class AlreadyRegistered(Conflict):
    """The VM UUID is registered already."""

    def __init__(self, vm_uuid: str, vm_id: int, pool_id: str) -> None:
        super().__init__("VM UUID", vm_uuid, f"registered VM with vm_id {vm_id} in pool {pool_id}")
        self.reword(f"VM {vm_uuid} is already registered (vm_id {vm_id}, pool {pool_id})")

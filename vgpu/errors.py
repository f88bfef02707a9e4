"""One exception root for the whole library.

Every error a caller can meet is a :class:`VgpuError`. Each subclass keeps the data that caused it
(the field, the bad value, the key that was not found, the hypervisor's error code) so scripts can act
on it, and renders one sentence for humans via ``str()``. The shell maps the class to an exit code; the
library never decides how an error is shown.
"""

from __future__ import annotations

from typing import Any, Generic, Hashable, Iterable, Sequence, TypeVar

from . import tables
from .error_root import InvalidValue, MissingDependency, VgpuError, _allowed_text

__all__ = [  # the root and InvalidValue live in vgpu.error_root, below vgpu.tables; they are named here
    "VgpuError", "InvalidValue", "MissingDependency", "InvalidColumns", "NotRows", "RowProblem", "InvalidRows",
    "NotFound", "NotRegistered", "Conflict", "StalePlan", "StaleRegistrations", "SegmentChanged", "ShutDownSincePlan", "StartedSincePlan", "StoreError", "HypervisorError", "HostUnreachable",
    "PausedSincePlan",
    "Busy", "Cancelled", "ReconfigureFailed", "ConfigError", "AlreadyRegistered", "BulkInterrupted",
    "DamagedDatabase", "DuplicateVM", "IncompleteSchema", "ShutdownNotConfirmed", "UnsafeFile",
]


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


_Row = TypeVar("_Row", bound=Hashable, covariant=True)


class RowProblem(Generic[_Row]):
    """One problem with one row of a bulk operation: the row's number (from 1) while the library checks the
    rows (a ``RowProblem[int]``), then the label the caller gave it, such as a DataFrame's index label.
    ``position`` is the row's number once it has a label: a DataFrame's index may repeat a label, and two
    rows are still two (None where it is not known). ``label_repeats``: another row has this label too, so
    the sentence names the position as well ("row 5 (position 2)")."""

    __slots__ = ("row", "error", "position", "label_repeats")

    def __init__(self, row: _Row, error: VgpuError, position: int | None = None, *, label_repeats: bool = False) -> None:
        self.row = row
        self.error = error
        self.position = position
        self.label_repeats = label_repeats and position is not None

    def __repr__(self) -> str:
        return f"RowProblem(row={self.row}, error={self.error!r})"

    def __str__(self) -> str:
        where = f"row {self.row} (position {self.position})" if self.label_repeats else f"row {self.row}"
        return f"{where}: {self.error}"


class InvalidRows(VgpuError, tables.Tabular):
    """A bulk operation was refused; ``problems`` lists every bad row, not just the first (in a notebook,
    a table of row, field, value and what is allowed). ``outcome`` says what became of the rows: nothing
    was changed, unless the caller says otherwise (a plan that goes ahead without them)."""

    _view = tables.invalid_rows_view
    _columns = tables.ProblemTable._columns

    def __init__(self, problems: Iterable[RowProblem[Hashable]], outcome: str = "nothing was changed") -> None:
        self.problems = list(problems)
        self.outcome = outcome
        count, rows = len(self.problems), tables.count_rows(self.problems)
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
    host's name for it, or None). ``next_step`` says what to do instead; by default, register it."""

    def __init__(self, vm_uuid: str, vm_name: str | None = None, next_step: str | None = None) -> None:
        super().__init__("registered VM", vm_uuid)
        self.vm_name = vm_name
        who = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        next_step = next_step or f"register it first with 'vgpu-admin register-vm --vm-uuid={vm_uuid}'"
        self.reword(f"{who} is on the host but not registered; {next_step}")


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


class StaleRegistrations(StalePlan):
    """A registration plan (:func:`vgpu.bulk_register.register_planned`) was overtaken by changes made since,
    not by its rows: ``registered_since``, the UUIDs of VMs it would register that are registered now;
    ``vm_ids_taken``, the vm_ids it chose for rows that gave none, which other VMs (or their unfinished
    changes) hold now; ``unregistered_since``, the UUIDs of VMs it found registered (rows skipped, unchanged
    or with a segment to write) that are not registered now. Nothing was changed: plan again. As a StalePlan,
    ``vm_uuid``, ``planned`` and ``current`` are those of the first VM concerned (``current`` None while it
    is not registered)."""

    def __init__(self, changes: Sequence[str], registered_since: Sequence[str], vm_ids_taken: Sequence[int],
                 first: tuple[str, object, object], *, unregistered_since: Sequence[str] = ()) -> None:
        Conflict.__init__(self, "registration plan", first[0], "changes made after this plan")
        self.vm_uuid, self.planned, self.current = first
        self.registered_since = tuple(registered_since)
        self.vm_ids_taken = tuple(vm_ids_taken)
        self.unregistered_since = tuple(unregistered_since)
        more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
        self.reword("the registration plan was overtaken by changes made since it was made: "
                    f"{'; '.join(changes[:3])}{more}; nothing was changed: plan again")


class SegmentChanged(Conflict):
    """vgpu's own segment in a VM's device-model args changed on the host between a plan and its apply:
    someone else changed this VM's vgpu settings. ``found_args`` are the VM's args as they were found."""

    def __init__(self, vm_uuid: str, vm_name: str | None, args: str) -> None:
        super().__init__("vgpu segment of VM", vm_uuid, "a change made on the host after this plan")
        self.vm_uuid = vm_uuid
        self.found_args = args
        vm = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        self.reword(f"the vgpu settings in the device-model args of {vm} were changed on the host after this "
                    "plan was made; plan again")


class ShutDownSincePlan(Conflict):
    """A VM a plan saw running was halted by someone else before the change could stop it: the change is
    not made (the admin's halted VM is not started with it)."""

    def __init__(self, vm_uuid: str, vm_name: str | None) -> None:
        super().__init__("power state of VM", vm_uuid, "a shutdown made on the host after this plan")
        self.vm_uuid = vm_uuid
        vm = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        self.reword(f"{vm} was shut down after this plan was made; nothing was changed: plan again")


class StartedSincePlan(Conflict):
    """A VM a plan saw halted (so "no restart is needed") was started by someone else before the change
    began: the change is not made (the running VM is not stopped and started again behind the confirmation)."""

    def __init__(self, vm_uuid: str, vm_name: str | None) -> None:
        super().__init__("power state of VM", vm_uuid, "a start made on the host after this plan")
        self.vm_uuid = vm_uuid
        vm = f"VM {vm_name} ({vm_uuid})" if vm_name else f"VM {vm_uuid}"
        self.reword(f"{vm} was started after this plan was made; nothing was changed: plan again")


_CONFIG_FIELDS = (("pool_id", "pool", str), ("priority", "priority", lambda priority: priority.describe()), ("vm_id", "vm_id", str))


class DuplicateVM(Conflict):
    """One VM UUID is on several hosts of a fleet (as after a copy between XAPI pools), or listed more than
    once by one host (which no host should do). A command on that VM cannot know which one is meant, so it
    refuses; nothing is merged. ``hosts`` are the labels of the hosts listing it, once per copy."""

    def __init__(self, vm_uuid: str, hosts: Sequence[str]) -> None:
        self.vm_uuid = vm_uuid
        self.hosts = tuple(hosts)
        both = _allowed_text(list(self.hosts)).replace(" or ", " and ")
        super().__init__("VM UUID", vm_uuid, f"VMs on hosts {both}")
        if len(set(self.hosts)) == 1:  # one host (a single host's label is empty): no copy to keep or remove
            where = f"host {self.hosts[0]}" if self.hosts[0] else "the host"
            times = "twice" if len(self.hosts) == 2 else f"{len(self.hosts)} times"
            self.reword(f"{where} lists VM {vm_uuid} {times}, which a host never should (a UUID is one VM's own); "
                        "vgpu-admin will not choose one: check the host's own list of VMs")
            return
        self.reword(f"VM {vm_uuid} is on {len(self.hosts)} hosts of the fleet, {both} (the same UUID twice, as after "
                    "a copy between pools); vgpu-admin will not choose one: remove or re-create one copy, or name "
                    "the host with --host LABEL")


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


class PausedSincePlan(HypervisorError):
    """A VM a plan saw running was paused or suspended by someone else before the change could stop it:
    nothing was changed. The host's refusal (``code`` VM_BAD_POWER_STATE, the sentence a paused VM gets at
    the plan), but like ShutDownSincePlan a plan that no longer holds."""


class ShutdownNotConfirmed(HypervisorError):
    """A clean shutdown the host accepted did not complete, and the stop policy forbids forcing: the VM is
    still running, but may halt by itself at any moment. ``cause`` is the host's failure (None when the
    deadline passed: code ``OPERATION_TIMED_OUT``); ``timeout`` the deadline in seconds."""

    def __init__(self, vm_uuid: str, timeout: float, cause: HypervisorError | None = None) -> None:
        self.vm_uuid = vm_uuid
        self.timeout = timeout
        self.cause = cause
        what = f"VM {vm_uuid} did not shut down within {timeout:g}s" if cause is None else \
            f"the clean shutdown of VM {vm_uuid} failed ({cause})"
        super().__init__(cause.code if cause else "OPERATION_TIMED_OUT",  # codes.OPERATION_TIMED_OUT: codes sits above this module
                         f"{what}, and forcing it off is not allowed (force_after_timeout = false)",
                         cause.details if cause else (vm_uuid,))


class Busy(VgpuError):
    """Another session holds the VM's reconfiguration lock, or (``interrupted``) an operation its session
    gave up part way does, until ``vgpu-admin recover`` finishes or undoes it. ``session`` names the holder
    (``host:pid``) when one is at work; ``recovering`` when that is a ``recover`` run (then ``since`` is when
    it took over)."""

    def __init__(self, vm_uuid: str, since: str, operation_id: int | None = None, *, interrupted: bool = False,
                 session: str | None = None, recovering: bool = False) -> None:
        self.vm_uuid = vm_uuid
        self.since = since
        self.operation_id = operation_id
        self.interrupted = interrupted
        self.session = session
        self.recovering = recovering
        if interrupted:
            super().__init__(f"VM {vm_uuid} has an interrupted change (started {since}); "
                             "run 'vgpu-admin recover' to finish or undo it")
        elif recovering:
            super().__init__(f"VM {vm_uuid} is being recovered by session {session} since {since}; wait for it to finish")
        else:
            super().__init__(f"VM {vm_uuid} is being reconfigured by another session since {since}")


class Cancelled(VgpuError):
    """The user (or the confirm callback) declined; nothing was changed."""

    def __init__(self, sentence: str = "Operation cancelled; nothing was changed.") -> None:
        super().__init__(sentence)


class ReconfigureFailed(VgpuError):
    """A reconfigure failed part way. ``rolled_back``: the previous configuration is back (DB row and
    arguments) and, unless ``restarted`` is False (it was halted), the VM started again; ``restart_error``
    when the VM would not start even with it, and is left halted and marked as needing attention.
    ``args_left`` (a sentence saying so) when only the registration was restored: someone else had changed
    vgpu's segment in the VM's args meanwhile, and they were left as they are. Otherwise ``rollback_error``
    says why the rollback failed, and the change is left to ``vgpu-admin recover``.

    ``restarted`` is True only after a rollback that worked and a start that did (a ``restart_error`` or a
    ``rollback_error`` makes it False whatever is passed), ``left_halted`` True also with a ``restart_error``,
    and ``vm_restarted`` is ``restarted``: a script reads these fields, not the sentence. ``started_again``
    is how the VM was started again, as said after "the VM": what the host saw it boot with (``vm_booted``
    says it for a script); "" says nothing of it (not started again), None the usual words."""

    def __init__(self, vm_uuid: str, cause: VgpuError, rolled_back: bool, rollback_error: VgpuError | None = None,
                 restart_error: VgpuError | None = None, *, restarted: bool = True, left_halted: bool = False,
                 args_left: str = "", started_again: str | None = None) -> None:
        self.vm_uuid = vm_uuid
        self.cause = cause
        self.rolled_back = rolled_back
        self.rollback_error = rollback_error
        self.restart_error = restart_error
        self.restarted = restarted and rolled_back and restart_error is None
        self.left_halted = left_halted or (rolled_back and restart_error is not None)
        self.vm_restarted = self.restarted
        self.args_left = args_left
        if rolled_back and restart_error is not None:
            restored = (f"{args_left}, but the VM would not start with them either" if args_left else
                        "its previous configuration is in place, but the VM would not start with it either")
            super().__init__(f"reconfiguring VM {vm_uuid} failed ({cause}); {restored} ({restart_error}): it is "
                             "halted and marked as needing attention; fix the cause on the host, then start it")
        elif rolled_back and args_left:
            super().__init__(f"VM {vm_uuid} failed with its new configuration ({cause}); {args_left}")
        elif rolled_back:  # only after the DB took the new values: the new configuration is what failed
            if started_again is None:
                started_again = "started again" if restarted else ""
            again = f" and the VM {started_again}" if started_again else ""
            super().__init__(f"VM {vm_uuid} failed with its new configuration ({cause}); "
                             f"the previous configuration was restored{again}")
        else:  # may have failed at any step, the stop included
            when = ("once the host is reachable" if isinstance(rollback_error, HostUnreachable) else
                    _after_failed_start(rollback_error) or
                    ("once the database can be written" if isinstance(rollback_error, StoreError) else "once the cause is fixed"))
            halted = "; the VM was stopped for the change and is halted" if left_halted else ""
            super().__init__(f"reconfiguring VM {vm_uuid} failed ({cause}) and rolling back also failed "
                             f"({rollback_error}){halted}; run 'vgpu-admin recover' {when}")


def _after_failed_start(error: VgpuError | None) -> str:
    """When to run recover after a rollback refused to undo a change whose start the host said failed (see
    lifecycle._refuse_undoing_what_runs); "" for any other rollback error. The codes are spelt out:
    vgpu.hypervisor.codes imports this module."""
    if not isinstance(error, HypervisorError):
        return ""
    if error.code == "VM_RUNNING_AFTER_FAILED_START":
        paused = error.details[1:2] in (("paused",), ("suspended",))
        return "once the VM is resumed: it finishes the change" if paused else "now: it finishes the change the VM runs with"
    if error.code == "VM_STARTING_AFTER_FAILED_START":
        return "once the host is done starting it: it then finishes the change, or undoes it"
    return ""


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


_Partial = TypeVar("_Partial")


class BulkInterrupted(KeyboardInterrupt, Generic[_Partial]):
    """A bulk call (``bulk.apply_many``, ``bulk.reconfigure_many``, ``bulk_register.register_planned``,
    ``bulk_register.write_segments``) stopped by an interrupt: Ctrl-C, a notebook's stop button, or a
    KeyboardInterrupt raised by its progress callback.

    It is a KeyboardInterrupt, not a VgpuError, on purpose: ``except KeyboardInterrupt`` goes on working, and
    no ``except Exception`` (nor ``except VgpuError``) in the caller swallows an interrupt. ``partial`` is the
    call's result so far, the same type the call returns, with every VM in one of four places: done
    (``results``/``segments``), ``failures``, ``interrupted`` (cut part way: its change is left to
    ``vgpu-admin recover``; or, after a second Ctrl-C, still under way in a background thread, which finishes
    or rolls back the change or leaves it to ``recover``) and ``not_started`` (untouched). Generic in that
    type, so a script that catches it (and so sees ``BulkInterrupted[Any]``) can use ``partial`` where it
    uses the call's result."""

    def __init__(self, partial: _Partial, sentence: str) -> None:
        super().__init__(sentence)
        self.partial: _Partial = partial
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence

    def __reduce__(self) -> tuple[type[BulkInterrupted[_Partial]], tuple[object, str], dict[str, Any]]:
        return type(self), (self.partial, self.sentence), {key: value for key, value in vars(self).items()
                                                            if key not in ("partial", "sentence")}

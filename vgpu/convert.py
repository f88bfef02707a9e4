"""The one cattrs converter: library results to JSON-ready data and back.

cattrs advises against its global converter, so this module builds its own and everything that needs
plain data (``--format json``, notebooks, pandas users) goes through :data:`converter`. Priorities become
their names (``"high"``), power states their lower-case values; both are accepted back, priorities also as
numbers.
"""

from __future__ import annotations

import builtins
import collections.abc
import re
from typing import Any, Callable, Hashable, Mapping, TypeVar, get_args, get_origin, overload

import attrs
import cattrs
import cattrs.errors
from cattrs.gen import make_dict_unstructure_fn

from .errors import InvalidValue, RowProblem, VgpuError
from .models import VM, AuditEntry, Pool, PowerState, Priority, VMConfig
from .tables import AuditList, PoolList, ProblemTable, ResultList, VMList, json_float, row_label
from .values import parse_priority

converter = cattrs.Converter()
converter.register_unstructure_hook(Priority, lambda priority: priority.label)
converter.register_structure_hook(Priority, lambda value, _type: parse_priority(value))
converter.register_unstructure_hook(PowerState, lambda state: state.value)
converter.register_structure_hook(PowerState, lambda value, _type: PowerState(value))
# The library's result lists (VMList, PoolList, ..., a plan's ProblemTable) are plain lists of results to JSON.
converter.register_unstructure_hook_func(
    lambda cls: isinstance(cls, type) and issubclass(cls, (ResultList, ProblemTable)),
    lambda items: [converter.unstructure(item) for item in items],
)


def _result_list_hook(list_type: type[ResultList[Any]], item_type: type) -> Callable[[Any, type], ResultList[Any]]:
    return lambda data, _cls: list_type(converter.structure(data, list[item_type]))  # type: ignore[valid-type]


# ... and back as their own types (what conn.list_vms() gives shows itself as a table): cattrs reads no item
# type off a list subclass, so each is told its own.
for _list_type, _item_type in ((VMList, VM), (PoolList, Pool), (AuditList, AuditEntry)):
    converter.register_structure_hook(_list_type, _result_list_hook(_list_type, _item_type))


# Errors, as held by plans and results (a refused row, a VM that failed) or caught by a script: the class,
# the sentence, and every attribute the error carries (a nested error, such as a ReconfigureFailed's cause,
# as the same kind of dict), so from_data rebuilds the same error. A value that is not JSON (whatever a user
# passed) is kept as its repr. Any exception qualifies, not only VgpuError: a batch keeps the unexpected
# error one VM met (a bug), which comes back as its class when that is a built-in one.
_JSON_SCALARS = (str, int, float, bool, type(None))
_NOTES = "__notes__"  # what add_note() sets; "notes" in the data


def _plain_value(value: Any) -> Any:
    if isinstance(value, float):
        return json_float(value)  # inf and nan are not JSON
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_value(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, (BaseException, RowProblem)) or attrs.has(type(value)):
        return converter.unstructure(value)
    return repr(value)


def _error_data(error: BaseException) -> dict[str, Any]:
    data: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for name, value in vars(error).items():
        if name != "sentence":  # the message
            data["notes" if name == _NOTES else name] = _plain_value(value)
    return data


def _error_class(name: object, wanted: type[BaseException]) -> type[BaseException]:
    """The library's error class of that name (or a built-in exception's), if it is a ``wanted``."""
    if name == "BulkInterrupted":  # its partial result is of one of several types the data does not name
        raise InvalidValue("error", name, "the name of a VgpuError class or a built-in exception", sentence=(
            "from_data() does not rebuild a BulkInterrupted (an interrupt, not an error of the library): "
            "read the data as it is; its partial result is data['partial']"))
    todo: list[type[BaseException]] = [VgpuError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == name and issubclass(cls, wanted):
            return cls
        todo.extend(cls.__subclasses__())
    builtin = getattr(builtins, name, None) if isinstance(name, str) else None
    if isinstance(builtin, type) and issubclass(builtin, wanted):
        return builtin
    raise InvalidValue("error", name, f"the name of a {wanted.__name__} class")


# How attributes come back from JSON, where it cannot say: tuples (JSON has only lists), configurations,
# nested errors and the rows of an InvalidRows. Any other attribute comes back as JSON has it.
def _error_attribute(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("allowed", "columns", "details", "missing", "hosts", "registered_since", "vm_ids_taken",
                "unregistered_since"):
        return tuple(value) if isinstance(value, list) else value
    if name in ("planned", "current"):
        return converter.structure(value, VMConfig)
    if isinstance(value, dict) and {"error", "message"} <= value.keys():  # a nested error: a cause, a rollback's
        return converter.structure(value, Exception)
    if name == "problems":
        return [converter.structure(item, RowProblem) for item in value]
    if name == "notes":
        return list(value)
    return value


def _error_from_data(data: Any, wanted: type[BaseException]) -> BaseException:
    if not isinstance(data, dict) or "error" not in data or "message" not in data:
        raise InvalidValue("error", data, "a dict with error and message, as to_data gives")
    cls = _error_class(data["error"], wanted)
    error = cls.__new__(cls, data["message"])  # as pickle rebuilds one: no __init__, the data comes next
    if isinstance(error, VgpuError):
        error.sentence = data["message"]
    for name, value in data.items():
        if name not in ("error", "message"):
            setattr(error, _NOTES if name == "notes" else name, _error_attribute(name, value))
    return error


# An input row's label (a plan's rows and labels, a problem's row) as JSON takes it: as records() gives it
# (tables.row_label), except a MultiIndex's tuple, which stays a tuple (a JSON list) of such labels, so that
# from_data gives back the tuple the caller indexes the DataFrame with. Lists come back as tuples: a label
# is hashable, and JSON has no tuples.
def _label_data(label: Any) -> Any:
    if isinstance(label, tuple):
        return [_label_data(part) for part in label]
    return row_label(label)


def _label_from_data(value: Any, _type: object = Hashable) -> Any:
    if isinstance(value, list):
        return tuple(_label_from_data(part) for part in value)
    return value


_is_label = lambda cls: cls is Hashable or cls is collections.abc.Hashable  # noqa: E731
converter.register_unstructure_hook_func(_is_label, _label_data)
converter.register_structure_hook_func(_is_label, _label_from_data)


def _problem_data(problem: RowProblem[Hashable]) -> dict[str, Any]:
    # A row's number beside its label only where they differ: a DataFrame's index may repeat a label
    numbered = {} if problem.position in (None, problem.row) else {"position": problem.position}
    if problem.label_repeats:  # another row has this label too: the sentence names the position as well
        numbered["label_repeats"] = True
    return {"row": _label_data(problem.row), **numbered, **_error_data(problem.error)}


def _problem_from_data(data: Any, _cls: type) -> RowProblem[Hashable]:
    error = {key: value for key, value in data.items() if key not in ("row", "position", "label_repeats")}
    row = _label_from_data(data["row"])
    return RowProblem(row, converter.structure(error, VgpuError), data.get("position", row if type(row) is int else None),
                      label_repeats=data.get("label_repeats") is True)


_is_error = lambda cls: isinstance(cls, type) and issubclass(cls, BaseException)  # noqa: E731
converter.register_unstructure_hook_func(_is_error, _error_data)
converter.register_structure_hook_func(_is_error, _error_from_data)
converter.register_unstructure_hook(RowProblem, _problem_data)


def _is_row_problem(cls: Any) -> bool:
    return cls is RowProblem or get_origin(cls) is RowProblem  # RowProblem[Hashable] too, as a ProblemTable holds


converter.register_structure_hook_func(_is_row_problem, _problem_from_data)
# A plan's problems: to cattrs a tuple of anything (it reads no item type off a tuple subclass): told here.
converter.register_structure_hook(
    ProblemTable, lambda data, _cls: ProblemTable(converter.structure(data, tuple[RowProblem[Hashable], ...]))
)


_Result = TypeVar("_Result")


def _with_properties(cls: type[_Result], **extra: Callable[[_Result], object]) -> None:
    """Unstructure ``cls`` with its fields plus the named computed properties (read-only extras)."""
    fields = make_dict_unstructure_fn(cls, converter)
    converter.register_unstructure_hook(
        cls, lambda obj: {**fields(obj), **{key: converter.unstructure(getter(obj)) for key, getter in extra.items()}}
    )


def _register_extras() -> None:
    from .scan import ScannedVM, ScanReport, VMView  # scan imports the library's heavier parts; only JSON needs it here

    _with_properties(Pool, vm_count=lambda pool: pool.vm_count)
    _with_properties(ScannedVM, state=lambda entry: entry.state)
    _with_properties(VMView, state=lambda view: view.state)
    _with_properties(
        ScanReport,
        total_registered=lambda r: r.total_registered,
        total_unregistered=lambda r: r.total_unregistered,
        total_in_system=lambda r: r.total_in_system,
        uncounted_hosts=lambda r: r.uncounted_hosts,
    )


_register_extras()


def to_data(obj: Any) -> Any:
    """Plain dicts, lists, strings and numbers, ready for ``json.dumps``."""
    return converter.unstructure(obj)


@overload
def from_data(data: Any, cls: type[_Result]) -> _Result: ...
@overload
def from_data(data: Any, cls: Any) -> Any: ...  # a type form such as list[VM]


def from_data(data: Any, cls: Any) -> Any:
    """Rebuild library objects from :func:`to_data` output (extra keys such as ``vm_count`` are ignored).
    Data that does not build one is an InvalidValue naming the first bad field, its value and what it takes."""
    try:
        return converter.structure(data, cls)
    except InvalidValue:
        raise  # raised by a hook on the data as a whole (an unknown error name): it names the value already
    except cattrs.BaseValidationError as failed:
        raise _not_buildable(cls, _first_failure(failed, data, ""), _count_failures(failed, data)) from failed
    except cattrs.errors.StructureHandlerNotFoundError as failed:
        raise _not_a_result_type(cls, failed.type_) from failed
    except cattrs.errors.CattrsError as failed:  # any other of cattrs' refusals: never a raw cattrs error
        raise _not_buildable(cls, _Failure("", data, failed, cls), 1) from failed
    except (TypeError, ValueError, KeyError, AttributeError) as failed:
        # cattrs checks no shape before it reads: None or a number where a dict belongs fails as it is read
        raise _not_buildable(cls, _Failure("", data, failed, cls), 1) from failed


# --- data that does not build what was asked -------------------------------------------------------------
# cattrs reports every failure as a tree of exception groups, each step noted with the attribute or the index
# it took. A caller gets one line, the library's InvalidValue: the first failure, where it is, and how many more.


@attrs.frozen
class _Failure:
    path: str  # where in the data: "", "priority", "vms[0].priority"
    value: Any  # the value found there (_MISSING when the key is not there)
    error: BaseException
    expected: Any  # the type that was being built there


_MISSING = object()


def _step(value: Any, key: str | int) -> Any:
    try:
        return value[key]
    except (KeyError, IndexError, TypeError):
        return _MISSING


_Group = (cattrs.ClassValidationError, cattrs.IterableValidationError)  # the steps of the tree: by attribute, by index


def _first_failure(error: BaseException, value: Any, path: str, expected: Any = None) -> _Failure:
    if not isinstance(error, _Group):
        return _Failure(path, value, error, expected)
    if isinstance(error, cattrs.ClassValidationError) and not isinstance(value, Mapping):
        return _Failure(path, value, error, error.cl)  # every attribute failed to be read: not a dict at all
    noted, plain = error.group_exceptions()
    if not noted:
        return _first_failure(plain[0], value, path, error.cl)
    inner, note = noted[0]
    key = _key(note)
    where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
    return _first_failure(inner, _step(value, key), where, note.type)


def _key(note: cattrs.errors.AttributeValidationNote | cattrs.errors.IterableValidationNote) -> str | int:
    return note.name if isinstance(note, cattrs.errors.AttributeValidationNote) else note.index


def _count_failures(error: BaseException, value: Any) -> int:
    """The failures in the tree, as :func:`_first_failure` reads them: a value that is not a dict is one."""
    if not isinstance(error, _Group):
        return 1
    if isinstance(error, cattrs.ClassValidationError) and not isinstance(value, Mapping):
        return 1
    noted, plain = error.group_exceptions()
    return (sum(_count_failures(inner, _step(value, _key(note))) for inner, note in noted)
            + sum(_count_failures(inner, value) for inner in plain))


def _type_name(cls: Any) -> str:
    """``VM``, ``list[VM]``, ``str | None``: without the modules' names."""
    text = cls.__name__ if isinstance(cls, type) and not get_args(cls) else str(cls)
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)


def _expected(cls: Any) -> str:
    made = get_origin(cls) or cls  # RowProblem for RowProblem[Hashable]
    if isinstance(made, type) and (attrs.has(made) or issubclass(made, (BaseException, RowProblem))):
        return f"a dict, as to_data gives a {_type_name(made)}"
    return _type_name(cls)


def _not_a_result_type(cls: Any, missing: Any) -> InvalidValue:
    """``cls`` (or a type inside it, ``missing``) is not one that to_data's output builds."""
    allowed = "a class of the library's results (VM, VMList, ScanReport, ...), an error class, or a list or tuple of them"
    return InvalidValue("cls", _type_name(missing), allowed, sentence=(
        f"from_data() cannot build a {_type_name(cls)}: it builds the library's results (VM, VMList, ScanReport, "
        f"...), errors, and lists or tuples of them, not {_type_name(missing)}"))


def _not_buildable(cls: Any, failure: _Failure, failures: int) -> InvalidValue:
    field = failure.path or "data"
    if isinstance(failure.error, InvalidValue):  # a hook's own refusal: a priority, an error's name
        inner = failure.error
        field = field if field.rsplit(".", 1)[-1] == inner.field else f"{field}.{inner.field}"
        value, allowed = inner.value, inner.allowed
    else:
        value, allowed = failure.value, _expected(failure.expected)
    more = f" (and {failures - 1} more problem{'s' if failures > 2 else ''})" if failures > 1 else ""
    if value is _MISSING:
        sentence = f"no {field} in the data{more}"
        value = None
    else:
        sentence = f"{InvalidValue(field, value, allowed)}{more}"
    return InvalidValue(field, value, allowed, sentence=f"from_data() cannot build a {_type_name(cls)}: {sentence}")

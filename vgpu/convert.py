"""The one cattrs converter: library results to JSON-ready data and back.

cattrs advises against its global converter, so this module builds its own and everything that needs
plain data (``--format json``, notebooks, pandas users) goes through :data:`converter`. Priorities become
their names (``"high"``), power states their lower-case values; both are accepted back, priorities also as
numbers.
"""

from __future__ import annotations

from typing import Any

import cattrs
from cattrs.gen import make_dict_unstructure_fn

from .errors import InvalidRows, InvalidValue, RowProblem
from .models import Pool, PowerState, Priority
from .tables import ResultList
from .values import parse_priority

converter = cattrs.Converter()
converter.register_unstructure_hook(Priority, lambda priority: priority.label)
converter.register_structure_hook(Priority, lambda value, _type: parse_priority(value))
converter.register_unstructure_hook(PowerState, lambda state: state.value)
converter.register_structure_hook(PowerState, lambda value, _type: PowerState(value))
# The library's result lists (VMList, PoolList, ...) are plain lists of results to JSON.
converter.register_unstructure_hook_func(
    lambda cls: isinstance(cls, type) and issubclass(cls, ResultList),
    lambda items: [converter.unstructure(item) for item in items],
)


# Errors, as held by plans and results (a refused row, a VM that failed): the class, the sentence, and the
# data a script would branch on. A value that is not JSON (whatever a user passed) is kept as its repr.
# Any exception qualifies, not only VgpuError: a batch keeps the unexpected error one VM met (a bug).
_JSON_SCALARS = (str, int, float, bool, type(None))


def _error_data(error: Exception) -> dict[str, Any]:
    data: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    if isinstance(error, InvalidValue):
        value = error.value
        data.update(field=error.field, value=value if isinstance(value, _JSON_SCALARS) else repr(value))
    if isinstance(error, InvalidRows):
        data["problems"] = [converter.unstructure(problem) for problem in error.problems]
    return data


converter.register_unstructure_hook_func(lambda cls: isinstance(cls, type) and issubclass(cls, Exception), _error_data)
converter.register_unstructure_hook(RowProblem, lambda problem: {"row": problem.row, **_error_data(problem.error)})


def _with_properties(cls: type, **extra: Any) -> None:
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
    )


_register_extras()


def to_data(obj: Any) -> Any:
    """Plain dicts, lists, strings and numbers, ready for ``json.dumps``."""
    return converter.unstructure(obj)


def from_data(data: Any, cls: Any) -> Any:
    """Rebuild library objects from :func:`to_data` output (extra keys such as ``vm_count`` are ignored)."""
    return converter.structure(data, cls)

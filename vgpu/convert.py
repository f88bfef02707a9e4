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

from .models import Pool, PowerState, Priority
from .values import parse_priority

converter = cattrs.Converter()
converter.register_unstructure_hook(Priority, lambda priority: priority.label)
converter.register_structure_hook(Priority, lambda value, _type: parse_priority(value))
converter.register_unstructure_hook(PowerState, lambda state: state.value)
converter.register_structure_hook(PowerState, lambda value, _type: PowerState(value))

_pool_fields = make_dict_unstructure_fn(Pool, converter)
converter.register_unstructure_hook(Pool, lambda pool: {**_pool_fields(pool), "vm_count": pool.vm_count})


def to_data(obj: Any) -> Any:
    """Plain dicts, lists, strings and numbers, ready for ``json.dumps``."""
    return converter.unstructure(obj)


def from_data(data: Any, cls: Any) -> Any:
    """Rebuild library objects from :func:`to_data` output (extra keys such as ``vm_count`` are ignored)."""
    return converter.structure(data, cls)

"""The smallest value types: priorities, the pool ids and defaults, and a pool with its counts.

They are what a one-shot command that reads pools needs (``vgpu-admin list-pools``, whose start-up is
measured), so they live apart from the other value types of :mod:`vgpu.models`, each of which costs about
half a millisecond to build at import (attrs generates and compiles its methods). Import them from
:mod:`vgpu.models`, which names them with the rest; the library's own start-up path imports them from here.

This module does not import attrs: attrs, with what it imports (inspect, ast, dis, tokenize...), was about
half of list-pools' start-up. Pool and PriorityCounts are attrs classes all the same (:class:`AttrsOnDemand`):
attrs' description of them is built the first time anything asks for it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, Self, TypeVar

# The platform key of the device-model arguments: the spec's name; some hosts read "device_model_args". Here,
# not in vgpu.hypervisor.base (which names it too), so that reading the settings loads no hypervisor code.
DEFAULT_ARGS_KEY = "device-model-args"

POOL_IDS: tuple[str, ...] = ("A", "B")
DEFAULT_POOL = "A"

VM_ID_MAX = 2**31 - 1  # the scheduler and QEMU's fw_cfg consumers read it as a signed 32-bit int
NAME_MAX = 255
# A VM UUID in canonical (lower-case) form; the backends match it ignoring case, as their hosts answer.
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Priority(enum.IntEnum):
    """Scheduling priority. 0 is LOW here (not "highest first"), as the scheduler reads it."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    def describe(self) -> str:
        """The spec's display form, e.g. ``high (2)``."""
        return f"{self.label} ({self.value})"


DEFAULT_PRIORITY = Priority.MEDIUM


class Frozen:
    """An immutable value whose fields are its class's ``__slots__``: for the few plain types built on every
    start-up (a run's hosts, the command table), where defining a NamedTuple costs about 0.1 ms and an attrs
    class 0.4 ms (each generates and compiles its methods) and this costs nothing. A subclass names its fields
    in ``__slots__`` and sets them in ``__init__`` with :meth:`_set`, its parameters having the fields' names
    in the same order. Values are equal when of the same class with equal fields, and hash alike. The
    library's results stay attrs classes."""

    __slots__: tuple[str, ...] = ()

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} cannot be deleted")

    def __reduce__(self) -> tuple[type[Self], tuple[object, ...]]:
        return type(self), tuple(self._fields().values())  # pickled as a call of the class with the fields

    def _fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in type(self).__slots__}

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes``, as NamedTuple's ``_replace`` and ``attrs.evolve`` give."""
        return type(self)(**{**self._fields(), **changes})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._fields().values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in self._fields().items())})"


class _AttrsDescription:
    """``__attrs_attrs__`` of :class:`AttrsOnDemand`'s subclasses: the tuple of ``attrs.Attribute`` that
    attrs.fields, attrs.has, attrs.evolve, attrs.asdict and cattrs read, built when first read and then kept
    on the class, where it hides this descriptor. Two threads reading it at once may each build one; both are
    equal and either is kept."""

    def __get__(self, instance: object, owner: type) -> Any:
        if owner is AttrsOnDemand:
            return None  # the base itself has no fields: attrs.has says False, as for any plain class
        import inspect

        import attrs  # here, not at the top: see the module's docstring

        defaults = {name: parameter.default for name, parameter in inspect.signature(owner).parameters.items()
                    if parameter.default is not parameter.empty}
        annotations = owner.__dict__["__annotations__"]
        # make_class builds the same description attrs would give the class itself (names, defaults, types,
        # aliases, the tuple's accessors by name); the class it makes is only a template and is dropped.
        template = attrs.make_class(owner.__name__, {
            name: attrs.field(default=defaults.get(name, attrs.NOTHING), type=annotations[name])
            for name in owner.__dict__["__slots__"]}, frozen=True)
        description = attrs.fields(template)
        type.__setattr__(owner, "__attrs_attrs__", description)
        return description


class AttrsOnDemand(Frozen):
    """A :class:`Frozen` value that is an attrs class, as every result of the library is (attrs.fields,
    attrs.evolve and the cattrs converter work on it), without importing attrs until something asks.

    A subclass names its fields twice, as ``__slots__`` (in ``__init__``'s order) and as annotations (their
    types), and is decorated with :func:`described_to_mypy`, which tells mypy's attrs plugin what
    attrs will be told at run time."""

    __slots__ = ()
    if not TYPE_CHECKING:  # to mypy, each subclass is the attrs class its decorator declares
        __attrs_attrs__ = _AttrsDescription()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = tuple(name for name in cls.__dict__.get("__annotations__", {}))
        if fields != cls.__dict__.get("__slots__"):
            raise TypeError(f"{cls.__name__}: __slots__ {cls.__dict__.get('__slots__')!r} must name the annotated "
                            f"fields {fields!r}, in the same order")


_Class = TypeVar("_Class", bound=type)

if TYPE_CHECKING:
    # The same options the classes were once decorated with at run time: mypy's attrs plugin types
    # attrs.fields(Pool).pool_id, attrs.evolve(pool, ...) and the rest from them.
    from attrs import frozen as described_to_mypy
else:
    def described_to_mypy(**_options: object) -> Callable[[_Class], _Class]:
        """Nothing at run time (AttrsOnDemand describes the class to attrs); see the TYPE_CHECKING branch."""
        return lambda cls: cls


@described_to_mypy(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class PriorityCounts(AttrsOnDemand):
    __slots__ = ("low", "medium", "high")
    low: int
    medium: int
    high: int

    def __init__(self, low: int = 0, medium: int = 0, high: int = 0) -> None:
        self._set(low=low, medium=medium, high=high)

    @property
    def total(self) -> int:
        return self.low + self.medium + self.high

    def of(self, priority: Priority) -> int:
        return (self.low, self.medium, self.high)[priority]


_NO_VMS = PriorityCounts()


@described_to_mypy(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class Pool(AttrsOnDemand):
    """One of the two logical pools, with how many VMs of each priority it holds."""

    __slots__ = ("pool_id", "pool_name", "description", "enabled", "counts", "created_at", "updated_at")
    pool_id: str
    pool_name: str
    description: str | None
    enabled: bool
    counts: PriorityCounts
    created_at: str | None
    updated_at: str | None

    def __init__(self, pool_id: str, pool_name: str, description: str | None, enabled: bool,
                 counts: PriorityCounts = _NO_VMS, created_at: str | None = None, updated_at: str | None = None) -> None:
        self._set(pool_id=pool_id, pool_name=pool_name, description=description, enabled=enabled, counts=counts,
                  created_at=created_at, updated_at=updated_at)

    @property
    def vm_count(self) -> int:
        return self.counts.total

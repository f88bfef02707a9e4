"""The smallest value types: priorities, the pool ids and defaults, and a pool with its counts.

They are what a one-shot command that reads pools needs (``vgpu-admin list-pools``, whose start-up is
measured), so they live apart from the other value types of :mod:`vgpu.models`, each of which costs about
half a millisecond to build at import (attrs generates and compiles its methods). Import them from
:mod:`vgpu.models`, which names them with the rest; the library's own start-up path imports them from here.

This module does not import attrs: attrs, with what it imports (inspect, ast, dis, tokenize...), was about
half of list-pools' start-up. Pool and PriorityCounts are attrs classes all the same (:func:`frozen_on_demand`):
attrs' description of them is built the first time anything asks for it.
"""

from __future__ import annotations

import enum
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Self, TypeVar, cast

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
        raise self._refusal(f"{type(self).__name__}.{name} cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise self._refusal(f"{type(self).__name__}.{name} cannot be deleted")

    def _refusal(self, message: str) -> AttributeError:
        return AttributeError(message)

    def __reduce__(self) -> tuple[type[Self], tuple[object, ...]]:
        return type(self), tuple(self._fields().values())  # pickled as a call of the class with the fields

    def _fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

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


def _field_names(cls: type) -> tuple[str, ...]:
    """The fields of a Frozen class: the ``__slots__`` of it and its bases, so that a subclass adding none
    (``__slots__ = ()``, as a subclass of a slotted class should have) keeps its base's. Kept per class:
    equality, hashing and repr read them every time."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(name for klass in reversed(cls.__mro__) for name in klass.__dict__.get("__slots__", ()))
        _FIELD_NAMES[cls] = names
    return names


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


# One description per class, even when threads ask for it at once (reentrant: a deadlock would hide a bug).
_DESCRIBING = threading.RLock()


def _new_lock_after_fork() -> None:
    # A child forked while another thread held the lock would wait for it forever: that thread is not there.
    global _DESCRIBING
    _DESCRIBING = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


class _OnDemand:
    """One of the attributes attrs puts on a class it decorates (``__attrs_attrs__``: the fields, read by
    attrs.fields, has, evolve, asdict and cattrs; ``__attrs_props__``: the options, read by attrs.inspect;
    ``__attrs_init__``: the generated initialiser, for a subclass's own ``__init__``), put on a class by
    :func:`frozen_on_demand` in its place: it builds them all on first use and puts them on the class
    instead. A subclass reads its base's, as it does an attrs class's."""

    def __init__(self, cls: type, name: str, fields: dict[str, object], options: dict[str, Any]) -> None:
        self.cls, self.name, self.fields, self.options = cls, name, fields, options

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is not None and self.name in _REFUSALS:  # setting a field: refused, with no need of attrs yet
            return getattr(AttrsOnDemand, self.name).__get__(instance, owner)
        with _DESCRIBING:
            if self.cls.__dict__.get(self.name) is self:  # not built yet (nor by a thread that held the lock)
                _describe(self.cls, self.fields, self.options)
        # AttributeError where this attrs has no such attribute; __attrs_init__ bound to the instance
        return getattr(self.cls if instance is None else instance, self.name)

    # attrs.inspect reads __attrs_props__ from the class's __dict__ itself, passing __get__ by: there this
    # stands for the real value, reading as it does until it has replaced itself with it.
    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.__get__(None, self.cls), attribute)

    def __repr__(self) -> str:
        return repr(self.__get__(None, self.cls))


_NO_DEFAULT = object()


def _describe(cls: type, fields: dict[str, object], options: dict[str, Any]) -> None:
    """Put on ``cls`` what attrs.frozen(**options) would have put on it, for the fields ``fields`` (name ->
    default, or _NO_DEFAULT) with the class's annotations as their types."""
    import attrs  # here, not at the top: see the module's docstring

    annotations = cls.__dict__["__annotations__"]
    # make_class, given the class's fields and decorator options, builds the very description attrs would
    # have given the class itself (names, defaults, types, aliases, accessors by name, the options, the
    # initialiser); the class it makes is only a template and is dropped.
    template = attrs.make_class(cls.__name__, {
        name: attrs.field(default=attrs.NOTHING if default is _NO_DEFAULT else default, type=annotations[name])
        for name, default in fields.items()}, **options)
    for name in _ATTRS_ATTRIBUTES:
        if name in template.__dict__:
            type.__setattr__(cls, name, template.__dict__[name])
        else:  # an older attrs (before 25.4 there were no __attrs_props__)
            type.__delattr__(cls, name)


# __setattr__ and __delattr__ too: attrs takes a class for frozen by its own __setattr__ (a user's @attrs.define
# subclass is then frozen and hashable, as before); a field set on an instance is refused without building anything.
_REFUSALS = ("__setattr__", "__delattr__")
_ATTRS_ATTRIBUTES = ("__attrs_attrs__", "__attrs_props__", "__attrs_init__", *_REFUSALS)
# What attrs.frozen gives make_class's options (they are attr.s's, whose defaults differ) before the decorator's own
_AS_ATTRS_FROZEN = {"frozen": True, "slots": True, "collect_by_mro": True, "auto_attribs": True}
_Class = TypeVar("_Class", bound=type)


def _frozen_on_demand(**options: Any) -> Callable[[_Class], _Class]:
    """At run time: attrs.frozen(**options), but what attrs itself reads of the class is built when something
    first asks for it, not at import (:class:`_OnDemand`).

    As attrs does, it makes the class again, slotted: its annotated fields become its ``__slots__`` and
    ``__match_args__``, their defaults in the class body are taken out (the class's ``__init__`` gives them
    too, and must take the fields in the same order). The class is an :class:`AttrsOnDemand`, and none of
    its methods may use ``super()`` without arguments (attrs mends those; this does not)."""

    def decorate(cls: _Class) -> _Class:
        annotated = tuple(cls.__dict__.get("__annotations__", {}))
        if not issubclass(cls, AttrsOnDemand) or "__slots__" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: frozen_on_demand makes an AttrsOnDemand slotted from its annotations; "
                            "it must not name __slots__ itself")
        namespace = {key: value for key, value in cls.__dict__.items()
                     if key not in annotated and key not in ("__dict__", "__weakref__")}
        fields = {name: cls.__dict__.get(name, _NO_DEFAULT) for name in annotated}
        namespace.update(__slots__=annotated, __match_args__=annotated)  # as attrs sets them: case Pool("A", name)
        made = cast(_Class, type(cls.__name__, cls.__bases__, namespace))
        for name in _ATTRS_ATTRIBUTES:
            type.__setattr__(made, name, _OnDemand(made, name, fields, {**_AS_ATTRS_FROZEN, **options}))
        return made
    return decorate


if TYPE_CHECKING:
    # To mypy the classes are what attrs.frozen makes of them: its attrs plugin types attrs.fields(Pool).pool_id,
    # attrs.evolve(pool, ...), match statements and the rest from the decorator's options.
    from attrs import frozen as frozen_on_demand
else:
    frozen_on_demand = _frozen_on_demand


class AttrsOnDemand(Frozen):
    """A :class:`Frozen` value that is an attrs class, as every result of the library is (attrs.fields,
    attrs.evolve and the cattrs converter work on it), without importing attrs until something asks: see
    :func:`frozen_on_demand`, its decorator. Changing a field raises attrs' FrozenInstanceError."""

    __slots__ = ()

    def _refusal(self, message: str) -> AttributeError:
        from attrs.exceptions import FrozenInstanceError

        error = FrozenInstanceError()  # takes no message: ours replaces its "can't set attribute"
        error.args = (message,)
        error.msg = message
        return error

    def __replace__(self, **changes: object) -> Self:  # copy.replace() (Python 3.13), as attrs classes have
        return self.replace(**changes)


@frozen_on_demand(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class PriorityCounts(AttrsOnDemand):
    low: int = 0
    medium: int = 0
    high: int = 0

    def __init__(self, low: int = 0, medium: int = 0, high: int = 0) -> None:
        self._set(low=low, medium=medium, high=high)

    @property
    def total(self) -> int:
        return self.low + self.medium + self.high

    def of(self, priority: Priority) -> int:
        return (self.low, self.medium, self.high)[priority]


_NO_VMS = PriorityCounts()


@frozen_on_demand(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class Pool(AttrsOnDemand):
    """One of the two logical pools, with how many VMs of each priority it holds."""

    pool_id: str
    pool_name: str
    description: str | None
    enabled: bool
    counts: PriorityCounts = _NO_VMS
    created_at: str | None = None
    updated_at: str | None = None

    def __init__(self, pool_id: str, pool_name: str, description: str | None, enabled: bool,
                 counts: PriorityCounts = _NO_VMS, created_at: str | None = None, updated_at: str | None = None) -> None:
        self._set(pool_id=pool_id, pool_name=pool_name, description=description, enabled=enabled, counts=counts,
                  created_at=created_at, updated_at=updated_at)

    @property
    def vm_count(self) -> int:
        return self.counts.total

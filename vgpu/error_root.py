"""The root of the library's exceptions, and the errors the display layer raises: import them from
:mod:`vgpu.errors`, which names them with the rest.

They live here, below :mod:`vgpu.tables`, because tables (which ``errors.InvalidRows`` builds on) refuses a
bad display option with an InvalidValue and a missing pandas with a MissingDependency like the rest of the
library; ``vgpu.errors`` imports tables, so tables cannot import it. Each class says it belongs to
``vgpu.errors``: that is where users, pickle and the docs find it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence


class VgpuError(Exception):
    """Root of every error raised by the vgpu library."""

    # True once the failing call had stopped the VM and started it again (a change rolled back after the
    # stop): something was done, whatever the error says of the cause (a segment changed meanwhile).
    vm_restarted: bool = False
    # And what it booted with then, against what the rollback put back: "new" (that), "other", "not-running"
    # or "unknown" (the host cannot tell); "" when it was not started again (see ReconfigureResult.booted).
    vm_booted: str = ""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence

    def __reduce__(self) -> tuple[Callable[..., VgpuError], tuple[type[VgpuError], tuple[Any, ...]], dict[str, Any]]:
        # Pickled as class, sentence and attributes, without calling __init__ again: each subclass's
        # __init__ takes its own data, not the sentence BaseException would pass it back (which broke a
        # ProcessPoolExecutor whose worker raised one). Notes added with add_note() are attributes too.
        return _rebuilt, (type(self), self.args), vars(self).copy()

    def reword(self, sentence: str) -> None:
        """Say ``sentence`` instead (kept in ``args`` too, so the error prints and pickles the same): for a
        subclass whose sentence is not its parent's, or a caller adding what became of the change."""
        self.sentence = sentence
        self.args = (sentence,)


def _rebuilt(cls: type[VgpuError], args: tuple[Any, ...]) -> VgpuError:
    """An error of ``cls`` with ``args`` and, as yet, no attributes (pickle then restores them)."""
    return cls.__new__(cls, *args)


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




class MissingDependency(VgpuError, ImportError):
    """An optional package a call needs is not installed (pandas for ``to_pandas()``). Also an ImportError,
    as a pandas user expects. ``package`` is its name, ``install`` the command that installs it."""

    def __init__(self, package: str, needed_for: str, install: str) -> None:
        self.package = package
        self.install = install
        super().__init__(f"{needed_for} needs {package}, which vgpu does not install: {install}")


for _cls in (VgpuError, InvalidValue, MissingDependency):
    _cls.__module__ = "vgpu.errors"

"""Where a batch's progress goes: the caller's callback, or with ``progress="auto"`` a progress bar.

``"auto"`` draws a ``tqdm.auto`` bar when tqdm is installed (``pip install 'vgpu-admin[notebook]'``): a
widget in a notebook, a line on stderr in a terminal, as tqdm itself chooses; it counts finished VMs and
shows how many failed. Without tqdm, ``"auto"`` logs one line per finished VM (``[3/40] VM … finished``)
to the ``vgpu.progress`` logger at INFO, so the library still prints nothing itself; in a notebook,
``logging.basicConfig(level=logging.INFO)`` shows them.
"""

from __future__ import annotations

import logging
from typing import Callable, Union

from .errors import InvalidValue
from .power import FAILED, Progress, ProgressCallback, silent

AUTO = "auto"
LOGGER = logging.getLogger("vgpu.progress")

ProgressOption = Union[ProgressCallback, str, None]


class Reporter:
    """A progress callback for one batch, closed when the batch ends (a bar is then completed)."""

    def __call__(self, event: Progress) -> None:  # pragma: no cover - subclasses say what they do
        raise NotImplementedError

    def close(self) -> None:
        """The batch is over."""


class _Callback(Reporter):
    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback

    def __call__(self, event: Progress) -> None:
        self.callback(event)


class _Bar(Reporter):
    """A tqdm bar of the batch's VMs: one step per finished VM, the failures counted beside it."""

    def __init__(self, tqdm: Callable[..., object], total: int, description: str) -> None:
        self.bar = tqdm(total=total, desc=description, unit="VM")
        self.failed = 0

    def __call__(self, event: Progress) -> None:
        if not event.finishes:
            return
        if event.step == FAILED:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed)  # type: ignore[attr-defined]
        self.bar.update(1)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.bar.close()  # type: ignore[attr-defined]


class _LogLines(Reporter):
    """One INFO line per finished VM on the ``vgpu.progress`` logger."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __call__(self, event: Progress) -> None:
        if event.finishes:
            LOGGER.info("%s [%d/%d] %s", self.description, event.done, event.total, event.message)


def check(progress: ProgressOption) -> None:
    """Refuse a ``progress`` that is neither a callback, None nor ``"auto"`` (before anything is changed)."""
    if progress is not None and not callable(progress) and progress != AUTO:
        raise InvalidValue("progress", progress, "a callback, None or 'auto'")


def reporter(progress: ProgressOption, total: int, description: str) -> Reporter:
    """The reporter for ``progress``: a callback, None (nothing) or ``"auto"`` (a tqdm bar, else log lines)."""
    check(progress)
    if progress is None or progress is silent:
        return _Callback(silent)
    if isinstance(progress, str):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _LogLines(description)
        return _Bar(tqdm, total, description)
    return _Callback(progress)

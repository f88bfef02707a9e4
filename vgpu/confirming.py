"""Asking a caller's ``confirm`` callback before a change, failing closed.

Every change that asks first (lifecycle's reconfigure and apply, bulk moves, forgetting a host in
:mod:`vgpu.locations`) checks the callback before it plans and asks it with the plan: anything but True,
an exception included, cancels with nothing changed. Here, below all of them, so each can import it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from .errors import Cancelled, InvalidValue

_Plan = TypeVar("_Plan")


def check_confirm(confirm: object) -> None:
    """Refuse a ``confirm`` that cannot be asked (True, "yes", None) before anything is planned: a caller's
    slip, not a user's no, so InvalidValue rather than the Cancelled that ask() would make of it."""
    if not callable(confirm):
        raise InvalidValue("confirm", confirm, "a function that takes the plan and returns True to go ahead")


def ask(confirm: Callable[[_Plan], bool], plan: _Plan) -> None:
    """Ask the caller's confirm callback; anything but True (an exception included) cancels."""
    try:
        answer = confirm(plan)
    except Cancelled:
        raise  # the callback cancelled, saying why itself (vgpu-admin's, for an answer it could not read)
    except Exception as error:  # a callback that fails must fail closed, whatever it raised
        raise Cancelled(f"Cancelled: the confirmation failed ({error}); nothing was changed.") from error
    if answer is not True:
        raise Cancelled()

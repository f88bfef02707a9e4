"""A Ctrl-C landing at a chosen instant, for the tests of what an interrupted call hands back.

Python delivers SIGINT between bytecodes, so a real signal lands wherever it lands; these put the
KeyboardInterrupt exactly where a test needs it: just after a given function returned.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest


def interrupt_after(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """``module.name`` does its work, then the caller gets a Ctrl-C: one landing just after it returned."""
    real = getattr(module, name)

    def then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, then_ctrl_c)


def interrupt_of(call: Callable[[], object]) -> KeyboardInterrupt:
    """The interrupt ``call()`` raised, whichever: a plain one escaping is a failure of the test, not of the run."""
    try:
        call()
    except KeyboardInterrupt as caught:
        return caught
    pytest.fail("the call was not interrupted")

"""The thin prompt_toolkit face of shell.completion_engine (as litecli's sqlcompleter over its engine).

All the deciding is in the engine; this class only reads the current NameCache snapshot once per request
and turns suggestions into prompt_toolkit Completions. It is wrapped in a ThreadedCompleter so a slow
request (a huge host) never blocks typing.
"""

from __future__ import annotations

from typing import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, ThreadedCompleter
from prompt_toolkit.document import Document

from . import completion_engine
from .names import NameCache


class VgpuCompleter(Completer):
    def __init__(self, names: Callable[[], NameCache]) -> None:
        self._names = names  # returns the refresher's current snapshot; never blocks

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        snapshot = self._names()  # one snapshot for the whole request, even if a swap happens meanwhile
        for item in completion_engine.suggest(document.text_before_cursor, snapshot):
            yield Completion(item.text, item.start, display=item.display, display_meta=item.meta)


def threaded_completer(names: Callable[[], NameCache]) -> ThreadedCompleter:
    """The completer the shell uses: the engine's answers, computed off the input thread."""
    return ThreadedCompleter(VgpuCompleter(names))

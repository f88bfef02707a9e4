"""Ctrl-R at the vgpu> prompt: giving up the search (Ctrl-G, Ctrl-C) brings back the line as it was before it.

prompt_toolkit's emacs bindings show the first match as a preview, but each further Ctrl-R (or Up) moves the
line itself to the next older match, and giving up only leaves the search: after two Ctrl-R, Ctrl-G then
Enter ran a match the user had just abandoned. Here the line is remembered when the search starts and put
back when it is given up, however many matches were walked through; Enter and Escape still stop at the
line found.
"""

from __future__ import annotations

from prompt_toolkit import search
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import control_is_searchable, is_searching
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent


def abandonable_search() -> KeyBindings:
    bindings = KeyBindings()
    before: dict[Buffer, tuple[int, int]] = {}  # the line a search started from: its place, its cursor

    def start(direction: search.SearchDirection):
        def _start(event: KeyPressEvent) -> None:
            before[event.current_buffer] = _place(event.current_buffer), event.current_buffer.cursor_position
            search.start_search(direction=direction)
        return _start

    bindings.add("c-r", filter=control_is_searchable & ~is_searching)(start(search.SearchDirection.BACKWARD))
    bindings.add("c-s", filter=control_is_searchable & ~is_searching)(start(search.SearchDirection.FORWARD))

    @bindings.add("c-g", filter=is_searching)
    @bindings.add("c-c", filter=is_searching)
    def _give_up(event: KeyPressEvent) -> None:
        target = event.app.layout.search_target_buffer_control
        if target is not None and target.buffer in before:
            place, cursor = before.pop(target.buffer)
            target.buffer.working_index = len(target.buffer._working_lines) - place
            target.buffer.cursor_position = cursor
        search.stop_search()

    return bindings


def _place(buffer: Buffer) -> int:
    """Where the buffer's line is among its history lines, counted from the newest: the history loads after
    keys typed ahead of the prompt are read, and each line it loads goes before the others, moving the
    index of every line after it."""
    return len(buffer._working_lines) - buffer.working_index

"""Several lines pasted at the vgpu> prompt run one by one, as if each were typed and Enter pressed.

prompt_toolkit's own paste handler puts every pasted line into the one-line buffer, where the runner read
the newlines as blanks: the lines ran as one command (and were kept as one history entry). Here the first
line is inserted and accepted, and the rest is left queued as typeahead, which prompt_toolkit hands to the
next prompt on the same input: the next vgpu> prompt, or a yes/no question, which a pasted ``yes`` then
answers, as it would if typed.
"""

from __future__ import annotations

from prompt_toolkit.input.typeahead import get_typeahead, store_typeahead
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.key_binding.key_processor import KeyPress
from prompt_toolkit.keys import Keys

STOPPED = "The pasted lines after it were not run."


def line_by_line_paste() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        text = event.data.replace("\r\n", "\n").replace("\r", "\n")  # some terminals paste \r\n or \r
        first, newline, rest = text.partition("\n")
        event.current_buffer.insert_text(first)
        if newline:
            # Enter first; prompt_toolkit stops reading keys once the line is accepted and keeps the rest.
            queued = [KeyPress(Keys.ControlM, "\r")] + ([KeyPress(Keys.BracketedPaste, rest)] if rest else [])
            event.app.key_processor.feed_multiple(queued, first=True)

    return bindings


def drop_pasted_rest(input) -> bool:
    """Forget the pasted lines not run yet (after one failed, as a script stops); True if there were any.
    Keys typed ahead of the prompt are kept: only the queued rest of a paste is dropped."""
    queued = get_typeahead(input)  # takes them all: what is not the paste's goes back
    pasted = bool(queued) and queued[0].key == Keys.BracketedPaste
    store_typeahead(input, queued[1:] if pasted else queued)
    return pasted

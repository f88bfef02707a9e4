"""Text from the host or the database, made safe to print: names are chosen by guests' owners.

A VM's name can hold anything: an escape sequence that clears the screen, a line break followed by a line
that looks like our own output, a right-to-left override. Every text output passes such values through
:func:`shown`, which writes each character that does not print as its escape (``\\n``, ``\\x1b``,
``\\u202e``), so the terminal shows what the value holds instead of obeying it. JSON output keeps the values
exact: :func:`json_text` escapes the same characters the JSON way, which a JSON reader turns back into them.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# In JSON text every raw character outside strings is ASCII, so a non-ASCII character that does not print
# can only be inside a string, where \uXXXX is its exact spelling. A pattern, not compiled here: re compiles
# it on first use (JSON output), not on every start-up.
_JSON_UNPRINTABLE = r"[^\x20-\x7e\n]"


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(value: object) -> str:
    """``value`` as text for a terminal: printable text unchanged, every other character escaped. For whole
    sentences and lines (an error that quotes a host's words); a value shown among others goes through
    :func:`field` or :func:`listed`, which also quote it when it holds an escape."""
    text = value if type(value) is str else str(value)
    if text.isprintable():
        return text  # the usual name: no copy
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def listed(value: object) -> str:
    """``value`` as one item of a list joined with ", ": quoted when it could read as two items (``"a, b"``)
    or hide in the list (empty, or spaces at an end), or holds a character that does not print (see
    :func:`field`), or a "|" (a list is often one field of a ``… | …`` line, whose end it would seem to be)."""
    text = value if type(value) is str else str(value)
    if text and text.isprintable() and "," not in text and '"' not in text and "|" not in text and text == text.strip():
        return text
    return _quoted(text)


def field(value: object) -> str:
    """``value`` as one field of a line whose fields are joined with " | " (``Name: … | Pool: …``): as it is
    when it prints and cannot be misread, else quoted, with its backslashes, quotes and every character that
    does not print escaped. So a "|" cannot make fields of its own, and ``"a\\x1bb"`` (an escape character)
    never reads like ``a\\x1bb`` (a name typed with a backslash) nor like a name typed with the quotes."""
    text = value if type(value) is str else str(value)
    if text.isprintable() and "|" not in text and not text.startswith('"'):
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    """``text`` in double quotes, its backslashes, quotes and characters that do not print escaped."""
    return '"' + "".join(_QUOTED.get(char) or (char if char.isprintable() else _escape(char)) for char in text) + '"'


_QUOTED = {"\\": "\\\\", '"': '\\"'}


def _json_escape(match: re.Match[str]) -> str:
    char: str = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a JSON string spells it as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(data: object) -> str:
    """``data`` as indented JSON that is safe to print: exact for a JSON reader, inert for a terminal."""
    import json  # loaded only for JSON output: the one-shot start-up is measured

    text = json.dumps(data, indent=2, ensure_ascii=False)
    return re.sub(_JSON_UNPRINTABLE, _json_escape, text)

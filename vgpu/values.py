"""Parse values in the forms a person types them, or refuse them with an InvalidValue naming what is allowed.

Every public entry point of the library passes user input through these, so the rules live in one place:
pool ``A``/``a``/``B``; priority ``high``/``HIGH``/``2``; vm_id a positive integer; UUIDs in any case (kept
lower-case); names printable and of sane length. Numbers may be any integer type (numpy's and pandas'
integer scalars included), never a bool or a float; a UUID may also be a ``uuid.UUID``.
"""

from __future__ import annotations

import operator
import re
import sys
from typing import Literal, overload

from .errors import InvalidValue
from .basics import NAME_MAX, POOL_IDS, UUID_PATTERN, VM_ID_MAX, Priority

POOL_NAME_MAX = 64

_UUID_RE = re.compile(UUID_PATTERN)
_PRIORITY_ALLOWED = ("low", "medium", "high", "0", "1", "2")

# Exact spellings, looked up before any stripping or case folding: bulk registration parses every field
# of every row, and these lookups keep it within its benchmark. Only str keys: True == 1 would otherwise
# find a priority.
_POOL_BY_TEXT = {"A": "A", "a": "A", "B": "B", "b": "B"}
_PRIORITY_BY_TEXT = {
    spelling: p
    for p in Priority
    for spelling in (p.label, p.label.upper(), p.label.capitalize(), str(p.value))
}


def parse_pool_id(value: object) -> str:
    if isinstance(value, str):
        found = _POOL_BY_TEXT.get(value) or _POOL_BY_TEXT.get(value.strip())
        if found:
            return found
    raise InvalidValue("pool", value, POOL_IDS)


def parse_priority(value: object) -> Priority:
    if isinstance(value, Priority):
        return value
    if isinstance(value, str):
        found = _PRIORITY_BY_TEXT.get(value) or _PRIORITY_BY_TEXT.get(value.strip().lower())
        if found is not None:
            return found
        raise InvalidValue("priority", value, _PRIORITY_ALLOWED)
    number = _whole_number(value)
    if number is not None and 0 <= number <= 2:
        return Priority(number)
    raise InvalidValue("priority", value, _PRIORITY_ALLOWED)


def parse_vm_id(value: object) -> int:
    allowed = f"a whole number from 1 to {VM_ID_MAX}"
    if isinstance(value, str):
        text = value.strip()
        number = _bounded_int(text) if text.isascii() and text.isdigit() else None
    else:
        number = _whole_number(value)
    if number is None or not 1 <= number <= VM_ID_MAX:
        raise InvalidValue("vm_id", value, allowed)
    return number


def _whole_number(value: object) -> int | None:
    """An integer of any type as a plain int: int, or anything with ``__index__`` (numpy.int64 from a pandas
    column); None for anything else. Never a bool (True is no vm_id) and never a float, not even 7.0: a
    pandas column of whole numbers with a blank in it turns into floats, and guessing would hide that."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    try:  # int(): sqlite3 stores a plain int, not an int subclass
        return int(operator.index(value))  # type: ignore[arg-type]  # any value: a TypeError says it has no __index__
    except TypeError:
        return None


def parse_at_least(field: str, value: object, least: int) -> int:
    """A whole number of at least ``least`` (a concurrency), of any integer type as a vm_id is (numpy.int64
    too), as a plain int; never a bool, a float or a string."""
    number = _whole_number(value)
    if number is None or number < least:
        raise InvalidValue(field, value, f"a whole number of at least {least}")
    return number


def parse_uuid(value: object) -> str:
    if type(value) is str and _UUID_RE.fullmatch(value):
        return value  # already canonical: the common case in bulk registration
    if isinstance(value, str):
        text = value.strip().lower()
    else:
        # A uuid.UUID is written out in the canonical form. One can only exist once its module has been
        # imported, so this looks it up rather than importing it (uuid pulls in platform at start-up).
        uuid_module = sys.modules.get("uuid")
        text = str(value) if uuid_module is not None and isinstance(value, uuid_module.UUID) else ""
    if not _UUID_RE.fullmatch(text):
        raise InvalidValue("VM UUID", value, "a UUID like 0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7")
    return text


@overload
def _parse_text(field: str, value: object, limit: int, *, empty_ok: Literal[False], refused: tuple[str, str] = ...) -> str: ...
@overload
def _parse_text(field: str, value: object, limit: int, *, empty_ok: bool, refused: tuple[str, str] = ...) -> str | None: ...


def _parse_text(field: str, value: object, limit: int, *, empty_ok: bool, refused: tuple[str, str] = ("", "")) -> str | None:
    """Printable text of at most ``limit`` characters, trimmed; ``refused`` is (characters, their name) it
    must not contain."""
    if value is None and empty_ok:
        return None
    text = value.strip() if isinstance(value, str) else None
    chars, chars_name = refused
    if text and len(text) <= limit and text.isprintable() and not (chars and any(char in text for char in chars)):
        return text
    allowed = f"printable text of at most {limit} characters" + (f", without {chars_name}" if chars else "")
    if text == "":
        if empty_ok:
            return None
        allowed = "a non-empty " + allowed
    raise InvalidValue(field, value, allowed)


def parse_vm_name(value: object) -> str | None:
    """A VM's display name; empty means "no name". Never reaches QEMU, but must stay one printable line."""
    return _parse_text("VM name", value, NAME_MAX, empty_ok=True)


def parse_pool_name(value: object) -> str:
    """A pool's name. No double quote: list-pools, show-pool and status print it as ``Pool A: "name"``."""
    return _parse_text("pool name", value, POOL_NAME_MAX, empty_ok=False, refused=('"', "double quotes"))


def parse_flag(field: str, value: object) -> bool:
    """A switch: True or False (numpy's bool too). Anything else is refused, "no" included, which Python
    would take as true."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_" and type(value).__module__ == "numpy":
        return bool(value)
    raise InvalidValue(field, value, "True or False")


def check_kind(call: str, field: str, value: object, kind: type, hint: str = "") -> None:
    """Refuse ``value`` unless it is a ``kind``, naming both: "apply_plan() takes a ReconfigurePlan, not a
    BulkPlan", then ``hint`` (what to do instead) after a colon."""
    if isinstance(value, kind):
        return
    got = "None" if value is None else _a(type(value).__name__)
    raise InvalidValue(field, value, _a(kind.__name__),
                       sentence=f"{call}() takes {_a(kind.__name__)}, not {got}" + (f": {hint}" if hint else ""))


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def parse_count(field: str, value: object) -> int:
    """A positive whole number such as a --limit (bounded: SQLite and int() refuse huge ones)."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or not 1 <= _bounded_int(text) <= VM_ID_MAX:
        raise InvalidValue(field, value, f"a whole number from 1 to {VM_ID_MAX}")
    return int(text)


def _bounded_int(digits: str) -> int:
    """int() of an ASCII digit string, without converting thousands of digits (int() refuses > 4300)."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 20 else VM_ID_MAX + 1


SECONDS_MAX = 86400  # a day: a longer wait for one VM to stop is a typo


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def parse_seconds(field: str, value: object) -> float:
    """A duration in seconds, such as the clean-shutdown deadline: a number from 0 to a day. Text is plain
    decimal (``90``, ``2.5``), not what else float() would take (``1e3``, ``1_000``, other scripts' digits)."""
    allowed = f"a number of seconds from 0 to {SECONDS_MAX}"
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            raise InvalidValue(field, value, allowed)
        seconds = float(value.strip())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidValue(field, value, allowed)
    if not 0 <= seconds <= SECONDS_MAX:  # NaN fails both comparisons
        raise InvalidValue(field, value, allowed)
    return seconds

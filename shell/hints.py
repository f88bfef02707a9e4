"""What a value typed where a VM UUID belongs probably meant: pure functions over (UUID, name) pairs.

Used only on bad input. A VM's name is the usual slip at the vgpu> prompt; the start of a UUID is the other
one, since the spec's own examples shorten UUIDs ("abc123...").
"""

from __future__ import annotations

import string
from typing import Sequence

from vgpu.escape import listed

LISTED = 5  # more than this many matches are counted, not listed
SHORTEST_PREFIX = 4  # fewer hex digits than this start too many UUIDs to help
_UUID_CHARS = frozenset(string.hexdigits + "-")


def for_bad_uuid(value: str, known: Sequence[tuple[str, str]]) -> str:
    """``; the VM named … is …`` or ``; '…' starts the UUID of …: …``, or "" when nothing fits."""
    return _by_name(value, known) or _by_prefix(value, known)


def _by_name(value: str, known: Sequence[tuple[str, str]]) -> str:
    key = value.strip().lower()
    named = [(uuid, name) for uuid, name in known if key and name.lower() == key]
    if len(named) == 1:
        return f"; the VM named {named[0][1]} is {named[0][0]}"
    if named:
        return f"; {len(named)} VMs are named {named[0][1]}: {', '.join(uuid for uuid, _ in named)}"
    return ""


def _by_prefix(value: str, known: Sequence[tuple[str, str]]) -> str:
    typed = value.strip().rstrip(".…")
    prefix = typed.lower()
    if len(prefix.replace("-", "")) < SHORTEST_PREFIX or not set(prefix) <= _UUID_CHARS:
        return ""
    found = [(uuid, name) for uuid, name in known if uuid.startswith(prefix)]
    if len(found) == 1:
        uuid, name = found[0]
        return f"; {typed!r} starts the UUID of {name}: {uuid}" if name else f"; {typed!r} starts the UUID {uuid}"
    if not found:
        return ""
    shown = ", ".join(f"{uuid} ({listed(name)})" if name else uuid for uuid, name in found[:LISTED])
    more = f" and {len(found) - LISTED} more" if len(found) > LISTED else ""
    return f"; {typed!r} starts {len(found)} UUIDs: {shown}{more}"

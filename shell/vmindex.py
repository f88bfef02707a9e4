"""Find VMs by UUID or name without a Python loop over every VM.

Every entry's keys sit in one string (``\\0uuid\\nname`` per VM, in order), so ``str.find`` scans 10,000 VMs
at C speed and the Python code runs once per *match*, not once per VM; a keystroke then costs well under a
millisecond whatever the host's size. Built once per NameCache, on the refresher's thread.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names builds the indexes, so importing it here at run time would be circular
    from .names import VMName

START = "\x00"  # before each entry's UUID: START + typed finds UUID prefixes
NAME = "\n"  # between the UUID and the name: NAME + typed finds name prefixes


class VMIndex:
    def __init__(self, entries: tuple[VMName, ...]) -> None:
        self.entries = entries
        self._starts: list[int] = []
        position = 0
        for vm in entries:
            self._starts.append(position)
            position += 1 + len(vm.search_key)
        self._text = "".join(START + vm.search_key for vm in entries)

    def match(self, typed: str, limit: int) -> list[VMName]:
        """Entries whose UUID or name starts with ``typed`` (lower-case), then those containing it, in
        entry order within each group; at most ``limit``."""
        if START in typed or NAME in typed:
            return []  # no key holds these: they are the separators
        if not typed:
            return list(self.entries[:limit])
        prefix = sorted(set(self._hits(START + typed, limit)) | set(self._hits(NAME + typed, limit)))[:limit]
        inner = self._hits(typed, limit - len(prefix), skip=set(prefix)) if len(prefix) < limit else []
        return [self.entries[index] for index in prefix + inner]

    def _hits(self, needle: str, limit: int, skip: set[int] = frozenset()) -> list[int]:
        """The first ``limit`` entries (by index, each once) whose keys contain ``needle``, not in ``skip``."""
        found: list[int] = []
        position = 0
        while len(found) < limit:
            at = self._text.find(needle, position)
            if at < 0:
                break
            index = bisect_right(self._starts, at) - 1
            if index not in skip:
                found.append(index)
            position = self._starts[index + 1] if index + 1 < len(self._starts) else len(self._text)
        return found

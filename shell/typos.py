"""Which command a mistyped name probably meant: pure functions, used only when a name is unknown.

The distance counts a swap of two neighbouring letters as one edit (``lsit-pools`` is one edit from
``list-pools``), and a typed word may be the start of a longer name (``set-pol`` begins ``set-pool-name``
with one slip), ranked after a name as close as a whole.
"""

from __future__ import annotations

from typing import Iterable

MAX_SUGGESTIONS = 3
_PARTIAL = 0.5  # a name the typed word only begins ranks after a whole name as close


def distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) that turn ``a`` into ``b``: the optimal string
    alignment distance."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def closest(typed: str, names: Iterable[str]) -> list[str]:
    """The names ``typed`` most probably meant, closest first (ties in the order given); none if all are far."""
    typed = typed.lower()
    if not typed.strip():  # '' begins every name: it means none of them
        return []
    allowed = 1 if len(typed) <= 4 else 2  # in a short word, two edits make another word
    scored = []
    for order, name in enumerate(names):
        score = float(distance(typed, name))
        if len(name) > len(typed):
            score = min(score, distance(typed, name[: len(typed)]) + _PARTIAL)
        if score <= allowed and len(name) > 1:  # '?' is one edit from every letter
            scored.append((score, order, name))
    return [name for _, _, name in sorted(scored)[:MAX_SUGGESTIONS]]

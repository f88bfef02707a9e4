"""A password written into a URI (``USER:PASSWORD@HOST``): found and masked whatever characters it holds.

A host URI never carries a password (vgpu.host_uri refuses one), and no sentence may repeat it. urllib is no
judge of that: a password holding '/', '#' or '?' ends the authority early, leaves ``password`` None and
lands in the path, fragment or query. So the rule here does not parse the URI. After ``SCHEME:`` (and its
``//``), a ':' followed later by an '@' starts a password, and the password runs to the last '@': whatever lies
between may be the password, so all of it is masked. A libvirt URI whose query holds a '@' after a port's ':'
is taken for one with a password too: refusing that rare URI is the price of never letting a password through.

Pure string work, without ``re``: every command checks its ``--host``, and the one-shot start-up is measured.
"""

from __future__ import annotations

MASK = "***"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def password_span(uri: str) -> tuple[int, int] | None:
    """Where the password of ``uri`` lies, as (start, end) indexes, or None when it holds none. ``uri`` is one
    whole value (a ``--host``, a config entry): a space inside it may be part of the password."""
    start = _after_scheme(uri)
    if start is None:
        return None
    colon, last_at = uri.find(":", start), uri.rfind("@", start)
    if colon == -1 or last_at < colon:
        return None
    return colon + 1, last_at


def carries_password(uri: str) -> bool:
    return password_span(uri) is not None


def mask_password(uri: str) -> str:
    """``uri`` with its password, if any, replaced by ``***``: what an error may show of it."""
    span = password_span(uri)
    return uri if span is None else f"{uri[:span[0]]}{MASK}{uri[span[1]:]}"


def _after_scheme(text: str) -> int | None:
    """Where the text after ``SCHEME:`` or ``SCHEME://`` begins. A value that does not begin with a valid
    scheme (a typo: ``1xapi://``) still has its first ``://`` taken as the scheme's end."""
    begin = len(text) - len(text.lstrip())
    colon = text.find(":", begin)
    scheme = text[begin:colon]
    if colon > begin and scheme[0].isalpha() and set(scheme) <= _SCHEME_CHARS:
        return colon + 3 if text.startswith("//", colon + 1) else colon + 1
    slashes = text.find("://")
    return None if slashes == -1 else slashes + 3

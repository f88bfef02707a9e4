"""A password written into a URI (``USER:PASSWORD@HOST``): found and masked whatever characters it holds.

A host URI never carries a password (vgpu.host_uri refuses one), and no sentence may repeat it. urllib is no
judge of that: a password holding '/', '#' or '?' ends the authority early, leaves ``password`` None and
lands in the path, fragment or query. So the rule here does not parse the URI. After ``SCHEME:`` (and its
``//``), a ':' followed later by an '@' starts a password, and the password runs to the last '@': whatever lies
between may be the password, so all of it is masked. A libvirt URI whose query holds a '@' after a port's ':'
is taken for one with a password too: refusing that rare URI is the price of never letting a password through.

A host value written without a scheme, ``root:secret@pool1-master``, is ``USER:PASSWORD@HOST`` as well: its
user looks like a scheme, so unless its first ':' is followed by ``//`` or ends one of the schemes whose
rest is a path (``sim:``, ``xe:``, ``xapi+unix:``, where a '@' may be part of a file name), an '@' after that
':' makes everything between them the password. ``xapi:root@h`` or ``SIM:x@y`` (a typo) is taken for one too:
refused either way, and a miss would show the password.

Pure string work, without ``re``: every command checks its ``--host``, and the one-shot start-up is measured.
"""

from __future__ import annotations

from collections.abc import Mapping

MASK = "***"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# Their rest is a path (a file, the xe program, XAPI's socket), in which a '@' is no sign of a password.
_PATH_SCHEMES = ("sim", "xe", "xapi+unix")


def password_span(uri: str) -> tuple[int, int] | None:
    """Where the password of ``uri`` lies, as (start, end) indexes, or None when it holds none. ``uri`` is one
    whole host value (a ``--host``, a config entry): a space inside it may be part of the password, and
    ``USER:PASSWORD@HOST`` without a scheme counts (see the module docstring)."""
    begin = len(uri) - len(uri.lstrip())
    colon = uri.find(":", begin)
    if colon != -1 and not uri.startswith("//", colon + 1) and uri[begin:colon] not in _PATH_SCHEMES:
        last_at = uri.rfind("@", colon)
        return None if last_at == -1 else (colon + 1, last_at)
    return _span_after_scheme(uri)


def carries_password(uri: str) -> bool:
    return password_span(uri) is not None


def carries_scheme_password(text: str) -> bool:
    """Whether ``text`` holds ``SCHEME:[//]USER:PASSWORD@HOST``: what the shell's history looks for in a value
    that is no host URI (a VM name such as ``web:prod@dc1``), where a URI with a password still must not stay."""
    return _span_after_scheme(text) is not None


def mask_password(uri: str) -> str:
    """``uri`` with its password, if any, replaced by ``***``: what an error may show of it."""
    span = password_span(uri)
    return uri if span is None else f"{uri[:span[0]]}{MASK}{uri[span[1]:]}"


def mask_passwords(value: object) -> object:
    """``value`` as a refusal may repeat it (its repr): every password in it masked, in each string of a list,
    tuple or mapping (its keys too), however deep; a ``LABEL=URI`` string's URI read as vgpu.hostspecs reads it
    (a label holds no ':'). For a value of the wrong type or form, which may still hold a host URI: a config's
    ``gx = { url = "xapi://root:PW@h" }``, a list given as connect()'s host."""
    if isinstance(value, str):
        label, equals, uri = value.partition("=")
        return f"{label}={mask_password(uri)}" if equals and ":" not in label else mask_password(value)
    if isinstance(value, Mapping):
        return {mask_passwords(key): mask_passwords(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_passwords(item) for item in value]
    return value


def _span_after_scheme(uri: str) -> tuple[int, int] | None:
    start = _after_scheme(uri)
    if start is None:
        return None
    colon, last_at = uri.find(":", start), uri.rfind("@", start)
    if colon == -1 or last_at < colon:
        return None
    return colon + 1, last_at


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

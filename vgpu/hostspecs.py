"""Which hosts a run talks to: each host's label, URI and own settings, from ``[hosts]``, ``--host`` and ``VGPU_HOST``.

A fleet is named in config.toml, one line per host::

    [hosts]
    gpu1 = "xapi://root@pool1-master"
    kvm3 = "qemu+ssh://root@kvm3/system"
    gpu2 = { uri = "xapi://root@10.0.2.1", follow_master = ["10.0.2.0/24"] }

A table entry takes ``uri`` (required), ``follow_master`` (the addresses or networks a pool member's
``HOST_IS_SLAVE`` answer may send this host's password to: see docs/fleet.md) and ``args_key``.

``--host`` (repeatable) and ``VGPU_HOST`` (comma-separated) each take: ``LABEL=URI`` (defines a host),
``LABEL`` (a host of ``[hosts]``: narrows the run to it), or one bare ``URI`` alone, as before fleets
existed. The first of command line, environment, user config, system config that names ``host`` chooses
the run's hosts; when none does, every host of ``[hosts]`` is in the run; when there is no ``[hosts]``
either, the default host (``xe:`` on dom0, else ``sim:demo``).

Everything is checked here, before any host is opened: a bad label, URI or address is one sentence naming
the value and what is allowed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Collection, Iterable, Mapping

from .basics import Frozen
from .errors import ConfigError, InvalidValue, VgpuError
from .host_uri import ALLOWED as _URI_FORMS
from .host_uri import check as _check_form
from .host_uri import host_key as _host_key
from .host_uri import refuse_password as _refuse_password
from .paths import DEMO_URI
from .uri_password import carries_password as _carries_password
from .uri_password import mask_passwords as _masked
from .uri_password import password_span as _password_span

if TYPE_CHECKING:
    import re

LABEL_RULE = "1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_TABLE_KEYS = ("uri", "follow_master", "args_key")
_FOLLOW_FORMS = "IP addresses, networks (10.0.2.0/24) or host names, as the pool reports its master"
ARGS_KEY_RULE = "a platform key name such as device-model-args: printable, without spaces, '=' or '/'"
FLAG, ENVIRONMENT = "--host", "VGPU_HOST"


class HostSpec(Frozen):
    """One host of a run. ``label`` is "" for a single host named by its URI alone (no fleet);
    ``follow_master`` lists where a pool member may redirect the login (XenAPI hosts only); ``args_key``
    overrides the run's own for this host."""

    __slots__ = ("label", "uri", "follow_master", "args_key")
    label: str
    uri: str
    follow_master: tuple[str, ...]
    args_key: str | None

    def __init__(self, label: str, uri: str, follow_master: tuple[str, ...] = (), args_key: str | None = None) -> None:
        self._set(label=label, uri=uri, follow_master=follow_master, args_key=args_key)

    @property
    def name(self) -> str:
        """How a sentence names the host: its label, or its URI when it has none."""
        return self.label or self.uri


def _problem(source: str, sentence: str) -> VgpuError:
    """A refusal naming where the bad value came from first: the config file, ``--host`` or ``VGPU_HOST``."""
    return ConfigError(source, sentence)


def check_label(label: object, source: str) -> str:
    if not (isinstance(label, str) and 0 < len(label) <= 32 and label[0] not in "_-" and set(label) <= _LABEL_CHARS):
        raise _problem(source, f"invalid host label {_masked(label)!r}: expected {LABEL_RULE}")
    return label


def check_uri(uri: object, source: str, label: str = "") -> str:
    """The URI, if its form is one vgpu can open (see :mod:`vgpu.host_uri`; a XenAPI one carries no password)."""
    try:
        return _check_form(uri if isinstance(uri, str) else "")
    except InvalidValue as bad:
        if not isinstance(uri, str):
            bad.reword(f"invalid host URI {_masked(uri)!r}: expected {_URI_FORMS}")
        raise _problem(source, f"host {label}: {bad}" if label else str(bad)) from None


def is_platform_key(key: object) -> bool:
    """Whether ``key`` can name the platform key that holds the device-model arguments (``args_key``, of the
    run or of one host): ARGS_KEY_RULE, for every source. An empty key made vgpu write a key named "" and call
    every VM's arguments wrong; xe cannot carry '=' (platform:KEY=VALUE) nor find a key holding "; " or ": " in
    the map it prints; dom0's xenstore makes a '/' a path below platform/, where the booted arguments of a
    running VM would never be found."""
    return (isinstance(key, str) and key.isprintable() and key != ""
            and not any(char.isspace() or char in "=/" for char in key))


def check_follow(values: object, uri: str, source: str, label: str) -> tuple[str, ...]:
    """``follow_master``: a list of addresses, networks or host names, for a ``xapi://``/``xapis://`` host."""
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise _problem(source, f"host {label}: follow_master = {_masked(values)!r} must be a list of {_FOLLOW_FORMS}")
    if values and not uri.startswith(("xapi://", "xapis://")):
        raise _problem(source, f"host {label}: follow_master applies to xapi:// and xapis:// hosts only, not {uri}")
    for value in values:
        if not (_is_network(value) or _hostname().match(value)):
            raise _problem(source, f"host {label}: invalid follow_master entry {_masked(value)!r}: expected {_FOLLOW_FORMS}")
    return tuple(values)


@functools.cache
def _hostname() -> re.Pattern[str]:
    import re  # compiled only for a config with follow_master: keeps the one-shot start-up light

    return re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?\Z")


def _is_network(text: str) -> bool:
    import ipaddress  # only for a config with follow_master: keeps the one-shot start-up light

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def from_table(table: object, source: str, settings: Collection[str] = (), base: str | None = None) -> dict[str, HostSpec]:
    """The ``[hosts]`` table of a config file: label → HostSpec, in the file's order. ``settings``: the
    file's top-level setting names; TOML reads one written below ``[hosts]`` as a host, so a host by such a
    name that is refused says where the setting belongs. ``base``: the file's directory, which a relative
    ``sim:`` path is taken from (see :func:`_in_base`)."""
    if not isinstance(table, dict):
        raise _problem(source, f"hosts = {_masked(table)!r} must be a table of LABEL = \"URI\" or LABEL = {{ uri = \"URI\", ... }}")
    specs: dict[str, HostSpec] = {}
    for label, entry in table.items():
        check_label(label, source)
        try:
            specs[label] = _entry(label, entry, source, base)
        except ConfigError as bad:
            if label not in settings:
                raise
            raise _problem(source, f"{str(bad).removeprefix(f'{source}: ')}; {label} is a setting: put it above [hosts]") from None
    check_distinct(specs.values(), source)
    return specs


def _in_base(uri: str, base: str | None) -> str:
    """A relative ``sim:`` path of a config file, taken from the file's directory (``base``): from the working
    directory, a run started elsewhere would open a new, empty host file there and call every VM missing.
    ``--host`` and ``VGPU_HOST`` (no ``base``) keep the working directory, as a command line's paths do."""
    import os.path  # only for a config's hosts: keeps the one-shot start-up light

    path = uri[len("sim:"):] if uri.startswith("sim:") else None
    if base is None or path is None or uri == DEMO_URI or os.path.isabs(path):
        return uri
    return f"sim:{os.path.normpath(os.path.join(base, path))}"  # sim:../hosts/a.json named without its dots


def _entry(label: str, entry: object, source: str, base: str | None = None) -> HostSpec:
    if isinstance(entry, str):
        return HostSpec(label, _in_base(check_uri(entry, source, label), base))
    if not isinstance(entry, dict) or "uri" not in entry:
        raise _problem(source, f"host {label} = {_masked(entry)!r}: expected \"URI\" or {{ uri = \"URI\", ... }}")
    unknown = [key for key in entry if key not in _TABLE_KEYS]
    if unknown:
        raise _problem(source, f"host {label}: unknown setting {_masked(unknown[0])!r}; expected one of {', '.join(_TABLE_KEYS)}")
    uri = _in_base(check_uri(entry["uri"], source, label), base)
    args_key = entry.get("args_key")
    if args_key is not None and not is_platform_key(args_key):
        raise _problem(source, f"host {label}: args_key = {_masked(args_key)!r} must be {ARGS_KEY_RULE}")
    return HostSpec(label, uri, check_follow(entry.get("follow_master", []), uri, source, label), args_key)


def check_distinct(specs: Iterable[HostSpec], source: str) -> None:
    """Two labels for one host would show every VM of it twice, as a conflict: refused, however each URI spells
    the host (sim:a.json and sim:/abs/a.json, xapi://h and xapi://root@H:80/)."""
    specs = list(specs)
    if len(specs) < 2:
        return  # nothing to compare, and nothing imported to spell a lone URI
    seen: dict[str, HostSpec] = {}
    for spec in specs:
        key = _host_key(spec.uri)
        if key in seen:
            first = seen[key]
            spelled = "" if spec.uri == first.uri else f" ({spec.label} writes it {spec.uri})"
            raise _problem(source, f"hosts {first.label} and {spec.label} have the same URI {first.uri}{spelled}; keep one")
        seen[key] = spec


def split_words(value: str) -> list[str]:
    """``VGPU_HOST`` (or config ``host``) as --host words: a list separated by commas, except that one bare
    URI is taken whole (a path may hold a comma). An empty item (``gpu1,,gpu2``, ``gpu1,``) is kept as "", for
    the setting's rule to refuse: it names no host, and is a typo more likely than a list of the others."""
    text = value.strip()
    first = text.split(",", 1)[0].strip()
    if _kind(first)[0] == "uri":
        return [text]
    pieces = text.split(",")
    _refuse_password_cut_at_a_comma(pieces)
    return [word.strip() for word in pieces]


def _refuse_password_cut_at_a_comma(pieces: list[str]) -> None:
    """A password holding a comma (``gpu1=root:se,cret@h``) would be cut in two by the split, and its first
    half shown as an invalid URI ("invalid host URI 'root:se'"): refused whole and masked, as a password is.
    A piece is cut short where its own URI carries no password but the password the rest of the list carries
    begins inside it."""
    for index in range(len(pieces) - 1):
        uri = _kind(pieces[index].strip())[2]
        if not uri or "@" in uri or _carries_password(uri):
            continue
        rest = _kind(",".join(pieces[index:]).strip())[2]
        span = _password_span(rest)
        if span is not None and span[0] <= len(uri):
            _refuse_password(rest)


def _kind(word: str) -> tuple[str, str, str]:
    """("define", label, uri), ("label", label, "") or ("uri", "", uri). A label holds no ':', and every URI does."""
    label, equals, uri = word.partition("=")
    if equals and ":" not in label:
        return "define", label.strip(), uri.strip()
    if ":" in word:
        return "uri", "", word.strip()
    return "label", word.strip(), ""


def select(words: Iterable[str], configured: Mapping[str, HostSpec], source: str,
           base: str | None = None) -> tuple[HostSpec, ...]:
    """The run's hosts from --host-style words (see the module docstring). ``base``: the directory of the config
    file whose ``host`` key gave them, which a relative ``sim:`` path is taken from, as in its ``[hosts]``."""
    words = list(words)
    kinds = [_kind(word) for word in words]
    bare = [uri for kind, _, uri in kinds if kind == "uri"]
    for uri in bare:
        _refuse_password(uri)  # before a sentence below repeats it
    if bare and len(words) > 1:
        raise _bare_uri_among_others(bare, [label for kind, label, _ in kinds if kind != "uri"], source)
    if bare:
        # One host named by its URI, as before fleets: opening it checks the URI (and the one-shot start-up
        # loads no hypervisor code to check it here).
        uri = _in_base(bare[0].strip(), base)
        known = next((spec for spec in configured.values() if spec.uri == uri), None)
        return (known or HostSpec("", uri),)
    specs: dict[str, HostSpec] = {}
    for kind, label, uri in kinds:
        check_label(label, source)
        if label in specs:
            raise _problem(source, f"host {label} is named twice")
        if kind == "define":
            specs[label] = HostSpec(label, _in_base(check_uri(uri, source, label), base))
        elif label in configured:
            specs[label] = configured[label]
        else:
            expected = f"a host of config.toml [hosts] ({', '.join(configured)})" if configured else "a label of config.toml [hosts] (it has none)"
            raise _problem(source, f"unknown host {label!r}: expected {expected}, LABEL=URI, or a URI: {_URI_FORMS}")
    check_distinct(specs.values(), source)
    return tuple(specs.values())


def _bare_uri_among_others(bare: list[str], labels: list[str], source: str) -> VgpuError:
    need = (f"several hosts need labels, as {FLAG} LABEL=URI (or VGPU_HOST=LABEL=URI,LABEL=URI), or LABELs "
            "from config.toml [hosts]")
    if source != FLAG:
        return _problem(source, f"a bare URI ({', '.join(bare)}) among several hosts; {need}")
    # --host is the one global option that may be repeated, but a bare URI must stand alone
    if len(bare) > 1:
        return InvalidValue("host", bare[0], need, sentence=f"{FLAG} given twice with a bare URI ({', '.join(bare)}); {need}")
    allowed = f"name each host as {FLAG} LABEL=URI or a LABEL of config.toml [hosts], or give one {FLAG} URI alone"
    return InvalidValue("host", bare[0], allowed, sentence=(
        f"{FLAG} {bare[0]} is a bare URI, which names the only host of a run: it cannot be mixed with other hosts "
        f"({', '.join(labels)}); {allowed}"))


def words_of(value: Any) -> list[str]:
    """A ``host`` setting as --host words: a list from the command line or a TOML array, else one string."""
    if isinstance(value, (list, tuple)):
        return [str(word) for word in value]
    return split_words(str(value))

"""Where a XenAPI backend connects, and with whose password.

| URI                                        | transport                          | user            |
|--------------------------------------------|------------------------------------|-----------------|
| ``xapi://USER@HOST[:PORT]``                | HTTP                               | USER (or root)  |
| ``xapis://USER@HOST[:PORT][?OPTIONS]``     | HTTPS, certificate verified        | USER (or root)  |
| ``xapi+unix:`` / ``xapi+unix:/PATH``       | xapi's socket on dom0 (default ``/var/lib/xcp/xapi``) | root |

``xapis`` options, named as libvirt names its TLS ones: ``cafile=PATH`` trusts the CA (or the self-signed
certificate) in PATH, which is what an XCP-ng host's default certificate needs; ``no_verify=1`` skips the
check altogether.

The password is never part of the URI: a URI sits on command lines (visible to every user in ``ps``), in
shell history and in config files. It comes from ``VGPU_XAPI_PASSWORD`` or else from a callable the caller
supplies (the shell's reads a private password file named by the config, or asks at the terminal, never on
stdin), is asked for at most once, and is held in a :class:`Secret` that never prints.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from typing import Callable, NoReturn, Sequence, TypedDict

import attrs

from ..errors import ConfigError, InvalidValue
from ..uri_password import carries_password, mask_password

PASSWORD_ENV = "VGPU_XAPI_PASSWORD"
DEFAULT_SOCKET = "/var/lib/xcp/xapi"
DEFAULT_USER = "root"
_FORMS = "xapi://USER@HOST[:PORT], xapis://USER@HOST[:PORT][?cafile=PATH|no_verify=1] or xapi+unix:[/PATH]"
_TRUE, _FALSE = ("1", "yes", "true", "on"), ("0", "no", "false", "off")


@attrs.frozen
class XapiTarget:
    """A parsed XenAPI URI. ``scheme`` is ``http``, ``https`` or ``unix``."""

    scheme: str
    user: str
    host: str = ""
    port: int | None = None
    socket_path: str = ""
    verify: bool = True
    cafile: str | None = None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL the SDK posts to (for the socket, a placeholder: the transport ignores it)."""
        return "http://localhost/" if self.scheme == "unix" else f"{self.scheme}://{self.netloc}/"

    @property
    def display(self) -> str:
        """The URI as a person would write it; used in sentences and as the backend's ``uri``."""
        if self.scheme == "unix":
            return f"xapi+unix:{self.socket_path}"
        return f"{'xapis' if self.scheme == 'https' else 'xapi'}://{self.user}@{self.netloc}"

    @property
    def is_local(self) -> bool:
        return self.scheme == "unix"


def parse_uri(uri: str) -> XapiTarget:
    """Parse a XenAPI URI; a password in it is refused (see the module docstring for why)."""
    if carries_password(uri):  # before urllib, which misses one holding '/', '#' or '?', and before any
        raise InvalidValue(     # other refusal, since those repeat the URI
            "host URI",
            mask_password(uri.strip()),
            "a URI without a password: a password on the command line is visible to every user and stays in "
            f"shell history; set {PASSWORD_ENV} or let vgpu-admin ask for it",
        )
    split = urllib.parse.urlsplit(uri.strip())
    if split.scheme == "xapi+unix":
        return _parse_unix(uri, split)
    if split.scheme not in ("xapi", "xapis"):
        raise InvalidValue("host URI", uri, _FORMS)
    if not split.hostname or split.path not in ("", "/") or split.fragment:
        raise InvalidValue("host URI", uri, _FORMS)
    options = _options(uri, split.query, tls=split.scheme == "xapis")
    return XapiTarget(
        scheme="https" if split.scheme == "xapis" else "http",
        user=urllib.parse.unquote(split.username or DEFAULT_USER),
        host=split.hostname,
        port=_port(uri, split),
        **options,
    )


def _parse_unix(uri: str, split: urllib.parse.SplitResult) -> XapiTarget:
    path = split.path or DEFAULT_SOCKET
    if split.netloc or split.query or split.fragment or not path.startswith("/"):
        raise InvalidValue("host URI", uri, "xapi+unix: or xapi+unix:/ABSOLUTE/PATH/TO/SOCKET")
    return XapiTarget(scheme="unix", user=DEFAULT_USER, socket_path=path)


def _port(uri: str, split: urllib.parse.SplitResult) -> int | None:
    try:
        return split.port
    except ValueError:
        raise InvalidValue("host URI", uri, f"a port between 1 and 65535 ({_FORMS})") from None


class _TlsOptions(TypedDict, total=False):
    """The query options of an ``xapis://`` URI, as XapiTarget's keyword arguments."""

    cafile: str
    verify: bool


def _options(uri: str, query: str, *, tls: bool) -> _TlsOptions:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    options: _TlsOptions = {}
    for key, value in pairs:
        if not tls or key not in ("cafile", "no_verify"):
            raise InvalidValue("host URI option", key, "cafile=PATH or no_verify=1, on xapis:// URIs only")
        if key == "cafile":
            options["cafile"] = value
        elif value.lower() in _TRUE + ("",):
            options["verify"] = False
        elif value.lower() not in _FALSE:
            raise InvalidValue("no_verify", value, "1 or 0")
    return options


def allows(allowed: Sequence[str], address: str) -> bool:
    """Whether ``address`` (as a pool reports its master: an IP address or a host name) is one of ``allowed``:
    the same IP address, inside an allowed network (``10.0.2.0/24``), or the same host name (any case; no
    name is resolved, so a DNS answer cannot widen the list)."""
    import ipaddress

    text = address.strip().strip("[]")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    for entry in allowed:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if ip is None and entry.lower().rstrip(".") == text.lower().rstrip("."):
                return True
            continue
        if ip is not None and ip.version == network.version and ip in network:
            return True
    return False


class Secret:
    """A password that never shows itself in repr(), str(), tracebacks' locals or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the password replaced where a server echoed it back as a value, and only there: an
        occurrence that stands alone, not one inside a longer word (a password ``x`` leaves ``xapi`` alone)."""
        if not self._value or self._value not in text:
            return text
        alone = rf"(?<![^\W_]){re.escape(self._value)}(?![^\W_])"  # no letter, digit or _ on either side
        return re.sub(alone, "***", text)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickled into a file or another process by accident
        raise TypeError("a Secret cannot be pickled")


class Credentials:
    """The user and a password resolved at most once, shared by every session to one host (see reopen)."""

    def __init__(self, target: XapiTarget, prompt: Callable[[], str | None] | None) -> None:
        self.user = target.user
        self._target = target
        self._prompt = prompt
        self._secret: Secret | None = None
        self._lock = threading.Lock()  # reopened hosts on worker threads must not prompt twice

    def secret(self) -> Secret:
        with self._lock:
            if self._secret is None:
                self._secret = Secret(self._resolve())
            return self._secret

    def scrub(self, text: str) -> str:
        return self._secret.scrub(text) if self._secret is not None else text

    def _resolve(self) -> str:
        from_env = os.environ.get(PASSWORD_ENV)
        if from_env is not None:
            return from_env
        if self._target.is_local:
            return ""  # xapi trusts root on its own socket, as xe on dom0 does
        found = self._prompt() if self._prompt is not None else None
        if found is None:  # no callable, or it has no way to ask (no terminal)
            raise ConfigError(
                PASSWORD_ENV,
                f"not set, and there is no prompt to ask for the password of {self._target.display} (no terminal, "
                "and no password_file in the config)",
            )
        return found

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"

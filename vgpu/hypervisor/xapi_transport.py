"""How XenAPI sessions reach xapi: HTTP, HTTPS or dom0's socket, always with timeouts.

The SDK's own transports have none (a host that drops packets would hang a command forever) and its
socket transport (``XenAPI.xapi_local``) spells the socket path as a host name with ``_`` for ``/``, so a
path containing ``_`` cannot be reached. These small transports fix both and are otherwise the stdlib's.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import xml.parsers.expat
import xmlrpc.client
from typing import Any, Callable

from ..errors import ConfigError
from .xapi_uri import XapiTarget

CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 300.0  # one call; a forced stop or a big pool's listing can take minutes on a busy host

# Everything that means "no usable answer from the host", as opposed to an answer that is an error.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    http.client.HTTPException,
    xmlrpc.client.ProtocolError,
    xmlrpc.client.ResponseError,
    xml.parsers.expat.ExpatError,
)


class _TimedConnect(http.client.HTTPConnection):
    """Connect (and do the TLS handshake) within CONNECT_TIMEOUT, then allow each call ``call_timeout``.
    Mixed in before HTTPConnection or HTTPSConnection, whose connect() it wraps."""

    call_timeout: float

    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT
        super().connect()
        self.sock.settimeout(self.call_timeout)


class _HTTPConnection(_TimedConnect, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_TimedConnect, http.client.HTTPSConnection):
    pass


class _UnixConnection(http.client.HTTPConnection):
    socket_path: str
    call_timeout: float

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(CONNECT_TIMEOUT)
        self.sock.connect(self.socket_path)
        self.sock.settimeout(self.call_timeout)


class _Transport(xmlrpc.client.Transport):
    """One keep-alive connection per session, built by ``factory`` (host name and all)."""

    def __init__(self, factory: Callable[[str], _TimedConnect | _UnixConnection], call_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = factory
        self._call_timeout = call_timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        kept_host, kept = self._connection
        if kept is not None and host == kept_host:
            return kept
        chost, self._extra_headers, _ = self.get_host_info(host)
        connection = self._factory(chost)
        connection.call_timeout = self._call_timeout
        self._connection = host, connection
        return connection


def _tls_context(target: XapiTarget) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=target.cafile)
    except (OSError, ssl.SSLError) as exc:  # a missing file, or one that holds no certificate
        raise ConfigError("cafile", f"cannot use {target.cafile} as the CA of {target.display}: {exc}") from None
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _unix_factory(path: str) -> Callable[[str], _UnixConnection]:
    def build(_host: str) -> _UnixConnection:
        connection = _UnixConnection("localhost")
        connection.socket_path = path
        return connection

    return build


def transport_for(target: XapiTarget, call_timeout: float) -> xmlrpc.client.Transport:
    if target.scheme == "unix":
        return _Transport(_unix_factory(target.socket_path), call_timeout)
    if target.scheme == "https":
        context = _tls_context(target)
        return _Transport(lambda chost: _HTTPSConnection(chost, context=context), call_timeout)
    return _Transport(_HTTPConnection, call_timeout)


def new_session(target: XapiTarget, call_timeout: float = CALL_TIMEOUT) -> Any:
    """A logged-out ``XenAPI.Session`` for ``target``."""
    try:
        import XenAPI
    except ImportError:
        raise ConfigError("xapi", "the XenAPI SDK is not installed: pip install 'vgpu-admin[xapi]'") from None
    return XenAPI.Session(target.url, transport=transport_for(target, call_timeout))


def unreachable_reason(exc: BaseException, target: XapiTarget, call_timeout: float) -> str:
    """Why ``target`` gave no usable answer, as the end of 'cannot reach the host: ...'."""
    where = target.display
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {where} could not be verified ({exc.verify_message}); "
            "add ?cafile=PATH with the host's CA (or its self-signed certificate), or ?no_verify=1"
        )
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake with {where} failed ({exc.reason or exc}); does it serve https on that port?"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection; is xapi running there, and is the port right?"
    if isinstance(exc, socket.gaierror):
        return f"the host name of {where} does not resolve ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer in time (connect {CONNECT_TIMEOUT:g} s, call {call_timeout:g} s)"
    if isinstance(exc, FileNotFoundError) and target.is_local:
        return f"there is no xapi socket at {target.socket_path}; is this dom0, and is xapi running?"
    if isinstance(exc, PermissionError):
        return f"no permission to connect to {where}; xapi's socket is for root"
    if isinstance(exc, xmlrpc.client.ProtocolError):
        return f"{where} answered HTTP {exc.errcode} {exc.errmsg}; is it a XenServer/XCP-ng host?"
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return f"{where} closed the connection without answering"
    if isinstance(exc, (xmlrpc.client.ResponseError, xml.parsers.expat.ExpatError)):
        return f"{where} did not answer in XAPI's XML-RPC format"
    return f"{where}: {getattr(exc, 'strerror', None) or exc}"

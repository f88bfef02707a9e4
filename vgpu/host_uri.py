"""The form of a host URI, checked without opening anything or importing a backend.

Every command checks its ``--host`` this way, the ones that never talk to the host included (a typo is
never silently ignored), so this module stays small: ``vgpu-admin list-pools``'s start-up is measured.
"""

from __future__ import annotations

from . import paths
from .errors import InvalidValue
from .paths import DEMO_URI

ALLOWED = "sim:PATH, sim:demo, xe:, xapi://USER@HOST, xapis://USER@HOST, xapi+unix:, or a libvirt URI such as qemu:///system"
_LIBVIRT_SCHEMES = ("qemu", "test", "lxc", "libvirt")


def resolve(uri: str) -> str:
    """The backend URI a setting names: ``sim:demo`` is the demo's host file, anything else as given."""
    return f"sim:{paths.demo_host_file()}" if (uri or "").strip() == DEMO_URI else uri


def check(uri: str) -> str:
    """InvalidValue unless ``uri`` is a host URI in a form that can be opened (``sim:demo`` included)."""
    return check_uri(resolve(uri))


def check_uri(uri: str) -> str:
    """``uri`` stripped, if it names a backend in a form this package can open: InvalidValue otherwise. Only
    the form is checked (nothing is contacted, no SDK imported), so every command can check its ``--host``,
    the ones that never talk to the host included."""
    text = (uri or "").strip() if isinstance(uri, str) else ""
    if not text or "\0" in text:
        raise InvalidValue("host URI", uri, ALLOWED)
    if text.startswith("sim:"):
        target = text[len("sim:"):]
        if target == "demo":
            raise InvalidValue("host URI", uri, "a path after sim: here; vgpu.hosts.open_host resolves sim:demo")
        if not target:
            raise InvalidValue("host URI", uri, ALLOWED)
    elif text.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .hypervisor.xapi_uri import parse_uri  # pure: the SDK is imported only when the host is opened

        parse_uri(text)
    elif not text.startswith("xe:") and text.split(":", 1)[0].split("+", 1)[0] not in _LIBVIRT_SCHEMES:
        raise InvalidValue("host URI", uri, ALLOWED)
    elif not text.startswith("xe:"):
        _refuse_password(text)
    return text


def _refuse_password(uri: str) -> None:
    """A libvirt URI takes no password (libvirt asks for one itself, or ssh uses keys): one written in
    USER:PASSWORD@HOST is refused, and not repeated in the error, before it reaches a repr or a log."""
    authority = uri.partition("://")[2].partition("/")[0]
    user, at, host = authority.rpartition("@")
    if at and ":" in user:
        masked = uri.replace(f"{user}@", f"{user.partition(':')[0]}:***@", 1)
        raise InvalidValue("host URI", masked, "a URI without a password: libvirt asks for one itself (or ssh uses "
                                               "its keys), and a password on the command line is visible to every "
                                               "user and stays in shell history")

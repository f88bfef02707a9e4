"""The form of a host URI, checked without opening anything or importing a backend.

Every command checks its ``--host`` this way, the ones that never talk to the host included (a typo is
never silently ignored), so this module stays small: ``vgpu-admin list-pools``'s start-up is measured.
"""

from __future__ import annotations

from . import paths
from .errors import InvalidValue
from .paths import DEMO_URI
from .uri_password import carries_password, mask_password

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
    refuse_password(text)  # first: every later refusal repeats the URI
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
    return text


def host_key(uri: str) -> str:
    """``uri`` (already checked) spelled one way per host it reaches, as that host's own reader takes it, so that
    two labels for one host can be refused: a simulated host by the real path of its file; a XenAPI one by its
    lower-case host and port (defaults filled in; options and a trailing '/' change no host), whatever its
    scheme and user: xapi:// and xapis:// reach the one XAPI of a host, on its ports 80 and 443, and every
    user logs in to that one XAPI, which lists the same VMs (unlike libvirt's per-user sessions); a libvirt one with
    its scheme and host in lower case and its path as given (libvirt reads qemu:///system/ as another path),
    its default transport to the local daemon (unix) left out; xe: by the xe it runs. Called only with
    several hosts: the one-shot start-up stays light."""
    if uri.startswith("sim:"):
        import os.path  # the sim backend opens the path relative to the working directory, as realpath does

        return f"sim:{os.path.realpath(uri[len('sim:'):])}"
    if uri.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .hypervisor.xapi_uri import parse_uri

        target = parse_uri(uri)
        if target.is_local:
            return f"xapi+unix:{target.socket_path}"
        port = target.port or (443 if target.scheme == "https" else 80)
        # XAPI serves http on 80 and https on 443 alike; any other port may be a tunnel to another host
        return f"xapi://{target.host.lower()}:{'80+443' if port in (80, 443) else port}"
    if uri.startswith("xe:"):
        return f"xe:{uri[len('xe:'):] or 'xe'}"
    return _libvirt_key(uri)


def _libvirt_key(uri: str) -> str:
    scheme, _, rest = uri.partition(":")
    if not rest.startswith("//"):
        return f"{scheme.lower()}:{rest}"
    end = next((index for index, char in enumerate(rest) if index > 1 and char in "/?#"), len(rest))
    user, at, server = rest[2:end].rpartition("@")
    scheme = scheme.lower()
    if not rest[2:end] and scheme.endswith("+unix"):
        scheme = scheme.removesuffix("+unix")  # qemu:///system reaches the local daemon by its socket too
    return f"{scheme}://{user}{at}{server.lower()}{rest[end:]}"


def refuse_password(uri: str) -> None:
    """InvalidValue if ``uri`` is in USER:PASSWORD@HOST form, whatever its scheme, showing it masked: before
    it reaches a repr, a log or a scan's JSON. Cheap, for the URIs nothing else checks before opening them."""
    if not carries_password(uri):
        return
    scheme = uri.partition(":")[0].lower()
    if scheme.split("+", 1)[0] in _LIBVIRT_SCHEMES:
        where = "libvirt asks for one itself (or ssh uses its keys)"
    else:  # xapi:// and its misspellings (XAPI://, https://, xapi+https://): say where its password goes
        from .hypervisor.xapi_uri import PASSWORD_ENV  # only on this refusal: no SDK, but not needed before

        where = f"set {PASSWORD_ENV} (xapi:// hosts) or let vgpu-admin ask for it"
    raise InvalidValue("host URI", mask_password(uri), f"a URI without a password: {where}; a password on the command "
                                                       "line is visible to every user and stays in shell history")

"""Hypervisor backends behind one protocol, chosen by a URI (as libvirt does).

| URI                                   | backend                                      |
|---------------------------------------|----------------------------------------------|
| ``sim:PATH``                          | :class:`~vgpu.hypervisor.sim.SimHost`         |
| ``xe:`` (``xe:/path/to/xe``)          | the xe CLI on dom0 (:mod:`vgpu.hypervisor.xe`) |
| ``xapi://user@host[:port]``, ``xapis://...``, ``xapi+unix:[path]`` | the XenAPI SDK (:mod:`vgpu.hypervisor.xapi`) |
| ``qemu:///system`` and other libvirt URIs | libvirt-python (:mod:`vgpu.hypervisor.libvirt`) |

Backends are imported only when their URI is used, so ``import vgpu`` stays light and a host without the
XenAPI SDK or libvirt-python can still use the others. ``sim:demo`` names the demo's host file, which the
demo module owns: :func:`vgpu.hosts.open_host` resolves it; this package knows only backends.
"""

from __future__ import annotations

from typing import Callable

from ..errors import InvalidValue
from .base import DEFAULT_ARGS_KEY, Hypervisor

SCHEMES = ("sim:", "xe:", "xapi://", "xapis://", "xapi+unix:", "qemu:", "qemu+ssh:", "qemu+unix:", "qemu+tcp:", "qemu+tls:")
_ALLOWED = "sim:PATH, xe:, xapi://USER@HOST, xapi+unix:, or a libvirt URI such as qemu:///system"
_LIBVIRT_SCHEMES = ("qemu", "test", "lxc", "libvirt")


def check_uri(uri: str) -> str:
    """``uri`` stripped, if it names a backend in a form this package can open: InvalidValue otherwise. Only
    the form is checked (nothing is contacted, no SDK imported), so every command can check its ``--host``,
    the ones that never talk to the host included."""
    text = (uri or "").strip() if isinstance(uri, str) else ""
    if not text or "\0" in text:
        raise InvalidValue("host URI", uri, _ALLOWED)
    if text.startswith("sim:"):
        target = text[len("sim:"):]
        if target == "demo":
            raise InvalidValue("host URI", uri, "a path after sim: here; vgpu.hosts.open_host resolves sim:demo")
        if not target:
            raise InvalidValue("host URI", uri, _ALLOWED)
    elif text.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .xapi_uri import parse_uri  # pure: the SDK is imported only when the host is opened

        parse_uri(text)
    elif not text.startswith("xe:") and text.split(":", 1)[0].split("+", 1)[0] not in _LIBVIRT_SCHEMES:
        raise InvalidValue("host URI", uri, _ALLOWED)
    return text


def open_host(
    uri: str,
    *,
    args_key: str = DEFAULT_ARGS_KEY,
    password: Callable[[], str | None] | None = None,
) -> Hypervisor:
    """Connect to the host named by ``uri``.

    ``password`` is called (at most once) when a XenAPI login needs one and VGPU_XAPI_PASSWORD is unset;
    passwords are never taken from the URI, so they never sit on a command line.
    """
    text = check_uri(uri)
    if text.startswith("sim:"):
        from .sim import SimHost

        return SimHost(text[len("sim:"):], args_key=args_key)
    if text == "xe:" or text.startswith("xe:"):
        from .xe import XeHost

        return XeHost(xe_path=text[len("xe:"):] or "xe", args_key=args_key)
    if text.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .xapi import XapiHost

        return XapiHost.from_uri(text, args_key=args_key, password=password)
    from .libvirt import LibvirtHost  # check_uri let only a libvirt scheme through to here

    return LibvirtHost(text)


__all__ = ["Hypervisor", "open_host", "check_uri", "DEFAULT_ARGS_KEY"]

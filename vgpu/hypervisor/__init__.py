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

from typing import Callable, Sequence

from ..errors import InvalidValue
from .base import DEFAULT_ARGS_KEY, Hypervisor

SCHEMES = ("sim:", "xe:", "xapi://", "xapis://", "xapi+unix:", "qemu:", "qemu+ssh:", "qemu+unix:", "qemu+tcp:", "qemu+tls:")
_ALLOWED = "sim:PATH, xe:, xapi://USER@HOST, xapi+unix:, or a libvirt URI such as qemu:///system"


def open_host(
    uri: str,
    *,
    args_key: str = DEFAULT_ARGS_KEY,
    password: Callable[[], str] | None = None,
    follow_master: Sequence[str] = (),
) -> Hypervisor:
    """Connect to the host named by ``uri``.

    ``password`` is called (at most once) when a XenAPI login needs one and VGPU_XAPI_PASSWORD is unset;
    passwords are never taken from the URI, so they never sit on a command line. ``follow_master``: where a
    XenAPI pool member may redirect the login (see :mod:`vgpu.hypervisor.xapi`); xapi:// hosts only.
    """
    text = (uri or "").strip()
    if follow_master and not text.startswith(("xapi://", "xapis://")):
        raise InvalidValue("follow_master", list(follow_master), f"nothing for {uri}: it applies to xapi:// and xapis:// hosts only")
    if text.startswith("sim:"):
        from .sim import SimHost

        target = text[len("sim:"):]
        if target == "demo":
            raise InvalidValue("host URI", uri, "a path after sim: here; vgpu.hosts.open_host resolves sim:demo")
        if not target:
            raise InvalidValue("host URI", uri, _ALLOWED)
        return SimHost(target, args_key=args_key)
    if text == "xe:" or text.startswith("xe:"):
        from .xe import XeHost

        return XeHost(xe_path=text[len("xe:"):] or "xe", args_key=args_key)
    if text.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .xapi import XapiHost

        return XapiHost.from_uri(text, args_key=args_key, password=password, follow_master=follow_master)
    if text.split(":", 1)[0].split("+", 1)[0] in ("qemu", "test", "lxc", "libvirt"):
        from .libvirt import LibvirtHost

        return LibvirtHost(text)
    raise InvalidValue("host URI", uri, _ALLOWED)


__all__ = ["Hypervisor", "open_host", "DEFAULT_ARGS_KEY"]

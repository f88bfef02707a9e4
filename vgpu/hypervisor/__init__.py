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
from ..host_uri import check_uri
from .base import DEFAULT_ARGS_KEY, Hypervisor


def open_host(
    uri: str,
    *,
    args_key: str = DEFAULT_ARGS_KEY,
    password: Callable[[], str | None] | None = None,
    follow_master: Sequence[str] = (),
) -> Hypervisor:
    """Connect to the host named by ``uri``.

    ``password`` is called (at most once) when a XenAPI login needs one and VGPU_XAPI_PASSWORD is unset;
    passwords are never taken from the URI, so they never sit on a command line. ``follow_master``: where a
    XenAPI pool member may redirect the login (see :mod:`vgpu.hypervisor.xapi`); xapi:// hosts only.
    """
    text = check_uri(uri)
    if follow_master and not text.startswith(("xapi://", "xapis://")):
        raise InvalidValue("follow_master", list(follow_master), f"nothing for {uri}: it applies to xapi:// and xapis:// hosts only")
    if text.startswith("sim:"):
        from .sim import SimHost

        return SimHost(text[len("sim:"):], args_key=args_key)
    if text == "xe:" or text.startswith("xe:"):
        from .xe import XeHost

        return XeHost(xe_path=text[len("xe:"):] or "xe", args_key=args_key)
    if text.startswith(("xapi://", "xapis://", "xapi+unix:")):
        from .xapi import XapiHost

        return XapiHost.from_uri(text, args_key=args_key, password=password, follow_master=follow_master)
    from .libvirt import LibvirtHost  # check_uri let only a libvirt scheme through to here

    return LibvirtHost(text)


__all__ = ["Hypervisor", "open_host", "check_uri", "DEFAULT_ARGS_KEY"]

"""Opening the hosts a setting names: every backend URI, ``sim:demo`` (the demo's simulated host), and fleets.

This sits above both :mod:`vgpu.hypervisor` (backends by URI) and :mod:`vgpu.demo` (which owns the demo's
files), so neither has to import the other.

A fleet opens in one call, from labels and URIs or from the settings (``config.toml``'s ``[hosts]``)::

    from vgpu.hosts import open_fleet
    with open_fleet({"gpu1": "xapi://root@pool1-master", "kvm3": "qemu+ssh://root@kvm3/system"}) as fleet:
        report = scan.scan(store, fleet)
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from . import hostspecs, hypervisor
from .config import Settings
from .errors import ConfigError
from .host_uri import check, resolve
from .hostspecs import HostSpec
from .hypervisor import codes
from .hypervisor.base import DEFAULT_ARGS_KEY, Hypervisor
from .hypervisor.fleet import DEFAULT_PARALLEL, Fleet

# A fleet's password callback is told which host asks: its label and URI ("gpu1 (xapi://root@pool1)"), or
# for a single host, its URI.
PasswordFor = Callable[[str], "str | None"]

__all__ = ["check", "open_configured", "open_fleet", "open_host", "resolve"]


def open_host(uri: str, *, args_key: str = DEFAULT_ARGS_KEY, password: Callable[[], str | None] | None = None,
              follow_master: Iterable[str] = ()) -> Hypervisor:
    """Connect to the host named by ``uri`` (see :func:`vgpu.hypervisor.open_host`; ``sim:demo`` too)."""
    return hypervisor.open_host(resolve(uri), args_key=args_key, password=password, follow_master=tuple(follow_master))


def open_fleet(
    hosts: Mapping[str, str | HostSpec] | Iterable[HostSpec],
    *,
    args_key: str = DEFAULT_ARGS_KEY,
    password: PasswordFor | None = None,
    parallel: int = DEFAULT_PARALLEL,
    elsewhere: Iterable[str] | Mapping[str, str] = (),
    narrowed_by: str = codes.NARROWED_BY_FLAG,
) -> Fleet:
    """A fleet of the given hosts: ``{"label": "URI", ...}`` (or HostSpecs, as the settings hold them).
    Labels and URIs are checked first (InvalidValue/ConfigError naming the bad one); each host connects on
    first use. ``password(who)`` is asked for a XenAPI host's password when VGPU_XAPI_PASSWORD is unset."""
    specs = _specs(hosts)
    members: dict[str, Hypervisor] = {}
    try:
        for spec in specs:
            members[spec.label] = _open_spec(spec, args_key, password)
    except BaseException:
        for host in members.values():
            host.close()
        raise
    return Fleet(members, parallel=parallel, elsewhere=elsewhere, narrowed_by=narrowed_by)


def open_configured(settings: Settings, *, password: PasswordFor | None = None) -> Hypervisor:
    """The hosts the settings name: one host as it always was (a single URI with no label), else a Fleet of
    the chosen hosts, knowing the fleet's other configured hosts (``--host LABEL`` narrows)."""
    hosts = settings.hosts or (HostSpec("", settings.host),)
    if len(hosts) == 1 and not hosts[0].label:
        return _open_spec(hosts[0], settings.args_key, password)
    return open_fleet(hosts, args_key=settings.args_key, password=password, parallel=settings.parallel_hosts,
                      elsewhere=settings.left_out_uris, narrowed_by=settings.narrowed_by)


def _specs(hosts: Mapping[str, str | HostSpec] | Iterable[HostSpec]) -> list[HostSpec]:
    source = "open_fleet"
    if isinstance(hosts, Mapping):
        specs = [value if isinstance(value, HostSpec) else HostSpec(label, value) for label, value in hosts.items()]
    else:
        specs = list(hosts)
    if not specs:
        raise ConfigError(source, "a fleet needs at least one host")
    checked = {}
    for spec in specs:
        if spec.label or len(specs) > 1:
            hostspecs.check_label(spec.label, source)
        if spec.label in checked:
            raise ConfigError(source, f"host {spec.label} is named twice")
        checked[spec.label] = spec.replace(uri=hostspecs.check_uri(spec.uri, source, spec.label))
    hostspecs.check_distinct(checked.values(), source)
    return list(checked.values())


def _open_spec(spec: HostSpec, args_key: str, password: PasswordFor | None) -> Hypervisor:
    who = f"{spec.label} ({spec.uri})" if spec.label else spec.uri
    ask = None if password is None else (lambda: password(who))
    return open_host(spec.uri, args_key=spec.args_key or args_key, password=ask, follow_master=spec.follow_master)

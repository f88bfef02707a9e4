"""From the settings to what a command or a script works with: the database, the host(s) and the stop policy.

One step, shared by ``vgpu-admin`` (:mod:`shell.context`) and :func:`vgpu.connect`, so that both open the
same things the same way: the URIs checked before anything is opened (a typo in a host is refused even by a
command that never talks to the host), the demo seeded on first use, the default database's folder made
private, a XenAPI password read from the config's ``password_file`` before anyone is asked.

Only light modules are imported at the top: ``vgpu-admin list-pools`` goes through here and its start-up is
measured. The hypervisor layer is imported by :func:`open_hosts` alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from . import paths, trust
from .config import Settings
from .errors import InvalidValue
from .store import Store

if TYPE_CHECKING:  # annotations only: the start-up path imports neither
    from .hypervisor.base import Hypervisor
    from .power import StopPolicy

# Asked for a XenAPI host's password, told which host asks: its URI, or in a fleet its label and URI.
AskPassword = Callable[[str], "str | None"]


def check_hosts(settings: Settings) -> None:
    """Refuse a host URI that could not be opened, before anything is (a fleet's labelled hosts were checked
    as the settings were read); the error says where the URI came from when it was not given explicitly."""
    from . import host_uri  # light, but not needed before the settings are read

    try:
        for spec in settings.hosts or ():
            host_uri.check(spec.uri)
    except InvalidValue as error:
        source = settings.sources.get("host", "flag")
        if source != "flag":
            where = "VGPU_HOST" if source == "environment" else source
            error.reword(f"{error.sentence} (the host comes from {where})")
        raise


def prepare_files(settings: Settings) -> None:
    """What must exist before the database or the host opens: the demo's files (seeded on first use), and
    the default database's folder (private)."""
    if settings.is_demo and not paths.demo_seeded():
        from . import demo  # seeding needs the simulated host; most runs find it seeded

        demo.ensure()
    if settings.sources.get("db") == "default":
        paths.ensure_dir(os.path.dirname(settings.db))


def open_store(settings: Settings) -> Store:
    """The database the settings name (created and migrated if needed)."""
    prepare_files(settings)
    return Store(settings.db)


def password_source(settings: Settings, ask: AskPassword | None) -> AskPassword:
    """Where a XenAPI login gets its password when VGPU_XAPI_PASSWORD is unset: the config's password_file
    (checked: owner-only, see :mod:`vgpu.trust`), else ``ask(who)``; None without either (the backend then
    raises the documented ConfigError). Called only when a login needs it; the password is never stored here."""

    def password(who: str) -> str | None:
        if settings.password_file:
            return trust.read_secret(settings.password_file)
        return ask(who) if ask is not None else None

    return password


def open_hosts(settings: Settings, ask: AskPassword | None = None) -> Hypervisor:
    """The host(s) the settings name: one host, or a Fleet (see :func:`vgpu.hosts.open_configured`)."""
    from .hosts import open_configured  # here: only what talks to the host pays for the hypervisor layer

    prepare_files(settings)
    return open_configured(settings, password=password_source(settings, ask))


def stop_policy(settings: Settings, clean_timeout: float | None = None) -> StopPolicy:
    """How a VM is stopped under these settings (clean_timeout, force_after_timeout), with a call's own
    deadline when it gives one."""
    from .power import StopPolicy

    timeout = settings.clean_timeout if clean_timeout is None else clean_timeout
    return StopPolicy(timeout, settings.force_after_timeout)

"""Settings, read once, in a fixed order, into one object.

Precedence, highest first: explicit values (command-line flags), environment (``VGPU_DB``, ``VGPU_HOST``,
``VGPU_CLEAN_TIMEOUT``),
the user's config (``$XDG_CONFIG_HOME/vgpu/config.toml``), the system config (``/etc/vgpu/config.toml``,
or ``$VGPU_SYSTEM_CONFIG``), defaults. The default host is ``xe:`` on a dom0 (xe on PATH) and the demo's
simulated host elsewhere; the default DB is the demo's own with ``sim:demo`` and
``$XDG_DATA_HOME/vgpu/vgpu.db`` otherwise. A dom0 install sets ``db = "/var/lib/vgpu/vgpu.db"`` in the
system config.

Config file keys::

    db = "/var/lib/vgpu/vgpu.db"
    host = "xe:"
    args_key = "device-model-args"   # some hosts read "device_model_args"
    clean_timeout = 120              # seconds to wait for a clean shutdown (per call: --clean-timeout)
    force_after_timeout = true       # then force the VM off
    password_file = "/etc/vgpu/xapi-password"   # an xapi:// host's password: first line, file mode 0600
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import attrs

from . import paths, trust
from .basics import DEFAULT_ARGS_KEY  # not from hypervisor.base: settings load no hypervisor code
from .errors import ConfigError, InvalidValue

DEMO_URI = "sim:demo"
ENV_DB = "VGPU_DB"
ENV_HOST = "VGPU_HOST"
ENV_CLEAN_TIMEOUT = "VGPU_CLEAN_TIMEOUT"
ENV_SYSTEM_CONFIG = "VGPU_SYSTEM_CONFIG"
_KEYS = {"db": str, "host": str, "args_key": str, "clean_timeout": (int, float), "force_after_timeout": bool,
         "password_file": str}


@attrs.frozen
class Settings:
    db: str
    host: str
    args_key: str = DEFAULT_ARGS_KEY
    clean_timeout: float = 120.0
    force_after_timeout: bool = True
    password_file: str | None = None  # read (and checked: vgpu.trust) only when an xapi:// login needs it
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False)  # where each value came from

    @property
    def is_demo(self) -> bool:
        return self.host == DEMO_URI


def _read_toml(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    # A config file names the command run for the host: only one nobody else can change is read (vgpu.trust).
    trust.check_file(path, "config file")
    import tomllib  # only when a config file exists: keeps the one-shot start-up light

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, f"cannot read config file: {exc}") from exc
    for key, value in data.items():
        if key not in _KEYS:
            raise ConfigError(path, f"unknown setting {key!r}; expected one of {', '.join(_KEYS)}")
        if not isinstance(value, _KEYS[key]) or (key == "clean_timeout" and isinstance(value, bool)):
            raise ConfigError(path, f"setting {key} = {value!r} has the wrong type")
        if key == "password_file" and not os.path.isabs(value):
            raise ConfigError(path, f"setting password_file = {value!r} must be an absolute path")
    return data


def load(explicit: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting from its sources (see the module docstring)."""
    env = os.environ if environ is None else environ
    system_path = env.get(ENV_SYSTEM_CONFIG) or paths.SYSTEM_CONFIG
    layers = [
        ("flag", {k: v for k, v in (explicit or {}).items() if v is not None}),
        ("environment", _from_environment(env)),
        (paths.user_config(), _read_toml(paths.user_config())),
        (system_path, _read_toml(system_path)),
    ]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if key not in values:
                values[key], sources[key] = value, source
    if "host" not in values:
        values["host"], sources["host"] = default_uri(), "default"
    if "db" not in values:
        values["db"], sources["db"] = _default_db(values["host"]), "default"
    values["clean_timeout"] = float(values.get("clean_timeout", 120.0))
    return Settings(sources=sources, **values)


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {k: v for k, v in (("db", env.get(ENV_DB)), ("host", env.get(ENV_HOST))) if v}
    timeout = env.get(ENV_CLEAN_TIMEOUT)
    if timeout:
        from .values import parse_seconds  # only when set: list-pools, whose start-up is measured, parses no input

        try:
            found["clean_timeout"] = parse_seconds("clean timeout", timeout)
        except InvalidValue as bad:
            raise ConfigError(ENV_CLEAN_TIMEOUT, str(bad)) from None
    return found


def default_uri() -> str:
    """``xe:`` on a XCP-ng/XenServer dom0 (where xe is on PATH), else the demo's simulated host."""
    import shutil  # only when no host is set: shutil imports the compression modules, a cost on every start-up

    return "xe:" if shutil.which("xe") else DEMO_URI


def _default_db(host: str) -> str:
    return paths.demo_db() if host == DEMO_URI else paths.default_db()

"""Settings, read once, in a fixed order, into one object.

Precedence, highest first: explicit values (command-line flags), environment (``VGPU_DB``, ``VGPU_HOST``,
``VGPU_CLEAN_TIMEOUT``),
the user's config (``$XDG_CONFIG_HOME/vgpu/config.toml``), the system config (``/etc/vgpu/config.toml``,
or ``$VGPU_SYSTEM_CONFIG``), defaults. The default host is ``xe:`` on a dom0 (xe on PATH) and the demo's
simulated host elsewhere; the default DB is the demo's own with ``sim:demo`` and
``$XDG_DATA_HOME/vgpu/vgpu.db`` otherwise. A dom0 install sets ``db = "/var/lib/vgpu/vgpu.db"`` in the
system config.

Config file keys::

    db = "/var/lib/vgpu/vgpu.db"     # (a relative path is from this file's directory)
    host = "xe:"                     # one host; or a label (or list of labels) of [hosts] below
                                     # (a relative sim: path, here as in [hosts], is from this file's directory)
    args_key = "device-model-args"   # some hosts read "device_model_args"
    clean_timeout = 120              # seconds to wait for a clean shutdown (per call: --clean-timeout)
    force_after_timeout = true       # then force the VM off
    password_file = "/etc/vgpu/xapi-password"   # an xapi:// host's password: first line, file mode 0600
    parallel_hosts = 16              # a fleet: how many hosts are asked at once

    [hosts]                          # a fleet: several hosts, each with a label (see vgpu.hostspecs)
    gpu1 = "xapi://root@pool1-master"
    kvm3 = { uri = "qemu+ssh://root@kvm3/system" }
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, cast

from . import hostspecs, paths, trust
from .basics import DEFAULT_ARGS_KEY  # not from hypervisor.base: settings load no hypervisor code
from .errors import ConfigError, InvalidValue
from .hostspecs import HostSpec

DEMO_URI = paths.DEMO_URI
ENV_DB = "VGPU_DB"
ENV_HOST = "VGPU_HOST"
ENV_CLEAN_TIMEOUT = "VGPU_CLEAN_TIMEOUT"
ENV_SYSTEM_CONFIG = "VGPU_SYSTEM_CONFIG"
_KEYS: dict[str, type | tuple[type, ...]] = {"db": str, "host": (str, list), "hosts": dict, "args_key": str, "clean_timeout": (int, float),
         "force_after_timeout": bool, "parallel_hosts": int, "password_file": str}
DEFAULT_PARALLEL_HOSTS = 16


class Settings:
    """The settings, read once; they do not change. ``host`` is the one host's URI, or the labels of a fleet
    joined by commas; ``hosts`` are the run's hosts (one for a single host, labelled "" when named by its URI
    alone); ``configured`` every host of ``[hosts]`` (and of --host LABEL=URI), of which ``--host LABEL`` may
    have chosen a few. ``sources`` says where each value came from (not part of equality).

    A plain class, not attrs: building an attrs class compiles its methods, about a millisecond of every
    one-shot command's start-up, which is measured (bench/cold_start.py)."""

    __slots__ = ("db", "host", "args_key", "clean_timeout", "force_after_timeout", "password_file", "hosts",
                 "configured", "parallel_hosts", "sources")
    _COMPARED = __slots__[:-1]

    db: str
    host: str
    args_key: str
    clean_timeout: float
    force_after_timeout: bool
    password_file: str | None  # read (and checked: vgpu.trust) only when an xapi:// login needs it
    hosts: tuple[HostSpec, ...]
    configured: tuple[HostSpec, ...]
    parallel_hosts: int
    sources: Mapping[str, str]

    def __init__(self, db: str, host: str, args_key: str = DEFAULT_ARGS_KEY, clean_timeout: float = 120.0,
                 force_after_timeout: bool = True, password_file: str | None = None,
                 hosts: tuple[HostSpec, ...] = (), configured: tuple[HostSpec, ...] = (),
                 parallel_hosts: int = DEFAULT_PARALLEL_HOSTS, sources: Mapping[str, str] | None = None) -> None:
        values = (db, host, args_key, clean_timeout, force_after_timeout, password_file, tuple(hosts),
                  tuple(configured), parallel_hosts, dict(sources or {}))
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"settings are read once and do not change (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Settings:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._COMPARED)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self._COMPARED))

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{name}={getattr(self, name)!r}' for name in self.__slots__)})"

    @property
    def is_demo(self) -> bool:
        return self.host == DEMO_URI

    @property
    def narrowed_by(self) -> str:
        """What chose this run's hosts, as a sentence about the configured hosts it leaves out names it:
        ``--host``, ``VGPU_HOST``, or ``host = in PATH`` (a config file's ``host``)."""
        source = self.sources.get("host", "flag")
        if source == "flag":
            return hostspecs.FLAG
        if source == "environment":
            return hostspecs.ENVIRONMENT
        return f"host = in {source}"  # a config file's path (as vgpu.hypervisor.codes.widen_advice reads it)

    @property
    def configured_labels(self) -> tuple[str, ...]:
        """Every host label this run configures: its own hosts and those of ``[hosts]`` it leaves out (a host
        named by its URI alone has no label). What ``forget-host`` refuses to forget."""
        return tuple(dict.fromkeys(spec.label for spec in (*self.hosts, *self.configured) if spec.label))

    @property
    def configured_uris(self) -> dict[str, str]:
        """:attr:`configured_labels` with each host's URI (label -> URI): what lets ``forget-host`` tell a label
        remembered for one of them under another name (a rename) from a host retired for good."""
        uris: dict[str, str] = {}
        for spec in (*self.hosts, *self.configured):
            if spec.label:
                uris.setdefault(spec.label, spec.uri)
        return uris

    @property
    def left_out_uris(self) -> dict[str, str]:
        """The configured hosts this run leaves out (``--host LABEL`` narrows), label -> URI: a Fleet's
        ``elsewhere`` (:func:`vgpu.hosts.open_configured`)."""
        chosen = {spec.label for spec in self.hosts}
        return {spec.label: spec.uri for spec in self.configured if spec.label not in chosen}

    @property
    def hosts_named(self) -> str:
        """The run's hosts as the shell names them (its toolbar, its refusal of a line's --host): their labels,
        comma-separated, as --host or VGPU_HOST would name them, one label alone too; the URI of one host named
        by it alone, which has no label."""
        labels = [spec.label for spec in self.hosts]
        return ",".join(labels) if labels and all(labels) else self.host

    @property
    def is_fleet(self) -> bool:
        """More than one host in this run: outputs name each VM's host."""
        return len(self.hosts) > 1


def _read_toml(path: str) -> dict[str, Any]:
    # A config file names the command run for the host: only one nobody else can change is read (vgpu.trust).
    # One that is not there (or was just removed, as some editors do before writing it anew) is no settings.
    try:
        if trust.check_file_if_present(path, "config file") is None:
            return {}
    except PermissionError:  # a directory above it (/etc/vgpu, 0700) lets this user not even look
        raise ConfigError(path, "cannot read config file: permission denied") from None
    except NotADirectoryError as exc:  # XDG_CONFIG_HOME or VGPU_SYSTEM_CONFIG names a file as a directory
        raise ConfigError(path, f"cannot read config file: {exc.filename} is not a directory") from None
    import tomllib  # only when a config file exists: keeps the one-shot start-up light

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib lets the decoder's ValueError through
        raise ConfigError(path, f"cannot read config file: it is not UTF-8 text "
                                f"(byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, f"cannot read config file: {exc}") from exc
    for key, value in data.items():
        if key not in _KEYS:
            raise ConfigError(path, f"unknown setting {_shown(key)}; expected one of {', '.join(_KEYS)}")
        if not isinstance(value, _KEYS[key]) or (key in ("clean_timeout", "parallel_hosts") and isinstance(value, bool)):
            raise ConfigError(path, f"setting {key} = {_shown(value)} has the wrong type")
        if key == "password_file":  # a str: its type is checked above
            value = os.path.expanduser(cast(str, value))  # ~/... as ssh reads it in its config
        if key in CHECKED:
            data[key] = _checked_in_file(path, key, value)
    if data.get("db"):  # an empty one is refused on reading (check_setting)
        # ~/... as ssh reads it; a relative path from this file's directory, as a relative sim: path in it is,
        # not from wherever the command runs (which made a new, empty database there)
        data["db"] = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(data["db"]))
    if "hosts" in data:
        data["hosts"] = hostspecs.from_table(data["hosts"], path, settings=[key for key in _KEYS if key != "hosts"],
                                            base=os.path.dirname(os.path.abspath(path)))
    return data


def _checked_in_file(path: str, key: str, value: object) -> Any:
    """check_setting for a config file's value: refused naming the file and the key."""
    try:
        return check_setting(key, value)
    except InvalidValue as bad:
        raise ConfigError(path, f"setting {key} = {_shown(value)} must be {bad.allowed}") from None


def check_setting(key: str, value: object) -> Any:
    """``value`` as the settings hold it, or an InvalidValue (field ``key``) naming what is allowed: the one
    rule for a key, whichever source gives it (a config file, vgpu.connect())."""
    if key == "clean_timeout":
        from .values import parse_seconds  # only when set: list-pools, whose start-up is measured, parses no input

        return parse_seconds(key, value)
    allowed, holds = _RULES[key]
    if not holds(value):
        raise InvalidValue(key, value, allowed)
    return value


# What each setting allows and the test its value must pass; clean_timeout's is values.parse_seconds.
_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    # An empty db or host would not fall back to the default: "" is the working directory, and no host at all.
    "db": ("the path of a database file", lambda value: isinstance(value, str) and value.strip() != ""),
    "host": ("a host URI such as xe: or sim:PATH, a label of [hosts], or a list of labels",
             lambda value: (words := hostspecs.words_of(value)) != [] and all(word.strip() for word in words)),
    "args_key": (hostspecs.ARGS_KEY_RULE, hostspecs.is_platform_key),
    "force_after_timeout": ("True or False", lambda value: isinstance(value, bool)),
    "password_file": ("an absolute path", lambda value: isinstance(value, str) and os.path.isabs(value)),
    "parallel_hosts": ("a whole number of at least 1",
                       lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 1),
}
CHECKED = frozenset(("clean_timeout", *_RULES))  # the settings check_setting takes


def load(explicit: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting from its sources (see the module docstring)."""
    env = os.environ if environ is None else environ
    system_path = _system_config_path(env)
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
    configured = values.pop("hosts", {})
    values["hosts"] = _chosen_hosts(values, sources, configured)
    values["configured"] = _every_host(configured, values["hosts"])
    values["host"] = _host_text(values["hosts"])
    if "db" in values:  # ~/... is the user's home, from --db=~/... and VGPU_DB too (a config file's: see _read_toml)
        values["db"] = os.path.expanduser(values["db"])
    else:
        values["db"], sources["db"] = _default_db(values["host"]), "default"
    values["clean_timeout"] = float(values.get("clean_timeout", 120.0))
    return Settings(sources=sources, **values)


def _chosen_hosts(values: dict[str, Any], sources: dict[str, str], configured: dict[str, HostSpec]) -> tuple[HostSpec, ...]:
    """The run's hosts: the first layer naming ``host`` chooses; else every configured host; else the default."""
    if "host" in values:
        source = {"flag": hostspecs.FLAG, "environment": hostspecs.ENVIRONMENT}.get(sources["host"], sources["host"])
        # A config file's host = takes a relative sim: path from the file's directory, as its [hosts] does.
        base = None if source in (hostspecs.FLAG, hostspecs.ENVIRONMENT) else os.path.dirname(os.path.abspath(source))
        return hostspecs.select(hostspecs.words_of(values["host"]), configured, source, base)
    if configured:
        sources["host"] = sources["hosts"]
        return tuple(configured.values())
    sources["host"] = "default"
    return (HostSpec("", default_uri()),)


def _every_host(configured: dict[str, HostSpec], chosen: tuple[HostSpec, ...]) -> tuple[HostSpec, ...]:
    every = dict(configured)
    every.update((spec.label, spec) for spec in chosen if spec.label)
    return tuple(every.values())


def _host_text(hosts: tuple[HostSpec, ...]) -> str:
    """One host's URI; a fleet's labels, comma-separated (as VGPU_HOST would name them)."""
    return hosts[0].uri if len(hosts) == 1 else ",".join(spec.label for spec in hosts)


# Each environment variable: the setting it gives, and that setting's name in its error.
_ENVIRONMENT = ((ENV_DB, "db", "database path"), (ENV_HOST, "host", "host"),
                (ENV_CLEAN_TIMEOUT, "clean_timeout", "clean timeout"))


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    # Set is set, even to "": VGPU_DB=$TYPO names no database, and must not quietly mean the default one (as
    # --db= and db = "" do not); unsetting the variable is how to ask for the default.
    return {key: _checked_in_environment(variable, key, what, env[variable])
            for variable, key, what in _ENVIRONMENT if variable in env}


def _system_config_path(env: Mapping[str, str]) -> str:
    """The system config's path: $VGPU_SYSTEM_CONFIG when set (empty is refused, as for VGPU_DB), else /etc's."""
    path = env.get(ENV_SYSTEM_CONFIG)
    if path is None:
        return paths.SYSTEM_CONFIG
    if not path.strip():
        raise ConfigError(ENV_SYSTEM_CONFIG, f"invalid config file path {path!r}: expected the path of a config file")
    return path


def _checked_in_environment(variable: str, key: str, what: str, value: str) -> Any:
    """check_setting for an environment variable's value: refused naming the variable."""
    try:
        return check_setting(key, value)
    except InvalidValue as bad:
        raise ConfigError(variable, f"invalid {what} {_shown(value)}: expected {bad.allowed}") from None


def _shown(value: object) -> str:
    """A refused setting's value (or name) as its sentence repeats it: with any password in it masked, even
    one its check found only in part (a host's cut at a comma of a list), or in a value of the wrong type or
    setting (host = { uri = "xapi://root:PW@h" }, hosts = "xapi://root:PW@h")."""
    from .uri_password import mask_passwords  # only on a refusal: the one-shot start-up stays light

    return repr(mask_passwords(value))


def default_uri() -> str:
    """``xe:`` on a XCP-ng/XenServer dom0 (where xe is on PATH), else the demo's simulated host."""
    return "xe:" if _on_path("xe") else DEMO_URI


def _on_path(program: str) -> bool:
    """Whether an executable file ``program`` is in a folder of PATH: shutil.which's answer for a plain name,
    without importing shutil (it imports the compression modules, a cost on every start with no host set)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or os.curdir, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return True
    return False


def _default_db(host: str) -> str:
    return paths.demo_db() if host == DEMO_URI else paths.default_db()

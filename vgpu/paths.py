"""Where vgpu keeps its files, following the XDG base directory spec (so tests can redirect every one)."""

from __future__ import annotations

import os

from .errors import ConfigError

SYSTEM_CONFIG = "/etc/vgpu/config.toml"
DEMO_URI = "sim:demo"  # the demo's simulated host, whose files live in demo_dir()


def _xdg(variable: str, fallback: str) -> str:
    value = os.environ.get(variable, "")
    # The spec says relative paths in XDG variables are invalid and must be ignored.
    if not value or not os.path.isabs(value):
        value = os.path.join(os.path.expanduser("~"), fallback)
    return os.path.join(value, "vgpu")


def data_dir() -> str:
    return _xdg("XDG_DATA_HOME", ".local/share")


def config_dir() -> str:
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_dir() -> str:
    return _xdg("XDG_STATE_HOME", ".local/state")


def user_config() -> str:
    return os.path.join(config_dir(), "config.toml")


def default_db() -> str:
    return os.path.join(data_dir(), "vgpu.db")


def ensure_dir(path: str) -> str:
    """Create a private directory, and any missing parent, if missing (each 0700, whatever the umask lets
    makedirs give the parents); returns it. A file where one of them belongs is a ConfigError."""
    missing = []
    directory = os.path.abspath(path)
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not os.path.isdir(directory):  # a file (or a symlink to nothing) where the directory belongs
                raise ConfigError(path, f"cannot create directory: {directory} is not a directory") from None
            # else made meanwhile by another process
    return path


def demo_dir() -> str:
    """Where the simulated demo host (sim:demo) keeps its host file and database."""
    return os.path.join(data_dir(), "demo")


def demo_host_file() -> str:
    return os.path.join(demo_dir(), "host.json")


def demo_db() -> str:
    return os.path.join(demo_dir(), "vgpu.db")


def demo_seeded() -> bool:
    return os.path.exists(demo_host_file()) and os.path.exists(demo_db())

"""Opening the host a setting names: every backend URI, plus ``sim:demo``, the demo's simulated host.

This sits above both :mod:`vgpu.hypervisor` (backends by URI) and :mod:`vgpu.demo` (which owns the demo's
files), so neither has to import the other.
"""

from __future__ import annotations

from typing import Callable

from . import hypervisor, paths
from .config import DEMO_URI
from .hypervisor.base import DEFAULT_ARGS_KEY, Hypervisor


def resolve(uri: str) -> str:
    """The backend URI a setting names: ``sim:demo`` is the demo's host file, anything else as given."""
    return f"sim:{paths.demo_host_file()}" if (uri or "").strip() == DEMO_URI else uri


def check(uri: str) -> str:
    """InvalidValue unless ``uri`` is a host URI in a form that can be opened (``sim:demo`` included)."""
    return hypervisor.check_uri(resolve(uri))


def open_host(uri: str, *, args_key: str = DEFAULT_ARGS_KEY, password: Callable[[], str | None] | None = None) -> Hypervisor:
    """Connect to the host named by ``uri`` (see :func:`vgpu.hypervisor.open_host`; ``sim:demo`` too)."""
    return hypervisor.open_host(resolve(uri), args_key=args_key, password=password)

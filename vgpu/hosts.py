"""Opening the host a setting names: every backend URI, plus ``sim:demo``, the demo's simulated host.

This sits above both :mod:`vgpu.hypervisor` (backends by URI) and :mod:`vgpu.demo` (which owns the demo's
files), so neither has to import the other.
"""

from __future__ import annotations

from typing import Callable

from . import hypervisor
from .host_uri import check, resolve
from .hypervisor.base import DEFAULT_ARGS_KEY, Hypervisor

__all__ = ["check", "open_host", "resolve"]


def open_host(uri: str, *, args_key: str = DEFAULT_ARGS_KEY, password: Callable[[], str | None] | None = None) -> Hypervisor:
    """Connect to the host named by ``uri`` (see :func:`vgpu.hypervisor.open_host`; ``sim:demo`` too)."""
    return hypervisor.open_host(resolve(uri), args_key=args_key, password=password)

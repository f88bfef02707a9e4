"""Errors of the command line itself (the library's errors all derive from vgpu.errors.VgpuError)."""

from __future__ import annotations


class UsageError(Exception):
    """The command line is malformed: unknown command or option, missing or repeated option (exit 2)."""

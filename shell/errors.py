"""Errors of the command line itself (the library's errors all derive from vgpu.errors.VgpuError)."""

from __future__ import annotations


class UsageError(Exception):
    """The command line is malformed: unknown command or option, missing or repeated option (exit 2)."""


class OutputFailed(Exception):
    """Our standard output could not be written (a full disk, /dev/full): the system's reason. Not a bug, and
    not the database's or the host's failure, so it is not reported as one (exit 1)."""

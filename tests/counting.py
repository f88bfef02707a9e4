"""A proxy that records every call made to the object behind it (to prove "one hypervisor call per scan")."""

from __future__ import annotations


class CountingHost:
    """Counts every call made to the host behind it."""

    def __init__(self, host) -> None:
        self.host = host
        self.calls: list[str] = []

    def __getattr__(self, name):
        real = getattr(self.host, name)
        if not callable(real):
            return real

        def counted(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)

        return counted

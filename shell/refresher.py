"""Rebuild the shell's NameCache in the background and swap it in atomically (after pgcli's
completion_refresher).

The build runs on its own thread with its own Store and host connection (``reopen()``): a Store must not
be used by two threads at once, and a slow host must never stall typing. Readers take ``cache`` and keep
that one snapshot; the swap is a single reference assignment under the lock, so a reader sees the old
snapshot or the new one, never a mix. Requests that arrive while a build runs coalesce into one more build
afterwards (the running build may have read the DB before the change that prompted the request).
"""

from __future__ import annotations

import threading
from typing import Callable

from . import names

Builder = Callable[[object, object], names.NameCache]


class Refresher:
    def __init__(
        self,
        store,
        host,
        *,
        build: Builder = names.build,
        on_swap: Callable[[], None] | None = None,
        initial: names.NameCache = names.EMPTY,
    ) -> None:
        self._store = store  # only reopen() is called on these, never a query: they belong to the shell's thread
        # (None: the DB could not be opened; builds then report db_ok=False)
        self._host = host  # None: unreachable or not configured; names then come from the DB alone
        self._build = build
        self._on_swap = on_swap or (lambda: None)
        self._lock = threading.Lock()
        self._cache = initial
        self._running = False
        self._again = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None  # why the last build failed, for the toolbar and tests

    @property
    def cache(self) -> names.NameCache:
        with self._lock:
            return self._cache

    @property
    def refreshing(self) -> bool:
        with self._lock:
            return self._running

    def request(self) -> None:
        """Start a rebuild, or (if one is running) make sure one more follows it."""
        with self._lock:
            if self._closed:
                return
            if self._running:
                self._again = True
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name="vgpu-names", daemon=True)
            thread = self._thread
        thread.start()
        self._notify()  # the toolbar shows "refreshing…" now

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current (and any coalesced) build; True when none is running."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.refreshing

    def close(self, timeout: float = 1.0) -> None:
        """No more builds or swaps; wait briefly for a running one (it is a daemon: it cannot hold up exit)."""
        with self._lock:
            self._closed = True
            self._again = False
        self.wait(timeout)

    def _run(self) -> None:
        while True:
            cache = self._build_once()
            with self._lock:
                if cache is not None and not self._closed:
                    self._cache = cache
                more = self._again and not self._closed
                self._again = False
                self._running = more
            self._notify()
            if not more:
                return

    def _build_once(self) -> names.NameCache | None:
        """A new snapshot from fresh connections, or None (keeping the old one) if even that failed."""
        store = host = None
        try:
            store = self._store.reopen() if self._store is not None else None
            host = _reopen_quietly(self._host)
            cache = self._build(store, host)
            self.last_error = None
            return cache
        except Exception as error:  # nothing may escape a background thread; the old names stay usable
            self.last_error = f"{type(error).__name__}: {error}"
            return None
        finally:
            _close_quietly(host)
            _close_quietly(store)

    def _notify(self) -> None:
        try:
            self._on_swap()
        except Exception:  # a redraw that fails must not stop the refreshes
            pass


def _reopen_quietly(host):
    if host is None:
        return None
    try:
        return host.reopen()
    except Exception:  # an unreachable host: build from the DB alone
        return None


def _close_quietly(resource) -> None:
    if resource is None:
        return
    try:
        resource.close()
    except Exception:  # closing a connection to a vanished host is not worth a message
        pass

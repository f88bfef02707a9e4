"""VMs an admin must look at, marked where a command could not leave them in a known state.

Two situations leave such a mark, one per VM:

- ``shutdown-unconfirmed``: a clean shutdown was requested and not seen through, and forcing was not
  allowed. The request reached the host, so the VM may halt by itself at any moment. The mark stays until
  a command sees the VM halted, or running with nothing under way on the host (the request is spent).
- ``not-restarted``: the VM was running before a change, and would not start again even with its previous
  configuration. The database and its arguments are back as they were; the VM is halted. The mark stays
  until a command sees it running (the admin fixed the cause and started it).

scan, status and show-vm show the marks and clear those whose VM they see resolved (best effort: a
read-only database keeps its marks); a change that then succeeds on the VM clears its mark too.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Mapping

import attrs

from .errors import StoreError
from .models import PowerState
from .store import Store

SHUTDOWN_UNCONFIRMED = "shutdown-unconfirmed"
NOT_RESTARTED = "not-restarted"


@attrs.frozen
class Attention:
    """A VM that needs an admin: ``kind`` (see the module docstring), ``reason`` (a sentence saying what
    happened and what to do) and ``since`` (when it was marked)."""

    vm_uuid: str
    kind: str
    reason: str
    since: str


def mark(conn: sqlite3.Connection, vm_uuid: str, kind: str, reason: str) -> None:
    """Mark a VM inside the caller's write transaction (replacing an earlier mark of it)."""
    conn.execute("INSERT OR REPLACE INTO vgpu_attention (vm_uuid, kind, reason) VALUES (?, ?, ?)", (vm_uuid, kind, reason))


def clear(conn: sqlite3.Connection, vm_uuid: str) -> None:
    conn.execute("DELETE FROM vgpu_attention WHERE vm_uuid = ?", (vm_uuid,))


def select(conn: sqlite3.Connection, vm_uuid: str | None = None) -> list[Attention]:
    where, params = ("WHERE vm_uuid = ?", (vm_uuid,)) if vm_uuid else ("", ())
    rows = conn.execute(f"SELECT vm_uuid, kind, reason, since FROM vgpu_attention {where} ORDER BY since, vm_uuid", params)
    return [Attention(*row) for row in rows]


def resolved(mark_: Attention, power: PowerState, operations: tuple[str, ...] | None) -> bool:
    """Whether what a command now sees of the VM ends the mark (``operations`` as the host reports them,
    None when it cannot tell)."""
    if mark_.kind == NOT_RESTARTED:
        return power is PowerState.RUNNING
    return power is PowerState.HALTED or (power is PowerState.RUNNING and operations == ())


def settle(store: Store, marks: Iterable[Attention], seen: Mapping[str, tuple[PowerState, tuple[str, ...] | None]]) -> list[Attention]:
    """The marks that still stand, given what was just seen of their VMs (``seen``: VM UUID → power state
    and host operations); the others are deleted, when the database lets us."""
    standing: list[Attention] = []
    ended: list[Attention] = []
    for mark_ in marks:
        state = seen.get(mark_.vm_uuid)
        (ended if state is not None and resolved(mark_, *state) else standing).append(mark_)
    if ended:
        try:
            with store.writing() as conn:
                for mark_ in ended:
                    conn.execute("DELETE FROM vgpu_attention WHERE vm_uuid = ? AND since = ?", (mark_.vm_uuid, mark_.since))
        except StoreError:
            pass  # a database we may only read: the marks are gone from this answer, and cleared next time
    return standing

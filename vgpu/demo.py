"""``sim:demo``: the spec's example host, simulated, with its own database.

23 VMs: 20 registered (7 in Pool A, 13 in Pool B, mixed priorities and power states) and 3 not, exactly the
numbers of the spec's scan-vms and status examples. The host file and the DB live in the user's data dir
and persist between commands; :func:`reset` re-creates both from scratch.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator, TypedDict

from . import devargs, paths
from .config import DEMO_URI, Settings
from .hypervisor.sim import SimHost
from .models import PowerState, Priority, Registration, VMConfig
from .store import Store

_NAMESPACE = uuid.UUID("5f0c3b1e-8a51-4d1e-9a53-6b0f7c1d2e3f")

# (name, pool, priority, power state, admin's own device-model args) for VM-1 .. VM-20; VM-21..23 unregistered.
_POOL_A = [
    ("high", "running"), ("high", "running"), ("high", "halted"),
    ("medium", "running"), ("medium", "running"),
    ("low", "halted"), ("low", "running"),
]
_POOL_B = [
    ("high", "running"), ("high", "running"), ("high", "running"), ("high", "halted"), ("high", "running"),
    ("medium", "running"), ("medium", "halted"), ("medium", "running"), ("medium", "running"),
    ("medium", "running"), ("medium", "halted"),
    ("low", "running"), ("low", "halted"),
]
_UNREGISTERED_POWER = ["running", "halted", "running"]


demo_dir = paths.demo_dir
host_path = paths.demo_host_file
db_path = paths.demo_db
is_seeded = paths.demo_seeded


DEMO_SHUTDOWN_SECONDS = 1.0
DEMO_START_SECONDS = 0.5


def demo_uuid(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def not_the_demos(settings: Settings) -> tuple[str, ...]:
    """Which of the settings ``host`` and ``db`` name something other than the demo's own (in that order):
    with ``settings``, commands do not use the demo. The demo host with another database is the trap: its
    23 VMs look unregistered there, and a change to one of them is refused."""
    differ = []
    if settings.host != DEMO_URI:
        differ.append("host")
    # A path holding NUL names no file (realpath would raise): it is not the demo's either.
    if "\0" in settings.db or os.path.realpath(settings.db) != os.path.realpath(db_path()):
        differ.append("db")
    return tuple(differ)


def ensure() -> None:
    """Seed the demo on first use; later calls keep whatever the user changed."""
    if is_seeded():  # the usual case, answered without a lock: the files appear only once complete (_rebuild)
        return
    with _one_at_a_time():
        if not is_seeded():  # seeded by another command while this one waited
            _rebuild()


def reset() -> None:
    """Re-create the demo host and its database from scratch."""
    with _one_at_a_time():
        _rebuild()


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """Two commands on the demo's first use (two terminals), or a reset during one, take turns: otherwise
    the second removes the files the first is seeding, or uses them half-seeded."""
    import fcntl  # only while seeding: most runs find the demo seeded

    paths.ensure_dir(demo_dir())
    fd = os.open(os.path.join(demo_dir(), "seeding.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def _rebuild() -> None:
    """Seed the demo under names of its own, then move both files into place, the host file last: a command
    that finds both (is_seeded) finds them complete."""
    new_host, new_db = host_path() + ".new", db_path() + ".new"
    # A host file's rollback journal, or a database's WAL, goes with its file: one left by a killed process
    # belongs to the old file.
    for path in (host_path(), db_path(), new_host, new_db):
        for leftover in (path, f"{path}-journal", f"{path}-wal", f"{path}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
    host = SimHost(new_host)
    try:
        seed(host, new_db)
        # A real guest takes a while to shut down and boot: a little of that makes the demo's progress visible.
        host.set_latency("clean_shutdown", DEMO_SHUTDOWN_SECONDS)
        host.set_latency("start", DEMO_START_SECONDS)
    finally:
        host.close()
    os.replace(new_db, db_path())
    os.replace(new_host, host_path())


def seed(host: SimHost, db: str) -> None:
    """Put the spec's 23 VMs on ``host`` and register 20 of them in the database at ``db``."""
    registrations, host_rows = [], []
    members = [("A", p, s) for p, s in _POOL_A] + [("B", p, s) for p, s in _POOL_B]
    for number, (pool_id, priority, power) in enumerate(members, start=1):
        name = f"VM-{number}"
        reg = Registration(demo_uuid(name), name, pool_id, Priority[priority.upper()], number)
        registrations.append(reg)
        own_args = f"-vnc 127.0.0.1:{number}" if number % 5 == 0 else ""
        config = VMConfig(reg.pool_id, reg.priority, number)
        host_rows.append((reg.vm_uuid, name, PowerState(power), devargs.merge(own_args, config)))
    for offset, power in enumerate(_UNREGISTERED_POWER):
        name = f"VM-{21 + offset}"
        host_rows.append((demo_uuid(name), name, PowerState(power), ""))
    from . import vms  # here, not at the top: vms is only needed while seeding

    # The database first: register_many is all or nothing, so a DB that already holds some of these VMs
    # refuses the lot before the host gets any of them.
    with Store(db) as store:
        vms.db_register_many(store, registrations)
    host.add_vms(host_rows)


class Sandbox(TypedDict):
    """What :func:`sandbox` returns: the keywords of :func:`vgpu.connect` naming the sandbox (a TypedDict, so
    that ``vgpu.connect(**demo.sandbox())`` type-checks)."""

    db: str
    host: str


def sandbox(folder: str | None = None) -> Sandbox:
    """A fresh copy of the demo (the spec's 23 VMs, 20 registered) in ``folder``, a new temporary directory
    by default, for a notebook or an experiment that must leave the user's own demo alone. Returns the
    settings naming it, for :func:`vgpu.connect`: ``vgpu.connect(**demo.sandbox())``."""
    import tempfile  # only for a sandbox: the demo's own start-up does not need it

    where = folder if folder is not None else tempfile.mkdtemp(prefix="vgpu-sandbox-")
    paths.ensure_dir(where)
    db, host_file = os.path.join(where, "vgpu.db"), os.path.join(where, "host.sim")
    seed(SimHost(host_file), db)
    return {"db": db, "host": f"sim:{host_file}"}

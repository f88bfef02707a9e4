"""Bulk registration: 10,000 VMs through vgpu.vms.register_many against a raw sqlite3 executemany (the floor).

Both write the same rows into the same schema (the spec's tables, vgpu.schema.SPEC_TABLES) in one
transaction, on fresh DB files opened with the same PRAGMAs (WAL, foreign keys on), in the same run. Each
repetition times one of each, alternating which goes first so drift in machine load hits both alike; the
figure is the ratio of the medians. The target is ≤ 1.5×.

register_many does more than the floor by design: it validates every row as typed by a person, reads the
VMs already registered, assigns the lowest free vm_ids, records the batch in the audit log (one row that
history() expands into one entry per VM) and returns VM objects.

    python bench/bulk_register.py [--rows 10000] [--repeat 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from vgpu import schema, vms  # noqa: E402
from vgpu.store import Store  # noqa: E402

TARGET = 1.5
PRIORITY_WORDS = ("low", "medium", "high")
VMS_INSERT = "INSERT INTO vms (vm_id, vm_uuid, vm_name, pool_id, priority) VALUES (?, ?, ?, ?, ?)"


def make_rows(count: int) -> tuple[list[dict], list[tuple]]:
    """The rows as a CSV would give them (mixed spellings, random UUIDs) and the same rows as stored."""
    rng = random.Random(20261125)
    typed, stored = [], []
    for index in range(count):
        vm_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        pool = "AB"[index % 2]
        priority = index % 3
        spelled_pool = pool if index % 4 < 2 else pool.lower()
        spelled_priority = (PRIORITY_WORDS[priority], PRIORITY_WORDS[priority].upper(), str(priority))[index % 3]
        typed.append({"vm_uuid": vm_uuid, "vm_name": f"vm-{index:05d}", "pool": spelled_pool, "priority": spelled_priority})
        stored.append((index + 1, vm_uuid, f"vm-{index:05d}", pool, priority))
    return typed, stored


def fresh_path(folder: Path, name: str) -> Path:
    path = folder / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def raw_connection(path: Path, script: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(script)
    return conn


def time_floor(folder: Path, stored: list[tuple]) -> float:
    conn = raw_connection(fresh_path(folder, "floor.db"), schema.SPEC_TABLES)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(VMS_INSERT, stored)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_library(folder: Path, typed: list[dict], profiler: cProfile.Profile | None = None) -> float:
    with Store(fresh_path(folder, "library.db")) as store:
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        registered = vms.db_register_many(store, typed)
        elapsed = time.perf_counter() - started
        if profiler:
            profiler.disable()
    assert len(registered) == len(typed) and registered[-1].vm_id == len(typed)
    return elapsed


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of register_many")
    args = parser.parse_args()
    typed, stored = make_rows(args.rows)
    ours, floor = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        time_library(folder, typed), time_floor(folder, stored)  # warm-up: imports, caches, page cache
        for index in range(args.repeat):
            pair = [lambda: ours.append(time_library(folder, typed)), lambda: floor.append(time_floor(folder, stored))]
            for run in pair if index % 2 else reversed(pair):
                run()
        if args.profile:
            profiler = cProfile.Profile()
            time_library(folder, typed, profiler)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    ratio = statistics.median(ours) / statistics.median(floor)
    print(f"{args.rows} VMs, {args.repeat} repetitions, medians")
    print(f"vgpu.vms.register_many                  {statistics.median(ours) * 1000:8.1f} ms")
    print(f"raw executemany into vms (the floor)    {statistics.median(floor) * 1000:8.1f} ms")
    print(f"ratio {ratio:.2f}x   target <= {TARGET:.1f}x   {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

"""Bulk reconfigure of 20 running VMs whose guests take 1 s to shut down and 1 s to start, 4 at a time.

The ideal is 20 / 4 x (1 s + 1 s) = 10 s; the target is at most 1.2x that. For reference the same run also
times one VM's full cycle alone (the per-VM cost the ideal assumes is 2 s). Exits 1 if the target is missed.

    python bench/bulk_reconfigure.py [--vms 20] [--concurrency 4] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from vgpu import bulk, devargs, lifecycle, vms  # noqa: E402
from vgpu.hypervisor.sim import SimHost  # noqa: E402
from vgpu.models import PowerState, Priority, Registration, VMConfig  # noqa: E402
from vgpu.store import Store  # noqa: E402

TARGET_RATIO = 1.2


def build(directory: Path, count: int, latency: float) -> tuple[Store, SimHost, list[str]]:
    host = SimHost(directory / "host.json")
    uuids = [f"b01c0000-0000-4000-8000-{number:012d}" for number in range(1, count + 2)]
    rows, registrations = [], []
    for number, uuid in enumerate(uuids, start=1):
        config = VMConfig("A", Priority.MEDIUM, number)
        rows.append((uuid, f"vm-{number}", PowerState.RUNNING, devargs.render(config)))
        registrations.append(Registration(uuid, f"vm-{number}", "A", Priority.MEDIUM, number))
    host.add_vms(rows)
    host.set_latency("clean_shutdown", latency)
    host.set_latency("start", latency)
    store = Store(directory / "vgpu.db")
    vms.db_register_many(store, registrations)
    return store, host, uuids


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds to shut down, and again to start")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        store, host, uuids = build(Path(tmp), options.vms, options.latency)
        single, _ = timed(lambda: lifecycle.reconfigure_vm(store, host, uuids[-1], pool="B", confirm=lambda plan: True))
        changes = [{"vm_uuid": uuid, "pool": "B", "priority": "high"} for uuid in uuids[:-1]]
        elapsed, result = timed(lambda: bulk.reconfigure_many(
            store, host, changes, confirm=lambda plan: True, concurrency=options.concurrency))
        settled = all(
            host.power_state(uuid) is PowerState.RUNNING
            and devargs.parse(host.get_device_model_args(uuid)).config == vms.get(store, uuid).config
            for uuid in uuids
        )
        store.close()

    waves = -(-options.vms // options.concurrency)
    ideal = waves * 2 * options.latency
    ratio = elapsed / ideal
    print(f"bulk reconfigure: {options.vms} running VMs, concurrency {options.concurrency}, "
          f"{options.latency:g} s stop + {options.latency:g} s start latency")
    rows = [
        ("one VM alone (measured)", single, f"(the ideal assumes {2 * options.latency:g} s)"),
        (f"ideal {options.vms} / {options.concurrency} x {2 * options.latency:g} s", ideal, "= 1.00x"),
        (f"{waves} waves at one VM's measured cost", waves * single, f"= {waves * single / ideal:4.2f}x ideal"),
        ("reconfigure_many", elapsed, f"= {ratio:4.2f}x ideal  (target <= {TARGET_RATIO:g}x) "
                                      f"{'ok' if ratio <= TARGET_RATIO else 'MISSED'}"),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<36} {seconds:6.2f} s  {note}")
    print(f"  results: {len(result.results)} ok, {len(result.failures)} failed; DB and segments agree, all running: {settled}")
    return 0 if ratio <= TARGET_RATIO and result.ok and settled else 1


if __name__ == "__main__":
    sys.exit(main())

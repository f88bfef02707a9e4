"""scan() and status() at 10,000 VMs on a simulated host, against the floor of doing the same join by hand.

The floor, measured in the same run: one ``host.list_vms()``, one SELECT of every registered VM, and a plain
Python loop joining the two by UUID. Each of scan() and status() must make exactly one hypervisor call and
take at most 3x the floor (medians of several repetitions). Exits 1 if a target is missed.

    python bench/scan_status.py [--vms 10000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

import population  # noqa: E402
from vgpu import scan  # noqa: E402
from vgpu.hypervisor.sim import SimHost  # noqa: E402
from vgpu.store import Store  # noqa: E402
from tests.counting import CountingHost  # noqa: E402

TARGET_RATIO = 3.0


def build(directory: Path, count: int) -> tuple[Store, SimHost]:
    """``count`` VMs (bench/population.py: 90% registered, a few drifted) on a simulated host."""
    host = SimHost(directory / "host.json")
    store = Store(directory / "vgpu.db")
    population.populate(host, store, count, "5e1b0000-0000-4000-8000-", drift_every=97)
    return store, host


def floor(store: Store, host: SimHost) -> int:
    """The least any scan can do: one listing, one SELECT, one join."""
    listed = host.list_vms()
    with store.reading() as conn:
        rows = conn.execute("SELECT vm_id, vm_uuid, vm_name, pool_id, priority, created_at, updated_at FROM vms").fetchall()
    on_host = {vm.uuid: vm for vm in listed}
    joined = 0
    for row in rows:
        if on_host.pop(row[1], None) is not None:
            joined += 1
    return joined + len(on_host)


def median_seconds(functions: list, repeat: int) -> list[float]:
    """The median time of each function; the runs are interleaved so a busy machine slows all alike."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for fn, spent in zip(functions, times):
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        store, host = build(Path(tmp), options.vms)
        counting = CountingHost(host)
        report = scan.scan(store, counting)
        scan_calls = len(counting.calls)
        counting.calls.clear()
        scan.status(store, counting)
        status_calls = len(counting.calls)
        assert report.total_in_system == options.vms

        floor(store, host), scan.scan(store, host), scan.status(store, host)  # warm the page cache
        base, scan_time, status_time = median_seconds(
            [lambda: floor(store, host), lambda: scan.scan(store, host), lambda: scan.status(store, host)], options.repeat
        )
        store.close()

    registered = report.total_registered
    print(f"{options.vms} VMs on sim ({registered} registered, {len(report.drift)} drifted), "
          f"median of {options.repeat} runs")
    print(f"  hypervisor calls: scan {scan_calls}, status {status_calls}   (target: 1 each)")
    print(f"  {'floor (list_vms + SELECT + join loop)':<40} {base * 1000:8.1f} ms = 1.00x")
    results = [("scan()", scan_time), ("status()", status_time)]
    missed = scan_calls != 1 or status_calls != 1
    for name, seconds in results:
        ratio = seconds / base
        missed |= ratio > TARGET_RATIO
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  {name:<40} {seconds * 1000:8.1f} ms = {ratio:4.2f}x floor  (target <= {TARGET_RATIO:g}x) {verdict}")
    both = (scan_time + status_time) / (2 * base)
    print(f"  {'scan()+status() against two floors':<40} {'':8} {both:7.2f}x        (target <= {TARGET_RATIO:g}x)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A fleet of 10 simulated hosts of 1,000 VMs each, every host call taking 50 ms: scan, status and a bulk move.

The hosts are simulated in memory (a protocol-complete host whose every call sleeps ``--latency``; a clean
shutdown and a start take ``--power`` seconds each), so what is measured is the fleet's own work: fanning
out, joining 10,000 VMs with the database, and scheduling the bulk move. Figures, each a ratio against a
baseline measured in the same run:

1. scan() and status() of the whole fleet against scanning the slowest single host alone (``--host LABEL``:
   the same database, that host only): target at most 1.5x. Done one host after another, it would be 10x.
2. Host calls per scan: hosts x a constant (counted on every host; the constant is 1, its listing).
3. A bulk move of 200 running VMs spread over the 10 hosts (20 each), with ``--per-host`` and
   ``--concurrency`` limits: against the ideal for those limits, max(ceil(20 / per_host), ceil(200 /
   concurrency)) x (stop + start); target at most 1.2x.

Exits 1 if a target is missed.

    python bench/fleet_scan.py [--hosts 10] [--vms 1000] [--latency 0.05] [--move 200 (0: scans only)] [--per-host 4] [--concurrency 40]
"""

from __future__ import annotations

import argparse
import collections
import gc
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from vgpu import bulk, devargs, scan, vms  # noqa: E402
from vgpu.hypervisor import codes  # noqa: E402
from vgpu.hypervisor.fleet import Fleet  # noqa: E402
from vgpu.models import HostVM, PowerState, Priority, Registration, VMConfig  # noqa: E402
from vgpu.store import Store  # noqa: E402

SCAN_TARGET, BULK_TARGET = 1.5, 1.2


class MemoryHost:
    """A simulated host in memory: every call sleeps ``latency`` (a clean shutdown and a start ``power``),
    and is counted. Implements :class:`vgpu.hypervisor.base.Hypervisor`."""

    def __init__(self, name: str, latency: float, power: float, shared: dict | None = None) -> None:
        self.uri = f"memory:{name}"
        self.latency, self.power = latency, power
        self._shared = shared if shared is not None else {"vms": {}, "lock": threading.Lock(), "calls": collections.Counter()}

    @property
    def calls(self) -> collections.Counter:
        return self._shared["calls"]

    def add(self, uuid: str, name: str, args: str, power: PowerState) -> None:
        self._shared["vms"][uuid] = {"name": name, "args": args, "power": power, "booted": args if power is PowerState.RUNNING else None}

    def _call(self, method: str, seconds: float | None = None) -> None:
        with self._shared["lock"]:
            self.calls[method] += 1
        time.sleep(self.latency if seconds is None else seconds)

    def _vm(self, uuid: str) -> dict:
        vm = self._shared["vms"].get(uuid)
        if vm is None:
            raise codes.host_error(codes.UUID_INVALID, ["VM", uuid], uuid)
        return vm

    def list_vms(self) -> list[HostVM]:
        self._call("list_vms")
        return [HostVM(uuid, vm["name"], vm["power"], vm["args"], vm["booted"]) for uuid, vm in self._shared["vms"].items()]

    def power_state(self, uuid: str) -> PowerState:
        self._call("power_state")
        return self._vm(uuid)["power"]

    def clean_shutdown(self, uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        self._call("clean_shutdown", self.power)
        vm = self._vm(uuid)
        vm["power"], vm["booted"] = PowerState.HALTED, None
        return True

    def hard_shutdown(self, uuid: str) -> None:
        self._call("hard_shutdown")
        vm = self._vm(uuid)
        vm["power"], vm["booted"] = PowerState.HALTED, None

    def start(self, uuid: str) -> None:
        self._call("start", self.power)
        vm = self._vm(uuid)
        vm["power"], vm["booted"] = PowerState.RUNNING, vm["args"]

    def booted_device_model_args(self, uuid: str) -> str | None:
        self._call("booted_device_model_args")
        return self._vm(uuid)["booted"]

    def current_operations(self, uuid: str) -> tuple[str, ...]:
        self._call("current_operations")
        self._vm(uuid)
        return ()

    def get_device_model_args(self, uuid: str) -> str:
        self._call("get_device_model_args")
        return self._vm(uuid)["args"]

    def set_device_model_args(self, uuid: str, value: str) -> None:
        self._call("set_device_model_args")
        self._vm(uuid)["args"] = value

    def reopen(self) -> "MemoryHost":
        return MemoryHost(self.uri, self.latency, self.power, self._shared)

    def close(self) -> None:
        pass


def build(directory: Path, hosts: int, count: int, latency: float, power: float) -> tuple[Store, dict[str, MemoryHost]]:
    """``hosts`` hosts of ``count`` VMs: 90% registered with their segment (the fleet's vm_ids are unique),
    two thirds running."""
    members, registrations = {}, []
    for h in range(1, hosts + 1):
        host = MemoryHost(f"gpu{h}", latency, power)
        for n in range(1, count + 1):
            uuid, number = f"f1ee{h:04d}-0000-4000-8000-{n:012d}", h * count + n
            power_state = PowerState.RUNNING if n % 3 else PowerState.HALTED
            args = ""
            if n % 10:
                config = VMConfig("A", Priority(n % 3), number)
                registrations.append(Registration(uuid, f"vm-{h}-{n}", "A", config.priority, number))
                args = devargs.render(config)
            host.add(uuid, f"vm-{h}-{n}", args, power_state)
        members[f"gpu{h}"] = host
    store = Store(directory / "vgpu.db")
    vms.db_register_many(store, registrations)
    return store, members


def median_seconds(functions: list, repeat: int) -> list[float]:
    """The median time of each function; the runs are interleaved so a busy machine slows all alike."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for fn, spent in zip(functions, times):
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:5.2f}x  (target <= {target:g}x) {'OK' if ratio <= target else 'MISSED'}"


def measure_scans(store: Store, members: dict[str, MemoryHost], repeat: int) -> tuple[bool, list[str]]:
    fleet = Fleet(members)
    labels = list(members)
    alone = {label: Fleet({label: host}, elsewhere=[other for other in labels if other != label]) for label, host in members.items()}
    scan.scan(store, fleet)  # the first scan remembers where every VM is; the next ones find nothing changed
    for host in members.values():
        host.calls.clear()
    report = scan.scan(store, fleet)
    scan_calls = {label: sum(host.calls.values()) for label, host in members.items()}
    for host in members.values():
        host.calls.clear()
    scan.status(store, fleet)
    status_calls = {label: sum(host.calls.values()) for label, host in members.items()}
    # One interleaved series, so that a machine busy with something else slows every figure alike.
    scan_time, status_time, *singles = median_seconds(
        [lambda: scan.scan(store, fleet), lambda: scan.status(store, fleet), *(lambda a=a: scan.scan(store, a) for a in alone.values())],
        repeat)
    slowest, typical = max(singles), statistics.median(singles)
    hosts = len(members)
    constant = set(scan_calls.values()) | set(status_calls.values())
    calls_ok = len(constant) == 1
    lines = [
        f"scan: {hosts} hosts x {report.total_in_system // hosts} VMs ({report.total_registered} registered), "
        f"{members[labels[0]].latency * 1000:g} ms per host call, median of {repeat} runs",
        f"  host calls per scan:   {sum(scan_calls.values())} = {hosts} hosts x {', '.join(map(str, sorted(constant)))}"
        f"   (target: hosts x a constant) {'OK' if calls_ok else 'MISSED'}",
        f"  host calls per status: {sum(status_calls.values())} = {hosts} hosts x {', '.join(map(str, sorted(set(status_calls.values()))))}",
        f"  {'slowest single host alone (--host LABEL)':<44} {slowest * 1000:8.1f} ms = 1.00x"
        f"   (the median host: {typical * 1000:.1f} ms; against it, scan {scan_time / typical:.2f}x)",
        f"  {'scan() of the fleet':<44} {scan_time * 1000:8.1f} ms = {verdict(scan_time / slowest, SCAN_TARGET)}",
        f"  {'status() of the fleet':<44} {status_time * 1000:8.1f} ms = {verdict(status_time / slowest, SCAN_TARGET)}",
        f"  {'(one host after another would be)':<44} {sum(singles) * 1000:8.1f} ms = {sum(singles) / slowest:5.2f}x",
    ]
    ok = calls_ok and scan_time / slowest <= SCAN_TARGET and status_time / slowest <= SCAN_TARGET
    return ok, lines


def measure_bulk(store: Store, members: dict[str, MemoryHost], move: int, per_host: int, concurrency: int,
                 power: float) -> tuple[bool, list[str]]:
    fleet = Fleet(members)
    each = move // len(members)
    chosen = []
    for label, host in members.items():
        running = [uuid for uuid, vm in host._shared["vms"].items() if vm["power"] is PowerState.RUNNING and vm["args"]]
        chosen += running[:each]
    changes = [{"vm_uuid": uuid, "pool": "B"} for uuid in chosen]
    started = time.perf_counter()
    result = bulk.reconfigure_many(store, fleet, changes, confirm=lambda plan: True, concurrency=concurrency, per_host=per_host)
    elapsed = time.perf_counter() - started
    waves = max(math.ceil(each / per_host), math.ceil(len(chosen) / concurrency))
    ideal = waves * 2 * power
    moved = sum(vm.pool_id == "B" for vm in vms.list_vms(store))
    ratio = elapsed / ideal
    lines = [
        f"bulk move: {len(chosen)} running VMs over {len(members)} hosts ({each} each), {power:g} s stop + {power:g} s start, "
        f"per_host {per_host}, concurrency {concurrency}",
        f"  {f'ideal max({each}/{per_host}, {len(chosen)}/{concurrency}) waves x {2 * power:g} s':<44} {ideal:8.2f} s  = 1.00x",
        f"  {'reconfigure_many over the fleet':<44} {elapsed:8.2f} s  = {verdict(ratio, BULK_TARGET)}",
        f"  results: {len(result.results)} ok, {len(result.failures)} failed; {moved} VMs in Pool B",
    ]
    return ratio <= BULK_TARGET and result.ok and moved == len(chosen), lines


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--vms", type=int, default=1000, help="VMs per host")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per host call")
    parser.add_argument("--power", type=float, default=1.0, help="seconds for a clean shutdown, and again for a start")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--move", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=40)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        store, members = build(Path(tmp), options.hosts, options.vms, options.latency, options.power)
        # The simulated hosts' 10,000 VMs live in this process only because they are simulated (a real host's
        # are on the host): keep the garbage collector from walking them on every collection.
        gc.freeze()
        scans_ok, scan_lines = measure_scans(store, members, options.repeat)
        print("\n".join(scan_lines), flush=True)
        bulk_ok = True
        if options.move > 0:  # --move 0: the scans only
            bulk_ok, bulk_lines = measure_bulk(store, members, options.move, options.per_host, options.concurrency, options.power)
            print("\n".join(bulk_lines))
        store.close()
    return 0 if scans_ok and bulk_ok else 1


if __name__ == "__main__":
    sys.exit(main())

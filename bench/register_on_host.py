"""Bulk registration on a host: 1,500 VMs registered on a simulated host of 2,000 VMs, against the same call
on an in-memory host that writes nothing.

The job is the CSV notebook's: ``bulk_register.plan_registrations`` then ``register_planned`` (one
transaction for the rows, then each VM's segment written through the journalled repair, ``concurrency`` at
a time). Both sides run it on a fresh database, one on a ``SimHost`` (its state in a file, shared between
processes) and one on :class:`MemoryHost` below (a dict, nothing written, nothing waited for), in the same
run. Each repetition times one of each, alternating which goes first so drift in machine load hits both
alike; the figure is the ratio of the medians. The target is at most 3x: what the simulated host's writes
may add to the library's own work. Exits 1 if the target is missed.

    python bench/register_on_host.py [--host-vms 2000] [--register 1500] [--repeat 5] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from vgpu import bulk_register, devargs  # noqa: E402
from vgpu.errors import HypervisorError  # noqa: E402
from vgpu.hypervisor import codes  # noqa: E402
from vgpu.hypervisor.sim import SimHost  # noqa: E402
from vgpu.models import HostVM, PowerState  # noqa: E402
from vgpu.store import Store  # noqa: E402

TARGET = 3.0


class MemoryHost:
    """A Hypervisor whose VMs live in a dict: no file, no lock, no wait. Threads share it (``reopen`` is
    itself); each call is one dict operation, which the GIL keeps whole."""

    def __init__(self, rows: list[tuple]) -> None:
        self.uri = "memory:"
        self.vms = {uuid: [name, PowerState(power), args] for uuid, name, power, args in rows}

    def _vm(self, vm_uuid: str) -> list:
        try:
            return self.vms[vm_uuid]
        except KeyError:
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid) from None

    def list_vms(self) -> list[HostVM]:
        return [HostVM(uuid, name, power, args, args if power is PowerState.RUNNING else None)
                for uuid, (name, power, args) in self.vms.items()]

    def power_state(self, vm_uuid: str) -> PowerState:
        return self._vm(vm_uuid)[1]

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        vm = self._vm(vm_uuid)
        return vm[2] if vm[1] is PowerState.RUNNING else None

    def current_operations(self, vm_uuid: str) -> tuple[str, ...]:
        self._vm(vm_uuid)
        return ()

    def get_device_model_args(self, vm_uuid: str) -> str:
        return self._vm(vm_uuid)[2]

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._vm(vm_uuid)[2] = value

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        self._vm(vm_uuid)[1] = PowerState.HALTED
        return True

    def hard_shutdown(self, vm_uuid: str) -> None:
        self._vm(vm_uuid)[1] = PowerState.HALTED

    def start(self, vm_uuid: str) -> None:
        self._vm(vm_uuid)[1] = PowerState.RUNNING

    def reopen(self) -> "MemoryHost":
        return self

    def close(self) -> None:
        pass


def host_rows(count: int) -> list[tuple]:
    """The host's VMs: two in three running, one in four with arguments of the admin's own."""
    rows = []
    for number in range(1, count + 1):
        uuid = f"7e61a000-0000-4000-8000-{number:012d}"
        power = PowerState.RUNNING if number % 3 else PowerState.HALTED
        rows.append((uuid, f"vm-{number}", power, f"-vnc 127.0.0.1:{number % 100}" if number % 4 == 0 else ""))
    return rows


def csv_rows(rows: list[tuple], count: int) -> list[dict]:
    """The file to register: ``count`` of the host's VMs, as a CSV gives them."""
    return [{"vm_uuid": uuid, "vm_name": name, "pool": "AB"[index % 2], "priority": ("low", "medium", "high")[index % 3]}
            for index, (uuid, name, _, _) in enumerate(rows[:count])]


def fresh(folder: Path, name: str) -> Path:
    path = folder / name
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def register(store: Store, host, rows: list[dict], concurrency: int) -> float:
    started = time.perf_counter()
    plan = bulk_register.plan_registrations(store, host, rows)
    result = bulk_register.register_planned(store, host, plan, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    assert result.ok and len(result.registered) == len(rows), result
    return elapsed


def on_sim(folder: Path, rows: list[tuple], wanted: list[dict], concurrency: int) -> tuple[float, SimHost]:
    host = SimHost(fresh(folder, "host.sim"))
    host.add_vms(rows)
    with Store(fresh(folder, "sim.db")) as store:
        return register(store, host, wanted, concurrency), host


def in_memory(folder: Path, rows: list[tuple], wanted: list[dict], concurrency: int) -> float:
    with Store(fresh(folder, "memory.db")) as store:
        return register(store, MemoryHost(rows), wanted, concurrency)


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-vms", type=int, default=2000)
    parser.add_argument("--register", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    rows = host_rows(options.host_vms)
    wanted = csv_rows(rows, options.register)
    sim_times, memory_times = [], []
    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        folder = Path(tmp)
        _, host = on_sim(folder, rows, wanted, options.concurrency)  # warm-up (imports, page cache), and a check
        written = sum(devargs.parse(vm.device_model_args).present for vm in host.list_vms())
        assert written == options.register, f"{written} segments on the simulated host, {options.register} expected"
        in_memory(folder, rows, wanted, options.concurrency)
        for index in range(options.repeat):
            pair = [lambda: sim_times.append(on_sim(folder, rows, wanted, options.concurrency)[0]),
                    lambda: memory_times.append(in_memory(folder, rows, wanted, options.concurrency))]
            for run in pair if index % 2 else reversed(pair):
                run()
    sim, memory = statistics.median(sim_times), statistics.median(memory_times)
    ratio = sim / memory
    print(f"{options.register} VMs registered (plan_registrations + register_planned, concurrency {options.concurrency}) "
          f"on a host of {options.host_vms}, median of {options.repeat}")
    print(f"  on a simulated host (sim:PATH)           {sim * 1000:8.0f} ms")
    print(f"  on an in-memory host writing nothing     {memory * 1000:8.0f} ms")
    print(f"  ratio {ratio:.2f}x   target <= {TARGET:g}x   {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HypervisorError as error:
        sys.exit(f"bench failed: {error}")

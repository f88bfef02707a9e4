"""Round trips to the host for one reconfigure of a running VM (a pool change: stop, write, start).

XenAPI: the real SDK against the loopback XAPI stand-in (tests/standins/xapi_server.py), which counts every
call, login and logout included; looking again at a task still under way is waiting for the guest, not a
step of the cycle, so the figure counts one look per task (the waiting looks are printed beside it). xe:
the stand-in xe (tests/standins/xe), one process per call, logged through VGPU_XE_CALL_LOG. The VM's platform
map holds what a real XCP-ng VM's does (timeoffset, videoram, hpet, acpi, ... and the device-model args among
them: tests/hostkit_xe.REAL_PLATFORM), since xe prints that map unescaped and what it costs to read the args
from it depends on the other keys. Targets: at most
10 XenAPI calls and at most 5 xe processes. Exits 1 if a target is missed. The xenstore-ls reads on dom0
(what the VM booted with: once when planning, once after the start) are counted apart and printed beside.

    python bench/round_trips.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from tests.hostkit_xe import STANDIN_XE, STANDIN_XENSTORE_LS, real_platform, standin_env  # noqa: E402
from tests.standins.xapi_server import XapiStandIn  # noqa: E402
from vgpu import devargs, lifecycle, vms  # noqa: E402
from vgpu.hypervisor.sim import SimHost  # noqa: E402
from vgpu.hypervisor.xapi import XapiHost  # noqa: E402
from vgpu.hypervisor.xe import XeHost  # noqa: E402
from vgpu.models import PowerState, Priority, Registration, VMConfig  # noqa: E402
from vgpu.store import Store  # noqa: E402

MAX_XENAPI_CALLS = 10
MAX_XE_PROCESSES = 5
UUID = "40ad0000-0000-4000-8000-000000000001"


def world(folder: Path) -> tuple[Store, SimHost]:
    sim = SimHost(folder / "host.sim")
    args = "-vnc 127.0.0.1:1 " + devargs.render(VMConfig("A", Priority.MEDIUM, 1))
    sim.add_vm(UUID, "vm-1", PowerState.RUNNING, args, real_platform(args))  # its args among a real host's keys
    store = Store(folder / "vgpu.db")
    vms.db_register_many(store, [Registration(UUID, "vm-1", "A", Priority.MEDIUM, 1)])
    return store, sim


def reconfigure(store: Store, host) -> None:
    result = lifecycle.reconfigure_vm(store, host, UUID, pool="B", confirm=lambda plan: True)
    assert result.restarted and result.vm.pool_id == "B", result


def xenapi_calls(folder: Path) -> tuple[int, int, dict[str, int]]:
    store, sim = world(folder)
    with XapiStandIn(sim, password="bench") as server:
        host = XapiHost.from_uri(f"xapi://root@127.0.0.1:{server.port}", password=lambda: "bench")
        reconfigure(store, host)
        host.close()
        calls = dict(server.calls)
    store.close()
    waiting = calls.get("task.get_status", 0) - calls.get("Async.VM.clean_shutdown", 0) - calls.get("Async.VM.start", 0)
    return sum(calls.values()) - waiting, waiting, calls


def xe_processes(folder: Path) -> tuple[list[str], int]:
    """The xe subcommands run, and the number of xenstore-ls reads."""
    store, sim = world(folder)
    log, xenstore_log = folder / "xe-calls.jsonl", folder / "xenstore-calls.jsonl"
    env = standin_env(sim, VGPU_XE_CALL_LOG=str(log), VGPU_XENSTORE_CALL_LOG=str(xenstore_log))
    host = XeHost(xe_path=str(STANDIN_XE), env=env, xenstore_ls=str(STANDIN_XENSTORE_LS))
    reconfigure(store, host)
    store.close()
    reads = len(xenstore_log.read_text().splitlines()) if xenstore_log.exists() else 0
    return [json.loads(line)["argv"][0] for line in log.read_text().splitlines()], reads


def main() -> int:
    print(benchpath.measured())
    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        (Path(tmp) / "xapi").mkdir()
        (Path(tmp) / "xe").mkdir()
        calls, waiting, by_method = xenapi_calls(Path(tmp) / "xapi")
        processes, xenstore_reads = xe_processes(Path(tmp) / "xe")
    xapi_ok, xe_ok = calls <= MAX_XENAPI_CALLS, len(processes) <= MAX_XE_PROCESSES
    print("one reconfigure of a running VM (pool A -> B: stop, write, start)")
    print(f"  XenAPI calls, login and logout included  {calls:3d}   target <= {MAX_XENAPI_CALLS}   "
          f"{'OK' if xapi_ok else 'MISSED'}   (+{waiting} looks at a task still under way)")
    print(f"    {', '.join(f'{method} {count}' for method, count in by_method.items())}")
    print(f"  xe processes                             {len(processes):3d}   target <= {MAX_XE_PROCESSES}   "
          f"{'OK' if xe_ok else 'MISSED'}   (+{xenstore_reads} xenstore-ls reads)")
    print(f"    {', '.join(processes)}")
    return 0 if xapi_ok and xe_ok else 1


if __name__ == "__main__":
    sys.exit(main())

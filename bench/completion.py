"""Completion per keystroke at 10,000 VMs: the pure engine and the prompt_toolkit adapter, p50 and p99.

The names are built once (as the shell's background refresher does), from a DB with 9,000 registered VMs
and a simulated host with all 10,000; then every prefix of typical inputs is completed, as if typed one
key at a time: a growing UUID prefix after ``set-pool --vm-uuid=``, name prefixes and fragments, a
fragment that matches nothing (the full scan), command prefixes and ``--pool=``. The baseline, measured
in the same run, is the simplest possible completer: a list comprehension over 10,000 lower-case strings
with ``startswith``. Target: p99 <= 15 ms per keystroke for the engine and the adapter; exits 1 if missed.

    python bench/completion.py [--vms 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import benchpath  # noqa: E402  (which vgpu: this checkout, or a regular install under run_all.py)

from prompt_toolkit.completion import CompleteEvent  # noqa: E402
from prompt_toolkit.document import Document  # noqa: E402

from shell import completion_engine, names  # noqa: E402
from shell.completer import VgpuCompleter  # noqa: E402
from vgpu import vms  # noqa: E402
from vgpu.hypervisor.sim import SimHost  # noqa: E402
from vgpu.models import PowerState, Priority, Registration  # noqa: E402
from vgpu.store import Store  # noqa: E402

TARGET_P99_MS = 15.0
_NAMESPACE = uuidlib.UUID("0b7c3f2e-5d5e-4c1a-9a53-1c0f7c1d2e3f")


def build_world(directory: Path, count: int) -> tuple[Store, SimHost, list[str]]:
    """``count`` VMs on the host, nine in ten registered; returns their UUIDs in order."""
    host = SimHost(directory / "host.json")
    uuids = [str(uuidlib.uuid5(_NAMESPACE, f"vm-{n}")) for n in range(1, count + 1)]
    host.add_vms((u, f"vm-{n:05d}", PowerState.RUNNING, "") for n, u in enumerate(uuids, start=1))
    registrations = [
        Registration(u, f"vm-{n:05d}", "A" if n % 2 else "B", Priority(n % 3), n)
        for n, u in enumerate(uuids, start=1) if n % 10
    ]
    store = Store(directory / "vgpu.db")
    vms.db_register_many(store, registrations)
    return store, host, uuids


def keystrokes(uuids: list[str]) -> list[str]:
    """Every prefix of each typical input: what the completer sees as the user types it."""
    registered, unregistered = uuids[1233], uuids[4999]  # vm-01234 is registered; vm-05000 is not
    typed = [
        f"set-pool --vm-uuid={registered[:13]}",
        f"register-vm --vm-uuid={unregistered[:13]}",
        "show-vm --vm-uuid=vm-0123",  # a name prefix
        "repair-vm --vm-uuid=04217",  # a fragment of a name
        "show-vm --vm-uuid=zzzz",  # matches nothing: the whole list is scanned
        "set-pool",
        f"set-pool --vm-uuid={registered} --pool=b",
    ]
    lines = []
    for text in typed:
        cut = text.index("=") + 1 if "=" in text else 1
        cut = text.rindex("=") + 1 if "--pool=" in text else cut
        lines += [text[:end] for end in range(cut, len(text) + 1)]
    return lines


def timed(function, inputs: list, repeat: int) -> list[float]:
    """Milliseconds per call, one sample per input per repetition."""
    samples = []
    for _ in range(repeat):
        for item in inputs:
            start = time.perf_counter_ns()
            function(item)
            samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def report(label: str, samples: list[float], baseline: float) -> bool:
    p50, worst = statistics.median(samples), p99(samples)
    ok = worst <= TARGET_P99_MS
    print(f"{label:<28} p50 {p50:7.3f} ms   p99 {worst:7.3f} ms   (target p99 <= {TARGET_P99_MS:g} ms: "
          f"{'ok' if ok else 'MISSED'})   p50 = {p50 / baseline:5.1f}x baseline")
    return ok


def main() -> int:
    print(benchpath.measured())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store, host, uuids = build_world(Path(folder), options.vms)
        start = time.perf_counter()
        cache = names.build(store, host)
        build_ms = (time.perf_counter() - start) * 1e3
        store.close()
    lines = keystrokes(uuids)
    keys = [vm.uuid for vm in cache.every]
    fragments = [line.rpartition("=")[2].lower() for line in lines]
    baseline = timed(lambda typed: [k for k in keys if k.startswith(typed)], fragments, options.repeat)
    engine = timed(lambda text: completion_engine.suggest(text, cache), lines, options.repeat)
    adapter = VgpuCompleter(lambda: cache)
    through_adapter = timed(
        lambda text: list(adapter.get_completions(Document(text), CompleteEvent())), lines, options.repeat
    )
    base_p50 = statistics.median(baseline)
    print(f"{options.vms} VMs ({len(cache.registered)} registered, {len(cache.unregistered)} not); "
          f"names built once in {build_ms:.0f} ms; {len(lines)} keystrokes x {options.repeat}")
    print(f"{'baseline (startswith scan)':<28} p50 {base_p50:7.3f} ms   p99 {p99(baseline):7.3f} ms")
    ok = report("engine (suggest)", engine, base_p50)
    ok = report("adapter (get_completions)", through_adapter, base_p50) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Hand-built name snapshots for the completion tests: five VMs, two pools, no DB or host needed."""

from __future__ import annotations

from shell.names import NameCache, PoolName, vm_name

U1 = "11111111-aaaa-4aaa-8aaa-000000000001"
U2 = "22222222-bbbb-4bbb-8bbb-000000000002"
U3 = "33333333-cccc-4ccc-8ccc-000000000003"
U4 = "44444444-dddd-4ddd-8ddd-000000000004"
U5 = "55555555-eeee-4eee-8eee-000000000005"


def make_cache(registered=(), unregistered=(), pool_names=None) -> NameCache:
    """registered: (uuid, name, pool[, on_host]); unregistered: (uuid, name) on the host; pool_names: {id: name}
    for pools renamed from the defaults."""
    reg = tuple(vm_name(u, n, p, rest[0] if rest else True, True) for u, n, p, *rest in registered)
    unreg = tuple(vm_name(u, n, None, True, True) for u, n in unregistered)
    counts = {"A": sum(1 for r in registered if r[2] == "A"), "B": sum(1 for r in registered if r[2] == "B")}
    pool_rows = tuple(PoolName(pid, name, counts[pid]) for pid, name in {"A": "Production", "B": "Pool B", **(pool_names or {})}.items())
    return NameCache(reg, unreg, pool_rows, host_ok=True)


CACHE = make_cache(
    registered=[(U1, "web-1", "A"), (U2, "db-main", "B"), (U3, "old-web", "A", False)],
    unregistered=[(U4, "New VM"), (U5, "spare")],
)

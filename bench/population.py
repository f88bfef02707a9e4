"""The simulated host the scan benches measure (scan_status, memory): ``count`` VMs, 90% of them registered
with their segment, one in four with device-model arguments of the admin's own, one in ``drift_every`` of
the registered ones drifted (its segment says another vm_id), a third of all halted."""

from __future__ import annotations

from typing import Any


def populate(host: Any, store: Any, count: int, uuid_prefix: str, drift_every: int) -> None:
    """Adds the VMs to ``host`` (a SimHost) and registers 90% of them in ``store``, in one batch each.
    ``uuid_prefix`` is the UUIDs' first 24 characters, "xxxxxxxx-0000-4000-8000-"."""
    # imported here: memory.py builds in a child process so that the measuring one imports no vgpu
    from vgpu import devargs, vms
    from vgpu.models import PowerState, Priority, Registration, VMConfig

    registrations, rows = [], []
    for number in range(1, count + 1):
        uuid = f"{uuid_prefix}{number:012d}"
        power = PowerState.RUNNING if number % 3 else PowerState.HALTED
        own = f"-vnc 127.0.0.1:{number % 100}" if number % 4 == 0 else ""
        if number % 10:
            config = VMConfig("A" if number % 2 else "B", Priority(number % 3), number)
            registrations.append(Registration(uuid, f"vm-{number}", config.pool_id, config.priority, number))
            if number % drift_every == 0:  # drift: the segment says something else
                config = VMConfig(config.pool_id, config.priority, number + count)
            args = f"{own} {devargs.render(config)}" if own else devargs.render(config)
        else:
            args = own
        rows.append((uuid, f"vm-{number}", power, args))
    host.add_vms(rows)
    vms.db_register_many(store, registrations)

"""Two processes reconfiguring one VM at once: exactly one proceeds, the other is told the VM is busy.

Both children are released together (each prints ``ready`` and waits for a line on stdin); the guest
takes 1.5 s to shut down, so whichever takes the VM's lock first still holds it when the other arrives.
"""

from __future__ import annotations

import re

from vgpu.models import PowerState

from . import crashkit
from .lifekit import config

OLD = config("A", 1, 3)
TARGETS = {"pool": {"pool": "B"}, "priority": {"priority": "low"}}
EXPECTED = {"pool": config("B", 1, 3), "priority": config("A", 0, 3)}


def test_two_processes_one_vm_exactly_one_proceeds(world):
    uuid = world.add(3, "running", OLD, "-vnc :3")
    world.sim.set_latency("clean_shutdown", 1.5)
    children = {
        name: crashkit.spawn(world.store.path, world.sim.path, "reconfigure", uuid, gate=True, **change)
        for name, change in TARGETS.items()
    }
    try:
        for child in children.values():
            assert child.stdout.readline() == "ready\n"
        for child in children.values():  # release both together
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = {name: child.communicate(timeout=60) for name, child in children.items()}
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()

    assert all(child.returncode == 0 for child in children.values()), outputs
    said = {name: out.strip() for name, (out, _) in outputs.items()}
    winners = [name for name, text in said.items() if text == "ok"]
    losers = [name for name, text in said.items() if text != "ok"]
    assert len(winners) == 1 and len(losers) == 1, said
    busy = re.fullmatch(r"error Busy: VM (\S+) is being reconfigured by another session since (\S+ \S+)", said[losers[0]])
    assert busy is not None, said
    assert busy.group(1) == uuid

    assert world.config(uuid) == EXPECTED[winners[0]]
    assert world.agrees(uuid)
    assert world.power(uuid) is PowerState.RUNNING
    assert world.open_ops() == []

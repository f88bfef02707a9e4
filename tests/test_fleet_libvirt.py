"""A mixed fleet with a real host in it: the local libvirtd (qemu:///system) beside a XAPI stand-in pool and
a simulated host, one database. Runs in CI (VGPU_REQUIRE_LIBVIRT=1 turns "libvirt unavailable" into a
failure, see tests/hostkit_libvirt.py); the libvirtd is shared, so only this test's own domains are looked at.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from vgpu import vms
from vgpu.models import PowerState, Priority, Registration

from .fleetkit import fleet_world, ok_lines, segment, uuid_of
from .hostkit_libvirt import URI, libvirt_domains

pytestmark = pytest.mark.integration

POOL_VM, SIM_VM = uuid_of(5, 7), uuid_of(1, 7)


def qemu_argv(name: str) -> str:
    pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")


def test_a_fleet_mixing_real_libvirt_a_xapi_pool_and_a_simulated_host(tmp_path, monkeypatch):
    kvm_vm = str(uuid.uuid4())
    name = f"vgpu-test-{kvm_vm[:8]}"
    with libvirt_domains(tmp_path) as domains, fleet_world(tmp_path, monkeypatch, pools=1) as world:
        domains.add(kvm_vm, name, "running", segment("A", 2, 31))
        world.pools["pool1"].sim.add_vm(POOL_VM, "pool-vm", "halted", segment("A", 1, 32))
        world.sims["gpu1"].add_vm(SIM_VM, "sim-vm", "running", segment("B", 0, 33))
        with world.store() as store:
            vms.db_register_many(store, [Registration(kvm_vm, name, "A", Priority.HIGH, 31),
                                      Registration(POOL_VM, "pool-vm", "A", Priority.MEDIUM, 32),
                                      Registration(SIM_VM, "sim-vm", "B", Priority.LOW, 33)])
        fleet = ["--host", f"kvm={URI}", "--host", f"pool1={world.pools['pool1'].uri()}",
                 "--host", f"gpu1=sim:{world.sims['gpu1'].path}"]

        def cli(*words, stdin=""):
            return world.cli(*words, stdin=stdin, hosts=[word for word in fleet if word != "--host"])

        lines = ok_lines(cli("scan-vms"))
        assert f"UUID: {kvm_vm} | Name: {name} | Pool: A | Priority: high (2) | VM ID: 31 | ✓ Configured | Host: kvm" in lines
        assert f"UUID: {POOL_VM} | Name: pool-vm | Pool: A | Priority: medium (1) | VM ID: 32 | ✓ Configured (halted) | Host: pool1" in lines
        assert f"UUID: {SIM_VM} | Name: sim-vm | Pool: B | Priority: low (0) | VM ID: 33 | ✓ Configured | Host: gpu1" in lines

        # A change to the real guest goes to libvirt by its UUID: stopped, reconfigured, started again.
        moved = cli("set-pool", f"--vm-uuid={kvm_vm}", "--pool=B", "--clean-timeout=120", stdin="yes\n")
        assert moved.code == 0, moved
        assert "pool=B;priority=2;vm_id=31" in qemu_argv(name)
        data = json.loads(cli("status", "--format=json").out)
        (entry,) = [e for e in data["registered"] if e["vm"]["vm_uuid"] == kvm_vm]
        assert (entry["state"], entry["host"], entry["host_vm"]["power_state"]) == ("configured", "kvm", PowerState.RUNNING.value)
        assert world.pools["pool1"].sim.power_state(POOL_VM) is PowerState.HALTED  # the others untouched
        assert world.sims["gpu1"].boots(SIM_VM) == [segment("B", 0, 33)]
        with world.store() as store, store.reading() as conn:
            assert conn.execute("SELECT host, outcome FROM vgpu_operations").fetchall() == [("kvm", "done")]

"""vgpu.demo: seeding the spec's 23-VM example (the example itself is checked in test_scan.py)."""

from __future__ import annotations

import pytest

from vgpu import demo, vms
from vgpu.errors import InvalidRows
from vgpu.hypervisor.sim import SimHost
from vgpu.store import Store


def test_seeding_a_database_that_has_some_of_the_vms_changes_neither_side(tmp_path):
    host, db = SimHost(tmp_path / "host.json"), str(tmp_path / "vgpu.db")
    with Store(db) as store:
        vms.db_register(store, demo.demo_uuid("VM-3"), "VM-3")
    with pytest.raises(InvalidRows):
        demo.seed(host, db)
    assert host.list_vms() == []
    with Store(db) as store:
        assert [vm.vm_name for vm in vms.list_vms(store)] == ["VM-3"]

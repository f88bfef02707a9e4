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


def _demo_contents() -> tuple[int, int]:
    with Store(demo.db_path()) as store:
        registered = len(vms.list_vms(store))
    host = SimHost(demo.host_path())
    try:
        return registered, len(host.list_vms())
    finally:
        host.close()


@pytest.mark.parametrize("second", ["first use", "reset"])
def test_a_second_command_while_the_demo_is_being_seeded_waits_for_it(monkeypatch, second):
    """Two commands on a machine's first use of the demo (two terminals), or a reset during one: the second
    must neither remove the files the first is seeding nor use them half-seeded."""
    import threading

    from vgpu import config, opening

    seeding, proceed = threading.Event(), threading.Event()
    real_seed = demo.seed

    def seed_slowly(host, db):
        if threading.current_thread().name == "first":
            seeding.set()
            proceed.wait(timeout=60)
        real_seed(host, db)

    monkeypatch.setattr(demo, "seed", seed_slowly)
    settings = config.load({"host": "sim:demo"})
    failures: list[BaseException] = []

    def run(action):
        try:
            action()
        except BaseException as error:  # reported below, with the thread's name
            failures.append(error)

    first = threading.Thread(target=run, args=(lambda: opening.prepare_files(settings),), name="first")
    first.start()
    assert seeding.wait(timeout=60)
    other = (lambda: opening.prepare_files(settings)) if second == "first use" else demo.reset
    late = threading.Thread(target=run, args=(other,), name="second")
    late.start()
    late.join(timeout=2)  # unguarded, the second one finishes meanwhile; guarded, it waits for the first
    proceed.set()
    first.join(timeout=60)
    late.join(timeout=60)
    assert failures == []
    assert _demo_contents() == (20, 23)

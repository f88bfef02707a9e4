"""What keeps `status` and `scan-vms` small at fleet size (bench/memory.py measures 100,000 VMs): reports
written line by line as they are rendered, and no second copy of what many VMs have alike."""

from __future__ import annotations

import io

import pytest

from shell.console import Console, stdin_reader
from shell.main import main
from vgpu import devargs, scan, vms
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, Registration, VMConfig
from vgpu.store import Store

COUNT = 3000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """COUNT VMs, nine in ten registered with their segment, two in three running."""
    folder = tmp_path_factory.mktemp("fleet")
    host, db = SimHost(folder / "host.sim"), folder / "vgpu.db"
    rows, registrations = [], []
    for number in range(1, COUNT + 1):
        uuid = f"3e3e0000-0000-4000-8000-{number:012d}"
        config = VMConfig("A" if number % 2 else "B", Priority(number % 3), number)
        registered = number % 10 != 0
        if registered:
            registrations.append(Registration(uuid, f"vm-{number}", config.pool_id, config.priority, number))
        power = PowerState.RUNNING if number % 3 else PowerState.HALTED
        rows.append((uuid, f"vm-{number}", power, devargs.render(config) if registered else ""))
    host.add_vms(rows)
    with Store(db) as store:
        vms.db_register_many(store, registrations)
    return host, db


class _Sink(io.TextIOBase):
    """An output that keeps only the size of what was written, and of its largest single write."""

    def __init__(self) -> None:
        self.total = self.largest = 0

    def write(self, text: str) -> int:
        self.total += len(text)
        self.largest = max(self.largest, len(text))
        return len(text)


@pytest.mark.parametrize("command", ["status", "scan-vms"])
def test_a_report_of_many_vms_is_written_as_it_is_rendered_not_held_whole(fleet, command):
    host, db = fleet
    out, err = _Sink(), io.StringIO()
    code = main([command, "--db", str(db), "--host", f"sim:{host.path}"], Console(out, err, stdin_reader(out, io.StringIO())))
    assert code == 0, err.getvalue()
    assert out.total > 150_000  # every VM is there
    assert out.largest < out.total / 4  # but never as one text, nor its lines joined and copied


def test_the_text_written_line_by_line_is_the_text_rendered_whole(fleet):
    host, db = fleet
    with Store(db) as store:
        report = scan.status(store, host)
    out = io.StringIO()
    Console(out, io.StringIO(), stdin_reader(out, io.StringIO())).say_lines(iter(["a", "b"] * 600))
    assert out.getvalue() == "\n".join(["a", "b"] * 600) + "\n"
    from shell import panel

    assert "\n".join(panel.status_lines(report)) == panel.status(report)


def test_a_vm_running_with_the_args_it_stores_shares_one_parsed_segment(fleet):
    host, db = fleet
    with Store(db) as store:
        report = scan.scan(store, host)
    running = [entry for entry in report.registered if entry.host_vm.power_state is PowerState.RUNNING]
    assert running and all(entry.booted is entry.segment for entry in running)
    assert all(entry.state == "configured" for entry in running)


def test_a_listing_shares_the_args_a_running_vm_stores_and_booted_with(fleet):
    host, _ = fleet
    running = [vm for vm in host.list_vms() if vm.power_state is PowerState.RUNNING and vm.device_model_args]
    assert running and all(vm.booted_args is vm.device_model_args for vm in running)


def test_vms_registered_together_share_their_timestamps(fleet):
    _, db = fleet
    with Store(db) as store:
        listed = vms.list_vms(store)
    assert len({id(vm.created_at) for vm in listed}) == len({vm.created_at for vm in listed})
    assert len({id(vm.updated_at) for vm in listed}) == len({vm.updated_at for vm in listed})

"""The simulated host's storage: one host file shared by processes, a write costing the same whatever the
host's size, and host files from before (one JSON document) still read."""

from __future__ import annotations

import json
import multiprocessing
import os
import tracemalloc

import pytest

from vgpu import devargs
from vgpu.errors import HostUnreachable
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, VMConfig

from .lifekit import vm_uuid


def _host_of(path, count: int) -> SimHost:
    host = SimHost(path)
    host.add_vms([(vm_uuid(number), f"vm-{number}", "running" if number % 2 else "halted", f"-vnc :{number}")
                  for number in range(1, count + 1)])
    return host


def _peak_bytes_of_a_write(host: SimHost, uuid: str) -> int:
    host.get_device_model_args(uuid)  # the connection is open before measuring
    tracemalloc.start()
    try:
        host.set_device_model_args(uuid, "-vnc :0 " + devargs.render(VMConfig("A", Priority.HIGH, 7)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_write_does_not_grow_with_the_number_of_vms_on_the_host(tmp_path):
    # Memory, not time (tests never time): a write that read or rewrote the whole host would hold every VM.
    small = _peak_bytes_of_a_write(_host_of(tmp_path / "small.sim", 20), vm_uuid(3))
    large = _peak_bytes_of_a_write(_host_of(tmp_path / "large.sim", 5000), vm_uuid(3))
    assert large < small * 1.5 + 4096, (small, large)


def test_a_write_keeps_every_other_vm_as_it_was(tmp_path):
    host = _host_of(tmp_path / "host.sim", 50)
    before = {vm.uuid: vm for vm in host.list_vms()}
    host.set_device_model_args(vm_uuid(7), "-vnc :70")
    after = {vm.uuid: vm for vm in host.list_vms()}
    assert after.pop(vm_uuid(7)).device_model_args == "-vnc :70"
    before.pop(vm_uuid(7))
    assert after == before and list(after) == list(before)  # the listing keeps the order VMs were added in


def _write_many(path: str, first: int, count: int) -> None:
    host = SimHost(path)
    for number in range(first, first + count):
        host.set_device_model_args(vm_uuid(number), f"-vnc :{number} written")


def test_processes_writing_at_once_lose_no_write(tmp_path):
    host = _host_of(tmp_path / "host.sim", 40)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(host.path), 1 + 10 * index, 10)) for index in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert [vm.device_model_args for vm in host.list_vms()] == [f"-vnc :{n} written" for n in range(1, 41)]


def test_threads_sharing_one_host_object_lose_no_write(tmp_path):
    import threading

    host = _host_of(tmp_path / "host.sim", 40)
    threads = [threading.Thread(target=lambda i=index: [host.set_device_model_args(vm_uuid(n), f"t{n}")
                                                        for n in range(1 + 10 * i, 11 + 10 * i)]) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [vm.device_model_args for vm in host.list_vms()] == [f"t{n}" for n in range(1, 41)]


def test_a_host_file_replaced_underneath_is_read_anew(tmp_path):
    # The demo's reset removes the host file and makes a new one while a shell may hold the old host open.
    path = tmp_path / "host.sim"
    held = _host_of(path, 3)
    assert len(held.list_vms()) == 3
    os.remove(path)
    _host_of(path, 5)
    assert len(held.list_vms()) == 5
    held.set_device_model_args(vm_uuid(5), "-vnc :55")
    assert SimHost(path).get_device_model_args(vm_uuid(5)) == "-vnc :55"


def test_a_host_file_of_the_json_format_is_converted_in_place(tmp_path):
    path = tmp_path / "host.json"
    running, halted = vm_uuid(1), vm_uuid(2)
    path.write_text(json.dumps({
        "vms": {
            running: {"name": "web", "power_state": "running", "platform": {"device-model-args": "-vnc :1", "viridian": "true"},
                      "halt_at": None, "start_at": None, "boots": ["-vnc :0"], "domain": {"domid": 4, "platform": {"device-model-args": "-vnc :0"}}},
            halted: {"name": "db", "power_state": "halted", "platform": {}, "halt_at": None, "start_at": None, "boots": [], "domain": None},
        },
        "faults": {"start": {halted: "fail"}},
        "latency": {"clean_shutdown": 0.25},
        "next_domid": 5,
    }))
    host = SimHost(path)
    assert [(vm.uuid, vm.name, vm.power_state, vm.device_model_args, vm.booted_args) for vm in host.list_vms()] == [
        (running, "web", PowerState.RUNNING, "-vnc :1", "-vnc :0"), (halted, "db", PowerState.HALTED, "", None)]
    assert host.platform(running) == {"device-model-args": "-vnc :1", "viridian": "true"}
    assert host.boots(running) == ["-vnc :0"] and host.domid(running) == 4
    with pytest.raises(Exception, match="could not start"):
        host.start(halted)  # its fault came along
    host.hard_shutdown(running)
    host.start(running)
    assert host.domid(running) == 5  # the domain counter too


def test_a_file_that_is_no_host_is_a_sentence(tmp_path):
    path = tmp_path / "host.sim"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(HostUnreachable, match=f"simulated host file {path} is unreadable"):
        SimHost(path).list_vms()


def test_a_missing_directory_is_unreachable(tmp_path):
    with pytest.raises(HostUnreachable, match="does not exist"):
        SimHost(tmp_path / "nowhere" / "host.sim").list_vms()


def test_a_directory_named_as_the_host_file_is_unreachable_not_an_internal_error(tmp_path):
    # vgpu-admin --host sim:/some/dir (the directory, not the file in it) crashed in sqlite3.connect
    with pytest.raises(HostUnreachable, match=f"simulated host file {tmp_path} is a directory, not a host file"):
        SimHost(tmp_path).list_vms()

"""The composite host: a fleet of labelled hosts behind the one protocol (vgpu.hypervisor.fleet)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgpu import devargs, lifecycle, locations, vms
from vgpu.devargs import SegmentState
from vgpu.errors import DuplicateVM, HostUnreachable, HypervisorError
from vgpu.hypervisor import codes
from vgpu.hypervisor.base import Hypervisor
from vgpu.hypervisor.fleet import Fleet, as_fleet, for_operation, label_for
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, Registration, VMConfig

from .counting import CountingHost, UnreachableHost

A1 = "f1ee7000-0000-4000-8000-00000000000a"
B1 = "f1ee7000-0000-4000-8000-00000000000b"
TWIN = "f1ee7000-0000-4000-8000-0000000000cc"
ABSENT = "f1ee7000-0000-4000-8000-0000000000ff"


@pytest.fixture
def sims(tmp_path):
    a, b, c = (SimHost(tmp_path / f"{name}.json") for name in "abc")
    a.add_vm(A1, "a-one", "running", "-vnc :1")
    b.add_vm(B1, "b-one", "halted", "")
    c.add_vm("f1ee7000-0000-4000-8000-00000000000c", "c-one", "halted", "")
    return {"gpu1": a, "gpu2": b, "kvm3": c}


@pytest.fixture
def counted(sims):
    return {label: CountingHost(sim) for label, sim in sims.items()}


def test_a_fleet_is_a_hypervisor():
    assert isinstance(Fleet({"x": SimHost("/nonexistent/h.json")}), Hypervisor)


def test_a_listing_asks_each_host_once_and_labels_each_vm(counted):
    fleet = Fleet(counted)
    listed = {vm.uuid: vm.host for vm in fleet.list_vms()}
    assert listed == {A1: "gpu1", B1: "gpu2", "f1ee7000-0000-4000-8000-00000000000c": "kvm3"}
    assert {label: host.calls for label, host in counted.items()} == {label: ["list_vms"] for label in counted}


def test_a_host_that_is_down_is_reported_while_the_others_are_listed(sims):
    sims["gpu2"].set_fault("unreachable", "on")
    listings = {listing.label: listing for listing in Fleet(sims).survey()}
    assert [vm.uuid for vm in listings["gpu1"].vms] == [A1] and listings["kvm3"].ok
    error = listings["gpu2"].error
    assert isinstance(error, HostUnreachable) and str(error).startswith("host gpu2: cannot reach the host: ")
    with pytest.raises(HostUnreachable, match="^host gpu2: cannot reach the host"):
        Fleet(sims).list_vms()  # the protocol's "every VM" cannot be partial


def test_a_call_about_one_vm_asks_every_host_once_then_goes_to_its_host(counted):
    fleet = Fleet(counted)
    assert fleet.power_state(B1) is PowerState.HALTED
    fleet.set_device_model_args(B1, "-m 1")
    fleet.get_device_model_args(B1)
    assert counted["gpu2"].calls == ["power_state", "power_state", "set_device_model_args", "get_device_model_args"]
    assert counted["gpu1"].calls == counted["kvm3"].calls == ["power_state"]  # the one probe each
    assert fleet.label_of(B1) == "gpu2"


def test_after_a_listing_a_call_needs_no_probe(counted):
    fleet = Fleet(counted)
    fleet.list_vms()
    fleet.start(B1)
    assert counted["gpu2"].calls == ["list_vms", "start"]
    assert counted["gpu1"].calls == counted["kvm3"].calls == ["list_vms"]


def test_the_same_uuid_on_two_hosts_is_refused_naming_both(sims):
    sims["gpu1"].add_vm(TWIN, "copy-in-pool-1", "halted", "")
    sims["kvm3"].add_vm(TWIN, "copy-on-kvm3", "halted", "")
    fleet = Fleet(sims)
    with pytest.raises(DuplicateVM) as caught:
        fleet.power_state(TWIN)
    assert caught.value.hosts == ("gpu1", "kvm3")
    assert f"VM {TWIN} is on 2 hosts of the fleet, gpu1 and kvm3" in str(caught.value)
    with pytest.raises(DuplicateVM):  # after a listing too: both copies are listed, never merged
        fleet.list_vms()
        fleet.set_device_model_args(TWIN, "-m 1")
    assert sims["gpu1"].get_device_model_args(TWIN) == sims["kvm3"].get_device_model_args(TWIN) == ""


class ListsTwice(SimHost):
    """A host whose listing holds one VM twice, as no host should."""

    def list_vms(self):
        return [*super().list_vms(), *super().list_vms()]


@pytest.mark.parametrize("label,where", [(None, "the host"), ("gpu1", "host gpu1")])
def test_one_host_listing_a_uuid_twice_is_said_plainly(tmp_path, store, label, where):
    from vgpu import lifecycle

    host = ListsTwice(tmp_path / "twice.json")
    host.add_vm(TWIN, "twin", "halted", "")
    with pytest.raises(DuplicateVM) as caught:
        lifecycle.register_vm(store, host if label is None else Fleet({label: host}), TWIN)
    assert str(caught.value).startswith(f"{where} lists VM {TWIN} twice, which a host never should")
    assert "fleet" not in str(caught.value)


def test_a_vm_that_moved_to_another_host_is_found_again(sims):
    fleet = Fleet(sims)
    fleet.list_vms()
    sims["gpu2"].remove_vm(B1)  # moved: gone from gpu2, now on kvm3
    sims["kvm3"].add_vm(B1, "b-one", "halted", "")
    assert fleet.power_state(B1) is PowerState.HALTED and fleet.label_of(B1) == "kvm3"


def test_a_vm_on_no_host_is_missing_as_on_one_host(sims):
    with pytest.raises(HypervisorError) as caught:
        Fleet(sims).power_state(ABSENT)
    assert codes.vm_missing(caught.value)
    assert str(caught.value) == f"VM {ABSENT} does not exist on any host of the fleet (gpu1, gpu2, kvm3)"


def test_a_vm_on_no_host_that_answered_while_one_is_down_is_not_called_missing(sims):
    sims["kvm3"].set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable) as caught:
        Fleet(sims).power_state(ABSENT)
    assert f"VM {ABSENT} is on none of the hosts that answered, and host kvm3 could not be asked" in str(caught.value)
    assert Fleet(sims).power_state(A1) is PowerState.RUNNING  # found where it is, whatever kvm3 says


def test_a_fleet_of_one_host_passes_calls_and_errors_straight_through(sims):
    single = CountingHost(sims["gpu1"])
    fleet = as_fleet(single)
    assert list(fleet.members) == [""] and [vm.host for vm in fleet.list_vms()] == [""]
    with pytest.raises(HypervisorError) as caught:
        fleet.power_state(ABSENT)
    assert str(caught.value) == f"VM {ABSENT} does not exist on the host"
    assert single.calls == ["list_vms", "power_state"]
    assert as_fleet(fleet) is fleet


def test_hosts_are_asked_at_once_up_to_the_bound(tmp_path):
    parallel, inside, most = 3, [0], [0]
    lock, barrier = threading.Lock(), threading.Barrier(parallel, timeout=60)

    class Gate(SimHost):
        def list_vms(self):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            barrier.wait()  # breaks (and fails the test) unless `parallel` listings run together
            with lock:
                inside[0] -= 1
            return []

    fleet = Fleet({f"h{n}": Gate(tmp_path / f"{n}.json") for n in range(6)}, parallel=parallel)
    assert all(listing.ok for listing in fleet.survey()) and most[0] == parallel


def test_prepare_runs_on_the_calling_thread_before_calls_fan_out(tmp_path):
    seen = []

    class Asks(SimHost):
        def prepare(self):
            seen.append(("prepare", threading.current_thread().name))

        def list_vms(self):
            seen.append(("list", threading.current_thread().name))
            return []

    Fleet({"a": Asks(tmp_path / "a.json"), "b": Asks(tmp_path / "b.json")}).survey()
    here = threading.current_thread().name
    assert [where for what, where in seen if what == "prepare"] == [here, here]
    assert all(where != here for what, where in seen if what == "list")


def test_a_reopened_fleet_shares_where_the_vms_are(counted):
    fleet = Fleet(counted)
    fleet.label_of(B1)
    worker = fleet.reopen()
    assert worker.labels == fleet.labels and worker.label_of(B1) == "gpu2"
    assert sum(host.calls.count("power_state") for host in counted.values()) == 3  # the first probe only


def test_label_for_and_for_operation(sims):
    fleet = Fleet(sims)
    assert label_for(fleet, B1) == "gpu2" and label_for(sims["gpu2"], B1) is None
    assert for_operation(fleet, "kvm3") == (sims["kvm3"], "")
    assert for_operation(fleet, None) == (fleet, "")
    narrowed = Fleet({"gpu1": sims["gpu1"]}, elsewhere=["gpu2", "kvm3"])
    host, why = for_operation(narrowed, "gpu2")
    assert host is None and why.startswith("it was made on host gpu2 of the fleet, and this run has gpu1;")
    assert for_operation(sims["gpu1"], "gpu2")[0] is None


def test_for_operation_of_a_host_taken_out_of_the_configuration_asks_for_its_uri(sims):
    """--host gpu2 would be refused (unknown host 'gpu2') when gpu2 is in no [hosts]: the host must be given again."""
    configured = Fleet({"gpu1": sims["gpu1"], "kvm3": sims["kvm3"]})  # gpu2 neither in this run nor left out
    host, why = for_operation(configured, "gpu2")
    assert host is None and why == ("it was made on host gpu2 of the fleet, and this run has gpu1, kvm3; gpu2 is not "
                                    "one of this run's configured hosts (not in [hosts], nor given by --host): run "
                                    "'vgpu-admin recover' with that host given again (in [hosts], or --host gpu2=URI)")


def test_a_fleet_needs_labels_when_it_has_several_hosts(sims):
    with pytest.raises(ValueError):
        Fleet({"": sims["gpu1"], "b": sims["gpu2"]})
    with pytest.raises(ValueError):
        Fleet({})


@given(pool=st.sampled_from(["A", "B"]), priority=st.sampled_from(list(Priority)), vm_id=st.integers(1, 10**9))
def test_a_scan_reads_args_that_are_exactly_the_segment_as_parsing_would(pool, priority, vm_id):
    """scan's fast path (no regex for args equal to the registered segment) says what devargs.parse says."""
    config = VMConfig(pool, priority, vm_id)
    args = devargs.render(config)
    assert args == " ".join(devargs.segment_args(config))
    assert devargs.parse(args) == SegmentState(True, config, args)


# --- a host that is down is asked once per command ----------------------------------------------------------

YES = lambda plan: True  # noqa: E731
# Each change over a fleet locates the VM (every host asked, or listed), then asks the host it was last seen on.
CHANGES = {
    "reconfigure_vm": lambda store, fleet: lifecycle.reconfigure_vm(store, fleet, B1, priority="high", confirm=YES),
    "apply_vm": lambda store, fleet: lifecycle.apply_vm(store, fleet, B1, confirm=YES),
    "repair_vm": lambda store, fleet: lifecycle.repair_vm(store, fleet, B1),
    "remove_vm": lambda store, fleet: lifecycle.remove_vm(store, fleet, B1),
    "register_vm": lambda store, fleet: lifecycle.register_vm(store, fleet, B1),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_asks_the_host_that_is_down_once_and_the_next_change_asks_it_again(sims, store, change):
    # B1 is on gpu2 now, but was last seen on gpu1, whose connection times out: the change is refused after
    # one attempt there, not two (one while locating the VM, one asking whether gpu1 still has it).
    if change != "register_vm":
        vms.db_register_many(store, [Registration(B1, "b-one", "B", Priority.LOW, 5)])
    with store.writing() as conn:
        locations.record(conn, [(B1, "gpu1", None)])
    down = UnreachableHost()
    fleet = Fleet({"gpu1": down, "gpu2": sims["gpu2"], "kvm3": sims["kvm3"]})  # long-lived, as a notebook's
    for command in (1, 2):
        with pytest.raises(HostUnreachable, match=f"^VM {B1} is on host gpu2, but it was last seen on host gpu1, "
                                                  "which could not be asked \\(cannot reach the host: "):
            CHANGES[change](store, fleet)
        assert len(down.attempts) == command, down.attempts  # once per command: not remembered after it
    assert sims["gpu2"].get_device_model_args(B1) == ""  # nothing was done

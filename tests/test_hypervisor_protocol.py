"""One protocol suite, run over every backend in tests/hostkit.BACKENDS."""

from __future__ import annotations

import threading
import time

import attrs
import pytest

from vgpu import devargs
from vgpu.errors import HypervisorError
from vgpu.hypervisor import codes
from vgpu.models import HostVM, PowerState, Priority, VMConfig

from .hostkit import BACKENDS, SIMULATED

RUNNING = "6f1d2e3c-0000-4000-8000-000000000001"
HALTED = "6f1d2e3c-0000-4000-8000-000000000002"
ABSENT = "6f1d2e3c-0000-4000-8000-0000000000ff"
# The backends that say what a running VM booted with (the others say None: unknown). A remote XenAPI
# connection cannot: xapi keeps no record of it (see vgpu/hypervisor/xenstore.py).
REPORTS_BOOTED_ARGS = {"sim", "xe", "xapi-dom0", "libvirt"}
CANNOT_SEE_GUEST_SHUTDOWNS = {"libvirt"}  # a running VM's current operations are None (cannot tell)
WAIT_LIMIT = 60.0  # seconds; only bounds a wait for the host, so a broken backend fails instead of hanging


def _host_with_two_vms(name, tmp_path):
    with BACKENDS[name](tmp_path) as under_test:
        under_test.add_vm(RUNNING, "web-1", "running", "-vnc 127.0.0.1:1")
        under_test.add_vm(HALTED, "db, primary", "halted", "")
        yield under_test


@pytest.fixture(params=sorted(BACKENDS))
def hut(request, tmp_path):
    yield from _host_with_two_vms(request.param, tmp_path)


@pytest.fixture(params=SIMULATED)
def simulated_hut(request, tmp_path):
    """The backends running over a SimHost, whose faults reach them through their own wire formats
    (a real hypervisor cannot be made to misbehave on cue)."""
    yield from _host_with_two_vms(request.param, tmp_path)


def test_list_vms_returns_every_guest_in_one_call(hut):
    listed = {vm.uuid: vm for vm in hut.host.list_vms()}
    assert set(listed) >= {RUNNING, HALTED}
    booted = "-vnc 127.0.0.1:1" if hut.name in REPORTS_BOOTED_ARGS else None
    # A XAPI pool names the member a running VM is resident on; other hosts have no members.
    resident_on = "xcp1" if hut.name.startswith("xapi") else None
    assert listed[RUNNING] == HostVM(RUNNING, "web-1", PowerState.RUNNING, "-vnc 127.0.0.1:1", booted,
                                     resident_on=resident_on)
    assert listed[HALTED].resident_on is None
    assert listed[HALTED].name == "db, primary"
    assert listed[HALTED].power_state is PowerState.HALTED
    assert listed[HALTED].device_model_args == ""


def test_describe_vm_is_that_vm_as_listed(hut):
    # All but the XAPI pool member it runs on (resident_on), which would cost one more call to name.
    listed = {vm.uuid: attrs.evolve(vm, resident_on=None) for vm in hut.host.list_vms()}
    assert hut.host.describe_vm(RUNNING) == listed[RUNNING]
    assert hut.host.describe_vm(HALTED) == listed[HALTED]
    with pytest.raises(HypervisorError) as caught:
        hut.host.describe_vm(ABSENT)
    assert caught.value.code in (codes.UUID_INVALID, codes.HANDLE_INVALID)
    assert str(caught.value) == f"VM {ABSENT} does not exist on the host"


def test_power_state(hut):
    assert hut.host.power_state(RUNNING) is PowerState.RUNNING
    assert hut.host.power_state(HALTED) is PowerState.HALTED


def test_unknown_vm_is_a_sentence_not_a_traceback(hut):
    with pytest.raises(HypervisorError) as caught:
        hut.host.power_state(ABSENT)
    assert caught.value.code in (codes.UUID_INVALID, codes.HANDLE_INVALID)
    assert "does not exist" in str(caught.value)


def test_args_round_trip_byte_for_byte(hut):
    original = hut.host.get_device_model_args(RUNNING)
    merged = devargs.merge(original, VMConfig("B", Priority.HIGH, 7))
    hut.host.set_device_model_args(RUNNING, merged)
    assert hut.host.get_device_model_args(RUNNING) == merged
    assert devargs.parse(hut.host.get_device_model_args(RUNNING)).config == VMConfig("B", Priority.HIGH, 7)
    hut.host.set_device_model_args(RUNNING, devargs.merge(merged, None))
    assert hut.host.get_device_model_args(RUNNING) == original


def test_empty_args_remove_the_key(hut):
    hut.host.set_device_model_args(HALTED, "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=0;vm_id=3")
    hut.host.set_device_model_args(HALTED, "")
    assert hut.host.get_device_model_args(HALTED) == ""


def test_stop_and_start_cycle(hut):
    assert hut.host.clean_shutdown(RUNNING, timeout=30) is True
    assert hut.host.power_state(RUNNING) is PowerState.HALTED
    hut.host.start(RUNNING)
    assert hut.host.power_state(RUNNING) is PowerState.RUNNING
    hut.host.hard_shutdown(RUNNING)
    assert hut.host.power_state(RUNNING) is PowerState.HALTED


def test_clean_shutdown_of_halted_vm_is_already_done(hut):
    assert hut.host.clean_shutdown(HALTED, timeout=5) is True


def test_clean_shutdown_of_a_halted_vm_is_refused_when_the_caller_believed_it_running(hut):
    with pytest.raises(HypervisorError) as caught:
        hut.host.clean_shutdown(HALTED, timeout=5, halted_ok=False)
    assert caught.value.code == codes.VM_BAD_POWER_STATE and str(caught.value.details[2]).lower() == "halted"
    assert hut.host.power_state(HALTED) is PowerState.HALTED
    assert hut.host.clean_shutdown(RUNNING, timeout=30, halted_ok=False) is True  # a running VM: as without it


def test_forcing_a_halted_vm_is_not_an_error_and_says_it_forced_nothing(hut):
    assert hut.host.hard_shutdown(HALTED) is False  # not "forced off": it was halted already
    assert hut.host.power_state(HALTED) is PowerState.HALTED
    assert hut.host.hard_shutdown(RUNNING) is True
    assert hut.host.power_state(RUNNING) is PowerState.HALTED


def test_starting_a_running_vm_is_bad_power_state(hut):
    with pytest.raises(HypervisorError) as caught:
        hut.host.start(RUNNING)
    assert caught.value.code == codes.VM_BAD_POWER_STATE
    assert "running" in str(caught.value)


def test_guest_that_ignores_shutdown_times_out_then_force_works(simulated_hut):
    simulated_hut.sim.set_fault("clean_shutdown", "ignore", RUNNING)
    assert simulated_hut.host.clean_shutdown(RUNNING, timeout=0.2) is False
    assert simulated_hut.host.power_state(RUNNING) is PowerState.RUNNING
    simulated_hut.host.hard_shutdown(RUNNING)
    assert simulated_hut.host.power_state(RUNNING) is PowerState.HALTED


def test_guest_without_pv_drivers_lacks_feature(simulated_hut):
    simulated_hut.sim.set_fault("clean_shutdown", "lacks_feature", RUNNING)
    with pytest.raises(HypervisorError) as caught:
        simulated_hut.host.clean_shutdown(RUNNING, timeout=5)
    assert caught.value.code == codes.VM_LACKS_FEATURE
    assert "forced" in str(caught.value)


@pytest.mark.parametrize("fault, code, sentence", [
    ("not_acknowledged", codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, "did not acknowledge the request to shut down"),
    ("fail", codes.INTERNAL_ERROR, "internal error"),
])
def test_a_clean_shutdown_the_host_refuses_comes_through_with_its_code(simulated_hut, fault, code, sentence):
    """Each backend reads the host's own answer (xe's printed error, XenAPI's task failure) back to its code."""
    simulated_hut.sim.set_fault("clean_shutdown", fault, RUNNING)
    with pytest.raises(HypervisorError) as caught:
        simulated_hut.host.clean_shutdown(RUNNING, timeout=5)
    assert caught.value.code == code
    assert sentence in str(caught.value)
    assert simulated_hut.host.power_state(RUNNING) is PowerState.RUNNING


def test_the_hosts_own_shutdown_deadline_is_a_timeout_or_its_code(simulated_hut):
    """xapi gives up on a guest by its own deadline: XenAPI (and the simulated host) say VM_SHUTDOWN_TIMEOUT;
    xe prints it, and the xe backend reads it as "not halted in time", as its own deadline."""
    simulated_hut.sim.set_fault("clean_shutdown", "shutdown_timeout", RUNNING)
    try:
        outcome = simulated_hut.host.clean_shutdown(RUNNING, timeout=5)
    except HypervisorError as error:
        outcome = error.code
    assert outcome == (False if simulated_hut.name == "xe" else codes.VM_SHUTDOWN_TIMEOUT)
    assert simulated_hut.host.power_state(RUNNING) is PowerState.RUNNING


def test_start_failure_carries_the_emulator_sentence(simulated_hut):
    simulated_hut.sim.set_fault("start", "fail", HALTED)
    with pytest.raises(HypervisorError) as caught:
        simulated_hut.host.start(HALTED)
    assert caught.value.code == codes.FAILED_TO_START_EMULATOR
    assert "emulator" in str(caught.value)
    assert simulated_hut.host.power_state(HALTED) is PowerState.HALTED


def test_unreachable_host_is_host_unreachable(simulated_hut):
    from vgpu.errors import HostUnreachable

    simulated_hut.sim.set_fault("unreachable", "on")
    with pytest.raises(HostUnreachable):
        simulated_hut.host.list_vms()


def test_reopen_gives_an_independent_working_connection(hut):
    other = hut.host.reopen()
    try:
        assert {vm.uuid for vm in other.list_vms()} >= {RUNNING, HALTED}
    finally:
        other.close()


# --- what a running VM booted with, and what the host is doing to it ------------------------------------


def _booted(hut, vm_uuid):
    """What the listing and the single-VM call say the VM booted with (they must agree)."""
    listed = {vm.uuid: vm for vm in hut.host.list_vms()}[vm_uuid]
    assert hut.host.booted_device_model_args(vm_uuid) == listed.booted_args
    assert hut.host.describe_vm(vm_uuid) == attrs.evolve(listed, resident_on=None)  # one VM, as the listing has it
    return listed.booted_args


def test_booted_args_are_those_the_running_domain_started_with(hut):
    if hut.name not in REPORTS_BOOTED_ARGS:
        assert _booted(hut, RUNNING) is None  # cannot tell: unknown, never a guess
        return
    assert _booted(hut, RUNNING) == "-vnc 127.0.0.1:1"
    assert _booted(hut, HALTED) is None  # no domain, nothing booted
    later = devargs.merge("-vnc 127.0.0.1:1", VMConfig("B", Priority.HIGH, 7))
    hut.host.set_device_model_args(RUNNING, later)  # for the next boot: the running domain keeps what it had
    assert _booted(hut, RUNNING) == "-vnc 127.0.0.1:1"
    assert {vm.uuid: vm.device_model_args for vm in hut.host.list_vms()}[RUNNING] == later
    hut.host.hard_shutdown(RUNNING)
    assert _booted(hut, RUNNING) is None
    hut.host.start(RUNNING)
    assert _booted(hut, RUNNING) == later


def test_a_vm_that_booted_without_args_booted_with_nothing(hut):
    if hut.name not in REPORTS_BOOTED_ARGS:
        return
    hut.host.start(HALTED)
    assert _booted(hut, HALTED) == ""


def test_booted_args_of_an_unknown_vm_is_a_sentence(hut):
    with pytest.raises(HypervisorError) as caught:
        hut.host.booted_device_model_args(ABSENT)
    assert caught.value.code in (codes.UUID_INVALID, codes.HANDLE_INVALID)


def test_an_idle_vm_has_no_current_operations(hut):
    # libvirt cannot see a shutdown request a running guest is still working on: it cannot tell (None).
    assert hut.host.current_operations(RUNNING) == (None if hut.name in CANNOT_SEE_GUEST_SHUTDOWNS else ())
    assert hut.host.current_operations(HALTED) == ()
    with pytest.raises(HypervisorError) as caught:
        hut.host.current_operations(ABSENT)
    assert caught.value.code in (codes.UUID_INVALID, codes.HANDLE_INVALID)


def test_a_start_still_under_way_is_a_current_operation(simulated_hut):
    sim = simulated_hut.sim
    sim.set_latency("start", 1.0)
    starting = threading.Thread(target=simulated_hut.host.reopen().start, args=(HALTED,))
    starting.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while sim.current_operations(HALTED) != ("start",):
            assert time.monotonic() < deadline, "the start never began"
            time.sleep(0.02)
        assert "start" in simulated_hut.host.current_operations(HALTED)
    finally:
        starting.join()
    assert simulated_hut.host.current_operations(HALTED) == ()

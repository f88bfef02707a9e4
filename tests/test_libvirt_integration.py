"""The libvirt backend against a real libvirtd running real QEMU guests (issue 6).

Small diskless TCG domains (tests/hostkit_libvirt.py). What QEMU really received is read from the running
process's /proc/<pid>/cmdline; what the guest really saw, from the serial console of the tiny guest
(tests/guestkit.py), which prints vgpu's fw_cfg blob at boot and powers off on the ACPI power button.
Skips with a reason where libvirt is not usable; fails instead under VGPU_REQUIRE_LIBVIRT=1 (CI).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from vgpu import attention, audit, devargs, recovery, scan, vms
from vgpu.errors import (
    Cancelled,
    HostUnreachable,
    HypervisorError,
    InvalidRows,
    InvalidValue,
    NotFound,
    ReconfigureFailed,
    SegmentChanged,
    ShutdownNotConfirmed,
)
from vgpu.hypervisor import codes
from vgpu.hypervisor.libvirt import LibvirtHost
from vgpu.hypervisor.libvirt_xml import join_args, qemu_args, split_args
from vgpu.lifecycle import StopPolicy, apply_vm, reconfigure_vm, register_vm, remove_vm
from vgpu.models import PowerState, Priority, Registration, VMConfig
from vgpu.store import Store

from . import guestkit
from .clikit import run
from .hostkit_libvirt import URI, Domains, require_libvirt

pytestmark = pytest.mark.integration

ADMIN_ARGS = "-msg timestamp=on"  # an admin's own QEMU option, which every change must keep
BOOT_LIMIT = 180.0  # seconds; only bounds a wait so a broken guest fails the test instead of hanging it
SLOW_POWEROFF = 10  # seconds a slow guest takes from the power button to the power-off, as a real OS may


@pytest.fixture(scope="session")
def tiny_guest() -> guestkit.Guest:
    require_libvirt()
    return guestkit.build_guest()


@pytest.fixture
def domains(tiny_guest, tmp_path):
    with Domains(tmp_path, tiny_guest) as kept:
        yield kept


@pytest.fixture(scope="session")
def slow_guest() -> guestkit.Guest:
    require_libvirt()
    return guestkit.build_guest(poweroff_delay=SLOW_POWEROFF)


@pytest.fixture
def slow_domains(slow_guest, tmp_path):
    """Domains whose guest takes SLOW_POWEROFF seconds to power off after the power button."""
    with Domains(tmp_path, slow_guest) as kept:
        yield kept


@pytest.fixture
def host():
    opened = LibvirtHost(URI)
    yield opened
    opened.close()


def new_vm(domains: Domains, power: str, args: str = ADMIN_ARGS, **kind) -> tuple[str, str]:
    vm_uuid = str(uuid.uuid4())
    name = f"vgpu-test-{vm_uuid[:8]}"
    domains.add(vm_uuid, name, power, args, **kind)
    return vm_uuid, name


def qemu_pid(name: str) -> int:
    return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())


def qemu_argv(name: str) -> list[str]:
    """The command line of the QEMU process running domain ``name``, as the kernel holds it."""
    return Path(f"/proc/{qemu_pid(name)}/cmdline").read_bytes().decode().split("\0")[:-1]


def wait_for(condition: Callable[[], bool], what: str, console: Path | None = None) -> None:
    deadline = time.monotonic() + BOOT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            shown = console.read_text(errors="replace")[-2000:] if console and console.exists() else "(no console output)"
            pytest.fail(f"gave up waiting for {what}; the guest's console ends with:\n{shown}")
        time.sleep(0.2)


def boots_seen(console: Path) -> int:
    return len(guestkit.printed_configs(console))


# --- the segment reaches QEMU ---------------------------------------------------------------------------


def test_segment_reaches_the_running_qemu_command_line(domains, host):
    vm_uuid, name = new_vm(domains, "halted", with_os=False)
    config = VMConfig("B", Priority.HIGH, 7)
    host.set_device_model_args(vm_uuid, devargs.merge(host.get_device_model_args(vm_uuid), config))
    host.start(vm_uuid)
    argv = qemu_argv(name)
    assert devargs.parse_list(argv).config == config
    assert argv[argv.index("-msg") + 1] == "timestamp=on"  # the admin's argument went through as well


def test_redefinition_keeps_uuid_and_everything_else(domains, host):
    vm_uuid, name = new_vm(domains, "halted", with_os=False)
    import libvirt

    conn = libvirt.open(URI)
    try:
        before = conn.lookupByUUIDString(vm_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        with_segment = devargs.merge(ADMIN_ARGS, VMConfig("A", Priority.LOW, 3))
        host.set_device_model_args(vm_uuid, with_segment)
        assert host.get_device_model_args(vm_uuid) == with_segment
        host.set_device_model_args(vm_uuid, ADMIN_ARGS)
        assert conn.lookupByUUIDString(vm_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    finally:
        conn.close()
    assert {vm.uuid: vm.name for vm in host.list_vms()}[vm_uuid] == name


def test_awkward_arguments_survive_libvirt_exactly(domains, host):
    vm_uuid, _ = new_vm(domains, "halted", with_os=False)
    awkward = ["-name", "it's a \"test\"", "", "two  spaces", "x;y,z=1&<>", "\\back"]
    host.set_device_model_args(vm_uuid, join_args(awkward))
    assert split_args(host.get_device_model_args(vm_uuid)) == awkward


def test_arguments_libvirt_cannot_give_back_are_refused(domains, host):
    vm_uuid, _ = new_vm(domains, "halted", with_os=False)
    with pytest.raises(InvalidValue, match="tabs or line breaks"):
        host.set_device_model_args(vm_uuid, join_args(["-name", "line\nbreak"]))
    with pytest.raises(InvalidValue, match="balanced quotes"):
        host.set_device_model_args(vm_uuid, "-name 'oops")
    assert host.get_device_model_args(vm_uuid) == ADMIN_ARGS


def test_args_change_of_a_running_vm_waits_for_its_next_start(domains, host):
    vm_uuid, name = new_vm(domains, "running", with_os=False)
    host.set_device_model_args(vm_uuid, devargs.merge(ADMIN_ARGS, VMConfig("A", Priority.MEDIUM, 4)))
    assert devargs.parse_list(qemu_argv(name)).present is False
    assert devargs.parse(host.get_device_model_args(vm_uuid)).config == VMConfig("A", Priority.MEDIUM, 4)


# --- stopping -------------------------------------------------------------------------------------------


def test_guest_without_an_os_ignores_shutdown_then_force_works(domains, host):
    vm_uuid, _ = new_vm(domains, "running", with_os=False)
    assert host.clean_shutdown(vm_uuid, timeout=4) is False
    assert host.power_state(vm_uuid) is PowerState.RUNNING
    host.hard_shutdown(vm_uuid)
    assert host.power_state(vm_uuid) is PowerState.HALTED
    host.hard_shutdown(vm_uuid)  # already off: fine


def test_machine_without_acpi_lacks_a_clean_shutdown(domains, host):
    vm_uuid, _ = new_vm(domains, "running", with_os=False, acpi=False)
    with pytest.raises(HypervisorError) as caught:
        host.clean_shutdown(vm_uuid, timeout=4)
    assert caught.value.code == codes.VM_LACKS_FEATURE
    # libvirt's cause, as install-libvirt.md gives it: PV drivers are XAPI's, and mean nothing on KVM
    assert str(caught.value) == (f"VM {vm_uuid} cannot shut down cleanly (ACPI off and no agent channel); "
                                 "only a forced stop works")


def test_a_paused_domain_is_not_shut_down_cleanly_and_a_change_planned_before_the_pause_changes_nothing(domains, host, tmp_path):
    # A paused guest never sees the power button: refused at once (as XAPI does), not waited for and forced.
    import libvirt

    store, vm_uuid, _ = registered_vm(domains, tmp_path, with_os=False)
    conn = libvirt.open(URI)
    try:
        with store:
            args = host.get_device_model_args(vm_uuid)

            def paused_meanwhile(plan):
                conn.lookupByUUIDString(vm_uuid).suspend()
                return True

            with pytest.raises(HypervisorError) as caught:
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=paused_meanwhile,
                               policy=StopPolicy(clean_timeout=2, tick=0.1))
            assert caught.value.code == codes.VM_BAD_POWER_STATE
            assert str(caught.value) == (f"VM {vm_uuid} is paused; resume it or shut it down first, then try again; "
                                         "nothing was changed")
            assert host.power_state(vm_uuid) is PowerState.PAUSED and host.get_device_model_args(vm_uuid) == args
            assert vms.get(store, vm_uuid).pool_id == "A"
            with pytest.raises(HypervisorError) as refused:
                host.clean_shutdown(vm_uuid, timeout=2)
            assert refused.value.code == codes.VM_BAD_POWER_STATE and refused.value.details[2] == "paused"
    finally:
        if conn.lookupByUUIDString(vm_uuid).state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            conn.lookupByUUIDString(vm_uuid).resume()
        conn.close()


def test_real_guest_prints_its_config_and_stops_without_force(domains, host):
    vm_uuid, _ = new_vm(domains, "halted")
    config = VMConfig("B", Priority.LOW, 12)
    host.set_device_model_args(vm_uuid, devargs.merge(ADMIN_ARGS, config))
    host.start(vm_uuid)
    console = domains.console(vm_uuid)
    wait_for(lambda: boots_seen(console) == 1, "the guest to print its configuration", console)
    assert guestkit.printed_configs(console) == [devargs.payload(config)]
    assert host.clean_shutdown(vm_uuid, timeout=120) is True
    assert "power button pressed" in console.read_text()


def test_shutdown_asked_while_the_guest_boots_is_asked_again(domains, host):
    """The first request reaches a guest that cannot hear it yet; the re-sent one stops it cleanly."""
    vm_uuid, _ = new_vm(domains, "running")
    assert host.clean_shutdown(vm_uuid, timeout=120) is True
    assert host.power_state(vm_uuid) is PowerState.HALTED
    assert "power button pressed" in domains.console(vm_uuid).read_text()


# --- stop means stopped, through the lifecycle -----------------------------------------------------------


def registered_vm(domains, tmp_path, **kind) -> tuple[Store, str, str]:
    vm_uuid, name = new_vm(domains, "running", **kind)
    store = Store(tmp_path / "vgpu.db")
    vms.db_register_many(store, [Registration(vm_uuid, name, "A", Priority.LOW, 5)])
    return store, vm_uuid, name


def test_a_guest_that_refuses_a_clean_shutdown_is_forced_and_the_audit_says_why(domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False, acpi=False)  # no ACPI: it cannot hear it
    with store:
        result = reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True, policy=StopPolicy(clean_timeout=120))
        assert (result.stopped_how, result.restarted) == ("forced", True)
        assert "cannot shut down cleanly" in result.stop_reason
        (stop,) = [entry.new for entry in audit.history(store, vm_uuid) if entry.action == "stop"]
        assert stop == {"stop": "forced", "reason": result.stop_reason}
        assert devargs.parse_list(qemu_argv(name)).config == VMConfig("B", Priority.LOW, 5)


def test_without_force_a_refusing_guest_keeps_running_and_nothing_changes(domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False, acpi=False)
    with store:
        pid = qemu_pid(name)
        with pytest.raises(HypervisorError) as caught:
            reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True, policy=StopPolicy(force=False))
        assert caught.value.code == codes.VM_LACKS_FEATURE and str(caught.value).endswith("; nothing was changed")
        assert qemu_pid(name) == pid and vms.get(store, vm_uuid).pool_id == "A"


def _made_transient(vm_uuid: str):
    """Undefine a running domain: it keeps running, as a transient domain, until it stops, when the host
    forgets it. The caller destroys it at the end (the Domains kit cannot undefine a transient domain)."""
    import libvirt

    conn = libvirt.open(URI)
    dom = conn.lookupByUUIDString(vm_uuid)
    dom.undefine()
    return conn, dom


@pytest.mark.parametrize("force", [True, False])
def test_a_registered_guest_made_transient_is_never_stopped_by_a_change(domains, host, tmp_path, force):
    # Stopping a transient domain is deleting it: the change is refused before anything is asked of it.
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    conn, dom = _made_transient(vm_uuid)
    try:
        with store:
            pid = qemu_pid(name)
            with pytest.raises(HypervisorError) as caught:
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True,
                               policy=StopPolicy(clean_timeout=2, force=force))
            assert caught.value.code == codes.VM_IS_TRANSIENT, caught.value
            assert "transient" in str(caught.value) and str(caught.value).endswith("; nothing was changed")
            assert qemu_pid(name) == pid and host.power_state(vm_uuid) is PowerState.RUNNING
            assert vms.get(store, vm_uuid).pool_id == "A"
            assert recovery.recover(store, host) == []  # nothing left unfinished
            with store.reading() as db:
                assert attention.select(db, vm_uuid) == []  # not marked: nothing was asked of the guest
    finally:
        dom.destroy()
        conn.close()


def test_a_guest_undefined_while_a_change_waits_for_its_shutdown_is_not_lost_unsaid(slow_domains, host, tmp_path):
    """The power button was pressed before the domain was undefined: the guest will act on it, and libvirt
    then deletes the transient domain. The change stops pressing, says so, and marks the VM; defined again
    (as it advises), the domain halts and stays."""
    import libvirt

    store, vm_uuid, name = registered_vm(slow_domains, tmp_path)
    console = slow_domains.console(vm_uuid)
    wait_for(lambda: guestkit.READY_MARK in console.read_text(errors="replace"), "the guest to listen to its power button", console)
    conn = libvirt.open(URI)
    dom = conn.lookupByUUIDString(vm_uuid)
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)

    undefined = []

    def undefine_while_waiting(event):
        if event.step == "stopping" and event.elapsed > 0 and not undefined:  # the power button was pressed
            undefined.append(dom.undefine())

    try:
        with store:
            with pytest.raises(HypervisorError) as caught:
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True, progress=undefine_while_waiting,
                               policy=StopPolicy(clean_timeout=60, tick=0.2))
            message = str(caught.value)
            assert "nothing was changed" not in message and "may still halt by itself" in message, message
            assert "unless it is defined again (virsh define)" in message, message
            assert host.power_state(vm_uuid) is PowerState.RUNNING  # not forced off: that would delete it
            assert vms.get(store, vm_uuid).pool_id == "A" and recovery.recover(store, host) == []
            with store.reading() as db:
                assert [(mark.vm_uuid, mark.kind) for mark in attention.select(db)] == [(vm_uuid, "shutdown-unconfirmed")]
            conn.defineXML(definition)  # what the message advises, before the guest acts on the request
            wait_for(lambda: not dom.isActive(), "the guest to power off", console)
            assert host.power_state(vm_uuid) is PowerState.HALTED  # still there: defined again in time
    finally:
        with contextlib.suppress(libvirt.libvirtError):  # gone already when it was lost
            if dom.isActive() and not dom.isPersistent():
                dom.destroy()
        conn.close()


def test_a_transient_guest_is_listed_as_such_shown_without_a_next_boot_and_refused_when_planned(domains, host, tmp_path):
    # No question, no "Shutting down" line before the refusal (vgpu.power says it before the host refuses the stop).
    from shell import render
    from vgpu import bulk
    from vgpu.lifecycle import plan_reconfigure

    vm_uuid, name = new_vm(domains, "halted", with_os=False)
    other, _ = new_vm(domains, "running", with_os=False)
    store = Store(tmp_path / "vgpu.db")
    register_vm(store, host, vm_uuid, pool="A")
    host.start(vm_uuid)  # running with its registered configuration: "Configured", until it was made transient
    conn, dom = _made_transient(vm_uuid)
    try:
        with store:
            transient = {vm.uuid: vm.transient for vm in host.list_vms()}
            assert (transient[vm_uuid], transient[other]) == (True, False)
            assert host.describe_vm(vm_uuid).transient and not host.describe_vm(other).transient
            with pytest.raises(HypervisorError) as caught:
                plan_reconfigure(store, host, vm_uuid, pool="B")
            assert caught.value.code == codes.VM_IS_TRANSIENT and str(caught.value).endswith("; nothing was changed")
            asked, said = [], []
            with pytest.raises(HypervisorError):
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=asked.append, progress=said.append)
            assert asked == [] and said == []
            with pytest.raises(InvalidRows) as rows:
                bulk.plan_many(store, host, [{"vm_uuid": vm_uuid, "pool": "B"}])
            assert rows.value.problems[0].error.code == codes.VM_IS_TRANSIENT
            view = scan.inspect_vm(store, host, vm_uuid)
            text = render.show_vm(view.vm, view.host_vm, view.segment, view.host_error, booted=view.booted, state=view.state)
            assert "Status: ✓ Configured (transient)" in text and "next boot" not in text, text
            assert host.power_state(vm_uuid) is PowerState.RUNNING and vms.get(store, vm_uuid).pool_id == "A"
    finally:
        dom.destroy()
        conn.close()


def test_a_transient_guest_refused_registration_leaves_no_history(domains, host, tmp_path):
    vm_uuid, name = new_vm(domains, "running", with_os=False)
    conn, dom = _made_transient(vm_uuid)
    try:
        with Store(tmp_path / "vgpu.db") as store:
            with pytest.raises(HypervisorError) as caught:
                register_vm(store, host, vm_uuid, pool="A")
            assert caught.value.code == codes.VM_IS_TRANSIENT
            assert str(caught.value).endswith("; the VM was not registered")
            assert vms.find(store, vm_uuid) is None and audit.history(store, vm_uuid) == []
    finally:
        dom.destroy()
        conn.close()


def test_a_transient_guest_is_not_stopped_by_the_host_calls_either(domains, host, tmp_path):
    vm_uuid, name = new_vm(domains, "running", with_os=False)
    conn, dom = _made_transient(vm_uuid)
    try:
        for stop in (lambda: host.clean_shutdown(vm_uuid, 2), lambda: host.hard_shutdown(vm_uuid)):
            with pytest.raises(HypervisorError) as caught:
                stop()
            assert caught.value.code == codes.VM_IS_TRANSIENT
        assert dom.isActive()
    finally:
        dom.destroy()
        conn.close()


def _managed_saved(vm_uuid: str):
    """``virsh managedsave``: the running domain's state is saved and it goes off; its next start resumes
    that state, with the arguments it ran with then. The caller removes the image at the end."""
    import libvirt

    conn = libvirt.open(URI)
    dom = conn.lookupByUUIDString(vm_uuid)
    dom.managedSave()
    return conn, dom


def test_a_managed_saved_guest_is_suspended_with_what_it_will_resume_with(domains, host, tmp_path):
    # What libvirt-guests does to every guest at a host's shutdown (ON_SHUTDOWN=suspend). Its next start
    # restores the saved state, so the args written for it are not what it will run with: not "halted".
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    host.set_device_model_args(vm_uuid, devargs.merge(ADMIN_ARGS, VMConfig("A", Priority.LOW, 5)))  # for its next boot
    conn, dom = _managed_saved(vm_uuid)
    try:
        with store:
            assert host.power_state(vm_uuid) is PowerState.SUSPENDED
            seen = host.describe_vm(vm_uuid)
            assert (seen.power_state, seen.booted_args) == (PowerState.SUSPENDED, ADMIN_ARGS)  # the saved state's
            assert host.booted_device_model_args(vm_uuid) == ADMIN_ARGS
            (entry,) = [e for e in scan.scan(store, host).registered if e.vm.vm_uuid == vm_uuid]
            assert entry.state == "pending"  # it resumes without its segment: a fresh boot would take it
            with pytest.raises(HypervisorError) as refused:
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True)
            assert refused.value.code == codes.VM_BAD_POWER_STATE and "is suspended" in str(refused.value)
            assert vms.get(store, vm_uuid).pool_id == "A" and dom.hasManagedSaveImage()
            with pytest.raises(HypervisorError) as resumed:
                host.start(vm_uuid)  # a start of ours would resume the old state, not boot with the args
            assert resumed.value.code == codes.VM_BAD_POWER_STATE and not dom.isActive()
    finally:
        dom.managedSaveRemove()
        conn.close()


def test_a_guest_saved_while_a_change_waits_for_its_shutdown_is_not_reported_shut_down(slow_domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(slow_domains, tmp_path)
    wait_for(lambda: boots_seen(slow_domains.console(vm_uuid)) == 1, "the guest to boot", slow_domains.console(vm_uuid))
    saved = {}

    def save_while_waiting(event):
        if event.step == "stopping" and event.elapsed > 0 and not saved:  # the power button was pressed
            saved["at"] = _managed_saved(vm_uuid)

    try:
        with store:
            with pytest.raises(HypervisorError) as caught:
                reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True, progress=save_while_waiting)
            assert "is suspended" in str(caught.value) and str(caught.value).endswith("; nothing was changed")
            assert vms.get(store, vm_uuid).pool_id == "A"
            assert host.power_state(vm_uuid) is PowerState.SUSPENDED
    finally:
        if saved:
            conn, dom = saved["at"]
            if dom.hasManagedSaveImage():
                dom.managedSaveRemove()
            conn.close()


def _when_the_power_button_is_pressed(console: Path, act: Callable[[], None]) -> threading.Thread:
    """A thread that does ``act`` once the guest says it got the power button (its clean shutdown is under
    way and, for a slow guest, SLOW_POWEROFF seconds from its own power-off): what an admin does meanwhile."""
    def watch() -> None:
        deadline = time.monotonic() + BOOT_LIMIT
        while "power button pressed" not in console.read_text(errors="replace"):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        act()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _destroy(vm_uuid: str) -> None:
    import libvirt

    conn = libvirt.open(URI)
    try:
        conn.lookupByUUIDString(vm_uuid).destroy()  # virsh destroy
    finally:
        conn.close()


def test_a_guest_destroyed_during_its_clean_shutdown_is_not_said_to_have_shut_down_cleanly(slow_domains, tmp_path):
    # As the admin found it: set-priority waits for the power-off, and the guest is destroyed meanwhile. libvirt
    # says "shut off (destroyed)": the line and history say it was found halted, not that it shut down cleanly.
    vm_uuid, name = new_vm(slow_domains, "running")
    console = slow_domains.console(vm_uuid)
    wait_for(lambda: guestkit.READY_MARK in console.read_text(errors="replace"), "the guest to listen to its power button", console)
    flags = ["--host", URI, "--db", str(tmp_path / "vgpu.db")]
    assert run(["register-vm", f"--vm-uuid={vm_uuid}", "--pool=A", "--priority=low", *flags]).code == 0
    destroyer = _when_the_power_button_is_pressed(console, lambda: _destroy(vm_uuid))
    changed = run(["set-priority", f"--vm-uuid={vm_uuid}", "--priority=high", "--clean-timeout=30", *flags], stdin="yes\n")
    destroyer.join(timeout=5)
    assert changed.code == 0, changed
    lines = changed.out_lines + changed.err_lines
    assert not any("shut down cleanly" in line for line in lines), lines
    assert changed.out_lines[-1].startswith("The VM was found halted after its clean shutdown failed (the clean "
                                            "shutdown failed: "), changed.out_lines[-1]
    assert "was shut off by being destroyed" in changed.out_lines[-1], changed.out_lines[-1]
    history = run(["history", f"--vm-uuid={vm_uuid}", *flags]).out_lines
    (stop,) = [line for line in history if " | stop | " in line]
    assert " | found halted after its clean shutdown failed (the clean shutdown failed: " in stop and "shut off by being destroyed" in stop, stop
    assert devargs.parse_list(qemu_argv(name)).config == VMConfig("A", Priority.HIGH, 1)  # started again, changed


def test_without_force_a_guest_that_crashed_during_its_clean_shutdown_is_audited_as_halted_not_clean(slow_domains, host, tmp_path):
    # QEMU killed while the guest works on the power button: libvirt says "shut off (crashed)". Forcing off, the
    # change is refused as any failed clean shutdown is, and the stop is audited as the halt it was.
    store, vm_uuid, name = registered_vm(slow_domains, tmp_path)
    console = slow_domains.console(vm_uuid)
    wait_for(lambda: guestkit.READY_MARK in console.read_text(errors="replace"), "the guest to listen to its power button", console)
    killer = _when_the_power_button_is_pressed(console, lambda: os.kill(qemu_pid(name), signal.SIGKILL))
    with store:
        with pytest.raises(HypervisorError) as caught:
            reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True,
                           policy=StopPolicy(clean_timeout=30, force=False))
        killer.join(timeout=5)
        assert "shut off by crashing" in str(caught.value) and caught.value.vm_restarted, caught.value
        (stop,) = [entry.new for entry in audit.history(store, vm_uuid) if entry.action == "stop"]
        assert stop["stop"] == "halted" and "shut off by crashing" in stop["reason"], stop
        assert vms.get(store, vm_uuid).pool_id == "A" and host.power_state(vm_uuid) is PowerState.RUNNING


def test_without_force_a_guest_that_ignores_the_power_button_is_marked_not_nothing(domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)  # ACPI, but nothing in it listens
    with store:
        pid = qemu_pid(name)
        with pytest.raises(ShutdownNotConfirmed) as caught:
            reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True,
                           policy=StopPolicy(clean_timeout=2, force=False))
        assert "nothing was changed" not in str(caught.value) and "may still halt by itself" in str(caught.value)
        assert qemu_pid(name) == pid and vms.get(store, vm_uuid).pool_id == "A"
        with store.reading() as conn:
            assert [(mark.vm_uuid, mark.kind) for mark in attention.select(conn)] == [(vm_uuid, "shutdown-unconfirmed")]


# --- errors as sentences --------------------------------------------------------------------------------


def test_libvirt_errors_are_sentences(domains, host):
    vm_uuid, _ = new_vm(domains, "running", with_os=False)
    with pytest.raises(HypervisorError) as running:
        host.start(vm_uuid)
    assert running.value.code == codes.VM_BAD_POWER_STATE
    assert str(running.value) == f"VM {vm_uuid} is running, but the operation needs it halted"
    with pytest.raises(HypervisorError) as absent:
        host.get_device_model_args("not-a-uuid")
    assert str(absent.value) == "VM not-a-uuid does not exist on the host"


def test_qemu_that_will_not_start_is_an_emulator_sentence(domains, host):
    vm_uuid, _ = new_vm(domains, "halted", args="-no-such-option", with_os=False)
    with pytest.raises(HypervisorError) as caught:
        host.start(vm_uuid)
    assert caught.value.code == codes.FAILED_TO_START_EMULATOR
    sentence = str(caught.value)
    assert sentence.startswith(f"the host could not start the device emulator (QEMU) for VM {vm_uuid}: ")
    # libvirt starts its message with "internal error: " itself: after our sentence's own cause it said nothing
    assert "internal error" not in sentence and "no-such-option" in sentence, sentence
    assert host.power_state(vm_uuid) is PowerState.HALTED


def test_unreachable_libvirtd_is_host_unreachable_at_the_first_call(tiny_guest):
    host = LibvirtHost("qemu+unix:///system?socket=/nonexistent/libvirt-sock")  # connects on first use
    with pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert str(caught.value).startswith("cannot reach the host: ")
    host.close()


def test_libvirts_own_internal_error_is_said_once(tiny_guest):
    # libvirt starts such messages with "internal error: " itself; the sentence said it twice.
    host = LibvirtHost("qemu:///nosuch")
    with pytest.raises(HypervisorError) as caught:
        host.list_vms()
    assert str(caught.value) == "the host failed with an internal error: unexpected qemu URI path '/nosuch', try qemu:///system"
    host.close()


def test_closed_connection_is_a_sentence(tiny_guest):
    closed = LibvirtHost(URI)
    closed.close()
    with pytest.raises(HostUnreachable, match="was closed"):
        closed.list_vms()


# --- end to end through the lifecycle -------------------------------------------------------------------


def test_a_running_guest_registered_is_pending_until_applied_then_prints_its_config(domains, tmp_path):
    """As an admin would: register a guest that is running, see it pending restart, apply it, and find the
    new configuration on QEMU's command line and in what the guest itself read at boot."""
    vm_uuid, name = new_vm(domains, "running")
    console = domains.console(vm_uuid)
    wait_for(lambda: boots_seen(console) == 1, "the guest to boot", console)
    flags = ["--host", URI, "--db", str(tmp_path / "vgpu.db")]
    config = VMConfig("B", Priority.HIGH, 16)

    assert run(["register-vm", f"--vm-uuid={vm_uuid}", "--pool=B", "--priority=high", "--vm-id=16", *flags]).code == 0
    scanned = run(["scan-vms", *flags]).out_lines
    assert f"UUID: {vm_uuid} | Name: {name} | Pool: B | Priority: high (2) | VM ID: 16 | ⚠ Pending restart" in scanned
    shown = run(["show-vm", f"--vm-uuid={vm_uuid}", *flags]).out_lines
    assert f"Running with: ⚠ no vgpu segment - pending restart (run 'vgpu-admin apply-vm --vm-uuid={vm_uuid}')" in shown
    assert devargs.parse_list(qemu_argv(name)).present is False  # what QEMU really runs with

    applied = run(["apply-vm", f"--vm-uuid={vm_uuid}", *flags], stdin="yes\n")
    assert applied.code == 0, applied
    assert applied.out_lines[-2:] == [f"Applied the registered configuration to {name} ({vm_uuid}): "
                                      "pool=B;priority=2;vm_id=16.",
                                      "The VM was shut down cleanly and started again with it."]
    assert devargs.parse_list(qemu_argv(name)).config == config
    wait_for(lambda: boots_seen(console) == 2, "the restarted guest to print its configuration", console)
    assert guestkit.printed_configs(console) == ["none", devargs.payload(config)]
    scanned = run(["scan-vms", *flags]).out_lines
    assert f"UUID: {vm_uuid} | Name: {name} | Pool: B | Priority: high (2) | VM ID: 16 | ✓ Configured" in scanned


def test_a_guest_whose_stored_args_change_while_it_runs_keeps_what_it_booted_with(domains, host):
    vm_uuid, name = new_vm(domains, "running", with_os=False)
    host.set_device_model_args(vm_uuid, devargs.merge(ADMIN_ARGS, VMConfig("A", Priority.LOW, 2)))
    assert host.booted_device_model_args(vm_uuid) == ADMIN_ARGS
    assert {vm.uuid: vm.booted_args for vm in host.list_vms()}[vm_uuid] == ADMIN_ARGS
    assert devargs.parse_list(qemu_argv(name)).present is False  # and QEMU indeed runs without the segment


def test_a_rollback_puts_the_previous_segment_back_beside_a_qemu_arg_added_meanwhile(domains, tmp_path):
    # While the change has the VM stopped, an admin adds a <qemu:arg> (virsh edit), keeping the change's segment;
    # the start then fails once: the VM must boot again with its previous segment, and the admin's arg.
    vm_uuid, name = new_vm(domains, "running", with_os=False)
    added = ["-smbios", "type=1,serial=admin"]

    class EditedThenRefused(LibvirtHost):
        tried = False

        def start(self, vm_uuid_: str) -> None:
            if self.tried:
                return super().start(vm_uuid_)
            self.tried = True
            self.set_device_model_args(vm_uuid_, join_args(split_args(self.get_device_model_args(vm_uuid_)) + added))
            raise codes.host_error(codes.FAILED_TO_START_EMULATOR, [vm_uuid_, name, "it failed once"], vm_uuid_)

    host = EditedThenRefused(URI)
    try:
        with Store(tmp_path / "vgpu.db") as store:
            register_vm(store, host, vm_uuid, pool="A", priority="high")
            with pytest.raises(ReconfigureFailed) as caught:
                reconfigure_vm(store, host, vm_uuid, priority="low", confirm=lambda plan: True,
                               policy=StopPolicy(clean_timeout=2))
            assert str(caught.value).endswith("the previous configuration was restored and the VM started again")
            previous = VMConfig("A", Priority.HIGH, 1)
            argv = qemu_argv(name)
            assert devargs.parse_list(argv).config == previous and argv[argv.index("-smbios") + 1] == added[1]
            assert vms.get(store, vm_uuid).config == previous
    finally:
        host.close()


def _edited_while_updating(vm_uuid: str, edit: Callable[[list[str]], list[str]]):
    """A progress callback that, as the change updates the database (after it read the args once the VM was
    stopped, before it writes them), redefines the domain with its <qemu:arg> list edited: an admin's
    virsh edit landing in that window."""
    done = []

    def progress(event) -> None:
        if event.step == "updating" and not done:
            admin = LibvirtHost(URI)
            try:
                done.append(admin.set_device_model_args(vm_uuid, join_args(edit(split_args(admin.get_device_model_args(vm_uuid))))))
            finally:
                admin.close()

    return progress


def test_an_admins_edit_of_other_args_between_the_changes_read_and_its_write_is_kept(domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    added = ["-smbios", "type=1,serial=admin"]
    with store:
        result = reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True,
                                progress=_edited_while_updating(vm_uuid, lambda argv: argv + added),
                                policy=StopPolicy(clean_timeout=2))
        assert result.changed and result.restarted
        new = VMConfig("B", Priority.LOW, 5)
        args = split_args(host.get_device_model_args(vm_uuid))
        assert args[args.index("-smbios") + 1] == added[1], args  # the admin's edit kept
        assert devargs.parse(host.get_device_model_args(vm_uuid)).config == new  # and vgpu's segment is the new one
        argv = qemu_argv(name)
        assert argv[argv.index("-smbios") + 1] == added[1] and devargs.parse_list(argv).config == new
        assert "-msg" in argv  # ADMIN_ARGS, there from the start


def test_a_change_of_the_vgpu_segment_between_the_changes_read_and_its_write_is_refused_and_left(domains, host, tmp_path):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    theirs = VMConfig("A", Priority.HIGH, 7)
    with store:
        with pytest.raises(SegmentChanged) as caught:  # a refusal, as during the shutdown: not "failed with" the change
            reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True,
                           progress=_edited_while_updating(vm_uuid, lambda argv: split_args(devargs.merge(join_args(argv), theirs))),
                           policy=StopPolicy(clean_timeout=2))
        said = str(caught.value)
        assert said.endswith("changed on the host after this plan was made; plan again; its configuration was not "
                             "changed and the VM was started again"), said
        assert vms.get(store, vm_uuid).config == VMConfig("A", Priority.LOW, 5)  # the database as it was
        assert devargs.parse(host.get_device_model_args(vm_uuid)).config == theirs  # their segment left as they wrote it
        assert host.power_state(vm_uuid) is PowerState.RUNNING and devargs.parse_list(qemu_argv(name)).config == theirs


def test_register_scan_reconfigure_yes_then_no_then_remove(domains, host, tmp_path):
    vm_uuid, name = new_vm(domains, "running")
    console = domains.console(vm_uuid)
    with Store(tmp_path / "vgpu.db") as store:
        registered = register_vm(store, host, vm_uuid, pool="A", priority="low", vm_id=5).vm
        assert registered.config == VMConfig("A", Priority.LOW, 5)
        # Its QEMU still runs without the segment: pending restart, never "configured".
        assert [entry.state for entry in scan.scan(store, host).registered if entry.vm.vm_uuid == vm_uuid] == ["pending"]

        new = VMConfig("B", Priority.HIGH, 9)
        result = reconfigure_vm(store, host, vm_uuid, pool="B", priority="high", vm_id=9, confirm=lambda plan: True, policy=StopPolicy(clean_timeout=120, force=False))
        assert (result.changed, result.restarted, result.stopped_how) == (True, True, "clean")
        assert devargs.parse_list(qemu_argv(name)).config == new
        wait_for(lambda: boots_seen(console) == 2, "the restarted guest to print its configuration", console)
        assert guestkit.printed_configs(console) == ["none", devargs.payload(new)]

        pid = qemu_pid(name)
        with pytest.raises(Cancelled):
            reconfigure_vm(store, host, vm_uuid, pool="A", confirm=lambda plan: False)
        assert qemu_pid(name) == pid  # not restarted
        assert vms.get(store, vm_uuid).config == new
        assert devargs.parse(host.get_device_model_args(vm_uuid)).config == new

        remove_vm(store, host, vm_uuid)
        with pytest.raises(NotFound):
            vms.get(store, vm_uuid)
        assert host.get_device_model_args(vm_uuid) == ADMIN_ARGS


# --- recovery -------------------------------------------------------------------------------------------


class InterruptedWhileStopping:
    """The libvirt host, except that a clean shutdown presses the power button and is then interrupted, as
    Ctrl-C (or a kill) cuts vgpu-admin short while it waits for the guest: the guest has the request."""

    def __init__(self, host: LibvirtHost) -> None:
        self.host = host

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        import libvirt

        conn = libvirt.open(URI)
        try:
            conn.lookupByUUIDString(vm_uuid).shutdown()
        finally:
            conn.close()
        raise KeyboardInterrupt

    def __getattr__(self, name: str):
        return getattr(self.host, name)


def test_recover_after_an_interrupted_shutdown_sees_it_through_and_starts_the_guest_again(slow_domains, host, tmp_path):
    """libvirt shows nothing under way while a guest works on the power button: recover must not take the
    VM for one that kept running (it would halt a few seconds later and stay off, unreported)."""
    vm_uuid, name = new_vm(slow_domains, "running")
    console = slow_domains.console(vm_uuid)
    wait_for(lambda: guestkit.READY_MARK in console.read_text(errors="replace"), "the guest to listen to its power button", console)
    with Store(tmp_path / "vgpu.db") as store:
        old = register_vm(store, host, vm_uuid, pool="A", priority="low", vm_id=5).vm.config
        with pytest.raises(KeyboardInterrupt):
            reconfigure_vm(store, InterruptedWhileStopping(host), vm_uuid, pool="B", confirm=lambda plan: True)
        assert host.power_state(vm_uuid) is PowerState.RUNNING  # the guest is still shutting down

        (outcome,) = recovery.recover(store, host, policy=StopPolicy(clean_timeout=120, force=False))
        assert (outcome.action, outcome.settled) == ("rolled-back", True)
        assert outcome.detail == ("the change had not reached the database; the previous configuration is kept and "
                                  "the VM was started again")
        assert host.power_state(vm_uuid) is PowerState.RUNNING
        assert "power button pressed" in console.read_text(errors="replace")  # the first boot did halt
        wait_for(lambda: boots_seen(console) == 2, "the guest to boot again", console)
        assert guestkit.printed_configs(console) == ["none", devargs.payload(old)]
        assert vms.get(store, vm_uuid).config == old and recovery.recover(store, host) == []


# --- a blob kept as libvirt's own fw_cfg entry ----------------------------------------------------------


def with_fw_cfg_entry(vm_uuid: str, value: str) -> None:
    """Give the stored domain libvirt's own fw_cfg entry for vgpu's blob, as an admin would (virsh edit)."""
    import libvirt

    conn = libvirt.open(URI)
    try:
        xml = conn.lookupByUUIDString(vm_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        entry = f"<sysinfo type='fwcfg'><entry name='{devargs.FW_CFG_NAME}'>{value}</entry></sysinfo>"
        conn.defineXML(xml.replace("</domain>", entry + "</domain>"))
    finally:
        conn.close()


def stored_xml(vm_uuid: str) -> str:
    import libvirt

    conn = libvirt.open(URI)
    try:
        return conn.lookupByUUIDString(vm_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def test_a_blob_in_a_sysinfo_fwcfg_entry_is_seen_and_changed_in_place(domains, host, tmp_path):
    """A guest whose blob is a <sysinfo type='fwcfg'> entry (libvirt 6.5+) booted with it: vgpu reads it as
    its configuration, a change rewrites that entry rather than adding a <qemu:arg> blob of the same name
    (with which QEMU would refuse to start), and the restarted guest reads the new value."""
    old, new = VMConfig("A", Priority.LOW, 4), VMConfig("B", Priority.HIGH, 9)
    vm_uuid, name = new_vm(domains, "halted")
    with_fw_cfg_entry(vm_uuid, devargs.payload(old))
    host.start(vm_uuid)
    console = domains.console(vm_uuid)
    wait_for(lambda: boots_seen(console) == 1, "the guest to boot", console)
    assert devargs.parse(host.booted_device_model_args(vm_uuid), quoted=True).config == old
    with Store(tmp_path / "vgpu.db") as store:
        register_vm(store, host, vm_uuid, pool="A", priority="low", vm_id=4)
        assert [e.state for e in scan.scan(store, host).registered if e.vm.vm_uuid == vm_uuid] == ["configured"]

        result = reconfigure_vm(store, host, vm_uuid, pool="B", priority="high", vm_id=9, confirm=lambda plan: True,
                                policy=StopPolicy(clean_timeout=120, force=False))
        assert (result.changed, result.restarted) == (True, True)
        assert devargs.parse_list(qemu_argv(name)).config == new  # exactly one blob: QEMU started
        wait_for(lambda: boots_seen(console) == 2, "the restarted guest to print its configuration", console)
        assert guestkit.printed_configs(console) == [devargs.payload(old), devargs.payload(new)]
        stored = stored_xml(vm_uuid)
        entries = ET.fromstring(stored).findall("sysinfo[@type='fwcfg']/entry")
        assert [(e.get("name"), e.text) for e in entries] == [(devargs.FW_CFG_NAME, devargs.payload(new))]
        assert qemu_args(stored) == split_args(ADMIN_ARGS)  # no <qemu:arg> blob beside the entry
        assert [e.state for e in scan.scan(store, host).registered if e.vm.vm_uuid == vm_uuid] == ["configured"]

        remove_vm(store, host, vm_uuid)
        assert host.get_device_model_args(vm_uuid) == ADMIN_ARGS
        assert ET.fromstring(stored_xml(vm_uuid)).find("sysinfo[@type='fwcfg']") is None  # not left empty


def test_apply_vm_refuses_an_edit_of_the_vgpu_segment_made_while_nothing_was_to_be_written(domains, host, tmp_path):
    """apply-vm of a VM pending restart (its args hold the registered segment already): vgpu writes nothing,
    but an admin's edit of the segment between the read and the start is still caught, as for set-pool."""
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    registered = VMConfig("A", Priority.LOW, 5)
    host.set_device_model_args(vm_uuid, devargs.merge(host.get_device_model_args(vm_uuid), registered))  # pending restart
    theirs = VMConfig("A", Priority.HIGH, 77)
    with store:
        with pytest.raises(SegmentChanged) as caught:
            apply_vm(store, host, vm_uuid, confirm=lambda plan: True, policy=StopPolicy(clean_timeout=2),
                     progress=_edited_while_updating(vm_uuid, lambda argv: split_args(devargs.merge(join_args(argv), theirs))))
        said = str(caught.value)
        assert said.endswith("plan again; its configuration was not changed and the VM was started again"), said
        assert devargs.parse(host.get_device_model_args(vm_uuid)).config == theirs  # their edit left as they made it
        assert host.power_state(vm_uuid) is PowerState.RUNNING and vms.get(store, vm_uuid).config == registered


def test_a_guest_paused_right_after_our_start_is_not_said_to_run_with_the_change(domains, tmp_path, monkeypatch):
    store, vm_uuid, name = registered_vm(domains, tmp_path, with_os=False)
    original = LibvirtHost.start

    def start(self, uuid_):
        original(self, uuid_)
        self._domain(uuid_).suspend()  # paused at once, as virsh suspend (or a watchdog) would

    monkeypatch.setattr(LibvirtHost, "start", start)
    host = LibvirtHost(URI)
    try:
        with store:
            result = reconfigure_vm(store, host, vm_uuid, pool="B", confirm=lambda plan: True, policy=StopPolicy(clean_timeout=2))
            assert result.restarted and result.booted == "not-running" and result.not_running_with_it, result
            assert host.power_state(vm_uuid) is PowerState.PAUSED
            with store.reading() as conn:
                assert [mark.kind for mark in attention.select(conn, vm_uuid)] == ["not-restarted"]
    finally:
        host.close()

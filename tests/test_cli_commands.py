"""Every one-shot command end to end against a simulated host, compared with the spec's formats.

The host is the spec's example (VM-1..VM-20 registered, 7 in Pool A and 13 in Pool B; VM-21..VM-23 not) on
a fresh host file and database per test. Expected texts are written out here from the spec, not derived
from the renderers.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from shell import runner
from shell.commands import COMMANDS, FORMAT_OPTION
from shell.console import Console, stdin_reader
from shell.context import Context
from vgpu import __version__, config, demo, devargs, journal
from vgpu.hypervisor.sim import SimHost
from vgpu.models import VMConfig, Priority
from vgpu.store import Store

from . import crashkit
from .clikit import CLOSED, REPO, Outcome, SpecHost, run, run_process
from .lifekit import Raising

# The spec's status example: name -> (pool, priority); vm_id is the number in the name.
SPEC_VMS = {
    **{f"VM-{n}": ("A", p) for n, p in zip(range(1, 8), ["high"] * 3 + ["medium"] * 2 + ["low"] * 2)},
    **{f"VM-{n}": ("B", p) for n, p in zip(range(8, 21), ["high"] * 5 + ["medium"] * 6 + ["low"] * 2)},
}
UNREGISTERED = ("VM-21", "VM-22", "VM-23")
NUMBERS = {"low": 0, "medium": 1, "high": 2}
HALTED = {"VM-3", "VM-6", "VM-11", "VM-14", "VM-18", "VM-20", "VM-22"}  # the demo's halted VMs; the rest run


def names_in(pool: str) -> list[str]:
    return [name for name, (p, _) in SPEC_VMS.items() if p == pool]


def scan_line(name: str, mark: str | None = None) -> str:
    """A registered VM's scan-vms line; by default as configured (and halted, if the demo has it halted)."""
    mark = mark or ("✓ Configured (halted)" if name in HALTED else "✓ Configured")
    pool, priority = SPEC_VMS[name]
    return (f"UUID: {demo.demo_uuid(name)} | Name: {name} | Pool: {pool} | "
            f"Priority: {priority} ({NUMBERS[priority]}) | VM ID: {name[3:]} | {mark}")


def unregistered_line(name: str) -> str:
    return (f"UUID: {demo.demo_uuid(name)} | Name: {name} | Status: ⚠ Not registered | "
            "Action: Run 'vgpu-admin register-vm'")


def spec_scan(halted: tuple[str, ...] = ()) -> list[str]:
    """The spec's scan-vms output for the demo, with ``halted``: VMs halted besides the demo's own."""
    line = lambda n: scan_line(n, "✓ Configured (halted)" if n in halted else None)  # noqa: E731
    return [
        "=== Pool A: 7 VMs ===", *(line(n) for n in names_in("A")), "",
        "=== Pool B: 13 VMs ===", *(line(n) for n in names_in("B")), "",
        "=== Unregistered VMs: 3 ===", *(unregistered_line(n) for n in UNREGISTERED),
    ]


def detail_line(name: str) -> str:
    return f"  {name} (UUID: {demo.demo_uuid(name)}) | Priority: {SPEC_VMS[name][1]} | VM ID: {name[3:]}"


def pool_block(pool: str, title: str) -> list[str]:
    members = names_in(pool)
    by = {p: [n for n in members if SPEC_VMS[n][1] == p] for p in ("high", "medium", "low")}
    # The spec names the VMs of each priority for Pool A and elides them for Pool B, as it elides Pool B's
    # VM Details with "..."; the panel names them for both pools alike.
    return [
        f'Pool {pool}: "{title}"',
        "---------------------------------------------",
        "Status: Enabled",
        f"VMs: {len(members)}",
        *(f"  {p.capitalize()} Priority: {len(by[p])} VM{'' if len(by[p]) == 1 else 's'} ({', '.join(by[p])})"
          for p in ("high", "medium", "low")),
        "",
        "VM Details:",
        *(detail_line(n) for n in members),
    ]


def spec_status(name_a: str = "Pool A", name_b: str = "Pool B") -> list[str]:
    return [
        "=" * 80,
        "                    GPU Virtualization Control Panel",
        "=" * 80,
        "",
        *pool_block("A", name_a), "",
        *pool_block("B", name_b), "",
        "Unregistered VMs: 3",
        "  VM-21, VM-22, VM-23 (not registered - will default to Pool A if registered without --pool)",
        "",
        "System Summary:",
        "--------------",
        "Total Pools: 2 (both enabled)",
        "Total VMs Registered: 20",
        "Total VMs Unregistered: 3",
        "Total VMs in System: 23",
    ]


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def ok(outcome) -> list[str]:
    assert (outcome.code, outcome.err) == (0, ""), outcome
    return outcome.out_lines


def applied(outcome) -> list[str]:
    """The stdout of a change that stopped and started a VM (its progress lines are on stderr)."""
    assert outcome.code == 0 and "error" not in outcome.err and outcome.err_lines, outcome
    return outcome.out_lines


# --- pools ------------------------------------------------------------------------------------------------


def test_list_pools_shows_both_pools_with_their_counts(spec):
    assert ok(spec.cli("list-pools")) == [
        'Pool A: "Pool A" | Status: Enabled | VMs: 7 | High (2): 3 | Medium (1): 2 | Low (0): 2',
        'Pool B: "Pool B" | Status: Enabled | VMs: 13 | High (2): 5 | Medium (1): 6 | Low (0): 2',
    ]


@pytest.mark.parametrize("spelling", ["A", "a", " a "])
def test_show_pool_is_the_status_panels_block_for_that_pool(spec, spelling):
    assert ok(spec.cli("show-pool", "--pool-id", spelling)) == pool_block("A", "Pool A")


def test_set_pool_name_renames_without_touching_any_vm(spec):
    boots = {name: spec.sim.boots(spec.uuid(name)) for name in SPEC_VMS}
    assert ok(spec.cli("set-pool-name", "--pool-id=b", "--name=Development Pool")) == [
        'Pool B is now named "Development Pool".'
    ]
    assert ok(spec.cli("status")) == spec_status(name_b="Development Pool")
    assert ok(spec.cli("list-pools"))[1].startswith('Pool B: "Development Pool" | Status: Enabled | VMs: 13')
    assert {name: spec.sim.boots(spec.uuid(name)) for name in SPEC_VMS} == boots
    (entry,) = ok(spec.cli("history", "--pool-id=B"))
    assert "Pool B" in entry and "Development Pool" in entry


# --- scan-vms and status ----------------------------------------------------------------------------------


def test_scan_vms_matches_the_spec_line_by_line(spec):
    lines = ok(spec.cli("scan-vms"))
    for got, expected in zip(lines, spec_scan()):
        assert got == expected
    assert len(lines) == len(spec_scan())


def test_scan_vms_adds_missing_drift_and_clone_sections_after_the_spec_ones(spec):
    spec.sim.remove_vm(spec.uuid("VM-4"))
    spec.sim.set_device_model_args(spec.uuid("VM-9"), devargs.render(VMConfig("A", Priority.LOW, 9)))
    clone = "0badc0de-0000-4000-8000-000000000001"
    spec.sim.add_vm(clone, "VM-1-clone", "halted", spec.sim.get_device_model_args(spec.uuid("VM-1")))
    lines = ok(spec.cli("scan-vms"))
    assert scan_line("VM-4", "⚠ Not on host") in lines
    assert scan_line("VM-9", "⚠ Args differ from DB") in lines
    headers = [line for line in lines if line.startswith("===")]
    assert headers == [
        "=== Pool A: 7 VMs ===", "=== Pool B: 13 VMs ===", "=== Unregistered VMs: 4 ===",
        "=== Registered but missing from host: 1 ===",
        "=== Device-model args differ from the database: 1 ===",
        "=== Unregistered VMs carrying a vgpu segment: 1 ===",
    ]
    after = lambda header: lines[lines.index(header) + 1]  # noqa: E731
    assert spec.uuid("VM-4") in after("=== Registered but missing from host: 1 ===")
    drift = after("=== Device-model args differ from the database: 1 ===")
    assert "Database: pool=B;priority=2;vm_id=9 | Args: pool=A;priority=0;vm_id=9" in drift
    assert f"repair-vm --vm-uuid={spec.uuid('VM-9')}" in drift
    foreign = after("=== Unregistered VMs carrying a vgpu segment: 1 ===")
    assert foreign.startswith(f"UUID: {clone} | Name: VM-1-clone | Carries: pool=A;priority=2;vm_id=1")
    assert spec.uuid("VM-1") in foreign


def test_scan_vms_on_an_unreachable_host_is_one_sentence_and_exit_1(spec):
    spec.sim.set_fault("unreachable", "on")
    outcome = spec.cli("scan-vms")
    assert outcome.code == 1 and outcome.out == ""
    assert outcome.one_error_line().startswith("error: ") and "switched off" in outcome.err


def test_status_matches_the_spec_panel_line_by_line(spec):
    lines = ok(spec.cli("status"))
    for got, expected in zip(lines, spec_status()):
        assert got == expected
    assert len(lines) == len(spec_status())


def test_status_with_the_host_down_still_shows_the_database_with_a_warning(spec):
    spec.sim.set_fault("unreachable", "on")
    lines = ok(spec.cli("status"))
    assert lines[4] == "⚠ Cannot reach the host: the simulated host is switched off (fault 'unreachable'); showing the database only."
    assert "VMs: 7" in lines and "VMs: 13" in lines
    assert "Unregistered VMs: unknown (the host could not be listed)" in lines
    assert lines[-4:] == ["Total Pools: 2 (both enabled)", "Total VMs Registered: 20",
                          "Total VMs Unregistered: unknown", "Total VMs in System: unknown"]


# Hosts that cannot be reached, one per backend: libvirtd not listening, no xe, nothing on the XAPI port
# (port 1: nothing listens there), a simulated host switched off.
DOWN_HOSTS = {
    "libvirt": "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
    "xe": "xe:/nonexistent/xe",
    "xapi": "xapi://root@127.0.0.1:1",
    "sim": None,  # the spec host, with its "unreachable" fault on
}


@pytest.mark.parametrize("backend", sorted(DOWN_HOSTS))
def test_status_and_show_vm_answer_from_the_database_whatever_backend_is_down(spec, backend, monkeypatch):
    monkeypatch.setenv("VGPU_XAPI_PASSWORD", "unused")  # the XAPI login fails on the connection, not a prompt
    if DOWN_HOSTS[backend] is None:
        spec.sim.set_fault("unreachable", "on")
        flags = spec.flags
    else:
        flags = ["--host", DOWN_HOSTS[backend], "--db", str(spec.db)]
    status = run(["status", *flags])
    assert (status.code, status.err) == (0, ""), status
    assert status.out_lines[4].startswith("⚠ Cannot reach the host: ")  # said once
    assert status.out_lines[4].endswith("; showing the database only.") and "could not be reached" not in status.out_lines[4]
    assert "VMs: 7" in status.out_lines and "Total VMs Registered: 20" in status.out_lines
    shown = run(["show-vm", f"--vm-uuid={spec.uuid('VM-1')}", *flags])
    assert (shown.code, shown.err) == (0, ""), shown
    assert shown.out_lines[2:6] == ["Pool: A", "Priority: high (2)", "VM ID: 1",
                                    shown.out_lines[5]] and shown.out_lines[5].startswith("Host: ⚠ cannot be asked (")
    assert as_json(run(["show-vm", f"--vm-uuid={spec.uuid('VM-1')}", "--format=json", *flags]))["state"] == "unknown"
    scanned = run(["scan-vms", *flags])  # a scan is the host's picture: without the host it fails, in one line
    assert scanned.code == 1 and scanned.one_error_line().startswith("error: cannot reach the host: ")


def test_a_host_that_cannot_tell_what_booted_never_shows_configured(spec, monkeypatch):
    """A remote XenAPI connection: xapi keeps no record of what a running VM booted with."""
    from .standins.xapi_server import XapiStandIn

    monkeypatch.setenv("VGPU_XAPI_PASSWORD", "pw")
    with XapiStandIn(spec.sim, password="pw") as server:
        flags = ["--host", f"xapi://root@127.0.0.1:{server.port}", "--db", str(spec.db)]
        scanned = ok(run(["scan-vms", *flags]))
        assert scan_line("VM-1", "? Running config unknown") in scanned and scan_line("VM-3") in scanned
        running = [name for name in SPEC_VMS if name not in HALTED]
        assert scanned[-1] == (f"Running configuration unknown: 14 VMs ({', '.join(running[:10])}, ... and 4 more) - the "
                               "host cannot tell what they booted with; restart them to be sure (see docs/troubleshooting.md)")
        assert ok(run(["status", *flags]))[-1] == scanned[-1]
        uuid = spec.uuid("VM-1")
        shown = ok(run(["show-vm", f"--vm-uuid={uuid}", *flags]))
        assert shown[6] == "Status: ? Running config unknown" and not any("Configured" in line for line in shown)
        assert shown[8] == (
            "Running with: ? unknown (the host cannot tell what the VM booted with; restarting it applies the stored args)")
        assert ok(run(["set-pool", f"--vm-uuid={uuid}", "--pool=A", *flags])) == [
            f"VM-1 ({uuid}) already has this configuration in the database and its args; the host cannot tell what "
            f"the running VM booted with: 'vgpu-admin apply-vm --vm-uuid={uuid}' restarts it with it."]


def test_a_name_holding_a_comma_is_quoted_in_the_unknown_list_as_in_the_pool_lists(tmp_path, monkeypatch):
    """One VM named "db, primary" must not read as two VMs, in scan-vms' list as in status's."""
    from .standins.xapi_server import XapiStandIn

    monkeypatch.setenv("VGPU_XAPI_PASSWORD", "pw")
    sim, db = SimHost(tmp_path / "host.json"), str(tmp_path / "vgpu.db")
    both = ("0c0a0000-0000-4000-8000-000000000001", "db, primary"), ("0c0a0000-0000-4000-8000-000000000002", "web")
    for vm_uuid, name in both:
        sim.add_vm(vm_uuid, name, "running", "")
    with XapiStandIn(sim, password="pw") as server:
        flags = ["--host", f"xapi://root@127.0.0.1:{server.port}", "--db", db]
        for vm_uuid, _ in both:
            ok(run(["register-vm", f"--vm-uuid={vm_uuid}", "--priority=1", *flags]))
        unknown = 'Running configuration unknown: 2 VMs ("db, primary", web) - the host cannot tell'
        assert ok(run(["scan-vms", *flags]))[-1].startswith(unknown)
        shown = ok(run(["status", *flags]))
        assert 'Medium Priority: 2 VMs ("db, primary", web)' in [line.strip() for line in shown]
        assert shown[-1].startswith(unknown)


def test_one_vm_is_1_vm_in_scan_headings_and_list_counts(spec):
    pool_a = [vm.vm_uuid for vm in spec.registered() if vm.pool_id == "A"]
    for vm_uuid in pool_a[1:]:  # Pool A keeps one VM
        ok(spec.cli("remove-vm", "--vm-uuid", vm_uuid))
    assert "=== Pool A: 1 VM ===" in ok(spec.cli("scan-vms"))
    assert ok(spec.cli("list-vms", "--pool=A"))[-1] == "1 VM"
    assert ok(spec.cli("list-vms", "--pool=B"))[-1] == f"{sum(vm.pool_id == 'B' for vm in spec.registered())} VMs"


def test_one_vm_of_a_priority_is_1_vm_in_status_and_show_pool(spec):
    for name in ("VM-2", "VM-3"):  # Pool A: 3 high, 2 medium, 2 low -> 1 high, 4 medium, 2 low
        applied(spec.cli("set-priority", "--vm-uuid", spec.uuid(name), "--priority=medium", stdin="yes\n"))
    high = "  High Priority: 1 VM (VM-1)"
    medium = "  Medium Priority: 4 VMs (VM-2, VM-3, VM-4, VM-5)"
    assert ok(spec.cli("show-pool", "--pool-id=A"))[4:6] == [high, medium]
    status = ok(spec.cli("status"))
    assert status[status.index('Pool A: "Pool A"') + 4:][:2] == [high, medium]


def test_status_of_an_empty_database_has_empty_pools(tmp_path):
    db = tmp_path / "empty.db"
    host = tmp_path / "host.json"
    lines = ok(run(["status", "--db", str(db), "--host", f"sim:{host}"]))
    assert 'Pool A: "Pool A"' in lines and "VM Details:" not in lines
    assert lines.count("VMs: 0") == 2 and lines.count("  High Priority: 0 VMs") == 2
    assert lines[-3:] == ["Total VMs Registered: 0", "Total VMs Unregistered: 0", "Total VMs in System: 0"]


# --- registering, showing, listing ------------------------------------------------------------------------


def test_register_vm_with_defaults_takes_pool_a_medium_the_next_vm_id_and_the_host_name(spec):
    uuid = spec.uuid("VM-21")
    assert ok(spec.cli("register-vm", f"--vm-uuid={uuid.upper()}")) == [
        f"Registered VM-21 ({uuid}) in Pool A with priority medium (1) and VM ID 21.",
        "The VM is running: its QEMU picks up this configuration at its next boot; until then it is pending "
        f"restart. To apply it now: vgpu-admin apply-vm --vm-uuid={uuid}",
    ]
    vm = spec.vm("VM-21")
    assert (vm.vm_name, vm.config) == ("VM-21", VMConfig("A", Priority.MEDIUM, 21))
    assert devargs.parse(spec.sim.get_device_model_args(uuid)).config == vm.config
    lines = ok(spec.cli("scan-vms"))
    assert lines[:8] == [  # by priority, then vm_id: after VM-5, the other medium one
        "=== Pool A: 8 VMs ===", *(scan_line(f"VM-{n}") for n in range(1, 6)),
        f"UUID: {uuid} | Name: VM-21 | Pool: A | Priority: medium (1) | VM ID: 21 | ⚠ Pending restart",
        scan_line("VM-6"),
    ]
    assert "=== Unregistered VMs: 2 ===" in lines


def test_register_vm_of_a_second_vm_1_as_workflow_1_does_warns_with_both_uuids(spec):
    first, second = spec.uuid("VM-1"), spec.uuid("VM-21")
    outcome = spec.cli("register-vm", f"--vm-uuid={second}", "--vm-name=vm-1")
    assert outcome.code == 0
    assert outcome.out_lines[0] == f"Registered vm-1 ({second}) in Pool A with priority medium (1) and VM ID 21."
    assert outcome.err_lines == [
        f"warning: 2 VMs are named VM-1 (in any case): {first} (VM-1, Pool A, VM ID 1), "
        f"{second} (vm-1, Pool A, VM ID 21); commands tell them apart by UUID"
    ]
    assert spec.vm_by_uuid(second).vm_name == "vm-1"  # accepted: names are for display


def test_register_vm_named_like_another_vms_uuid_warns_whose_it_is(spec):
    vm2, vm21 = spec.uuid("VM-2"), spec.uuid("VM-21")
    outcome = spec.cli("register-vm", f"--vm-uuid={vm21}", f"--vm-name={vm2}")
    assert outcome.code == 0 and outcome.out_lines[0].startswith(f"Registered {vm2} ({vm21}) in Pool A")
    assert outcome.err_lines == [f"warning: VM {vm21} is named like VM-2's UUID {vm2}: commands take UUIDs, so this "
                                 "name copied where a UUID goes means VM-2, not this VM"]
    assert spec.vm_by_uuid(vm21).vm_name == vm2  # accepted: names come from the host too


def test_register_vm_with_a_name_of_its_own_warns_of_nothing(spec):
    assert spec.cli("register-vm", f"--vm-uuid={spec.uuid('VM-21')}", "--vm-name=VM-1b").err == ""


@pytest.mark.parametrize("host_name", ["x" * 300, "build\x1b[2Jbox", "two\nlines"])
def test_register_vm_says_why_the_hosts_name_for_the_vm_was_not_recorded(spec, host_name):
    # Registered "(unnamed)" without a word, the admin would not know a name was dropped, nor how to give one.
    uuid = "9a9a9a9a-0000-4000-8000-000000000077"
    spec.sim.add_vm(uuid, host_name, "halted")
    outcome = spec.cli("register-vm", f"--vm-uuid={uuid}")
    assert outcome.code == 0 and outcome.out_lines[0].startswith(f"Registered (unnamed) ({uuid}) in Pool A")
    assert outcome.err_lines == [
        "warning: the host's name for the VM was not recorded (a VM name is printable text of at most 255 "
        "characters); to name it, remove it and register it again with --vm-name"
    ]
    assert spec.vm_by_uuid(uuid).vm_name is None


def test_register_vm_of_a_vm_the_host_has_not_named_warns_of_nothing(spec):
    uuid = "9a9a9a9a-0000-4000-8000-000000000078"
    spec.sim.add_vm(uuid, "", "halted")
    assert spec.cli("register-vm", f"--vm-uuid={uuid}").err == ""


def test_scan_vms_and_status_list_unregistered_vms_in_natural_order(spec):
    for number in (9, 10, 100):
        spec.sim.add_vm(f"9a9a9a9a-0000-4000-8000-{number:012d}", f"VM-2{number}", "halted")
    names = ["VM-21", "VM-22", "VM-23", "VM-29", "VM-210", "VM-2100"]
    scanned = ok(spec.cli("scan-vms"))
    unregistered = scanned[scanned.index("=== Unregistered VMs: 6 ===") + 1:][:6]
    assert [line.split(" | ")[1] for line in unregistered] == [f"Name: {name}" for name in names]
    status = ok(spec.cli("status"))
    assert status[status.index("Unregistered VMs: 6") + 1].startswith(f"  {', '.join(names)} (not registered")


@pytest.mark.parametrize(("state", "said"), [("paused", "The VM is paused"), ("suspended", "The VM is suspended"),
                                           ("unknown", "The VM's power state is unknown")])
def test_register_vm_of_a_vm_that_is_not_running_does_not_say_it_is_running(spec, state, said):
    uuid = "9a9a9a9a-0000-4000-8000-000000000001"
    spec.sim.add_vm(uuid, "VM-30", state)
    assert ok(spec.cli("register-vm", f"--vm-uuid={uuid}")) == [
        f"Registered VM-30 ({uuid}) in Pool A with priority medium (1) and VM ID 21.",
        f"{said}: its QEMU picks up this configuration at its next boot.",
    ]


def test_a_running_vm_registered_is_pending_in_scan_status_show_vm_and_json(spec):
    """Its QEMU still runs the old arguments: nothing may call it configured until it restarts."""
    uuid = spec.uuid("VM-21")
    ok(spec.cli("register-vm", f"--vm-uuid={uuid}", "--vm-id=31"))
    pending = ["=== Running with an older configuration (pending restart): 1 ===",
               f"UUID: {uuid} | Name: VM-21 | Database: pool=A;priority=1;vm_id=31 | Running: no segment | "
               f"Action: Run 'vgpu-admin apply-vm --vm-uuid={uuid}' (restarts the VM)"]
    scanned = ok(spec.cli("scan-vms"))
    assert f"UUID: {uuid} | Name: VM-21 | Pool: A | Priority: medium (1) | VM ID: 31 | ⚠ Pending restart" in scanned
    assert scanned[-2:] == pending
    assert ok(spec.cli("status"))[-3:] == ["", *pending]
    shown = ok(spec.cli("show-vm", f"--vm-uuid={uuid}"))
    assert shown[5:9] == [  # the args are right for its next boot; it is not configured until then
        "Power state: running",
        "Status: ⚠ Pending restart",
        "Device-model args: ✓ as registered (pool=A;priority=1;vm_id=31), read at the VM's next boot",
        f"Running with: ⚠ no vgpu segment - pending restart (run 'vgpu-admin apply-vm --vm-uuid={uuid}')",
    ]
    assert not any("Configured" in line for line in shown)
    states = {e["vm"]["vm_uuid"]: e["state"] for e in as_json(spec.cli("scan-vms", "--format=json"))["registered"]}
    assert states[uuid] == "pending"
    view = as_json(spec.cli("show-vm", f"--vm-uuid={uuid}", "--format=json"))
    assert view["state"] == "pending" and view["booted"] == {"present": False, "config": None, "raw": None, "reason": None}
    assert view["host_vm"]["booted_args"] == "" and view["segment"]["config"]["vm_id"] == 31


def test_show_vm_of_a_running_vm_says_what_it_runs_with(spec):
    uuid = spec.uuid("VM-1")
    assert ok(spec.cli("show-vm", f"--vm-uuid={uuid}"))[5:9] == [
        "Power state: running",
        "Status: ✓ Configured",
        "Device-model args: ✓ as registered (pool=A;priority=2;vm_id=1), read at the VM's next boot",
        "Running with: ✓ pool=A;priority=2;vm_id=1",
    ]


def test_registering_again_a_vm_whose_qemu_already_has_the_segment_says_so(spec):
    uuid = spec.uuid("VM-2")  # running with pool=A;priority=2;vm_id=2
    ok(spec.cli("remove-vm", f"--vm-uuid={uuid}"))  # the args lose the segment; the running QEMU keeps it
    assert ok(spec.cli("register-vm", f"--vm-uuid={uuid}", "--priority=high", "--vm-id=2"))[1] == (
        "The VM is running and its QEMU already has this configuration.")
    assert scan_line("VM-2") in ok(spec.cli("scan-vms"))


@pytest.mark.parametrize("name", ["   ", ""])
def test_a_blank_vm_name_given_is_refused_not_replaced(spec, name):
    before = spec.files()
    outcome = spec.cli("register-vm", f"--vm-uuid={spec.uuid('VM-22')}", f"--vm-name={name}")
    assert outcome.code == 2 and outcome.one_error_line() == (
        f"error: invalid VM name {name!r}: expected a non-empty printable text of at most 255 characters "
        "(leave the name out for the host's name)")
    assert spec.files() == before


def test_a_name_holding_the_field_separator_is_quoted_in_every_line(spec):
    uuid, name = spec.uuid("VM-22"), "db | Pool: B | Priority: high (2) | VM ID: 99"
    ok(spec.cli("register-vm", f"--vm-uuid={uuid}", f"--vm-name={name}"))
    quoted = '"db | Pool: B | Priority: high (2) | VM ID: 99"'
    assert f"UUID: {uuid} | Name: {quoted} | Pool: A | Priority: medium (1) | VM ID: 21" in ok(spec.cli("list-vms"))
    assert any(line.startswith(f"UUID: {uuid} | Name: {quoted} | Pool: A") for line in ok(spec.cli("scan-vms")))
    assert ok(spec.cli("show-vm", f"--vm-uuid={uuid}"))[0] == f"VM: {quoted}"


def test_register_vm_with_explicit_values(spec):
    uuid = spec.uuid("VM-22")  # halted: nothing to say about the next boot
    assert ok(spec.cli("register-vm", "--vm-uuid", uuid, "--vm-name", "Render box", "--pool=b",
                       "--priority=HIGH", "--vm-id=42")) == [
        f"Registered Render box ({uuid}) in Pool B with priority high (2) and VM ID 42."
    ]
    vm = spec.vm("VM-22")
    assert (vm.vm_name, vm.config) == ("Render box", VMConfig("B", Priority.HIGH, 42))
    assert "Render box" not in spec.sim.get_device_model_args(uuid)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--vm-uuid", demo.demo_uuid("VM-1")], ["already registered", "vm_id 1", "pool A"]),
        (["--vm-uuid", demo.demo_uuid("VM-21"), "--vm-id=8"], ["vm_id 8", "already used"]),
        (["--vm-uuid", "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"], ["0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", "not found"]),
    ],
)
def test_register_vm_refusals_change_nothing(spec, argv, words):
    before = spec.files()
    outcome = spec.cli("register-vm", *argv)
    line = outcome.one_error_line()
    assert outcome.code == 2 and all(word in line for word in words), line
    assert spec.files() == before


def test_show_vm_shows_the_registration_power_state_and_segment(spec):
    uuid = spec.uuid("VM-3")
    lines = ok(spec.cli("show-vm", f"--vm-uuid={uuid}"))
    assert lines[:8] == [
        "VM: VM-3", f"UUID: {uuid}", "Pool: A", "Priority: high (2)", "VM ID: 3", "Power state: halted",
        "Status: ✓ Configured (halted)",
        "Device-model args: ✓ as registered (pool=A;priority=2;vm_id=3), read at the VM's next boot",
    ]
    assert lines[8].startswith("Registered: ")


def test_show_vm_says_when_the_host_lacks_the_vm_or_cannot_be_asked(spec):
    spec.sim.remove_vm(spec.uuid("VM-2"))
    assert ok(spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-2")))[5:7] == [
        "Host: ⚠ this VM is not on the host", "Status: ⚠ Not on host"]  # as scan-vms says it
    spec.sim.set_fault("unreachable", "on")
    lines = ok(spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-3")))
    assert lines[2:5] == ["Pool: A", "Priority: high (2)", "VM ID: 3"]
    assert lines[5].startswith("Host: ⚠ cannot be asked (") and "switched off" in lines[5]
    assert lines[6] == "Status: ? Host not reachable"


def test_remove_vm_with_the_host_down_keeps_the_registration(spec):
    spec.sim.set_fault("unreachable", "on")
    outcome = spec.cli("remove-vm", "--vm-uuid", spec.uuid("VM-3"))
    assert outcome.code == 1 and "still registered" in outcome.one_error_line()
    assert spec.vm("VM-3") is not None


def test_show_vm_of_an_unregistered_vm_is_not_found(spec):
    outcome = spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-21"))
    assert outcome.code == 2 and spec.uuid("VM-21") in outcome.one_error_line()


def test_list_vms_lists_every_registered_vm(spec):
    lines = ok(spec.cli("list-vms"))
    assert lines[-2:] == ["", "20 VMs"]
    assert [line.split(" | ")[1] for line in lines[:-2]] == [f"Name: {name}" for name in SPEC_VMS]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        (["--pool=B", "--priority=high"], ["VM-8", "VM-9", "VM-10", "VM-11", "VM-12"]),
        (["--pool", "a", "--priority", "0"], ["VM-6", "VM-7"]),
        (["--priority=Medium"], ["VM-4", "VM-5", *(f"VM-{n}" for n in range(13, 19))]),
    ],
)
def test_list_vms_filters(spec, filters, names):
    lines = ok(spec.cli("list-vms", *filters))
    assert lines[:-2] == [scan_line(name).rsplit(" | ", 1)[0] for name in names]
    assert lines[-1] == f"{len(names)} VMs"


def test_list_vms_with_no_match(tmp_path):
    assert ok(run(["list-vms", "--pool=B", "--db", str(tmp_path / "e.db")])) == ["No registered VMs match."]


# --- changing VMs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "new", "summary"),
    [
        (["set-priority", "--priority=low"], VMConfig("A", Priority.LOW, 1), "priority high (2) → low (0)"),
        (["set-vm-id", "--vm-id=99"], VMConfig("A", Priority.HIGH, 99), "VM ID 1 → 99"),
        (["set-pool", "--pool=b"], VMConfig("B", Priority.HIGH, 1), "pool A → B"),
        (["update-vm", "--pool=B", "--priority=0", "--vm-id=50"], VMConfig("B", Priority.LOW, 50),
         "pool A → B, priority high (2) → low (0), VM ID 1 → 50"),
    ],
)
def test_set_commands_apply_to_the_db_and_the_next_boot(spec, argv, new, summary):
    uuid = spec.uuid("VM-1")
    boots = spec.sim.boots(uuid)
    lines = applied(spec.cli(*argv, f"--vm-uuid={uuid}", stdin="yes\n"))
    assert lines[-2:] == [f"Applied to VM-1 ({uuid}): {summary}.",
                          "The VM was shut down cleanly, reconfigured and started again."]
    assert spec.vm("VM-1").config == new
    assert len(spec.sim.boots(uuid)) == len(boots) + 1
    assert devargs.parse(spec.sim.boots(uuid)[-1]).config == new
    assert spec.sim.power_state(uuid).value == "running"


def test_a_change_to_the_current_values_asks_nothing(spec):
    before = spec.files()
    outcome = spec.cli("update-vm", "--vm-uuid", spec.uuid("VM-2"), "--pool=A", "--priority=2")
    assert ok(outcome) == [f"VM-2 ({spec.uuid('VM-2')}) already has this configuration; nothing to do."]
    assert "Do you want" not in outcome.out
    assert spec.files() == before


def _register_running(spec, name="VM-21", vm_id=31):
    """Register a running VM: it is then pending restart (its QEMU booted without the segment)."""
    uuid = spec.uuid(name)
    ok(spec.cli("register-vm", f"--vm-uuid={uuid}", f"--vm-id={vm_id}"))
    return uuid


def test_apply_vm_restarts_a_pending_vm_with_its_registered_configuration(spec):
    uuid = _register_running(spec)
    boots = spec.sim.boots(uuid)
    outcome = spec.cli("apply-vm", f"--vm-uuid={uuid}", stdin="yes\n")
    lines = applied(outcome)
    assert lines == [
        "  Current configuration (what the VM runs with):",
        "    none: it booted without a vgpu segment",
        "  ",
        "  New configuration (registered):",
        "    Pool: A",
        "    Priority: medium (1)",
        "    VM ID: 31",
        "  ",
        "  This change requires stopping and restarting the VM.",
        "  Do you want to apply these settings? (yes/no): yes",
        f"Applied the registered configuration to VM-21 ({uuid}): pool=A;priority=1;vm_id=31.",
        "The VM was shut down cleanly and started again with it.",
    ]
    assert spec.sim.boots(uuid)[:-1] == boots and devargs.parse(spec.sim.boots(uuid)[-1]).config == spec.vm("VM-21").config
    scanned = ok(spec.cli("scan-vms"))
    assert f"UUID: {uuid} | Name: VM-21 | Pool: A | Priority: medium (1) | VM ID: 31 | ✓ Configured" in scanned
    assert not any("pending restart" in line for line in scanned)
    assert ok(spec.cli("apply-vm", f"--vm-uuid={uuid}")) == [
        f"VM-21 ({uuid}) already runs with its registered configuration; nothing to do."]


def test_a_set_command_with_the_values_a_pending_vm_has_applies_them(spec):
    uuid = _register_running(spec)
    lines = applied(spec.cli("set-vm-id", f"--vm-uuid={uuid}", "--vm-id=31", stdin="yes\n"))
    assert lines[-2:] == [f"Applied the registered configuration to VM-21 ({uuid}): pool=A;priority=1;vm_id=31.",
                          "The VM was shut down cleanly and started again with it."]
    assert devargs.parse(spec.sim.boots(uuid)[-1]).config == VMConfig("A", Priority.MEDIUM, 31)


def test_a_change_to_a_pending_vm_says_what_it_runs_with_until_then(spec):
    uuid = _register_running(spec)
    outcome = spec.cli("set-pool", f"--vm-uuid={uuid}", "--pool=B", stdin="no\n")
    assert outcome.code == 3
    assert outcome.out_lines[:5] == ["  Current configuration:", "    Pool: A", "    Priority: medium (1)", "    VM ID: 31",
                                     "    (the VM runs with no vgpu segment until it restarts)"]


def test_no_to_apply_vm_leaves_the_pending_vm_running_as_it_was(spec):
    uuid = _register_running(spec)
    before, boots = spec.files(), spec.sim.boots(uuid)
    outcome = spec.cli("apply-vm", f"--vm-uuid={uuid}", stdin="no\n")
    assert outcome.code == 3 and outcome.err == "Operation cancelled; nothing was changed.\n"
    assert spec.files() == before and spec.sim.boots(uuid) == boots
    assert "⚠ Pending restart" in ok(spec.cli("scan-vms"))[6]


def test_apply_vm_of_a_running_vm_whose_args_drifted_says_it_keeps_running(spec):
    uuid = spec.uuid("VM-1")  # running with pool=A;priority=2;vm_id=1, as registered; its args then changed
    spec.sim.set_device_model_args(uuid, devargs.render(VMConfig("B", Priority.LOW, 1)))
    boots = spec.sim.boots(uuid)
    lines = applied(spec.cli("apply-vm", f"--vm-uuid={uuid}", stdin="yes\n"))
    assert lines[-4:] == [
        "  The VM already runs with this configuration: only its args are rewritten, without a restart.",
        "  Do you want to apply these settings? (yes/no): yes",
        f"Applied the registered configuration to VM-1 ({uuid}): pool=A;priority=2;vm_id=1.",
        "The VM already ran with it and was not restarted: its args now keep it at its next boot.",
    ]
    assert spec.sim.boots(uuid) == boots and spec.sim.power_state(uuid).value == "running"


def test_apply_vm_of_a_halted_vm_with_its_args_right_says_it_is_halted(spec):
    uuid = spec.uuid("VM-3")  # halted, args as registered
    assert ok(spec.cli("apply-vm", f"--vm-uuid={uuid}")) == [
        f"VM-3 ({uuid}) is halted and its args have its registered configuration, which it takes at its next "
        "start; nothing to do."]


def test_apply_vm_of_an_unregistered_vm_says_to_register_it(spec):
    outcome = spec.cli("apply-vm", f"--vm-uuid={spec.uuid('VM-21')}")
    assert outcome.code == 2 and "register it first" in outcome.one_error_line()


def test_repair_of_a_running_vm_says_it_is_pending_restart(spec):
    uuid = spec.uuid("VM-9")
    spec.sim.set_device_model_args(uuid, "")
    with Store(spec.db) as store:  # the database moved on without the VM (a change made to the DB alone)
        from vgpu import vms
        vms.db_update(store, uuid, vm_id=90)
    assert ok(spec.cli("repair-vm", "--vm-uuid", uuid)) == [
        f"VM {uuid}: the vgpu segment now says pool=B;priority=2;vm_id=90 (effective at its next boot).",
        "The VM is running with pool=B;priority=2;vm_id=9 until then: it is pending restart. "
        f"To apply it now: vgpu-admin apply-vm --vm-uuid={uuid}",
    ]


def test_update_vm_without_a_change_is_bad_input(spec):
    outcome = spec.cli("update-vm", "--vm-uuid", spec.uuid("VM-2"))
    line = outcome.one_error_line()
    assert outcome.code == 2 and "--pool=<A|B>" in line and "--priority=" in line and "--vm-id=<id>" in line


def test_set_vm_id_to_a_taken_one_is_a_conflict(spec):
    before = spec.files()
    outcome = spec.cli("set-vm-id", "--vm-uuid", spec.uuid("VM-2"), "--vm-id=7", stdin="yes\n")
    assert outcome.code == 2 and "7" in outcome.one_error_line() and "Do you want" not in outcome.out
    assert spec.files() == before


def test_remove_vm_unregisters_it_and_keeps_the_admins_own_args(spec):
    uuid = spec.uuid("VM-5")  # the demo gave VM-5 an argument of its own
    assert ok(spec.cli("remove-vm", "--vm-uuid", uuid)) == [  # VM-5 runs: its QEMU keeps its segment meanwhile
        f"Removed VM-5 ({uuid}) from Pool A; its vgpu segment was cleared.",
        "The VM still runs with pool=A;priority=1;vm_id=5 until it stops (scan-vms shows it meanwhile).",
    ]
    assert spec.vm("VM-5") is None
    assert spec.sim.get_device_model_args(uuid) == "-vnc 127.0.0.1:5"
    lines = ok(spec.cli("scan-vms"))
    assert "=== Pool A: 6 VMs ===" in lines and "=== Unregistered VMs: 4 ===" in lines
    assert unregistered_line("VM-5") in lines


def test_remove_vm_of_a_halted_vm_says_nothing_of_a_running_qemu(spec):
    uuid = spec.uuid("VM-3")  # halted
    assert ok(spec.cli("remove-vm", "--vm-uuid", uuid)) == [f"Removed VM-3 ({uuid}) from Pool A; its vgpu segment was cleared."]


def test_repair_vm_rewrites_drift_and_clears_a_clone(spec):
    uuid = spec.uuid("VM-9")
    spec.sim.set_device_model_args(uuid, "-m 512")
    assert ok(spec.cli("repair-vm", "--vm-uuid", uuid)) == [
        f"VM {uuid}: the vgpu segment now says pool=B;priority=2;vm_id=9 (effective at its next boot)."
    ]
    assert devargs.parse(spec.sim.get_device_model_args(uuid)).config == VMConfig("B", Priority.HIGH, 9)
    assert ok(spec.cli("repair-vm", "--vm-uuid", uuid)) == [
        f"VM {uuid}: the device-model args already agree with the database; nothing to do."
    ]
    clone = spec.uuid("VM-22")
    spec.sim.set_device_model_args(clone, spec.sim.get_device_model_args(spec.uuid("VM-1")))
    assert ok(spec.cli("repair-vm", "--vm-uuid", clone)) == [
        f"VM {clone} is not registered: its vgpu segment was removed (effective at its next boot)."
    ]
    assert spec.sim.get_device_model_args(clone) == ""


# --- history, recover, demo -------------------------------------------------------------------------------


def test_history_shows_changes_newest_first(spec):
    uuid = spec.uuid("VM-6")
    applied(spec.cli("set-priority", "--vm-uuid", uuid, "--priority=high", stdin="y\n"))
    applied(spec.cli("set-vm-id", "--vm-uuid", uuid, "--vm-id=60", stdin="y\n"))
    lines = ok(spec.cli("history", "--vm-uuid", uuid.upper()))
    assert [line.split(" | ")[1:3] for line in lines] == [["update", f"VM-6 ({uuid})"]] * 2 + [["register", f"VM-6 ({uuid})"]]
    assert lines[0].endswith(" | VM ID 6 → 60") and lines[1].endswith(" | priority low (0) → high (2)")
    assert ok(spec.cli("history", "--limit", "1")) == lines[:1]


def test_history_of_a_quiet_pool(spec):
    assert ok(spec.cli("history", "--pool-id=a")) == ["No recorded changes."]


def test_recover_with_nothing_to_do(spec):
    assert ok(spec.cli("recover")) == ["Nothing to recover: no interrupted operations."]


def test_a_vm_that_boots_with_neither_configuration_is_left_halted_marked_and_unlocked(spec):
    uuid = spec.uuid("VM-1")
    spec.sim.set_fault("start", "fail", uuid)  # neither the new nor the old configuration will boot
    failed = spec.cli("set-pool", "--vm-uuid", uuid, "--pool=B", stdin="yes\n")
    assert failed.code == 1
    line = failed.err_lines[-1]
    assert line.startswith(f"error: reconfiguring VM {uuid} failed (")
    assert line.endswith("would not start with it either (the host could not start the device emulator (QEMU) for "
                         f"VM {uuid}: Daemon exited unexpectedly): it is halted and marked as needing attention; "
                         "fix the cause on the host, then start it")
    assert "reachable" not in line and "recover" not in line
    assert spec.vm("VM-1").pool_id == "A" and spec.sim.power_state(uuid).value == "halted"
    assert ok(spec.cli("recover")) == ["Nothing to recover: no interrupted operations."]  # nothing left locked

    status = ok(spec.cli("status"))
    assert status[-2] == "=== Needs attention: 1 ==="
    assert status[-1].startswith(f"UUID: {uuid} | Name: VM-1 | Since: ")
    assert "would not start again with its previous configuration" in status[-1]
    assert ok(spec.cli("scan-vms"))[-2:] == status[-2:]
    assert ok(spec.cli("show-vm", "--vm-uuid", uuid))[-1].startswith("⚠ Needs attention (since ")
    (mark,) = as_json(spec.cli("status", "--format=json"))["attention"]
    assert (mark["vm_uuid"], mark["kind"]) == (uuid, "not-restarted")

    spec.sim.set_fault("start", None, uuid)  # the admin fixes the host and starts the VM by hand
    spec.sim.start(uuid)
    assert ok(spec.cli("status")) == spec_status()  # seen running: the mark is gone
    assert as_json(spec.cli("show-vm", "--vm-uuid", uuid, "--format=json"))["attention"] is None


def test_demo_seeds_on_first_use_keeps_changes_and_resets(isolated_environment):
    uuid = demo.demo_uuid("VM-21")
    lines = ok(run(["--host", "sim:demo", "scan-vms"]))
    assert lines == spec_scan()
    ok(run(["register-vm", "--host=sim:demo", "--vm-uuid", uuid]))
    assert ok(run(["--host", "sim:demo", "scan-vms"]))[0] == "=== Pool A: 8 VMs ==="
    where = ok(run(["demo"]))
    assert where == [f"Demo host: sim:demo ({demo.host_path()})", f"Demo database: {demo.db_path()}"]
    assert demo.host_path().startswith(str(isolated_environment))
    reset = ok(run(["demo", "--reset"]))
    assert reset[0].startswith("The demo host was re-created: 23 VMs") and reset[1:] == where
    assert ok(run(["--host", "sim:demo", "scan-vms"])) == spec_scan()


def test_demo_warns_in_one_line_when_an_admins_vgpu_db_keeps_the_next_commands_off_its_database(tmp_path, monkeypatch):
    """The README's demo with VGPU_DB in the admin's profile: the demo host with another database would show
    its 23 VMs as not registered and refuse set-pool. demo says so, and how to reach the demo's database."""
    mine = tmp_path / "mine.db"
    monkeypatch.setenv("VGPU_DB", str(mine))
    outcome = run(["demo", "--reset"])
    assert outcome.code == 0
    assert outcome.out_lines[1:] == [f"Demo host: sim:demo ({demo.host_path()})", f"Demo database: {demo.db_path()}"]
    assert outcome.one_error_line() == (
        f"warning: the next commands use the demo host with the database {mine} (from VGPU_DB), not the demo's; "
        f"to use the demo's, run vgpu-admin with --db={demo.db_path()}")
    assert ok(run([f"--db={demo.db_path()}", "scan-vms"])) == spec_scan()  # the remedy it names works


def test_demo_with_a_database_path_holding_nul_warns_without_a_traceback():
    """Found by the fuzz test: comparing such a path with the demo's raised ValueError (embedded null byte)."""
    outcome = run(["demo", "--reset", "--db", "a\x00b"])
    assert outcome.code == 0 and "Traceback" not in outcome.err and "internal error" not in outcome.err
    assert outcome.one_error_line().startswith("warning: the next commands use the demo host with the database a")


@pytest.mark.parametrize("where", ["flag", "environment", "config"])
def test_demo_warns_when_the_host_of_the_next_commands_is_not_the_demo(tmp_path, monkeypatch, isolated_environment, where):
    other = f"sim:{tmp_path / 'other.sim'}"
    argv, source = ["demo"], {"flag": "--host", "environment": "VGPU_HOST"}.get(where)
    if where == "flag":
        argv = [f"--host={other}", "demo"]
    elif where == "environment":
        monkeypatch.setenv("VGPU_HOST", other)
    else:
        path = isolated_environment / "config" / "vgpu" / "config.toml"
        path.parent.mkdir(parents=True)
        path.write_text(f'host = "{other}"\n')
        source = str(path)
    outcome = run(argv)
    assert outcome.code == 0 and outcome.out_lines[-1] == f"Demo database: {demo.db_path()}"
    assert outcome.one_error_line() == (
        f"warning: the next commands use the host {other} (from {source}) and the database {demo.paths.default_db()}, "
        "not the demo's; to use the demo, run vgpu-admin with --host=sim:demo")


def test_demo_names_both_overrides_and_the_flags_that_reach_the_demo(tmp_path, monkeypatch):
    mine, other = tmp_path / "mine.db", f"sim:{tmp_path / 'other.sim'}"
    monkeypatch.setenv("VGPU_DB", str(mine))
    outcome = run([f"--host={other}", "demo"])
    assert outcome.one_error_line() == (
        f"warning: the next commands use the host {other} (from --host) and the database {mine} (from VGPU_DB), "
        f"not the demo's; to use the demo, run vgpu-admin with --host=sim:demo --db={demo.db_path()}")
    assert ok(run(["--host=sim:demo", f"--db={demo.db_path()}", "scan-vms"])) == spec_scan()


def test_demo_in_a_shell_started_with_another_database_warns_too(tmp_path):
    mine = tmp_path / "mine.db"
    outcome = run_process([f"--db={mine}"], stdin="demo\n")
    assert outcome.code == 0 and outcome.out_lines[-1] == f"Demo database: {demo.db_path()}"
    assert outcome.one_error_line().startswith(f"warning: the next commands use the demo host with the database {mine} ")


# --- help and version -------------------------------------------------------------------------------------


def test_help_lists_every_command_of_the_command_line():
    lines = ok(run(["help"]))
    for command in (c for c in COMMANDS if not c.repl_only):
        assert any(line.split()[:1] == [command.name] and command.summary in line for line in lines), command.name


def test_help_describes_host_as_a_fleet_takes_it():
    # --host is LABEL, LABEL=URI or one URI alone, and may be repeated (docs/fleet.md), not one URI
    text = " ".join(ok(run(["help"])))
    assert "--host=URI (" not in text, text
    for form in ("--host=LABEL", "LABEL=URI", "repeat"):
        assert form in text, form


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_help_for_each_command_shows_its_usage_and_options(command):
    lines = ok(run(["help", command.name]))
    assert lines[0] == f"Usage: {'vgpu>' if command.repl_only else 'vgpu-admin'} {command.usage}"
    for option in command.options:
        assert any(line.lstrip().startswith(option.flag) and option.help in line for line in lines), option.flag


@pytest.mark.parametrize(
    "argv", [["-h"], ["--help"], ["help", "set-pool"], ["-h", "set-pool"], ["set-pool", "--help"], ["set-pool", "--pool=B", "-h"]]
)
def test_help_spellings(argv):
    lines = ok(run(argv))
    assert lines[0].startswith("Usage: vgpu-admin set-pool") if "set-pool" in argv else lines[0].startswith("Commands")


@pytest.mark.parametrize("argv", [["set-pool", "--pool", "B", "-h"], ["set-pool-name", "--name", "x", "--help"],
                                  ["list-pools", "--format", "json", "-h"]])
def test_help_after_an_option_and_its_value_is_still_help(argv):
    assert ok(run(argv))[0].startswith(f"Usage: vgpu-admin {argv[0]}")


@pytest.mark.parametrize("value", ["-h", "--help"])
def test_a_help_word_where_an_options_value_goes_is_no_request_for_help(spec, value):
    """``--name "$NAME"`` with NAME=-h renames, as NAME=-x does: the word after ``--name`` is its value.
    ``--help`` there is what any word starting with -- is: no value (as ``--name --x``), refused."""
    outcome = spec.cli("set-pool-name", "--pool-id", "A", "--name", value)
    if value == "-h":
        assert ok(outcome) == ['Pool A is now named "-h".']
    else:
        assert outcome.code == 2 and outcome.out == ""
        assert outcome.one_error_line() == "error: option --name needs a value: --name=<text>"
        assert ok(spec.cli("list-pools"))[0].startswith('Pool A: "Pool A"')


@pytest.mark.parametrize("value", ["-h", "--help"])
def test_a_help_word_as_the_vm_name_registers_or_is_refused_but_is_never_help(spec, value):
    outcome = spec.cli("register-vm", f"--vm-uuid={spec.uuid('VM-21')}", "--vm-name", value)
    assert "Usage:" not in outcome.out
    if value == "-h":
        assert outcome.code == 0 and spec.vm("VM-21").vm_name == "-h"
    else:
        assert outcome.code == 2 and spec.vm("VM-21") is None


def test_help_for_an_unknown_command_is_bad_input():
    outcome = run(["help", "set-pol"])
    assert outcome.code == 2 and "'set-pol'" in outcome.one_error_line()


def test_version():
    assert ok(run(["--version"])) == [f"vgpu-admin {__version__}"]


@pytest.mark.parametrize("argv", [["--version", "bogus"], ["--version", "list-pools", "--format=bogus"]])
def test_version_refuses_what_follows_it(argv):
    outcome = run(argv)
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line() == f"error: unexpected argument {argv[1]!r} for --version; it takes none"


@pytest.mark.parametrize("argv", [["--version", "--help"], ["--help", "--version"], ["-h", "--version"], ["--version", "-h"]])
def test_version_beside_a_request_for_help_is_refused_the_same_either_way(argv):
    """Not 'unknown option for help', naming a help command nobody typed: the words are --version and help."""
    outcome = run(argv)
    assert outcome.code == 2 and outcome.out == ""
    other = argv[0] if argv[1] == "--version" else argv[1]
    assert outcome.one_error_line() == f"error: unexpected argument {other!r} for --version; it takes none"


@pytest.mark.parametrize("name", ["", " "])
def test_help_for_a_blank_name_is_bad_input_not_the_list(name):
    outcome = run(["help", name])
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line() == f"error: no command called {name!r}; run 'vgpu-admin help' for the list"


# --- --format json ----------------------------------------------------------------------------------------

READ_COMMANDS = [command for command in COMMANDS if FORMAT_OPTION in command.options]


def test_every_read_command_is_covered_below():
    assert {c.name for c in READ_COMMANDS} == {
        "list-pools", "show-pool", "scan-vms", "show-vm", "list-vms", "status", "history", "recover"
    }


def as_json(outcome):
    assert (outcome.code, outcome.err) == (0, ""), outcome
    return json.loads(outcome.out)


def test_json_list_pools_and_show_pool(spec):
    data = as_json(spec.cli("list-pools", "--format=json"))
    assert [(p["pool_id"], p["pool_name"], p["enabled"], p["vm_count"]) for p in data] == [
        ("A", "Pool A", True, 7), ("B", "Pool B", True, 13)
    ]
    assert data[1]["counts"] == {"high": 5, "medium": 6, "low": 2}
    detail = as_json(spec.cli("show-pool", "--pool-id=B", "--format", "json"))
    assert detail["pool"]["pool_name"] == "Pool B"
    assert [vm["vm_name"] for vm in detail["vms"]] == names_in("B")


def test_json_scan_vms_and_status_carry_the_text_outputs_data(spec):
    for command in ("scan-vms", "status"):
        data = as_json(spec.cli(command, "--format=json"))
        assert [(e["vm"]["vm_name"], e["vm"]["pool_id"], e["vm"]["priority"], e["vm"]["vm_id"], e["state"])
                for e in data["registered"]] == [
            (name, pool, priority, int(name[3:]), "halted" if name in HALTED else "configured")
            for name, (pool, priority) in SPEC_VMS.items()
        ]
        assert [(h["name"], h["uuid"]) for h in data["unregistered"]] == [(n, demo.demo_uuid(n)) for n in UNREGISTERED]
        assert (data["total_registered"], data["total_unregistered"], data["total_in_system"]) == (20, 3, 23)
        assert [p["pool_name"] for p in data["pools"]] == ["Pool A", "Pool B"] and data["host_error"] is None


def test_json_says_the_segment_is_unknown_when_the_host_was_not_asked_and_absent_when_it_has_none(spec):
    # An XCP-ng admin's find: with the host down, show-vm said "present": false, that the VM's args hold no
    # segment, when the host was never asked. Unknown is null, as host_vm is.
    spec.sim.remove_vm(spec.uuid("VM-2"))
    spec.sim.set_device_model_args(spec.uuid("VM-3"), "")
    gone = as_json(spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-2"), "--format=json"))
    bare = as_json(spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-3"), "--format=json"))
    assert (gone["state"], gone["segment"]["present"]) == ("missing", False)  # the host answered: it has none
    assert (bare["state"], bare["segment"]["present"]) == ("drift", False)
    spec.sim.set_fault("unreachable", "on")
    view = as_json(spec.cli("show-vm", "--vm-uuid", spec.uuid("VM-3"), "--format=json"))
    assert (view["host_vm"], view["segment"], view["booted"], view["state"]) == (None, None, None, "unknown")
    data = as_json(spec.cli("status", "--format=json"))
    assert {(e["segment"], e["state"]) for e in data["registered"]} == {(None, "unknown")}


def test_json_show_vm_list_vms_history_recover(spec):
    uuid = spec.uuid("VM-12")
    view = as_json(spec.cli("show-vm", "--vm-uuid", uuid, "--format=json"))
    assert (view["vm"]["vm_id"], view["vm"]["pool_id"], view["vm"]["priority"]) == (12, "B", "high")
    assert view["host_vm"]["power_state"] == "running" and view["segment"]["config"]["vm_id"] == 12
    listed = as_json(spec.cli("list-vms", "--pool=A", "--format=json"))
    assert [vm["vm_name"] for vm in listed] == names_in("A")
    applied(spec.cli("set-priority", "--vm-uuid", uuid, "--priority=low", stdin="yes\n"))
    (entry,) = as_json(spec.cli("history", "--vm-uuid", uuid, "--limit=1", "--format=json"))
    assert (entry["action"], entry["subject"]) == ("update", uuid)
    assert (entry["old"]["priority"], entry["new"]["priority"]) == (2, 0)
    assert as_json(spec.cli("recover", "--format=json")) == []


# --- changes started and not finished ----------------------------------------------------------------------


def test_a_killed_set_pool_shows_in_status_scan_vms_and_show_vm_until_recovered(spec):
    uuid = spec.uuid("VM-5")
    killed = crashkit.run(spec.db, spec.host_file, "reconfigure", uuid, "stopped", "kill", pool="B")
    assert killed.returncode == -9, killed
    assert spec.sim.power_state(uuid).value == "halted"
    (op,) = open_operations(spec)
    line = f"Unfinished operations: 1 (VM-5: reconfigure at step stopping, since {op.started_at}) - run 'vgpu-admin recover'"
    assert ok(spec.cli("status")) == [*spec_status(), "", line]  # the spec's panel, then the line
    assert ok(spec.cli("scan-vms")) == [*spec_scan(halted=("VM-5",)), "", line]  # stopped, not started again
    shown = ok(spec.cli("show-vm", "--vm-uuid", uuid))
    assert "Power state: halted" in shown
    assert shown[-1] == f"⚠ Unfinished operation: reconfigure at step stopping, since {op.started_at} - run 'vgpu-admin recover'"
    expected = {"op_id": op.op_id, "vm_uuid": uuid, "vm_name": "VM-5", "kind": "reconfigure", "step": "stopping",
                "started_at": op.started_at, "session": op.owner, "in_progress": False,
                "session_unknown": None}
    for command in ("status", "scan-vms"):
        assert as_json(spec.cli(command, "--format=json"))["unfinished"] == [expected]
    assert as_json(spec.cli("show-vm", "--vm-uuid", uuid, "--format=json"))["operation"] == expected

    assert applied(spec.cli("recover"))[0].endswith("rolled-back - the change had not reached the database; "
                                                    "the previous configuration is kept and the VM was started again")
    assert ok(spec.cli("status")) == spec_status()
    assert ok(spec.cli("scan-vms")) == spec_scan()
    assert ok(spec.cli("show-vm", "--vm-uuid", uuid))[-1].startswith("Registered: ")
    assert as_json(spec.cli("status", "--format=json"))["unfinished"] == []
    assert as_json(spec.cli("show-vm", "--vm-uuid", uuid, "--format=json"))["operation"] is None


def test_a_change_another_session_is_making_shows_as_in_progress(spec):
    uuid = spec.uuid("VM-12")
    child = crashkit.spawn(spec.db, spec.host_file, "reconfigure", uuid, "stopping", "wait", pool="A")
    try:
        assert child.stdout.readline() == "reached\n"
        (op,) = open_operations(spec)
        assert ok(spec.cli("status"))[-2:] == [
            "", f"Operations in progress: 1 (VM-12: reconfigure at step stopping, since {op.started_at}, in session {op.owner})"]
        assert ok(spec.cli("show-vm", "--vm-uuid", uuid))[-1] == (
            f"Operation in progress: reconfigure at step stopping, since {op.started_at}, in session {op.owner}")
        child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert ok(spec.cli("status"))[-1] == "Total VMs in System: 23"


def test_many_unfinished_operations_are_counted_after_the_first_ten():
    from shell import render
    from vgpu.scan import UnfinishedOperation

    ops = [UnfinishedOperation(n, f"uuid-{n}", f"VM-{n}", "register", "writing-args", "T", "h:1", False) for n in range(1, 13)]
    (blank, line) = render.unfinished_lines(ops)
    assert blank == "" and line.startswith("Unfinished operations: 12 (VM-1: register at step writing-args, since T; VM-2: ")
    assert line.endswith("; VM-10: register at step writing-args, since T; ... and 2 more) - run 'vgpu-admin recover'")
    assert render.unfinished_lines([]) == []


# --- a change cut short in a session that lives on ---------------------------------------------------------


class CtrlCConsole(Console):
    """A console whose progress display is where Ctrl-C lands, once, at ``step``."""

    def __init__(self, out, err, read_line, ctrl_c_at: str | None) -> None:
        super().__init__(out, err, read_line)
        self.ctrl_c_at = ctrl_c_at

    def progress(self, event) -> None:
        super().progress(event)
        if event.step == self.ctrl_c_at:
            self.ctrl_c_at = None
            raise KeyboardInterrupt


class Session:
    """One vgpu> shell session (the process lives on between commands), fed through the runner as the
    REPL does, answering questions from ``answers``."""

    def __init__(self, spec: SpecHost, answers: str = "", ctrl_c_at: str | None = None) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        console = CtrlCConsole(self.out, self.err, stdin_reader(self.out, io.StringIO(answers)), ctrl_c_at)
        self.ctx = Context(config.load({"db": str(spec.db), "host": f"sim:{spec.host_file}"}), console)
        self.ctx.in_repl = True

    def run(self, *words: str) -> Outcome:
        out_at, err_at = self.out.tell(), self.err.tell()
        code = runner.run_words(self.ctx, list(words))
        return Outcome(code, self.out.getvalue()[out_at:], self.err.getvalue()[err_at:])


def open_operations(spec: SpecHost) -> list:
    with Store(spec.db) as store:
        return journal.unfinished(store)


def test_ctrl_c_during_a_change_leaves_it_to_recover_in_the_same_session(spec):
    uuid = spec.uuid("VM-5")
    session = Session(spec, answers="yes\nyes\n", ctrl_c_at="updating")
    try:
        connection = session.ctx.host
        cut = session.run("set-pool", f"--vm-uuid={uuid}", "--pool=B")
        assert cut.code == 1
        # A wait may still run on a background thread with that connection: the next command opens its own.
        assert session.ctx.host is not connection
        assert cut.err_lines[-1] == "Interrupted. If a change was under way, run 'vgpu-admin recover' to finish or undo it."
        assert spec.sim.power_state(uuid).value == "halted"
        (op,) = open_operations(spec)
        assert session.run("status").out_lines[-1] == (
            f"Unfinished operations: 1 (VM-5: reconfigure at step stopping, since {op.started_at}) - run 'vgpu-admin recover'")
        again = session.run("set-pool", f"--vm-uuid={uuid}", "--pool=B")
        assert again.code == 1 and again.one_error_line() == (
            f"error: VM {uuid} has an interrupted change (started {op.started_at}); "
            "run 'vgpu-admin recover' to finish or undo it")
        recovered = session.run("recover")
        assert recovered.code == 0
        assert recovered.out_lines[0].startswith(f"reconfigure of VM {uuid} (stopped at step stopping): rolled-back")
        assert spec.sim.power_state(uuid).value == "running" and spec.vm("VM-5").pool_id == "A"
        assert applied(session.run("set-pool", f"--vm-uuid={uuid}", "--pool=B"))[-2].startswith("Applied to VM-5")
        assert spec.vm("VM-5").pool_id == "B" and open_operations(spec) == []
    finally:
        session.ctx.close()


def test_an_internal_error_during_a_change_says_the_vm_was_rolled_back(spec, monkeypatch):
    uuid = spec.uuid("VM-5")
    monkeypatch.setattr("vgpu.hypervisor.open_host",
                        lambda uri, **_: Raising(SimHost(spec.host_file), "start", RuntimeError("backend bug"), uuid))
    outcome = spec.cli("set-pool", f"--vm-uuid={uuid}", "--pool=B", stdin="yes\n")
    assert outcome.code == 1
    assert outcome.err_lines[-1].startswith(
        f"error: internal error: RuntimeError: backend bug; the change to VM {uuid} was rolled back: "
        "its previous configuration is in place and the VM is running (details in ")
    assert spec.vm("VM-5").pool_id == "A" and spec.sim.power_state(uuid).value == "running"
    assert open_operations(spec) == []


# --- where the DB and the host come from -------------------------------------------------------------------


class Layers:
    """One spec host per source, each with Pool A renamed after it, so the output says which one was used."""

    SOURCES = ("flag", "env", "user", "system", "default")

    def __init__(self, tmp_path, monkeypatch, isolated_environment):
        self.hosts = {}
        for source in self.SOURCES:
            folder = tmp_path / source
            folder.mkdir()
            self.hosts[source] = SpecHost(folder)
            self.hosts[source].sim.add_vm(f"00000000-0000-4000-8000-{len(self.hosts):012d}", f"only-on-{source}")
            assert ok(self.hosts[source].cli("set-pool-name", "--pool-id=A", f"--name={source} pool"))
        self.monkeypatch = monkeypatch
        self.user_config = isolated_environment / "config" / "vgpu" / "config.toml"
        self.system_config = tmp_path / "system.toml"
        monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(self.system_config))
        # The default: the demo's DB and host in the data dir (xe is not on PATH, so no dom0 default).
        monkeypatch.setenv("PATH", "/nonexistent")
        assert ok(run(["set-pool-name", "--pool-id=A", "--name=default pool"]))
        SimHost(demo.host_path()).add_vm("00000000-0000-4000-8000-000000000099", "only-on-default")

    def use(self, source: str) -> list[str]:
        host = self.hosts[source]
        if source == "flag":
            return host.flags
        if source == "env":
            self.monkeypatch.setenv("VGPU_DB", str(host.db))
            self.monkeypatch.setenv("VGPU_HOST", f"sim:{host.host_file}")
        elif source in ("user", "system"):
            path = self.user_config if source == "user" else self.system_config
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'db = "{host.db}"\nhost = "sim:{host.host_file}"\n')
        return []


@pytest.mark.parametrize("winner", range(5), ids=lambda i: Layers.SOURCES[i])
def test_flag_beats_env_beats_user_config_beats_system_config_beats_default(tmp_path, monkeypatch, isolated_environment, winner):
    layers = Layers(tmp_path, monkeypatch, isolated_environment)
    flags: list[str] = []
    for source in layers.SOURCES[winner:]:
        flags += layers.use(source)
    name = layers.SOURCES[winner]
    assert ok(run(["list-pools", *flags]))[0].startswith(f'Pool A: "{name} pool"')
    assert f"Name: only-on-{name} |" in run(["scan-vms", *flags]).out


def test_db_and_host_flags_are_independent(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = SpecHost(tmp_path / "a"), SpecHost(tmp_path / "b")
    b.sim.add_vm("00000000-0000-4000-8000-0000000000b0", "only-on-b")
    monkeypatch.setenv("VGPU_DB", str(a.db))
    lines = ok(run(["scan-vms", "--host", f"sim:{b.host_file}"]))
    assert any("Name: only-on-b |" in line for line in lines)  # host from the flag, DB from the environment
    assert "=== Unregistered VMs: 4 ===" in lines


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('db = "unterminated\n', ["cannot read config file"]),
        ('colour = "blue"\n', ["unknown setting 'colour'", "db", "host"]),
        ("clean_timeout = true\n", ["clean_timeout", "wrong type"]),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it_and_exit_2(isolated_environment, content, words):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    outcome = run(["list-pools"])
    line = outcome.one_error_line()
    assert outcome.code == 2 and str(path) in line and all(word in line for word in words), line


@pytest.mark.parametrize("given", ["config", "flag", "environment"])
def test_a_db_path_starting_with_a_tilde_is_in_the_home_directory(isolated_environment, monkeypatch, given):
    # As ssh reads ~ in its config: db = "~/vgpu/gpu.db" is the user's, not a folder named ~ under the cwd.
    # (--db=~/x reaches us unexpanded: the shell expands ~ only at the start of a word.)
    home = isolated_environment / "home"
    (home / "vgpu").mkdir()
    argv = ["--host", "sim:demo", "list-pools"]
    if given == "config":
        path = isolated_environment / "config" / "vgpu" / "config.toml"
        path.parent.mkdir(parents=True)
        path.write_text('db = "~/vgpu/gpu.db"\n')
    elif given == "flag":
        argv = ["--db=~/vgpu/gpu.db", *argv]
    else:
        monkeypatch.setenv("VGPU_DB", "~/vgpu/gpu.db")
    outcome = run(argv)
    assert outcome.code == 0, outcome
    assert (home / "vgpu" / "gpu.db").is_file()


def test_a_password_file_starting_with_a_tilde_is_absolute(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('password_file = "~/.vgpu-password"\n')
    assert config.load().password_file == str(isolated_environment / "home" / ".vgpu-password")


def test_a_bad_system_config_is_reported_the_same_way(tmp_path, monkeypatch):
    path = tmp_path / "system.toml"
    path.write_text("[host\n")
    monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(path))
    outcome = run(["list-vms"])
    assert outcome.code == 2 and str(path) in outcome.one_error_line()


# --- the real entry point ---------------------------------------------------------------------------------


def test_the_real_command_reads_and_exits_like_main(spec):
    listed = run_process(["list-pools", *spec.flags])
    assert (listed.code, listed.err) == (0, "") and listed.out_lines == ok(spec.cli("list-pools"))
    bad = run_process(["show-pool", "--pool-id=C", *spec.flags])
    assert bad.code == 2 and bad.out == ""
    assert bad.one_error_line() == "error: invalid pool 'C': expected A or B"


def test_the_real_command_fails_in_one_line_when_the_host_is_down(spec):
    spec.sim.set_fault("unreachable", "on")
    before = spec.files()
    outcome = run_process(["set-pool", "--vm-uuid", spec.uuid("VM-1"), "--pool=B", *spec.flags], stdin="yes\n")
    assert outcome.code == 1 and outcome.out == ""
    assert "switched off" in outcome.one_error_line()
    assert spec.files() == before


def test_the_real_command_with_a_bad_config_file(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("db = \n")
    outcome = run_process(["list-pools"])
    assert outcome.code == 2 and str(path) in outcome.one_error_line()


def test_a_reader_that_goes_away_ends_the_command_quietly(spec):
    """vgpu-admin status | head: no 'internal error', no traceback, no log entry."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "shell", "status", *spec.flags], stdout=write_end,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=str(REPO),
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


def test_a_reader_that_goes_away_before_the_question_ends_the_command_quietly(spec):
    """echo yes | vgpu-admin set-pool ... | head, head gone: no one saw the plan, so nothing is changed; that is
    the quiet end of any broken pipe (1), not the user's cancellation (3)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    argv = [sys.executable, "-m", "shell", "set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", *spec.flags]
    try:
        done = subprocess.run(argv, input="yes\n", stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")
    assert spec.pool_of("VM-1") == "A"


def test_a_closed_stdout_is_refused_before_anything_is_done(spec):
    """vgpu-admin remove-vm ... >&-: what it did could not be told, so it does nothing, and says so on stderr."""
    before = spec.files()
    for argv in (["list-pools"], ["remove-vm", f"--vm-uuid={spec.uuid('VM-1')}"]):
        outcome = run_process([*argv, *spec.flags], stdout=CLOSED)
        assert (outcome.code, outcome.err) == (1, "error: standard output is closed; nothing was done\n"), argv
    assert spec.files() == before and spec.vm("VM-1") is not None


def test_a_closed_stderr_keeps_the_exit_codes_and_fd_2_for_nothing_else(spec, tmp_path):
    """vgpu-admin ... 2>&-: the output and the exit code are as ever (the error sentence is lost, as the
    admin asked); fd 2 is /dev/null for the run, never a file it opens (the database, the host, the log)."""
    cases = [(["list-pools"], 0), (["show-vm", "--vm-uuid=bad"], 2), (["list-vms", "--db", str(tmp_path / "no" / "v.db"), *spec.flags[:2]], 1),
             (["register-vm", f"--vm-uuid={spec.uuid('VM-21')}", "--pool=B"], 0)]
    probe = ("import os, runpy, sys; sys.argv = ['vgpu-admin', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('shell', run_name='__main__')\n"
             "finally:\n    os.write(1, ('fd2=' + os.readlink('/proc/self/fd/2') + '\\n').encode())\n")
    for argv, code in cases:
        flags = [] if "--db" in argv else spec.flags
        done = subprocess.run([sys.executable, "-c", probe, *argv, *flags], stdout=subprocess.PIPE, text=True,
                              cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
                              preexec_fn=lambda: os.close(2))
        assert done.returncode == code, (argv, done.stdout)
        assert done.stdout.splitlines()[-1] == "fd2=/dev/null", argv
    assert spec.pool_of("VM-21") == "B"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, whose every write fails")
def test_output_that_cannot_be_written_is_said_plainly_not_an_internal_error(spec):
    """vgpu-admin register-vm ... >/dev/full: the work is done; only its report was lost, and that is no bug."""
    unwritten = "error: the command finished, but its output could not be written (No space left on device)\n"
    with open("/dev/full", "w") as full:
        registered = run_process(["register-vm", f"--vm-uuid={spec.uuid('VM-21')}", "--pool=B", *spec.flags], stdout=full)
        listed = run_process(["list-vms", *spec.flags], stdout=full)
    assert (registered.code, registered.err) == (1, unwritten)
    assert spec.pool_of("VM-21") == "B"
    assert (listed.code, listed.err) == (1, unwritten)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, whose every write fails")
def test_a_confirmation_that_cannot_be_written_fails_and_changes_nothing(spec):
    """echo yes | vgpu-admin set-pool ... >/dev/full: the plan was never shown, so the yes answered nothing;
    that is a failure (1), not the user's cancellation (3)."""
    before = spec.files()
    with open("/dev/full", "w") as full:
        outcome = run_process(["set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", *spec.flags], stdin="yes\n",
                              stdout=full)
    assert (outcome.code, outcome.err) == (
        1, "error: the confirmation could not be written (No space left on device); nothing was changed.\n")
    assert spec.files() == before and spec.pool_of("VM-1") == "A"


def test_a_closed_stdin_is_end_of_input(spec):
    """Run from cron with stdin closed (<&-): reads work, a question is answered no."""
    argv = [sys.executable, "-m", "shell", "set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", *spec.flags]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), preexec_fn=lambda: os.close(0),
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert (done.returncode, done.stderr) == (3, "Operation cancelled; nothing was changed.\n")
    assert spec.vm("VM-1").config.pool_id == "A"


def test_a_terminal_that_cannot_show_the_marks_gets_ascii_ones_not_the_unknown_mark(spec):
    outcome = run_process(["scan-vms", *spec.flags], env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert (outcome.code, outcome.err) == (0, "")
    assert outcome.out_lines[1].endswith("| VM ID: 1 | + Configured")  # "?" is "unknown", which this is not


# --- the command names: help where the user is, the spec's other name for set-pool-name -----------------------


def test_one_shot_help_lists_no_shell_only_command(spec):
    for argv in (["--help"], ["help"], ["-h"]):
        lines = ok(spec.cli(*argv))
        listed = [line.split()[0] for line in lines if line.startswith("  ") and line.split()]
        assert "refresh" not in listed and "exit" not in listed, argv
        assert {"list-pools", "shell", "help"} <= set(listed)


def test_edit_pool_name_is_set_pool_name_as_the_spec_s_clarification_8_calls_it(spec):
    assert ok(spec.cli("edit-pool-name", "--pool-id=B", "--name=Development Pool")) == [
        'Pool B is now named "Development Pool".']
    assert ok(spec.cli("show-pool", "--pool-id=B"))[0] == 'Pool B: "Development Pool"'
    assert ok(spec.cli("help", "edit-pool-name")) == ok(spec.cli("help", "set-pool-name"))
    assert "Also called: edit-pool-name (the spec's clarification 8)." in ok(spec.cli("help", "set-pool-name"))
    assert any("set-pool-name" in line and "alias edit-pool-name" in line for line in ok(spec.cli("help")))


def test_scan_names_a_removed_vm_whose_qemu_still_runs_with_a_vm_id_now_taken(spec):
    removed, taker = spec.uuid("VM-2"), spec.uuid("VM-21")  # both running; VM-2 booted with vm_id 2
    ok(spec.cli("remove-vm", f"--vm-uuid={removed}"))
    ok(spec.cli("register-vm", f"--vm-uuid={taker}", "--vm-id=2"))
    scanned = ok(spec.cli("scan-vms"))
    heading = scanned.index("=== Unregistered VMs carrying a vgpu segment: 1 ===")
    assert scanned[heading + 1] == (
        f"UUID: {removed} | Name: VM-2 | Running with: pool=A;priority=2;vm_id=2 (vm_id of VM-21, {taker}) | "
        "Action: Restart or stop it (its stored args have no segment), or register it")

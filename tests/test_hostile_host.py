"""What guests' owners control, tried as an attacker would (issue 11): VM names and device-model arguments.

A VM's name and arguments come from the host, and a guest's owner chooses them. Whatever they hold, every
listing still lists every VM, a VM whose arguments cannot be read says why, nothing reaches the terminal
raw, and the set-* and repair commands leave exactly one vgpu blob.
"""

from __future__ import annotations

import pytest

from vgpu import devargs
from vgpu.models import Priority, VMConfig

from .clikit import SpecHost

HUGE_ID = "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=" + "9" * 5000
REASON = "its vm_id of 5000 digits is outside 1 to 2147483647"


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def ok(outcome) -> list[str]:
    assert outcome.code == 0 and outcome.err == "", outcome
    return outcome.out_lines


def test_a_vm_id_of_thousands_of_digits_in_any_vm_never_stops_a_listing(spec):
    spec.sim.set_device_model_args(spec.uuid("VM-21"), HUGE_ID)  # unregistered
    spec.sim.set_device_model_args(spec.uuid("VM-1"), f"-vnc :1 {HUGE_ID}")  # registered
    status = ok(spec.cli("status"))
    assert "Total VMs in System: 23" in status
    scan = ok(spec.cli("scan-vms"))
    assert sum(line.startswith("UUID: ") for line in scan) >= 23
    drift = next(line for line in scan if line.startswith(f"UUID: {spec.uuid('VM-1')} | Name: VM-1 | Database:"))
    assert f"Args: unreadable ({REASON})" in drift
    carried = next(line for line in scan if line.startswith(f"UUID: {spec.uuid('VM-21')} | Name: VM-21 | Carries:"))
    assert f"Carries: unreadable segment ({REASON})" in carried
    shown = ok(spec.cli("show-vm", f"--vm-uuid={spec.uuid('VM-1')}"))
    args_line = next(line for line in shown if line.startswith("Device-model args:"))
    assert REASON in args_line and len(args_line) < 300  # the 5000 digits are not printed
    assert ok(spec.cli("repair-vm", f"--vm-uuid={spec.uuid('VM-1')}"))
    assert spec.sim.get_device_model_args(spec.uuid("VM-1")) == f"-vnc :1 {devargs.render(spec.vm('VM-1').config)}"


@pytest.mark.parametrize("spelling", [
    "--fw_cfg name=opt/vgpu/config,string={p}",
    "-fw_cfg string={p},name=opt/vgpu/config",
    "-fw_cfg opt/vgpu/config,string={p}",
])
def test_other_spellings_are_configured_and_set_pool_replaces_them_in_place(spec, spelling):
    uuid = spec.uuid("VM-1")  # running, pool A, high, vm_id 1
    payload = devargs.payload(spec.vm("VM-1").config)
    spec.sim.set_device_model_args(uuid, f"-vnc :1 {spelling.format(p=payload)} -display none")
    scan = ok(spec.cli("scan-vms"))
    assert any(line.startswith(f"UUID: {uuid} | Name: VM-1 |") and line.endswith("✓ Configured") for line in scan)
    assert spec.cli("set-pool", f"--vm-uuid={uuid}", "--pool=B", stdin="yes\n").code == 0
    new = VMConfig("B", Priority.HIGH, 1)
    assert spec.sim.get_device_model_args(uuid) == f"-vnc :1 {devargs.render(new)} -display none"
    assert spec.sim.boots(uuid)[-1] == f"-vnc :1 {devargs.render(new)} -display none"  # QEMU got one blob


def test_two_blobs_are_shown_as_drift_and_repaired_as_one(spec):
    uuid = spec.uuid("VM-2")
    config = spec.vm("VM-2").config
    doubled = f"{devargs.render(config)} -vnc :2 --fw_cfg opt/vgpu/config,string={devargs.payload(config)}"
    spec.sim.set_device_model_args(uuid, doubled)
    drift = next(line for line in ok(spec.cli("scan-vms")) if line.startswith(f"UUID: {uuid} | Name: VM-2 | Database:"))
    assert "Args: unreadable (it holds 2 vgpu blobs, and QEMU starts with one only)" in drift
    ok(spec.cli("repair-vm", f"--vm-uuid={uuid}"))
    assert spec.sim.get_device_model_args(uuid) == f"{devargs.render(config)} -vnc :2"
    assert not any(line.startswith("=== Device-model args differ") for line in ok(spec.cli("scan-vms")))


# --- names -------------------------------------------------------------------------------------------------

EVIL = "evil\x1b[2J\x1b]0;owned\x07\nUUID: fake | Name: VM-0 | Status: ⚠ Not registered\u202e"
EVIL_SHOWN = "evil\\x1b[2J\\x1b]0;owned\\x07\\nUUID: fake | Name: VM-0 | Status: ⚠ Not registered\\u202e"
# In a line of " | " fields (scan-vms, list-vms, show-vm) a name holding "|" or a character that does not print
# is quoted, as a list quotes one holding a comma: inside the quotes each escape is a character the name holds,
# and a backslash or quote it holds is escaped itself, so neither the quotes nor the escapes can be faked.
EVIL_QUOTED = '"' + EVIL_SHOWN + '"'


def rename_in_db(spec, name: str, new: str) -> None:
    import sqlite3

    with sqlite3.connect(spec.db) as conn:
        conn.execute("UPDATE vms SET vm_name = ? WHERE vm_uuid = ?", (new, spec.uuid(name)))
    conn.close()


def assert_inert(text: str) -> None:
    assert not any(char in text for char in "\x1b\x07\u202e\r"), text


@pytest.mark.parametrize("command", [
    ["scan-vms"], ["status"], ["list-vms"], ["show-pool", "--pool-id=A"], ["show-vm", "--vm-uuid={vm1}"],
])
def test_names_from_the_host_and_the_database_cannot_drive_the_terminal(spec, command):
    before = len(ok(spec.cli(*[word.format(vm1=spec.uuid("VM-1")) for word in command])))
    spec.sim.add_vm(spec.uuid("VM-21"), EVIL, "running", "")  # a guest owner named their VM
    rename_in_db(spec, "VM-1", EVIL)  # ... and a registration kept the name
    outcome = spec.cli(*[word.format(vm1=spec.uuid("VM-1")) for word in command])
    lines = ok(outcome)
    assert_inert(outcome.out)
    assert len(lines) == before  # no line was added by a name
    assert EVIL_QUOTED in outcome.out if command[0] in ("scan-vms", "list-vms", "show-vm") else EVIL_SHOWN in outcome.out


def test_history_shows_a_recorded_name_inert(spec):
    import json
    import sqlite3

    with sqlite3.connect(spec.db) as conn:  # as if a registration had kept it
        conn.execute("INSERT INTO vgpu_audit (action, subject, old, new) VALUES ('register', ?, NULL, ?)",
                     (spec.uuid("VM-21"), json.dumps({"vm_name": EVIL, "vm_id": 30, "pool_id": "A", "priority": 1})))
    conn.close()
    outcome = spec.cli("history", "--limit=1")
    assert_inert(outcome.out)
    assert ok(outcome) == [line for line in outcome.out_lines if EVIL_SHOWN in line]


def test_json_keeps_names_exact_and_still_prints_nothing_raw(spec):
    import json

    spec.sim.add_vm(spec.uuid("VM-21"), EVIL, "running", "")
    rename_in_db(spec, "VM-1", EVIL)
    outcome = spec.cli("scan-vms", "--format=json")
    assert outcome.code == 0
    assert_inert(outcome.out)
    data = json.loads(outcome.out)
    assert EVIL in [vm["name"] for vm in data["unregistered"]]
    assert EVIL in [entry["vm"]["vm_name"] for entry in data["registered"]]


def test_an_error_quoting_a_name_is_still_one_inert_line(spec):
    rename_in_db(spec, "VM-1", EVIL)
    outcome = spec.cli("register-vm", f"--vm-uuid={spec.uuid('VM-21')}", "--vm-id=1")
    assert outcome.code == 2
    line = outcome.one_error_line()
    assert_inert(line)
    assert line == f"error: vm_id 1 is already used by VM {EVIL_SHOWN} ({spec.uuid('VM-1')})"


def test_an_unregistered_name_holding_a_comma_is_one_item_in_status(spec):
    spec.sim.add_vm(spec.uuid("VM-22"), "VM-22, VM-99", "halted", "")
    line = next(line for line in ok(spec.cli("status")) if line.startswith("  VM-21"))
    assert line == '  VM-21, "VM-22, VM-99", VM-23 (not registered - will default to Pool A if registered without --pool)'


def test_a_host_name_of_a_million_characters_is_cut(spec):
    spec.sim.add_vm(spec.uuid("VM-21"), "x" * 1_000_000, "running", "")
    line = next(line for line in ok(spec.cli("scan-vms")) if spec.uuid("VM-21") in line)
    assert len(line) < 500 and "x" * 255 + "…" in line

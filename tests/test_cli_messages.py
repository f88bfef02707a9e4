"""What the one-shot commands say when a value names nothing usable: each refusal is one line on stderr in
the CLI's own terms, with the exit code for bad input, and changes nothing (the DB and host file byte for
byte)."""

from __future__ import annotations

import json
import os

import pytest

from vgpu import vms
from vgpu.store import Store

from .clikit import SpecHost, run, run_process

NOWHERE = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"  # well formed, neither registered nor on the host


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def refused(spec: SpecHost, *argv: str, code: int = 2) -> str:
    before = spec.files()
    outcome = spec.cli(*argv, stdin="yes\n")
    line = outcome.one_error_line()
    assert (outcome.code, outcome.out) == (code, ""), outcome
    assert spec.files() == before, f"{argv} changed a file"
    return line


# --- a VM that is on the host but not registered ----------------------------------------------------------

HOST_COMMANDS = [
    ["set-pool", "--pool=B"],
    ["set-priority", "--priority=high"],
    ["set-vm-id", "--vm-id=77"],
    ["update-vm", "--pool=B", "--priority=low"],
    ["remove-vm"],
]
CHANGE_COMMANDS = HOST_COMMANDS[:-1]


@pytest.mark.parametrize("argv", CHANGE_COMMANDS, ids=lambda argv: argv[0])
def test_a_command_that_asks_the_host_says_the_vm_is_there_but_not_registered(spec, argv):
    uuid = spec.uuid("VM-21")
    line = refused(spec, argv[0], f"--vm-uuid={uuid.upper()}", *argv[1:])
    assert line == (f"error: VM VM-21 ({uuid}) is on the host but not registered; "
                    f"register it first with 'vgpu-admin register-vm --vm-uuid={uuid}'")


def test_remove_vm_of_a_vm_that_is_not_registered_has_nothing_to_remove(spec):
    uuid = spec.uuid("VM-21")
    line = refused(spec, "remove-vm", f"--vm-uuid={uuid}")
    assert line == f"error: VM VM-21 ({uuid}) is on the host but not registered; there is nothing to remove"


@pytest.mark.parametrize("argv", HOST_COMMANDS, ids=lambda argv: argv[0])
def test_a_command_that_asks_the_host_says_when_the_host_lacks_the_vm_too(spec, argv):
    line = refused(spec, argv[0], f"--vm-uuid={NOWHERE}", *argv[1:])
    assert line == (f"error: registered VM {NOWHERE} not found; the host has no VM with this UUID either "
                    "(see 'vgpu-admin scan-vms')")


@pytest.mark.parametrize("uuid", [SpecHost.uuid("VM-21"), NOWHERE], ids=["on-the-host", "nowhere"])
def test_show_vm_answers_from_the_database_alone(spec, uuid):
    spec.sim.set_fault("unreachable", "on")  # show-vm must not need the host to refuse an unregistered UUID
    line = refused(spec, "show-vm", f"--vm-uuid={uuid}")
    assert line == (f"error: registered VM {uuid} not found; if the host has this VM, register it with "
                    f"'vgpu-admin register-vm --vm-uuid={uuid}' (see 'vgpu-admin scan-vms')")


# --- repair-vm of a UUID that is nowhere ------------------------------------------------------------------


def test_repair_vm_of_a_uuid_that_is_nowhere_is_bad_input_like_register_vm(spec):
    line = refused(spec, "repair-vm", f"--vm-uuid={NOWHERE}")
    assert line == f"error: VM {NOWHERE} not found; it is neither registered nor on the host (see 'vgpu-admin scan-vms')"
    assert refused(spec, "register-vm", f"--vm-uuid={NOWHERE}").startswith(f"error: VM {NOWHERE} not found; ")


def test_repair_vm_of_a_registered_vm_the_host_lost_says_how_to_unregister_it(spec):
    uuid = spec.uuid("VM-2")
    spec.sim.remove_vm(uuid)
    line = refused(spec, "repair-vm", f"--vm-uuid={uuid}")
    assert line.endswith(f"'vgpu-admin remove-vm --vm-uuid={uuid}' unregisters it")


def test_repair_vm_with_the_host_down_is_still_a_host_failure(spec):
    spec.sim.set_fault("unreachable", "on")
    assert refused(spec, "repair-vm", f"--vm-uuid={NOWHERE}", code=1).startswith("error: cannot reach the host")


# --- pool names -------------------------------------------------------------------------------------------


def test_set_pool_name_refuses_the_name_the_other_pool_has(spec):
    line = refused(spec, "set-pool-name", "--pool-id=B", "--name=Pool A")
    assert line == 'error: pool name "Pool A" is already used by pool A'


def test_set_pool_name_refuses_a_double_quote_that_would_break_the_pool_lines(spec):
    line = refused(spec, "set-pool-name", "--pool-id=A", '--name=Prod" | VMs: 99')
    assert line == ("error: invalid pool name 'Prod\" | VMs: 99': expected printable text of at most 64 characters, "
                    "without double quotes")


def test_set_pool_name_with_the_name_the_pool_has_says_nothing_changed(spec):
    """As set-pool says a VM already has its configuration: a second rename to "X" claims no change."""
    assert spec.cli("set-pool-name", "--pool-id=B", "--name=X").out_lines == ['Pool B is now named "X".']
    before = spec.files()
    for name in ("X", "  X "):  # the name as it is stored: surrounding spaces are not kept
        outcome = spec.cli("set-pool-name", "--pool-id=b", f"--name={name}")
        assert (outcome.code, outcome.err) == (0, "")
        assert outcome.out_lines == ['Pool B is already named "X"; nothing to do.']
    assert spec.files() == before
    assert len(spec.cli("history", "--pool-id=B").out_lines) == 1


# --- help on the one-shot command line ----------------------------------------------------------------------


def test_one_shot_help_says_how_to_run_help_from_the_command_line():
    outcome = run(["help"])
    assert outcome.code == 0 and outcome.out_lines[0] == "Commands (run 'vgpu-admin help COMMAND' for its options):"


@pytest.mark.parametrize("argv", [["help", "nosuch"], ["nosuch"]])
def test_one_shot_hints_say_vgpu_admin_help(argv):
    outcome = run(argv)
    assert outcome.code == 2 and outcome.one_error_line().endswith("'nosuch'; run 'vgpu-admin help' for the list")


# --- history in the words of the other commands --------------------------------------------------------------


def history_lines(spec: SpecHost, *argv: str) -> list[str]:
    """history's lines without their timestamps (what is left is fixed)."""
    outcome = spec.cli("history", *argv)
    assert (outcome.code, outcome.err) == (0, ""), outcome
    return [line.split(" | ", 1)[1] for line in outcome.out_lines]


def test_history_shows_priorities_pools_and_vm_names_as_the_other_commands_do(spec):
    vm6 = spec.uuid("VM-6")
    for argv in (["set-priority", "--priority=high"], ["update-vm", "--pool=B", "--vm-id=60"]):
        assert spec.cli(argv[0], f"--vm-uuid={vm6}", *argv[1:], stdin="yes\n").code == 0
    assert spec.cli("set-pool-name", "--pool-id=B", "--name=Dev pool").code == 0
    assert spec.cli("remove-vm", f"--vm-uuid={vm6}").code == 0
    assert history_lines(spec, "--limit=6") == [
        f"remove | VM-6 ({vm6}) | pool B, priority high (2), VM ID 60",
        'rename-pool | Pool B | name "Pool B" → "Dev pool"',
        f"update | VM-6 ({vm6}) | pool A → B, VM ID 6 → 60",
        f"update | VM-6 ({vm6}) | priority low (0) → high (2)",
        f"register | VM-20 ({spec.uuid('VM-20')}) | pool B, priority low (0), VM ID 20",
        f"register | VM-19 ({spec.uuid('VM-19')}) | pool B, priority low (0), VM ID 19",
    ]


def test_history_names_a_vm_registered_without_one_by_its_current_name(spec):
    vm21 = spec.uuid("VM-21")
    with Store(spec.db) as store:
        vms.db_register(store, vm21, vm_name=None)
    assert history_lines(spec, f"--vm-uuid={vm21}") == [f"register | {vm21} | pool A, priority medium (1), VM ID 21"]
    with Store(spec.db) as store, store.writing() as conn:
        conn.execute("UPDATE vms SET vm_name = 'render box' WHERE vm_uuid = ?", (vm21,))
    assert history_lines(spec, f"--vm-uuid={vm21}") == [f"register | render box ({vm21}) | pool A, priority medium (1), VM ID 21"]


def test_history_names_a_removed_vm_on_its_stop_rows_too(spec):
    vm1 = spec.uuid("VM-1")  # running: the change stops it, and the audit log says how
    assert spec.cli("set-priority", f"--vm-uuid={vm1}", "--priority=low", stdin="yes\n").code == 0
    assert spec.cli("remove-vm", f"--vm-uuid={vm1}").code == 0
    assert history_lines(spec, f"--vm-uuid={vm1}") == [
        f"remove | VM-1 ({vm1}) | pool A, priority low (0), VM ID 1",
        f"update | VM-1 ({vm1}) | priority high (2) → low (0)",
        f"stop | VM-1 ({vm1}) | shut down cleanly",
        f"register | VM-1 ({vm1}) | pool A, priority high (2), VM ID 1",
    ]


def test_history_json_keeps_the_raw_values(spec):
    vm6 = spec.uuid("VM-6")
    assert spec.cli("set-priority", f"--vm-uuid={vm6}", "--priority=high", stdin="yes\n").code == 0
    outcome = spec.cli("history", "--limit=1", "--format=json")
    (entry,) = json.loads(outcome.out)
    assert (entry["subject"], entry["old"]["priority"], entry["new"]["priority"], entry["new"]["pool_id"]) == (vm6, 0, 2, "A")


def test_history_shows_a_field_or_value_it_does_not_know_as_recorded():
    from shell import render
    from vgpu.models import AuditEntry

    entry = AuditEntry(1, "t", "update", NOWHERE, {"priority": 7, "vm_id": None, "tag": "x"}, {"priority": 1, "vm_id": 3, "tag": "y"})
    assert render.history([entry]) == f"t | update | {NOWHERE} | priority 7 → medium (1), VM ID none → 3, tag x → y"


def _interrupted_after_the_args_were_written(spec: SpecHost, name: str) -> str:
    """A set-pool to B killed after it wrote VM's args and before it updated the database: the args say B,
    the database A, and the change is left to recover (its session is gone)."""
    from vgpu import devargs, journal
    from vgpu.models import VMConfig

    uuid = spec.uuid(name)
    with Store(spec.db) as store, store.writing() as conn:
        vm = vms.select_vm(conn, uuid)
        new = VMConfig("B", vm.priority, vm.vm_id)
        journal.begin(conn, uuid, "reconfigure", vm, new, False)
        conn.execute("UPDATE vgpu_operations SET owner = 'gone.invalid:1', released_at = 'T'")
    spec.sim.set_device_model_args(uuid, devargs.merge(spec.sim.get_device_model_args(uuid), new))
    return uuid


def test_a_vm_whose_change_was_interrupted_is_pointed_at_recover_not_at_repair(spec):
    uuid = _interrupted_after_the_args_were_written(spec, "VM-1")
    scanned = spec.cli("scan-vms").out_lines
    [drift] = [line for line in scanned if line.startswith(f"UUID: {uuid} | Name: VM-1 | Database:")]
    assert drift.endswith("| Action: Run 'vgpu-admin recover': a change to it was interrupted"), drift
    assert not any("repair-vm" in line and uuid in line for line in scanned)
    shown = spec.cli("show-vm", f"--vm-uuid={uuid}").out_lines
    [args] = [line for line in shown if line.startswith("Device-model args:")]
    assert args.endswith("(run 'vgpu-admin recover': a change to it was interrupted)"), args
    assert not any("repair-vm" in line for line in shown)
    assert spec.cli("repair-vm", f"--vm-uuid={uuid}").code == 1  # what the hint used to name is refused


def test_symbols_the_output_cannot_encode_fall_back_to_ascii_distinct_from_unknown(spec):
    latin = run_process(["scan-vms", *spec.flags], env={**os.environ, "PYTHONIOENCODING": "latin-1"})
    assert latin.code == 0
    assert "? Configured" not in latin.out and "| + Configured" in latin.out  # ? is the "unknown" symbol
    utf8 = run_process(["scan-vms", *spec.flags], env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert utf8.out == latin.out.replace("+ Configured", "✓ Configured").replace("! ", "⚠ ")
    assert "| ✓ Configured" in utf8.out

"""What the one-shot commands say when a value names nothing usable: each refusal is one line on stderr in
the CLI's own terms, with the exit code for bad input, and changes nothing (the DB and host file byte for
byte)."""

from __future__ import annotations

import pytest

from .clikit import SpecHost, run

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


@pytest.mark.parametrize("argv", HOST_COMMANDS, ids=lambda argv: argv[0])
def test_a_command_that_asks_the_host_says_the_vm_is_there_but_not_registered(spec, argv):
    uuid = spec.uuid("VM-21")
    line = refused(spec, argv[0], f"--vm-uuid={uuid.upper()}", *argv[1:])
    assert line == (f"error: VM VM-21 ({uuid}) is on the host but not registered; "
                    f"register it first with 'vgpu-admin register-vm --vm-uuid={uuid}'")


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


# --- help on the one-shot command line ----------------------------------------------------------------------


def test_one_shot_help_says_how_to_run_help_from_the_command_line():
    outcome = run(["help"])
    assert outcome.code == 0 and outcome.out_lines[0] == "Commands (run 'vgpu-admin help COMMAND' for its options):"


@pytest.mark.parametrize("argv", [["help", "nosuch"], ["nosuch"]])
def test_one_shot_hints_say_vgpu_admin_help(argv):
    outcome = run(argv)
    assert outcome.code == 2 and outcome.one_error_line().endswith("'nosuch'; run 'vgpu-admin help' for the list")

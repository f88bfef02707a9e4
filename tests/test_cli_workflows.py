"""The spec's UPDATED WORKFLOW EXAMPLES, each run as the spec shows it, and the confirmation dialogue.

Workflows 1 and 2 start from the spec's host before anything is registered; 3 to 5 from the spec's
example with VM-1..VM-20 registered. The confirmation is compared with the spec's block byte for byte.
"""

from __future__ import annotations

import io

import pytest

from shell.console import Console, stdin_reader
from shell.main import main

from vgpu import demo, devargs
from vgpu.hypervisor.sim import SimHost
from vgpu.models import Priority, VMConfig

from .clikit import SpecHost, run, run_process

SPEC_BLOCK = (
    "  Current configuration:\n"
    "    Pool: A\n"
    "    Priority: high (2)\n"
    "    VM ID: 1\n"
    "  \n"
    "  New configuration:\n"
    "    Pool: B\n"
    "    Priority: high (2)\n"
    "    VM ID: 1\n"
    "  \n"
)
RESTART = "  This change requires stopping and restarting the VM.\n"
QUESTION = "  Do you want to apply these settings? (yes/no): "
CANCELLED = "Operation cancelled; nothing was changed.\n"
OLD, NEW = VMConfig("A", Priority.HIGH, 1), VMConfig("B", Priority.HIGH, 1)


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


@pytest.fixture
def bare(tmp_path):
    """The spec's 23 VMs on a host, none registered yet: where workflows 1 and 2 begin."""
    host = SimHost(tmp_path / "host.json")
    host.add_vms([(demo.demo_uuid(f"VM-{n}"), f"VM-{n}", "running" if n % 3 else "halted", "") for n in range(1, 24)])
    return ["--host", f"sim:{host.path}", "--db", str(tmp_path / "vgpu.db")], host


def config_of(spec: SpecHost, name: str) -> VMConfig:
    return spec.vm(name).config


def segment_of(spec: SpecHost, name: str) -> VMConfig | None:
    return devargs.parse(spec.sim.get_device_model_args(spec.uuid(name))).config


# --- workflows 1 and 2: registering ----------------------------------------------------------------------


def test_workflow_1_register_with_defaults(bare, tmp_path):
    flags, host = bare
    uuid = demo.demo_uuid("VM-1")
    outcome = run(["register-vm", f"--vm-uuid={uuid}", "--vm-name=VM-1", *flags])
    assert (outcome.code, outcome.err) == (0, "")
    # Result: Registered to Pool A, medium priority, auto-assigned vm_id
    assert outcome.out_lines[0] == f"Registered VM-1 ({uuid}) in Pool A with priority medium (1) and VM ID 1."
    listed = run(["list-vms", *flags]).out_lines
    assert listed[0] == f"UUID: {uuid} | Name: VM-1 | Pool: A | Priority: medium (1) | VM ID: 1"
    assert devargs.parse(host.get_device_model_args(uuid)).config == VMConfig("A", Priority.MEDIUM, 1)


def test_workflow_2_register_with_explicit_settings(bare):
    flags, host = bare
    uuid = demo.demo_uuid("VM-8")
    outcome = run(["register-vm", f"--vm-uuid={uuid}", "--vm-name=VM-8", "--pool=B", "--priority=high", "--vm-id=8", *flags])
    assert (outcome.code, outcome.err) == (0, "")
    # Result: Registered to Pool B, high priority, vm_id=8
    assert outcome.out_lines[0] == f"Registered VM-8 ({uuid}) in Pool B with priority high (2) and VM ID 8."
    assert run(["show-pool", "--pool-id=B", *flags]).out_lines[3:5] == ["VMs: 1", "  High Priority: 1 VM (VM-8)"]
    assert devargs.parse(host.get_device_model_args(uuid)).config == VMConfig("B", Priority.HIGH, 8)


# --- workflow 3: changing a VM's pool, and every answer to the question ----------------------------------


def set_pool_b(spec: SpecHost, answers: str, name: str = "VM-1"):
    return spec.cli("set-pool", f"--vm-uuid={spec.uuid(name)}", "--pool=B", stdin=answers)


def test_workflow_3_yes_stops_updates_and_restarts_the_vm(spec):
    uuid = spec.uuid("VM-1")
    boots = spec.sim.boots(uuid)
    outcome = set_pool_b(spec, "yes\n")
    assert outcome.code == 0
    assert outcome.out.startswith(SPEC_BLOCK + RESTART + QUESTION + "yes\n")
    assert outcome.out_lines[-2:] == [
        f"Applied to VM-1 ({uuid}): pool A → B.", "The VM was shut down cleanly, reconfigured and started again."
    ]
    # System stops VM → updates database → updates device-model-args → restarts VM, and says so on stderr.
    progress = outcome.err_lines
    steps = [next(i for i, line in enumerate(progress) if line.startswith(prefix))
             for prefix in ("Shutting down VM", f"VM {uuid} shut down", "Updating the database", "Starting VM", f"VM {uuid} is running")]
    assert steps == sorted(steps) and not any(line.startswith("error") for line in progress)
    assert config_of(spec, "VM-1") == NEW and segment_of(spec, "VM-1") == NEW
    assert spec.sim.power_state(uuid).value == "running"
    assert spec.sim.boots(uuid)[:-1] == boots and devargs.parse(spec.sim.boots(uuid)[-1]).config == NEW


@pytest.mark.parametrize("answer", ["no\n", "n\n", "NO\n", " No \n"])
def test_workflow_3_no_cancels_and_the_vm_keeps_running(spec, answer):
    uuid = spec.uuid("VM-1")
    before, boots = spec.files(), spec.sim.boots(uuid)
    outcome = set_pool_b(spec, answer)
    assert outcome.code == 3
    assert outcome.out == SPEC_BLOCK + RESTART + QUESTION + answer
    assert outcome.err == CANCELLED
    assert spec.files() == before
    assert spec.sim.power_state(uuid).value == "running" and spec.sim.boots(uuid) == boots
    assert config_of(spec, "VM-1") == OLD


class _Terminal(io.StringIO):
    """Answers typed at a terminal (which echoes them itself)."""

    def isatty(self) -> bool:
        return True


def test_workflow_3_an_unclear_answer_at_a_terminal_is_asked_again_then_yes_applies(spec):
    out, err = io.StringIO(), io.StringIO()
    argv = ["set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", *spec.flags]
    assert main(argv, Console(out, err, stdin_reader(out, _Terminal("sure\nyep\ny\n")))) == 0
    again = "Please answer yes or no.\n" + QUESTION
    assert out.getvalue().startswith(SPEC_BLOCK + RESTART + QUESTION + again + again + "Applied to VM-1")
    assert config_of(spec, "VM-1") == NEW and segment_of(spec, "VM-1") == NEW


@pytest.mark.parametrize(("answers", "shown"), [("ok\nyes\n", "'ok'"), ("maybe", "'maybe'"), ("\nyes\n", "an empty answer")],
                         ids=["unclear-then-yes", "no-newline", "empty"])
def test_workflow_3_an_unclear_piped_answer_is_a_no_and_reads_no_further(spec, answers, shown):
    # Without a terminal nobody can answer again: asking again would take the script's next line as the answer.
    uuid = spec.uuid("VM-1")
    before, boots = spec.files(), spec.sim.boots(uuid)
    outcome = set_pool_b(spec, answers)
    assert outcome.code == 3
    assert outcome.out == SPEC_BLOCK + RESTART + QUESTION + answers.split("\n")[0] + "\n"
    assert outcome.one_error_line() == (f"Cancelled: {shown} is neither yes nor no (without a terminal "
                                        "the question is not asked again); nothing was changed.")
    assert spec.files() == before
    assert spec.sim.power_state(uuid).value == "running" and spec.sim.boots(uuid) == boots


def test_workflow_3_end_of_input_cancels(spec):
    uuid = spec.uuid("VM-1")
    before, boots = spec.files(), spec.sim.boots(uuid)
    outcome = set_pool_b(spec, "")
    assert outcome.code == 3 and outcome.err == CANCELLED
    assert outcome.out.startswith(SPEC_BLOCK + RESTART + QUESTION)
    assert spec.files() == before
    assert spec.sim.power_state(uuid).value == "running" and spec.sim.boots(uuid) == boots


def test_workflow_3_on_a_halted_vm_says_no_restart_is_needed(spec):
    uuid = spec.uuid("VM-3")  # Pool A, high, vm_id 3, halted
    outcome = set_pool_b(spec, "yes\n", "VM-3")
    assert outcome.code == 0
    block = SPEC_BLOCK.replace("VM ID: 1", "VM ID: 3")
    assert outcome.out.startswith(
        block + "  The VM is halted: no restart is needed; it takes the change at its next start.\n" + QUESTION + "yes\n"
    )
    assert "requires stopping" not in outcome.out and "Shutting down" not in outcome.err
    assert outcome.out_lines[-1] == "The VM was not running; it takes the new configuration at its next start."
    assert spec.sim.power_state(uuid).value == "halted" and spec.sim.boots(uuid) == []
    assert segment_of(spec, "VM-3") == VMConfig("B", Priority.HIGH, 3)


def test_workflow_3_a_vm_that_will_not_start_in_its_new_pool_is_rolled_back(spec):
    uuid = spec.uuid("VM-1")
    spec.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    outcome = set_pool_b(spec, "yes\n")
    assert outcome.code == 1
    errors = [line for line in outcome.err_lines if line.startswith("error")]
    assert errors == [outcome.err_lines[-1]]
    # the failure (the host's own words) and the rollback, in one line
    assert "Daemon exited unexpectedly" in errors[0] and "previous configuration was restored" in errors[0]
    assert "Applied" not in outcome.out
    assert config_of(spec, "VM-1") == OLD and segment_of(spec, "VM-1") == OLD
    assert spec.sim.power_state(uuid).value == "running"
    assert devargs.parse(spec.sim.boots(uuid)[-1]).config == OLD


def test_workflow_3_with_the_host_unreachable_changes_nothing(spec):
    spec.sim.set_fault("unreachable", "on")
    before = spec.files()
    outcome = set_pool_b(spec, "yes\n")
    assert outcome.code == 1 and outcome.out == ""
    line = outcome.one_error_line()
    assert line.startswith("error: ") and "switched off" in line
    assert spec.files() == before
    spec.sim.set_fault("unreachable", None)
    assert config_of(spec, "VM-1") == OLD and spec.sim.power_state(spec.uuid("VM-1")).value == "running"


def test_workflow_3_through_the_real_command(spec):
    uuid = spec.uuid("VM-1")
    declined = run_process(["set-pool", f"--vm-uuid={uuid}", "--pool=B", *spec.flags], stdin="no\n")
    assert (declined.code, declined.err) == (3, CANCELLED)
    assert declined.out == SPEC_BLOCK + RESTART + QUESTION + "no\n"
    accepted = run_process(["set-pool", f"--vm-uuid={uuid}", "--pool=B", *spec.flags], stdin="yes\n")
    assert accepted.code == 0 and accepted.out.startswith(SPEC_BLOCK + RESTART + QUESTION + "yes\n")
    assert "Traceback" not in accepted.err and config_of(spec, "VM-1") == NEW


# --- workflow 4: pool names -----------------------------------------------------------------------------


def test_workflow_4_pool_names_default_to_pool_a_and_b_and_can_be_changed(spec):
    status = spec.cli("status").out_lines
    assert 'Pool A: "Pool A"' in status and 'Pool B: "Pool B"' in status
    boots = {n: spec.sim.boots(spec.uuid(f"VM-{n}")) for n in range(1, 24)}
    renamed = spec.cli("set-pool-name", "--pool-id=A", "--name=Production Pool")
    assert (renamed.code, renamed.out) == (0, 'Pool A is now named "Production Pool".\n')
    status = spec.cli("status").out_lines
    assert 'Pool A: "Production Pool"' in status and 'Pool B: "Pool B"' in status
    assert {n: spec.sim.boots(spec.uuid(f"VM-{n}")) for n in range(1, 24)} == boots  # no VM restart


# --- workflow 5: scan, then register the unregistered VMs -----------------------------------------------


def test_workflow_5_scan_and_register_multiple_vms(spec):
    headers = [line for line in spec.cli("scan-vms").out_lines if line.startswith("===")]
    assert headers == ["=== Pool A: 7 VMs ===", "=== Pool B: 13 VMs ===", "=== Unregistered VMs: 3 ==="]
    xyz789, uvw012, rst345 = (spec.uuid(f"VM-{n}") for n in (21, 22, 23))

    first = spec.cli("register-vm", f"--vm-uuid={xyz789}")  # Defaults to Pool A
    assert first.code == 0 and spec.vm("VM-21").config == VMConfig("A", Priority.MEDIUM, 21)
    second = spec.cli("register-vm", f"--vm-uuid={uuid_arg(uvw012)}", "--pool=B", "--priority=high")
    assert second.code == 0 and spec.vm("VM-22").config == VMConfig("B", Priority.HIGH, 22)

    # Taken literally, the spec's third line asks for vm_id 21, which the first line auto-assigned (the
    # lowest free vm_id after VM-1..VM-20): it is refused, naming the holder, and nothing changes.
    before = spec.files()
    third = spec.cli("register-vm", f"--vm-uuid={rst345}", "--pool=A", "--vm-id=21")
    line = third.one_error_line()
    assert third.code == 2 and "vm_id 21" in line and xyz789 in line
    assert spec.files() == before and spec.vm("VM-23") is None
    retry = spec.cli("register-vm", f"--vm-uuid={rst345}", "--pool=A", "--vm-id=23")
    assert retry.code == 0 and spec.vm("VM-23").config == VMConfig("A", Priority.MEDIUM, 23)

    headers = [line for line in spec.cli("scan-vms").out_lines if line.startswith("===")]
    # VM-21 and VM-23 were running: their QEMU takes the new segment only when they restart.
    assert headers == ["=== Pool A: 9 VMs ===", "=== Pool B: 14 VMs ===", "=== Unregistered VMs: 0 ===",
                       "=== Running with an older configuration (pending restart): 2 ==="]
    status = spec.cli("status").out_lines
    summary = status.index("Total Pools: 2 (both enabled)")
    assert status[summary:summary + 4] == [
        "Total Pools: 2 (both enabled)", "Total VMs Registered: 23", "Total VMs Unregistered: 0", "Total VMs in System: 23"
    ]
    assert status[summary + 5:] == ["=== Running with an older configuration (pending restart): 2 ===",
                                    *(line for line in status if line.startswith(f"UUID: {xyz789} |")),
                                    *(line for line in status if line.startswith(f"UUID: {rst345} |"))]


def uuid_arg(uuid: str) -> str:
    """UUIDs are accepted in any case."""
    return uuid.upper()


def test_ctrl_c_at_the_question_cancels(spec):
    def interrupted(prompt: str) -> str:
        out.write(prompt)
        raise KeyboardInterrupt

    out, err = io.StringIO(), io.StringIO()
    before = spec.files()
    argv = ["set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", *spec.flags]
    assert main(argv, Console(out, err, interrupted, interactive=True)) == 3
    assert out.getvalue() == SPEC_BLOCK + RESTART + QUESTION + "\n"
    assert err.getvalue() == CANCELLED
    assert spec.files() == before and spec.sim.power_state(spec.uuid("VM-1")).value == "running"

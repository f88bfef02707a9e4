"""The xe backend beyond the shared protocol: no shell, a listing of two calls that names cannot fool, deadlines, and
errors as sentences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vgpu.errors import HostUnreachable, HypervisorError
from vgpu.hypervisor import codes, open_host, xe_format
from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xe import INVALID_VALUE, XE_FAILED, XeHost
from vgpu.models import PowerState, Priority, VMConfig

from .hostkit_xe import STANDIN_XE, standin_env

VM = "0b7c1f52-1111-4a2b-9c3d-000000000001"
HALTED = "0b7c1f52-1111-4a2b-9c3d-000000000002"
ABSENT = "0b7c1f52-1111-4a2b-9c3d-0000000000ff"
GUESTS = ["is-control-domain=false", "is-a-template=false", "is-a-snapshot=false"]
LIST_ARGV = ["vm-list", *GUESTS, "params=uuid,name-label,power-state,platform"]
UUIDS_ARGV = ["vm-list", *GUESTS, "params=uuid", "--minimal"]  # what the host has, exactly: names cannot fake a VM


@attrs.define
class World:
    sim: SimHost
    host: XeHost
    log: Path
    env: dict[str, str]

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def standin(self, *args: str) -> subprocess.CompletedProcess:
        """Run the stand-in directly, to check what it prints against what xe prints."""
        return subprocess.run([str(STANDIN_XE), *args], capture_output=True, text=True, env={**os.environ, **self.env}, timeout=30)


@pytest.fixture
def world(tmp_path):
    sim = SimHost(tmp_path / "host.json")
    log = tmp_path / "xe-calls.jsonl"
    env = standin_env(sim, VGPU_XE_CALL_LOG=str(log))
    sim.add_vm(VM, "web-1", "running", "-vnc 127.0.0.1:1", {"acpi": "1", "nx": "true"})
    sim.add_vm(HALTED, "db, primary", "halted", "")
    return World(sim, XeHost(xe_path=str(STANDIN_XE), env=env), log, env)


def fake_xe(tmp_path: Path, stdout: str = "", stderr: str = "", status: int = 0) -> XeHost:
    """An xe that prints what it is told, for outputs the simulated host never produces."""
    path = tmp_path / "fake-xe"
    path.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write({stdout!r})\nsys.stderr.write({stderr!r})\nsys.exit({status})\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return XeHost(xe_path=str(path))


# --- argv, never a shell ---------------------------------------------------------------------------------------


def test_hostile_args_round_trip_exactly_and_nothing_runs(world, tmp_path):
    marker = tmp_path / "pwned"
    value = f"""-name "a b" 'c d' $(touch {marker}) `touch {marker}`; touch {marker} && echo | cat > {marker} * ~ \\ %s {{}} ,x=y"""
    world.host.set_device_model_args(VM, value)
    assert world.host.get_device_model_args(VM) == value
    assert {vm.uuid: vm.device_model_args for vm in world.host.list_vms()}[VM] == value
    assert not marker.exists()
    set_call = next(call for call in world.calls() if call["argv"][0] == "vm-param-set")
    assert set_call["argv"] == ["vm-param-set", f"uuid={VM}", f"platform:device-model-args={value}"]  # one element


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), min_size=1, max_size=60))
def test_any_sendable_args_round_trip(world, value):
    world.host.set_device_model_args(HALTED, value)
    assert world.host.get_device_model_args(HALTED) == value
    assert {vm.uuid: vm.device_model_args for vm in world.host.list_vms()}[HALTED] == value


def test_line_breaks_cannot_be_sent_through_xe(world):
    for value in ("a\nb", "a\rb", "a\0b"):
        with pytest.raises(HypervisorError) as caught:
            world.host.set_device_model_args(VM, value)
        assert caught.value.code == INVALID_VALUE
    assert world.calls() == []


def test_a_malformed_uuid_is_refused_before_xe_runs(world):
    with pytest.raises(HypervisorError) as caught:
        world.host.start(f"{VM}\nforce=true")
    assert caught.value.code == codes.UUID_INVALID
    assert world.calls() == []


# --- the listing -----------------------------------------------------------------------------------------------


def test_listing_is_two_xe_calls_without_dom0_when_the_maps_leave_no_doubt(world):
    for key in ("acpi", "nx"):  # VM's map then holds the args alone, HALTED's no args at all
        world.sim.set_platform_key(VM, key, None)
    listed = world.host.list_vms()
    assert [call["argv"] for call in world.calls()] == [LIST_ARGV, UUIDS_ARGV]
    assert {vm.uuid for vm in listed} == {VM, HALTED}
    assert {vm.uuid: vm.device_model_args for vm in listed} == {VM: "-vnc 127.0.0.1:1", HALTED: ""}


def test_args_among_other_keys_are_read_exactly(world):
    # "acpi: 1; nx: true; device-model-args: -vnc 127.0.0.1:1" may as well be nx = "true; device-model-args: ...".
    listed = {vm.uuid: vm.device_model_args for vm in world.host.list_vms()}
    assert listed == {VM: "-vnc 127.0.0.1:1", HALTED: ""}
    assert [call["argv"][0] for call in world.calls()] == ["vm-list", "vm-list", "vm-param-get"]


def test_args_the_listing_cannot_vouch_for_are_read_exactly(world):
    world.sim.set_platform_key(VM, "device-model-args", "-a x; -b y")
    world.sim.set_platform_key(HALTED, "note", "one; two")  # a value before the args holds "; " too
    world.sim.set_platform_key(HALTED, "device-model-args", "-vnc :2")
    listed = {vm.uuid: vm.device_model_args for vm in world.host.list_vms()}
    assert listed == {VM: "-a x; -b y", HALTED: "-vnc :2"}
    assert sorted(call["argv"][0] for call in world.calls()) == ["vm-list", "vm-list", "vm-param-get", "vm-param-get"]


@pytest.mark.parametrize("before,after", [("-append a; kind: b", ""), ("", "; kind: b"), ("-x; y: z", "; w: v")])
def test_semicolon_space_and_a_word_colon_in_the_args_give_no_false_drift(world, tmp_path, before, after):
    # Issue 11: "-append a; kind: b -fw_cfg ..." was read as "-append a" plus a key "kind": "no segment".
    from vgpu import devargs, scan, vms
    from vgpu.store import Store

    config = VMConfig("A", Priority.HIGH, 7)
    args = " ".join(part for part in (before, devargs.render(config)) if part) + after
    world.sim.set_platform_key(VM, "device-model-args", args)
    assert {vm.uuid: vm.device_model_args for vm in world.host.list_vms()}[VM] == args
    with Store(tmp_path / "vgpu.db") as store:
        vms.db_register(store, VM, "web-1", "A", "high", 7)
        entry = next(e for e in scan.scan(store, world.host).registered if e.vm.vm_uuid == VM)
    # The stored segment as scan reads it (what the VM booted with is another matter): the database's
    # configuration, unless the blob's value really ends in "; ..." (after), which is drift.
    assert (entry.segment.config == config) is (not after)
    assert (entry.state == "drift") is bool(after)


def test_the_args_key_is_configurable(world):
    world.sim.set_platform_key(VM, "device_model_args", "-underscored")
    host = XeHost(xe_path=str(STANDIN_XE), env=world.env, args_key="device_model_args")
    assert {vm.uuid: vm.device_model_args for vm in host.list_vms()}[VM] == "-underscored"
    host.set_device_model_args(HALTED, "-x")
    assert world.sim.platform(HALTED) == {"device_model_args": "-x"}


# --- names that look like xe's own lines ------------------------------------------------------------------------

GHOST = "0b7c1f52-1111-4a2b-9c3d-0000000000bb"
ATTACKER = "0b7c1f52-1111-4a2b-9c3d-0000000000cc"
GHOST_SEGMENT = "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=1"


def fake_vm_name(victim: str) -> str:
    """A name that prints as a VM of its own (with a vgpu segment) and then as the start of the victim's record."""
    return (f"t\n\n\nuuid ( RO): {GHOST}\nname-label ( RW): ghost\npower-state ( RO): running\n"
            f"platform (MRW): device-model-args: {GHOST_SEGMENT}\n\n\nuuid ( RO): {victim}")


def test_a_name_cannot_add_vms_to_the_listing_or_list_one_twice(world):
    world.sim.add_vm(ATTACKER, fake_vm_name(VM), "halted", "")
    listed = world.host.list_vms()
    assert sorted(vm.uuid for vm in listed) == sorted([VM, HALTED, ATTACKER])
    by_uuid = {vm.uuid: vm for vm in listed}
    assert by_uuid[ATTACKER].name == fake_vm_name(VM) and by_uuid[ATTACKER].power_state is PowerState.HALTED
    assert by_uuid[ATTACKER].device_model_args == ""
    assert (by_uuid[VM].name, by_uuid[VM].power_state, by_uuid[VM].device_model_args) == ("web-1", PowerState.RUNNING, "-vnc 127.0.0.1:1")


def test_a_name_cannot_fake_its_own_vms_fields(world):
    name = (f"t\npower-state ( RO): running\nplatform (MRW): device-model-args: {GHOST_SEGMENT}\n\n\n"
            f"uuid ( RO): {GHOST}\nname-label ( RW): ghost")
    world.sim.add_vm(ATTACKER, name, "halted", "-own")
    listed = {vm.uuid: vm for vm in world.host.list_vms()}
    assert set(listed) == {VM, HALTED, ATTACKER}
    assert (listed[ATTACKER].name, listed[ATTACKER].power_state, listed[ATTACKER].device_model_args) == (name, PowerState.HALTED, "-own")


def test_describe_vm_reads_args_among_other_keys_exactly_and_its_best_reading_says_it_guesses(world):
    # VM's map: acpi, nx, then the args; HALTED's: a value before the args that holds "; device-model-args: ".
    world.sim.set_platform_key(HALTED, "note", "x; device-model-args: -fake")
    world.sim.set_platform_key(HALTED, "device-model-args", "-real")
    assert world.host.describe_vm(VM).device_model_args == "-vnc 127.0.0.1:1"
    assert world.host.describe_vm(HALTED).device_model_args == "-real"
    assert [call["argv"][0] for call in world.calls()] == ["vm-list", "vm-param-get"] * 2
    world.log.unlink()
    best = world.host.describe_vm_best_reading(VM)
    assert (best[0].device_model_args, best[1], best[0].power_state) == ("-vnc 127.0.0.1:1", False, PowerState.RUNNING)
    assert world.host.describe_vm_best_reading(HALTED)[0].device_model_args == "-fake"  # a guess, and wrong
    assert [call["argv"][0] for call in world.calls()] == ["vm-list", "vm-list"]
    world.sim.set_platform_key(VM, "acpi", None)
    world.sim.set_platform_key(VM, "nx", None)
    assert world.host.describe_vm_best_reading(VM)[1] is True  # the args alone in the map: certain


@pytest.mark.parametrize("name", ["two\nlines", "ends with a line break\n", "t\n\n\nuuid ( RO): " + VM])
def test_describe_vm_gives_the_exact_name_and_fields(world, name):
    world.sim.add_vm(ATTACKER, name, "running", "-own")
    described = world.host.describe_vm(ATTACKER)
    assert (described.uuid, described.name, described.power_state, described.device_model_args) == (ATTACKER, name, PowerState.RUNNING, "-own")
    assert described == {vm.uuid: vm for vm in world.host.list_vms()}[ATTACKER]


def test_describe_vm_cannot_be_fooled_by_a_name_that_fakes_the_fields_after_it(world):
    name = f"t\npower-state ( RO): halted\nplatform (MRW): device-model-args: {GHOST_SEGMENT}\ndom-id ( RO): -1\n\n\nuuid ( RO): {GHOST}"
    world.sim.add_vm(ATTACKER, name, "running", "-own")
    described = world.host.describe_vm(ATTACKER)
    assert (described.name, described.power_state, described.device_model_args) == (name, PowerState.RUNNING, "-own")


def test_a_scan_over_xe_shows_the_host_s_vms_and_the_victim_registers(world, tmp_path):
    from vgpu import lifecycle, scan, vms
    from vgpu.store import Store

    world.sim.add_vm(ATTACKER, fake_vm_name(VM), "running", "")
    with Store(tmp_path / "vgpu.db") as store:
        vms.db_register(store, HALTED, "db, primary", "B", "low", 5)
        report = scan.scan(store, world.host)
        assert {host_vm.uuid for host_vm in report.unregistered} == {VM, ATTACKER}
        assert (report.foreign_segments, report.conflicts) == ((), ())
        assert lifecycle.register_vm(store, world.host, VM).vm.vm_uuid == VM


# --- deadlines -------------------------------------------------------------------------------------------------


def test_clean_shutdown_deadline_kills_xe_and_returns_false(world):
    world.sim.set_fault("clean_shutdown", "ignore", VM)
    began = time.monotonic()
    assert world.host.clean_shutdown(VM, timeout=0.5) is False
    assert time.monotonic() - began < 5.0  # the deadline plus process start-up on a busy machine
    pid = world.calls()[-1]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert world.host.power_state(VM) is PowerState.RUNNING


def test_xapis_own_shutdown_timeout_is_false_too(world, tmp_path):
    world.sim.set_fault("clean_shutdown", "ignore", VM)
    host = XeHost(xe_path=str(STANDIN_XE), env={**world.env, "VGPU_XE_SHUTDOWN_WAIT": "0.2"})
    assert host.clean_shutdown(VM, timeout=30) is False


def test_a_slow_call_is_host_unreachable_with_a_sentence(world):
    world.sim.set_latency("start", 10)
    host = XeHost(xe_path=str(STANDIN_XE), env=world.env, power_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        host.start(HALTED)
    assert time.monotonic() - began < 5.0  # the deadline plus process start-up on a busy machine
    assert "did not answer within 0.5 seconds" in str(caught.value)


def test_clean_shutdown_of_a_paused_vm_is_bad_power_state(world):
    world.sim.add_vm(ABSENT, "paused-1", "paused", "")
    with pytest.raises(HypervisorError) as caught:
        world.host.clean_shutdown(ABSENT, timeout=5)
    assert caught.value.code == codes.VM_BAD_POWER_STATE
    assert "paused" in str(caught.value)


# --- errors as sentences ---------------------------------------------------------------------------------------


def test_unknown_vm_is_named_in_the_sentence(world):
    for call in (world.host.power_state, world.host.start, world.host.hard_shutdown, world.host.get_device_model_args):
        with pytest.raises(HypervisorError) as caught:
            call(ABSENT)
        assert caught.value.code == codes.UUID_INVALID
        assert str(caught.value) == f"VM {ABSENT} does not exist on the host"


def test_missing_xe_is_host_unreachable(tmp_path):
    host = open_host(f"xe:{tmp_path / 'no-such-xe'}")
    assert isinstance(host, XeHost) and host.uri == f"xe:{tmp_path / 'no-such-xe'}"
    with pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert "the xe command was not found" in str(caught.value)


def test_xe_that_cannot_be_run_is_host_unreachable(tmp_path):
    path = tmp_path / "xe"
    path.write_text("not a program", encoding="utf-8")
    with pytest.raises(HostUnreachable) as caught:
        XeHost(xe_path=str(path)).list_vms()
    assert "permission denied" in str(caught.value)


def test_xapi_down_is_host_unreachable(tmp_path):
    host = fake_xe(tmp_path, stderr="Error: Connection refused (calling connect )\n", status=1)
    with pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert str(caught.value) == "cannot reach the host: xe could not talk to xapi (Error: Connection refused (calling connect ))"


def test_unknown_failure_keeps_xes_first_line(tmp_path):
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr="\nSomething nobody documented.\nsecond line\n", status=1).start(VM)
    assert (caught.value.code, str(caught.value)) == (XE_FAILED, "Something nobody documented.")


def test_silent_failure_says_so(tmp_path):
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, status=3).start(VM)
    assert str(caught.value) == "'xe vm-start' failed with exit status 3 and printed no message"


def test_a_code_without_a_sentence_still_reads_as_one(tmp_path):
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr="Error code: SR_BACKEND_FAILURE_46\nError parameters: , The VDI is not available, \n", status=1).start(VM)
    assert caught.value.code == "SR_BACKEND_FAILURE_46"
    assert str(caught.value).startswith(f"the host refused the operation on VM {VM}: SR_BACKEND_FAILURE_46")


def test_wrong_credentials(tmp_path):
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr="Authentication failed\nFor usage run: 'xe help'\n", status=1).list_vms()
    assert caught.value.code == codes.SESSION_AUTHENTICATION_FAILED
    assert "wrong user name or password" in str(caught.value)


def test_pool_member_names_the_master(tmp_path):
    stderr = xe_format.format_error(codes.HOST_IS_SLAVE, ["192.0.2.10"])
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr=stderr, status=1).list_vms()
    assert "connect to the master at 192.0.2.10" in str(caught.value)


def test_another_operation_in_progress(tmp_path):
    stderr = xe_format.format_error(codes.OTHER_OPERATION_IN_PROGRESS, ["VM", "OpaqueRef:1"])
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr=stderr, status=1).hard_shutdown(VM)
    assert caught.value.code == codes.OTHER_OPERATION_IN_PROGRESS
    assert "another operation is already running" in str(caught.value)


# What xe prints for a host parameter (xapi_cli.ml, cli_util.ml ref_convert): "<uuid> (<name-label>)".
_MEMBER = "7d8a3c1e-5f2b-4c6d-9e0f-1a2b3c4d5e6f"
_OFFLINE = f"You attempted an operation which involves a host which could not be contacted.\nhost: {_MEMBER} (xcp-ng-2)\n"


def test_a_member_offline_is_named(tmp_path):
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr=_OFFLINE, status=1).hard_shutdown(VM)
    assert caught.value.code == codes.HOST_OFFLINE
    assert str(caught.value) == (f"pool member xcp-ng-2 is offline: the pool master cannot contact it, so it cannot "
                                 f"act on VM {VM}")


@pytest.mark.parametrize("printed, said", [
    (f"{_MEMBER} ()", f"pool member {_MEMBER} is offline"),  # no name-label: its UUID names it
    ("OpaqueRef:0b1c (a, b)", "a pool member is offline"),  # a ref xapi could not look up is no name
    ("OpaqueRef:0b1c", "a pool member is offline"),
])
def test_a_member_offline_without_its_name(tmp_path, printed, said):
    stderr = f"You attempted an operation which involves a host which could not be contacted.\nhost: {printed}\n"
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr=stderr, status=1).start(VM)
    assert str(caught.value).startswith(said + ":")
    assert "OpaqueRef" not in str(caught.value)


@pytest.mark.parametrize("doc", ["Not enough server memory is available to perform this operation.",
                                 "Not enough host memory is available to perform this operation"])  # before 2019
def test_too_little_memory_to_start_says_how_much(tmp_path, doc):
    stderr = f"{doc}\nneeded: 4311744512\navailable: 1048576000\n"
    with pytest.raises(HypervisorError) as caught:
        fake_xe(tmp_path, stderr=stderr, status=1).start(VM)
    assert caught.value.code == codes.HOST_NOT_ENOUGH_FREE_MEMORY
    assert str(caught.value) == f"not enough free memory on the host to start VM {VM} (needs 4.0 GiB, 1000 MiB free)"


def test_an_odd_power_state_is_unknown(tmp_path):
    assert fake_xe(tmp_path, stdout="crashed\n").power_state(VM) is PowerState.UNKNOWN


def test_the_library_prints_nothing_whatever_xe_prints(tmp_path, capfd):
    with pytest.raises(HypervisorError):
        fake_xe(tmp_path, stdout="noise on stdout\n", stderr="Error: boom\n", status=1).start(VM)
    assert capfd.readouterr() == ("", "")


# --- odds and ends ---------------------------------------------------------------------------------------------


def test_reopen_keeps_every_setting(world):
    other = XeHost(xe_path="/opt/xe", args_key="device_model_args", env={"A": "1"}, timeout=5, power_timeout=9).reopen()
    assert (other.xe_path, other.args_key, other.env, other.timeout, other.power_timeout) == ("/opt/xe", "device_model_args", {"A": "1"}, 5, 9)
    assert open_host("xe:").uri == "xe:"


@pytest.mark.parametrize("key", ["a=b", "", "a\nb", "a; b", "a: b"])
def test_a_key_xe_cannot_address_is_refused(key):
    with pytest.raises(HypervisorError):
        XeHost(args_key=key)


# --- the stand-in prints what xe prints ------------------------------------------------------------------------


def test_standin_lists_dom0_unless_filtered_and_keeps_record_order(world):
    everything = world.standin("vm-list", "params=platform,uuid").stdout
    assert "Control domain on host" not in everything  # name-label was not asked for
    records = xe_format.parse_records(everything)
    assert all(list(record) == ["uuid", "platform"] for record in records)
    assert len(records) == 3  # two guests and the control domain
    assert everything.endswith("\n\n\n") and everything.startswith("uuid ( RO)        : ")  # padded to 4 + 14
    guests = xe_format.parse_records(world.standin("vm-list", "is-control-domain=false").stdout)
    assert {record["uuid"] for record in guests} == {VM, HALTED}


def test_standin_minimal_escapes_commas(world):
    out = world.standin("vm-list", "is-control-domain=false", "params=name-label", "--minimal").stdout
    assert sorted(xe_format.parse_minimal(out)) == ["db, primary", "web-1"]
    assert "db\\, primary" in out


def test_standin_errors_are_xes(world):
    forced = world.standin("vm-shutdown", f"uuid={HALTED}", "--force")
    assert forced.returncode == 1
    assert forced.stderr.split("\n")[0].startswith("You attempted an operation on a VM that was not in an appropriate power state")
    assert forced.stderr.split("\n")[1:] == [f"vm: {HALTED} (db, primary)", "expected: running", "actual: halted", ""]
    absent = world.standin("vm-param-get", f"uuid={ABSENT}", "param-name=power-state")
    assert (absent.returncode, absent.stderr) == (1, f"The uuid you supplied was invalid.\ntype: VM\nuuid: {ABSENT}\n")
    no_key = world.standin("vm-param-get", f"uuid={HALTED}", "param-name=platform", "param-key=device-model-args")
    assert no_key.stderr == "Error: Key device-model-args not found in map\n"

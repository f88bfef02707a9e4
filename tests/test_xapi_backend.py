"""The XenAPI backend beyond the shared protocol suite: the real SDK against the loopback XAPI stand-in."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import xmlrpc.client
from pathlib import Path

import pytest

from vgpu.errors import ConfigError, HostUnreachable, HypervisorError
from vgpu.hypervisor import codes
from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xapi import ORIGINATOR, XapiHost
from vgpu.hypervisor.xapi_uri import PASSWORD_ENV
from vgpu.models import PowerState

from .standins.xapi_server import XapiStandIn

PASSWORD = "Tr0ub4dor&3-unique"
RUNNING = "6f1d2e3c-0000-4000-8000-000000000001"
HALTED = "6f1d2e3c-0000-4000-8000-000000000002"
SKIPPED = {"00000000-0000-4000-8000-00000000d0d0", "00000000-0000-4000-8000-000000007e77",
           "00000000-0000-4000-8000-000000005a55"}  # dom0, a template and a snapshot in the stand-in


@pytest.fixture(autouse=True)
def no_password_in_env(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture
def sim(tmp_path):
    host = SimHost(tmp_path / "host.json")
    host.add_vm(RUNNING, "web-1", "running", "-vnc 127.0.0.1:1", {"viridian": "true"})
    host.add_vm(HALTED, "db-1", "halted", "")
    return host


@pytest.fixture
def server(sim):
    with XapiStandIn(sim, password=PASSWORD) as running:
        yield running


def connect(server, password=lambda: PASSWORD, **options):
    return XapiHost.from_uri(f"xapi://root@127.0.0.1:{server.port}", password=password, **options)


@pytest.fixture
def host(server):
    opened = connect(server)
    yield opened
    opened.close()


def assert_no_password(*things):
    for thing in things:
        assert PASSWORD not in repr(thing) and PASSWORD not in str(thing)


# --- login ------------------------------------------------------------------------------------------------


def test_wrong_password_is_a_sentence_without_the_password(server):
    with connect(server, password=lambda: "wrong-" + PASSWORD) as host, pytest.raises(HypervisorError) as caught:
        host.list_vms()
    error = caught.value
    assert error.code == codes.SESSION_AUTHENTICATION_FAILED
    assert str(error) == "the host refused the login for user root: wrong user name or password"
    assert_no_password(error, error.details, host, vars(host))


def test_pool_member_names_its_master(sim):
    with XapiStandIn(sim, password=PASSWORD, master="192.0.2.10") as member, connect(member) as host, \
            pytest.raises(HypervisorError) as caught:
        host.power_state(RUNNING)
    assert caught.value.code == codes.HOST_IS_SLAVE
    assert "connect to the master at 192.0.2.10" in str(caught.value)


def test_login_sends_the_originator(server, host):
    host.list_vms()
    assert list(server.sessions.values()) == [ORIGINATOR]


def test_password_from_environment_and_never_shown(server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with connect(server, password=None) as host:
        assert {vm.uuid for vm in host.list_vms()} == {RUNNING, HALTED}
        assert_no_password(host, vars(host), host._credentials)


def test_prompt_is_asked_once_for_every_reopened_session(server):
    asked = []
    host = connect(server, password=lambda: asked.append(1) or PASSWORD)
    other = host.reopen()
    try:
        host.list_vms()
        other.list_vms()
    finally:
        host.close()
        other.close()
    assert asked == [1]
    assert server.logouts == 2


def test_an_expired_session_is_renewed_by_the_sdk(server, host):
    host.list_vms()
    server.sessions.clear()  # xapi restarted, or the session timed out
    assert host.power_state(RUNNING) is PowerState.RUNNING
    assert server.calls["session.login_with_password"] == 2


def test_close_logs_out_once(server):
    host = connect(server)
    host.close()  # never logged in: nothing to do
    host.list_vms()
    host.close()
    host.close()
    assert server.logouts == 1
    assert server.sessions == {}


# --- listing ----------------------------------------------------------------------------------------------


def test_list_vms_skips_dom0_templates_and_snapshots(server, host):
    raw = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{server.port}/")
    session = raw.session.login_with_password("root", PASSWORD, "1.0", "test")["Value"]
    on_the_wire = {record["uuid"] for record in raw.VM.get_all_records(session)["Value"].values()}
    assert on_the_wire >= SKIPPED  # the stand-in does send them ...
    listed = {vm.uuid: vm for vm in host.list_vms()}
    assert set(listed) == {RUNNING, HALTED}  # ... and the backend leaves them out
    assert listed[RUNNING].device_model_args == "-vnc 127.0.0.1:1"


def test_a_listing_is_two_calls_whatever_the_vm_count(server, host, sim):
    host.list_vms()  # logs in first
    server.calls.clear()
    host.list_vms()
    # The VMs' records, and the pool's hosts for the names of the members running VMs are resident on.
    assert server.calls == {"VM.get_all_records": 1, "host.get_all_records": 1}
    sim.add_vms([(f"6f1d2e3c-0000-4000-8000-{n:012d}", f"vm-{n}", "running", "") for n in range(100, 160)])
    server.calls.clear()
    assert len(host.list_vms()) == 62
    assert server.calls == {"VM.get_all_records": 1, "host.get_all_records": 1}


def test_a_listing_with_no_running_vm_does_not_ask_for_the_pools_hosts(server, host, sim):
    sim.hard_shutdown(RUNNING)
    host.list_vms()
    server.calls.clear()
    assert all(vm.resident_on is None for vm in host.list_vms())
    assert server.calls == {"VM.get_all_records": 1}


def test_a_running_vm_names_the_pool_member_it_is_resident_on(tmp_path, sim):
    with XapiStandIn(sim, password=PASSWORD, host_names=("xcp-a1", "xcp-a2", "xcp-a3")) as pool:
        listed = connect(pool)
        try:
            before = {vm.uuid: vm.resident_on for vm in listed.list_vms()}
            pool.place(RUNNING, "xcp-a3")  # a live migration inside the pool
            after = {vm.uuid: vm.resident_on for vm in listed.list_vms()}
        finally:
            listed.close()
    assert (before[RUNNING], before[HALTED]) == ("xcp-a1", None)  # halted: resident nowhere
    assert (after[RUNNING], after[HALTED]) == ("xcp-a3", None)


def test_the_stand_in_speaks_xapi_wire_format(server):
    raw = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{server.port}/")
    assert raw.session.login_with_password("root", "nope", "1.0", "t") == {
        "Status": "Failure", "ErrorDescription": ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]}
    session = raw.session.login_with_password("root", PASSWORD, "1.0", "t")["Value"]
    assert session.startswith("OpaqueRef:")
    ref = raw.VM.get_by_uuid(session, RUNNING)["Value"]
    record = raw.VM.get_all_records(session)["Value"][ref]
    assert record["power_state"] == "Running" and record["domid"].isdigit() and record["VCPUs_max"] == "2"
    assert record["current_operations"] == {} and record["last_booted_record"] == ""  # as on a current xapi
    assert raw.VM.get_by_uuid(session, "no-such-uuid")["ErrorDescription"] == ["UUID_INVALID", "VM", "no-such-uuid"]
    assert raw.VM.get_power_state("OpaqueRef:bogus", ref)["ErrorDescription"][0] == "SESSION_INVALID"


# --- power ------------------------------------------------------------------------------------------------


def test_clean_shutdown_timeout_returns_false_in_about_the_timeout(server, host, sim):
    sim.set_fault("clean_shutdown", "ignore", RUNNING)
    started = time.monotonic()
    assert host.clean_shutdown(RUNNING, timeout=0.5) is False
    assert 0.5 <= time.monotonic() - started < 1.5
    assert server.calls["task.cancel"] == 1
    assert host.power_state(RUNNING) is PowerState.RUNNING


def test_slow_guest_within_the_deadline_shuts_down(server, host, sim):
    sim.set_latency("clean_shutdown", 0.3)
    assert host.clean_shutdown(RUNNING, timeout=5) is True
    assert server.calls["task.destroy"] == 0  # finished tasks are left for xapi to collect: a round trip saved


def test_clean_shutdown_of_a_halted_vm_is_done_already(server, host):
    assert host.clean_shutdown(HALTED, timeout=5) is True  # xapi's task fails with VM_BAD_POWER_STATE


def test_old_hosts_lacks_feature_shutdown_reads_as_lacks_feature(server, host):
    host.list_vms()
    server.fail_next("Async.VM.clean_shutdown", "VM_LACKS_FEATURE_SHUTDOWN", "OpaqueRef:x")
    with pytest.raises(HypervisorError) as caught:
        host.clean_shutdown(RUNNING, timeout=5)
    assert caught.value.code == codes.VM_LACKS_FEATURE
    assert "only a forced stop works" in str(caught.value)


def test_forcing_a_halted_vm_is_success(server, host):
    host.hard_shutdown(HALTED)
    assert server.calls["VM.hard_shutdown"] == 1  # xapi said VM_BAD_POWER_STATE; the backend took it as done
    assert host.power_state(HALTED) is PowerState.HALTED


def test_forcing_a_paused_vm_that_xapi_refuses_is_an_error(server, host):
    server.fail_next("VM.hard_shutdown", "VM_BAD_POWER_STATE", "OpaqueRef:x", "running", "paused")
    with pytest.raises(HypervisorError) as caught:
        host.hard_shutdown(RUNNING)
    assert str(caught.value) == f"VM {RUNNING} is paused, but the operation needs it running"


def test_start_runs_as_a_task_left_for_xapi_to_collect(server, host):
    host.start(HALTED)
    assert host.power_state(HALTED) is PowerState.RUNNING
    assert server.calls["Async.VM.start"] == 1 and server.calls["VM.start"] == 0
    assert server.calls["task.destroy"] == 0


def test_a_start_that_fails_inside_its_task_is_a_sentence(server, host, sim):
    sim.set_fault("start", "fail", HALTED)
    with pytest.raises(HypervisorError) as caught:
        host.start(HALTED)
    assert caught.value.code == codes.FAILED_TO_START_EMULATOR
    assert str(caught.value).startswith(f"the host could not start the device emulator (QEMU) for VM {HALTED}")


def test_a_start_still_running_at_the_deadline_is_a_timeout_not_an_unreachable_host(server, sim):
    sim.set_latency("start", 1.5)
    with connect(server, start_timeout=0.3) as host, pytest.raises(HypervisorError) as caught:
        host.start(HALTED)
    assert not isinstance(caught.value, HostUnreachable)
    assert str(caught.value) == f"the host did not finish the operation on VM {HALTED} in time"
    assert server.calls["task.cancel"] == 1


def test_other_operation_in_progress(server, host):
    server.fail_next("Async.VM.start", "OTHER_OPERATION_IN_PROGRESS", "VM", "OpaqueRef:x")
    with pytest.raises(HypervisorError) as caught:
        host.start(HALTED)
    assert caught.value.code == codes.OTHER_OPERATION_IN_PROGRESS
    assert "another operation is already running" in str(caught.value)


@pytest.fixture
def pool(sim):
    """A pool of two members, xcp1 (the master) and xcp2."""
    with XapiStandIn(sim, password=PASSWORD, host_names=("xcp1", "xcp2")) as running:
        yield running


def test_a_member_offline_is_named_not_shown_as_a_ref(pool):
    pool.fail_next_task("Async.VM.clean_shutdown", "HOST_OFFLINE", "OpaqueRef:host-xcp2")
    with connect(pool) as host, pytest.raises(HypervisorError) as caught:
        host.clean_shutdown(RUNNING, 5)
    assert caught.value.code == codes.HOST_OFFLINE
    assert str(caught.value) == (f"pool member xcp2 is offline: the pool master cannot contact it, so it cannot "
                                 f"act on VM {RUNNING}")
    assert caught.value.details == ("xcp2",)
    assert pool.calls["host.get_name_label"] == 1  # one call, on this error path only


def test_a_member_offline_that_cannot_be_named_is_a_pool_member(pool):
    pool.fail_next("VM.hard_shutdown", "HOST_OFFLINE", "OpaqueRef:host-gone")
    with connect(pool) as host, pytest.raises(HypervisorError) as caught:
        host.hard_shutdown(RUNNING)
    assert str(caught.value).startswith("a pool member is offline: the pool master cannot contact it")
    assert "OpaqueRef" not in str(caught.value) and "OpaqueRef" not in repr(caught.value.details)


def test_too_little_memory_to_start_says_how_much_in_plain_units(server, host):
    server.fail_next_task("Async.VM.start", "HOST_NOT_ENOUGH_FREE_MEMORY", "4311744512", "1048576000")
    with pytest.raises(HypervisorError) as caught:
        host.start(HALTED)
    assert caught.value.code == codes.HOST_NOT_ENOUGH_FREE_MEMORY
    assert str(caught.value) == f"not enough free memory on the host to start VM {HALTED} (needs 4.0 GiB, 1000 MiB free)"
    assert server.calls["host.get_name_label"] == 0


def test_a_storage_repository_the_host_cannot_reach_is_named(server, host):
    server.sr_names["OpaqueRef:sr-1"] = "nfs-gpu"
    server.fail_next_task("Async.VM.start", "VM_REQUIRES_SR", "OpaqueRef:vm", "OpaqueRef:sr-1")
    with pytest.raises(HypervisorError) as caught:
        host.start(HALTED)
    assert caught.value.code == codes.VM_REQUIRES_SR
    assert str(caught.value).startswith(f"VM {HALTED} needs storage repository \"nfs-gpu\"")
    assert "OpaqueRef" not in str(caught.value)


def test_internal_error_from_the_host(server, host, sim):
    sim.set_fault("list", "fail")
    with pytest.raises(HypervisorError) as caught:
        host.list_vms()
    assert caught.value.code == codes.INTERNAL_ERROR and "internal error" in str(caught.value)


def test_a_deleted_vm_is_handle_invalid(server, host, sim):
    host.list_vms()  # its ref is known
    sim.remove_vm(RUNNING)
    server.fail_next("VM.get_power_state", "HANDLE_INVALID", "VM", "OpaqueRef:gone")  # looked up again: gone
    with pytest.raises(HypervisorError) as caught:
        host.power_state(RUNNING)
    assert str(caught.value) == f"VM {RUNNING} does not exist on the host"


# --- platform ---------------------------------------------------------------------------------------------


def test_writing_args_keeps_every_other_platform_key(server, host, sim):
    host.set_device_model_args(RUNNING, "-fw_cfg name=opt/vgpu/config,string=pool=B;priority=2;vm_id=7")
    host.set_device_model_args(HALTED, "")
    assert sim.platform(RUNNING) == {
        "viridian": "true", "device-model-args": "-fw_cfg name=opt/vgpu/config,string=pool=B;priority=2;vm_id=7"}
    assert "set_platform" not in " ".join(server.calls)


def test_a_configurable_args_key(server, sim):
    sim.set_platform_key(RUNNING, "device_model_args", "-display none")
    with connect(server, args_key="device_model_args") as host:
        assert host.get_device_model_args(RUNNING) == "-display none"


# --- transport --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_is_host_unreachable():
    host = XapiHost.from_uri(f"xapi://root@127.0.0.1:{_free_port()}", password=lambda: PASSWORD)
    with host, pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert "refused the connection" in str(caught.value)
    assert_no_password(caught.value)


def test_a_host_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts the connection; nobody ever reads or answers
        uri = f"xapi://root@127.0.0.1:{silent.getsockname()[1]}"
        with XapiHost.from_uri(uri, password=lambda: PASSWORD, call_timeout=0.3) as host:
            started = time.monotonic()
            with pytest.raises(HostUnreachable) as caught:
                host.list_vms()
    assert time.monotonic() - started < 3
    assert "did not answer in time" in str(caught.value)


def test_a_host_that_goes_away_mid_session(sim):
    with XapiStandIn(sim, password=PASSWORD) as server:
        host = connect(server)
        host.list_vms()
    with pytest.raises(HostUnreachable):
        host.power_state(RUNNING)
    host.close()  # cannot log out of a vanished host; not an error


def test_the_dom0_socket_even_with_an_underscore_in_its_path(sim):
    with tempfile.TemporaryDirectory(prefix="vgpu_") as folder:  # short: socket paths max out at 107 bytes
        path = str(Path(folder) / "xapi_sock")
        with XapiStandIn(sim, password="", socket_path=path) as server, XapiHost.from_uri(f"xapi+unix:{path}") as host:
            assert {vm.uuid for vm in host.list_vms()} == {RUNNING, HALTED}
        assert server.logouts == 1


def test_no_dom0_socket_is_a_plain_sentence(tmp_path):
    with XapiHost.from_uri(f"xapi+unix:{tmp_path}/absent") as host, pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert "no xapi socket at" in str(caught.value)


# --- TLS --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_server(sim, certificate):
    with XapiStandIn(sim, password=PASSWORD, tls=certificate) as running:
        yield running


def _tls_host(server, query=""):
    return XapiHost.from_uri(f"xapis://root@127.0.0.1:{server.port}{query}", password=lambda: PASSWORD)


def test_an_unknown_certificate_is_refused_by_default(tls_server):
    with _tls_host(tls_server) as host, pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert "certificate" in str(caught.value) and "cafile" in str(caught.value)


@pytest.mark.parametrize("option", ["cafile", "no_verify"])
def test_a_trusted_or_unchecked_certificate_connects(tls_server, certificate, option):
    query = f"?cafile={certificate[0]}" if option == "cafile" else "?no_verify=1"
    with _tls_host(tls_server, query) as host:
        assert {vm.uuid for vm in host.list_vms()} == {RUNNING, HALTED}


def test_https_to_a_plain_http_port_is_a_tls_sentence(server):
    with _tls_host(server) as host, pytest.raises(HostUnreachable) as caught:
        host.list_vms()
    assert "TLS" in str(caught.value)


def test_an_unusable_cafile_is_a_config_error(tmp_path):
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("hello")
    for cafile in (tmp_path / "missing.pem", not_a_certificate):
        with XapiHost.from_uri(f"xapis://root@127.0.0.1:1?cafile={cafile}", password=lambda: PASSWORD) as host:
            with pytest.raises(ConfigError) as caught:
                host.list_vms()
        assert str(cafile) in str(caught.value)


class _OddXapi:
    """An XML-RPC server that logs in and then answers VM.get_all_records with ``answer``: a host (or a
    proxy in front of it) that speaks XML-RPC but not quite XAPI."""

    def __init__(self, answer):
        from xmlrpc.server import SimpleXMLRPCServer
        import threading

        self.server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
        self.server.register_instance(self)
        self.answer = answer
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _dispatch(self, method, params):
        if method.startswith("session.login"):
            return {"Status": "Success", "Value": "OpaqueRef:session"}
        if method == "session.logout":
            return {"Status": "Success", "Value": ""}
        return self.answer

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("answer", [
    {"Status": "Failure", "ErrorDescription": []},  # a failure without its code
    {"Value": {}},  # no Status at all
    {"Status": "Success", "Value": {"OpaqueRef:vm": {"name_label": "no uuid", "is_a_template": False,
                                                      "is_control_domain": False, "is_a_snapshot": False,
                                                      "power_state": "Running"}}},  # a VM record without its uuid
], ids=["failure-without-code", "no-status", "record-without-uuid"])
def test_an_answer_that_is_not_xapis_is_a_host_error_not_an_internal_one(answer):
    odd = _OddXapi(answer)
    try:
        host = XapiHost.from_uri(f"xapi://root@127.0.0.1:{odd.port}", password=lambda: PASSWORD)
        with pytest.raises(HypervisorError) as caught:
            host.list_vms()
        assert str(caught.value).startswith("the host's answer could not be understood"), str(caught.value)
        assert caught.value.code == codes.MALFORMED_ANSWER
        host.close()
    finally:
        odd.close()

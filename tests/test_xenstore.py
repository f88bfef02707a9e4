"""Reading what running domains booted with from dom0's xenstore (vgpu/hypervisor/xenstore.py), and the xe
and XenAPI backends when xenstore cannot say."""

from __future__ import annotations

import runpy

import pytest

from vgpu.hypervisor import xenstore
from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xapi import XapiHost
from vgpu.hypervisor.xe import XeHost
from vgpu.models import PowerState

from .hostkit_xe import STANDIN_XE, STANDIN_XENSTORE_LS, standin_env
from .standins.xapi_server import XapiStandIn

WEB = "6f1d2e3c-0000-4000-8000-000000000001"
DB = "6f1d2e3c-0000-4000-8000-000000000002"
ARGS = "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7"

# As xenstore-ls -f prints it on a XCP-ng dom0 (trimmed): dom0, a guest with its platform map, and a domain
# still being built (no platform node yet).
CAPTURE = f"""/local/domain/0 = ""
/local/domain/0/vm = "/vm/00000000-0000-4000-8000-00000000d0d0"
/local/domain/0/name = "Domain-0"
/local/domain/0/backend/vbd/5/768/params = "/dev/sm/backend/x/y"
/local/domain/5 = ""
/local/domain/5/vm = "/vm/{WEB.upper()}"
/local/domain/5/name = "web-1"
/local/domain/5/platform = ""
/local/domain/5/platform/acpi = "1"
/local/domain/5/platform/device-model-args = "{ARGS} -name \\"a b\\\\c\\""
/local/domain/5/platform/timeoffset = "0"
/local/domain/5/device/vif/0/state = "4"
/local/domain/9 = ""
/local/domain/9/vm = "/vm/{DB}"
/local/domain/9/name = "db"
"""


@pytest.mark.parametrize(("shown", "stored"), [
    ("plain text", "plain text"),
    ("tab\\there\\nnew\\rline", "tab\there\nnew\rline"),
    ("back\\\\slash", "back\\slash"),
    ("\\001\\007", "\x01\x07"),
    ("\\x1b[0m", "\x1b[0m"),
    ("caf\\xc3\\xa9", "café"),
    ('a "quote" stays', 'a "quote" stays'),
    ("\\q", "q"),
    ("\\xzz", "xzz"),
    ("ends\\", "ends"),
])
def test_unsanitise_undoes_what_xenstore_ls_escapes(shown, stored):
    assert xenstore.unsanitise(shown) == stored


def test_the_stand_ins_sanitise_and_unsanitise_agree():
    sanitise = runpy.run_path(str(STANDIN_XENSTORE_LS))["sanitise"]
    for value in ("", ARGS, 'q"uote \\ back', "\t\n\r\x00\x07\x08\x7f", "é ü 日本", "x;y,z=1&<>"):
        assert xenstore.unsanitise(sanitise(value)) == value


def test_a_listing_gives_each_domain_its_vm_and_platform():
    domains = xenstore.parse_ls(CAPTURE)
    assert set(domains) == {0, 5, 9}
    assert domains[5].vm_uuid == WEB and domains[5].platform["device-model-args"] == f'{ARGS} -name "a b\\c"'
    assert domains[9].platform is None  # still being built: nothing to say yet
    assert xenstore.booted_args(domains, "device-model-args") == {WEB: f'{ARGS} -name "a b\\c"'}
    assert xenstore.booted_args(domains, "device_model_args")[WEB] == ""  # booted without that key


def test_unreadable_xenstore_is_cannot_tell(tmp_path):
    assert xenstore.Xenstore(str(tmp_path / "no-such-tool")).domains() is None
    assert xenstore.Xenstore("false").booted_args("device-model-args") is None


@pytest.fixture
def sim(tmp_path):
    host = SimHost(tmp_path / "host.json")
    host.add_vm(WEB, "web-1", PowerState.RUNNING, ARGS)
    host.add_vm(DB, "db", PowerState.HALTED, ARGS)
    return host


@pytest.mark.parametrize("xenstore_ls", ["true", "/nonexistent/xenstore-ls"])
def test_xe_says_unknown_when_xenstore_has_no_such_domain(sim, xenstore_ls):
    """A VM running on another host of the pool has no domain in this dom0's xenstore; a dom0 whose
    xenstore cannot be read cannot tell either. Neither is an error, and neither is a guess."""
    host = XeHost(str(STANDIN_XE), env=standin_env(sim), xenstore_ls=xenstore_ls)
    assert {vm.uuid: vm.booted_args for vm in host.list_vms()} == {WEB: None, DB: None}
    assert host.booted_device_model_args(WEB) is None


def test_a_domid_that_names_another_vms_domain_is_not_trusted(sim, tmp_path):
    """xe's dom-id for a VM on another pool member may name a local domain of some other VM."""
    other = "6f1d2e3c-0000-4000-8000-000000000003"
    sim.add_vm(other, "other", PowerState.RUNNING, "-other")
    fake = tmp_path / "xenstore-ls"
    fake.write_text(f'#!/bin/sh\necho \'/local/domain/1/vm = "/vm/{other}"\'\n'
                    'echo \'/local/domain/1/platform = ""\'\necho \'/local/domain/1/platform/device-model-args = "-other"\'\n')
    fake.chmod(0o755)
    host = XeHost(str(STANDIN_XE), env=standin_env(sim), xenstore_ls=str(fake))
    assert sim.domid(WEB) == 1  # the fake's domain 1 belongs to another VM
    assert host.booted_device_model_args(WEB) is None


def test_remote_xenapi_cannot_tell_what_a_vm_booted_with(sim):
    with XapiStandIn(sim, password="pw") as server:
        host = XapiHost.from_uri(f"xapi://root@127.0.0.1:{server.port}", password=lambda: "pw")
        try:
            assert {vm.uuid: vm.booted_args for vm in host.list_vms()} == {WEB: None, DB: None}
            assert host.booted_device_model_args(WEB) is None
            assert host.current_operations(WEB) == ()
        finally:
            host.close()


def test_a_listing_reads_xenstore_once_whatever_the_number_of_running_vms(sim):
    for number in range(3, 9):
        sim.add_vm(f"6f1d2e3c-0000-4000-8000-00000000000{number}", f"vm-{number}", PowerState.RUNNING, ARGS)
    host = XeHost(str(STANDIN_XE), env=standin_env(sim), xenstore_ls=str(STANDIN_XENSTORE_LS))
    reads = []
    real = host.xenstore.domains
    host.xenstore.domains = lambda domid=None: reads.append(domid) or real(domid)
    listed = host.list_vms()
    assert reads == [None]  # one xenstore-ls of /local/domain for all seven running VMs
    assert sorted(vm.booted_args for vm in listed if vm.power_state is PowerState.RUNNING) == [ARGS] * 7
    sim.hard_shutdown(WEB)
    for number in range(3, 9):
        sim.hard_shutdown(f"6f1d2e3c-0000-4000-8000-00000000000{number}")
    reads.clear()
    host.list_vms()
    assert reads == []  # nothing runs: nothing to ask


# A leftover domain of WEB (not yet torn down) beside the one its new start built: xenstore alone cannot say
# which is live, in whichever order it lists them.
LEFTOVER = f"""/local/domain/{{old}}/vm = "/vm/{WEB}"
/local/domain/{{old}}/platform = ""
/local/domain/{{old}}/platform/acpi = "1"
/local/domain/{{new}}/vm = "/vm/{WEB}"
/local/domain/{{new}}/platform = ""
/local/domain/{{new}}/platform/device-model-args = "{ARGS}"
"""


@pytest.mark.parametrize(("old", "new"), [(31, 32), (32, 31), (999, 4), (4, 999)])
def test_two_domains_of_one_vm_are_unknown_unless_the_hosts_domid_says_which(old, new):
    domains = xenstore.parse_ls(LEFTOVER.format(old=old, new=new))
    assert xenstore.booted_args(domains, "device-model-args") == {}  # never one picked by set order
    assert xenstore.booted_args(domains, "device-model-args", {WEB: new}) == {WEB: ARGS}
    assert xenstore.booted_args(domains, "device-model-args", {WEB: old}) == {WEB: ""}
    assert xenstore.booted_args(domains, "device-model-args", {WEB: 77}) == {}  # its domain is on another host


def test_a_domain_still_being_built_beside_a_leftover_one_is_not_read_as_the_leftover():
    domains = xenstore.parse_ls(f'/local/domain/2/vm = "/vm/{WEB}"\n/local/domain/2/platform/acpi = "1"\n'
                                f'/local/domain/3/vm = "/vm/{WEB}"\n')  # domain 3: no platform node yet
    assert xenstore.booted_args(domains, "device-model-args") == {}
    assert xenstore.booted_args(domains, "device-model-args", {WEB: 3}) == {}

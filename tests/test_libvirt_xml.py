"""The libvirt backend's pure parts: the argv <-> string form, <qemu:arg> editing, its sentences, and what
it can say is under way on a domain.

These need no libvirtd (nor libvirt-python) and run everywhere; the backend against a real libvirtd is in
test_hypervisor_protocol.py (the "libvirt" host) and test_libvirt_integration.py.
"""

from __future__ import annotations

import importlib
import types
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgpu import devargs
from vgpu.errors import HostUnreachable
from vgpu.hypervisor import libvirt_xml as lx
from vgpu.models import Priority, VMConfig

DOMAIN = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' xmlns:acme='urn:acme'>
  <name>web-1</name>
  <uuid>6f1d2e3c-0000-4000-8000-000000000001</uuid>
  <metadata><acme:owner team='gpu'/></metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <qemu:commandline>
    <qemu:arg value='-vnc'/>
    <qemu:arg value='127.0.0.1:1'/>
    <qemu:env name='QEMU_AUDIO_DRV' value='none'/>
  </qemu:commandline>
</domain>"""
BARE = "<domain type='qemu'><name>db</name><os><type arch='x86_64'>hvm</type></os></domain>"
CONFIG = VMConfig("B", Priority.HIGH, 7)

# Arguments as QEMU could receive them: any text without NUL (which no argv can hold) nor the characters
# XML 1.0 cannot carry in an attribute.
_XML_SAFE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff", min_codepoint=1).filter(
    lambda ch: ch in "\t\n\r" or ord(ch) >= 0x20
)
ARGV = st.lists(st.text(_XML_SAFE, max_size=12), max_size=6)


@given(ARGV)
def test_split_reverses_join_for_every_argument_list(argv):
    assert lx.split_args(lx.join_args(argv)) == argv


@given(ARGV)
def test_joined_form_is_canonical(argv):
    joined = lx.join_args(argv)
    assert lx.join_args(lx.split_args(joined)) == joined


def test_segment_reads_exactly_as_devargs_renders_it():
    argv = ["-vnc", "127.0.0.1:1", *devargs.segment_args(CONFIG)]
    joined = lx.join_args(argv)
    assert joined == "-vnc 127.0.0.1:1 " + devargs.render(CONFIG)
    assert devargs.parse(joined).config == CONFIG


@given(ARGV)
def test_merge_on_the_string_keeps_every_other_argument(argv):
    merged = devargs.merge(lx.join_args(argv), CONFIG)
    assert lx.split_args(merged) == devargs.merge_list(argv, CONFIG)
    assert lx.split_args(devargs.merge(merged, None)) == argv


@given(st.lists(st.text(_XML_SAFE.filter(lambda ch: ch not in "\t\n\r"), max_size=12), max_size=6))
def test_every_storable_argument_survives_the_xml_exactly(argv):
    assert lx.qemu_args(lx.with_qemu_args(DOMAIN, argv)) == argv
    assert lx.qemu_args(lx.with_qemu_args(BARE, argv)) == argv


def test_only_arguments_that_need_it_are_quoted():
    assert lx.join_args(["-name", "a b", "", "it's", "x;y,z=1"]) == "-name 'a b' '' 'it'\"'\"'s' x;y,z=1"


def test_tabs_and_line_breaks_are_found_as_unstorable():
    assert lx.unstorable(["-a", "b\tc", "d\ne", "f\rg", "h i"]) == ["b\tc", "d\ne", "f\rg"]


def test_unbalanced_quote_is_a_value_error():
    with pytest.raises(ValueError):
        lx.split_args("-name 'oops")


def test_qemu_args_in_order_and_none_without_a_block():
    assert lx.qemu_args(DOMAIN) == ["-vnc", "127.0.0.1:1"]
    assert lx.qemu_args(BARE) == []


def test_replacing_args_keeps_env_metadata_and_prefixes():
    edited = lx.with_qemu_args(DOMAIN, ["-vnc", "127.0.0.1:1", *devargs.segment_args(CONFIG)])
    assert lx.qemu_args(edited) == ["-vnc", "127.0.0.1:1", *devargs.segment_args(CONFIG)]
    assert "<qemu:env name=\"QEMU_AUDIO_DRV\" value=\"none\"/>" in edited
    assert "<acme:owner team=\"gpu\"/>" in edited
    assert ET.fromstring(edited).findtext("uuid") == "6f1d2e3c-0000-4000-8000-000000000001"


def test_adding_args_to_a_domain_without_a_block_declares_the_namespace():
    edited = lx.with_qemu_args(BARE, ["-msg", "timestamp=on"])
    assert 'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"' in edited
    assert lx.qemu_args(edited) == ["-msg", "timestamp=on"]


def test_removing_every_arg_drops_an_empty_block_only():
    assert "commandline" not in lx.with_qemu_args(BARE, [])
    no_args = lx.with_qemu_args(DOMAIN, [])
    assert lx.qemu_args(no_args) == []
    assert "QEMU_AUDIO_DRV" in no_args  # the block stays: it still carries an env entry
    only_args = DOMAIN.replace("<qemu:env name='QEMU_AUDIO_DRV' value='none'/>", "")
    assert "commandline" not in lx.with_qemu_args(only_args, [])


def test_clean_shutdown_needs_acpi_or_a_guest_agent_on_x86():
    assert lx.can_shut_down_cleanly(DOMAIN)
    assert not lx.can_shut_down_cleanly(BARE)
    agent = "<devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>"
    assert lx.can_shut_down_cleanly(BARE.replace("</domain>", agent + "</domain>"))
    assert lx.can_shut_down_cleanly(BARE.replace("x86_64", "aarch64"))


def test_missing_libvirt_python_is_a_sentence_at_the_first_call(monkeypatch):
    module = importlib.import_module("vgpu.hypervisor.libvirt")
    monkeypatch.setattr(module, "libvirt", None)
    host = module.LibvirtHost("qemu:///system")  # opening connects nothing: a DB-only command still works
    for call in (host.list_vms, lambda: host.power_state("6f1d2e3c-0000-4000-8000-000000000001")):
        with pytest.raises(HostUnreachable) as caught:
            call()
        assert str(caught.value) == "libvirt-python is not installed; pip install 'vgpu-admin[libvirt]'"
    host.close()


def test_open_host_routes_libvirt_uris_to_the_libvirt_backend(monkeypatch):
    from vgpu.hypervisor import open_host

    module = importlib.import_module("vgpu.hypervisor.libvirt")
    monkeypatch.setattr(module, "libvirt", None)
    host = open_host("qemu:///system")
    assert isinstance(host, module.LibvirtHost)
    with pytest.raises(HostUnreachable, match="libvirt-python is not installed"):
        host.list_vms()


def test_a_live_definition_has_the_running_domains_id():
    assert lx.domain_id(DOMAIN.replace("<domain type='qemu'", "<domain type='qemu' id='7'", 1)) == 7
    assert lx.domain_id(DOMAIN) is None  # the inactive definition: no domain runs it


# libvirt's own values for the states and control states below (libvirt-include.h), so these tests need
# no libvirt-python.
RUNNING, PAUSED, SHUTDOWN, SHUTOFF = 1, 3, 4, 5
CONTROL_OK, CONTROL_JOB, CONTROL_OCCUPIED = 0, 1, 2
SHUTOFF_REASONS = {"UNKNOWN": 0, "SHUTDOWN": 1, "DESTROYED": 2, "CRASHED": 3, "MIGRATED": 4, "SAVED": 5, "FAILED": 6,
                   "FROM_SNAPSHOT": 7, "DAEMON": 8}  # virDomainShutoffReason


class _Domain:
    """A libvirt domain in one state (virDomainState) and one control state (virDomainControlState)."""

    def __init__(self, state: int, control: int) -> None:
        self._state, self._control = state, control

    def state(self) -> list[int]:
        return [self._state, 0]

    def controlInfo(self) -> list[int]:
        return [self._control, 0, 0]


def _host_with(monkeypatch, domain: _Domain):
    module = importlib.import_module("vgpu.hypervisor.libvirt")
    constants = types.SimpleNamespace(
        VIR_DOMAIN_RUNNING=RUNNING, VIR_DOMAIN_PAUSED=PAUSED, VIR_DOMAIN_SHUTDOWN=SHUTDOWN, VIR_DOMAIN_SHUTOFF=SHUTOFF,
        VIR_DOMAIN_CONTROL_OK=CONTROL_OK, VIR_DOMAIN_CONTROL_JOB=CONTROL_JOB,
        VIR_DOMAIN_CONTROL_OCCUPIED=CONTROL_OCCUPIED, VIR_DOMAIN_XML_INACTIVE=2, VIR_DOMAIN_BLOCKED=2, VIR_DOMAIN_PMSUSPENDED=7,
        **{f"VIR_DOMAIN_SHUTOFF_{reason}": value for reason, value in SHUTOFF_REASONS.items()},
        libvirtError=type("libvirtError", (Exception,), {}))
    monkeypatch.setattr(module, "libvirt", constants)
    host = module.LibvirtHost("qemu:///system")
    monkeypatch.setattr(host, "_domain", lambda vm_uuid: domain)
    return host


@pytest.mark.parametrize("state, control, seen", [
    (SHUTOFF, CONTROL_OK, ()),  # nothing runs it: nothing is under way
    (SHUTDOWN, CONTROL_OK, ("shutdown",)),  # the guest is powering off
    (RUNNING, CONTROL_JOB, ("job",)),
    (RUNNING, CONTROL_OCCUPIED, ("monitor command",)),
    (SHUTDOWN, CONTROL_JOB, ("shutdown", "job")),
])
def test_what_libvirt_shows_under_way_is_named(monkeypatch, state, control, seen):
    assert _host_with(monkeypatch, _Domain(state, control)).current_operations("6f1d2e3c-0000-4000-8000-000000000001") == seen


@pytest.mark.parametrize("state", [RUNNING, PAUSED])
def test_an_active_domain_with_nothing_shown_may_still_have_a_shutdown_coming(monkeypatch, state):
    """libvirt keeps no record of a shutdown request (the ACPI power button) while the guest works on it: the
    domain stays "running" with no job until the guest powers off. So nothing shown is "cannot tell", never
    "nothing is under way", or recover would take a VM that is about to halt for one that kept running."""
    host = _host_with(monkeypatch, _Domain(state, CONTROL_OK))
    assert host.current_operations("6f1d2e3c-0000-4000-8000-000000000001") is None


# --- a shutdown request, and what the domain became meanwhile ---------------------------------------------

UUID = "6f1d2e3c-0000-4000-8000-000000000001"


class _Guest(_Domain):
    """A running persistent domain that ignores the power button; ``undefine_after`` presses undefine it (it
    runs on as a transient domain, which libvirt deletes when it halts)."""

    def __init__(self, undefine_after: int | None = None, saved: bool = False) -> None:
        super().__init__(SHUTOFF if saved else RUNNING, CONTROL_OK)
        self.presses, self.undefine_after, self.saved = 0, undefine_after, saved

    def XMLDesc(self, flags: int) -> str:
        return DOMAIN

    def isPersistent(self) -> bool:
        return self.undefine_after is None or self.presses < self.undefine_after

    def hasManagedSaveImage(self, flags: int) -> bool:
        return self.saved

    def shutdown(self) -> None:
        self.presses += 1

    def UUIDString(self) -> str:
        return UUID

    def name(self) -> str:
        return "web-1"

    def managedSaveGetXMLDesc(self, flags: int) -> str:
        return DOMAIN


def test_a_domain_undefined_while_its_shutdown_is_awaited_is_not_asked_again(monkeypatch):
    """Each request repeated would be one more press of the power button of a domain that libvirt deletes
    when it halts: once it is transient the backend stops, and says the request was already made."""
    from vgpu.errors import HypervisorError
    from vgpu.hypervisor import codes

    module = importlib.import_module("vgpu.hypervisor.libvirt")
    monkeypatch.setattr(module, "RESEND_EVERY", 0.01)
    monkeypatch.setattr(module, "POLL_EVERY", 0.01)
    guest = _Guest(undefine_after=1)
    host = _host_with(monkeypatch, guest)
    with pytest.raises(HypervisorError) as caught:
        host.clean_shutdown(UUID, 2.0)
    assert guest.presses == 1
    assert caught.value.code == codes.VM_UNDEFINED_DURING_SHUTDOWN
    assert "was undefined after its clean shutdown was requested" in str(caught.value)


def test_a_domain_undefined_in_the_last_moments_is_reported_at_the_deadline(monkeypatch):
    # Undefined after the last press: the deadline passes with no press left to check before, and the forced
    # stop that follows a False would meet a transient domain as if nothing had been asked of it.
    from vgpu.errors import HypervisorError
    from vgpu.hypervisor import codes

    module = importlib.import_module("vgpu.hypervisor.libvirt")
    monkeypatch.setattr(module, "RESEND_EVERY", 3600)
    monkeypatch.setattr(module, "POLL_EVERY", 0.01)
    guest = _Guest(undefine_after=1)
    with pytest.raises(HypervisorError) as caught:
        _host_with(monkeypatch, guest).clean_shutdown(UUID, 0.1)
    assert guest.presses == 1 and caught.value.code == codes.VM_UNDEFINED_DURING_SHUTDOWN


def test_a_managed_saved_domain_is_refused_with_what_frees_it(monkeypatch, store):
    """``virsh resume`` cannot resume a managed save (it is for a paused domain): the refusal of a change,
    and of a start, says what does, as install-libvirt.md does."""
    from vgpu import lifecycle, vms
    from vgpu.errors import HypervisorError
    from vgpu.models import Registration

    vms.db_register_many(store, [Registration(UUID, "web-1", "A", Priority.LOW, 5)])
    host = _host_with(monkeypatch, _Guest(saved=True))
    for refuse in (lambda: lifecycle.plan_reconfigure(store, host, UUID, pool="B"), lambda: host.start(UUID)):
        with pytest.raises(HypervisorError) as caught:
            refuse()
        message = str(caught.value)
        assert "is suspended" in message and "resume it" not in message, message
        assert "start it and shut it down" in message and "virsh managedsave-remove" in message, message


class _GoesOff(_Guest):
    """A running domain that is shut off, for ``reason`` (virDomainShutoffReason), once the power button is pressed."""

    def __init__(self, reason: int) -> None:
        super().__init__()
        self.reason = reason

    def state(self) -> list[int]:
        return [SHUTOFF, self.reason] if self.presses else [RUNNING, 1]


def test_a_domain_shut_off_by_its_guest_is_a_clean_shutdown(monkeypatch):
    assert _host_with(monkeypatch, _GoesOff(SHUTOFF_REASONS["SHUTDOWN"])).clean_shutdown(UUID, 2.0) is True


@pytest.mark.parametrize("reason, said", [("DESTROYED", "by being destroyed"), ("CRASHED", "by crashing"),
                                          ("MIGRATED", "migrated"), ("SAVED", "saved"), ("FAILED", "failure"),
                                          ("FROM_SNAPSHOT", "snapshot"), ("DAEMON", "libvirtd"),
                                          ("UNKNOWN", "libvirt does not know")])
def test_a_domain_shut_off_otherwise_while_its_shutdown_is_awaited_is_not_a_clean_shutdown(monkeypatch, reason, said):
    """libvirt says why a domain is off: only SHUTDOWN is the guest powering off. A domain destroyed (virsh
    destroy), crashed (its QEMU killed) or otherwise shut off meanwhile is halted, not shut down cleanly: an
    error, which power.stop_vm reports as a clean shutdown that failed while the VM halted anyway."""
    from vgpu.errors import HypervisorError
    from vgpu.hypervisor import codes

    monkeypatch.setattr(importlib.import_module("vgpu.hypervisor.libvirt"), "POLL_EVERY", 0.01)
    with pytest.raises(HypervisorError) as caught:
        _host_with(monkeypatch, _GoesOff(SHUTOFF_REASONS[reason])).clean_shutdown(UUID, 2.0)
    assert caught.value.code == codes.VM_SHUT_OFF_OTHERWISE
    assert str(caught.value).startswith(f"VM {UUID} was shut off ") and said in str(caught.value), caught.value
    assert str(caught.value).endswith(", not by its clean shutdown")

"""A domain whose vgpu blob is one of libvirt's own fw_cfg entries (``<sysinfo type='fwcfg'>``, libvirt 6.5+).

libvirt hands each such entry to QEMU as ``-fw_cfg name=...,string=...`` (or ``file=...``), so the backend
must count it as QEMU does: as a blob of the VM's arguments. One entry alone is the VM's configuration; an
entry and a ``<qemu:arg>`` blob of the same name is two blobs (QEMU refuses to start); an entry read from a
file cannot be read here. A change writes the entry's value in place. No libvirtd needed: the domain is a
stand-in holding its XML.
"""

from __future__ import annotations

import importlib
import types
import xml.etree.ElementTree as ET

import pytest

from vgpu import devargs, scan
from vgpu.errors import InvalidValue
from vgpu.hypervisor import libvirt_xml as lx
from vgpu.models import PowerState, Priority, VMConfig

UUID = "6f1d2e3c-0000-4000-8000-000000000001"
OLD = VMConfig("A", Priority.MEDIUM, 3)
NEW = VMConfig("B", Priority.HIGH, 9)
RUNNING, SHUTOFF = 1, 5  # libvirt's virDomainState values
INACTIVE, SECURE = 2, 1  # libvirt's virDomainXMLFlags values


def domain(entries: str = "", args: tuple[str, ...] = ("-msg", "timestamp=on"), live: bool = False) -> str:
    """A domain XML: an SMBIOS sysinfo (never ours to touch), a fwcfg sysinfo with ``entries``, and ``args``."""
    fwcfg = f"<sysinfo type='fwcfg'>{entries}</sysinfo>" if entries else ""
    active = " id='4'" if live else ""
    xml = (f"<domain type='qemu'{active}><name>web-1</name><uuid>{UUID}</uuid>"
           "<sysinfo type='smbios'><system><entry name='serial'>S1</entry></system></sysinfo>"
           f"{fwcfg}<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>")
    return lx.with_qemu_args(xml, list(args))


def entry(value: str, name: str = devargs.FW_CFG_NAME) -> str:
    return f"<entry name='{name}'>{value}</entry>"


OTHER_ENTRY = entry("hello, world", "opt/com.example/greeting")


class _Domain:
    """A libvirt domain holding an inactive definition (and a live one while it runs)."""

    def __init__(self, inactive: str, live: str | None = None) -> None:
        self.inactive, self.live = inactive, live

    def XMLDesc(self, flags: int) -> str:
        return self.live if self.live is not None and not flags & INACTIVE else self.inactive

    def state(self) -> list[int]:
        return [RUNNING if self.live is not None else SHUTOFF, 0]

    def hasManagedSaveImage(self, flags: int) -> bool:
        return False

    def isPersistent(self) -> bool:
        return True

    def UUIDString(self) -> str:
        return UUID

    def name(self) -> str:
        return "web-1"


class _Connection:
    def __init__(self, dom: _Domain) -> None:
        self.dom, self.defined = dom, []

    def defineXML(self, xml: str) -> _Domain:
        self.defined.append(xml)
        self.dom.inactive = xml
        return self.dom


@pytest.fixture
def host_of(monkeypatch):
    """``host_of(domain)``: a LibvirtHost whose one domain is ``domain``; ``host.conn.defined`` lists the
    definitions it wrote."""
    module = importlib.import_module("vgpu.hypervisor.libvirt")
    constants = types.SimpleNamespace(
        VIR_DOMAIN_RUNNING=RUNNING, VIR_DOMAIN_BLOCKED=2, VIR_DOMAIN_PAUSED=3, VIR_DOMAIN_SHUTDOWN=4,
        VIR_DOMAIN_SHUTOFF=SHUTOFF, VIR_DOMAIN_PMSUSPENDED=7, VIR_DOMAIN_XML_INACTIVE=INACTIVE,
        VIR_DOMAIN_XML_SECURE=SECURE, libvirtError=type("libvirtError", (Exception,), {}))
    monkeypatch.setattr(module, "libvirt", constants)

    def make(dom: _Domain):
        host = module.LibvirtHost("qemu:///system")
        host.conn = _Connection(dom)
        monkeypatch.setattr(host, "_domain", lambda vm_uuid: dom)
        monkeypatch.setattr(host, "_connection", lambda: host.conn)
        return host

    return make


def _parsed(args: str) -> devargs.SegmentState:
    return devargs.parse(args, quoted=True)


def _fwcfg_entries(xml: str) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.get("name"), e.text, e.get("file")) for e in ET.fromstring(xml).findall("sysinfo[@type='fwcfg']/entry")]


# --- reading ---------------------------------------------------------------------------------------------


def test_an_entry_alone_is_the_vms_stored_configuration(host_of):
    host = host_of(_Domain(domain(OTHER_ENTRY + entry(devargs.payload(OLD)))))
    args = host.get_device_model_args(UUID)
    assert args == f"{devargs.render(OLD)} -msg timestamp=on"  # as QEMU gets it: libvirt's own -fw_cfg first
    assert _parsed(args).config == OLD
    described = host.describe_vm(UUID)
    assert (described.power_state, described.device_model_args, described.booted_args) == (PowerState.HALTED, args, None)
    assert scan.vm_state(OLD, described, _parsed(args), None) == "halted"


def test_a_running_domain_booted_with_its_live_entry(host_of):
    live = domain(entry(devargs.payload(OLD)), live=True)
    host = host_of(_Domain(domain(entry(devargs.payload(NEW))), live))
    assert _parsed(host.booted_device_model_args(UUID)).config == OLD
    described = host.describe_vm(UUID)
    assert _parsed(described.booted_args).config == OLD
    state = scan.vm_state(NEW, described, _parsed(described.device_model_args), _parsed(described.booted_args))
    assert state == "pending"  # stored right, booted with the old entry: never "configured"


def test_an_entry_and_an_arg_of_the_same_name_are_a_conflict_not_configured(host_of):
    xml = domain(entry(devargs.payload(OLD)), args=("-msg", "timestamp=on", *devargs.segment_args(OLD)))
    described = host_of(_Domain(xml)).describe_vm(UUID)
    segment = _parsed(described.device_model_args)
    assert segment.present and segment.config is None
    assert segment.reason == "it holds 2 vgpu blobs, and QEMU starts with one only"
    assert scan.vm_state(OLD, described, segment, None) == "drift"  # "⚠ Args differ from DB", not Configured


def test_an_entry_read_from_a_file_is_unreadable_never_configured(host_of):
    xml = domain(f"<entry name='{devargs.FW_CFG_NAME}' file='/etc/vgpu/web-1.cfg'/>")
    args = host_of(_Domain(xml)).get_device_model_args(UUID)
    segment = _parsed(args)
    assert args.startswith("-fw_cfg name=opt/vgpu/config,file=/etc/vgpu/web-1.cfg")
    assert segment.present and segment.config is None
    assert segment.reason == "it reads the blob from a file (file=) instead of string="
    assert scan.vm_state(OLD, host_of(_Domain(xml)).describe_vm(UUID), segment, None) == "drift"


def test_a_comma_in_an_entry_is_read_as_qemu_reads_it(host_of):
    host = host_of(_Domain(domain(entry("pool=A;priority=1;vm_id=3,x"))))
    segment = _parsed(host.get_device_model_args(UUID))
    # QEMU gets "string=pool=A;priority=1;vm_id=3,,x" from libvirt: the comma is part of the value
    assert segment.reason == "its vm_id '3,x' is not a whole number written without leading zeros"


# --- changing ----------------------------------------------------------------------------------------------


def test_a_change_writes_the_entry_in_place_and_adds_no_arg(host_of):
    host = host_of(_Domain(domain(OTHER_ENTRY + entry(devargs.payload(OLD)))))
    host.set_device_model_args(UUID, devargs.merge(host.get_device_model_args(UUID), NEW, quoted=True))
    [written] = host.conn.defined
    assert _fwcfg_entries(written) == [("opt/com.example/greeting", "hello, world", None),
                                       (devargs.FW_CFG_NAME, devargs.payload(NEW), None)]
    assert lx.qemu_args(written) == ["-msg", "timestamp=on"]  # no second blob: QEMU would refuse to start
    assert "<entry name=\"serial\">S1</entry>" in written  # the SMBIOS sysinfo is untouched
    assert _parsed(host.get_device_model_args(UUID)).config == NEW


def test_a_change_repairs_a_conflict_into_the_entry(host_of):
    xml = domain(entry(devargs.payload(OLD)), args=("-msg", "timestamp=on", *devargs.segment_args(OLD)))
    host = host_of(_Domain(xml))
    host.set_device_model_args(UUID, devargs.merge(host.get_device_model_args(UUID), NEW, quoted=True))
    [written] = host.conn.defined
    assert _fwcfg_entries(written) == [(devargs.FW_CFG_NAME, devargs.payload(NEW), None)]
    assert lx.qemu_args(written) == ["-msg", "timestamp=on"]


def test_a_change_replaces_a_file_entry_with_the_value(host_of):
    host = host_of(_Domain(domain(f"<entry name='{devargs.FW_CFG_NAME}' file='/etc/vgpu/web-1.cfg'/>")))
    host.set_device_model_args(UUID, devargs.merge(host.get_device_model_args(UUID), NEW, quoted=True))
    assert _fwcfg_entries(host.conn.defined[0]) == [(devargs.FW_CFG_NAME, devargs.payload(NEW), None)]


def test_removing_the_segment_removes_the_entry_and_keeps_the_others(host_of):
    host = host_of(_Domain(domain(OTHER_ENTRY + entry(devargs.payload(OLD)))))
    host.set_device_model_args(UUID, devargs.strip(host.get_device_model_args(UUID), quoted=True))
    assert _fwcfg_entries(host.conn.defined[0]) == [("opt/com.example/greeting", "hello, world", None)]
    alone = host_of(_Domain(domain(entry(devargs.payload(OLD)))))
    alone.set_device_model_args(UUID, devargs.strip(alone.get_device_model_args(UUID), quoted=True))
    assert "fwcfg" not in alone.conn.defined[0]  # no empty <sysinfo type='fwcfg'/> left behind


def test_writing_back_what_was_read_changes_nothing(host_of):
    for entries in (entry(devargs.payload(OLD)), entry("a,b;c\nd"), f"<entry name='{devargs.FW_CFG_NAME}' file='/x,y'/>"):
        host = host_of(_Domain(domain(OTHER_ENTRY + entries)))
        host.set_device_model_args(UUID, host.get_device_model_args(UUID))
        assert host.conn.defined == []


def test_a_blob_an_entry_cannot_hold_is_refused_naming_it(host_of):
    host = host_of(_Domain(domain(entry(devargs.payload(OLD)))))
    with pytest.raises(InvalidValue, match="sysinfo"):
        host.set_device_model_args(UUID, "-fw_cfg name=opt/vgpu/config,string=x,gen_id=1")
    assert host.conn.defined == []


def test_without_an_entry_the_blob_stays_among_the_args(host_of):
    host = host_of(_Domain(domain(OTHER_ENTRY)))
    host.set_device_model_args(UUID, devargs.merge(host.get_device_model_args(UUID), NEW, quoted=True))
    [written] = host.conn.defined
    assert lx.qemu_args(written) == ["-msg", "timestamp=on", *devargs.segment_args(NEW)]
    assert _fwcfg_entries(written) == [("opt/com.example/greeting", "hello, world", None)]

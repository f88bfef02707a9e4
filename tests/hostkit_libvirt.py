"""The libvirt backend under test: a real libvirtd (``qemu:///system``) running tiny real guests.

Domains are small and diskless: type ``qemu`` (TCG: a real guest fails under this machine's /dev/kvm),
128 MiB, no network interface (there is no default network here), the serial console appended to a file
so a test can read what the guest printed. By default they boot the tiny guest of :mod:`tests.guestkit`,
which obeys a clean shutdown; ``with_os=False`` gives a machine with nothing to boot, which never does.

Every domain a test defines is destroyed and undefined afterwards, whatever the test did. The tests only
ever remove domains that carry :data:`TEST_MARK` in their description, so a leftover of a killed run is
cleared and nobody else's domain is touched.

Where libvirt is not usable the tests skip with the reason; with ``VGPU_REQUIRE_LIBVIRT=1`` (set by
.ci/run) they fail instead, so CI cannot go green without having run them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ContextManager

import pytest

from vgpu.hypervisor import libvirt_xml

from . import guestkit
from .hostunder import HostUnderTest

URI = "qemu:///system"
REQUIRE_ENV = "VGPU_REQUIRE_LIBVIRT"
TEST_MARK = "vgpu-admin test domain"
MEMORY_MIB = 128


@functools.cache
def unavailable_reason() -> str | None:
    """Why the libvirt tests cannot run on this machine, or None when they can."""
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed (run .ci/libvirt-setup as root)"
    try:
        libvirt.open(URI).close()
    except libvirt.libvirtError as exc:
        return f"cannot connect to {URI}: {exc.get_error_message()} (run .ci/libvirt-setup as root)"
    return guestkit.missing_packages()


def require_libvirt() -> None:
    """Skip (or, where CI requires libvirt, fail) the calling test when libvirt is not usable."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but libvirt is not usable: {reason}", pytrace=False)
    pytest.skip(f"libvirt is not usable here: {reason}")


def domain_xml(vm_uuid: str, name: str, args: str, console: Path, guest: guestkit.Guest | None, acpi: bool = True) -> str:
    """A small diskless TCG domain; it boots ``guest`` or, with None, finds nothing to boot."""
    root = ET.Element("domain", type="qemu")
    for tag, text in (("name", name), ("uuid", vm_uuid), ("description", TEST_MARK), ("vcpu", "1")):
        ET.SubElement(root, tag).text = text
    ET.SubElement(root, "memory", unit="MiB").text = str(MEMORY_MIB)
    os_element = ET.SubElement(root, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    if guest is not None:
        ET.SubElement(os_element, "kernel").text = str(guest.kernel)
        ET.SubElement(os_element, "initrd").text = str(guest.initrd)
        ET.SubElement(os_element, "cmdline").text = "console=ttyS0 quiet"
    if acpi:
        ET.SubElement(ET.SubElement(root, "features"), "acpi")  # the power button libvirt's shutdown presses
    devices = ET.SubElement(root, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(console), append="on")  # keep every boot's output
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return libvirt_xml.with_qemu_args(ET.tostring(root, encoding="unicode"), libvirt_xml.split_args(args))


class Domains:
    """Defines test domains on the real host and removes every one of them again."""

    def __init__(self, console_dir: Path, guest: guestkit.Guest) -> None:
        import libvirt

        self._libvirt = libvirt
        self._conn = libvirt.open(URI)
        self._console_dir = console_dir
        self._guest = guest
        self.created: list[str] = []

    def console(self, vm_uuid: str) -> Path:
        return self._console_dir / f"{vm_uuid}.console"

    def add(self, vm_uuid: str, name: str, power: str, args: str, *, with_os: bool = True, acpi: bool = True) -> None:
        if power not in ("running", "halted"):
            raise ValueError(f"a test domain starts running or halted, not {power!r}")
        self._remove_leftover(vm_uuid, name)
        guest = self._guest if with_os else None
        dom = self._conn.defineXML(domain_xml(vm_uuid, name, args, self.console(vm_uuid), guest, acpi))
        self.created.append(vm_uuid)
        if power == "running":
            dom.create()

    def _remove_leftover(self, vm_uuid: str, name: str) -> None:
        """Clear a test domain that a killed run left behind under this UUID or name."""
        for lookup, key in ((self._conn.lookupByUUIDString, vm_uuid), (self._conn.lookupByName, name)):
            with contextlib.suppress(self._libvirt.libvirtError):
                dom = lookup(key)
                if TEST_MARK in dom.XMLDesc(0):
                    self._destroy_and_undefine(dom)

    def _destroy_and_undefine(self, dom: object) -> None:
        if dom.isActive():
            dom.destroy()
        dom.undefine()

    def __enter__(self) -> "Domains":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove_all()

    def remove_all(self) -> None:
        """Destroy and undefine every domain added here; try them all before reporting a failure."""
        failures = []
        for vm_uuid in self.created:
            try:
                self._destroy_and_undefine(self._conn.lookupByUUIDString(vm_uuid))
            except self._libvirt.libvirtError as exc:
                if exc.get_error_code() != self._libvirt.VIR_ERR_NO_DOMAIN:
                    failures.append(f"{vm_uuid}: {exc.get_error_message()}")
        self.created.clear()
        self._conn.close()
        if failures:
            raise RuntimeError("could not remove test domains: " + "; ".join(failures))


@contextlib.contextmanager
def libvirt_domains(console_dir: Path) -> Iterator[Domains]:
    require_libvirt()
    domains = Domains(console_dir, guestkit.build_guest())
    try:
        yield domains
    finally:
        domains.remove_all()


@contextlib.contextmanager
def _one_run_at_a_time() -> Iterator[None]:
    """The protocol suite uses fixed UUIDs and names on the one shared libvirtd: two pytest runs on the
    same machine would clear each other's domains, so they take turns."""
    with open(Path(tempfile.gettempdir()) / "vgpu-libvirt-protocol.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def libvirt_backend(tmp_path: Path) -> Iterator[HostUnderTest]:
    """The protocol suite's libvirt host: LibvirtHost on qemu:///system, VMs booting the tiny guest."""
    with _one_run_at_a_time(), libvirt_domains(tmp_path) as domains:
        from vgpu.hypervisor.libvirt import LibvirtHost

        host = LibvirtHost(URI)
        try:
            yield HostUnderTest("libvirt", host, domains.add, None)
        finally:
            host.close()


def register_libvirt(backends: dict[str, Callable[[Path], ContextManager[HostUnderTest]]]) -> None:
    """Add the libvirt backend where it is usable, and where CI requires it (so its absence fails there)."""
    if unavailable_reason() is None or os.environ.get(REQUIRE_ENV) == "1":
        backends["libvirt"] = libvirt_backend

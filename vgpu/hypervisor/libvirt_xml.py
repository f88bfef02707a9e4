"""The parts of a libvirt domain XML the libvirt backend reads and edits. Pure functions, no libvirt needed.

QEMU arguments that libvirt does not model live in the domain's

    <qemu:commandline xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
      <qemu:arg value="-fw_cfg"/>
      <qemu:arg value="name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7"/>
    </qemu:commandline>

The protocol passes device-model arguments as one string, so the argument list is joined with single
spaces and an argument is quoted (POSIX shell style, :mod:`shlex`) only when it holds whitespace, a quote
or a backslash, or is empty. vgpu's segment therefore reads exactly as :func:`vgpu.devargs.render` writes
it (a ``;`` is not special: nothing here goes through a shell), :func:`vgpu.devargs.merge` on that string
leaves every other entry alone, and ``split_args(join_args(argv)) == argv`` for every list.

libvirt writes tabs and line breaks inside attribute values raw, and every XML parser reads those back as
spaces, so an argument holding one cannot be read back as written: :func:`unstorable` finds them so the
backend can refuse them up front.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import NamedTuple, TypeGuard
from xml.dom import minidom

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
_PLAIN_ARG = re.compile(r"[^\s'\"\\]+")
_X86 = ("i686", "x86_64")


def join_args(argv: Sequence[str]) -> str:
    """The argument list as one string, quoting only the arguments that need it."""
    return " ".join(arg if _PLAIN_ARG.fullmatch(arg) else shlex.quote(arg) for arg in argv)


def split_args(text: str) -> list[str]:
    """The inverse of :func:`join_args`. Raises ValueError on an unbalanced quote."""
    return shlex.split(text or "", comments=False, posix=True)


def unstorable(argv: Sequence[str]) -> list[str]:
    """The arguments libvirt cannot give back exactly (they hold a tab or a line break)."""
    return [arg for arg in argv if any(char in arg for char in "\t\n\r")]


def qemu_args(domain_xml: str) -> list[str]:
    """The values of every ``<qemu:arg>`` of the domain, in order."""
    root = ET.fromstring(domain_xml)
    return [
        arg.get("value", "")
        for block in root.findall(f"{{{QEMU_NS}}}commandline")
        for arg in block.findall(f"{{{QEMU_NS}}}arg")
    ]


class FwCfgEntry(NamedTuple):
    """One ``<entry>`` of ``<sysinfo type='fwcfg'>``: its inline value, or the host file it names instead."""

    value: str | None
    file: str | None = None


def fw_cfg_entries(domain_xml: str, name: str) -> list[FwCfgEntry]:
    """The domain's own fw_cfg entries called ``name`` (libvirt 6.5+ hands each to QEMU as a ``-fw_cfg``)."""
    if "fwcfg" not in domain_xml:  # the common case, without parsing the XML again
        return []
    return [
        FwCfgEntry(None, node.get("file")) if node.get("file") is not None else FwCfgEntry("".join(node.itertext()))
        for node in ET.fromstring(domain_xml).findall("sysinfo[@type='fwcfg']/entry")
        if node.get("name") == name
    ]


def with_fw_cfg_entries(domain_xml: str, name: str, entries: Sequence[FwCfgEntry]) -> str:
    """The domain XML with its fw_cfg entries called ``name`` rewritten in place, in order, by ``entries``;
    those beyond ``entries`` removed, and a ``<sysinfo type='fwcfg'>`` left empty with them. It never adds
    an entry: ``entries`` may not outnumber the ones there (ValueError)."""
    doc = minidom.parseString(domain_xml)
    root = _root(doc)
    blocks = [node for node in root.childNodes if _is_element(node, "sysinfo") and node.getAttribute("type") == "fwcfg"]
    nodes = [(block, node) for block in blocks for node in block.childNodes
             if _is_element(node, "entry") and node.getAttribute("name") == name]
    if len(entries) > len(nodes):
        raise ValueError(f"{len(entries)} fw_cfg entries called {name!r} for {len(nodes)} in the domain")
    for (_, node), entry in zip(nodes, entries):
        for child in list(node.childNodes):
            node.removeChild(child)
        if entry.file is not None:
            node.setAttribute("file", entry.file)
        else:
            if node.hasAttribute("file"):
                node.removeAttribute("file")
            node.appendChild(doc.createTextNode(entry.value or ""))
    for block, node in nodes[len(entries):]:
        block.removeChild(node)
    for block in blocks:
        if not any(child.nodeType == child.ELEMENT_NODE for child in block.childNodes):
            root.removeChild(block)
    return root.toxml()


def domain_id(domain_xml: str) -> int | None:
    """The running domain's id (libvirt writes ``<domain id='N'>`` only in an active domain's live XML)."""
    value = ET.fromstring(domain_xml).get("id")
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def with_qemu_args(domain_xml: str, argv: Sequence[str]) -> str:
    """The domain XML with its ``<qemu:arg>`` entries replaced by ``argv``; everything else untouched.

    minidom rather than ElementTree because it keeps the document's own namespace prefixes and
    declarations, so metadata written by other tools comes back as it went in. ``<qemu:env>`` and the
    other children of ``<qemu:commandline>`` stay; a block left empty is removed.
    """
    doc = minidom.parseString(domain_xml)
    root = _root(doc)
    blocks = [node for node in root.childNodes if _is_qemu(node, "commandline")]
    old_args = [(block, node) for block in blocks for node in block.childNodes if _is_qemu(node, "arg")]
    if argv:
        if not blocks:
            blocks.append(root.appendChild(doc.createElementNS(QEMU_NS, f"{_qemu_prefix(root)}:commandline")))
        _insert_args(doc, blocks[0], old_args[0][1] if old_args else blocks[0].firstChild, argv)
    for block, node in old_args:
        block.removeChild(node)
    for block in blocks:
        if not any(child.nodeType == child.ELEMENT_NODE for child in block.childNodes):
            root.removeChild(block)
    return root.toxml()


def _root(doc: minidom.Document) -> minidom.Element:
    root = doc.documentElement
    assert root is not None, "a parsed document has its root element (parseString raises otherwise)"
    return root


# What an element's childNodes hold (minidom's stub names this union, privately).
_ElementChild = minidom.Element | minidom.ProcessingInstruction | minidom.Comment | minidom.Text | minidom.CDATASection


def _insert_args(doc: minidom.Document, block: minidom.Element, before: _ElementChild | None, argv: Sequence[str]) -> None:
    prefix = block.prefix or _qemu_prefix(_root(doc))
    for value in argv:
        arg = doc.createElementNS(QEMU_NS, f"{prefix}:arg")
        arg.setAttribute("value", value)
        block.insertBefore(arg, before)


def _is_element(node: minidom.Node, tag: str) -> TypeGuard[minidom.Element]:
    return node.nodeType == node.ELEMENT_NODE and node.namespaceURI is None and node.localName == tag


def _is_qemu(node: minidom.Node, local_name: str) -> TypeGuard[minidom.Element]:
    return node.nodeType == node.ELEMENT_NODE and node.namespaceURI == QEMU_NS and node.localName == local_name


def _qemu_prefix(root: minidom.Element) -> str:
    """The prefix the document already binds to the QEMU namespace, else ``qemu`` (libvirt's own)."""
    for name, value in root.attributes.items():
        if name.startswith("xmlns:") and value == QEMU_NS:
            return name[len("xmlns:"):]
    root.setAttribute("xmlns:qemu", QEMU_NS)
    return "qemu"


def can_shut_down_cleanly(domain_xml: str) -> bool:
    """Whether a clean shutdown request can reach the guest at all.

    libvirt sends it as an ACPI power-button press or through the QEMU guest agent. An x86 machine with
    ACPI switched off and no agent channel accepts the request and silently ignores it, which would make
    every clean stop wait out its whole deadline; other machine types have other power-button paths.
    """
    root = ET.fromstring(domain_xml)
    os_type = root.find("os/type")
    if os_type is None or os_type.get("arch") not in _X86:
        return True
    if root.find("features/acpi") is not None:
        return True
    return any(target.get("name") == GUEST_AGENT_CHANNEL for target in root.findall("devices/channel/target"))

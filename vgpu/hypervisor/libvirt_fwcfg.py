"""vgpu's blob kept as one of libvirt's own fw_cfg entries, seen as QEMU sees it. Pure functions.

libvirt 6.5+ lets a domain carry fw_cfg blobs natively::

    <sysinfo type='fwcfg'>
      <entry name='opt/vgpu/config'>pool=A;priority=1;vm_id=3</entry>
    </sysinfo>

and hands each entry to QEMU as ``-fw_cfg name=opt/vgpu/config,string=...`` (``file=...`` for an entry
that names a host file), ahead of the ``<qemu:commandline>`` arguments. So the backend's argument list is
those entries called ``opt/vgpu/config``, written as libvirt writes them, followed by the ``<qemu:arg>``
values: :mod:`vgpu.devargs` then reads it as QEMU would. An entry alone is the VM's configuration; an entry
and a ``<qemu:arg>`` blob together are two blobs, which QEMU refuses to start with; a ``file=`` entry is a
blob vgpu cannot read. Other entries (other names, the SMBIOS sysinfo) are not ours and never shown.

Writing the list back goes the other way: while the domain has entries called ``opt/vgpu/config``, the
list's first blobs go back into them, in place, and a blob removed from the list removes its entry; the
rest are ``<qemu:arg>`` values. vgpu never adds an entry: a domain without one keeps vgpu's blob among its
``<qemu:arg>`` values, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import devargs
from ..errors import InvalidValue
from . import libvirt_xml
from .libvirt_xml import FwCfgEntry

_NAME = devargs.FW_CFG_NAME
_ENTRY_FORMS = ({"name", "string"}, {"name", "file"})


def argv_of(domain_xml: str) -> list[str]:
    """The domain's arguments as QEMU receives them, as far as vgpu's blob goes: its fw_cfg entries called
    ``opt/vgpu/config`` first, then its ``<qemu:arg>`` values."""
    entries = libvirt_xml.fw_cfg_entries(domain_xml, _NAME)
    return [word for entry in entries for word in _as_blob(entry)] + libvirt_xml.qemu_args(domain_xml)


def with_argv(domain_xml: str, argv: Sequence[str]) -> str:
    """The domain XML holding ``argv``, the inverse of :func:`argv_of`: ``with_argv(x, argv_of(x))`` defines
    the same domain. Raises InvalidValue for an argument libvirt cannot keep."""
    kept = libvirt_xml.fw_cfg_entries(domain_xml, _NAME)
    options = devargs.blob_options(argv)[:len(kept)] if kept else []
    entries = [_as_entry(argv[option + 1]) for option in options]
    taken = {index for option in options for index in (option, option + 1)}
    rest = [word for index, word in enumerate(argv) if index not in taken]
    _refuse_unstorable(rest)
    if kept:
        domain_xml = libvirt_xml.with_fw_cfg_entries(domain_xml, _NAME, entries)
    return libvirt_xml.with_qemu_args(domain_xml, rest)


UNSTORABLE = "arguments without tabs or line breaks (libvirt reads them back as spaces)"


def unstorable_outside_blobs(argv: Sequence[str]) -> list[str]:
    """The arguments that could never be kept (a tab or line break in a ``<qemu:arg>``), leaving out the
    values of vgpu's blobs: an entry's text may hold them, and whether a blob lands in an entry depends
    on the domain."""
    bad = libvirt_xml.unstorable(argv)
    if not bad:
        return bad
    values = {option + 1 for option in devargs.blob_options(argv)}
    return libvirt_xml.unstorable([word for index, word in enumerate(argv) if index not in values])


def _refuse_unstorable(args: Sequence[str]) -> None:
    bad = libvirt_xml.unstorable(args)
    if bad:
        raise InvalidValue("device-model arguments", libvirt_xml.join_args(bad), UNSTORABLE)


def _as_blob(entry: FwCfgEntry) -> list[str]:
    """The ``-fw_cfg`` libvirt gives QEMU for the entry (a comma in a QEMU parameter value is written ``,,``)."""
    key, text = ("file", entry.file) if entry.file is not None else ("string", entry.value or "")
    return ["-fw_cfg", f"name={_NAME},{key}={text.replace(',', ',,')}"]


def _as_entry(value: str) -> FwCfgEntry:
    params = devargs.qemu_params(value)
    if {key for key, _ in params} not in _ENTRY_FORMS:
        raise InvalidValue("device-model arguments", value,
                           f"a -fw_cfg that the domain's <sysinfo type='fwcfg'> entry {_NAME} can hold: name= and string= or file=")
    given = dict(params)  # of a key given twice the last counts, as in QEMU
    return FwCfgEntry(None, given["file"]) if "file" in given else FwCfgEntry(given["string"])

"""The managed segment of a VM's device-model arguments: render, parse, merge. Pure functions.

vgpu owns exactly one QEMU option in the VM's device-model arguments:

    -fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7

Stock QEMU hands a ``-fw_cfg`` blob to the guest (``/sys/firmware/qemu_fw_cfg/by_name/opt/vgpu/config/raw``)
and the host's scheduler can read it from the QEMU command line. Only the pool, priority and vm_id ever go in
it: never a VM name or anything else a user typed as free text. Everything else an admin put in the
arguments is kept byte for byte.
"""

from __future__ import annotations

import re

import attrs

from .models import POOL_IDS, Priority, VMConfig

FW_CFG_NAME = "opt/vgpu/config"
_OPTION = "-fw_cfg"
# Any ``-fw_cfg name=opt/vgpu/config,...`` is ours: a second blob of that name would stop QEMU from starting,
# so one written by hand as ``file=`` is found (and reported malformed) rather than duplicated.
_SEGMENT_RE = re.compile(r"(?:(?<=\s)|^)-fw_cfg\s+name=" + re.escape(FW_CFG_NAME) + r",(string=)?(\S*)")
_PAYLOAD_RE = re.compile(r"pool=([A-Z]);priority=(\d);vm_id=(\d+)", re.ASCII)  # ASCII: int() takes '٧', QEMU's readers do not


@attrs.frozen
class SegmentState:
    """What a VM's arguments say about vgpu: no segment, a readable config, or something unreadable."""

    present: bool
    config: VMConfig | None = None
    raw: str | None = None

    @property
    def malformed(self) -> bool:
        return self.present and self.config is None


ABSENT = SegmentState(False)
_PRIORITIES = tuple(Priority)  # indexing is several times cheaper than Priority(n), and scan parses every VM


def payload(config: VMConfig) -> str:
    """The fw_cfg string the guest and the scheduler read: ``pool=A;priority=2;vm_id=7``."""
    return f"pool={config.pool_id};priority={int(config.priority)};vm_id={config.vm_id}"


def segment_args(config: VMConfig) -> list[str]:
    """The segment as an argument vector (for libvirt's ``<qemu:commandline>``)."""
    return [_OPTION, f"name={FW_CFG_NAME},string={payload(config)}"]


def render(config: VMConfig) -> str:
    """The segment as it appears in the device-model-args string (``" ".join(segment_args(config))``, in one
    f-string: a scan renders every registered VM's, to compare without a regex)."""
    return f"{_OPTION} name={FW_CFG_NAME},string=pool={config.pool_id};priority={int(config.priority)};vm_id={config.vm_id}"


def parse_payload(text: str) -> VMConfig | None:
    match = _PAYLOAD_RE.fullmatch(text)
    if match is None:
        return None
    pool_id, priority, vm_id = match.group(1), int(match.group(2)), int(match.group(3))
    if pool_id not in POOL_IDS or priority not in (0, 1, 2) or vm_id < 1:
        return None
    return VMConfig(pool_id, _PRIORITIES[priority], vm_id)


def parse(args: str) -> SegmentState:
    """Find vgpu's segment in a device-model-args string. More than one copy counts as malformed."""
    if not args or FW_CFG_NAME not in args:
        return ABSENT  # the common case for unregistered VMs, without running the regex
    matches = list(_SEGMENT_RE.finditer(args))
    if not matches:
        return ABSENT
    if len(matches) > 1:
        return SegmentState(True, None, " ".join(m.group(0) for m in matches))
    match = matches[0]
    config = parse_payload(match.group(2)) if match.group(1) else None
    return SegmentState(True, config, match.group(0))


def strip(args: str) -> str:
    """``args`` without vgpu's segment(s), everything else exactly as it was."""
    text = args or ""
    for match in reversed(list(_SEGMENT_RE.finditer(text))):
        start, end = match.span()
        if start > 0 and text[start - 1] == " ":
            start -= 1  # take the one space merge() put before the segment
        elif end < len(text) and text[end] == " ":
            end += 1
        text = text[:start] + text[end:]
    return text


def merge(args: str, config: VMConfig | None) -> str:
    """``args`` with vgpu's segment set to ``config`` (or removed when ``config`` is None)."""
    text = args or ""
    if config is None:
        return strip(text)
    matches = list(_SEGMENT_RE.finditer(text))
    if len(matches) == 1:
        start, end = matches[0].span()
        return text[:start] + render(config) + text[end:]
    base = strip(text)
    return f"{base} {render(config)}" if base else render(config)


def merge_list(args: list[str], config: VMConfig | None) -> list[str]:
    """The same as :func:`merge` for an argument vector (libvirt keeps QEMU arguments as a list)."""
    kept: list[str] = []
    index = 0
    while index < len(args):
        if args[index] == _OPTION and index + 1 < len(args) and args[index + 1].startswith(f"name={FW_CFG_NAME},"):
            index += 2
            continue
        kept.append(args[index])
        index += 1
    return kept if config is None else kept + segment_args(config)


def parse_list(args: list[str]) -> SegmentState:
    """The same as :func:`parse` for an argument vector."""
    found = [
        args[i + 1]
        for i in range(len(args) - 1)
        if args[i] == _OPTION and args[i + 1].startswith(f"name={FW_CFG_NAME},")
    ]
    if not found:
        return ABSENT
    raw = " ".join(f"{_OPTION} {value}" for value in found)
    if len(found) > 1 or not found[0].startswith(f"name={FW_CFG_NAME},string="):
        return SegmentState(True, None, raw)
    return SegmentState(True, parse_payload(found[0].split(",string=", 1)[1]), raw)

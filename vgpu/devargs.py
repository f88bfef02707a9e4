"""The managed segment of a VM's device-model arguments: render, parse, merge. Pure functions.

vgpu owns exactly one QEMU option in the VM's device-model arguments:

    -fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7

Stock QEMU hands a ``-fw_cfg`` blob to the guest (``/sys/firmware/qemu_fw_cfg/by_name/opt/vgpu/config/raw``)
and the host's scheduler can read it from the QEMU command line. Only the pool, priority and vm_id ever go in
it: never a VM name or anything else a user typed as free text. Everything else an admin put in the
arguments is kept byte for byte.

What counts as vgpu's blob is what QEMU would take for a blob named ``opt/vgpu/config`` (``softmmu/vl.c``
and ``util/qemu-option.c``), in any spelling QEMU accepts, because QEMU refuses to start with two blobs of
one name:

- the option is ``-fw_cfg`` or ``--fw_cfg`` (QEMU takes every option with one dash or two) and its value is
  the next argument;
- the value is ``key=value`` parameters separated by commas, a comma inside a value written ``,,``; the
  first parameter may leave out its key, which is then ``name`` (``-fw_cfg opt/vgpu/config,string=...``);
  a later parameter without ``=`` is a flag (``key`` means key=on, ``nokey`` key=off); of a key given twice
  the last counts; the keys QEMU knows are ``name``, ``file``, ``string``, ``gen_id`` and ``id``.

A blob that is ours but says anything other than exactly one readable configuration (``file=`` instead of
``string=``, an unknown key, a key given twice, an unreadable or out-of-range payload) is *malformed*, with
the reason; more than one of ours is malformed too. Either way :func:`merge` replaces the first in place
and removes the others, so a repair always leaves exactly one.

Two forms of the argument list: a string whose arguments are separated by ASCII whitespace (what xe,
XenAPI and the simulated host keep in the platform key, split as C's ``isspace`` splits), or, with
``quoted=True``, libvirt's string, which :func:`vgpu.hypervisor.libvirt_xml.join_args` quotes shell-style
(so one argument may hold spaces); :func:`parse_list` and :func:`merge_list` take the argument vector itself.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Sequence, TypeGuard

import attrs

from .models import POOL_IDS, Priority, VMConfig

FW_CFG_NAME = "opt/vgpu/config"
_OPTION = "-fw_cfg"
_SPELLINGS = frozenset((_OPTION, "-" + _OPTION))  # -fw_cfg and --fw_cfg
_QEMU_KEYS = frozenset(("name", "file", "string", "gen_id", "id"))
_SEPARATORS = " \t\n\r\f\v"  # C's isspace() in the C locale: how a launcher splits the words
_WORD = re.compile(r"[^ \t\n\r\f\v]+")
_PAYLOAD = re.compile(r"pool=([^;]*);priority=([^;]*);vm_id=([^;]*)", re.S)
VM_ID_MAX = 2**31 - 1  # as vgpu.values.VM_ID_MAX: the scheduler reads a signed 32-bit int
_VM_ID_DIGITS = len(str(VM_ID_MAX))
_PRIORITIES = {"0": Priority.LOW, "1": Priority.MEDIUM, "2": Priority.HIGH}  # scan parses every VM: no int() here
_SHOWN = 24  # the most of a value a reason quotes
# The segment exactly as render() writes it, between word separators: the usual case, read without splitting
# the words (a scan parses every VM). Only used when the text holds no other fw_cfg or blob name to weigh.
_CANONICAL = re.compile(r"(?:^|(?<=[ \t\n\r\f\v]))-fw_cfg name=opt/vgpu/config,string=pool=([AB]);priority=([012]);"
                        r"vm_id=([1-9][0-9]{0,9})(?=[ \t\n\r\f\v]|$)")


@attrs.frozen
class SegmentState:
    """What a VM's arguments say about vgpu: no segment, a readable config, or something unreadable.

    ``raw`` is the segment as written (every copy, when there are several); ``reason`` says why a present
    segment cannot be read (None when it can, or when there is none)."""

    present: bool
    config: VMConfig | None = None
    raw: str | None = None
    reason: str | None = None

    @property
    def malformed(self) -> bool:
        return self.present and self.config is None


ABSENT = SegmentState(False)


def payload(config: VMConfig) -> str:
    """The fw_cfg string the guest and the scheduler read: ``pool=A;priority=2;vm_id=7``.

    Checked here, the one place every segment is built: whatever reaches QEMU is a pool id, a priority and a
    vm_id in range, never text taken from anywhere else (a crafted journal row, say)."""
    pool_id, priority, vm_id = config.pool_id, config.priority, config.vm_id
    if (pool_id not in POOL_IDS or not isinstance(priority, Priority) or type(vm_id) is not int
            or not 1 <= vm_id <= VM_ID_MAX):
        raise ValueError(f"not a configuration vgpu writes into QEMU's arguments: {config!r}")
    return f"pool={pool_id};priority={int(priority)};vm_id={vm_id}"


def segment_args(config: VMConfig) -> list[str]:
    """The segment as an argument vector (for libvirt's ``<qemu:commandline>``)."""
    return [_OPTION, f"name={FW_CFG_NAME},string={payload(config)}"]


def render(config: VMConfig) -> str:
    """The segment as it appears in the device-model-args string (checked, as :func:`payload` checks it)."""
    return f"{_OPTION} name={FW_CFG_NAME},string={payload(config)}"


def rendered_text(config: VMConfig) -> str:
    """What :func:`render` gives, unchecked: only to compare with a host's stored args (a scan does it for
    every registered VM, whose configuration a checked database row gave). Never written anywhere."""
    return f"{_OPTION} name={FW_CFG_NAME},string=pool={config.pool_id};priority={int(config.priority)};vm_id={config.vm_id}"


# --- QEMU's parameter syntax ------------------------------------------------------------------------------


def _qemu_value(text: str, start: int) -> tuple[str, int]:
    """A parameter's value from ``start``: up to the first single comma (``,,`` is a comma). Returns the value
    and where the next parameter begins (QEMU's get_opt_value)."""
    parts = []
    while True:
        comma = text.find(",", start)
        if comma < 0:
            parts.append(text[start:])
            return "".join(parts), len(text)
        if text.startswith(",,", comma):
            parts.append(text[start:comma + 1])
            start = comma + 2
            continue
        parts.append(text[start:comma])
        return "".join(parts), comma + 1


def qemu_params(text: str, implied: str = "name") -> list[tuple[str, str]]:
    """A QemuOpts parameter string as QEMU reads it: (key, value) pairs in order (QEMU's opts_do_parse,
    with ``implied`` as the key of a first parameter written without one)."""
    params: list[tuple[str, str]] = []
    position, first = 0, True
    while position < len(text):
        equals, comma = text.find("=", position), text.find(",", position)
        if 0 <= equals and not 0 <= comma < equals:  # "key=value"
            key = text[position:equals]
            value, position = _qemu_value(text, equals + 1)
            params.append((key, value))
        elif first:  # "value,more": the implied key
            value, position = _qemu_value(text, position)
            params.append((implied, value))
        else:  # "flag,more": key=on, or "noflag": key=off
            end = len(text) if comma < 0 else comma
            flag = text[position:end]
            params.append((flag[2:], "off") if flag.startswith("no") else (flag, "on"))
            position = end + 1
        first = False
    return params


def _quoted(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def _read_payload(text: str) -> tuple[VMConfig | None, str | None]:
    """The configuration a blob's string carries, or None and why not. Bounded: a vm_id of thousands of
    digits is out of range, not a number to convert."""
    match = _PAYLOAD.fullmatch(text)
    if match is None:
        return None, f"its string {_quoted(text)} is not pool=A|B;priority=0|1|2;vm_id=N"
    pool_id, priority, vm_id = match.groups()
    if pool_id not in POOL_IDS:
        return None, f"its pool {_quoted(pool_id)} is not A or B"
    if priority not in _PRIORITIES:
        return None, f"its priority {_quoted(priority)} is not 0, 1 or 2"
    if not (vm_id.isascii() and vm_id.isdigit()) or vm_id.startswith("0"):
        return None, f"its vm_id {_quoted(vm_id)} is not a whole number written without leading zeros"
    if len(vm_id) > _VM_ID_DIGITS or int(vm_id) > VM_ID_MAX:
        shown = vm_id if len(vm_id) <= _SHOWN else f"of {len(vm_id)} digits"
        return None, f"its vm_id {shown} is outside 1 to {VM_ID_MAX}"
    return VMConfig(pool_id, _PRIORITIES[priority], int(vm_id)), None


def _read_blob(value: str) -> tuple[bool, VMConfig | None, str | None]:
    """(is it ours, its configuration, why it cannot be read) for the value of one ``-fw_cfg``."""
    if FW_CFG_NAME not in value:  # the common case: another blob, without parsing it
        return False, None, None
    params = qemu_params(value)
    names = [text for key, text in params if key == "name"]
    if not names or names[-1] != FW_CFG_NAME:
        return False, None, None
    keys = [key for key, _ in params]
    unknown = next((key for key in keys if key not in _QEMU_KEYS), None)
    if unknown is not None:
        return True, None, f"QEMU has no -fw_cfg parameter {_quoted(unknown)}"
    twice = next((key for key in ("name", "string", "file") if keys.count(key) > 1), None)
    if twice is not None:
        return True, None, f"it gives {twice}= more than once"
    if "file" in keys:
        return True, None, "it reads the blob from a file (file=) instead of string="
    if "string" not in keys:
        return True, None, "it has no string="
    config, reason = _read_payload(dict(params)["string"])
    return True, config, reason


# --- finding blobs among the arguments ---------------------------------------------------------------------


class _Blob(NamedTuple):
    """One of our blobs: the indexes of its option and value among the words, and what it says."""

    option: int
    config: VMConfig | None
    reason: str | None


def _blobs(words: Sequence[str]) -> list[_Blob]:
    """Every ``-fw_cfg``/``--fw_cfg`` followed by a value naming our blob, in order."""
    found: list[_Blob] = []
    index = 0
    while index < len(words) - 1:
        if words[index] in _SPELLINGS:
            ours, config, reason = _read_blob(words[index + 1])
            if ours:
                found.append(_Blob(index, config, reason))
                index += 2
                continue
        index += 1
    return found


def blob_options(args: Sequence[str]) -> list[int]:
    """Where each of vgpu's blobs stands in an argument vector: the index of its ``-fw_cfg`` (the value
    follows it), in order."""
    return [blob.option for blob in _blobs(args)]


def _state(blobs: list[_Blob], raw: list[str]) -> SegmentState:
    if not blobs:
        return ABSENT
    if len(blobs) > 1:
        return SegmentState(True, None, " ".join(raw), f"it holds {len(blobs)} vgpu blobs, and QEMU starts with one only")
    return SegmentState(True, blobs[0].config, raw[0], blobs[0].reason)


def parse_list(args: Sequence[str]) -> SegmentState:
    """Find vgpu's segment in an argument vector. More than one copy counts as malformed."""
    blobs = _blobs(args)
    return _state(blobs, [f"{args[blob.option]} {args[blob.option + 1]}" for blob in blobs])


def merge_list(args: Sequence[str], config: VMConfig | None) -> list[str]:
    """``args`` with vgpu's segment set to ``config`` (or removed when ``config`` is None): the first copy
    replaced where it stands, any others removed, everything else kept; appended when there is none."""
    blobs = _blobs(args)
    ours = {blob.option for blob in blobs} | {blob.option + 1 for blob in blobs}
    kept: list[str] = []
    for index, word in enumerate(args):
        if config is not None and blobs and index == blobs[0].option:
            kept += segment_args(config)
        elif index not in ours:
            kept.append(word)
    return kept + segment_args(config) if config is not None and not blobs else kept


# --- the string forms ------------------------------------------------------------------------------------


def _words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    spans = [match.span() for match in _WORD.finditer(text)]
    return [text[start:end] for start, end in spans], spans


def _split_quoted(text: str) -> list[str] | None:
    from .hypervisor.libvirt_xml import split_args  # only for libvirt's form

    try:
        return split_args(text)
    except ValueError:  # unbalanced quotes: not a string libvirt's backend made; read it as words
        return None


def _join_quoted(args: list[str]) -> str:
    from .hypervisor.libvirt_xml import join_args

    return join_args(args)


def _might_hold_ours(args: str | None) -> TypeGuard[str]:
    # The common case (most VMs carry no fw_cfg at all) without splitting anything: our blob needs both.
    return args is not None and "fw_cfg" in args and FW_CFG_NAME in args


def parse(args: str | None, *, quoted: bool = False) -> SegmentState:
    """Find vgpu's segment in a device-model-args string. More than one copy counts as malformed."""
    if not _might_hold_ours(args):
        return ABSENT
    if args.count("fw_cfg") == 1 and args.count(FW_CFG_NAME) == 1 and not (quoted and any(q in args for q in "'\"\\")):
        match = _CANONICAL.search(args)
        if match is not None and int(match.group(3)) <= VM_ID_MAX:  # at most 10 digits: int() is safe
            config = VMConfig(match.group(1), _PRIORITIES[match.group(2)], int(match.group(3)))
            return SegmentState(True, config, match.group(0))
    if quoted:
        argv = _split_quoted(args)
        if argv is not None:
            state = parse_list(argv)
            return state if not state.present else attrs.evolve(state, raw=_raw_quoted(argv))
    words, spans = _words(args)
    blobs = _blobs(words)
    return _state(blobs, [args[spans[blob.option][0]:spans[blob.option + 1][1]] for blob in blobs])


def _raw_quoted(argv: list[str]) -> str:
    blobs = _blobs(argv)
    return " ".join(_join_quoted(argv[blob.option:blob.option + 2]) for blob in blobs)


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span removed, and with it one whitespace character that separated it from the rest
    (the one merge() put before it, or after it at the very start)."""
    for start, end in reversed(spans):
        if start > 0 and text[start - 1] in _SEPARATORS:
            start -= 1
        elif end < len(text) and text[end] in _SEPARATORS:
            end += 1
        text = text[:start] + text[end:]
    return text


def strip(args: str | None, *, quoted: bool = False) -> str:
    """``args`` without vgpu's segment(s), everything else exactly as it was."""
    return merge(args, None, quoted=quoted)


def merge(args: str | None, config: VMConfig | None, *, quoted: bool = False) -> str:
    """``args`` with vgpu's segment set to ``config`` (or removed when ``config`` is None): the first copy,
    in whatever spelling, replaced where it stands, any others removed, everything else kept byte for
    byte; appended (after one space) when there is none."""
    text = args or ""
    if quoted and _might_hold_ours(text):
        argv = _split_quoted(text)
        if argv is not None:
            return _join_quoted(merge_list(argv, config))
    words, spans = _words(text) if _might_hold_ours(text) else ([], [])
    blobs = _blobs(words)
    if config is None:
        return _without(text, [(spans[b.option][0], spans[b.option + 1][1]) for b in blobs])
    if not blobs:
        return f"{text} {render(config)}" if text else render(config)
    first = blobs[0]
    start, end = spans[first.option][0], spans[first.option + 1][1]
    rest = _without(text[end:], [(spans[b.option][0] - end, spans[b.option + 1][1] - end) for b in blobs[1:]])
    return text[:start] + render(config) + rest

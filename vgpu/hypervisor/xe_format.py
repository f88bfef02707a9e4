"""The text the ``xe`` CLI prints, both ways: pure functions, no processes.

What xe prints (xen-api ``ocaml/xapi-cli-server``, checked against real captures in tests/data/xe/):

* Records (``xe vm-list``): one ``label: value`` line per field, where the label is the field name plus its
  kind, ``( RO)``, ``( RW)``, ``(MRO)``, ``(MRW)``, ``(SRO)`` or ``(SRW)``, padded to four more than the longest
  label (the first line on the right, the others on the left). ``params=`` selects fields but keeps the
  record's own order. Every record, the last included, is followed by two blank lines. Values are printed raw.
* Maps in a record (``platform (MRW): acpi: 1; nx: true``): ``key: value`` pairs joined by ``"; "`` with no
  escaping at all (records.ml ``s2sm_to_string``), so a value holding ``"; "`` cannot be told apart from two
  entries. :func:`read_key` says what the text proves about one key, and when it proves nothing.
* ``--minimal``: only the first field of each record, joined by commas, ``,`` written ``\\,`` and ``\\``
  written ``\\\\`` (cli_printer.ml ``escape_commas``).
* ``vm-param-get``: the bare value and a newline; with ``param-key=`` it is exact, whatever the value holds.
* Errors (exit status 1, stderr): the error's documentation sentence, then one ``name: value`` line per
  parameter; a VM or host parameter reads ``<uuid> (<name-label>)`` (:func:`object_name`). The CLI's own
  failures read ``Error: ...``; an error code xe has no sentence for reads ``Error code: X`` /
  ``Error parameters: a, b``.
"""

from __future__ import annotations

import collections
import re
from typing import AbstractSet, Iterable, Mapping, Sequence

import attrs

from ..basics import UUID_PATTERN
from . import codes

# Pseudo codes for what xe reports without an XAPI error code.
KEY_NOT_IN_MAP = "KEY_NOT_IN_MAP"
VM_SHUTDOWN_TIMEOUT = codes.VM_SHUTDOWN_TIMEOUT  # xe names it; XenAPI sends it too

_FIELD = re.compile(r"^ *(?P<name>\S+) \((?P<kind> RO| RW|MRO|MRW|SRO|SRW)\)(?: \[DEPRECATED\])? *:(?: (?P<value>.*))?$")


# --- records ------------------------------------------------------------------------------------------------


def parse_records(text: str) -> list[dict[str, str]]:
    """Records printed by ``xe <class>-list``: one dict per record, field name -> value.

    A field line that follows a blank line, or repeats a field of the current record, starts a new record.
    Any other line continues the previous value (a value holding a newline), blank lines kept; lines before
    the first field (a shell prompt in a pasted capture) belong to no record.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    last = ""
    blanks = 0
    for line in text.split("\n"):
        if line == "":
            blanks += 1
            continue
        match = _FIELD.match(line)
        if match:
            name = match["name"]
            if current is None or blanks or name in current:
                current = {}
                records.append(current)
            current[name] = match["value"] or ""
            last = name
        elif current is not None:
            current[last] += "\n" * (blanks + 1) + line
        blanks = 0
    return records


@attrs.frozen
class Vouched:
    """A listing checked against the UUIDs the host has: ``uuids``, the host's VMs that the listing shows, in
    the host's order; ``records``, by UUID, those whose fields are exactly as printed. Every other VM of
    ``uuids`` must have its fields read exactly (``vm-param-get``)."""

    uuids: tuple[str, ...]
    records: Mapping[str, Mapping[str, str]]


def vouch(records: Sequence[Mapping[str, str]], host_uuids: Sequence[str], fields: AbstractSet[str]) -> Vouched:
    """Which records of a listing (:func:`parse_records`) say what the host holds.

    xe prints values raw, so a name or map value holding a line break and then a line shaped like a field
    reads as that field, or as a record of its own after a blank line: a VM's name can fake other VMs, or
    its own fields. ``host_uuids`` are the UUIDs the host has, read exactly (``--minimal``: a UUID holds no
    comma or line break), ``fields`` the fields every record prints. A record is *sound* when it has exactly
    ``fields`` and a UUID of the host no other record has. Injected text always leaves a record that is not
    sound right after the one holding it: a field it adds to that record is either not one of ``fields``, or
    comes again (there or for real later), which starts a record without a UUID; a record it starts has no
    UUID, one the host lacks, or one the host's own record has too. So a record is taken as printed only
    when it and the record after it are sound; records of UUIDs the host lacks (injected, or a VM deleted
    since) are dropped.
    """
    known = set(host_uuids)
    counts = collections.Counter(record.get("uuid") for record in records)

    def sound(record: Mapping[str, str]) -> bool:
        return record.get("uuid") in known and counts[record.get("uuid")] == 1 and record.keys() == fields

    doubtful = {records[index - 1].get("uuid") for index in range(1, len(records)) if not sound(records[index])}
    trusted = {record["uuid"]: record for record in records if sound(record) and record["uuid"] not in doubtful}
    listed = set(counts)
    return Vouched(tuple(uuid for uuid in host_uuids if uuid in listed), trusted)


def format_record(fields: Sequence[tuple[str, str, str]]) -> str:
    """One record as xe prints it, from (name, kind, value) triples; kind is e.g. ``" RO"`` or ``"MRW"``."""
    labels = [f"{name} ({kind})" for name, kind, _ in fields]
    width = 4 + max((len(label) for label in labels), default=0)
    lines = [
        (label.ljust(width) if index == 0 else label.rjust(width)) + ": " + value
        for index, (label, (_, _, value)) in enumerate(zip(labels, fields))
    ]
    return "\n".join(lines) + "\n\n\n"


def format_records(records: Iterable[Sequence[tuple[str, str, str]]]) -> str:
    return "".join(format_record(fields) for fields in records)


# --- maps --------------------------------------------------------------------------------------------------


def read_key(text: str, key: str) -> str | None:
    """The value of ``key`` in a map printed as ``key: value; key: value``, when the text leaves no doubt.

    xe escapes nothing in a map (records.ml ``s2sm_to_string``), so ``a: 1; b: 2`` is as much the map
    {a: "1; b: 2"} as {a: "1", b: "2"}: any entry may end later than it seems, and any entry but the first may
    begin inside the value before it. Two readings are certain: a key is absent when no "; "-separated piece
    starts with ``key: `` (every entry of a map starts such a piece), and an entry that is the whole text is
    exactly that entry (unless its value holds ": " or a line break, which a longer key could explain).
    Returns "" for an absent key, the value for a whole-text entry, and None for anything else: the caller
    reads the key exactly (``vm-param-get param-key=``).
    """
    prefix = key + ": "
    pieces = text.split("; ") if text else []
    if not any(piece.startswith(prefix) or piece == key + ":" for piece in pieces):
        return ""
    if len(pieces) == 1:
        value = pieces[0][len(prefix):]
        if ": " not in value and "\n" not in value:
            return value
    return None


# A "; "-piece that starts the way an entry does: a key as real hosts name them (timeoffset, device_id,
# cores-per-socket, ...), then ": ".
_ENTRY_START = re.compile(r"[\w.-]+(?:: |:$)")


def best_reading(text: str, key: str) -> str:
    """The likeliest value of ``key`` in a printed map: :func:`read_key`'s when it is certain, else the first
    "; "-piece that starts with ``key: ``, with the pieces after it up to the next that starts like an entry
    (``word: ``). Only a guess: args holding "; word: " are cut short, and another key's value holding
    "; key: ..." is taken for the key. A caller may act on it only where an exact read checks it before
    anything is decided or written (a reconfigure that stops the VM reads the args once it is stopped)."""
    certain = read_key(text, key)
    if certain is not None:
        return certain
    pieces = text.split("; ")
    start = next(index for index, piece in enumerate(pieces) if piece.startswith(key + ": ") or piece == key + ":")
    value = [pieces[start][len(key) + 2:]]
    for piece in pieces[start + 1:]:
        if _ENTRY_START.match(piece):
            break
        value.append(piece)
    return "; ".join(value)


def format_map(entries: Mapping[str, str]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in entries.items())


# --- --minimal ---------------------------------------------------------------------------------------------


def parse_minimal(text: str) -> list[str]:
    """Values printed with ``--minimal``: split at unescaped commas, then undo ``\\,`` and ``\\\\``."""
    body = text[:-1] if text.endswith("\n") else text
    if body == "":
        return []
    values, current, chars = [], [], iter(body)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def format_minimal(values: Iterable[str]) -> str:
    return ",".join(value.replace("\\", "\\\\").replace(",", "\\,") for value in values) + "\n"


# --- errors ------------------------------------------------------------------------------------------------


@attrs.frozen
class ErrorDoc:
    """An XAPI error as xe prints it: its documentation sentence(s) and parameter names (datamodel_errors.ml)."""

    code: str
    doc: str
    params: tuple[str, ...] = ()
    older: tuple[str, ...] = ()  # wordings of earlier releases, still on hosts in the field


ERROR_DOCS: tuple[ErrorDoc, ...] = (
    ErrorDoc(codes.UUID_INVALID, "The uuid you supplied was invalid.", ("type", "uuid")),
    ErrorDoc(
        codes.HANDLE_INVALID,
        "You gave an invalid object reference. The object may have recently been deleted. The class parameter "
        "gives the type of reference given, and the handle parameter echoes the bad value given.",
        ("class", "handle"),
    ),
    ErrorDoc(
        codes.VM_BAD_POWER_STATE,
        "You attempted an operation on a VM that was not in an appropriate power state at the time; for example, "
        "you attempted to start a VM that was already running. The parameters returned are the VM's handle, and "
        "the expected and actual VM state at the time of the call.",
        ("vm", "expected", "actual"),
    ),
    ErrorDoc(codes.VM_LACKS_FEATURE, "You attempted an operation on a VM which lacks the feature.", ("vm",)),
    # Older hosts refuse a clean shutdown of a guest without PV drivers with these; the remedy is the same.
    ErrorDoc(
        codes.VM_LACKS_FEATURE,
        "You attempted an operation which needs the cooperative shutdown feature on a VM which lacks it.",
        ("vm",),
    ),
    ErrorDoc(
        codes.VM_LACKS_FEATURE,
        "You attempted an operation on a VM which requires PV drivers to be installed but the drivers were not detected.",
        ("vm",),
    ),
    ErrorDoc(codes.FAILED_TO_START_EMULATOR, "An emulator required to run this VM failed to start", ("vm", "name", "msg")),
    ErrorDoc(
        codes.INTERNAL_ERROR,
        "The server failed to handle your request, due to an internal error. The given message may give details "
        "useful for debugging the problem.",
        ("message",),
    ),
    ErrorDoc(codes.OTHER_OPERATION_IN_PROGRESS, "Another operation involving the object is currently in progress", ("class", "object")),
    ErrorDoc(
        codes.SESSION_AUTHENTICATION_FAILED,
        "The credentials given by the user are incorrect, so access has been denied, and you have not been issued "
        "a session handle.",
    ),
    ErrorDoc(
        codes.HOST_IS_SLAVE,
        "You cannot make regular API calls directly on a supporter. Please pass API calls via the coordinator host.",
        ("Master IP address",),
        older=("You cannot make regular API calls directly on a slave. Please pass API calls via the master host.",),
    ),
    ErrorDoc(
        codes.NO_HOSTS_AVAILABLE,
        "There were no servers available to complete the specified operation.",
        older=("There were no hosts available to complete the specified operation.",),
    ),
    ErrorDoc(codes.PERMISSION_DENIED, "Caller not allowed to perform this operation.", ("message",)),
    ErrorDoc(codes.HOST_OFFLINE, "You attempted an operation which involves a host which could not be contacted.", ("host",)),
    ErrorDoc(
        codes.HOST_NOT_LIVE,
        "This operation cannot be completed as the server is not live.",
        older=("This operation cannot be completed as the host is not live.",),
    ),
    ErrorDoc(
        codes.HOST_NOT_ENOUGH_FREE_MEMORY,
        "Not enough server memory is available to perform this operation.",
        ("needed", "available"),
        older=("Not enough host memory is available to perform this operation",),
    ),
    ErrorDoc(
        codes.VM_REQUIRES_SR,
        "You attempted to run a VM on a host which doesn't have access to an SR needed by the VM. The VM has at "
        "least one VBD attached to a VDI in the SR.",
        ("vm", "sr"),
    ),
    ErrorDoc(VM_SHUTDOWN_TIMEOUT, "VM failed to shutdown before the timeout expired", ("vm", "timeout")),
    ErrorDoc(codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, "VM didn't acknowledge the need to shutdown.", ("vm",)),
)

# What the CLI server prints in its own words (xapi_cli.ml, cli_operations.ml). Searched anywhere in stderr:
# some releases print "Error: ...", older ones wrap it in an INTERNAL_ERROR ("message: Failure: ...").
_CLI_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"No matching VMs found"), codes.UUID_INVALID),
    (re.compile(r"Key (?P<detail>.+?) (?:not found in map|is not in map)"), KEY_NOT_IN_MAP),
    (re.compile(r"^(?:Error: )?(?:Authentication failed|Username/password must be specified)", re.M), codes.SESSION_AUTHENTICATION_FAILED),
)
# What the xe client prints when it cannot reach xapi at all (newcli.ml main); only ever its first line.
_NO_CONNECTION = re.compile(
    r"^(?:Error: .*\(calling connect\b.*|Unable to contact server\b.*|Lost connection to the server\b.*|"
    r"Failed to contact a running management agent\b.*|Host '.*' not found\b.*)$"
)
_UNNAMED_CODE = re.compile(r"^Error code: (?P<code>\S+)$", re.M)
_UNNAMED_PARAMS = re.compile(r"^Error parameters: (?P<params>.*)$", re.M)


@attrs.frozen
class XeFailure:
    """What a failed xe call printed: the code (None when unknown), its parameters, and the first line."""

    code: str | None
    details: tuple[str, ...]
    first_line: str

    def detail(self, index: int) -> str:
        return self.details[index] if index < len(self.details) else ""


def parse_error(stderr: str) -> XeFailure:
    """Recognise an error xe printed: its code and parameter values, in the order XAPI defines them."""
    lines = [line.strip() for line in stderr.split("\n") if line.strip()]
    first = lines[0] if lines else ""
    if _NO_CONNECTION.match(first):
        return XeFailure(codes.HOST_UNREACHABLE, (first,), first)
    for pattern, code in _CLI_MESSAGES:
        found = pattern.search(stderr)
        if found:
            return XeFailure(code, tuple(value for value in found.groupdict().values() if value), first)
    flat = _normalised(stderr)
    for doc in ERROR_DOCS:
        if any(flat.startswith(_normalised(text)) for text in (doc.doc, *doc.older)):
            return XeFailure(doc.code, _named_params(lines[1:], doc.params), first)
    unnamed = _UNNAMED_CODE.search(stderr)
    if unnamed:
        params = _UNNAMED_PARAMS.search(stderr)
        return XeFailure(unnamed["code"], tuple(params["params"].split(", ")) if params and params["params"] else (), first)
    return XeFailure(None, (), first)


# An object parameter as xe prints it (cli_util.ml ref_convert): "<uuid> (<name-label>)", or the uuid alone
# for an object without a name, or the reference itself when xapi cannot look it up.
_OBJECT = re.compile(rf"(?P<uuid>{UUID_PATTERN})(?: \((?P<name>.*)\))?", re.IGNORECASE | re.DOTALL)


def object_name(printed: str) -> str:
    """The name of the object a parameter refers to (its uuid when it has none); "" for a bare reference."""
    if codes.is_ref(printed):
        return ""
    found = _OBJECT.fullmatch(printed)
    return (found["name"] or found["uuid"]) if found else printed


def _normalised(text: str) -> str:
    """Whitespace collapsed: older sentences have two spaces after a full stop, and pasted ones are wrapped."""
    return " ".join(text.split())


def _named_params(lines: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    values = []
    for name in names:
        prefix = name + ": "
        values.append(next((line[len(prefix):] for line in lines if line.startswith(prefix)), ""))
    return tuple(values)


def format_error(code: str, details: Sequence[str]) -> str:
    """stderr of a failed xe call for an XAPI error, as xe prints it (the stand-in uses this)."""
    doc = next((doc for doc in ERROR_DOCS if doc.code == code), None)
    if doc is None:
        return f"Error code: {code}\nError parameters: {', '.join(details)}\n"
    named = [f"{name}: {details[index] if index < len(details) else '<unknown>'}" for index, name in enumerate(doc.params)]
    return "\n".join([doc.doc, *named]) + "\n"

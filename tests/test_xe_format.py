"""xe's text formats, read and written: checked against real captures (tests/data/xe/) and by round trips."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vgpu.hypervisor import codes, xe_format
from vgpu.hypervisor.xe_format import parse_error, parse_minimal, parse_records, read_key

DATA = Path(__file__).parent / "data" / "xe"
CHECKSUMS = DATA / "SHA256SUMS"  # each capture's digest as it was copied in (sha256sum's format)
KINDS = {"uuid": " RO", "name-label": " RW", "power-state": " RO", "memory-actual": " RO", "VCPUs-number": " RO"}
_PROMPT = re.compile(r"^(\[root@[^\]]*\]# |# |`)xe ")


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def xe_output(text: str) -> str:
    """A pasted capture without the author's command line (prompt or backticks) and the blank line after it."""
    lines = text.split("\n")
    if lines and _PROMPT.match(lines[0]):
        lines = lines[1:]
    while lines and lines[0] == "":
        lines = lines[1:]
    return "\n".join(lines)


def as_triples(records):
    return [[(name, KINDS[name], value) for name, value in record.items()] for record in records]


def test_the_captures_are_byte_for_byte_as_copied_in():
    """The captures are evidence of real output: an edit (an editor's trailing newline, a 'fix') would make
    the parsers pass against something no host printed. Every file but the README is listed, unchanged."""
    recorded = dict(reversed(line.split("  ", 1)) for line in CHECKSUMS.read_text(encoding="utf-8").splitlines())
    present = {path.name for path in DATA.iterdir()} - {CHECKSUMS.name, "README.md"}
    assert set(recorded) == present
    for name, digest in recorded.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


# --- records -------------------------------------------------------------------------------------------------


def test_default_vm_list_fields_read_and_written_exactly():
    text = sample("vm-list_default_fields.ralph.txt")
    records = parse_records(text)
    assert [record["name-label"] for record in records] == [
        "Transfer VM for VDI 07f1cca1-056d-4694-879e-adcb2ed989e1",
        "win2k8",
        "Control domain on host: s10820.dc2",
    ]
    assert [record["power-state"] for record in records] == ["halted", "running", "running"]
    assert records[1]["uuid"] == "c98c2e2b-a8cf-fe0a-a3c3-2e492c541ef9"
    assert xe_format.format_records(as_triples(records)) == text  # padding, labels, two blank lines: byte for byte


def test_params_keep_the_records_own_field_order():
    text = sample("vm-list_params_record_order.ralph.txt")
    records = parse_records(text)
    assert list(records[0]) == ["uuid", "name-label", "power-state", "memory-actual", "VCPUs-number"]
    assert records[2] == {
        "uuid": "4c960326-0522-482f-9213-ffcc3acf8298",
        "name-label": "Control domain on host: s10820.dc2",
        "power-state": "running",
        "memory-actual": "609222656",
        "VCPUs-number": "8",
    }
    assert xe_format.format_records(as_triples(records)) == text


def test_a_record_without_trailing_blank_lines_and_a_prompt_before_it():
    records = parse_records(sample("vm-list_name_filter.blog.txt"))
    assert records == [{"uuid": "ba73ef4f-ad8a-91c9-a9d8-ebea92f5081f", "name-label": "zphome", "power-state": "halted"}]


def test_records_split_on_a_repeated_field_even_without_blank_lines():
    text = "uuid ( RO): a\nname-label ( RW): x\nuuid ( RO): b\nname-label ( RW): y\n"
    assert parse_records(text) == [{"uuid": "a", "name-label": "x"}, {"uuid": "b", "name-label": "y"}]


def test_a_value_with_line_breaks_continues_its_field():
    text = xe_format.format_record([("uuid", " RO", "u"), ("name-label", " RW", "first\nsecond\n\nfourth"), ("power-state", " RO", "halted")])
    assert parse_records(text) == [{"uuid": "u", "name-label": "first\nsecond\n\nfourth", "power-state": "halted"}]


def test_empty_value_and_deprecated_label():
    assert parse_records("uuid ( RO): u\nname-label ( RW): \nold ( RO) [DEPRECATED]: 1\n") == [
        {"uuid": "u", "name-label": "", "old": "1"}
    ]
    assert parse_records("uuid ( RO): u\nname-label ( RW):\n") == [{"uuid": "u", "name-label": ""}]


def test_no_records():
    assert parse_records("") == []
    assert parse_records("\n") == []


# --- maps ----------------------------------------------------------------------------------------------------


KEY = "device-model-args"


def test_platform_map_from_param_list():
    [record] = parse_records(sample("platform_map.param-list.txt"))
    text = record["platform"]
    assert text.startswith("timeoffset: 0; nx: true;")
    assert read_key(text, KEY) == ""  # certain: no entry starts with the key
    assert read_key(text, "nx") is None  # "timeoffset" may hold "0; nx: true"


def test_a_whole_map_of_our_key_alone_is_certain():
    segment = "-vnc 127.0.0.1:1 -fw_cfg name=opt/vgpu/config,string=pool=B;priority=2;vm_id=7"
    assert read_key(xe_format.format_map({KEY: segment}), KEY) == segment
    assert read_key(f"{KEY}: ", KEY) == ""  # an empty value, as xe prints it
    assert read_key(f"{KEY}:", KEY) == ""  # ... and with the trailing space lost
    assert read_key("", KEY) == ""


@pytest.mark.parametrize("entries", [
    {"acpi": "1", KEY: "-vnc :1", "nx": "true"},  # nx may be part of the args
    {KEY: "-append a; kind: b -fw_cfg x"},  # the "; word: " case of issue 11
    {"note": f"x; {KEY}: fake"},  # the args may sit inside another value
    {KEY: "-a: b"},  # a key "device-model-args: -a" would print the same
])
def test_anything_else_about_the_key_is_left_to_an_exact_read(entries):
    assert read_key(xe_format.format_map(entries), KEY) is None


def test_the_best_reading_of_args_among_a_real_hosts_keys():
    segment = "-vnc 127.0.0.1:1 -fw_cfg name=opt/vgpu/config,string=pool=B;priority=2;vm_id=7"
    text = xe_format.format_map({"timeoffset": "0", KEY: segment, "hpet": "true", "acpi": "1"})
    assert read_key(text, KEY) is None and xe_format.best_reading(text, KEY) == segment
    assert xe_format.best_reading(xe_format.format_map({"acpi": "1", KEY: segment}), KEY) == segment  # last
    assert xe_format.best_reading(xe_format.format_map({KEY: "-a; b c", "nx": "true"}), KEY) == "-a; b c"
    assert xe_format.best_reading(xe_format.format_map({KEY: segment}), KEY) == segment  # certain, as read_key
    assert xe_format.best_reading(xe_format.format_map({"acpi": "1", KEY: ""}), KEY) == ""
    assert xe_format.best_reading("acpi: 1; nx: true", KEY) == ""  # certain: absent


def test_the_best_reading_is_a_guess_where_the_text_is_ambiguous():
    # What the caller must check with an exact read: the args' own "; word: " cuts them short, and another
    # key's value holding "; device-model-args: ..." is taken for them.
    assert xe_format.best_reading(xe_format.format_map({KEY: "-append a; kind: b", "nx": "1"}), KEY) == "-append a"
    lying = xe_format.format_map({"note": f"x; {KEY}: -fake", KEY: "-real", "nx": "1"})
    assert xe_format.best_reading(lying, KEY) == "-fake"


def test_the_map_text_is_ambiguous_by_design():
    # Why the backend reads exactly: xe prints these two different maps identically.
    one, two = {"a": "1; b: 2"}, {"a": "1", "b": "2"}
    assert xe_format.format_map(one) == xe_format.format_map(two)


# --- --minimal -----------------------------------------------------------------------------------------------


def test_minimal_escapes():
    assert parse_minimal("a,b\\,c,d\\\\e\n") == ["a", "b,c", "d\\e"]
    assert xe_format.format_minimal(["db, primary", "x\\y"]) == "db\\, primary,x\\\\y\n"
    assert parse_minimal("\n") == []
    assert parse_minimal("") == []


# --- errors --------------------------------------------------------------------------------------------------


def test_uuid_invalid():
    failure = parse_error(sample("uuid_invalid.ru-doc.txt"))
    assert failure.code == codes.UUID_INVALID
    assert failure.details == ("VDI", "'uuid'")


def test_bad_power_state_with_a_wrapped_old_style_sentence():
    failure = parse_error(xe_output(sample("vm_bad_power_state.blog.txt")))
    assert failure.code == codes.VM_BAD_POWER_STATE
    assert failure.details == ("ba73ef4f-ad8a-91c9-a9d8-ebea92f5081f (zphome)", "running", "halted")
    assert "is halted, but the operation needs it running" in str(codes.host_error(failure.code, failure.details))


def test_internal_error_with_its_message():
    failure = parse_error(xe_output(sample("internal_error.buildroot-549.txt")))
    assert failure.code == codes.INTERNAL_ERROR
    assert failure.details == ("xenopsd internal error: Xenlight.Error(_)",)


def test_internal_error_then_emulator_failure():
    first, second = [xe_output(part) for part in re.split(r"\n(?=# xe )", sample("internal_error_and_emulator.xen-api-pr2597.txt"))]
    assert parse_error(first).details == ('xenopsd internal error: Device.Ioemu_failed("vgpu exited unexpectedly")',)
    emulator = parse_error(second)
    assert emulator.code == codes.FAILED_TO_START_EMULATOR
    assert emulator.details == ("76af1940-4fe9-4a09-f384-64188ebac3e5 (ubuntu-0)", "vgpu", "Daemon exited unexpectedly")
    assert "Daemon exited unexpectedly" in str(codes.host_error(emulator.code, emulator.details))


def test_emulator_failure_modern_shape_indented():
    failure = parse_error(sample("failed_to_start_emulator.xenopsd-pr559.txt"))
    assert failure.code == codes.FAILED_TO_START_EMULATOR
    assert failure.details == (
        "e0267811-4386-7fb4-ad1b-6dc8dd685b1e (Windows 8.1)",
        "domid 10",
        'QMP failure at File "xc/device.ml", line 2247, characters 59-66',
    )


def test_emulator_failure_from_the_api_as_xe_would_print_it():
    error = json.loads(sample("failed_to_start_emulator.xo-6783.json"))
    failure = parse_error(xe_format.format_error(error["code"], error["params"]))
    assert (failure.code, list(failure.details)) == (error["code"], error["params"])


def test_authentication_failure_in_the_clis_words_and_the_apis():
    assert parse_error("Authentication failed\nFor usage run: 'xe help'\n").code == codes.SESSION_AUTHENTICATION_FAILED
    assert parse_error(xe_format.format_error(codes.SESSION_AUTHENTICATION_FAILED, [])).code == codes.SESSION_AUTHENTICATION_FAILED
    code, *details = ast.literal_eval(sample("session_authentication_failed.txt").split("\n")[0])
    assert "user root" in str(codes.host_error(code, details))


def test_the_clis_own_failures():
    no_vm, no_key = sample("xcp-ng-tests_expected_strings.txt").strip().split("\n")
    assert parse_error(no_vm).code == codes.UUID_INVALID
    assert parse_error(no_key % "device-model-args") == xe_format.XeFailure(
        xe_format.KEY_NOT_IN_MAP, ("device-model-args",), "Error: Key device-model-args not found in map"
    )
    assert parse_error("Error: Key device-model-args is not in map\n").code == xe_format.KEY_NOT_IN_MAP
    wrapped = xe_format.format_error(codes.INTERNAL_ERROR, ["Failure: No matching VMs found"])
    assert parse_error(wrapped).code == codes.UUID_INVALID  # older hosts wrap it in an internal error


def test_host_is_slave_in_both_wordings_names_the_master():
    new = xe_format.format_error(codes.HOST_IS_SLAVE, ["192.0.2.1"])
    old = "You cannot make regular API calls directly on a slave.  Please pass API calls via the master host.\nMaster IP address: 192.0.2.1\n"
    for text in (new, old):
        failure = parse_error(text)
        assert (failure.code, failure.details) == (codes.HOST_IS_SLAVE, ("192.0.2.1",))


@pytest.mark.parametrize(
    "stderr",
    [
        "Error: Connection refused (calling connect )\n",
        "Error: No such file or directory (calling connect )\n",
        "Unable to contact server. Please check server and port settings.\n",
        "Lost connection to the server.\n",
        "Failed to contact a running management agent.\nTry specifying a server name and port.\n",
        "Host 'pool.example' not found.\n",
    ],
)
def test_no_connection_to_xapi(stderr):
    assert parse_error(stderr).code == codes.HOST_UNREACHABLE


def test_connection_words_inside_another_error_are_not_unreachable():
    text = xe_format.format_error(codes.INTERNAL_ERROR, ["Unix_error: Connection refused"])
    assert parse_error(text).code == codes.INTERNAL_ERROR


def test_a_code_xe_has_no_sentence_for():
    failure = parse_error("Error code: SR_BACKEND_FAILURE_46\nError parameters: , The VDI is not available, \n")
    assert failure.code == "SR_BACKEND_FAILURE_46"
    assert failure.details == ("", "The VDI is not available", "")


def test_unknown_text_keeps_its_first_line():
    failure = parse_error("\nSomething nobody documented.\nmore: detail\n")
    assert failure == xe_format.XeFailure(None, (), "Something nobody documented.")


# --- round trips ---------------------------------------------------------------------------------------------

_NAME = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,15}", fullmatch=True)
_LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40)
_TRICKY = st.lists(st.sampled_from([";", ":", ",", " ", "; ", ": ", "=", "\\", "a", "B", "-x", "é", "\t", '"', "'"]), max_size=12).map("".join)
_VALUE = st.one_of(_LINE, _TRICKY)
_KIND = st.sampled_from([" RO", " RW", "MRO", "MRW", "SRO", "SRW"])


@given(st.lists(_NAME, min_size=1, max_size=6, unique=True), st.data())
def test_records_round_trip(names, data):
    kinds = [data.draw(_KIND) for _ in names]
    rows = data.draw(st.lists(st.lists(_VALUE, min_size=len(names), max_size=len(names)), max_size=4))
    records = [list(zip(names, kinds, row)) for row in rows]
    assert parse_records(xe_format.format_records(records)) == [dict(zip(names, row)) for row in rows]


_KEYS = st.one_of(st.sampled_from([KEY, "acpi", "nx", f"{KEY}: x", f"x; {KEY}", ""]), st.text(max_size=12))


@given(st.dictionaries(_KEYS, _VALUE, max_size=6))
def test_read_key_is_never_wrong(entries):
    # Whatever the keys and values hold, the reading is the truth or "cannot tell", never a wrong value.
    found = read_key(xe_format.format_map(entries), KEY)
    assert found is None or found == entries.get(KEY, "")
    if KEY not in entries and not any(f"{KEY}:" in key + ": " + value for key, value in entries.items()):
        assert found == ""


@given(st.lists(_VALUE, max_size=6))
def test_minimal_round_trips(values):
    assume(values != [""])  # one empty value prints as nothing at all, like an empty list
    assert parse_minimal(xe_format.format_minimal(values)) == values


@given(st.sampled_from(xe_format.ERROR_DOCS), st.lists(_LINE.map(str.strip).filter(bool), min_size=3, max_size=3))
def test_errors_round_trip(doc, values):
    details = values[: len(doc.params)]
    text = xe_format.format_error(doc.code, details)
    assume(not any(pattern.search(text) for pattern, _ in xe_format._CLI_MESSAGES))
    failure = parse_error(text)
    assert (failure.code, failure.details) == (doc.code, tuple(details))


# --- what a listing vouches for ----------------------------------------------------------------------------------

_FIELDS = (("uuid", " RO"), ("name-label", " RW"), ("power-state", " RO"), ("platform", "MRW"))
_UUIDS = [f"0000000{n}-0000-4000-8000-00000000000{n}" for n in range(1, 4)]
_FAKE = "fa4e0000-0000-4000-8000-000000000000"


def listing(*vms: tuple[str, str, str, str]) -> str:
    return xe_format.format_records([list(zip((name for name, _ in _FIELDS), (kind for _, kind in _FIELDS), vm)) for vm in vms])


def injected(*lines: str) -> str:
    return "\n".join(lines)


def test_a_clean_listing_vouches_for_every_record():
    vms = [(_UUIDS[0], "web-1", "running", "acpi: 1"), (_UUIDS[1], "two\nlines", "halted", "")]
    vouched = xe_format.vouch(parse_records(listing(*vms)), _UUIDS[:2], {name for name, _ in _FIELDS})
    assert vouched.uuids == (_UUIDS[0], _UUIDS[1])
    assert vouched.records == {vm[0]: dict(zip((name for name, _ in _FIELDS), vm)) for vm in vms}


def test_a_name_that_fakes_a_whole_vm_vouches_for_neither_its_vm_nor_the_fake():
    # The fake fills its own record's fields first, so both records look complete: only the UUIDs tell.
    name = injected("t", "power-state ( RO): running", "platform (MRW): device-model-args: -x", "", "",
                    f"uuid ( RO): {_FAKE}", "name-label ( RW): ghost")
    vms = [(_UUIDS[0], name, "halted", ""), (_UUIDS[1], "victim", "running", "")]
    vouched = xe_format.vouch(parse_records(listing(*vms)), _UUIDS[:2], {name for name, _ in _FIELDS})
    assert vouched.uuids == (_UUIDS[0], _UUIDS[1])
    assert set(vouched.records) == {_UUIDS[1]}


def test_a_name_that_repeats_another_vms_uuid_vouches_for_neither():
    name = injected("t", "", "", f"uuid ( RO): {_UUIDS[1]}", "name-label ( RW): victim", "power-state ( RO): halted",
                    "platform (MRW): device-model-args: -x")
    vms = [(_UUIDS[0], name, "running", ""), (_UUIDS[1], "victim", "running", ""), (_UUIDS[2], "bystander", "halted", "")]
    vouched = xe_format.vouch(parse_records(listing(*vms)), _UUIDS, {name for name, _ in _FIELDS})
    assert vouched.uuids == tuple(_UUIDS)
    assert set(vouched.records) == {_UUIDS[2]}


_INJECTED_LINE = st.one_of(
    st.sampled_from(["", "t", "power-state ( RO): running", "platform (MRW): device-model-args: -x", "dom-id ( RO): 3",
                     "name-label ( RW): ghost", "   name-label ( RW): padded"]),
    st.sampled_from([*_UUIDS, _FAKE]).map(lambda uuid: f"uuid ( RO): {uuid}"),
    st.just("power-state ( RO): halted\nplatform (MRW): \n\n"),  # fills the record's own fields, then ends it
)
_INJECTION = st.lists(_INJECTED_LINE, max_size=8).map("\n".join)


# The last field's trailing line breaks cannot be told from the blank lines after the record: not an injection.
_LAST_VALUE = _INJECTION.filter(lambda text: not text.endswith("\n"))


@settings(max_examples=300)
@given(st.lists(st.tuples(_INJECTION, st.sampled_from(["running", "halted"]), _LAST_VALUE), min_size=1, max_size=3))
def test_whatever_names_and_maps_hold_a_vouched_record_is_the_truth(vms):
    truth = {uuid: {"uuid": uuid, "name-label": name, "power-state": state, "platform": platform}
             for uuid, (name, state, platform) in zip(_UUIDS, vms)}
    text = listing(*(tuple(fields.values()) for fields in truth.values()))
    vouched = xe_format.vouch(parse_records(text), list(truth), {name for name, _ in _FIELDS})
    assert vouched.uuids == tuple(truth)  # every VM of the host once, in the host's order, and no other
    assert all(record == truth[uuid] for uuid, record in vouched.records.items())

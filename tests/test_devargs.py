"""The managed segment of the device-model args: render, parse, merge, strip, and their list forms.

The properties are the ones the lifecycle relies on: whatever an admin wrote around our segment survives
byte for byte, setting the segment twice is the same as setting it once, and anything that is not exactly
one well-formed segment is reported as malformed rather than silently trusted or duplicated.
"""

from __future__ import annotations

import inspect
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vgpu import devargs
from vgpu.devargs import FW_CFG_NAME
from vgpu.hypervisor.libvirt_xml import join_args, split_args
from vgpu.models import POOL_IDS, Priority, VMConfig

CFG = VMConfig("A", Priority.HIGH, 7)
SEGMENT = "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7"

configs = st.builds(
    VMConfig,
    st.sampled_from(POOL_IDS),
    st.sampled_from(list(Priority)),
    st.integers(min_value=1, max_value=2**31 - 1),
)

# Pieces an admin's own arguments are made of, including near-misses of our segment.
_TOKENS = [
    " ", "  ", "\t", "\n", ";", "'", '"', ",", "=", "\\",
    "-vnc", "127.0.0.1:1", "-display", "none", "-device", "virtio-rng-pci,id=rng0",
    "-fw_cfg", "name=opt/other,string=hello", "name=opt/vgpu/configx,string=pool=A;priority=1;vm_id=3",
    "opt/vgpu/config", "string=pool=B;priority=0;vm_id=9", "-fw_cfgx", "x-fw_cfg",
    "é", "☃", "名前", "\u00a0", "\u3000", "٧",
]
admin_strings = st.lists(
    st.one_of(st.sampled_from(_TOKENS), st.text(max_size=4)), max_size=12
).map("".join)


def without_segment(text: str) -> str:
    assume(not devargs.parse(text).present)
    return text


# --- render and parse -------------------------------------------------------------------------------------


def test_render_is_the_documented_segment():
    assert devargs.render(CFG) == SEGMENT
    assert devargs.payload(CFG) == "pool=A;priority=2;vm_id=7"
    assert devargs.segment_args(CFG) == ["-fw_cfg", "name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7"]


def test_render_takes_only_the_config_so_no_name_can_reach_qemu():
    assert list(inspect.signature(devargs.render).parameters) == ["config"]
    assert list(inspect.signature(devargs.segment_args).parameters) == ["config"]
    assert set(devargs.render(CFG).replace("-fw_cfg name=opt/vgpu/config,string=", "")) <= set("pool=A;priority2vm_id7")


@given(configs)
def test_parse_reads_back_what_render_wrote(config):
    state = devargs.parse(devargs.render(config))
    assert state == devargs.SegmentState(True, config, devargs.render(config))
    assert not state.malformed


def test_parse_finds_the_segment_among_other_arguments():
    state = devargs.parse(f"-vnc 127.0.0.1:1 {SEGMENT}\t-display none")
    assert state.config == CFG
    assert state.raw == SEGMENT


@pytest.mark.parametrize("args", ["", None, "-vnc 127.0.0.1:1", "-fw_cfg name=opt/other,string=pool=A;priority=2;vm_id=7",
                                  "x-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7",
                                  "-fw_cfg name=opt/vgpu/configs,string=pool=A;priority=2;vm_id=7"])
def test_no_segment_is_absent(args):
    assert devargs.parse(args) == devargs.ABSENT
    assert not devargs.parse(args).malformed


@pytest.mark.parametrize("payload", [
    "", "pool=C;priority=2;vm_id=7", "pool=a;priority=2;vm_id=7", "pool=A;priority=3;vm_id=7",
    "pool=A;priority=2;vm_id=0", "pool=A;priority=2", "pool=A;priority=2;vm_id=7;extra=1",
    "priority=2;pool=A;vm_id=7", "pool=A;priority=2;vm_id=-7", "pool=A;priority=2;vm_id=٧", "pool=A,priority=2,vm_id=7",
])
def test_unreadable_payload_is_malformed(payload):
    state = devargs.parse(f"-vnc :1 -fw_cfg name=opt/vgpu/config,string={payload}")
    assert state.present and state.malformed
    assert state.config is None


def test_our_name_with_a_file_blob_is_ours_and_malformed():
    # QEMU refuses two fw_cfg blobs of one name, so this must be found (and replaced), not added to.
    state = devargs.parse("-fw_cfg name=opt/vgpu/config,file=/tmp/cfg")
    assert state.present and state.malformed
    assert devargs.merge("-fw_cfg name=opt/vgpu/config,file=/tmp/cfg", CFG) == SEGMENT


def test_duplicated_segment_is_malformed_even_when_both_copies_agree():
    state = devargs.parse(f"{SEGMENT} -vnc :1 {SEGMENT}")
    assert state.present and state.malformed
    assert state.raw == f"{SEGMENT} {SEGMENT}"


# --- merge and strip --------------------------------------------------------------------------------------


def test_merge_into_empty_args_is_the_segment_alone():
    assert devargs.merge("", CFG) == SEGMENT
    assert devargs.merge(None, CFG) == SEGMENT
    assert devargs.merge(SEGMENT, None) == ""


def test_merge_appends_after_the_admins_arguments():
    assert devargs.merge("-vnc 127.0.0.1:1", CFG) == f"-vnc 127.0.0.1:1 {SEGMENT}"


def test_merge_replaces_the_segment_where_it_stands():
    new = VMConfig("B", Priority.LOW, 12)
    before = f"-vnc :1 {SEGMENT}\t-display none"
    assert devargs.merge(before, new) == f"-vnc :1 {devargs.render(new)}\t-display none"


def test_merge_replaces_a_malformed_segment():
    assert devargs.merge("-vnc :1 -fw_cfg name=opt/vgpu/config,string=junk", CFG) == f"-vnc :1 {SEGMENT}"


def test_merge_collapses_duplicates_into_one_where_the_first_stands():
    merged = devargs.merge(f"{SEGMENT} -vnc :1 {SEGMENT}", VMConfig("B", Priority.MEDIUM, 3))
    assert merged == "-fw_cfg name=opt/vgpu/config,string=pool=B;priority=1;vm_id=3 -vnc :1"
    assert devargs.merge(f"{SEGMENT} -vnc :1 {SEGMENT}", None) == "-vnc :1"


@pytest.mark.parametrize("admin", ["-vnc :1", "-a\t-b", "  spaced  ", "x;y 'q' \"z\"", "é ☃"])
def test_strip_gives_back_the_admins_arguments_exactly(admin):
    assert devargs.strip(devargs.merge(admin, CFG)) == admin
    assert devargs.strip(admin) == admin


@given(admin_strings.map(without_segment), configs)
def test_merge_then_parse_gives_the_config(admin, config):
    merged = devargs.merge(admin, config)
    state = devargs.parse(merged)
    assert state.config == config
    assert not state.malformed  # so exactly one segment
    assert merged.count(FW_CFG_NAME) == admin.count(FW_CFG_NAME) + 1


@given(admin_strings.map(without_segment), configs)
def test_merge_then_remove_gives_back_the_exact_string(admin, config):
    assert devargs.merge(devargs.merge(admin, config), None) == admin
    assert devargs.strip(devargs.merge(admin, config)) == admin


@given(admin_strings.map(without_segment), configs, configs)
def test_merging_twice_is_merging_the_last_once(admin, first, second):
    assert devargs.merge(devargs.merge(admin, first), second) == devargs.merge(admin, second)


@given(admin_strings.map(without_segment), configs)
def test_merge_is_idempotent_and_removing_nothing_changes_nothing(admin, config):
    merged = devargs.merge(admin, config)
    assert devargs.merge(merged, config) == merged
    assert devargs.merge(admin, None) == admin


@given(admin_strings.map(without_segment), admin_strings.map(without_segment), configs, configs)
def test_two_copies_anywhere_are_malformed_and_merge_leaves_one(before, after, one, two):
    text = f"{before} {devargs.render(one)} {after} {devargs.render(two)}"
    state = devargs.parse(text)
    assert state.present and state.malformed
    merged = devargs.merge(text, one)
    assert devargs.parse(merged).config == one
    assert merged.count(FW_CFG_NAME) == text.count(FW_CFG_NAME) - 1


# --- the argument-vector forms (libvirt keeps QEMU arguments as a list) ----------------------------------


def test_merge_list_appends_and_parse_list_reads():
    merged = devargs.merge_list(["-vnc", ":1"], CFG)
    assert merged == ["-vnc", ":1", "-fw_cfg", "name=opt/vgpu/config,string=pool=A;priority=2;vm_id=7"]
    assert devargs.parse_list(merged).config == CFG
    assert devargs.merge_list(merged, None) == ["-vnc", ":1"]


def test_parse_list_absent_malformed_and_duplicated():
    assert devargs.parse_list([]) == devargs.ABSENT
    assert devargs.parse_list(["-fw_cfg", "name=opt/other,string=x", "-fw_cfg"]) == devargs.ABSENT
    assert devargs.parse_list(["-fw_cfg", "name=opt/vgpu/config,file=/x"]).malformed
    assert devargs.parse_list(["-fw_cfg", "name=opt/vgpu/config,string=pool=Z;priority=0;vm_id=1"]).malformed
    doubled = devargs.segment_args(CFG) + ["-vnc", ":1"] + devargs.segment_args(CFG)
    assert devargs.parse_list(doubled).malformed
    assert devargs.merge_list(doubled, CFG) == devargs.segment_args(CFG) + ["-vnc", ":1"]


list_tokens = st.lists(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=6)), max_size=8)


@given(list_tokens, configs, configs)
def test_list_forms_keep_the_admins_arguments(args, first, second):
    assume(not devargs.parse_list(args).present)
    once = devargs.merge_list(args, first)
    assert devargs.parse_list(once).config == first
    assert devargs.merge_list(once, None) == args
    assert devargs.merge_list(once, second) == devargs.merge_list(args, second)


@given(configs)
def test_string_and_list_forms_agree(config):
    assert " ".join(devargs.segment_args(config)) == devargs.render(config) == devargs.rendered_text(config)
    assert devargs.parse_list(devargs.segment_args(config)) == devargs.parse(devargs.render(config))


# --- every spelling QEMU accepts (issue 11) ---------------------------------------------------------------

P = "pool=A;priority=2;vm_id=7"


@pytest.mark.parametrize("spelling", [
    f"--fw_cfg name=opt/vgpu/config,string={P}",
    f"-fw_cfg string={P},name=opt/vgpu/config",
    f"-fw_cfg opt/vgpu/config,string={P}",
    f"--fw_cfg opt/vgpu/config,string={P}",
    f"-fw_cfg string={P},id=blob0,name=opt/vgpu/config",
    f"-fw_cfg name=opt/vgpu/config,string={P},",
    f"-fw_cfg\t\tname=opt/vgpu/config,string={P}",
])
def test_every_spelling_qemu_accepts_is_read_and_replaced_in_place(spelling):
    assert devargs.parse(f"-vnc :1 {spelling} -display none").config == CFG
    new = VMConfig("B", Priority.LOW, 12)
    assert devargs.merge(f"-vnc :1 {spelling} -display none", new) == f"-vnc :1 {devargs.render(new)} -display none"
    assert devargs.strip(f"-vnc :1 {spelling} -display none") == "-vnc :1 -display none"
    argv = ["-vnc", ":1", *spelling.split(None, 1), "-display", "none"]
    assert devargs.parse_list(argv).config == CFG
    assert devargs.merge_list(argv, new) == ["-vnc", ":1", *devargs.segment_args(new), "-display", "none"]


@pytest.mark.parametrize("args", [
    f"-fw_cfg name=opt/vgpu/config,,x,string={P}",  # ,, is a comma: the name is "opt/vgpu/config,x"
    f"-fw-cfg name=opt/vgpu/config,string={P}",  # QEMU has no -fw-cfg
    f"---fw_cfg name=opt/vgpu/config,string={P}",
    f"-fw_cfg=name=opt/vgpu/config,string={P}",  # one argument: QEMU takes no option=value
    f"-fw_cfg string={P},name=opt/vgpu/config,name=opt/other",  # the last name counts
    f"-fw_cfg opt/vgpu/config=1,string={P}",  # a key "opt/vgpu/config", no name at all
    f"-fw_cfg\u00a0name=opt/vgpu/config,string={P}",  # not a word separator for a C launcher
])
def test_what_qemu_would_not_take_for_our_blob_is_not_ours(args):
    assert devargs.parse(args) == devargs.ABSENT
    assert devargs.merge(args, CFG) == f"{args} {SEGMENT}"


@pytest.mark.parametrize("value,reason", [
    (f"name=opt/vgpu/config,string={P},foo=1", "QEMU has no -fw_cfg parameter 'foo'"),
    (f"name=opt/vgpu/config,string={P},string={P}", "it gives string= more than once"),
    ("name=opt/vgpu/config,file=/tmp/x", "it reads the blob from a file (file=) instead of string="),
    ("name=opt/vgpu/config", "it has no string="),
    ("name=opt/vgpu/config,nostring", "its string 'off' is not pool=A|B;priority=0|1|2;vm_id=N"),
    ("name=opt/vgpu/config,string=pool=C;priority=2;vm_id=7", "its pool 'C' is not A or B"),
    ("name=opt/vgpu/config,string=pool=A;priority=9;vm_id=7", "its priority '9' is not 0, 1 or 2"),
    ("name=opt/vgpu/config,string=pool=A;priority=2;vm_id=07", "its vm_id '07' is not a whole number written without leading zeros"),
    ("name=opt/vgpu/config,string=pool=A;priority=2;vm_id=2147483648", "its vm_id 2147483648 is outside 1 to 2147483647"),
])
def test_an_unreadable_blob_of_ours_says_why(value, reason):
    state = devargs.parse(f"-vnc :1 -fw_cfg {value}")
    assert state.malformed and state.reason == reason
    assert devargs.merge(f"-vnc :1 -fw_cfg {value}", CFG) == f"-vnc :1 {SEGMENT}"


def test_a_vm_id_of_thousands_of_digits_is_out_of_range_not_a_crash():
    # int() refuses strings of more than 4300 digits: one VM's args must not take the whole scan down.
    huge = "9" * 5000
    state = devargs.parse(f"-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id={huge}")
    assert state.malformed and state.reason == "its vm_id of 5000 digits is outside 1 to 2147483647"
    assert devargs.parse_list(["-fw_cfg", f"name=opt/vgpu/config,string=pool=A;priority=2;vm_id={huge}"]).malformed


def test_two_blobs_in_different_spellings_are_one_drift_and_one_repair():
    text = f"--fw_cfg opt/vgpu/config,string={P} -vnc :1 -fw_cfg string=pool=B;priority=0;vm_id=3,name=opt/vgpu/config"
    state = devargs.parse(text)
    assert state.malformed and state.reason == "it holds 2 vgpu blobs, and QEMU starts with one only"
    merged = devargs.merge(text, CFG)
    assert merged == f"{SEGMENT} -vnc :1"
    assert devargs.parse(merged).config == CFG


def test_render_refuses_a_configuration_that_is_not_one():
    # The one door to QEMU's arguments: text from anywhere else (a crafted journal row) never gets through.
    for bad in (VMConfig("A -device evil", Priority.HIGH, 7), VMConfig("A", 2, 7), VMConfig("A", Priority.HIGH, "7 -x"),
                VMConfig("A", Priority.HIGH, 0), VMConfig("A", Priority.HIGH, 2**31)):
        with pytest.raises(ValueError):
            devargs.render(bad)


# The property: whatever surrounds the blob, in the string, argument-vector and libvirt-quoted forms, and
# whichever spelling the blob has, parse reads it and merge replaces it leaving the rest byte for byte.

_OTHER_WORDS = st.one_of(
    st.sampled_from(["-vnc", "127.0.0.1:1", "-display", "none", "name=opt/vgpu/config,string=" + P, "opt/vgpu/config",
                     "-fw_cfg", "--fw_cfg", "-fw_cfgx", "name=opt/other,string=x", "é", "'q'", '"z"', "a\\b", ";", ","]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\n\r\f\v"), min_size=1, max_size=8),
)
_SEPARATOR = st.text(alphabet=" \t\n\r\f\v", min_size=1, max_size=3)


@st.composite
def spellings(draw, config):
    params = [f"name={FW_CFG_NAME}", f"string={devargs.payload(config)}"]
    if draw(st.booleans()):
        params.append("id=" + draw(st.sampled_from(["b0", "vgpu", "x,,y"])))
    params = draw(st.permutations(params))
    if params[0] == f"name={FW_CFG_NAME}" and draw(st.booleans()):
        params[0] = FW_CFG_NAME  # QEMU's implied key
    value = ",".join(params) + draw(st.sampled_from(["", ","]))
    return draw(st.sampled_from(sorted(devargs._SPELLINGS))), value


@st.composite
def surroundings(draw):
    before = draw(st.lists(_OTHER_WORDS, max_size=5))
    after = draw(st.lists(_OTHER_WORDS, max_size=5))
    assume(not devargs.parse_list(before + after).present and not devargs.parse_list(before).present
           and not devargs.parse_list(after).present)
    return before, after


def _joined(words, separators):
    return "".join(word + separator for word, separator in zip(words, separators))[: -len(separators[-1])] if words else ""


@given(st.data(), configs, configs)
def test_any_spelling_among_any_words_is_replaced_and_the_rest_kept_byte_for_byte(data, config, new):
    option, value = data.draw(spellings(config))
    before, after = data.draw(surroundings())
    seps = data.draw(st.lists(_SEPARATOR, min_size=len(before) + len(after) + 3, max_size=len(before) + len(after) + 3))
    head = _joined(before, seps[:len(before)] or [" "])
    tail = _joined(after, seps[len(before):len(before) + len(after)] or [" "])
    s1, middle, s2 = seps[-3], seps[-2], seps[-1]
    blob = option + middle + value
    text = (head + s1 if head else "") + blob + (s2 + tail if tail else "")
    assert devargs.parse(text).config == config
    assert devargs.merge(text, new) == (head + s1 if head else "") + devargs.render(new) + (s2 + tail if tail else "")
    assert devargs.strip(text) == (head + s1[:-1] + (s2 + tail if tail else "") if head else (s2[1:] + tail if tail else ""))
    # the argument vector, as libvirt keeps it, and libvirt's quoted string of it
    argv = before + [option, value] + after
    assert devargs.parse_list(argv).config == config
    assert devargs.merge_list(argv, new) == before + devargs.segment_args(new) + after
    assert devargs.merge_list(argv, None) == before + after
    quoted = join_args(argv)
    assert devargs.parse(quoted, quoted=True).config == config
    assert split_args(devargs.merge(quoted, new, quoted=True)) == before + devargs.segment_args(new) + after
    assert split_args(devargs.merge(quoted, None, quoted=True)) == before + after


@given(st.lists(st.one_of(_OTHER_WORDS, st.text(max_size=6)), max_size=8), configs)
def test_libvirt_words_holding_spaces_never_look_like_a_blob(argv, config):
    # An argument holding spaces (quoted in libvirt's string) is one argument to QEMU, whatever it says.
    hidden = argv + ["x -fw_cfg name=opt/vgpu/config,string=" + P]
    assume(not devargs.parse_list(hidden).present)
    quoted = join_args(hidden)
    assert devargs.parse(quoted, quoted=True) == devargs.ABSENT
    assert split_args(devargs.merge(quoted, config, quoted=True)) == hidden + devargs.segment_args(config)


@given(admin_strings, configs, admin_strings, st.booleans())
def test_the_fast_path_for_the_usual_segment_reads_as_the_full_parse_does(before, config, after, quoted):
    # parse() reads the segment render() writes without splitting the words; parse_list() always splits.
    text = f"{before} {devargs.render(config)} {after}"
    words = [word for word in re.split(r"[ \t\n\r\f\v]+", text) if word]
    fast, full = devargs.parse(text), devargs.parse_list(words)
    assert (fast.present, fast.config, fast.reason) == (full.present, full.config, full.reason)
    if quoted and not any(char in text for char in "'\"\\"):
        assert devargs.parse(text, quoted=True) == fast

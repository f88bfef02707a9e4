"""The managed segment of the device-model args: render, parse, merge, strip, and their list forms.

The properties are the ones the lifecycle relies on: whatever an admin wrote around our segment survives
byte for byte, setting the segment twice is the same as setting it once, and anything that is not exactly
one well-formed segment is reported as malformed rather than silently trusted or duplicated.
"""

from __future__ import annotations

import inspect

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vgpu import devargs
from vgpu.devargs import FW_CFG_NAME
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


def test_merge_collapses_duplicates_into_one():
    merged = devargs.merge(f"{SEGMENT} -vnc :1 {SEGMENT}", VMConfig("B", Priority.MEDIUM, 3))
    assert merged == "-vnc :1 -fw_cfg name=opt/vgpu/config,string=pool=B;priority=1;vm_id=3"
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
    assert devargs.merge_list(doubled, CFG) == ["-vnc", ":1"] + devargs.segment_args(CFG)


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
    assert " ".join(devargs.segment_args(config)) == devargs.render(config)
    assert devargs.parse_list(devargs.segment_args(config)) == devargs.parse(devargs.render(config))

"""The pure completion engine, on plain strings and hand-built name snapshots (no prompt_toolkit)."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from shell import commands
from shell.completion_engine import MAX_SUGGESTIONS, VALUE_COMPLETERS, suggest
from shell.names import NameCache
from shell.parsing import words_as_typed

from .namekit import CACHE, U1, U2, U3, U4, U5, make_cache

def texts(line: str, cache: NameCache = CACHE) -> list[str]:
    return [s.text for s in suggest(line, cache)]


# --- commands and options -----------------------------------------------------------------------------------


def test_empty_line_offers_every_command_of_the_shell_with_its_summary():
    found = suggest("", CACHE)
    assert [s.text for s in found] == [c.name for c in commands.COMMANDS if c.name != "shell"]  # not the shell's own
    assert found[0].meta == commands.COMMANDS[0].summary and found[0].start == 0


def test_an_alias_is_completed_once_typed_and_says_what_it_is():
    found = suggest("edit", CACHE)
    assert [(s.text, s.meta) for s in found] == [("edit-pool-name", "Rename a pool (no VM restart); same as set-pool-name")]
    assert texts("qu") == ["quit"]
    assert texts("help edit") == ["edit-pool-name"]


def test_command_prefix_replaces_the_typed_part():
    found = suggest("set-p", CACHE)
    assert [s.text for s in found] == ["set-pool-name", "set-pool", "set-priority"]
    assert {s.start for s in found} == {-5}


def test_command_prefix_is_case_insensitive():
    assert texts("SHOW") == ["show-pool", "show-vm"]


def test_a_line_with_vgpu_admin_in_front_is_completed_as_it_runs_without_it():
    for program in ("vgpu-admin", "/usr/local/bin/vgpu-admin"):
        found = suggest(f"{program} list-v", CACHE)
        assert [(s.text, s.start) for s in found] == [("list-vms", -6)]
        assert texts(f"{program} set-pool --vm-uuid=2222") == [U2]
        assert texts(f"{program} set-pool --vm-uuid={U2} ") == ["--pool=", "--clean-timeout="]


def test_unknown_command_offers_nothing():
    assert texts("frobnicate ") == []


def test_options_not_yet_used_with_equals_for_valued_ones():
    assert texts("set-pool ") == ["--vm-uuid=", "--pool=", "--clean-timeout="]
    assert texts(f"set-pool --vm-uuid={U1} ") == ["--pool=", "--clean-timeout="]
    assert texts(f"set-pool --vm-uuid {U1} ") == ["--pool=", "--clean-timeout="]


def test_option_prefix_and_flags():
    assert texts("register-vm --p") == ["--pool=", "--priority="]
    assert texts("demo ") == ["--reset"]
    found = suggest("list-vms --po", CACHE)
    assert found[0].start == -4 and found[0].meta == "only this pool"


def test_unknown_option_value_offers_nothing():
    assert texts("set-pool --nope=") == []


# --- values by kind -----------------------------------------------------------------------------------------


def test_pool_values_show_name_and_vm_count():
    found = suggest("set-pool --pool=", CACHE)
    assert [(s.text, s.meta) for s in found] == [("A", "Production · 2 VMs"), ("B", "Pool B · 1 VMs")]
    assert texts("set-pool --pool=b") == ["B"]
    assert texts("set-pool --pool b") == ["B"]


def test_pool_found_by_a_fragment_of_its_name():
    assert texts("show-pool --pool-id=produ") == ["A"]


def test_priorities_with_their_meaning():
    found = suggest("set-priority --priority=", CACHE)
    assert [(s.text, s.meta) for s in found] == [("low", "0 = lowest"), ("medium", "1"), ("high", "2 = highest")]
    assert texts("set-priority --priority=H") == ["high"]
    assert texts("set-priority --priority 0") == ["low"]


def test_formats():
    assert texts("status --format=") == ["text", "json"]
    assert texts("status --format j") == ["json"]


def test_help_completes_command_names_once():
    assert texts("help sc") == ["scan-vms"]
    assert "set-pool" in texts("help ")
    assert texts("help set-pool ") == []


def test_registered_uuid_kind_offers_registered_vms_only():
    found = suggest("show-vm --vm-uuid=", CACHE)
    assert [s.text for s in found] == [U1, U2, U3]
    assert [s.meta for s in found] == ["web-1 · Pool A", "db-main · Pool B", "old-web · Pool A, not on the host"]
    assert all(s.display == s.text for s in found)


def test_host_uuid_kind_offers_unregistered_first_and_not_missing_ones():
    found = suggest("register-vm --vm-uuid=", CACHE)
    assert [s.text for s in found] == [U4, U5, U1, U2]
    assert found[0].meta == "New VM · unregistered"


def test_any_uuid_kind_offers_both():
    assert texts("repair-vm --vm-uuid=") == [U1, U2, U3, U4, U5]


def test_uuid_prefix_any_case():
    found = suggest("show-vm --vm-uuid=2222", CACHE)
    assert [s.text for s in found] == [U2] and found[0].start == -4
    assert texts("show-vm --vm-uuid=BBBB") == [U2]  # a fragment, in upper case


def test_typing_a_vm_name_completes_to_its_uuid():
    found = suggest("set-pool --vm-uuid=DB-m", CACHE)
    assert [(s.text, s.start) for s in found] == [(U2, -4)]


def test_prefix_matches_rank_before_fragment_matches():
    # "web" starts web-1's name and only appears inside old-web's.
    assert texts("show-vm --vm-uuid=web") == [U1, U3]
    assert texts("show-vm --vm-uuid web") == [U1, U3]


def test_vm_name_kind_offers_unregistered_host_names_quoted():
    found = suggest("register-vm --vm-name=", CACHE)
    assert [(s.text, s.display, s.meta) for s in found] == [("'New VM'", "New VM", U4), ("spare", "spare", U5)]
    assert texts("register-vm --vm-name=sp") == ["spare"]


# Host names register-vm refuses as --vm-name (the tester's: a line break, a tab, an escape sequence, too long).
U6, U7 = "66666666-ffff-4fff-8fff-000000000006", "77777777-0000-4000-8000-000000000007"
HOSTILE = make_cache(registered=[(U1, "web\x1b[2Jx", "A")],
                     unregistered=[(U2, "two\nlines"), (U3, " tab\there "), (U4, "evil\x1b[2Jx"), (U5, "x" * 256),
                                   (U6, " padded "), (U7, "two words")])


def test_vm_name_kind_offers_only_the_names_register_vm_accepts():
    # a name with a line break was inserted as it is: Enter then ran a line register-vm refused, and the
    # history kept it as two lines
    from vgpu import errors, values

    offered = suggest("register-vm --vm-name=", HOSTILE)
    assert [(s.text, s.meta) for s in offered] == [("' padded '", U6), ("'two words'", U7)]
    assert texts("register-vm --vm-name=two", HOSTILE) == ["'two words'"]
    for vm in HOSTILE.unregistered:
        accepted = True
        try:
            values.parse_vm_name(vm.name)
        except errors.InvalidValue:
            accepted = False
        assert accepted == (vm.uuid in (U6, U7))


def test_a_name_that_does_not_print_is_escaped_beside_its_uuid():
    # a raw escape sequence or line break in the menu moved its columns and cut off the UUID's last character
    menus = suggest("register-vm --vm-uuid=", HOSTILE) + suggest("show-vm --vm-uuid=", HOSTILE)
    assert all((s.display + s.meta).isprintable() for s in menus)
    by_uuid = {s.text: s.meta for s in menus}
    assert by_uuid[U2] == '"two\\nlines" · unregistered' and by_uuid[U4] == '"evil\\x1b[2Jx" · unregistered'
    assert by_uuid[U1] == '"web\\x1b[2Jx" · Pool A'
    assert texts("show-vm --vm-uuid=web", HOSTILE) == [U1]  # still found by what its name holds


# A VM name with spaces and a renamed pool, typed inside quotes or with escaped spaces (as the line is run).
SPACED = make_cache(registered=[(U1, "web-1", "A")], unregistered=[(U4, "web server 1")],
                    pool_names={"A": "Production Pool"})


def test_a_vm_name_is_completed_inside_an_open_quote_or_after_an_escaped_space():
    for typed in ("web", "'web", "'web s", '"web s', "web\\ s"):
        found = suggest(f"register-vm --vm-name={typed}", SPACED)
        assert [(s.text, s.start) for s in found] == [("'web server 1'", -len(typed))], typed


def test_a_vm_uuid_is_found_by_a_quoted_name_with_a_space():
    for typed in ("'web s", '"web server', "web\\ server\\ 1"):
        found = suggest(f"register-vm --vm-uuid={typed}", SPACED)
        assert [(s.text, s.start) for s in found] == [(U4, -len(typed))], typed
    assert [s.text for s in suggest("register-vm --vm-uuid 'web s", SPACED)] == [U4]  # the value as its own word


def test_a_pool_is_found_by_a_quoted_part_of_its_name():
    for typed in ("Prod", "'Production", '"Prod', "'Production P", "Production\\ P"):
        found = suggest(f"set-pool --pool={typed}", SPACED)
        assert [(s.text, s.start) for s in found] == [("A", -len(typed))], typed


def test_words_before_an_open_quote_are_read_as_the_line_will_be():
    # The option before the value is a finished word even though a quote is open after it.
    assert texts("set-pool --vm-uuid='web-1' --pool='Prod", SPACED) == ["A"]
    assert texts("set-pool --vm-uuid='web-1' ", SPACED) == ["--pool=", "--clean-timeout="]


def test_at_most_a_menu_of_suggestions():
    many = make_cache(registered=[(f"{i:08x}-0000-4000-8000-000000000000", f"vm-{i}", "A") for i in range(500)])
    assert len(suggest("show-vm --vm-uuid=", many)) == MAX_SUGGESTIONS
    assert len(suggest("show-vm --vm-uuid=vm-", many)) == MAX_SUGGESTIONS
    assert len(suggest("show-vm --vm-uuid=vm-1", many)) == 111  # vm-1, vm-10..vm-19, vm-100..vm-199




def test_before_the_first_build_nothing_is_offered_for_names():
    assert texts("show-vm --vm-uuid=", NameCache()) == []
    assert texts("set-pool --pool=", NameCache()) == []


def test_every_completed_kind_has_a_completer():
    assert set(commands.COMPLETED_KINDS) <= set(VALUE_COMPLETERS)


# --- properties ---------------------------------------------------------------------------------------------

_WORDS = [c.name for c in commands.COMMANDS] + [
    o.flag + suffix for c in commands.COMMANDS for o in c.options for suffix in ("", "=")
] + [U1[:6], "web", "New", "'", '"', "\\", "=", "--", "A", "high"]
lines = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(_WORDS) | st.text(max_size=8), max_size=6).map(" ".join),
    st.tuples(st.lists(st.sampled_from(_WORDS), max_size=4).map(" ".join), st.sampled_from(["", " "]), st.text(max_size=6)).map("".join),
)


def _fragment(line: str) -> tuple[str, str]:
    """What the user is typing, (as typed, as it will be read): the last word, or the value part of a
    --name=value word; empty after a blank."""
    words = list(words_as_typed(line))
    if not words or words[-1][0] + len(words[-1][2]) != len(line):
        return "", ""
    _, said, raw = words[-1]
    if said.startswith("--") and "=" in said:
        return raw.partition("=")[2], said.partition("=")[2]
    return raw, said


@given(lines)
def test_never_raises_and_replaces_only_what_was_typed(line):
    raw, _ = _fragment(line)
    for item in suggest(line, CACHE):
        assert line[len(line) + item.start:] == raw


@given(lines)
def test_every_suggestion_carries_the_typed_fragment(line):
    typed = _fragment(line)[1].lower()
    for item in suggest(line, CACHE):
        assert typed in f"{item.text}\n{item.display}\n{item.meta}".lower()


@given(lines)
def test_a_line_is_read_into_the_words_it_will_run_as(line):
    try:
        expected = shlex.split(line)
    except ValueError:  # an open quote or a lone backslash at the end: the line is still being typed
        return
    assert [said for _, said, _ in words_as_typed(line)] == expected

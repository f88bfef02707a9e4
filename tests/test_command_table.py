"""Walk the command table (as virsh's self-test walks vshCmdDef): every command is complete, every named
value has a completer that answers, and docs/commands.md is what the table generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from shell import commands, docs, handlers, helptext
from shell.completion_engine import VALUE_COMPLETERS, suggest
from vgpu.store import Store

from .clikit import SpecHost

REPO = Path(__file__).resolve().parent.parent
NAMED_KINDS = (
    commands.VM_UUID, commands.HOST_VM_UUID, commands.ANY_VM_UUID, commands.POOL, commands.PRIORITY,
    commands.FORMAT, commands.COMMAND, commands.VM_NAME, commands.FORGETTABLE_HOST,
)
KNOWN_KINDS = NAMED_KINDS + (commands.VM_ID, commands.TEXT, commands.NUMBER, commands.SECONDS, commands.FLAG)
ALL_OPTIONS = [
    (command, option)
    for command in commands.COMMANDS
    for option in ([command.positional] if command.positional else []) + list(command.options)
]


@pytest.fixture(scope="module")
def spec_names(tmp_path_factory):
    from shell import names

    from vgpu import locations

    spec = SpecHost(tmp_path_factory.mktemp("spec"))
    with Store(spec.db) as store:
        with store.writing() as conn:  # VM-1 last seen on a host no longer configured: forget-host completes it
            locations.record(conn, [(spec.uuid("VM-1"), "retired", None)])
        return names.build(store, spec.sim)


@pytest.mark.parametrize("command", commands.COMMANDS, ids=lambda c: c.name)
def test_every_command_is_complete(command):
    assert command.summary and not command.summary.endswith(".")
    assert callable(getattr(handlers, command.handler, None)), f"shell.handlers.{command.handler} is missing"
    text = helptext.help_text(command.name)
    program = "vgpu>" if command.repl_only else "vgpu-admin"
    assert text.startswith(f"Usage: {program} {command.usage}") and command.summary in text
    assert f"## {command.name}" in docs.render()


@pytest.mark.parametrize("name", ["refresh", "exit", "quit"])
def test_help_for_a_shell_only_command_says_it_runs_only_at_the_prompt(name):
    # Asked on the command line (vgpu-admin help refresh), where the command itself is refused.
    lines = helptext.help_text(name).splitlines()
    assert lines[0] == f"Usage: vgpu> {commands.lookup(name).usage}"
    assert "Only at the vgpu> prompt (vgpu-admin with no command); on the command line it is refused." in lines


def test_help_for_the_shell_command_says_it_runs_only_on_the_command_line():
    assert "Only on the command line: at the vgpu> prompt you are in the shell already." in helptext.help_text("shell")


def test_help_for_recover_says_a_shutdown_cut_short_is_seen_through_and_the_vm_started_again():
    # vgpu.recovery._undo: a change stopped at step "stopping", whose VM still runs and whose host cannot say
    # whether the shutdown is still coming (libvirt), is not left running: recover waits for the shutdown,
    # may force it off, and starts it again. The help must not promise "not restarted" for that VM.
    text = " ".join(helptext.help_text("recover").split())
    assert "shutdown" in text and "sees it through" in text, text
    assert "up to clean_timeout" in text and "forcing it off" in text and "starts it again" in text, text


def test_help_never_breaks_a_flag_across_lines():
    # textwrap breaks on hyphens by default: "...runs past --clean-" / "timeout, ..." in help set-pool.
    lines = helptext.help_text("set-pool").splitlines()
    assert any("--clean-timeout," in line for line in lines[3:]), lines
    assert not any(line.endswith("-") for line in lines), lines


@pytest.mark.parametrize("command", commands.COMMANDS, ids=lambda command: command.name)
def test_help_wraps_the_details_between_words_only(command):
    # Every word of the details whole on one line: none split at a hyphen, none cut for being long.
    text = helptext.help_text(command.name)
    if command.details:
        assert set(command.details.split()) <= set(text.split()), command.name


def test_a_word_longer_than_the_help_width_is_not_cut():
    long_word = "--" + "x" * (helptext.WIDTH + 10)
    assert helptext.wrapped(f"see {long_word} here") == ["see", long_word, "here"]


@pytest.mark.parametrize(("command", "option"), ALL_OPTIONS, ids=lambda x: getattr(x, "name", ""))
def test_every_option_has_help_and_a_known_kind(command, option):
    assert option.help, f"{command.name} {option.flag} has no help"
    assert option.kind in KNOWN_KINDS


@pytest.mark.parametrize("command", [c for c in commands.COMMANDS if c.one_of], ids=lambda c: c.name)
def test_one_of_names_optional_options_of_the_command(command):
    assert all(command.option(name) is not None and not command.option(name).required for name in command.one_of)
    assert commands.lookup("update-vm").one_of == ("pool", "priority", "vm-id")


def test_every_named_kind_is_completed():
    assert set(NAMED_KINDS) == set(commands.COMPLETED_KINDS)
    assert set(commands.COMPLETED_KINDS) <= set(VALUE_COMPLETERS)


@pytest.mark.parametrize(
    ("command", "option"),
    [(c, o) for c, o in ALL_OPTIONS if o.kind in commands.COMPLETED_KINDS],
    ids=lambda x: getattr(x, "name", ""),
)
def test_every_named_value_gets_suggestions(command, option, spec_names):
    line = f"{command.name} " if option is command.positional else f"{command.name} {option.flag}="
    assert suggest(line, spec_names), f"nothing to complete after {line!r}"


@pytest.mark.parametrize("command", commands.COMMANDS, ids=lambda c: c.name)
def test_every_option_is_offered_after_its_command(command, spec_names):
    offered = {s.display for s in suggest(f"{command.name} ", spec_names)}
    assert {option.flag for option in command.options} <= offered


def test_docs_match_the_command_table():
    written = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")
    assert written == docs.render(), f"docs/commands.md is out of date; regenerate it with: {docs.REGENERATE}"


def test_docs_say_they_are_generated():
    assert docs.render().startswith("<!-- Generated from shell/commands.py")
    assert docs.REGENERATE in docs.render().splitlines()[0]

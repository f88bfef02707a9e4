"""``help`` and ``help CMD``, generated from the command table."""

from __future__ import annotations

import textwrap

from .commands import COMMANDS, Command, lookup
from .errors import UsageError
from .parsing import help_command

WIDTH = 100


def overview(*, in_repl: bool = False) -> str:
    width = max(len(command.name) for command in COMMANDS)
    lines = [f"Commands (run '{help_command(in_repl)} COMMAND' for its options):", ""]
    lines += [f"  {command.name.ljust(width)}  {command.summary}" for command in COMMANDS]
    lines += [
        "",
        "Priorities: low (0), medium (1), high (2): 0 is the LOWEST priority.",
        "Global options: --db=PATH, --host=URI (sim:PATH, sim:demo, xe:, xapi://USER@HOST, qemu:///system).",
    ]
    return "\n".join(lines)


def command_help(command: Command) -> str:
    lines = [f"Usage: vgpu-admin {command.usage}", "", command.summary + "."]
    if command.details:
        lines += [""] + textwrap.wrap(command.details, WIDTH)
    options = ([command.positional] if command.positional else []) + list(command.options)
    if options:
        lines += ["", "Options:"]
        width = max(len(_option_label(opt)) for opt in options)
        lines += [f"  {_option_label(opt).ljust(width)}  {opt.help}{' (required)' if opt.required else ''}" for opt in options]
    if command.examples:
        lines += ["", "Examples:"] + [f"  {example}" for example in command.examples]
    return "\n".join(lines)


def _option_label(option) -> str:
    if option.kind == "flag":
        return option.flag
    if option.name == "command":
        return option.placeholder
    return f"{option.flag}={option.placeholder}"


def help_text(name: str | None, *, in_repl: bool = False) -> str:
    if not name:
        return overview(in_repl=in_repl)
    command = lookup(name)
    if command is None:
        raise UsageError(f"no command called {name!r}; run '{help_command(in_repl)}' for the list")
    return command_help(command)

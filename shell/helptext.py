"""``help`` and ``help CMD``, generated from the command table."""

from __future__ import annotations

import textwrap

from .commands import Command, lookup, offered
from .errors import UsageError
from .parsing import help_command, shown

WIDTH = 100


GLOBAL_OPTIONS = ("Global options: --db=PATH, --host=LABEL (of config.toml's [hosts]) or --host=LABEL=URI, repeated "
                  "for several hosts, or one --host=URI alone (sim:PATH, sim:demo, xe:, xapi://USER@HOST, qemu:///system); "
                  "--keep-going: commands read from standard input (vgpu-admin < FILE) run on after one fails.")
IN_THE_SHELL = ("The database and host were chosen when this shell started (see the bar at the bottom); to use "
                "others, leave (exit) and start vgpu-admin again naming them.")
# Lines from a pipe or a file have no toolbar and no shell to leave: say where the database and host came from.
FROM_A_SCRIPT = ("The database and host are the ones vgpu-admin was started with (--db, --host, VGPU_DB / VGPU_HOST "
                 "or the config files); a line cannot change them.")


def overview(*, in_repl: bool = False, from_script: bool = False) -> str:
    """The commands offered where the user is: the shell's own (refresh, exit) only at the vgpu> prompt or in
    lines read from a pipe (``in_repl``; ``from_script`` for the latter), and --db/--host only on the command
    line, since the shell does not take them."""
    here = offered(in_repl)
    width = max(len(command.name) for command in here)
    lines = [f"Commands (run '{help_command(in_repl)} COMMAND' for its options):", ""]
    lines += [f"  {command.name.ljust(width)}  {command.summary}{_aliases(command)}" for command in here]
    lines += ["", "Priorities: low (0), medium (1), high (2): 0 is the LOWEST priority."]
    if in_repl:
        lines += wrapped(FROM_A_SCRIPT if from_script else IN_THE_SHELL)
    else:
        lines.append(GLOBAL_OPTIONS)
    return "\n".join(lines)


def wrapped(text: str) -> list[str]:
    """``text`` in lines of at most WIDTH, broken between words only: a flag (--clean-timeout) is never split
    at its hyphen, and a word longer than a line (a long flag, a path) stands whole on its own line, to be
    copied as it is."""
    return textwrap.wrap(text, WIDTH, break_on_hyphens=False, break_long_words=False)


def _aliases(command: Command) -> str:
    return f"; alias {', '.join(command.aliases)}" if command.aliases else ""


ONLY_AT_THE_PROMPT = "Only at the vgpu> prompt (vgpu-admin with no command); on the command line it is refused."
ONLY_ON_THE_COMMAND_LINE = "Only on the command line: at the vgpu> prompt you are in the shell already."


def command_help(command: Command) -> str:
    program = "vgpu>" if command.repl_only else "vgpu-admin"  # refresh and exit are typed at the prompt only
    lines = [f"Usage: {program} {command.usage}", "", command.summary + "."]
    if command.repl_only:
        lines.append(ONLY_AT_THE_PROMPT)
    if command.one_shot_only:
        lines.append(ONLY_ON_THE_COMMAND_LINE)
    if command.aliases:
        note = f" ({command.alias_note})" if command.alias_note else ""
        lines.append(f"Also called: {', '.join(command.aliases)}{note}.")
    if command.details:
        lines += [""] + wrapped(command.details)
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


def help_text(name: str | None, *, in_repl: bool = False, from_script: bool = False) -> str:
    if name is None:  # help '' names no command, as help ' ' does not: refused below, not the list
        return overview(in_repl=in_repl, from_script=from_script)
    command = lookup(name)
    if command is None:
        raise UsageError(f"no command called {shown(name)}; run '{help_command(in_repl)}' for the list")
    return command_help(command)

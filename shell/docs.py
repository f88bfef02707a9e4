"""docs/commands.md, generated from the command table: ``python -m shell.docs > docs/commands.md``.

A test compares the file with :func:`render`, so the reference cannot drift from what the parser accepts.
"""

from __future__ import annotations

import sys

from .commands import COMMANDS, FLAG, Command, Option

REGENERATE = "python -m shell.docs > docs/commands.md"
HEADER = f"""<!-- Generated from shell/commands.py; do not edit by hand. Regenerate with: {REGENERATE} -->

# vgpu-admin commands

Every command runs once from the command line (`vgpu-admin COMMAND [OPTIONS]`) or at the `vgpu>` prompt of
the interactive shell (`vgpu-admin` with no command), with the same options. Options take their value as
`--name=value` or `--name value`.

Global options (one-shot command line only): `--db=PATH` (or `VGPU_DB`) and `--host=URI` (or
`VGPU_HOST`): `sim:PATH`, `sim:demo`, `xe:`, `xapi://USER@HOST`, `qemu:///system`. For a fleet of hosts,
`--host` may be repeated, each as `LABEL=URI` or as a `LABEL` of config.toml's `[hosts]` (which narrows the
run to the hosts named); see [fleet](fleet.md). The shell takes them when it starts (`vgpu-admin --db=PATH
--host=URI`), and refuses them on its command lines, saying which it uses. Commands read from standard input
(`vgpu-admin < commands.txt`) stop at the first line that fails; `--keep-going` runs them all (see
[the shell](shell.md#commands-from-a-pipe-or-a-file)).

With more than one host in the run, `scan-vms`, `status` and `list-vms` end each VM's line with its host
(`| Host: LABEL`, and the XAPI pool member it runs on); commands on one VM find its host by UUID.

The commands that stop a VM (`set-pool`, `set-priority`, `set-vm-id`, `update-vm`, `recover`) wait for a clean
shutdown `--clean-timeout=SECONDS` (or `VGPU_CLEAN_TIMEOUT`, else the config's `clean_timeout`, else 120);
then, unless `force_after_timeout = false`, they force the VM off.

Priorities: low (0), medium (1), high (2): 0 is the LOWEST priority.

Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 cancelled by the user.
"""


def render() -> str:
    sections = [HEADER, _index()] + [_command(command) for command in COMMANDS]
    return "\n".join(sections)


def _index() -> str:
    rows = [f"| [`{c.name}`](#{c.name}) | {_cell(c.summary)} |" for c in COMMANDS]
    return "\n".join(["| Command | Summary |", "|---|---|", *rows, ""])


def _command(command: Command) -> str:
    program = "vgpu>" if command.repl_only else "vgpu-admin"
    lines = [f"## {command.name}", "", command.summary + ".", "", "```", f"{program} {command.usage}", "```", ""]
    if command.repl_only:
        lines += ["Only at the `vgpu>` prompt.", ""]
    if command.one_shot_only:
        lines += ["Only on the command line: at the `vgpu>` prompt you are in the shell already.", ""]
    if command.aliases:
        note = f" ({command.alias_note})" if command.alias_note else ""
        names = ", ".join(f"`{alias}`" for alias in command.aliases)
        same = ": the same command, with the same options" if command.options or command.positional else ""
        lines += [f"Also called {names}{note}{same}.", ""]
    if command.details:
        lines += [command.details, ""]
    options = ([command.positional] if command.positional else []) + list(command.options)
    if options:
        lines += ["| Option | Required | Description |", "|---|---|---|"]
        lines += [f"| `{_cell(_label(opt, opt is command.positional))}` | {'yes' if opt.required else 'no'} | {_cell(opt.help)} |" for opt in options]
        lines.append("")
    if command.examples:
        lines += ["Examples:", "", "```", *command.examples, "```", ""]
    return "\n".join(lines)


def _label(option: Option, positional: bool) -> str:
    if option.kind == FLAG:
        return option.flag
    if positional:
        return option.placeholder
    return f"{option.flag}={option.placeholder}"


def _cell(text: str) -> str:
    """Escape what would break a Markdown table cell (GitHub splits cells on | even inside code)."""
    return text.replace("|", "\\|")


def write(stream=None) -> None:
    (stream or sys.stdout).write(render())


if __name__ == "__main__":
    write()

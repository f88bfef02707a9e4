"""``vgpu-admin`` with its input from a pipe or a file (``vgpu-admin < commands.txt``): each line runs as at
the vgpu> prompt, with no prompt, no completion and no terminal codes (prompt_toolkit needs a terminal).

A question a command asks takes its answer from the next line, as a one-shot command reading a pipe does.
Every line runs even after one fails; the exit code is that of the first line that failed (0 when none
did), so a script can tell that something went wrong.
"""

from __future__ import annotations

from typing import TextIO

from . import parsing, runner
from .commands import lookup
from .context import Context
from .errors import UsageError


def run_lines(ctx: Context, source: TextIO) -> int:
    saved = ctx.in_repl
    ctx.in_repl = True  # shell lines: 'help', not 'vgpu-admin help'; refresh and exit are commands here
    first_failure = runner.OK
    try:
        while (line := source.readline()):  # readline, not iteration: the console reads answers from it too
            code = _run_line(ctx, line)
            if code is None:
                break
            first_failure = first_failure or code
    finally:
        ctx.in_repl = saved
    return first_failure


def _run_line(ctx: Context, line: str) -> int | None:
    """The line's exit code; None when it asks to leave."""
    try:
        words = parsing.shell_line(parsing.split_line(line), ctx.settings.db, ctx.settings.host)
    except UsageError as error:
        return runner.report(ctx, error)
    if not words or words[0].startswith("#"):  # blank lines and comments, as in a shell script
        return runner.OK
    command = lookup(words[0])
    if command is not None and command.name == "exit":
        return None
    return runner.run_words(ctx, words)

"""``vgpu-admin`` with its input from a pipe or a file (``vgpu-admin < commands.txt``): each line runs as at
the vgpu> prompt, with no prompt, no completion and no terminal codes (prompt_toolkit needs a terminal).

A question a command asks takes its answer from the next line, as a one-shot command reading a pipe does.
Every line runs even after one fails; the exit code is that of the first line that failed (0 when none
did), so a script can tell that something went wrong.
"""

from __future__ import annotations

from typing import TextIO

from . import runner
from .context import Context


def run_lines(ctx: Context, source: TextIO) -> int:
    saved = ctx.in_repl
    ctx.in_repl = True  # shell lines: 'help', not 'vgpu-admin help'; refresh and exit are commands here
    first_failure = runner.OK
    try:
        while (line := source.readline()):  # readline, not iteration: the console reads answers from it too
            code = runner.run_line(ctx, line)
            if code is None:
                break
            first_failure = first_failure or code
    finally:
        ctx.in_repl = saved
    return first_failure

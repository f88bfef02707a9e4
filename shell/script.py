"""``vgpu-admin`` with its input from a pipe or a file (``vgpu-admin < commands.txt``): each line runs as at
the vgpu> prompt, with no prompt, no completion and no terminal codes (prompt_toolkit needs a terminal), and
no line is echoed: the output is the commands' own, as ``sqlite3`` and ``psql`` give for a script.

A question a command asks takes its answer from the next line, as a one-shot command reading a pipe does.
The lines stop at the first that fails (exit code 1 or 2): its exit code is the script's, and one line on
stderr says where it stopped. An answer of no (exit code 3, cancelled) is a choice, not a failure: the next
line runs. An answer that is neither yes nor no is a no too (exit code 3), read from its own line only, but
the lines stop there: what the script meant is unknown. With ``vgpu-admin --keep-going`` every line runs.
Either way the exit code is that of the first line that failed; when none did, 3 if a change was
cancelled, else 0. Ctrl-C stops the lines either way.
"""

from __future__ import annotations

from typing import TextIO

from . import runner
from .console import stdin_reader
from .context import Context

# Exit codes after which the lines stop (unless --keep-going): a command that failed or was refused.
STOPS = (runner.FAILED, runner.BAD_INPUT)


class _ExitCode:
    """The script's exit code: a failure outranks a cancellation, wherever it comes (a no was a choice, and
    must not hide a line that failed)."""

    def __init__(self) -> None:
        self.first_failure = runner.OK
        self.cancelled = False

    def add(self, code: int) -> None:
        if code == runner.CANCELLED:
            self.cancelled = True
        elif not self.first_failure:
            self.first_failure = code

    @property
    def code(self) -> int:
        return self.first_failure or (runner.CANCELLED if self.cancelled else runner.OK)


class _NumberedLines:
    """The script's lines, counted as they are read, by the commands and by the answers to their questions
    alike: "Stopped at line N" is the line an editor shows as N."""

    def __init__(self, source: TextIO) -> None:
        self.source = source
        self.number = 0

    def readline(self) -> str:
        line = self.source.readline()
        self.number += bool(line)
        return line

    def isatty(self) -> bool:
        return self.source.isatty()


def run_lines(ctx: Context, source: TextIO, *, keep_going: bool = False) -> int:
    saved = ctx.in_repl, ctx.console.read_line
    ctx.in_repl = True  # shell lines: 'help', not 'vgpu-admin help'; refresh and exit are commands here
    lines = _NumberedLines(source)
    ctx.console.read_line = stdin_reader(ctx.console.out, lines)
    exit_code = _ExitCode()
    try:
        while (line := lines.readline()):  # readline, not iteration: the console reads answers from it too
            number = lines.number
            interrupts, unclear_answers = ctx.interrupts, ctx.console.unclear_answers
            code = runner.run_line(ctx, line)
            if code is None:
                break
            exit_code.add(code)
            if ctx.interrupts > interrupts:
                ctx.console.error(f"Stopped at line {number}, interrupted; the lines after it were not run.")
                break
            if ctx.console.unclear_answers > unclear_answers and not keep_going:
                # A cancellation, but not the script's author's choice: what was meant is unknown.
                ctx.console.error(f"Stopped at line {lines.number}, an answer that was neither yes nor no; the lines "
                                  "after it were not run (vgpu-admin --keep-going runs them all).")
                break
            if code in STOPS and not keep_going:
                ctx.console.error(f"Stopped at line {number}, which failed; the lines after it were not run "
                                  "(vgpu-admin --keep-going runs them all).")
                break
    finally:
        ctx.in_repl, ctx.console.read_line = saved
    return exit_code.code

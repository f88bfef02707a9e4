"""``vgpu-admin`` with its input from a pipe or a file (``vgpu-admin < commands.txt``): each line runs as at
the vgpu> prompt, with no prompt, no completion and no terminal codes (prompt_toolkit needs a terminal), and
no line is echoed: the output is the commands' own, as ``sqlite3`` and ``psql`` give for a script.

A question a command asks takes its answer from the next line, as a one-shot command reading a pipe does.
The lines stop at the first that fails (exit code 1 or 2): its exit code is the script's, and one line on
stderr says where it stopped. An answer of no (exit code 3, cancelled) is a choice, not a failure: the next
line runs. An answer that is neither yes nor no is a no too (exit code 3), read from its own line only, but
the lines stop there: what the script meant is unknown. With ``vgpu-admin --keep-going`` every line runs, and
the same line on stderr names each that failed ("Went on after line N, ...").
Either way the exit code is that of the first line that failed; when none did, 3 if a change was
cancelled, else 0. Ctrl-C stops the lines either way.

A bare answer (yes, y, no, n) right after a command that asked nothing is passed over with a note on
stderr: re-running a script of changes already made, each set-* finds nothing to do and asks nothing, and
the answers written for it are left over. Anything else where no question was asked is an unknown command.
"""

from __future__ import annotations

from typing import TextIO

from . import parsing, runner
from .console import NO, YES, stdin_reader
from .context import Context

# Exit codes after which the lines stop (unless --keep-going): a command that failed or was refused.
STOPS = (runner.FAILED, runner.BAD_INPUT)
NOT_RUN = "the lines after it were not run (vgpu-admin --keep-going runs them all)."


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
    saved = ctx.in_repl, ctx.from_script, ctx.console.read_line
    ctx.in_repl = True  # shell lines: 'help', not 'vgpu-admin help'; refresh and exit are commands here
    ctx.from_script = True
    lines = _NumberedLines(source)
    ctx.console.read_line = stdin_reader(ctx.console.out, lines)
    exit_code = _ExitCode()
    asked_nothing = False  # the line before was a command that read no answer
    try:
        while True:
            number = lines.number + 1  # where the command begins (a continued one: its first line)
            line = _command_line(lines)  # readline, not iteration: the console reads answers from it too
            if not line:
                break
            command_read = lines.number
            if asked_nothing and _is_bare_answer(line):
                ctx.console.error(f"Passed over line {number} ({line.strip()!r}): line {number - 1} asked no question.")
                asked_nothing = False
                continue
            seen = ctx.interrupts, ctx.console.unclear_answers
            code = runner.run_line(ctx, line)
            if code is None:
                break
            exit_code.add(code)
            said = _after_line(ctx, code, seen, number, lines.number, keep_going)
            if said:
                note, stops = said
                ctx.console.error(note)
                if stops:
                    break
            asked_nothing = _is_command(line) and lines.number == command_read
    finally:
        ctx.in_repl, ctx.from_script, ctx.console.read_line = saved
    return exit_code.code


def _command_line(lines: _NumberedLines) -> str:
    """The next line, and the lines a backslash at its end continues it onto, joined as sh joins them (the
    backslash and the line break go); a continued line at the end of the input is joined to nothing."""
    line = lines.readline()
    while parsing.continues(line):
        line = line.removesuffix("\n")[:-1] + lines.readline()
    return line


def _after_line(ctx: Context, code: int, seen: tuple[int, int], number: int, last_read: int,
                keep_going: bool) -> tuple[str, bool] | None:
    """The note on stderr after line ``number`` (whose answer, if any, was line ``last_read``) and whether the
    lines stop there; None after a line that went as meant. ``seen``: the interruptions and unclear answers
    counted before the line ran."""
    interrupts, unclear_answers = seen
    if ctx.interrupts > interrupts:
        return f"Stopped at line {number}, interrupted; the lines after it were not run.", True
    if ctx.console.unclear_answers > unclear_answers:
        # A cancellation, but not the script's author's choice: what was meant is unknown.
        where = f"line {last_read}, an answer that was neither yes nor no"
    elif code in STOPS:
        where = f"line {number}, which failed"
    else:
        return None
    if keep_going:  # the lines run on, but the error alone does not say which line it was about
        return f"Went on after {where} (--keep-going).", False
    return f"Stopped at {where}; {NOT_RUN}", True


def _is_bare_answer(line: str) -> bool:
    return line.strip().lower() in YES + NO


def _is_command(line: str) -> bool:
    """Not a blank line or a ``#`` comment (which run_line passes over)."""
    text = line.strip()
    return bool(text) and not text.startswith("#")

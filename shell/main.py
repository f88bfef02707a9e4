"""``vgpu-admin``: one-shot commands, or the ``vgpu>`` shell when no command is given.

The one-shot path stays light: it reads the command table, the settings and the console, then imports
only what the command needs; prompt_toolkit is imported only for the interactive shell.
"""

from __future__ import annotations

import io
import os
import sys

from vgpu import __version__, config, errors, opening

from . import parsing, runner
from .console import Console
from .context import Context
from .errors import OutputFailed, UsageError


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    console = console or Console.standard()
    try:
        flags, words = parsing.take_globals(words)
        keep_going = flags.pop("keep-going", None) is not None
        settings = config.load(flags)
        opening.check_hosts(settings)  # a typo in --host is refused even by a command that never uses it
        _check_version(words)
        words = parsing.as_help(words) or ["shell"]
        if keep_going and words[0] != "shell":
            raise UsageError(f"--keep-going is for commands read from standard input (vgpu-admin --keep-going < FILE); "
                             f"{words[0]} runs once")
        if keep_going and not _reads_lines():  # the prompt: nothing to go on after, and no word would say so
            raise UsageError("--keep-going is for commands read from standard input (vgpu-admin --keep-going < FILE); "
                             "at a terminal each line runs as you type it")
    except (UsageError, errors.VgpuError) as error:
        console.error(f"error: {error}")
        return runner.exit_code_for(error)
    if words[0] == "--version":
        console.say(f"vgpu-admin {__version__}")
        return 0
    ctx = Context(settings, console)
    ctx.open_shell = lambda: _open_shell(ctx, keep_going)
    try:
        return runner.run_words(ctx, words)
    finally:
        ctx.close()


def _check_version(words: list[str]) -> None:
    """--version takes no other word, as any command refuses a word it does not take; beside a request for
    help (--help --version, in either order) too, before that request is read as the help command."""
    if len(words) < 2 or "--version" not in words[:2]:
        return
    if words[0] == "--version":
        raise UsageError(f"unexpected argument {parsing.shown(words[1])} for --version; it takes none")
    if words[0] in parsing.HELP_WORDS:
        raise UsageError(f"unexpected argument {parsing.shown(words[0])} for --version; it takes none")


def _reads_lines() -> bool:
    """Whether the shell reads its lines from a pipe or a file (vgpu-admin < commands.txt), not a prompt."""
    return sys.stdin is None or not sys.stdin.isatty()


def _open_shell(ctx: Context, keep_going: bool = False) -> int:
    if _reads_lines():
        from .script import run_lines

        return run_lines(ctx, sys.stdin if sys.stdin is not None else io.StringIO(), keep_going=keep_going)
    try:
        from .repl import run_repl  # prompt_toolkit: only for the interactive shell, never a one-shot command
    except ModuleNotFoundError as missing:  # an install without the shell extra: say how to add it
        if (missing.name or "").partition(".")[0] != "prompt_toolkit":
            raise
        raise errors.ConfigError("shell", "prompt_toolkit is not installed: pip install 'vgpu-admin[shell]'; "
                                          "one-shot commands work without it") from None
    return run_repl(ctx)


def entry() -> None:
    if sys.stdout is None:
        sys.exit(_refuse_closed_output())
    if sys.stderr is None:
        _discard_errors()
    try:
        code = main()
        sys.stdout.flush()
    except OutputFailed as failure:  # --version: the one output written outside a command's runner
        code = runner.report_unwritten_output(Console.standard(), failure)
    except BrokenPipeError:
        # The reader went away (vgpu-admin status | head): stop quietly, as cat and grep do, and point
        # stdout at /dev/null so Python's own flush at exit does not complain on stderr.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = runner.FAILED
    sys.exit(code)


def _refuse_closed_output() -> int:
    """Started with stdout closed (>&-): what a command did could not be told, and fd 1 may yet be handed to
    the database file, so nothing is done."""
    if sys.stderr is not None:
        sys.stderr.write("error: standard output is closed; nothing was done\n")
    return runner.FAILED


def _discard_errors() -> None:
    """Started with stderr closed (2>&-): the admin asked not to see the error sentences, and still gets the
    output and the exit code. fd 2 gets /dev/null first, so no file opened later (the database, the host
    file, the log) becomes fd 2 and takes in what anything writes there."""
    fd = os.open(os.devnull, os.O_WRONLY)
    if fd != 2:
        os.dup2(fd, 2)
        os.close(fd)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)


if __name__ == "__main__":
    entry()

"""``vgpu-admin``: one-shot commands, or the ``vgpu>`` shell when no command is given.

The one-shot path stays light: it reads the command table, the settings and the console, then imports
only what the command needs; prompt_toolkit is imported only for the interactive shell.
"""

from __future__ import annotations

import os
import sys

from vgpu import __version__, config, errors

from . import parsing, runner
from .console import Console
from .context import Context
from .errors import UsageError


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    console = console or Console.standard()
    try:
        flags, words = parsing.take_globals(words)
        settings = config.load(flags)
        _check_host(settings)
    except (UsageError, errors.VgpuError) as error:
        console.error(f"error: {error}")
        return runner.exit_code_for(error)
    if words and words[0] in ("-h", "--help"):
        words = ["help", *words[1:]]
    elif "--help" in words[1:] or "-h" in words[1:]:  # vgpu-admin set-pool --help
        words = ["help", words[0]]
    if words and words[0] == "--version":
        console.say(f"vgpu-admin {__version__}")
        return 0
    ctx = Context(settings, console)
    try:
        if not words:
            words = ["shell"]
        return runner.run_words(ctx, words)
    finally:
        ctx.close()


def _check_host(settings: config.Settings) -> None:
    """Every command refuses a host it could not open, even one that never talks to the host (list-vms), so a
    typo in --host is never silently ignored."""
    from vgpu import hosts

    try:
        hosts.check(settings.host)
    except errors.InvalidValue as error:
        source = settings.sources.get("host", "flag")
        if source != "flag":
            where = "VGPU_HOST" if source == "environment" else source
            error.reword(f"{error.sentence} (the host comes from {where})")
        raise


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (vgpu-admin status | head): stop quietly, as cat and grep do, and point
        # stdout at /dev/null so Python's own flush at exit does not complain on stderr.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = runner.FAILED
    sys.exit(code)


if __name__ == "__main__":
    entry()

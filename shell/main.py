"""``vgpu-admin``: one-shot commands, or the ``vgpu>`` shell when no command is given.

The one-shot path stays light: it reads the command table, the settings and the console, then imports
only what the command needs; prompt_toolkit is imported only for the interactive shell.
"""

from __future__ import annotations

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
    except (UsageError, errors.VgpuError) as error:
        console.error(f"error: {error}")
        return runner.exit_code_for(error)
    if words and words[0] in ("-h", "--help"):
        words = ["help", *words[1:]]
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


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()

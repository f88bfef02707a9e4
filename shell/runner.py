"""Run one parsed command line and turn every outcome into an exit code and at most one line on stderr.

Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 cancelled by the user. Tracebacks never reach the
terminal; unexpected ones go to a log file whose path the one-line message names.
"""

from __future__ import annotations

import os

from vgpu import errors, paths, trust

from . import handlers, parsing
from .commands import lookup
from .console import Console
from .context import Context
from .errors import OutputFailed, UsageError

OK, FAILED, BAD_INPUT, CANCELLED = 0, 1, 2, 3

# The first matching class (in this order) decides the exit code.
#
# A change refused because its VM changed after the plan was made is bad input (2) as long as nothing was
# done: the plan no longer holds, and a new one is the answer, whatever changed: the registration
# (StalePlan), vgpu's segment on the host (SegmentChanged found before the stop), the power state (shut
# down: ShutDownSincePlan; started: StartedSincePlan; paused or suspended: PausedSincePlan, a HypervisorError listed before its
# parent for that reason). Once the change had stopped the VM and started it again (``vm_restarted``:
# a segment changed during the shutdown wait), the command did something and failed: 1, whatever the
# class. A VM paused or suspended when the plan is made is the host's refusal (1), as any host state is.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, BAD_INPUT),
    (errors.Cancelled, CANCELLED),
    (errors.InvalidValue, BAD_INPUT),
    (errors.InvalidRows, BAD_INPUT),
    (errors.NotFound, BAD_INPUT),
    (errors.Conflict, BAD_INPUT),
    (errors.PausedSincePlan, BAD_INPUT),
    (errors.ConfigError, BAD_INPUT),
    (errors.VgpuError, FAILED),
)


def exit_code_for(error: BaseException) -> int:
    if _unwritten_confirmation(error) or (isinstance(error, errors.VgpuError) and error.vm_restarted):
        return FAILED
    return next((code for cls, code in _EXIT_CODES if isinstance(error, cls)), FAILED)


def report(ctx: Context, error: BaseException) -> int:
    code = exit_code_for(error)
    unwritten = _unwritten_confirmation(error)
    if unwritten:
        ctx.console.error(f"error: the confirmation could not be written ({unwritten}); nothing was changed.")
    else:
        ctx.console.error(str(error) if code == CANCELLED else f"error: {error}{_uuid_hint(ctx, error)}")
    return code


def _unwritten_confirmation(error: BaseException) -> OutputFailed | None:
    """Why the plan or its question could not be written, when that is what cancelled the change. The library
    counts a confirm callback that fails as a no, but nobody said no: it is a failure (1), not a
    cancellation (3)."""
    cause = error.__cause__
    return cause if isinstance(error, errors.Cancelled) and isinstance(cause, OutputFailed) else None


def report_unwritten_output(console: Console, failure: OutputFailed) -> int:
    """Output that could not be written after the command's work: the work stands; only its report was lost."""
    console.error(f"error: the command finished, but its output could not be written ({failure})")
    return FAILED


def _uuid_hint(ctx: Context, error: BaseException) -> str:
    """For a VM name or the start of a UUID typed where a UUID belongs: the UUID it names."""
    if not (isinstance(error, errors.InvalidValue) and error.field == "VM UUID" and isinstance(error.value, str)):
        return ""
    from . import hints  # only on bad input

    return hints.for_bad_uuid(error.value, ctx.known_vms())


def log_path() -> str:
    return os.path.join(paths.state_dir(), "vgpu-admin.log")


def _log_unexpected(error: BaseException) -> str:
    import time  # only on the rare unexpected error: keeps every other start-up lighter
    import traceback

    path = log_path()
    try:
        paths.ensure_dir(os.path.dirname(path))
        trust.check_directory(os.path.dirname(path), "log")  # root writes here: never where others could redirect it
        # O_NOFOLLOW: a symlink planted as the log (in a directory that was once shared) is not written through.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {''.join(traceback.format_exception(error))}")
    except (OSError, errors.VgpuError):
        return "(the log could not be written)"
    return f"(details in {path})"


def run_words(ctx: Context, words: list[str]) -> int:
    """Run one command line, in the vgpu> shell when ``ctx.in_repl`` says so (the shell sets it)."""
    try:
        command, options = parsing.parse(words, in_repl=ctx.in_repl)
        if command.repl_only and not ctx.in_repl:
            raise UsageError(f"'{words[0]}' only works inside the vgpu> shell")
        if command.name == "shell" and ctx.in_repl:
            raise UsageError("you are already in the vgpu> shell")
        ctx.check_store()
        return getattr(handlers, command.handler)(ctx, options)
    except (UsageError, errors.VgpuError) as error:
        if isinstance(error, errors.Cancelled) and isinstance(error.__cause__, BrokenPipeError):
            raise error.__cause__  # the question's reader went away: no one said no; end quietly, as below
        return report(ctx, error)
    except OutputFailed as failure:  # handlers write after their library call; a question's failure is a Cancelled
        return report_unwritten_output(ctx.console, failure)
    except BrokenPipeError:
        raise  # the reader of our output went away (| head): shell.main.entry ends quietly
    except KeyboardInterrupt:
        ctx.interrupts += 1
        ctx.abandon_host()
        ctx.console.error("Interrupted. If a change was under way, run 'vgpu-admin recover' to finish or undo it.")
        return FAILED
    except Exception as error:  # the last line of defence: one sentence on screen, the traceback in the log
        ctx.console.error(f"error: internal error: {type(error).__name__}: {error}{_notes(error)} {_log_unexpected(error)}")
        return FAILED


def run_line(ctx: Context, line: str) -> int | None:
    """One line of the vgpu> shell, typed or read from a pipe: its exit code, or None when it asks to leave
    (exit, quit). Blank lines and ``#`` comments do nothing."""
    try:
        words = parsing.shell_line(parsing.split_line(line), ctx.settings.db, ctx.settings.hosts_named)
    except UsageError as error:
        return report(ctx, error)
    if not words:  # a blank line, or a comment alone (split_line drops comments)
        return OK
    command = lookup(words[0])
    if command is not None and command.name == "exit":
        return _leave(ctx, words)
    return run_words(ctx, words)


def _leave(ctx: Context, words: list[str]) -> int | None:
    """None (leave the shell) for a bare exit or quit. An argument is refused as any command refuses one it
    does not take: ``exit now`` in a script must not end it quietly with 0."""
    try:
        parsing.parse(words, in_repl=True)
    except UsageError as error:
        return report(ctx, error)
    return None


def _notes(error: BaseException) -> str:
    """What the library noted on an unexpected error (what became of the VM it was changing), in-line."""
    return "".join(f"; {note[:1].lower()}{note[1:].rstrip('.')}" for note in getattr(error, "__notes__", ()))

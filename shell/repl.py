"""The ``vgpu>`` shell: a prompt_toolkit loop around the same runner the one-shot commands use.

Only ``vgpu-admin`` without a command (or ``vgpu-admin shell``) imports this module, so the one-shot path
never pays for prompt_toolkit. Every line is split and run by shell.runner with ``ctx.in_repl`` set; the
completion names come from a background refresher, so a keystroke never waits for the DB or the host.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.key_binding import merge_key_bindings

from vgpu import errors, paths

from . import pasting, runner, searching
from .completer import threaded_completer
from .context import Context
from .history import open_history
from .names import EMPTY, NameCache, build as build_names
from .refresher import Refresher
from .script import STOPS

PROMPT = "vgpu> "
# The first names usually arrive within milliseconds; waiting that long lets the very first Tab complete,
# and the cap keeps a slow host from holding up the prompt (its names then arrive in the background).
FIRST_NAMES_WAIT = 1.0


def history_path() -> str:
    return os.path.join(paths.data_dir(), "history")


def run_repl(ctx: Context, *, input=None, output=None) -> int:
    """Read and run lines until Ctrl-D, ``exit`` or ``quit``; returns 0.

    ``input``/``output`` are prompt_toolkit's (tests pass a pipe input and DummyOutput); command output
    still goes to ``ctx.console``.
    """
    store, host = _open_sources(ctx)
    configured = ctx.settings.configured_uris  # forget-host completes the remembered hosts that are not these
    refresher = Refresher(store, host, build=lambda store, host: build_names(store, host, configured),
                          on_swap=lambda: session.app.invalidate())
    session = _session(ctx, refresher, input, output)
    with _shell_hooks(ctx, refresher, prompt_reader(session.input, session.output)):
        refresher.request()
        refresher.wait(FIRST_NAMES_WAIT)
        while _read_and_run(ctx, session):
            pass
    return runner.OK


def _session(ctx: Context, refresher: Refresher, input, output) -> PromptSession:
    return PromptSession(
        PROMPT,
        completer=threaded_completer(lambda: refresher.cache),
        complete_while_typing=True,
        history=open_history(history_path(), ctx.console.error),  # Ctrl-R searches it (prompt_toolkit's emacs bindings)
        auto_suggest=AutoSuggestFromHistory(),
        key_bindings=merge_key_bindings([pasting.line_by_line_paste(), searching.abandonable_search()]),
        bottom_toolbar=lambda: toolbar(ctx.settings.db, ctx.settings.hosts_named, refresher.cache, refresher.refreshing),
        input=input,
        output=output,
    )


def _read_and_run(ctx: Context, session: PromptSession) -> bool:
    """One line: False when the user leaves."""
    try:
        line = session.prompt()
    except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as in bash
        return True
    except EOFError:  # Ctrl-D
        return False
    code = runner.run_line(ctx, line)
    if code in STOPS and pasting.drop_pasted_rest(session.input):  # as a script stops at its first failure
        ctx.console.error(pasting.STOPPED)
    return code is not None


def _open_sources(ctx: Context):
    """The shell's store and host, opened here on the main thread (the refresher only reopens them).

    Either may be None: the shell still starts, and each command reports its own error.
    """
    try:
        store = ctx.store
    except errors.VgpuError:
        store = None
    try:
        host = ctx.host
    except errors.VgpuError:
        host = None
    return store, host


@contextlib.contextmanager
def _shell_hooks(ctx: Context, refresher: Refresher, read_line: Callable[[str], str | None]) -> Iterator[None]:
    """While the shell runs: changes trigger a refresh, questions are asked through prompt_toolkit, hints
    on bad input look names up in the completion names, and commands know they run at the vgpu> prompt."""
    saved = ctx.on_change, ctx.console.read_line, ctx.name_cache, ctx.in_repl
    ctx.on_change, ctx.console.read_line, ctx.name_cache = refresher.request, read_line, lambda: refresher.cache
    ctx.in_repl = True
    try:
        yield
    finally:
        ctx.on_change, ctx.console.read_line, ctx.name_cache, ctx.in_repl = saved
        refresher.close()


def prompt_reader(input, output) -> Callable[[str], str | None]:
    """Read a confirmation answer on the shell's own terminal (or test pipe). Its own session, so the
    answers stay out of the command history; Ctrl-D, Ctrl-C and end of input all mean "no answer"."""
    answers = PromptSession(input=input, output=output, key_bindings=pasting.line_by_line_paste())

    def read_line(question: str) -> str | None:
        try:
            return answers.prompt(question)
        except (EOFError, KeyboardInterrupt):
            return None

    return read_line


def toolbar(db: str, host: str, cache: NameCache, refreshing: bool) -> str:
    """``DB: … | Host: … | Pool A: n VMs | Pool B: m VMs | refreshing…`` from the current snapshot."""
    built = cache is not EMPTY
    parts = [f"DB: {db}" + (" (unreadable)" if built and not cache.db_ok else "")]
    parts.append(f"Host: {host}" + (f" ({_unreachable(cache.hosts_down)})" if built and not cache.host_ok else ""))
    parts += [f"Pool {pool.pool_id}: {pool.vm_count} VMs" for pool in cache.pools]
    if refreshing:
        parts.append("refreshing…")
    return " | ".join(parts)


def _unreachable(down: tuple[str, ...]) -> str:
    """Which of a fleet's hosts could not be listed, kept short; "unreachable" alone when none answered (or the
    run has one host)."""
    if not down:
        return "unreachable"
    return f"{', '.join(down)} unreachable" if len(down) <= 2 else f"{len(down)} hosts unreachable"

"""What to suggest, from the text before the cursor and a NameCache: no prompt_toolkit, no I/O.

Like litecli's completion_engine, this module decides *what* to suggest; shell.completer only adapts the
answer to prompt_toolkit. It reads the command table for commands, options and each option's value kind,
so a new option is completed as soon as it is declared. It must stay fast at 10,000 VMs: every key it
compares was lowered and indexed once in shell.names (see shell.vmindex), and no list is longer than a
menu's worth.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable

from . import commands as table
from .names import NameCache
from .parsing import names_the_program, words_as_typed

MAX_SUGGESTIONS = 200  # a longer menu helps no one; typing one more character narrows it
PRIORITY_META = {"low": "0 = lowest", "medium": "1", "high": "2 = highest"}
FORMAT_META = {"text": "the spec's text layout (default)", "json": "machine-readable"}


@dataclass(frozen=True, slots=True)
class Suggestion:
    text: str  # what replaces the typed fragment
    start: int  # where the replacement starts, relative to the cursor (0 or negative)
    display: str
    meta: str = ""


@dataclass(frozen=True, slots=True)
class Fragment:
    """The part of the word under the cursor that a suggestion replaces."""

    raw: str  # as typed, with its quotes and backslashes: the whole of it is replaced
    said: str  # what the line will read there (quotes and escapes removed): what is looked for

    @property
    def start(self) -> int:
        return -len(self.raw)


def suggest(text: str, names: NameCache, limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
    """Suggestions for the word under the cursor at the end of ``text``."""
    words, current = _split(text)
    if names_the_program(words):
        words = words[1:]
    if not words:
        return _command_names(current, limit)
    command = table.lookup(words[0])
    if command is None:
        return []
    if current.said.startswith("--") and "=" in current.said:
        name, _, value = current.said[2:].partition("=")
        return _option_values(command.option(name), Fragment(current.raw.partition("=")[2], value), names, limit)
    pending = _option_awaiting_value(command, words[1:])
    if pending is not None:
        return _option_values(pending, current, names, limit)
    return _options(command, words[1:], current, names, limit)


# --- reading the line ---------------------------------------------------------------------------------------


def _split(text: str) -> tuple[list[str], Fragment]:
    """The finished words and the word under the cursor (empty right after a space), read as the line will be
    run: ``'web s``, ``"web s`` and ``web\\ s`` are all one word saying ``web s``."""
    words = list(words_as_typed(text))
    if words and words[-1][0] + len(words[-1][2]) == len(text):  # the last word runs up to the cursor
        _, said, raw = words.pop()
        return [word for _, word, _ in words], Fragment(raw, said)
    return [word for _, word, _ in words], Fragment("", "")


def _option_awaiting_value(command: table.Command, words: list[str]) -> table.Option | None:
    """The option whose value comes next (``--pool `` then the value), if the last word is one."""
    if not words or not words[-1].startswith("--") or "=" in words[-1]:
        return None
    option = command.option(words[-1][2:])
    return option if option is not None and option.kind != table.FLAG else None


def _used_options(words: list[str]) -> set[str]:
    return {word[2:].partition("=")[0] for word in words if word.startswith("--")}


# --- what to offer ------------------------------------------------------------------------------------------


_SHELL_COMMANDS = table.offered(in_repl=True)  # completion only ever runs at the vgpu> prompt


def _command_names(fragment: Fragment, limit: int) -> list[Suggestion]:
    """The shell's commands that start with the fragment, then (once something is typed, so that an empty
    line lists each command once) their aliases."""
    typed = fragment.said.lower()
    found = [Suggestion(c.name, fragment.start, c.name, c.summary) for c in _SHELL_COMMANDS if c.name.startswith(typed)]
    if typed:
        found += [Suggestion(alias, fragment.start, alias, f"{c.summary}; same as {c.name}")
                  for c in _SHELL_COMMANDS for alias in c.aliases if alias.startswith(typed)]
    return found[:limit]


def _options(command, words: list[str], current: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    used = _used_options(words)
    found = [
        Suggestion(opt.flag if opt.kind == table.FLAG else opt.flag + "=", current.start, opt.flag, opt.help)
        for opt in command.options
        if opt.name not in used and opt.flag.startswith(current.said)
    ]
    positional = command.positional
    if positional is not None and not current.said.startswith("-") and not _positional_given(command, words):
        found += _option_values(positional, current, names, limit)
    return found[:limit]


def _positional_given(command: table.Command, words: list[str]) -> bool:
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if not word.startswith("--"):
            return True
        if "=" not in word and rest and _option_awaiting_value(command, [word]) is not None:
            rest.pop(0)  # that word was the option's value
    return False


def _option_values(option: table.Option | None, fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    completer = VALUE_COMPLETERS.get(option.kind) if option is not None else None
    return completer(fragment, names, limit) if completer is not None else []


# --- one completer per value kind --------------------------------------------------------------------------


def _pools(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    typed = fragment.said.lower()
    return [
        Suggestion(pool.pool_id, fragment.start, pool.pool_id, f"{pool.name} · {pool.vm_count} VMs")
        for pool in names.pools
        if pool.pool_id.lower().startswith(typed) or (typed and typed in pool.name.lower())
    ][:limit]


def _fixed(choices: dict[str, str]) -> Callable[[Fragment, NameCache, int], list[Suggestion]]:
    def complete(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
        typed = fragment.said.lower()
        return [Suggestion(word, fragment.start, word, meta) for word, meta in choices.items() if word.startswith(typed)]

    return complete


def _priorities(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    if fragment.said in ("0", "1", "2"):  # the number is a valid spelling: offer the word for it
        word = ("low", "medium", "high")[int(fragment.said)]
        return [Suggestion(word, fragment.start, word, PRIORITY_META[word])]
    return _fixed(PRIORITY_META)(fragment, names, limit)


def _help_topics(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    return _command_names(fragment, limit)


def _vm_uuids(group: str) -> Callable[[Fragment, NameCache, int], list[Suggestion]]:
    def complete(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
        matches = names.index[group].match(fragment.said.lower(), limit)
        return [Suggestion(vm.uuid, fragment.start, vm.uuid, vm.meta) for vm in matches]

    return complete


def _unregistered_names(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    matches = names.index["unregistered_nameable"].match(fragment.said.lower(), limit)  # printable names only
    return [Suggestion(shlex.quote(vm.name), fragment.start, vm.name, vm.uuid) for vm in matches]


def _forgettable_hosts(fragment: Fragment, names: NameCache, limit: int) -> list[Suggestion]:
    meta = "remembered by the database, not configured in this run"
    return [Suggestion(label, fragment.start, label, meta) for label in names.forgettable_hosts
            if label.startswith(fragment.said)][:limit]


VALUE_COMPLETERS: dict[str, Callable[[Fragment, NameCache, int], list[Suggestion]]] = {
    table.VM_UUID: _vm_uuids("registered"),
    table.HOST_VM_UUID: _vm_uuids("on_host"),
    table.ANY_VM_UUID: _vm_uuids("every"),
    table.POOL: _pools,
    table.PRIORITY: _priorities,
    table.FORMAT: _fixed(FORMAT_META),
    table.COMMAND: _help_topics,
    table.VM_NAME: _unregistered_names,
    table.FORGETTABLE_HOST: _forgettable_hosts,
}

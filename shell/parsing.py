"""Turn the words of a command line into (command, options), guided by the command table.

Options are ``--name=value`` or ``--name value``; flags take no value. Values are checked here only for
shape (is one there?); their meaning (is ``C`` a pool?) is checked by the library, which names what is
allowed. Global options (``--db``, ``--host``, the flag ``--keep-going``) may appear anywhere on a one-shot
command line.
"""

from __future__ import annotations

from typing import Iterator

from .commands import FLAG, FORMATS, TEXT, VM_NAME, Command, lookup, offered
from .errors import UsageError

PROGRAM = "vgpu-admin"
GLOBAL_OPTIONS = ("db", "host")
GLOBAL_FLAGS = ("keep-going",)  # lines read from standard input run on after one that fails
_MAY_BE_BLANK = (TEXT, VM_NAME)  # an empty VM name means "none"; the library names what a pool name needs


def split_line(line: str) -> list[str]:
    """Split a shell line like a POSIX shell would (quotes, backslashes, ``#`` comments)."""
    import shlex  # only for lines (the shell, a script): a one-shot command comes already split

    try:
        return shlex.split(line[:comment_start(line)])
    except ValueError as exc:
        raise UsageError(f"cannot parse the line: {exc}") from exc


def comment_start(line: str) -> int:
    """Where the line's comment begins (its length when it has none): as in sh, at an unquoted, unescaped
    ``#`` that begins a word. (shlex's own comments=True also cuts a word at a ``#`` inside it: --name=a#b.)"""
    return next((start for start, _, raw in words_as_typed(line) if raw.startswith("#")), len(line))


def continues(line: str) -> bool:
    """Whether ``line`` ends in a backslash that escapes its line break, so that sh joins the next line to it:
    one neither quoted, nor escaped itself (``\\``), nor in a comment."""
    text = line.removesuffix("\n")
    if not text.endswith("\\") or comment_start(text) < len(text):
        return False
    quote, index = "", 0
    while index < len(text) - 1:
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1  # \" does not close a double quote
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "\\":
            index += 1  # the escaped character, a backslash included
        index += 1
    return not quote and index == len(text) - 1  # the last backslash was not the escaped character


_BLANKS = " \t\r\n"  # what separates words, for shlex too


def words_as_typed(line: str) -> Iterator[tuple[int, str, str]]:
    """Each word of the line as (where it starts, what it says, how it was typed), split as shlex.split
    splits it (quotes, backslashes), but tolerating what a line still being typed ends in: an open quote or
    a lone backslash. The completion engine reads the word under the cursor with it."""
    quote, start, said = "", None, []
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and line[index + 1:index + 2] in ('"', "\\"):
                index += 1  # \" and \\ only: other backslashes in double quotes are kept, as in sh
                said.append(line[index])
            else:
                said.append(char)
        elif char in _BLANKS:
            if start is not None:
                yield start, "".join(said), line[start:index]
                start, said = None, []
        else:
            start = index if start is None else start
            if char in "'\"":
                quote = char
            elif char == "\\":
                index += 1  # the next character is itself (\# is a literal #); at the end, nothing yet
                said.append(line[index:index + 1])
            else:
                said.append(char)
        index += 1
    if start is not None:
        yield start, "".join(said), line[start:]


def take_globals(words: list[str]) -> tuple[dict[str, str | list[str]], list[str]]:
    """Pull ``--db``/``--host`` (and the flag ``--keep-going``, as ``{"keep-going": ""}``) out of a one-shot
    command line, wherever they are. ``--host`` may be given several times (a fleet: ``--host LABEL=URI`` or
    ``--host LABEL``), so its values come as a list; vgpu.config checks what they say."""
    found: dict[str, str | list[str]] = {}
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        name, has_value, value = word[2:].partition("=") if word.startswith("--") else ("", False, "")
        if name in GLOBAL_FLAGS:
            if has_value:
                raise UsageError(f"--{name} takes no value")
            found[name] = ""
        elif name in GLOBAL_OPTIONS:
            if not has_value:
                if index + 1 >= len(words):
                    raise UsageError(f"--{name} needs a value")
                value = words[index + 1]
                index += 1
            if not value.strip():
                raise UsageError(f"--{name} needs a value")
            if name == "host":
                found.setdefault("host", []).append(value)  # type: ignore[union-attr]
                index += 1
                continue
            if name in found:
                raise UsageError(f"--{name} given twice")
            found[name] = value
        else:
            rest.append(word)
        index += 1
    return found, rest


HELP_WORDS = ("-h", "--help")


def as_help(words: list[str]) -> list[str]:
    """``--help`` or ``-h`` where an option could stand asks for help: alone, the list; after a command,
    that command's. Where the command's option wants its value (``--name -h``) it is that value, as
    :func:`parse` takes it: a script's ``--name "$NAME"`` must not turn into help because of what NAME holds."""
    if words and words[0] in HELP_WORDS:
        return ["help", *words[1:]]
    if any(word in HELP_WORDS for word in _not_values(words)):  # vgpu-admin set-pool --help
        return ["help", words[0]]
    return words


def _not_values(words: list[str]) -> Iterator[str]:
    """The words after the command, less each that follows an option of the command written without its
    ``=value`` (parse takes it as the value, or refuses it when it starts with --). For a command that is
    not known, every word: its help says there is no such command."""
    command = lookup(words[0]) if words else None
    rest = iter(words[1:])
    for word in rest:
        yield word
        name, has_value, _ = word[2:].partition("=")
        option = command.option(name) if command is not None and word.startswith("--") and not has_value else None
        if option is not None and option.kind != FLAG:
            next(rest, None)


def names_the_program(words: list[str]) -> bool:
    """Whether the line starts with ``vgpu-admin`` (or a path to it), as one pasted from the docs does: at the
    prompt that word is dropped, by the runner and the completion alike."""
    return bool(words) and words[0].rsplit("/", 1)[-1] == PROGRAM


def shell_line(words: list[str], db: str, host: str) -> list[str]:
    """The words of a line typed at the vgpu> prompt, as the runner takes them.

    A line pasted from the docs may start with ``vgpu-admin``: at the prompt every line runs in this shell,
    so the word is dropped (alone, it names the shell itself). ``--db`` and ``--host`` are refused, naming
    the shell's own: they are chosen when it starts (``db``, ``host``), and one line quietly reaching
    another database or host would be a trap. ``--keep-going`` is refused too: it is for all the lines
    of a pipe, chosen when vgpu-admin starts, and a line's own would otherwise be ignored without a word.
    """
    if names_the_program(words):
        words = words[1:] or ["shell"]
    found, words = take_globals(words)
    if "keep-going" in found:
        raise UsageError("--keep-going is for the lines read from standard input and is given when vgpu-admin "
                         "starts (vgpu-admin --keep-going < FILE); a line cannot set it")
    for name, current in (("db", db), ("host", host)):
        if name in found:
            raise UsageError(f"--{name} is chosen when the shell starts, and this one uses {current}; "
                             f"to use another, leave (exit) and start 'vgpu-admin --{name}=...'")
    return as_help(words)


def shown(word: str) -> str:
    """A word of the line as a refusal repeats it: quoted, any password in it masked. A host URI typed where no
    host is read (``--hos=xapi://root:PW@h``, a stray ``root:PW@h``) is refused as what it was taken for, and
    must no more show its password than a refused ``--host`` does (vgpu.uri_password)."""
    from vgpu.uri_password import mask_passwords  # only on a refusal

    return repr(mask_passwords(word))


def help_command(in_repl: bool) -> str:
    """How to ask for help where the user is: ``help`` at the vgpu> prompt, ``vgpu-admin help`` on the command line."""
    return "help" if in_repl else "vgpu-admin help"


def _unknown_command(name: str, in_repl: bool) -> UsageError:
    from .typos import closest  # only on a mistyped command

    here = offered(in_repl)
    close = closest(name, [command.name for command in here] + [alias for command in here for alias in command.aliases])
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; run '{help_command(in_repl)}' for the list"
    return UsageError(f"unknown command {shown(name)}{hint}")


def parse(words: list[str], *, in_repl: bool = False) -> tuple[Command, dict[str, str | bool]]:
    """The command and its options (keys are option names without dashes). ``in_repl``: the line was typed
    at the vgpu> prompt, where help is ``help``, not ``vgpu-admin help``."""
    if not words:
        raise UsageError(f"no command given; run '{help_command(in_repl)}' for the list")
    command = lookup(words[0])
    if command is None:
        raise _unknown_command(words[0], in_repl)
    options: dict[str, str | bool] = {}
    rest = words[1:]
    index = 0
    while index < len(rest):
        word = rest[index]
        if not word.startswith("--"):
            if command.positional is None or command.positional.name in options:
                raise UsageError(f"unexpected argument {shown(word)} for {command.name}; options look like --name=value")
            options[command.positional.name] = word
            index += 1
            continue
        name, has_value, value = word[2:].partition("=")
        option = command.option(name)
        if option is None:
            allowed = ", ".join(opt.flag for opt in command.options) or "no options"
            raise UsageError(f"unknown option {shown('--' + name)} for {command.name}; expected {allowed}")
        if name in options:
            raise UsageError(f"option --{name} given twice")
        if option.kind == FLAG:
            if has_value:
                raise UsageError(f"option --{name} takes no value")
            options[name] = True
        else:
            if not has_value:
                if index + 1 >= len(rest) or rest[index + 1].startswith("--"):
                    raise UsageError(f"option --{name} needs a value: --{name}={option.placeholder}")
                value = rest[index + 1]
                index += 1
            if not value.strip() and option.kind not in _MAY_BE_BLANK:  # not a silent "use the default"
                raise UsageError(f"option --{name} needs a value: --{name}={option.placeholder}")
            options[name] = value
        index += 1
    _check_required(command, options)
    return command, options


def _check_required(command: Command, options: dict[str, str | bool]) -> None:
    positional = command.positional
    if positional is not None and positional.required and positional.name not in options:
        raise UsageError(f"{command.name} needs {positional.placeholder}")
    missing = [opt for opt in command.options if opt.required and opt.name not in options]
    if missing:
        needed = " ".join(f"{opt.flag}={opt.placeholder}" for opt in missing)
        raise UsageError(f"{command.name} needs {needed}")
    if command.one_of and not any(name in options for name in command.one_of):
        choices = ", ".join(f"{opt.flag}={opt.placeholder}" for opt in map(command.option, command.one_of))
        raise UsageError(f"{command.name} needs at least one of {choices}")
    fmt = options.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"invalid format {shown(str(fmt))}: expected text or json")

"""The vgpu> shell's history file: private, and without the lines that carry a credential.

Every line typed at the prompt is kept for the next session (Up, Ctrl-R, auto-suggestion), in a file readable
by its owner only (0600) in a directory only its owner can enter (0700), written without following a
symlink. A line that carries a credential (a URI with a password in it, ``password=...``, ``--password ...``)
is kept neither in the file nor in the session's memory: vgpu-admin refuses such a line anyway, and a
refused line must not leave the password behind on disk.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Callable, Iterable

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from vgpu import errors, paths, trust
from vgpu.uri_password import carries_password, carries_scheme_password

from .commands import COMMANDS
from .parsing import GLOBAL_FLAGS, GLOBAL_OPTIONS, HELP_WORDS

_SECRET_NAMES = r"(?:password|passwd|pwd|secret|token|VGPU_XAPI_PASSWORD)"
# A word naming a secret, followed by its value.
_NAMED_SECRET = re.compile(_SECRET_NAMES + r"\s*[=:]", re.IGNORECASE)
# The same name as a word of its own (--password, password), its value the next word.
_SECRET_WORD = re.compile("-*" + _SECRET_NAMES, re.IGNORECASE)
_HOST_NAMES = ("--host", "VGPU_HOST")


def carries_credential(line: str) -> bool:
    """Whether ``line`` names a secret with its value (``password=...``, ``--password ...``), or holds a URI
    with a password as vgpu refuses one (vgpu.uri_password: the same rule, so a password holding '/', '#', '?'
    or a quoted space is found too).

    A host value (``--host=V``, ``--host V``, ``VGPU_HOST=V``), a word that is no ``--option=value`` and the value
    of an option no command takes (a mistyped ``--hos=V``, which vgpu-admin refuses) are read as vgpu reads a
    host: ``root:secret@h`` without a scheme is a password there. The value of a known option
    (``--vm-name=web:prod@dc1``) is only searched for a URI that names its scheme: a line dropped for nothing
    costs little, but a VM name is no password."""
    if _NAMED_SECRET.search(line) or _secret_before_its_value(line):
        return True
    words = _words(line)
    for before, word in zip(["", *words], words):
        name, equals, value = word.partition("=")
        if before == "--host" or not word.startswith("-") and name not in _HOST_NAMES:
            if _host_carries_password(word):
                return True
        elif (name in _HOST_NAMES or not _known_option(name)) and equals:
            if _host_carries_password(value):
                return True
        elif carries_scheme_password(word) or carries_scheme_password(value):
            return True
    return False


def _secret_before_its_value(line: str) -> bool:
    """Whether a word of ``line`` names a secret and another follows it: ``--password s1cret``, ``password
    s1cret``. The words are the shell's (a quoted ``--vm-name 'secret project'`` is one word, and kept); a
    bare name that is the value of the option before it (``--vm-name token --pool=B``) names no secret."""
    try:
        words = shlex.split(line)
    except ValueError:  # an unclosed quote: the words as typed, quotes and all
        words = [word.strip("'\"") for word in line.split()]
    for before, word in zip(["", *words], words[:-1]):
        if _SECRET_WORD.fullmatch(word) and (word.startswith("-") or not _awaits_value(before)):
            return True
    return False


def _awaits_value(word: str) -> bool:
    return word.startswith("-") and "=" not in word


def _known_option(name: str) -> bool:
    """Whether ``name`` (``--vm-name``) is an option of some command, a global one, or ``--help``."""
    if name in HELP_WORDS or name.removeprefix("--") in (*GLOBAL_OPTIONS, *GLOBAL_FLAGS):
        return True
    return name.startswith("--") and any(command.option(name[2:]) is not None for command in COMMANDS)


def _host_carries_password(value: str) -> bool:
    """Whether a --host or VGPU_HOST value holds a password, in any of its comma-separated words, each a URI or
    ``LABEL=URI`` (vgpu.hostspecs: a label holds no ':'). The whole value is read too: a comma may be the
    password's."""
    def uri_of(word: str) -> str:
        label, equals, uri = word.partition("=")
        return uri if equals and ":" not in label else word

    return any(carries_password(uri_of(word)) for word in [value, *value.split(",")])


def _words(line: str) -> list[str]:
    """The line's words as the shell splits them (a quoted space stays inside its word). A line with an
    unclosed quote does not split: each of its tails that starts a word is taken whole, since the password may
    run to the end of the line."""
    try:
        return shlex.split(line)
    except ValueError:
        return [line[start:] for start in range(len(line)) if start == 0 or line[start - 1] in " \t='\""]


class PrivateHistory(FileHistory):
    """prompt_toolkit's FileHistory, kept private and free of credentials (see the module docstring)."""

    def append_string(self, string: str) -> None:
        if not carries_credential(string):
            super().append_string(string)

    def store_string(self, string: str) -> None:
        # FileHistory opens the file by name and follows a symlink; this never does. A failure to write
        # (the file replaced by a symlink meanwhile, a full disk) loses the line, never the session.
        try:
            fd = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            return
        with os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(_entry(string))

    def load_history_strings(self) -> Iterable[str]:
        return [line for line in super().load_history_strings() if not carries_credential(line)]


class SessionHistory(InMemoryHistory):
    """The session's own lines only, where no file may be written: free of credentials all the same."""

    def append_string(self, string: str) -> None:
        if not carries_credential(string):
            super().append_string(string)


def _entry(string: str) -> str:
    import datetime

    lines = "".join(f"+{line}\n" for line in string.split("\n"))
    return f"\n# {datetime.datetime.now()}\n{lines}"


UNSAVED = "History will not be saved this session: {why}."


def open_history(path: str, warn: Callable[[str], None]) -> History:
    """The history at ``path``, its directory made 0700 and the file 0600 (created so if missing). A file
    or directory someone else owns or could have planted (vgpu.trust), or one that cannot be used, gets an
    in-memory history instead (the session still recalls its own lines, and nothing is written there), and
    ``warn`` gets one line saying why: a history that silently stops being saved is lost work found later."""
    why = _why_unusable(path)
    if why is None:
        return PrivateHistory(path)
    warn(UNSAVED.format(why=why))
    return SessionHistory()


def _why_unusable(path: str) -> str | None:
    """None once the history file at ``path`` is safe to write (made so where it is ours), else why not."""
    directory = os.path.dirname(path)
    try:
        paths.ensure_dir(directory)
        if os.stat(directory).st_uid == os.geteuid():
            os.chmod(directory, 0o700)
        trust.check_directory(directory, "history")
        if os.path.islink(path):  # the shell made none: a planted one is not written through
            return f"{path} is a symlink, and it is never written through"
        if os.path.lexists(path):
            # One others could write is refused, not tightened: lines they put in it would come back with Up,
            # Ctrl-R or the grey suggestion, one Enter away from running. One they can only read is ours to close.
            trust.check_file(path, "history")
            os.chmod(path, 0o600)
        else:
            trust.create_private(path)
    except errors.VgpuError as error:
        return str(error).rstrip(".")
    except OSError as error:
        return f"{error.filename or path}: {error.strerror or error}"
    return None

"""Which files vgpu-admin trusts: the way OpenSSH trusts its configuration.

vgpu-admin runs as root. A config file names the command it runs for the host (``host = "xe:/path"``), a
password file holds the host's root password, and the database holds what ``recover`` carries out: whoever
can change one of them can make root act for them. So each is used only when it, and every directory above
it, is owned by root or by the user running vgpu-admin and can be written by no one else (neither group nor
others), as sshd checks ``authorized_keys`` and the directories above it. A password file must also be
unreadable by anyone else. A directory further up than the file's own may be writable by everyone if it
has the sticky bit and belongs to root (``/tmp``): nobody else can then rename or remove what is in it.

A refusal is :class:`vgpu.errors.UnsafeFile`: one sentence naming the file (or directory) at fault and the
command that fixes it. Only :func:`create_private` writes: it creates an empty file without following a link.
"""

from __future__ import annotations

import os
import stat

from .errors import ConfigError, UnsafeFile

SECRET_MAX = 64 * 1024  # a password file is one line; anything bigger is not one


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _user(uid: int) -> str:
    import pwd  # only for a refusal's sentence

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _owner_problem(uid: int) -> str:
    me = os.geteuid()
    allowed = "root" if me == 0 else f"root or {_user(me)}"
    name = _user(uid)
    who = name if name == f"uid {uid}" else f"{name} (uid {uid})"
    return f"owned by {who}, not by {allowed}"


def _fix_owner(path: str) -> str:
    me = _user(os.geteuid())
    return f"check what it holds, then chown {me.removeprefix('uid ')} {path}"  # chown takes a bare number too


def _mode(info: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(info.st_mode):04o}"


def _directories(nearest: str) -> list[str]:
    """``nearest`` and every directory above it, nearest first."""
    found = []
    directory = nearest
    while True:
        found.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            return found
        directory = parent


def _check_directories(path: str, what: str, nearest: str) -> None:
    """``nearest`` (the directory of ``path``) and every one above it; a refusal names ``path``."""
    for directory in _directories(nearest):
        info = os.stat(directory)
        if not _trusted_owner(info.st_uid):
            raise UnsafeFile(path, what, f"its directory {directory} is {_owner_problem(info.st_uid)}", _fix_owner(directory))
        if info.st_mode & 0o022:
            shared_tmp = directory != nearest and info.st_mode & stat.S_ISVTX and info.st_uid == 0
            if shared_tmp:
                continue
            fix = (f"keep the {what} in a directory only you can write to (install -d -m 700 DIR)"
                   if info.st_mode & stat.S_ISVTX else f"chmod go-w {directory}")
            raise UnsafeFile(path, what, f"its directory {directory} can be written by others ({_mode(info)})", fix)


def check_directory(directory: str, what: str) -> None:
    """Before creating a ``what`` in ``directory``: it and the directories above it are safe (a refusal names
    the directory; check_new_file names the file)."""
    nearest = os.path.abspath(directory)
    _check_directories(nearest, what, nearest)


def check_new_file(path: str, what: str) -> None:
    """Before creating the ``what`` at ``path``: its directory and every one above it are safe. A refusal
    names the file, as the user gave it made absolute, and the directory at fault."""
    absolute = os.path.abspath(path)
    _check_directories(absolute, what, os.path.dirname(absolute))


def check_file(path: str, what: str, *, private: bool = False) -> os.stat_result:
    """Raise UnsafeFile unless the existing file ``path`` (``what``: "config file", "database", ...), every
    directory above it and above what a symlink points to are owned by root or the user and writable by no
    one else; with ``private``, unreadable by anyone else too. Returns the file's stat."""
    if "\0" in path:
        raise UnsafeFile(path.replace("\0", "\\0"), what, "its path holds a NUL character", "give the right path")
    absolute = os.path.abspath(path)
    link = os.lstat(absolute)
    real = os.path.realpath(absolute)
    if stat.S_ISLNK(link.st_mode):
        if not _trusted_owner(link.st_uid):
            raise UnsafeFile(path, what, f"it is a symlink {_owner_problem(link.st_uid)}", f"rm {absolute}, or give the real path")
        if not os.path.exists(real):
            raise UnsafeFile(path, what, f"it is a symlink to {real}, which does not exist, and vgpu-admin never "
                             "creates a file through a symlink", f"rm {absolute}, or give the real path")
        _check_directories(absolute, what, os.path.dirname(absolute))
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(path, what, f"{real} is not a regular file", "give the path of a file")
    if not _trusted_owner(info.st_uid):
        raise UnsafeFile(path, what, f"it is {_owner_problem(info.st_uid)}", _fix_owner(real))
    if info.st_mode & 0o022:
        raise UnsafeFile(path, what, f"others can change it ({_mode(info)})", f"chmod go-w {real}")
    if private and info.st_mode & 0o077:
        raise UnsafeFile(path, what, f"others can read it ({_mode(info)})", f"chmod 600 {real}")
    _check_directories(real, what, os.path.dirname(real))
    return info


def check_file_if_present(path: str, what: str) -> os.stat_result | None:
    """check_file for a file that another process may delete at any moment (SQLite's -journal, -wal and
    -shm come and go with its transactions): None if it is gone, since a file that is gone holds nothing
    to distrust."""
    try:
        return check_file(path, what)
    except FileNotFoundError:
        return None


def read_secret(path: str, what: str = "password file") -> str:
    """The first line of a private file (check_file with ``private``), without its line break."""
    try:
        check_file(path, what, private=True)
        with open(path, "rb") as handle:
            data = handle.read(SECRET_MAX + 1)
    except FileNotFoundError:
        raise ConfigError(path, f"cannot read {what}: it does not exist; write the password alone on its first "
                                "line, mode 600") from None
    except PermissionError:
        raise ConfigError(path, f"cannot read {what}: permission denied") from None
    try:
        first = data.decode("utf-8").split("\n", 1)[0].removesuffix("\r")
    except UnicodeDecodeError:
        first = None
    if len(data) > SECRET_MAX or not first:
        problem = "its first line is empty" if first == "" else "it is not one line of UTF-8 text"
        raise UnsafeFile(path, what, problem, f"write the password alone on the first line of {path}")
    return first


def create_private(path: str) -> bool:
    """Create ``path`` readable and writable by its owner only, never through a symlink (O_EXCL refuses any
    existing name, a dangling link included; O_NOFOLLOW says so twice). False if it exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True

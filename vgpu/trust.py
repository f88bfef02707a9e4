"""Which files vgpu-admin trusts: the way OpenSSH trusts its configuration.

vgpu-admin runs as root. A config file names the command it runs for the host (``host = "xe:/path"``), a
password file holds the host's root password, and the database holds what ``recover`` carries out: whoever
can change one of them can make root act for them. So each is used only when it, and every directory above
it, is owned by root or by the user running vgpu-admin and can be written by no one else (neither group nor
others), as sshd checks ``authorized_keys`` and the directories above it. A password file must also be
unreadable by anyone else. A directory further up than the file's own may be writable by everyone if it
has the sticky bit and belongs to root (``/tmp``): nobody else can then rename or remove what is in it.

The path is followed as the kernel will follow it when the file is opened (SQLite and open() resolve it
again, by name): every directory it goes through, before and after each symlink, is held to that rule, and
every symlink on the way must be root's or the user's. Then nobody else can swap any part of it between the
check and the open; checking only where the path leads now would leave that open.

A refusal is :class:`vgpu.errors.UnsafeFile`: one sentence naming the file (or directory) at fault and the
command that fixes it. Only :func:`create_private` writes: it creates an empty file without following a link.
"""

from __future__ import annotations

import errno  # loaded by the interpreter's start-up already
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


def _check_directory(path: str, what: str, directory: str, info: os.stat_result, nearest: bool) -> None:
    """``directory`` (its lstat ``info``), on the way to ``path``: owned by root or the user, and writable by
    no one else; a directory further up than ``nearest`` may be shared if it is sticky and root's (/tmp)."""
    if not _trusted_owner(info.st_uid):
        raise UnsafeFile(path, what, f"its directory {directory} is {_owner_problem(info.st_uid)}", _fix_owner(directory))
    if info.st_mode & 0o022:
        if not nearest and info.st_mode & stat.S_ISVTX and info.st_uid == 0:
            return
        fix = (f"keep the {what} in a directory only you can write to (install -d -m 700 DIR)"
               if info.st_mode & stat.S_ISVTX else f"chmod go-w {directory}")
        raise UnsafeFile(path, what, f"its directory {directory} can be written by others ({_mode(info)})", fix)


def _names(path: str) -> list[str]:
    """The names in ``path`` as a stack, the first to look up last."""
    return [name for name in reversed(path.split("/")) if name not in ("", ".")]


_LINKS_MAX = 40  # the kernel's own limit (ELOOP)
_TOO_MANY_LINKS = f"its path follows more than {_LINKS_MAX} symlinks"


def unfollowable(exc: OSError) -> str | None:
    """What is wrong with a path the system refused to follow (``exc`` from looking it up), said once for
    every caller: too long, or a symlink loop. None for any other error, which its caller says itself."""
    if exc.errno == errno.ENAMETOOLONG:
        return "its path is too long for the system"
    if exc.errno == errno.ELOOP:
        return _TOO_MANY_LINKS
    return None


def _resolve(path: str, what: str, named: str) -> tuple[str, os.stat_result | None, os.stat_result]:
    """Follow ``path`` from / as the kernel will when it is opened, one name at a time, and refuse (naming
    ``named``) anything someone else could change between now and then: every directory a name is looked up
    in, before and after each symlink, must be trusted, and every symlink followed owned by root or the user
    (a trusted directory, or a sticky one like /tmp, then keeps it as it is). What passes resolves the same
    way at the open; ".." after a symlink goes up from where the symlink led, as the kernel goes. Returns
    the real path, its lstat (None when nothing is there) and its directory's lstat."""
    pending = _names(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
    real = "/"
    seen = {real: os.lstat(real)}  # every directory on the way down, by its real path: ".." goes back up
    final_link = ""
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":
            real = os.path.dirname(real)
            continue
        candidate = os.path.join(real, name)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            if final_link:
                raise _dangling(named, what, final_link) from None
            if pending:
                raise
            return candidate, None, seen[real]
        if stat.S_ISLNK(info.st_mode):
            _check_link(named, what, candidate, info, path_is_link=not pending and not final_link)
            links += 1
            if links > _LINKS_MAX:
                raise UnsafeFile(named, what, _TOO_MANY_LINKS, "give the real path")
            final_link = final_link or ("" if pending else candidate)
            target = os.readlink(candidate)
            _check_directory(named, what, real, seen[real], nearest=False)
            real = "/" if target.startswith("/") else real
            pending.extend(_names(target))
            continue
        _check_directory(named, what, real, seen[real], nearest=False)
        if not pending:
            return candidate, info, seen[real]
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), candidate)
        real = candidate
        seen[real] = info
    return real, seen[real], seen[os.path.dirname(real)]  # the path ended in "..", or is "/"


def missing_directory(path: str) -> str | None:
    """The directory that a file at ``path`` cannot be opened or created in because it is not one (missing, or
    a file), as the kernel follows the path: the path's own directory, or, when that is there by the letter,
    the name a ".." in it would go back up from ("nodir" of "nodir/../v.db"). None when there is none."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return directory
    written = os.path.dirname(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
    if os.path.isdir(written):
        return None
    prefix = ""
    for name in written.split("/")[1:]:
        prefix = f"{prefix}/{name}"
        if name not in ("", ".", "..") and not os.path.isdir(prefix):
            return prefix
    return None  # made meanwhile: the open says what it finds


def _dangling(path: str, what: str, link: str) -> UnsafeFile:
    return UnsafeFile(path, what, f"it is a symlink to {os.path.realpath(link)}, which does not exist, and vgpu-admin never "
                      "creates a file through a symlink", f"rm {link}, or give the real path")


def _check_link(path: str, what: str, link: str, info: os.stat_result, path_is_link: bool) -> None:
    if _trusted_owner(info.st_uid):
        return
    if path_is_link:
        raise UnsafeFile(path, what, f"it is a symlink {_owner_problem(info.st_uid)}", f"rm {link}, or give the real path")
    raise UnsafeFile(path, what, f"its path goes through the symlink {link}, {_owner_problem(info.st_uid)}",
                     f"rm {link}, or give the real path")


def check_directory(directory: str, what: str) -> None:
    """Before creating a ``what`` in ``directory``: it and the directories above it are safe (a refusal names
    the directory; check_new_file names the file)."""
    named = os.path.abspath(directory)
    real, info, _ = _resolve(directory, what, named)
    if info is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), named)
    _check_directory(named, what, real, info, nearest=True)


def check_new_file(path: str, what: str) -> str:
    """Before creating the ``what`` at ``path``: its directory and every one above it are safe. A refusal
    names the file, as the user gave it made absolute, and the directory at fault. Returns the real path to
    create it at."""
    named = os.path.abspath(path)
    real, _, directory = _resolve(path, what, named)
    _check_directory(named, what, os.path.dirname(real), directory, nearest=True)
    return real


def check_file(path: str, what: str, *, private: bool = False) -> os.stat_result:
    """Raise UnsafeFile unless the existing file ``path`` (``what``: "config file", "database", ...), every
    directory on the way to it, and every symlink followed, are owned by root or the user and writable by no
    one else (see _resolve); with ``private``, unreadable by anyone else too. Returns the file's stat."""
    return _checked(path, what, private)[1]


def _checked(path: str, what: str, private: bool) -> tuple[str, os.stat_result]:
    if "\0" in path:
        raise UnsafeFile(path.replace("\0", "\\0"), what, "its path holds a NUL character", "give the right path")
    try:
        try:
            os.lstat(path)  # nothing there (the usual user config): FileNotFoundError after one look, not a walk
        except NotADirectoryError:
            pass  # the walk names the file that stands where a directory belongs
        real, info, directory = _resolve(path, what, path)
    except OSError as exc:
        problem = unfollowable(exc)
        if problem is None:
            raise
        fix = "give the real path" if exc.errno == errno.ELOOP else "give a shorter path"
        raise UnsafeFile(path, what, problem, fix) from None
    if info is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    _check_content(path, what, real, info, private)
    _check_directory(path, what, os.path.dirname(real), directory, nearest=True)
    return real, info


def _check_content(path: str, what: str, real: str, info: os.stat_result, private: bool) -> None:
    """The file itself (``real``, its lstat ``info``): a regular file only root or the user can change."""
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(path, what, f"{real} is not a regular file", "give the path of a file")
    if not _trusted_owner(info.st_uid):
        raise UnsafeFile(path, what, f"it is {_owner_problem(info.st_uid)}", _fix_owner(real))
    if info.st_mode & 0o022:
        raise UnsafeFile(path, what, f"others can change it ({_mode(info)})", f"chmod go-w {real}")
    if private and info.st_mode & 0o077:
        raise UnsafeFile(path, what, f"others can read it ({_mode(info)})", f"chmod 600 {real}")


def check_file_if_present(path: str, what: str) -> os.stat_result | None:
    """check_file for a file that another process may delete at any moment (SQLite's -journal, -wal and
    -shm come and go with its transactions): None if it is gone, since a file that is gone holds nothing
    to distrust."""
    try:
        return check_file(path, what)
    except FileNotFoundError:
        return None


def real_path_if_present(path: str, what: str) -> str | None:
    """check_file_if_present, giving the real path of the file checked (where SQLite, which resolves
    symlinks itself, keeps the -wal and -shm files), or None."""
    try:
        return _checked(path, what, False)[0]
    except FileNotFoundError:
        return None


def check_beside(real: str, names: tuple[str, ...], what: str) -> None:
    """check_file_if_present for each of ``names`` in the directory of ``real``, a file check_file passed
    (so that directory and those above it are trusted already): one look at each, unless it is a symlink."""
    directory = os.path.dirname(real)
    for name in names:
        companion = os.path.join(directory, name)
        try:
            info = os.lstat(companion)
        except FileNotFoundError:
            continue  # none, or just removed (SQLite deletes its -journal as a transaction ends)
        if stat.S_ISLNK(info.st_mode):
            check_file_if_present(companion, what)  # where it leads is checked all the way
        else:
            _check_content(companion, what, companion, info, False)


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
    except NotADirectoryError as exc:
        raise ConfigError(path, f"cannot read {what}: {exc.filename} is not a directory") from None
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

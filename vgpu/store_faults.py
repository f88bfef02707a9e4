"""Why SQLite could not read or write the database file, said in the admin's words.

SQLite's own words ("attempt to write a readonly database", "disk I/O error") name neither the file nor the
cause. Its error code (``sqlite_errorname``, Python 3.11) narrows the cause; the file system, asked after
the failure, names it: a file or directory without write access, a file system mounted read-only, a full
disk. Only asked on a failure, so the usual path costs nothing. A WAL database needs its -wal and -shm files
even to be read, so a place SQLite cannot create them beside it stops reads too (SQLITE_CANTOPEN).
"""

from __future__ import annotations

import os
import sqlite3

# I/O errors that happen while reading: "could not read", not "could not write".
_READING = ("SQLITE_IOERR_READ", "SQLITE_IOERR_SHORT_READ", "SQLITE_IOERR_FSTAT", "SQLITE_IOERR_MMAP")


def code_of(exc: sqlite3.Error) -> str:
    """SQLite's name for the error (``SQLITE_READONLY_DBMOVED``), or "" when the exception carries none."""
    name = getattr(exc, "sqlite_errorname", None)
    return name if isinstance(name, str) else ""


def sentence(path: str, exc: sqlite3.OperationalError) -> str | None:
    """One sentence naming ``path`` and why it could not be written (or read, or opened), for a read-only,
    full or failing file; None for any other failure."""
    code, text = code_of(exc), str(exc)
    if code.startswith("SQLITE_CANTOPEN"):
        why = _why_cannot_open(path)
        return None if why is None else f"cannot open database {path}: {why}"
    if code.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return f"could not write to database {path}: {_why_read_only(path, code)}"
    if code.startswith("SQLITE_FULL") or "disk is full" in text:
        return f"could not write to database {path}: the disk is full"
    if code.startswith("SQLITE_IOERR") or "disk I/O" in text:
        if code in _READING:
            return f"could not read database {path}: the disk reported an I/O error ({code})"
        return f"could not write to database {path}: {_why_io_failed(path, code)}"
    return None


def _why_read_only(path: str, code: str) -> str:
    if code == "SQLITE_READONLY_DBMOVED":
        return "the file was moved or deleted while it was open; run the command again"
    directory = os.path.dirname(os.path.abspath(path))
    if _read_only_mount(directory):
        return "the file system holding it is mounted read-only"
    if not os.access(path, os.W_OK):
        return "the file is read-only (changes need write access to it and its directory)"
    if _directory_read_only(directory):
        return _read_only_directory(directory)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix) and not os.access(path + suffix, os.W_OK):
            return f"its {os.path.basename(path)}{suffix} file is read-only"
    return "SQLite opened it read-only (changes need write access to it and its directory)"


def _why_cannot_open(path: str) -> str | None:
    """Why SQLite could not create the -wal and -shm files it needs to open ``path``; None when neither
    cause is found (SQLite's own words are then all there is)."""
    directory = os.path.dirname(os.path.abspath(path))
    if _read_only_mount(directory):
        return "the file system holding it is mounted read-only (SQLite creates its -wal and -shm files beside it, even to read)"
    if _directory_read_only(directory):
        return _read_only_directory(directory)
    return None


def _read_only_directory(directory: str) -> str:
    return f"its directory {directory} is read-only (SQLite writes its -wal and -shm files there)"


def _directory_read_only(directory: str) -> bool:
    return not os.access(directory, os.W_OK | os.X_OK)


def _why_io_failed(path: str, code: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if _read_only_mount(directory):
        return "the file system holding it is mounted read-only"
    if _disk_full(directory):
        return "the disk is full"
    return f"the disk reported an I/O error ({code or 'disk I/O error'})"


def _read_only_mount(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _disk_full(directory: str) -> bool:
    try:
        found = os.statvfs(directory)
    except OSError:
        return False
    return found.f_bavail == 0 or (found.f_files > 0 and found.f_favail == 0)

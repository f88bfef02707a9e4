"""Files trusted the way ssh trusts its configuration (issue 11): a config file, a password file or a database
that another user planted, or could change, is refused in one sentence naming the file and the fix.

The suite runs as root, so "another user" is ``nobody``: files are planted with os.chown, or with the modes
such a user would leave (group- or world-writable files and directories).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from vgpu import trust
from vgpu.errors import ConfigError, UnsafeFile
from vgpu.store import Store

from .clikit import SpecHost, digest, run

NOBODY = 65534


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def hostile_xe(tmp_path: Path) -> tuple[Path, Path]:
    """A script a config file could name as the host's xe; it leaves a marker when root runs it."""
    marker = tmp_path / "pwned"
    script = tmp_path / "their-xe"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    return script, marker


def write_config(path: Path, text: str, mode: int = 0o644, owner: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def refused(outcome, *words: str) -> str:
    assert outcome.code == 2, outcome
    line = outcome.one_error_line()
    assert line.startswith("error: refusing the "), line
    for word in words:
        assert word in line, line
    return line


# --- config files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("owner,mode,problem", [
    (NOBODY, 0o644, "it is owned by nobody (uid 65534), not by root; fix: check what it holds, then chown root"),
    (None, 0o666, "others can change it (mode 0666); fix: chmod go-w"),
    (None, 0o664, "others can change it (mode 0664); fix: chmod go-w"),
])
def test_a_config_file_someone_else_can_change_is_refused_and_its_host_never_runs(tmp_path, isolated_environment, owner, mode, problem):
    script, marker = hostile_xe(tmp_path)
    config = write_config(isolated_environment / "config" / "vgpu" / "config.toml", f'host = "xe:{script}"\n', mode, owner)
    line = refused(run(["scan-vms"]), str(config), problem)
    assert line.startswith(f"error: refusing the config file {config}: ")
    assert not marker.exists()


def test_the_system_config_is_checked_too(tmp_path, monkeypatch):
    script, marker = hostile_xe(tmp_path)
    folder = tmp_path / "etc-vgpu"
    folder.mkdir(mode=0o755)
    config = write_config(folder / "config.toml", f'host = "xe:{script}"\n', owner=NOBODY)
    monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(config))
    refused(run(["list-pools"]), str(config), "owned by nobody")
    assert not marker.exists()


def test_a_config_in_a_directory_others_can_write_is_refused(tmp_path, isolated_environment):
    script, marker = hostile_xe(tmp_path)
    folder = isolated_environment / "config" / "vgpu"
    write_config(folder / "config.toml", f'host = "xe:{script}"\n')
    folder.chmod(0o777)  # anyone could have replaced the file, or will
    refused(run(["scan-vms"]), f"its directory {folder} can be written by others (mode 0777); fix: chmod go-w {folder}")
    assert not marker.exists()


def test_a_safe_config_is_read(tmp_path, isolated_environment, spec):
    write_config(isolated_environment / "config" / "vgpu" / "config.toml", f'db = "{spec.db}"\nhost = "sim:{spec.host_file}"\n', 0o600)
    assert run(["list-pools"]).code == 0


def test_a_config_file_removed_while_we_look_is_read_as_absent(tmp_path, isolated_environment, spec, monkeypatch):
    # An editor that deletes the file and writes it anew, or an admin's rm, between our seeing the file and
    # checking it: that is no config file, not a traceback.
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.parent.mkdir(parents=True)
    seen = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda name: str(name) == str(config) or seen(name))
    outcome = run(["--db", str(spec.db), "list-pools"])
    assert outcome.code == 0, outcome


def test_a_config_that_is_a_dangling_symlink_is_refused_not_ignored(tmp_path, isolated_environment, spec):
    # Ignoring it would run with the defaults: another database than the one the admin's config names.
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.parent.mkdir(parents=True)
    config.symlink_to(tmp_path / "unmounted" / "config.toml")
    refused(run(["list-pools"]), f"refusing the config file {config}: it is a symlink to {tmp_path / 'unmounted' / 'config.toml'}, "
                                 "which does not exist")


def _unsearchable(monkeypatch, path: Path) -> None:
    """As if a user who is not root ran vgpu-admin and a directory above ``path`` (say /etc/vgpu, mode
    0700) let them not even look at it: the suite runs as root, which the kernel never refuses."""
    lstat = os.lstat

    def refusing(name, *args, **kwargs):
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return lstat(name, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", refusing)


def test_a_config_file_the_user_may_not_look_at_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    folder = tmp_path / "etc-vgpu"
    config = write_config(folder / "config.toml", 'db = "/tmp/x.db"\n')
    monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(config))
    _unsearchable(monkeypatch, config)
    outcome = run(["list-pools"])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == f"error: {config}: cannot read config file: permission denied"



def _linked_through_a_shared_directory(tmp_path: Path, link_owner: int = NOBODY) -> tuple[Path, Path]:
    """good/ (private) reached as ww/dl/: ww can be written by anyone (not sticky), and the link dl in it is
    another user's, so they can point it elsewhere (at a folder of theirs) at any moment."""
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    shared = tmp_path / "ww"
    shared.mkdir()
    shared.chmod(0o777)
    link = shared / "dl"
    link.symlink_to(good)
    os.lchown(link, link_owner, link_owner)
    return good, link


def test_a_config_reached_through_a_symlink_another_user_owns_is_refused(tmp_path, monkeypatch):
    # The check used to look only at the directories of the real path: ww and the link were never seen,
    # and open() resolves the path again, by when the link may point at the other user's config.
    script, marker = hostile_xe(tmp_path)
    good, link = _linked_through_a_shared_directory(tmp_path)
    write_config(good / "config.toml", f'host = "xe:{script}"\n')
    monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(link / "config.toml"))
    refused(run(["scan-vms"]), f"refusing the config file {link / 'config.toml'}: its path goes through the symlink {link}, "
                               f"owned by nobody (uid 65534), not by root; fix: rm {link}, or give the real path")
    assert not marker.exists()


def test_a_config_file_whose_directory_is_a_file_is_one_line_not_a_traceback(tmp_path, isolated_environment, spec, monkeypatch):
    plain = tmp_path / "f"
    plain.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(plain))
    outcome = run(["--db", str(spec.db), "list-pools"])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == f"error: {plain}/vgpu/config.toml: cannot read config file: {plain} is not a directory"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("VGPU_SYSTEM_CONFIG", str(plain / "config.toml"))
    outcome = run(["--db", str(spec.db), "list-pools"])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == f"error: {plain}/config.toml: cannot read config file: {plain} is not a directory"


def test_a_data_directory_below_a_file_is_one_line_not_an_internal_error(tmp_path, isolated_environment, monkeypatch):
    plain = tmp_path / "f"
    plain.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(plain))
    outcome = run(["--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == f"error: {plain}/vgpu: cannot create directory: {plain} is not a directory"


def test_a_data_directory_that_is_a_file_is_named(tmp_path, isolated_environment, monkeypatch):
    (isolated_environment / "data" / "vgpu").write_text("")
    outcome = run(["--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
    assert outcome.code == 2, outcome
    folder = isolated_environment / "data" / "vgpu"
    assert outcome.one_error_line() == f"error: {folder}: cannot create directory: {folder} is not a directory"


def test_a_password_file_whose_directory_is_a_file_is_one_line(tmp_path):
    plain = tmp_path / "f"
    plain.write_text("")
    with pytest.raises(ConfigError) as caught:
        trust.read_secret(str(plain / "xapi-password"))
    assert str(caught.value) == f"{plain}/xapi-password: cannot read password file: {plain} is not a directory"


# --- the database --------------------------------------------------------------------------------------------


def test_a_dangling_symlink_planted_in_a_shared_directory_is_never_followed(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    target = tmp_path / "elsewhere" / "planted.db"
    target.parent.mkdir()
    link = shared / "vgpu.db"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    outcome = run(["--db", str(link), "--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
    refused(outcome, f"refusing the database {link}: it is a symlink owned by nobody")
    assert not target.exists()


def test_a_dangling_symlink_is_refused_even_in_a_safe_directory(tmp_path):
    target = tmp_path / "not-yet.db"
    link = tmp_path / "vgpu.db"
    link.symlink_to(target)
    with pytest.raises(UnsafeFile) as caught:
        Store(link)
    assert str(caught.value) == (f"refusing the database {link}: it is a symlink to {target}, which does not exist, and "
                                 f"vgpu-admin never creates a file through a symlink; fix: rm {link}, or give the real path")
    assert not target.exists()


def test_a_symlink_to_a_safe_database_is_used(tmp_path, spec):
    link = tmp_path / "link.db"
    link.symlink_to(spec.db)
    assert run(["--db", str(link), "--host", f"sim:{spec.host_file}", "list-vms"]).code == 0


def test_a_database_anyone_can_write_is_refused_and_its_planted_operation_never_runs(spec):
    uuid = spec.uuid("VM-1")
    conn = sqlite3.connect(spec.db, isolation_level=None)
    conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, old, new, was_running, owner) VALUES (?, 'remove', "
                 "'writing-args', NULL, NULL, 0, 'gone:1 (interrupted)')", (uuid,))
    conn.close()
    os.chown(spec.db, NOBODY, NOBODY)
    spec.db.chmod(0o666)
    host = digest(spec.host_file)
    refused(spec.cli("recover"), f"refusing the database {spec.db}: it is owned by nobody")
    spec.db.chmod(0o600)
    refused(spec.cli("recover"), "owned by nobody")
    os.chown(spec.db, 0, 0)
    spec.db.chmod(0o666)
    refused(spec.cli("recover"), f"others can change it (mode 0666); fix: chmod go-w {spec.db}")
    assert digest(spec.host_file) == host
    spec.db.chmod(0o600)
    assert spec.vm("VM-1") is not None  # the planted removal never ran


def test_a_database_the_user_may_not_look_at_is_one_line_not_a_traceback(tmp_path, spec, monkeypatch):
    _unsearchable(monkeypatch, spec.db)
    outcome = spec.cli("list-pools")
    assert outcome.code != 0 and outcome.one_error_line() == f"error: cannot open database {spec.db}: permission denied"


def test_a_database_in_a_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky, like /tmp: still, anyone could plant vgpu.db-wal beside the database
    with pytest.raises(UnsafeFile) as caught:
        Store(shared / "vgpu.db")
    assert f"its directory {shared} can be written by others (mode 1777)" in str(caught.value)
    assert "keep the database in a directory only you can write to" in str(caught.value)
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("given", ["absolute", "relative"])
def test_a_new_database_in_a_shared_directory_is_refused_naming_the_file_and_its_directory(tmp_path, monkeypatch, given):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.chdir(shared)
    db = shared / "vgpu-explore-new.db"
    outcome = run(["--db", str(db) if given == "absolute" else db.name, "list-pools"])
    assert outcome.one_error_line() == (
        f"error: refusing the database {db}: its directory {shared} can be written by others (mode 1777); "
        "fix: keep the database in a directory only you can write to (install -d -m 700 DIR)")
    assert outcome.code == 2 and list(shared.iterdir()) == []


def test_a_directory_checked_before_creating_files_in_it_is_named_itself(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeFile) as caught:
        trust.check_directory(str(shared), "log")
    assert caught.value.path == str(shared) and f"its directory {shared} can be written by others" in str(caught.value)


def test_a_new_database_is_created_private_and_a_sticky_directory_further_up_is_fine(tmp_path):
    sticky = tmp_path / "tmp-like"
    sticky.mkdir()
    sticky.chmod(0o1777)
    own = sticky / "mine"
    own.mkdir(mode=0o700)
    Store(own / "vgpu.db").close()
    assert stat.S_IMODE(os.stat(own / "vgpu.db").st_mode) == 0o600


def test_a_companion_file_sqlite_removes_while_we_look_does_not_stop_the_open(tmp_path, monkeypatch):
    # Another process's transaction ends between our seeing vgpu.db-journal and checking it: SQLite deletes
    # the journal then. A file that is gone holds nothing to distrust (CI saw this with eight processes).
    path = tmp_path / "vgpu.db"
    Store(path).close()
    seen = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda name: str(name).endswith("-journal") or seen(name))
    with Store(path) as store:
        assert store.path == str(path)


def test_a_file_that_vanishes_before_its_check_is_reported_absent(tmp_path):
    assert trust.check_file_if_present(str(tmp_path / "gone"), "database") is None
    present = tmp_path / "here"
    present.write_text("")
    info = trust.check_file_if_present(str(present), "database")
    assert info is not None and info.st_ino == os.stat(present).st_ino
    present.chmod(0o666)
    with pytest.raises(UnsafeFile, match="others can change it"):
        trust.check_file_if_present(str(present), "database")



def test_a_database_reached_through_a_symlink_another_user_owns_is_refused(tmp_path):
    good, link = _linked_through_a_shared_directory(tmp_path)
    spec = SpecHost(good)
    before = spec.files()
    outcome = run(["--db", str(link / "vgpu.db"), "--host", f"sim:{spec.host_file}", "set-pool-name", "--pool-id=A",
                   "--name=viaLink"])
    refused(outcome, f"refusing the database {link / 'vgpu.db'}: its path goes through the symlink {link}, owned by nobody")
    assert spec.files() == before


def test_a_database_reached_through_a_directory_others_can_write_is_refused_whoever_owns_the_link(tmp_path):
    good, link = _linked_through_a_shared_directory(tmp_path, link_owner=0)
    Store(good / "vgpu.db").close()
    with pytest.raises(UnsafeFile) as caught:
        Store(link / "vgpu.db")
    assert str(caught.value) == (f"refusing the database {link / 'vgpu.db'}: its directory {link.parent} can be written by "
                                 f"others (mode 0777); fix: chmod go-w {link.parent}")


def test_a_symlink_of_ours_in_a_sticky_directory_is_followed(tmp_path):
    # Like /tmp: others may add names, but not rename or remove ours.
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    Store(good / "vgpu.db").close()
    sticky = tmp_path / "tmp-like"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "ours").symlink_to(good)
    Store(sticky / "ours" / "vgpu.db").close()
    os.lchown(sticky / "ours", NOBODY, NOBODY)
    with pytest.raises(UnsafeFile, match="its path goes through the symlink .*ours, owned by nobody"):
        Store(sticky / "ours" / "vgpu.db")


def test_dot_dot_after_a_symlink_is_followed_as_the_kernel_follows_it(tmp_path):
    # good/link/../vgpu.db is, to the kernel and SQLite, theirs/vgpu.db, not good/vgpu.db.
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    Store(good / "vgpu.db").close()
    theirs = tmp_path / "theirs"
    (theirs / "sub").mkdir(parents=True)
    Store(theirs / "vgpu.db").close()
    os.chown(theirs, NOBODY, NOBODY)
    (good / "link").symlink_to(theirs / "sub")
    with pytest.raises(UnsafeFile) as caught:
        Store(f"{good}/link/../vgpu.db")
    assert f"its directory {theirs} is owned by nobody (uid 65534)" in str(caught.value)
    with pytest.raises(UnsafeFile) as caught:
        Store(f"{good}/link/../new.db")  # nor is a new database created in their folder
    assert f"refusing the database {good / 'new.db'}: its directory {theirs} is owned by nobody" in str(caught.value)
    assert not (theirs / "new.db").exists() and not (good / "new.db").exists()


def test_the_companions_checked_are_those_beside_the_real_database(tmp_path):
    # SQLite opens vgpu.db-wal and -shm beside the file a symlink points to, not beside the symlink.
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    spec = SpecHost(real)
    (tmp_path / "link.db").symlink_to(spec.db)
    planted = real / "vgpu.db-wal"
    planted.write_bytes(b"")
    os.chown(planted, NOBODY, NOBODY)
    outcome = run(["--db", str(tmp_path / "link.db"), "--host", f"sim:{spec.host_file}", "list-pools"])
    refused(outcome, f"refusing the database {planted}: it is owned by nobody")


def test_a_database_below_a_file_says_so(tmp_path):
    plain = tmp_path / "f"
    plain.write_text("")
    outcome = run(["--db", str(plain / "x.db"), "--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
    assert outcome.code == 1, outcome
    assert outcome.one_error_line() == f"error: cannot open database {plain / 'x.db'}: {plain} is not a directory"


# --- the rule itself ------------------------------------------------------------------------------------------


def test_files_of_the_invoking_user_are_trusted_and_others_not(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # as if a user without a name, not root, ran vgpu-admin
    os.chown(path, 4242, 4242)
    trust.check_file(str(path), "config file")
    os.chown(path, 0, 0)
    trust.check_file(str(path), "config file")
    os.chown(path, 4243, 4243)
    with pytest.raises(UnsafeFile, match=r"owned by uid 4243, not by root or uid 4242; fix: check what it holds, then chown 4242 "):
        trust.check_file(str(path), "config file")


def test_a_password_file_must_be_private(tmp_path):
    path = tmp_path / "xapi-password"
    path.write_text("s3cret\nignored\n")
    path.chmod(0o640)
    with pytest.raises(UnsafeFile, match=r"others can read it \(mode 0640\); fix: chmod 600"):
        trust.read_secret(str(path))
    path.chmod(0o600)
    assert trust.read_secret(str(path)) == "s3cret"
    path.write_text("\n")
    with pytest.raises(UnsafeFile, match="its first line is empty"):
        trust.read_secret(str(path))


def test_the_log_of_an_internal_error_is_never_written_through_a_planted_symlink(tmp_path, isolated_environment, spec, monkeypatch):
    state = isolated_environment / "state" / "vgpu"
    state.mkdir(parents=True)
    state.chmod(0o777)  # a state directory others could write to, once
    target = tmp_path / "root-owned-file"
    target.write_text("keep\n")
    (state / "vgpu-admin.log").symlink_to(target)
    monkeypatch.setattr("shell.handlers.list_pools", lambda ctx, opts: 1 / 0)
    outcome = spec.cli("list-pools")
    assert outcome.code == 1 and outcome.one_error_line().endswith("(the log could not be written)")
    assert target.read_text() == "keep\n"
    state.chmod(0o700)
    (state / "vgpu-admin.log").unlink()
    assert spec.cli("list-pools").one_error_line().endswith(f"(details in {state / 'vgpu-admin.log'})")
    assert stat.S_IMODE(os.stat(state / "vgpu-admin.log").st_mode) == 0o600
    assert "ZeroDivisionError" in (state / "vgpu-admin.log").read_text()


# --- paths the system cannot follow: too long, or a symlink loop --------------------------------------------

_TOO_LONG = "/tmp/" + "c" * 300
_TOO_LONG_PROBLEM = "its path is too long for the system; fix: give a shorter path"
_LOOP_PROBLEM = "its path follows more than 40 symlinks; fix: give the real path"


@pytest.fixture
def loop(tmp_path):
    (tmp_path / "l2").symlink_to("l1")
    (tmp_path / "l1").symlink_to("l2")
    return tmp_path / "l1"


def test_a_config_home_too_long_or_looping_is_one_line_naming_the_file(isolated_environment, spec, monkeypatch, loop):
    for home, problem in ((_TOO_LONG, _TOO_LONG_PROBLEM), (str(loop), _LOOP_PROBLEM)):
        monkeypatch.setenv("XDG_CONFIG_HOME", home)
        outcome = run(["--db", str(spec.db), "list-pools"])
        assert outcome.code == 2, outcome
        assert outcome.one_error_line() == f"error: refusing the config file {home}/vgpu/config.toml: {problem}"


def test_a_system_config_too_long_or_looping_is_one_line_naming_the_file(isolated_environment, spec, monkeypatch, loop):
    for path, problem in ((_TOO_LONG + ".toml", _TOO_LONG_PROBLEM), (f"{loop}/config.toml", _LOOP_PROBLEM)):
        monkeypatch.setenv("VGPU_SYSTEM_CONFIG", path)
        outcome = run(["--db", str(spec.db), "list-pools"])
        assert outcome.code == 2, outcome
        assert outcome.one_error_line() == f"error: refusing the config file {path}: {problem}"


def test_a_database_path_too_long_or_looping_is_one_line_naming_it(tmp_path, loop):
    for path, problem in ((_TOO_LONG + ".db", _TOO_LONG_PROBLEM), (str(loop), _LOOP_PROBLEM)):
        outcome = run(["--db", path, "--host", f"sim:{tmp_path / 'host.json'}", "list-pools"])
        assert outcome.code == 2, outcome
        assert outcome.one_error_line() == f"error: refusing the database {path}: {problem}"


def test_a_simulated_host_path_too_long_or_looping_is_a_host_sentence(spec, loop):
    # As a simulated host directory that does not exist is: the host cannot be reached (exit 1), never an
    # internal error.
    for path, problem in ((_TOO_LONG, "its path is too long for the system"),
                          (str(loop), "its path follows more than 40 symlinks")):
        outcome = run(["--db", str(spec.db), "--host", f"sim:{path}", "scan-vms"])
        assert outcome.code == 1, outcome
        assert outcome.one_error_line() == f"error: cannot reach the host: simulated host file {path}: {problem}"

"""The vgpu> shell (or lines piped into it) whose database file is replaced (a backup restored with ``mv``)
or deleted between two commands: the file there now is reopened with a line saying so, or, while there is
none, the commands that need it are refused; nothing is written through the old connection."""

from __future__ import annotations

import io
import os

import pytest

from shell.console import Console, stdin_reader
from shell.context import Context
from shell.script import run_lines
from vgpu import config, pools
from vgpu.store import Store

from .clikit import SpecHost
from .test_replaced_db import backup_named, pool_a_name_and_integrity


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


class LinesAndActions:
    """A script's lines, with actions run when they are reached (between two lines, as an admin would)."""

    def __init__(self, *items) -> None:
        self.items = list(items)

    def readline(self) -> str:
        while self.items and callable(self.items[0]):
            self.items.pop(0)()
        return self.items.pop(0) if self.items else ""

    def isatty(self) -> bool:
        return False


def shell_context(spec: SpecHost) -> tuple[Context, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(config.load({"db": str(spec.db), "host": f"sim:{spec.host_file}"}), Console(out, err, stdin_reader(out)))
    return ctx, out, err


def test_the_shell_reopens_a_replaced_database_and_says_so(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    ctx, out, err = shell_context(spec)
    restore = lambda: os.replace(spec.folder / "backup.db", spec.db)  # noqa: E731
    code = run_lines(ctx, LinesAndActions("list-pools\n", restore, "set-pool-name --pool-id=B --name=Bee\n", "list-pools\n"))
    ctx.close()
    assert code == 0, err.getvalue()
    assert err.getvalue() == f"database {spec.db} was replaced; reopened it\n"
    assert out.getvalue().splitlines()[-2].startswith('Pool A: "Restored"')  # the new file's, read by the new connection
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")
    with Store(spec.db) as store:
        assert pools.list_pools(store)[1].pool_name == "Bee"  # the change went to the file the path names


def test_the_shell_refuses_commands_while_its_database_is_deleted_and_reopens_it_when_restored(spec):
    backup_named(spec.db, spec.folder / "backup.db", "Restored")
    ctx, out, err = shell_context(spec)
    delete = lambda: os.unlink(spec.db)  # noqa: E731
    restore = lambda: os.replace(spec.folder / "backup.db", spec.db)  # noqa: E731
    lines = LinesAndActions("list-pools\n", delete, "set-pool-name --pool-id=A --name=Zed\n", "help list-pools\n",
                            "list-pools\n", restore, "set-pool-name --pool-id=B --name=Bee\n")
    code = run_lines(ctx, lines, keep_going=True)
    ctx.close()
    assert code == 1
    errors = err.getvalue().splitlines()
    refused = f"error: database {spec.db} was deleted since this shell opened it"
    assert errors[0].startswith(refused) and errors[2].startswith(refused)  # set-pool-name, then list-pools
    assert errors[4] == f"database {spec.db} was replaced; reopened it"
    assert 'Pool B is now named "Bee".' in out.getvalue() and "Zed" not in out.getvalue()
    assert pool_a_name_and_integrity(spec.db) == ("Restored", "ok")

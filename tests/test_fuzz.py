"""The fuzz test (issue 11): the CLI entry point and the vgpu> shell's line handler, driven with generated
command lines and lines, against a simulated host and a database that hold hostile names and arguments.

Inputs: the command table's commands and options with valid values, and everything else a person or an
attacker could type: unicode, NUL, huge numbers and strings, names with escape sequences, unbalanced
quotes, unknown commands and options; stdin answers of every kind. Before each example one more hostile
thing may be planted: arguments or a name on a VM of the simulated host, or a row in the database (a name,
a row that breaks the spec's rules, a journal or audit entry). Whatever comes, there is no traceback and no
internal error, the exit code is 0 to 3, and a refused command (exit 2 or 3) changes no file.

Every example starts from a copy of the same world, so each is independent of the ones before it and a
failure shrinks to one command. In CI (HYPOTHESIS_PROFILE=ci) the two tests run 10,000 examples in all, with
a fixed seed (a fuzz test that found something new on some runs only would be a flaky test; run it with
VGPU_FUZZ_RANDOM=1 to explore), and print how many and how long.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shell import commands as table
from shell import runner
from shell.console import Console, stdin_reader
from shell.context import Context
from shell.main import main
from vgpu import config, devargs
from vgpu.hypervisor.sim import SimHost
from vgpu.models import Priority, VMConfig

from .clikit import SpecHost, digest

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
CLI_EXAMPLES, LINE_EXAMPLES = (6000, 4000) if PROFILE == "ci" else (300, 200)
FUZZ = settings(
    max_examples=CLI_EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get("VGPU_FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)

# --- the world -------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "evil\x1b[2J\x1b]0;owned\x07", "two\nlines | Status: ✓ Configured", "a, b", "\u202eeman", "nul\x00name",
    "x" * 300, "   ", "\"quoted\"", "VM-1", "名前-☃", "\udcff",
]
HOSTILE_ARGS = [
    "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=2;vm_id=" + "9" * 5000,
    "--fw_cfg opt/vgpu/config,string=pool=B;priority=0;vm_id=21 -fw_cfg name=opt/vgpu/config,string=x",
    "-append a; kind: b -fw_cfg string=pool=A;priority=1;vm_id=3,name=opt/vgpu/config",
    "-fw_cfg name=opt/vgpu/config,file=/etc/shadow", "-fw_cfg", "\x00\n\t-vnc :1", "'unbalanced", "x" * 10000,
]


def build_world(folder: Path) -> SpecHost:
    """The spec's 23 VMs, some renamed and re-argued by their owners, one more registered VM with a hostile name."""
    spec = SpecHost(folder)
    for number, (name, args) in enumerate(zip(HOSTILE_NAMES, HOSTILE_ARGS + HOSTILE_ARGS), start=21):
        if number <= 23:
            spec.sim.add_vm(spec.uuid(f"VM-{number}"), name, "running" if number % 2 else "halted", args)
    spec.sim.set_device_model_args(spec.uuid("VM-4"), HOSTILE_ARGS[2])
    conn = sqlite3.connect(spec.db, isolation_level=None)
    conn.execute("UPDATE vms SET vm_name = ? WHERE vm_name = 'VM-2'", (HOSTILE_NAMES[0],))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return spec


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> SpecHost:
    return build_world(tmp_path_factory.mktemp("fuzz-world"))


class Work:
    """A working copy of the template world, restored before each example."""

    def __init__(self, template: SpecHost, folder: Path) -> None:
        self.template, self.folder = template, folder
        self.db, self.host_file = folder / "vgpu.db", folder / "host.json"
        self.sim = SimHost(self.host_file)

    def reset(self) -> None:
        for stale in (self.folder / "vgpu.db-wal", self.folder / "vgpu.db-shm"):
            stale.unlink(missing_ok=True)  # a stale WAL would be replayed into the fresh copy
        shutil.copyfile(self.template.db, self.db)
        shutil.copyfile(self.template.host_file, self.host_file)

    def files(self) -> dict[str, str | None]:
        return {path.name: digest(path) for path in (self.db, self.folder / "vgpu.db-wal", self.host_file)}

    def uuid(self, number: int) -> str:
        return self.template.uuid(f"VM-{number}")

    def plant(self, plant) -> None:
        if plant is None:
            return
        kind, number, text = plant
        uuid = self.uuid(number)
        if kind == "args":
            self.sim.set_device_model_args(uuid, text)
        elif kind == "name":
            self.sim.add_vm(uuid, text, "running", self.sim.get_device_model_args(uuid))
        else:
            with contextlib.closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
                self._plant_row(conn, kind, uuid, text)

    @staticmethod
    def _plant_row(conn: sqlite3.Connection, kind: str, uuid: str, text) -> None:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("PRAGMA foreign_keys = OFF")
        if kind == "db_name":
            conn.execute("UPDATE vms SET vm_name = ? WHERE vm_uuid = ?", (text, uuid))
        elif kind == "db_value":
            column, value = text
            conn.execute(f"UPDATE vms SET {column} = ? WHERE vm_uuid = ?", (value, uuid))
        elif kind == "journal":
            conn.execute("INSERT INTO vgpu_operations (vm_uuid, kind, step, old, new, was_running, owner) "
                         "VALUES (?, ?, ?, ?, ?, 1, 'gone:1 (interrupted)')", (uuid, *text))
        elif kind == "audit":
            conn.execute("INSERT INTO vgpu_audit (action, subject, old, new) VALUES ('update', ?, ?, ?)", (uuid, *text))


@pytest.fixture
def work(template, tmp_path) -> Work:
    folder = tmp_path / "work"
    folder.mkdir()
    return Work(template, folder)


# --- what is typed ----------------------------------------------------------------------------------------

WEIRD = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\x1b[2J", "\n", "é", "☃", "\u202e", "9" * 5000, "x" * 20000, "-1", "0", "2147483648",
    "99999999999999999999", "A", "b", "C", "high", "LOW", "2", "1.5", "nan", "--", "-", "=", "'", '"', "\\", "*", "~",
    "$(touch /tmp/vgpu-fuzz-pwned)", "; rm -rf /", "xapi://root:hunter2@xen1", "-fw_cfg name=opt/vgpu/config,string=x",
])
TEXT = st.one_of(WEIRD, st.text(max_size=12), st.sampled_from(HOSTILE_NAMES))


def uuids() -> st.SearchStrategy[str]:
    known = [SpecHost.uuid(f"VM-{n}") for n in range(1, 24)]
    return mostly(st.sampled_from(known), st.one_of(st.sampled_from(known).map(str.upper), st.sampled_from(
        ["00000000-0000-4000-8000-000000000000", "VM-3", "vm-21", ""]), TEXT))


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy, tenths: int = 8) -> st.SearchStrategy:
    """``usual`` about ``tenths`` times in ten, else ``other``: most examples must get past the parser to test
    what lies behind it."""
    return st.integers(0, 9).flatmap(lambda roll: usual if roll < tenths else other)


def value_of(kind: str) -> st.SearchStrategy[str]:
    valid = {
        table.VM_UUID: uuids(), table.HOST_VM_UUID: uuids(), table.ANY_VM_UUID: uuids(),
        table.POOL: st.sampled_from(["A", "B", "a", "b"]), table.PRIORITY: st.sampled_from(["low", "medium", "high", "0", "2"]),
        table.VM_ID: st.integers(1, 40).map(str), table.VM_NAME: st.sampled_from(["web-1", "VM-9", ""]),
        table.TEXT: st.sampled_from(["Production", "Pool B", "dev"]), table.NUMBER: st.sampled_from(["1", "5", "50"]),
        table.FORMAT: st.sampled_from(["text", "json"]), table.COMMAND: st.sampled_from([c.name for c in table.COMMANDS]),
    }.get(kind, TEXT)
    return mostly(valid, TEXT)


COMMANDS = [command for command in table.COMMANDS if command.name != "shell"]  # the shell would read the real stdin
NOT_A_COMMAND = st.one_of(st.sampled_from(["?", "quit", "lsit-pools", "set-pol"]),
                          TEXT.filter(lambda word: word.strip() not in ("shell", "")))
JUNK = st.one_of(TEXT, st.sampled_from(["--format=json", "--bogus", "--pool", "-h", "--help"]))


@st.composite
def command_words(draw) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    words = [draw(mostly(st.just(command.name), NOT_A_COMMAND, 9))]
    for option in command.options:
        if not draw(mostly(st.just(True), st.just(False), 9 if option.required else 5)):
            continue
        if option.kind == table.FLAG:
            words.append(draw(mostly(st.just(option.flag), st.just(option.flag + "=1"), 9)))
        elif draw(st.booleans()):
            words.append(f"{option.flag}={draw(value_of(option.kind))}")
        else:
            words += [option.flag, draw(value_of(option.kind))]
    words += draw(mostly(st.just([]), st.lists(JUNK, min_size=1, max_size=2), 9))
    if command.positional is not None and draw(st.booleans()):
        words.append(draw(value_of(command.positional.kind)))
    return draw(mostly(st.just(words), st.permutations(words), 9))


def globals_for(work: Work) -> st.SearchStrategy[list[str]]:
    db = mostly(st.just(str(work.db)), st.sampled_from(
        [str(work.folder / "no" / "such.db"), str(work.folder), str(work.host_file), "a\x00b", ""]), 9)
    host = mostly(st.just(f"sim:{work.host_file}"), st.sampled_from(
        ["foo", "sim:", "xapi://root:hunter2@xen1", f"sim:{work.folder / 'no' / 'h.json'}", "xe:/nonexistent/xe",
         "xapi://root@127.0.0.1:1", "\x00"]), 9)
    return st.tuples(db, host).map(lambda pair: ["--db", pair[0], "--host", pair[1]])


ANSWERS = mostly(st.sampled_from(["yes\n", "no\n", "", "y\n", "maybe\nyes\n"]),
                 st.one_of(st.sampled_from(["\x00\n", "yes" * 1000, "no\nyes\n"]), TEXT))

ARG_TEXT = st.one_of(st.sampled_from(HOSTILE_ARGS), st.lists(st.one_of(
    st.sampled_from(["-fw_cfg", "--fw_cfg", "name=opt/vgpu/config,string=pool=A;priority=2;vm_id=1", "opt/vgpu/config",
                     "string=pool=B;priority=1;vm_id=2,name=opt/vgpu/config", "; kind:", "vm_id=" + "7" * 4400, "\x00"]),
    st.builds(devargs.render, st.builds(VMConfig, st.sampled_from(["A", "B"]), st.sampled_from(list(Priority)),
                                        st.integers(1, 30))),
    st.text(max_size=8)), max_size=6).map(" ".join))
STORABLE = TEXT.filter(lambda text: not any("\ud800" <= char <= "\udfff" for char in text))
JSON_TEXT = st.one_of(st.sampled_from(['{"pool_id": "A -device evil", "priority": 2, "vm_id": 1}', "not json", "[]", "null",
                                       '{"pool_id": "B", "priority": 1, "vm_id": 99999999999999999999}']), STORABLE)
PLANTS = st.one_of(
    st.none(), st.none(),
    st.tuples(st.just("args"), st.integers(1, 23), ARG_TEXT),
    st.tuples(st.just("name"), st.integers(1, 23), st.one_of(TEXT, st.sampled_from(HOSTILE_NAMES))),
    st.tuples(st.just("db_name"), st.integers(1, 20), STORABLE),
    st.tuples(st.just("db_value"), st.integers(1, 20), st.sampled_from([
        ("priority", 7), ("pool_id", "C"), ("vm_id", -1), ("vm_id", "seven"), ("vm_uuid", "x"), ("priority", 1.5)])),
    st.tuples(st.just("journal"), st.integers(1, 23), st.tuples(
        st.sampled_from(["reconfigure", "register", "remove", "repair", "evil"]),
        st.sampled_from(["planned", "stopping", "db-updated", "writing-args", "starting", "x"]), JSON_TEXT, JSON_TEXT)),
    st.tuples(st.just("audit"), st.integers(1, 23), st.tuples(JSON_TEXT, JSON_TEXT)),
)


# --- the checks ----------------------------------------------------------------------------------------------


def check(work: Work, before: dict, what: object, code: int | None, out: str, err: str) -> None:
    assert code in (None, 0, 1, 2, 3), (what, code, err)
    assert "Traceback" not in out + err and "internal error" not in err, (what, err)
    if code in (2, 3):
        assert work.files() == before, f"a refused command changed a file: {what!r} said {err!r}"


def report(record_property, capsys, what: str, examples: int, seconds: float) -> None:
    record_property(f"fuzz_{what}_examples", examples)
    record_property(f"fuzz_{what}_seconds", round(seconds, 1))
    with capsys.disabled():
        print(f"\nfuzz: {examples} {what} examples in {seconds:.1f} s ({seconds / max(examples, 1) * 1000:.1f} ms each)")


@pytest.mark.slow
def test_fuzz_the_command_line(work, record_property, capsys):
    examples = 0

    @FUZZ
    @given(st.data(), PLANTS, ANSWERS)
    def one(data, plant, answers):
        nonlocal examples
        examples += 1
        argv = data.draw(command_words()) + data.draw(globals_for(work))  # every draw before any side effect
        work.reset()
        work.plant(plant)
        before = work.files()
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), Console(out, err, stdin_reader(out, io.StringIO(answers))))
        check(work, before, argv, code, out.getvalue(), err.getvalue())

    started = time.monotonic()
    one()
    report(record_property, capsys, "command-line", examples, time.monotonic() - started)
    assert examples >= CLI_EXAMPLES


@pytest.mark.slow
def test_fuzz_the_shell_line_handler(work, record_property, capsys):
    examples = 0
    settings_ = config.load({"db": str(work.db), "host": f"sim:{work.host_file}"})
    lines = st.one_of(command_words().map(shlex.join), command_words().map(" ".join),
                      st.sampled_from(["'", '"unbalanced', "\\", "exit", "quit", "shell", "   ", "#", "vgpu-admin list-pools"]),
                      TEXT)

    @settings(FUZZ, max_examples=LINE_EXAMPLES)
    @given(lines, PLANTS, ANSWERS)
    def one(line, plant, answers):
        nonlocal examples
        examples += 1
        work.reset()
        work.plant(plant)
        before = work.files()
        out, err = io.StringIO(), io.StringIO()
        ctx = Context(settings_, Console(out, err, stdin_reader(out, io.StringIO(answers))))
        ctx.in_repl = True
        try:
            code = runner.run_line(ctx, line)
        finally:
            ctx.close()
        check(work, before, line, code, out.getvalue(), err.getvalue())

    started = time.monotonic()
    one()
    report(record_property, capsys, "shell-line", examples, time.monotonic() - started)
    assert examples >= LINE_EXAMPLES


def test_the_world_is_hostile(template):
    """The fuzz world holds what the tests claim: hostile names and arguments on the host and in the DB."""
    names = {vm.name for vm in template.sim.list_vms()}
    assert HOSTILE_NAMES[0] in names and any("\n" in name for name in names)
    args = [vm.device_model_args for vm in template.sim.list_vms()]
    assert any(len(arg) > 5000 for arg in args) and any("--fw_cfg" in arg for arg in args)
    with sqlite3.connect(template.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM vms WHERE vm_name = ?", (HOSTILE_NAMES[0],)).fetchone()[0] == 1
    conn.close()
    assert json.loads(json.dumps(HOSTILE_NAMES))

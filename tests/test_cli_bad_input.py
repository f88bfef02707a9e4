"""Bad input on the command line, for every flag of every command in the table.

Whatever the value, the answer is one line on stderr naming the bad value (or the option) and what is
allowed, exit code 2, nothing on stdout, and the database and the host file unchanged byte for byte.
The values come from hypothesis, per kind of option, walking shell.commands.COMMANDS, so a new command
or option is covered without editing this file.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shell import commands as table
from shell.commands import COMMANDS, Command, Option
from shell.parsing import GLOBAL_FLAGS, GLOBAL_OPTIONS, shown
from vgpu import demo
from vgpu.store import Store

from .clikit import Outcome, SpecHost, run, run_process

FAST = settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REGISTERED = demo.demo_uuid("VM-1")  # Pool A, high, vm_id 1, running
UNREGISTERED = demo.demo_uuid("VM-21")

# A valid value of each kind, for the options a test is not about.
VALID = {
    table.VM_UUID: REGISTERED, table.ANY_VM_UUID: REGISTERED, table.HOST_VM_UUID: UNREGISTERED,
    table.POOL: "B", table.PRIORITY: "low", table.VM_ID: "77", table.VM_NAME: "a name", table.TEXT: "a name",
    table.NUMBER: "5", table.SECONDS: "2.5", table.FORMAT: "json", table.COMMAND: "status",
}

# What each kind's error must say is allowed (any one of these fragments).
ALLOWED = {
    **dict.fromkeys((table.VM_UUID, table.ANY_VM_UUID, table.HOST_VM_UUID), ["a UUID like", "<uuid>"]),
    table.POOL: ["A or B", "<A|B>"],
    table.PRIORITY: ["low, medium, high, 0, 1 or 2", "<low|medium|high>"],
    table.VM_ID: ["a whole number from 1 to 2147483647", "<id>"],
    table.VM_NAME: ["printable text of at most 255 characters"],
    table.TEXT: ["printable text of at most 64 characters"],
    table.NUMBER: ["a whole number from 1 to 2147483647", "<n>"],
    table.SECONDS: ["a number of seconds from 0 to 86400", "<seconds>"],
    table.FORMAT: ["text or json", "<text|json>"],
}


# --- what is invalid, per kind ----------------------------------------------------------------------------


def _not(accepted):
    return lambda value: not accepted(value)


def _is_uuid(value: str) -> bool:
    return bool(UUID_RE.fullmatch(value.strip().lower()))


def _is_pool(value: str) -> bool:
    return value.strip().upper() in ("A", "B")


def _is_priority(value: str) -> bool:
    return value.strip().lower() in ("low", "medium", "high", "0", "1", "2")


def _is_vm_id(value: str) -> bool:
    """1 .. 2**31-1 in ASCII digits (looked at as text first: int() refuses thousands of digits)."""
    text = value.strip()
    return text.isascii() and text.isdigit() and len(text.lstrip("0")) <= 10 and 1 <= int(text) <= 2**31 - 1


_is_count = _is_vm_id  # --limit takes the same range


def _is_seconds(value: str) -> bool:
    """Plain decimal seconds from 0 to a day (--clean-timeout)."""
    text = value.strip()
    return bool(re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", text)) and float(text) <= 86400


def _near_uuids() -> st.SearchStrategy[str]:
    """A valid UUID bent out of shape: a non-hex digit, one character short or long, braces, no dashes."""
    base = st.uuids().map(str)
    return st.one_of(
        st.tuples(base, st.integers(0, 35), st.sampled_from("gxz_ G")).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1:]),
        base.map(lambda u: u[:-1]), base.map(lambda u: u + "0"), base.map(lambda u: "{" + u + "}"),
        base.map(lambda u: u.replace("-", "")), base.map(lambda u: "urn:uuid:" + u),
    )


def _numbers_out_of_range(low_ok: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(max_value=low_ok - 1).map(str),
        st.integers(min_value=2**31).map(str),
        st.sampled_from(["1.5", "1e3", "+5", "0x10", "٣", "５", "1_000", "9" * 5000, "0" * 20]),
    )


BAD_VALUES: dict[str, st.SearchStrategy[str]] = {
    table.VM_UUID: st.one_of(_near_uuids(), st.text().filter(_not(_is_uuid))),
    table.POOL: st.one_of(
        st.sampled_from(["C", "c", "AB", "Pool A", "pool-a", "0", "1", "Ａ", "α", "A;B", ""]),
        st.text(max_size=8).filter(_not(_is_pool)),
    ),
    table.PRIORITY: st.one_of(
        st.sampled_from(["3", "-1", "urgent", "HIGHEST", "2.0", "med", "hi", "critical", "１", ""]),
        st.text(max_size=10).filter(_not(_is_priority)),
    ),
    table.VM_ID: st.one_of(_numbers_out_of_range(1), st.text(max_size=12).filter(_not(_is_vm_id))),
    table.VM_NAME: st.one_of(
        st.text(min_size=256, max_size=300, alphabet=string.ascii_letters),
        st.text(min_size=1).map(lambda t: t + "\x00"), st.sampled_from(["line\nbreak", "tab\there", "\x1b[31mred"]),
    ),
    table.TEXT: st.one_of(
        st.text(min_size=65, max_size=80, alphabet=string.ascii_letters),
        st.sampled_from(["", "   ", "new\nline", "\x07bell", 'say "hi"']),
    ),
    table.NUMBER: st.one_of(_numbers_out_of_range(1).filter(_not(_is_count)), st.text(max_size=6).filter(_not(_is_count))),
    table.SECONDS: st.one_of(st.sampled_from(["-1", "86401", "1e3", "1_000", "nan", "inf", "٣", "soon"]),
                             st.text(max_size=6).filter(_not(_is_seconds))),
    table.FORMAT: st.text(max_size=8).filter(lambda v: v not in ("text", "json")),
}
BAD_VALUES[table.ANY_VM_UUID] = BAD_VALUES[table.HOST_VM_UUID] = BAD_VALUES[table.VM_UUID]


# --- helpers ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return SpecHost(tmp_path_factory.mktemp("spec"))


def required_words(command: Command, *, leave_out: str = "") -> list[str]:
    words = [f"--{o.name}={VALID[o.kind]}" for o in command.options if o.required and o.name != leave_out]
    some = [name for name in command.one_of if name != leave_out][:1]
    return words + [f"--{name}={VALID[command.option(name).kind]}" for name in some]


def refused(spec: SpecHost, argv: list[str]) -> tuple[str, Outcome]:
    """Run argv against the spec host; check the refusal's shape and that no file changed."""
    before = spec.files()
    outcome = spec.cli(*argv)
    line = outcome.one_error_line()
    assert outcome.code == 2, outcome
    assert outcome.out == "", outcome
    assert line.startswith("error: "), line
    assert spec.files() == before, f"{argv} changed a file"
    return line, outcome


def valued_options() -> list[tuple[Command, Option]]:
    return [(c, o) for c in COMMANDS for o in c.options if o.kind != table.FLAG]


def _id(pair) -> str:
    return f"{pair[0].name}--{pair[1].name}" if isinstance(pair, tuple) else str(pair)


# --- bad values -------------------------------------------------------------------------------------------


def test_every_value_kind_in_the_table_has_bad_values():
    assert {o.kind for _, o in valued_options()} <= set(BAD_VALUES)


@pytest.mark.parametrize("pair", valued_options(), ids=_id)
@FAST
@given(data=st.data())
def test_a_bad_value_for_any_option_is_one_line_and_exit_2(spec, pair, data):
    command, option = pair
    value = data.draw(BAD_VALUES[option.kind], label=option.flag)
    argv = [command.name, *required_words(command, leave_out=option.name), f"--{option.name}={value}"]
    line, _ = refused(spec, argv)
    assert repr(value) in line or (not value.strip() and option.flag in line), line
    assert any(fragment in line for fragment in ALLOWED[option.kind]), line


@pytest.mark.parametrize("pair", [p for p in valued_options() if p[1].kind != table.TEXT], ids=_id)
@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_value_is_refused_not_taken_as_the_default(spec, pair, value):
    command, option = pair
    argv = [command.name, *required_words(command, leave_out=option.name), f"--{option.name}={value}"]
    if option.kind == table.VM_NAME:  # an empty name means "no name": the host's name is recorded
        return
    line, _ = refused(spec, argv)
    assert option.flag in line or repr(value) in line


@pytest.mark.parametrize("pair", valued_options(), ids=_id)
def test_an_option_without_its_value_names_the_option(spec, pair):
    command, option = pair
    argv = [command.name, *required_words(command, leave_out=option.name), option.flag]
    line, _ = refused(spec, argv)
    assert f"{option.flag} needs a value: {option.flag}={option.placeholder}" in line


@pytest.mark.parametrize("value", ["", "x", "yes", "1"])
def test_a_flag_given_a_value_is_refused(spec, value):
    line, _ = refused(spec, ["demo", f"--reset={value}"])
    assert "--reset takes no value" in line


@FAST
@given(name=st.text(min_size=1, max_size=20).filter(lambda n: n not in table.BY_NAME and n not in table.ALIASES and not n.startswith("-")))
@example(name="set-pool\nstatus")
def test_help_for_a_command_that_does_not_exist(spec, name):
    line, _ = refused(spec, ["help", name])
    assert shown(name) in line and "run 'vgpu-admin help' for the list" in line  # repr, a password in it masked


# --- bad option names, missing and repeated options ---------------------------------------------------------


@pytest.mark.parametrize("command", [c for c in COMMANDS if not c.repl_only], ids=lambda c: c.name)
@FAST
@given(name=st.text(min_size=1, max_size=15).filter(lambda n: "=" not in n))
@example(name="vm_uuid")
@example(name="fo\no")
@example(name="keep-going")
def test_an_unknown_option_is_named_with_the_allowed_ones(spec, command, name):
    # Hypothesis also draws the string literals of the code under test, so the names every command accepts
    # (its own, the globals, --help) are drawn too: those are not unknown, and have tests of their own.
    if command.option(name) is not None or name in (*GLOBAL_FLAGS, *GLOBAL_OPTIONS, "help"):
        return
    line, _ = refused(spec, [command.name, *required_words(command), f"--{name}=1"])
    assert shown(f"--{name}") in line or f"--{name} " in line, line
    assert all(o.flag in line for o in command.options) or "no options" in line, line


@pytest.mark.parametrize("command", [c for c in COMMANDS if not c.repl_only], ids=lambda c: c.name)
@pytest.mark.parametrize("flag", GLOBAL_FLAGS)
def test_a_global_flag_given_a_value_is_refused_on_every_command(spec, command, flag):
    line, _ = refused(spec, [command.name, *required_words(command), f"--{flag}=1"])
    assert line == f"error: --{flag} takes no value", line


@pytest.mark.parametrize("command", [c for c in COMMANDS if not c.repl_only and c.positional is None], ids=lambda c: c.name)
@pytest.mark.parametrize("word", ["stray", "-x", "A"])
def test_a_stray_word_is_refused(spec, command, word):
    line, _ = refused(spec, [command.name, *required_words(command), word])
    assert repr(word) in line


@pytest.mark.parametrize(
    ("command", "option"),
    [(c, o) for c in COMMANDS for o in c.options if o.required],
    ids=lambda x: x.name,
)
def test_a_missing_required_option_is_named_with_its_values(spec, command, option):
    line, _ = refused(spec, [command.name, *required_words(command, leave_out=option.name)])
    assert f"{option.flag}={option.placeholder}" in line and line.startswith(f"error: {command.name} needs")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.one_of], ids=lambda c: c.name)
def test_a_command_given_none_of_its_one_of_options_names_them_all(spec, command):
    line, _ = refused(spec, [command.name, *(f"--{o.name}={VALID[o.kind]}" for o in command.options if o.required)])
    needed = ", ".join(f"{o.flag}={o.placeholder}" for o in map(command.option, command.one_of))
    assert line == f"error: {command.name} needs at least one of {needed}"


def test_update_vm_without_a_change_names_its_flags():
    line = run(["update-vm", f"--vm-uuid={REGISTERED}"]).one_error_line()
    assert line == "error: update-vm needs at least one of --pool=<A|B>, --priority=<low|medium|high>, --vm-id=<id>"


@pytest.mark.parametrize("pair", [(c, o) for c in COMMANDS for o in c.options], ids=_id)
def test_an_option_given_twice_is_refused(spec, pair):
    command, option = pair
    word = option.flag if option.kind == table.FLAG else f"{option.flag}={VALID[option.kind]}"
    line, _ = refused(spec, [command.name, *required_words(command, leave_out=option.name), word, word])
    assert f"{option.flag} given twice" in line


@pytest.mark.parametrize("flag", ["--db", "--host"])
def test_a_global_option_given_twice_or_empty_is_refused(spec, flag):
    line, _ = refused(spec, ["list-pools", f"{flag}=x"])  # spec.cli adds the real one: twice
    # --host may be given once per host of a fleet: what is wrong here is a label beside a bare URI
    assert (f"{flag} given twice" if flag == "--db" else "is a bare URI, which names the only host of a run") in line
    outcome = run(["list-pools", f"{flag}="])
    assert outcome.code == 2 and flag in outcome.one_error_line()


@FAST
@given(command=st.text(min_size=1, max_size=20).filter(lambda n: n not in table.BY_NAME and n not in table.ALIASES and not n.startswith("-")))
@example(command="set_pool")
@example(command="list-vm")
def test_an_unknown_command_is_named(spec, command):
    line, _ = refused(spec, [command])
    assert shown(command) in line and ("run 'vgpu-admin help' for the list" in line or "did you mean" in line)


@pytest.mark.parametrize(("typed", "suggested"), [
    ("lsit-pools", "list-pools"),                        # two letters swapped
    ("set-pol", "set-pool or set-pool-name"),            # the closest first
    ("sho-vm", "show-vm"),
    ("satus", "status"),
    ("remove-vms", "remove-vm"),
    ("edit-pool-nme", "edit-pool-name"),                 # aliases are names too
])
def test_an_unknown_command_suggests_the_closest_names_first(spec, typed, suggested):
    line, _ = refused(spec, [typed])
    assert line == f"error: unknown command {typed!r}; did you mean {suggested}?"


@pytest.mark.parametrize("typed", ["", " ", "\t"])
def test_an_empty_or_blank_command_suggests_none(spec, typed):
    # '' used to begin every name, and suggested the first three ("did you mean list-pools or show-pool ...").
    line, _ = refused(spec, [typed])
    assert line == f"error: unknown command {typed!r}; run 'vgpu-admin help' for the list"


def test_an_unknown_command_far_from_every_name_suggests_none(spec):
    line, _ = refused(spec, ["frobnicate"])
    assert line == "error: unknown command 'frobnicate'; run 'vgpu-admin help' for the list"


@pytest.mark.parametrize("word", ["refresh", "exit", "quit"])
def test_a_shell_only_command_on_the_command_line_is_named_as_typed(spec, word):
    line, _ = refused(spec, [word])
    assert line == f"error: '{word}' only works inside the vgpu> shell"


# --- bad hosts and databases ------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["x", "sim:", "http://host", "xapi:host", "vmware://esx"])
def test_an_unknown_host_uri_is_bad_input(spec, uri):
    outcome = run(["scan-vms", "--db", str(spec.db), "--host", uri])
    line = outcome.one_error_line()
    assert outcome.code == 2 and repr(uri) in line and "sim:PATH" in line


DB_ONLY = [["list-pools"], ["list-vms"], ["show-pool", "--pool-id=A"], ["history"], ["set-pool-name", "--pool-id=A", "--name=X"],
           ["help"], ["repair-db"]]


@pytest.mark.parametrize("argv", DB_ONLY)
@pytest.mark.parametrize("uri", ["foo", "sim:", "xapi://root:hunter2@xen1", "root:hunter2@xen1", "xapis://root@xen1?verify=no"])
def test_a_bad_host_is_refused_by_every_command_even_those_that_never_ask_it(spec, argv, uri):
    before = spec.files()
    outcome = run([*argv, "--db", str(spec.db), f"--host={uri}"])
    assert outcome.code == 2 and outcome.out == ""
    line = outcome.one_error_line()
    # A bare word is taken for a host's label (a fleet's): refused as a label the config does not have.
    assert ("host URI" in line or line.startswith(f"error: --host: unknown host {uri!r}")) and "hunter2" not in line
    assert spec.files() == before


def test_a_bad_host_from_the_environment_says_where_it_came_from(spec, monkeypatch):
    monkeypatch.setenv("VGPU_HOST", "foo")
    outcome = run(["list-pools", "--db", str(spec.db)])
    assert outcome.code == 2
    assert outcome.one_error_line() == ("error: VGPU_HOST: unknown host 'foo': expected a label of config.toml [hosts] "
                                        "(it has none), LABEL=URI, or a URI: sim:PATH, sim:demo, xe:, xapi://USER@HOST, "
                                        "xapis://USER@HOST, xapi+unix:, or a libvirt URI such as qemu:///system")


def test_a_file_that_is_not_a_vgpu_database_is_left_alone(spec, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not a database\n")
    outcome = run(["list-pools", "--db", str(other)])
    assert outcome.code == 1 and str(other) in outcome.one_error_line()
    assert other.read_text() == "not a database\n"


# --- the real process -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["set-pool", f"--vm-uuid={REGISTERED}", "--pool=C"],
        ["register-vm", f"--vm-uuid={UNREGISTERED}", "--vm-id=0"],
        ["list-vms", "--priority=urgent", "--format=yaml"],
        ["set-priority", "--vm-uuid=not-a-uuid", "--priority=high"],
        ["bogus"],
    ],
)
def test_bad_input_through_the_real_command(spec, argv):
    before = spec.files()
    outcome = run_process([*argv, *spec.flags])
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line().startswith("error: ")
    assert spec.files() == before


def test_a_vm_name_where_a_uuid_belongs_is_answered_with_its_uuid(spec):
    before = spec.files()
    outcome = spec.cli("set-pool", "--vm-uuid=vm-3", "--pool=B")
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line().endswith(f"; the VM named VM-3 is {spec.uuid('VM-3')}")
    assert spec.files() == before


def test_a_name_two_vms_share_lists_both_uuids_and_an_unknown_name_gets_no_hint(tmp_path):
    spec = SpecHost(tmp_path)
    with Store(spec.db) as store:
        for name in ("VM-4", "VM-5"):
            rename_in_db(store, spec.uuid(name), "twin")
    hinted = spec.cli("show-vm", "--vm-uuid=TWIN").one_error_line()
    assert hinted.endswith(f"; 2 VMs are named twin: {spec.uuid('VM-4')}, {spec.uuid('VM-5')}")
    assert spec.cli("show-vm", "--vm-uuid=nobody").one_error_line().endswith("expected a UUID like 0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7")


def test_the_start_of_a_uuid_as_the_spec_shows_them_is_answered_with_the_whole_uuid(spec):
    uuid = spec.uuid("VM-3")  # the spec's examples shorten UUIDs: "abc123..."
    for typed in (uuid[:8], uuid[:8].upper() + "...", uuid[:13]):
        line = spec.cli("set-pool", f"--vm-uuid={typed}", "--pool=B").one_error_line()
        assert line.endswith(f"; {typed.rstrip('.')!r} starts the UUID of VM-3: {uuid}"), typed
    assert spec.vm("VM-3").pool_id == "A"


def test_the_start_of_several_uuids_lists_them_and_a_short_one_gets_no_hint(spec):
    twins = ["abcdef01-0000-4000-8000-000000000001", "abcdef01-0000-4000-8000-000000000002"]
    for number, uuid in enumerate(twins, start=1):
        spec.sim.add_vm(uuid, f"twin-{number}", "halted")
    line = spec.cli("register-vm", "--vm-uuid=abcdef01").one_error_line()
    assert line.endswith(f"; 'abcdef01' starts 2 UUIDs: {twins[0]} (twin-1), {twins[1]} (twin-2)")
    assert spec.cli("register-vm", "--vm-uuid=abc").one_error_line().endswith("0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7")


def rename_in_db(store, vm_uuid: str, name: str) -> None:
    """Give a registered VM another name (there is no command for it: names come from the host)."""
    with store.writing() as conn:
        conn.execute("UPDATE vms SET vm_name = ? WHERE vm_uuid = ?", (name, vm_uuid))


# --- history's two filters ---------------------------------------------------------------------------------


def test_history_of_a_vm_and_a_pool_at_once_is_refused(spec):
    # A VM's changes and a pool's renames are separate entries: both filters at once could only show nothing.
    line, _ = refused(spec, ["history", f"--vm-uuid={spec.uuid('VM-1')}", "--pool-id=A"])
    assert line == ("error: history takes --vm-uuid or --pool-id, not both: a VM's changes and a pool's renames are "
                    "separate entries")


@pytest.mark.parametrize("order", ["vm-first", "pool-first"])
def test_history_refuses_a_bad_pool_id_even_beside_a_vm(spec, order):
    options = [f"--vm-uuid={spec.uuid('VM-1')}", "--pool-id=Z"]
    line, _ = refused(spec, ["history", *(options if order == "vm-first" else reversed(options))])
    assert line == "error: invalid pool 'Z': expected A or B"


# --- a password in a mistyped word ---------------------------------------------------------------------------

# A host URI typed where no host is read (a mistyped --host, a stray word) is repeated by its refusal: with its
# password masked, as --host's own refusal masks it ("unknown command '--hos=xapi://root:PW@h'" showed it).
MISTYPED_HOSTS = [
    ["--hos=xapi://root:Zz9pw@h", "list-pools"], ["--hots=root:Zz9pw@h", "list-pools"], ["root:Zz9pw@h"],
    ["list-pools", "--hots=xapi://root:Zz9pw@h"], ["list-pools", "--hots=root:Zz9pw@h"],
    ["list-pools", "xapi://root:Zz9pw@h"], ["list-pools", "root:Zz9pw@h"], ["list-pools", "--xapi://root:Zz9pw@h"],
    ["list-pools", "--format=root:Zz9pw@h"], ["help", "root:Zz9pw@h"], ["--version", "root:Zz9pw@h"],
]


@pytest.mark.parametrize("argv", MISTYPED_HOSTS, ids=" ".join)
def test_a_mistyped_word_holding_a_password_is_refused_with_it_masked(spec, argv):
    line, _ = refused(spec, argv)
    assert "Zz9" not in line and ("***" in line or "unknown option '--hots'" in line), line


def test_shell_lines_holding_a_password_in_a_mistyped_word_are_refused_with_it_masked(spec):
    lines = [" ".join(argv) for argv in MISTYPED_HOSTS if argv[0] != "--version"]  # --version: no shell command
    outcome = run_process(["--keep-going", *spec.flags], stdin="\n".join(lines) + "\n")
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err, outcome
    errors = [line for line in outcome.err_lines if line.startswith("error: ")]
    assert len(errors) == len(lines) and outcome.err.count("***") >= len(lines) - 2, outcome

"""The vgpu> shell through prompt_toolkit's pipe input and DummyOutput, on the spec's 23-VM sim host."""

from __future__ import annotations

import io
import json
import os

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from shell import helptext, names, pasting, repl
from shell.console import Console
from shell.context import Context
from vgpu import config
from vgpu.store import Store

from .clikit import SpecHost, run_process

CTRL_C, CTRL_D = "\x03", "\x04"


def pasted(text: str) -> str:
    """``text`` as a terminal sends it when it is pasted (bracketed paste)."""
    return f"\x1b[200~{text}\x1b[201~"


class Shell:
    """A Context over string buffers, and a way to type lines into run_repl."""

    def __init__(self, spec: SpecHost) -> None:
        self.spec = spec
        self.out, self.err = io.StringIO(), io.StringIO()
        self.console = Console(self.out, self.err, self._no_reader)
        settings = config.load({"db": str(spec.db), "host": f"sim:{spec.host_file}"})
        self.ctx = Context(settings, self.console)

    @staticmethod
    def _no_reader(question: str) -> str | None:
        raise AssertionError("the shell must ask through prompt_toolkit, not the one-shot reader")

    def type(self, keys: str, *, close: bool = False) -> int:
        """Send ``keys`` and run the shell until it leaves (``close``: then end the input)."""
        with create_pipe_input() as pipe:
            pipe.send_text(keys)
            if close:
                pipe.close()
            try:
                return repl.run_repl(self.ctx, input=pipe, output=DummyOutput())
            finally:
                self.ctx.close()


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


@pytest.fixture
def shell(spec):
    return Shell(spec)


def test_list_pools_then_ctrl_d_leaves_with_0(shell):
    assert shell.type("list-pools\n" + CTRL_D) == 0
    assert shell.out.getvalue().splitlines()[0].startswith('Pool A: "Pool A" | Status: Enabled | VMs: 7 |')
    assert shell.err.getvalue() == ""


def test_set_pool_answered_yes_inside_the_shell(shell, spec):
    vm1 = spec.uuid("VM-1")
    assert shell.type(f"set-pool --vm-uuid={vm1} --pool=B\nyes\n" + CTRL_D) == 0
    assert spec.pool_of("VM-1") == "B"
    assert "This change requires stopping and restarting the VM." in shell.out.getvalue()
    assert "Applied to VM-1" in shell.out.getvalue()
    assert "pool=B" in spec.sim.get_device_model_args(vm1)


def test_set_pool_answered_no_changes_nothing(shell, spec):
    before = spec.files()
    assert shell.type(f"set-pool --vm-uuid={spec.uuid('VM-2')} --pool=B\nno\nlist-pools\n" + CTRL_D) == 0
    assert spec.pool_of("VM-2") == "A"
    assert "Operation cancelled; nothing was changed." in shell.err.getvalue()
    assert shell.out.getvalue().rstrip().endswith("Low (0): 2")  # the shell went on to the next line
    assert spec.files()["host.json"] == before["host.json"]


def test_an_unclear_answer_asks_again(shell, spec):
    assert shell.type(f"set-priority --vm-uuid={spec.uuid('VM-4')} --priority=low\nmaybe\ny\n" + CTRL_D) == 0
    assert "Please answer yes or no." in shell.out.getvalue()
    assert spec.vm("VM-4").priority.label == "low"


def test_end_of_input_at_the_question_cancels(shell, spec):
    assert shell.type(f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\n", close=True) == 0
    assert spec.pool_of("VM-1") == "A"
    assert "Operation cancelled" in shell.err.getvalue()


def test_ctrl_d_at_the_question_cancels(shell, spec):
    assert shell.type(f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\n{CTRL_D}{CTRL_D}") == 0
    assert spec.pool_of("VM-1") == "A"
    assert "Operation cancelled" in shell.err.getvalue()


def test_help_and_help_command_go_through_the_runner(shell):
    assert shell.type("help\nhelp set-pool\n" + CTRL_D) == 0
    out = shell.out.getvalue()
    assert helptext.overview(in_repl=True) in out and "(run 'help COMMAND' for its options)" in out
    assert helptext.help_text("set-pool") in out


def test_hints_inside_the_shell_say_help_not_vgpu_admin_help(shell):
    assert shell.type("help nosuch\nnosuch\n" + CTRL_D) == 0
    assert shell.err.getvalue().splitlines() == [
        "error: no command called 'nosuch'; run 'help' for the list",
        "error: unknown command 'nosuch'; run 'help' for the list",
    ]


def test_exit_and_quit_leave_and_nothing_after_runs(spec):
    for word in ("exit", "quit"):
        shell = Shell(spec)
        assert shell.type(f"{word}\nlist-pools\n") == 0
        assert shell.out.getvalue() == ""


def test_ctrl_c_drops_the_line_and_the_shell_goes_on(shell):
    assert shell.type("list-po" + CTRL_C + "list-vms --pool=A\n" + CTRL_D) == 0
    assert "VM-1" in shell.out.getvalue() and "Pool B" not in shell.out.getvalue()


def test_errors_are_one_line_and_the_shell_goes_on(shell):
    keys = "frobnicate\nset-pool --pool=\"B\nshell\nlist-pools --format=yaml\nstatus --format=json\n" + CTRL_D
    assert shell.type(keys) == 0
    errors_seen = shell.err.getvalue().splitlines()
    assert errors_seen[0].startswith("error: unknown command 'frobnicate'")
    assert errors_seen[1].startswith("error: cannot parse the line")
    assert errors_seen[2] == "error: you are already in the vgpu> shell"
    assert errors_seen[3].startswith("error: invalid format 'yaml'")
    assert len(errors_seen) == 4
    assert json.loads(shell.out.getvalue())  # the one command that worked printed only its JSON


def test_history_is_written_under_the_xdg_data_dir_without_answers(shell, spec, isolated_environment):
    shell.type(f"list-pools\nset-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\nno\n" + CTRL_D)
    path = repl.history_path()
    assert path == os.path.join(str(isolated_environment / "data"), "vgpu", "history")
    recorded = [line[1:] for line in open(path, encoding="utf-8").read().splitlines() if line.startswith("+")]
    assert recorded == ["list-pools", f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B"]


def test_the_shell_restores_the_context_hooks(shell):
    reader = shell.console.read_line
    shell.type("refresh\n" + CTRL_D)
    assert shell.ctx.on_change is None and shell.console.read_line == reader and shell.ctx.name_cache is None


def test_a_vm_name_typed_for_a_uuid_is_answered_with_the_uuid_even_for_a_vm_only_the_host_knows(shell, spec):
    # VM-22 is on the host but not registered: only the shell's names (which include the host's) know it
    shell.type("register-vm --vm-uuid=vm-22\nshow-vm --vm-uuid=VM-3\n" + CTRL_D)
    assert shell.err.getvalue().splitlines() == [
        f"error: invalid VM UUID 'vm-22': expected a UUID like 0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7; the VM named VM-22 is {spec.uuid('VM-22')}",
        f"error: invalid VM UUID 'VM-3': expected a UUID like 0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7; the VM named VM-3 is {spec.uuid('VM-3')}",
    ]
    assert spec.vm("VM-22") is None


def test_a_change_requests_a_refresh(shell, spec, monkeypatch):
    requests = []
    original = repl.Refresher.request
    monkeypatch.setattr(repl.Refresher, "request", lambda self: (requests.append(1), original(self)))
    shell.type("set-pool-name --pool-id=A --name=Prod\nrefresh\nlist-pools\n" + CTRL_D)
    assert len(requests) == 3  # at start, after the rename, and on refresh


def test_the_shell_starts_with_an_unreachable_host(shell, spec):
    spec.sim.set_fault("unreachable", "on")
    assert shell.type("list-vms --pool=B\n" + CTRL_D) == 0
    assert "VM-8" in shell.out.getvalue()


def test_the_toolbar_shows_db_host_pools_and_refreshing(spec):
    with Store(spec.db) as store:
        cache = names.build(store, spec.sim)
    text = repl.toolbar("/db", "sim:x", cache, refreshing=True)
    assert text == "DB: /db | Host: sim:x | Pool A: 7 VMs | Pool B: 13 VMs | refreshing…"
    spec.sim.set_fault("unreachable", "on")
    with Store(spec.db) as store:
        offline = names.build(store, spec.sim)
    assert repl.toolbar("/db", "sim:x", offline, refreshing=False) == "DB: /db | Host: sim:x (unreachable) | Pool A: 7 VMs | Pool B: 13 VMs"
    assert repl.toolbar("/db", "sim:x", names.EMPTY, refreshing=True) == "DB: /db | Host: sim:x | refreshing…"


def test_the_toolbar_names_a_fleets_hosts_that_are_down_and_counts_them_past_two():
    # (the names of a fleet with a host down, as shell.names builds them: tests/test_fleet_cli.py)
    def host_part(*down: str) -> str:
        cache = names.NameCache(host_ok=False, hosts_down=down)
        return repl.toolbar("/db", "a,b,c,d", cache, refreshing=False).split(" | ")[1]

    assert host_part("b") == "Host: a,b,c,d (b unreachable)"
    assert host_part("a", "c") == "Host: a,b,c,d (a, c unreachable)"
    assert host_part("a", "b", "c") == "Host: a,b,c,d (3 hosts unreachable)"
    assert host_part() == "Host: a,b,c,d (unreachable)"  # none answered


# --- lines from the docs, global options, help where the user is ----------------------------------------------


def test_a_line_pasted_from_the_docs_with_vgpu_admin_in_front_runs(shell, spec):
    assert shell.type(f"vgpu-admin list-pools\nvgpu-admin set-priority --vm-uuid={spec.uuid('VM-4')} --priority=low\n"
                      "yes\n" + CTRL_D) == 0
    assert shell.out.getvalue().splitlines()[0].startswith('Pool A: "Pool A" | Status: Enabled | VMs: 7 |')
    assert spec.vm("VM-4").priority.label == "low"
    assert "error" not in shell.err.getvalue()


def test_vgpu_admin_alone_in_the_shell_says_it_is_the_shell(shell):
    assert shell.type("vgpu-admin\n" + CTRL_D) == 0
    assert shell.err.getvalue() == "error: you are already in the vgpu> shell\n"


@pytest.mark.parametrize("line", ["list-pools --db=/tmp/other.db", "vgpu-admin --host=xe: status",
                                  "list-vms --host xe: --pool=A"])
def test_db_and_host_in_the_shell_are_refused_saying_why(shell, spec, line):
    assert shell.type(f"{line}\n" + CTRL_D) == 0
    option = "--db" if "--db" in line else "--host"
    current = str(spec.db) if option == "--db" else f"sim:{spec.host_file}"
    assert shell.err.getvalue() == (
        f"error: {option} is chosen when the shell starts, and this one uses {current}; to use another, leave "
        f"(exit) and start 'vgpu-admin {option}=...'\n")
    assert shell.out.getvalue() == ""


def test_help_in_the_shell_lists_what_the_shell_accepts(shell):
    assert shell.type("?\n" + CTRL_D) == 0
    out = shell.out.getvalue()
    assert "--db" not in out and "--host" not in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()]
    assert "shell" not in listed and {"refresh", "exit", "set-pool-name"} <= set(listed)


def test_dash_dash_help_in_the_shell_shows_the_command_s_help(shell):
    assert shell.type("vgpu-admin set-pool --help\n" + CTRL_D) == 0
    assert shell.out.getvalue() == helptext.help_text("set-pool") + "\n" and shell.err.getvalue() == ""


# --- lines from a pipe or a file (vgpu-admin < commands.txt): no prompt, no terminal codes -------------------


def test_lines_piped_into_vgpu_admin_run_one_by_one_answers_included(spec):
    vm1 = spec.uuid("VM-1")
    lines = f"# move VM-1\n\nlist-pools\nvgpu-admin set-pool --vm-uuid={vm1} --pool=B\nyes\nrefresh\nlist-vms --pool=B --priority=high\n"
    outcome = run_process(spec.flags, stdin=lines)
    assert outcome.code == 0, outcome
    assert "\x1b" not in outcome.out + outcome.err and "not a terminal" not in outcome.err
    assert outcome.out_lines[0].startswith('Pool A: "Pool A" | Status: Enabled | VMs: 7 |')
    assert f"Applied to VM-1 ({vm1}): pool A → B." in outcome.out_lines
    assert f"UUID: {vm1} | Name: VM-1 | Pool: B | Priority: high (2) | VM ID: 1" in outcome.out_lines
    assert spec.pool_of("VM-1") == "B"


def test_piped_lines_with_keep_going_go_on_after_a_failure_and_exit_with_its_code(spec):
    # without --keep-going they stop at the failure: tests/test_script_input.py
    outcome = run_process(["--keep-going", *spec.flags], stdin="list-pools\nset-pool --pool=C\nlist-vms --pool=A\nexit\nstatus\n")
    assert outcome.code == 2
    assert outcome.err_lines == ["error: set-pool needs --vm-uuid=<uuid>", "Went on after line 2, which failed (--keep-going)."]
    assert "VM-7" in outcome.out and "Control Panel" not in outcome.out  # list-vms ran; nothing after exit


def test_history_is_private_and_keeps_no_line_carrying_a_credential(shell, spec, isolated_environment):
    folder = isolated_environment / "data" / "vgpu"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)  # as an earlier version, or a umask, left it
    secret_lines = [
        "scan-vms --host=xapi://root:hunter2@xen1",
        "list-vms --host xapis://admin:hunter2@xen1?cafile=/x",
        "list-vms --host xapi://root:Zz9/hunter2@127.0.1.1:44561",
        "list-vms --host 'xapi://root:my hunter2@xen1'",
        "VGPU_XAPI_PASSWORD=hunter2 list-vms",
        "status password=hunter2",
        "list-pools --password hunter2",
    ]
    shell.type("list-pools\n" + "".join(line + "\n" for line in secret_lines) + "list-vms\n" + CTRL_D)
    path = repl.history_path()
    text = open(path, encoding="utf-8").read()
    assert "hunter2" not in text
    assert [line[1:] for line in text.splitlines() if line.startswith("+")] == ["list-pools", "list-vms"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700)


def _planted_history_symlink(isolated_environment, tmp_path):
    """The history file replaced by a symlink to a file elsewhere: (the history's folder, the link's target)."""
    folder = isolated_environment / "data" / "vgpu"
    folder.mkdir(parents=True, mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    os.symlink(target, folder / "history")
    return folder, target


def test_a_planted_history_symlink_is_never_written_through(shell, isolated_environment, tmp_path):
    _, target = _planted_history_symlink(isolated_environment, tmp_path)
    assert shell.type("list-pools\n" + CTRL_D) == 0
    assert target.read_text() == "keep\n"


def test_pasted_lines_run_one_by_one_each_its_own_history_entry(shell, spec, isolated_environment):
    assert shell.type(pasted("list-pools\r\nshow-pool --pool-id=B\n") + "\r" + CTRL_D) == 0
    assert shell.err.getvalue() == ""
    assert 'Pool A: "Pool A"' in shell.out.getvalue() and "Pool B" in shell.out.getvalue().split('Pool A: "Pool A"')[1]
    recorded = [line[1:] for line in open(repl.history_path(), encoding="utf-8").read().splitlines() if line.startswith("+")]
    assert recorded == ["list-pools", "show-pool --pool-id=B"]


def test_a_pasted_line_answers_the_question_of_the_line_before_as_if_typed(shell, spec):
    assert shell.type(pasted(f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\nyes\nlist-pools\n") + CTRL_D, close=True) == 0
    assert spec.pool_of("VM-1") == "B"
    assert "error" not in shell.err.getvalue()  # only the change's progress lines
    assert 'Pool B: "Pool B" | Status: Enabled | VMs: 14 |' in shell.out.getvalue().split("Applied to VM-1")[1]


def test_pasted_lines_stop_at_the_first_that_fails(shell, spec):
    assert shell.type(pasted("show-pool --pool-id=C\nlist-pools\n") + CTRL_D, close=True) == 0
    errors_seen = shell.err.getvalue().splitlines()
    assert errors_seen[0].startswith("error: ")
    assert errors_seen[1:] == [pasting.STOPPED]
    assert shell.out.getvalue() == ""  # list-pools did not run


def history_warnings(shell) -> list[str]:
    return [line for line in shell.err.getvalue().splitlines() if "history" in line.lower()]


def test_a_history_symlink_gets_one_line_saying_history_will_not_be_saved(shell, isolated_environment, tmp_path):
    folder, target = _planted_history_symlink(isolated_environment, tmp_path)
    assert shell.type("list-pools\nlist-pools\n" + CTRL_D) == 0
    assert history_warnings(shell) == [
        f"History will not be saved this session: {folder / 'history'} is a symlink, and it is never written through."]
    assert target.read_text() == "keep\n"


def test_a_history_file_owned_by_someone_else_gets_one_line_saying_why(shell, isolated_environment):
    folder = isolated_environment / "data" / "vgpu"
    folder.mkdir(parents=True, mode=0o700)
    (folder / "history").write_text("")
    os.chown(folder / "history", 12345, 12345)
    assert shell.type("list-pools\n" + CTRL_D) == 0
    (warning,) = history_warnings(shell)
    assert warning.startswith("History will not be saved this session: refusing the history ") and "uid 12345" in warning


def test_an_unusable_history_directory_gets_one_line_saying_why(shell, isolated_environment):
    (isolated_environment / "data").mkdir(parents=True, exist_ok=True)
    (isolated_environment / "data" / "vgpu").write_text("a file where the directory belongs")
    assert shell.type("list-pools\n" + CTRL_D) == 0
    (warning,) = history_warnings(shell)
    assert warning.startswith("History will not be saved this session: ")
    assert str(isolated_environment / "data" / "vgpu") in warning


def test_the_history_of_a_session_that_saves_none_keeps_no_credential_either(tmp_path):
    from shell.history import open_history

    (tmp_path / "vgpu").write_text("a file where the directory belongs")
    warned = []
    history = open_history(str(tmp_path / "vgpu" / "history"), warned.append)
    history.append_string("list-vms --host xapi://root:Zz9/secret@h")
    history.append_string("list-pools")
    assert list(history.get_strings()) == ["list-pools"] and len(warned) == 1


def test_a_host_given_as_user_password_at_host_is_not_saved_in_the_history_file(shell, isolated_environment):
    # the tester's line: USER:PASSWORD@HOST without a scheme was saved while xapi://USER:PASSWORD@HOST was not
    lines = ["list-pools --host=root:MyRootPw@pool1-master", "list-pools --host=gpu1=root:Pw4@h", "list-pools"]
    assert shell.type("".join(f"{line}\n" for line in lines) + CTRL_D) == 0
    saved = (isolated_environment / "data" / "vgpu" / "history").read_text()
    assert "+list-pools\n" in saved and "Pw" not in saved
    assert "Pw" not in shell.out.getvalue() + shell.err.getvalue()


# --- Ctrl-R search: giving it up restores the line, however many times Ctrl-R was pressed ------------------------

CTRL_G, CTRL_R = "\x07", "\x12"


def searched(spec: SpecHost, keys: str) -> Shell:
    """A shell whose history holds two show-vm lines (VM-1's, then one without a UUID) from an earlier session,
    given ``keys``. The keys go to a second session: the keys typed ahead of a prompt are read before its
    history is loaded, so Ctrl-R in the session that ran the lines would find nothing."""
    Shell(spec).type(f"show-vm --vm-uuid={spec.uuid('VM-1')}\nshow-vm --vm-uuid=\n" + CTRL_D)
    shell = Shell(spec)
    assert shell.type(keys + CTRL_D, close=True) == 0
    return shell


@pytest.mark.parametrize("give_up", [CTRL_G, CTRL_C])
@pytest.mark.parametrize("presses", [1, 2, 3])
@pytest.mark.parametrize("typed", ["", "list-pools"])
def test_giving_up_a_history_search_runs_the_line_as_it_was_before(spec, typed, presses, give_up):
    # the tester's keys: Ctrl-R show-vm, Ctrl-R again, Ctrl-G, Enter: the search was given up, yet a match ran
    # (prompt_toolkit moves the line itself to each further match, and giving up only leaves the search)
    shell = searched(spec, typed + CTRL_R + "show-vm" + CTRL_R * (presses - 1) + give_up + "\r")
    assert shell.err.getvalue() == "" and "VM: VM-1" not in shell.out.getvalue()
    assert ("Pool B" in shell.out.getvalue()) == (typed == "list-pools")


@pytest.mark.parametrize("presses, found", [(1, "show-vm --vm-uuid="), (2, "show-vm --vm-uuid=4b4f")])
def test_a_history_search_finds_older_matches_and_enter_runs_the_one_found(spec, presses, found):
    shell = searched(spec, CTRL_R + "show-vm" + CTRL_R * (presses - 1) + "\r\r")  # Enter stops the search, Enter runs
    ran = "VM: VM-1" in shell.out.getvalue(), "error" in shell.err.getvalue()
    assert ran == ((False, True) if found == "show-vm --vm-uuid=" else (True, False))


# --- a history file others can read is tightened; one others could write is not used --------------------------


def _existing_history(isolated_environment, mode: int):
    path = isolated_environment / "data" / "vgpu" / "history"
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_text("\n# earlier\n+list-pools\n")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_history_file_others_can_only_read_is_tightened_and_used(shell, isolated_environment, mode):
    path = _existing_history(isolated_environment, mode)
    assert shell.type("\x1b[A\r" + CTRL_D, close=True) == 0  # Up, Enter: the file's line runs
    assert history_warnings(shell) == [] and "Pool B" in shell.out.getvalue()
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_history_file_others_could_write_is_not_used_and_the_docs_say_so(shell, isolated_environment, mode):
    # Others may have put lines in it: recalled by Up, Ctrl-R or the grey suggestion, one Enter runs them. So
    # it is refused (not tightened, which would keep their lines), as docs/shell.md says; it said "tightened".
    path = _existing_history(isolated_environment, mode)
    assert shell.type("\x1b[A\r" + CTRL_D, close=True) == 0
    (warning,) = history_warnings(shell)
    assert warning.startswith("History will not be saved this session: refusing the history ")
    assert f"others can change it (mode {mode:04o})" in warning
    assert shell.out.getvalue() == ""  # its line was not offered
    assert path.read_text() == "\n# earlier\n+list-pools\n" and os.stat(path).st_mode & 0o777 == mode
    docs = " ".join(open(os.path.join(os.path.dirname(__file__), "..", "docs", "shell.md"), encoding="utf-8").read().split())
    assert "an existing one that others can read is tightened" in docs
    assert "or others could write it (it is group- or world-writable)" in docs and "is not tightened" in docs

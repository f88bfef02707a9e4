"""Commands piped into vgpu-admin (``vgpu-admin < commands.txt``): one command per line, clean output, and
a stop at the first line that fails unless ``--keep-going`` says otherwise (as ``sqlite3 -bail`` and
``psql -v ON_ERROR_STOP=1`` do, but stopping by default: a script of changes should not run on after a
failed one)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from shell import handlers, helptext, main, runner, script
from shell.console import Console, stdin_reader
from shell.context import Context
from shell.script import run_lines
from vgpu import config

from .clikit import REPO, SpecHost, run, run_process


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def test_lines_stop_at_the_first_that_fails_and_exit_with_its_code(spec):
    outcome = run_process(spec.flags, stdin="list-pools\nset-pool --pool=C\nlist-vms --pool=A\nstatus\n")
    assert outcome.code == 2
    assert outcome.err_lines == [
        "error: set-pool needs --vm-uuid=<uuid>",
        "Stopped at line 2, which failed; the lines after it were not run (vgpu-admin --keep-going runs them all).",
    ]
    assert outcome.out_lines[0].startswith('Pool A: "Pool A"')  # the lines before it ran
    assert "VM-7" not in outcome.out and "Control Panel" not in outcome.out  # nothing after it did


def test_a_change_that_fails_stops_the_lines_that_would_build_on_it(spec):
    vm1, vm2 = spec.uuid("VM-1"), spec.uuid("VM-2")
    spec.sim.set_fault("set_args", "fail", vm1)
    lines = f"set-pool --vm-uuid={vm1} --pool=B\nyes\nset-pool --vm-uuid={vm2} --pool=B\nyes\n"
    outcome = run_process(spec.flags, stdin=lines)
    assert outcome.code == 1
    assert outcome.err_lines[-1].startswith("Stopped at line 1, which failed;")
    assert spec.pool_of("VM-1") == "A" and spec.pool_of("VM-2") == "A"


def test_the_line_a_script_stopped_at_counts_the_answers_too(spec):
    # Line numbers are the file's, as an editor shows them: the "yes" answering line 1 is line 2.
    lines = f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\nyes\nbogus\nstatus\n"
    outcome = run_process(spec.flags, stdin=lines)
    assert outcome.code == 2
    assert outcome.err_lines[-1].startswith("Stopped at line 3, which failed;"), outcome.err_lines
    assert spec.pool_of("VM-1") == "B"


def test_keep_going_runs_every_line_and_exits_with_the_first_failure(spec):
    outcome = run_process(["--keep-going", *spec.flags],
                          stdin="list-pools\nset-pool --pool=C\nshow-vm --vm-uuid=nope\nlist-vms --pool=A\nexit\nstatus\n")
    assert outcome.code == 2
    assert outcome.err_lines[:2] == ["error: set-pool needs --vm-uuid=<uuid>", "Went on after line 2, which failed (--keep-going)."]
    assert outcome.err_lines[3] == "Went on after line 3, which failed (--keep-going)." and len(outcome.err_lines) == 4
    assert "Stopped" not in outcome.err
    assert "VM-7" in outcome.out and "Control Panel" not in outcome.out  # list-vms ran; nothing after exit


def test_keep_going_names_each_line_that_failed(spec):
    """The error alone does not say which line it is about; as 'Stopped at line N' does without --keep-going."""
    vm1 = spec.uuid("VM-1")
    lines = f"list-pools\nbogus\nset-pool --vm-uuid={vm1} --pool=B\nok\nshow-vm --vm-uuid=nope\nlist-pools\n"
    outcome = run_process(["--keep-going", *spec.flags], stdin=lines)
    assert outcome.code == 2
    assert outcome.err_lines[0].startswith("error: unknown command 'bogus'")
    assert outcome.err_lines[1:3] == [
        "Went on after line 2, which failed (--keep-going).",
        "Cancelled: 'ok' is neither yes nor no (without a terminal the question is not asked again); nothing was changed.",
    ]
    assert outcome.err_lines[3] == "Went on after line 4, an answer that was neither yes nor no (--keep-going)."
    assert outcome.err_lines[4].startswith("error: ") and outcome.err_lines[5:] == [
        "Went on after line 5, which failed (--keep-going).",
    ]
    assert outcome.out.count('Pool A: "Pool A"') == 2 and spec.pool_of("VM-1") == "A"  # the last line ran


def test_an_answer_of_no_is_not_a_failure_that_stops_the_lines(spec):
    vm1 = spec.uuid("VM-1")
    outcome = run_process(spec.flags, stdin=f"set-pool --vm-uuid={vm1} --pool=B\nno\nlist-vms --pool=A --priority=high\n")
    assert outcome.code == 3  # cancelled, as the exit code says; but the next line ran
    assert f"UUID: {vm1} | Name: VM-1 | Pool: A" in outcome.out and spec.pool_of("VM-1") == "A"
    assert "Stopped" not in outcome.err


def test_piped_output_is_clean_no_prompt_no_echo_no_terminal_codes(spec):
    vm1 = spec.uuid("VM-1")
    lines = f"list-pools\nset-pool --vm-uuid={vm1} --pool=B\nyes\nstatus\n"
    done = subprocess.run([sys.executable, "-m", "shell", *spec.flags], input=lines.encode(), capture_output=True,
                          env=spec_env(), cwd=str(REPO), timeout=60)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    for text in (out, err):
        assert "\r" not in text and "\x1b" not in text and "vgpu>" not in text
    assert "list-pools" not in out and "status" not in out.split("\n")  # the lines themselves are not echoed
    assert out.count('Pool A: "Pool A"') == 2  # list-pools once, status once: nothing twice
    assert spec.pool_of("VM-1") == "B"


def spec_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def test_keep_going_with_a_one_shot_command_is_refused_with_one_line(spec):
    before = spec.files()
    outcome = run(["--keep-going", "list-pools", *spec.flags])
    assert outcome.code == 2
    assert outcome.one_error_line() == ("error: --keep-going is for commands read from standard input "
                                        "(vgpu-admin --keep-going < FILE); list-pools runs once")
    assert spec.files() == before


def test_keep_going_takes_no_value(spec):
    outcome = run(["--keep-going=yes", *spec.flags])
    assert outcome.code == 2 and outcome.one_error_line() == "error: --keep-going takes no value"


ON_A_LINE = ("error: --keep-going is for the lines read from standard input and is given when vgpu-admin starts "
             "(vgpu-admin --keep-going < FILE); a line cannot set it")


@pytest.mark.parametrize("line", ["list-pools --keep-going", "vgpu-admin --keep-going list-pools", "--keep-going"])
def test_keep_going_on_a_line_is_refused_as_db_and_host_are(spec, line):
    """Typed at the prompt or read from a pipe, a line's --keep-going would be silently ignored."""
    ctx, out, err = _context(spec)
    assert runner.run_line(ctx, line) == 2
    assert (out.getvalue(), err.getvalue()) == ("", ON_A_LINE + "\n")


def test_a_piped_line_with_keep_going_stops_the_lines_with_the_refusal(spec):
    outcome = run_process(spec.flags, stdin="vgpu-admin --keep-going bogus\nlist-pools\n")
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.err_lines == [ON_A_LINE, f"Stopped at line 1, which failed; {script.NOT_RUN}"]


@pytest.mark.parametrize("argv", [["--keep-going"], ["--keep-going", "shell"]])
def test_keep_going_at_a_terminal_is_refused_with_one_line(spec, monkeypatch, argv):
    monkeypatch.setattr(sys, "stdin", type("Terminal", (io.StringIO,), {"isatty": lambda self: True})())
    monkeypatch.setattr(main, "_open_shell", lambda ctx, keep_going=False: 99)  # never a prompt here
    outcome = run([*argv, *spec.flags])
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line() == ("error: --keep-going is for commands read from standard input "
                                        "(vgpu-admin --keep-going < FILE); at a terminal each line runs as you type it")


def test_the_global_options_name_keep_going():
    assert "--keep-going" in helptext.overview() and "--keep-going" in helptext.GLOBAL_OPTIONS


def _context(spec: SpecHost) -> tuple[Context, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(config.load({"db": str(spec.db), "host": f"sim:{spec.host_file}"}), Console(out, err, stdin_reader(out)))
    return ctx, out, err


def test_a_hash_that_begins_a_word_starts_a_comment_as_in_sh(spec):
    """``list-pools   # pools`` runs list-pools; a ``#`` inside a word, quoted or escaped is the word's own."""
    ctx, out, err = _context(spec)
    lines = ("list-pools   # pools\n"
             "set-pool-name --pool-id=A --name=a#b  # inside a word: part of it\n"
             "show-pool --pool-id=A\t# after a tab\n"
             "set-pool-name --pool-id=B --name '#1' # quoted\n"
             "show-pool --pool-id=B #\n")
    code = run_lines(ctx, io.StringIO(lines))
    assert (code, err.getvalue()) == (0, "")
    assert out.getvalue().splitlines()[0].startswith('Pool A: "Pool A" | Status: Enabled')
    assert 'Pool A is now named "a#b".' in out.getvalue() and 'Pool B is now named "#1".' in out.getvalue()


def test_a_lines_help_word_where_a_value_goes_is_the_value(spec):
    """As on the command line: ``--name -h`` renames; only -h in an option's place asks for help."""
    ctx, out, err = _context(spec)
    assert runner.run_line(ctx, "set-pool-name --pool-id A --name -h") == 0
    assert (out.getvalue(), err.getvalue()) == ('Pool A is now named "-h".\n', "")
    assert runner.run_line(ctx, "vgpu-admin set-pool-name --pool-id A -h") == 0
    assert out.getvalue().splitlines()[1].startswith("Usage: vgpu-admin set-pool-name")


@pytest.mark.parametrize("line", ['"#" list-pools', "\\# list-pools", "'#list-pools'"])
def test_a_quoted_or_escaped_hash_at_the_start_is_a_word_not_a_comment(spec, line):
    ctx, out, err = _context(spec)
    assert runner.run_line(ctx, line) == 2
    assert err.getvalue().startswith("error: unknown command '#")


@pytest.mark.parametrize("keep_going", [False, True])
def test_ctrl_c_stops_the_lines_even_with_keep_going(spec, monkeypatch, keep_going):
    ran = []

    def interrupted(ctx, opts):
        ran.append("status")
        raise KeyboardInterrupt

    monkeypatch.setattr(handlers, "status", interrupted)
    ctx, out, err = _context(spec)
    code = run_lines(ctx, io.StringIO("status\nlist-pools\n"), keep_going=keep_going)
    assert code == 1 and ran == ["status"] and out.getvalue() == ""  # list-pools never ran
    assert err.getvalue().splitlines()[-1].startswith("Stopped at line 1, interrupted;")


def test_lines_after_a_demo_reset_see_the_new_demo_not_the_old_files():
    # One session, as in the vgpu> shell: the database and host it opened before the reset were replaced.
    from vgpu import demo

    vm1 = demo.demo_uuid("VM-1")
    outcome = run_process(["--host=sim:demo"], stdin=f"remove-vm --vm-uuid={vm1}\ndemo --reset\nshow-vm --vm-uuid={vm1}\n")
    assert outcome.code == 0, outcome.err
    shown = outcome.out_lines[outcome.out_lines.index(f"UUID: {vm1}"):]  # show-vm's lines, after the reset's
    assert shown[1:3] == ["Pool: A", "Priority: high (2)"]


UNCLEAR_OK = ("Cancelled: 'ok' is neither yes nor no (without a terminal the question is not asked again); "
              "nothing was changed.")


def test_an_unclear_answer_is_a_no_that_takes_only_its_own_line_and_stops_the_lines(spec):
    # Asking again would read line 3 (a command) as the answer, and line 4's yes would apply VM-1's change.
    vm1, vm2 = spec.uuid("VM-1"), spec.uuid("VM-2")
    outcome = run_process(spec.flags, stdin=f"set-pool --vm-uuid={vm1} --pool=B\nok\nset-pool --vm-uuid={vm2} --pool=B\nyes\n")
    assert outcome.code == 3  # cancelled: nothing failed, but nothing was changed either
    assert outcome.err_lines == [UNCLEAR_OK, "Stopped at line 2, an answer that was neither yes nor no; the lines "
                                             "after it were not run (vgpu-admin --keep-going runs them all)."]
    assert "Please answer" not in outcome.out and outcome.out.count("(yes/no): ") == 1
    assert spec.pool_of("VM-1") == "A" and spec.pool_of("VM-2") == "A"


def test_with_keep_going_the_lines_after_an_unclear_answer_run(spec):
    vm1, vm2 = spec.uuid("VM-1"), spec.uuid("VM-2")
    outcome = run_process(["--keep-going", *spec.flags],
                          stdin=f"set-pool --vm-uuid={vm1} --pool=B\nok\nset-pool --vm-uuid={vm2} --pool=B\nyes\n")
    assert outcome.code == 3 and UNCLEAR_OK in outcome.err_lines and "Stopped" not in outcome.err
    assert spec.pool_of("VM-1") == "A" and spec.pool_of("VM-2") == "B"


def test_a_line_that_fails_after_an_answer_of_no_gives_the_script_its_own_code(spec):
    lines = f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=B\nno\nshow-pool --pool-id=Z\nlist-pools\n"
    outcome = run_process(spec.flags, stdin=lines)
    assert outcome.err_lines[-1].startswith("Stopped at line 3, which failed;")
    assert outcome.code == 2  # the failing line's code: the cancellation before it was a choice, not the failure
    assert 'Pool A: "Pool A"' not in outcome.out


@pytest.mark.parametrize("lines", ["set-pool --vm-uuid={vm1} --pool=B\nno\nshow-pool --pool-id=Z\n",
                                   "show-pool --pool-id=Z\nset-pool --vm-uuid={vm1} --pool=B\nno\n"],
                         ids=["no-then-failure", "failure-then-no"])
def test_with_keep_going_a_failure_outranks_a_cancellation_wherever_it_is(spec, lines):
    outcome = run_process(["--keep-going", *spec.flags], stdin=lines.format(vm1=spec.uuid("VM-1")))
    assert outcome.code == 2 and "Stopped" not in outcome.err


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_exit_with_an_argument_is_refused_as_any_command_refuses_one(spec, word):
    outcome = run_process(spec.flags, stdin=f"{word} now\nlist-pools\n")
    assert outcome.code == 2
    assert outcome.err_lines == [
        "error: unexpected argument 'now' for exit; options look like --name=value",
        "Stopped at line 1, which failed; the lines after it were not run (vgpu-admin --keep-going runs them all).",
    ]
    assert outcome.out == ""


def test_exit_with_an_unknown_option_is_refused_and_the_shell_stays(spec):
    ctx, out, err = _context(spec)
    ctx.in_repl = True
    assert runner.run_line(ctx, "quit --force") == 2
    assert err.getvalue() == "error: unknown option '--force' for exit; expected no options\n"
    assert runner.run_line(ctx, "quit") is None


# --- re-running a script of changes already made: answers no question asked for ---------------------------


@pytest.mark.parametrize("answer", ["yes", "y", "NO", " n "])
def test_an_answer_after_a_command_that_asked_nothing_is_passed_over(spec, answer):
    # A re-run: VM-1 is in Pool A already, so set-pool asks nothing and the "yes" written for it is left over.
    outcome = run_process(spec.flags, stdin=f"set-pool --vm-uuid={spec.uuid('VM-1')} --pool=A\n{answer}\nlist-pools\n")
    assert outcome.code == 0, outcome.err
    assert outcome.err_lines == [f"Passed over line 2 ({answer.strip()!r}): line 1 asked no question."]
    assert outcome.out_lines[0].endswith("already has this configuration; nothing to do.")
    assert outcome.out_lines[1].startswith('Pool A: "Pool A"')  # list-pools ran


@pytest.mark.parametrize("lines", [
    "yes\nlist-pools\n",  # no command before it
    "set-pool --vm-uuid={vm1} --pool=A\nyes please\nlist-pools\n",  # not a bare answer
    "set-pool --vm-uuid={vm1} --pool=A\n# moved already\nyes\nlist-pools\n",  # not right after the command
    "set-pool --vm-uuid={vm1} --pool=A\nyes\nyes\nlist-pools\n",  # the second one answers nothing either
    "set-pool --vm-uuid={vm1} --pool=B\nyes\nyes\nlist-pools\n",  # the command asked, and had its answer
], ids=["first-line", "not-bare", "after-a-comment", "twice", "after-a-question"])
def test_any_other_answer_where_no_question_was_asked_is_an_unknown_command(spec, lines):
    outcome = run_process(spec.flags, stdin=lines.format(vm1=spec.uuid("VM-1")))
    assert outcome.code == 2
    assert any(line.startswith("error: unknown command 'yes'") for line in outcome.err_lines), outcome.err
    assert outcome.err_lines[-1].startswith("Stopped at line")
    assert 'Pool A: "Pool A"' not in outcome.out


def test_help_from_a_pipe_names_no_toolbar_and_says_how_the_database_and_host_were_chosen(spec):
    outcome = run_process(spec.flags, stdin="help\n")
    assert outcome.code == 0
    assert "bar at the bottom" not in outcome.out and "this shell started" not in outcome.out  # no toolbar, no shell
    assert " ".join(outcome.out.split()).endswith(" ".join(helptext.FROM_A_SCRIPT.split()))


def test_a_backslash_at_the_end_of_a_line_continues_the_command_on_the_next_as_in_sh(spec):
    # The backslash used to escape the line break: show-pool was given a word "\n" ("unexpected argument").
    ctx, out, err = _context(spec)
    lines = ("show-pool \\\n"
             "--pool-id=A\n"
             "set-pool-name \\\n"
             "  --pool-id=B \\\n"
             "  --name='b\\c' # a comment's backslash continues nothing \\\n"
             "show-pool --pool-id=B\n"
             "set-pool-name --pool-id=A --name=x\\\\\n"  # an escaped backslash ends the word, not the line
             "show-pool --pool-id=A \\")                  # at the end of the input: nothing to join
    code = run_lines(ctx, io.StringIO(lines))
    assert (code, err.getvalue()) == (0, "")
    shown = out.getvalue().splitlines()
    assert shown[0] == 'Pool A: "Pool A"'
    assert 'Pool B is now named "b\\c".' in shown and 'Pool A is now named "x\\".' in shown
    assert 'Pool B: "b\\c"' in shown and 'Pool A: "x\\"' in shown


def test_a_continued_command_that_fails_is_named_by_its_first_line_and_answers_follow_it(spec):
    lines = f"set-pool \\\n--vm-uuid={spec.uuid('VM-1')} \\\n--pool=B\nyes\nlist-pools\nyes\nbogus \\\n--x\nstatus\n"
    outcome = run_process(spec.flags, stdin=lines)
    assert spec.pool_of("VM-1") == "B"
    assert outcome.code == 2, outcome
    assert "Passed over line 6 ('yes'): line 5 asked no question." in outcome.err_lines
    assert outcome.err_lines[-1].startswith("Stopped at line 7, which failed;"), outcome.err_lines

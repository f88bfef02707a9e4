"""The docs stay honest: every vgpu-admin example parses, the library page's examples run, and the
troubleshooting page names every error class, every host error code and their messages."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shlex

import pytest

from shell import parsing, runner
from shell.errors import UsageError
from vgpu import bulk, bulk_register, devargs, error_root, errors, lifecycle, models, scan, tables, values
from vgpu.hypervisor import codes
from vgpu.models import HostVM, PowerState, Priority, VMConfig

from .conftest import REPO_ROOT

DOCS = os.path.join(REPO_ROOT, "docs")
# commands.md is generated from the command table and checked against it by its own test; its usage lines
# ("[--pool=<A|B>]") are syntax summaries, not examples.
PAGES = ("getting-started.md", "shell.md", "library.md", "architecture.md", "install-xcp-ng.md",
         "install-libvirt.md", "troubleshooting.md", "fleet.md")
REAL_UUID = "4b4f68b1-a09c-5693-9d02-accb4c2306ff"  # the demo's VM-1
SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTIONS = {"<", ">", ">>", ">&", "<&", "2>"}


def _read(name: str) -> str:
    with open(os.path.join(DOCS, name), encoding="utf-8") as handle:
        return handle.read()


def _flat(text: str) -> str:
    """The page with every run of whitespace as one space (prose and code spans wrap across lines)."""
    return re.sub(r"\s+", " ", text)


# --- vgpu-admin examples ---------------------------------------------------------------------------------


def _code_lines(text: str) -> tuple[list[str], list[str]]:
    """(lines of fenced code blocks, inline code spans outside them)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return [line for block in fenced for line in block.splitlines()], re.findall(r"`([^`\n]+)`", prose)


def _commands_in(line: str) -> list[list[str]]:
    """Each ``vgpu-admin ...`` command of a shell line (pipelines and && lists split), as words."""
    text = line.strip().removeprefix("$ ").replace("<uuid>", REAL_UUID)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current, skip = [], [], False
    for token in lexer:
        if skip:
            skip = False
        elif token in SHELL_OPERATORS:
            commands.append(current)
            current = []
        elif token in REDIRECTIONS:
            skip = True
        else:
            current.append(token)
    commands.append(current)
    return [words for words in commands if words and words[0] == "vgpu-admin"]


def _check_one_shot(words: list[str]) -> None:
    """Parse a ``vgpu-admin`` command line the way shell.main does; raises UsageError if it would not."""
    _, rest = parsing.take_globals(words[1:])
    rest = parsing.as_help(rest)
    if not rest:
        return  # no command: the vgpu> shell
    command, _ = parsing.parse(rest)
    if command.repl_only:
        raise UsageError(f"{command.name} only works inside the vgpu> shell")


def _examples() -> list[tuple[str, str]]:
    """(page, example) for every vgpu-admin command and every ``vgpu>`` line in the docs."""
    found = []
    for page in PAGES:
        lines, spans = _code_lines(_read(page))
        for line in lines + [span for span in spans if span.startswith("vgpu-admin ")]:
            if line.strip().startswith("vgpu> "):
                found.append((page, line.strip()))
            found += [(page, shlex.join(words)) for words in _commands_in(line)]
    return found


def _check_example(example: str) -> None:
    if example.startswith("vgpu> "):
        parsing.parse(parsing.split_line(example[len("vgpu> "):].replace("<uuid>", REAL_UUID)))
    else:
        _check_one_shot(parsing.split_line(example))


def test_the_docs_have_many_examples_on_every_page_that_shows_commands():
    examples = _examples()
    pages = {page for page, _ in examples}
    assert len(examples) >= 30
    assert {"getting-started.md", "shell.md", "install-xcp-ng.md", "install-libvirt.md", "troubleshooting.md"} <= pages


@pytest.mark.parametrize("page,example", _examples())
def test_every_vgpu_admin_example_parses(page, example):
    _check_example(example)


@pytest.mark.parametrize("bad", [
    "vgpu-admin frobnicate",
    "vgpu-admin set-pool --pool=B",
    "vgpu-admin list-vms --colour=red",
    "vgpu-admin refresh",
    "vgpu> set-pool --help",
])
def test_the_checker_refuses_what_the_parser_refuses(bad):
    with pytest.raises(UsageError):
        _check_example(bad)


def test_the_extractor_finds_commands_in_pipelines_and_spans():
    lines, spans = _code_lines("text `vgpu-admin status` more\n```sh\n$ echo yes | vgpu-admin set-pool --vm-uuid=<uuid> --pool=B && vgpu-admin status\n```\n")
    assert spans == ["vgpu-admin status"]
    assert _commands_in(lines[0]) == [["vgpu-admin", "set-pool", f"--vm-uuid={REAL_UUID}", "--pool=B"], ["vgpu-admin", "status"]]


# --- the library page runs --------------------------------------------------------------------------------


def test_the_library_examples_run_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    blocks = re.findall(r"^```python\n(.*?)^```", _read("library.md"), flags=re.S | re.M)
    assert len(blocks) >= 10
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/library.md python block {number}", "exec"), namespace)
    namespace["store"].close()
    printed = capsys.readouterr().out
    assert "VM-1 A high (2) 1" in printed and "Operation cancelled; nothing was changed." in printed
    # The vgpu.connect() session that opens the page, on a sandbox of its own:
    assert "<vgpu.Connection db=" in printed and "True [21, 22]\n0\n" in printed and "22 1\nupdate []\n" in printed


def _python_blocks(page: str, fence: str) -> list[str]:
    return re.findall(rf"^```{fence}\n(.*?)^```", _read(page), flags=re.S | re.M)


def _unbound_names(code: str, name: str) -> set[str]:
    """Names the code reads that neither it binds nor Python provides: what a reader pasting it would miss."""
    import builtins
    import symtable

    top = symtable.symtable(code, name, "exec")
    bound = {sym.get_name() for sym in top.get_symbols() if sym.is_assigned() or sym.is_imported()}
    missing: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for sym in table.get_symbols():
            reads_a_global = sym.is_referenced() and (table is top or sym.is_global())
            if reads_a_global and sym.get_name() not in bound and not hasattr(builtins, sym.get_name()):
                missing.add(sym.get_name())
    return missing


@pytest.mark.parametrize("page", PAGES)
def test_the_examples_that_do_not_run_import_what_they_use(page):
    """```py blocks show what cannot run here (a real host): they still import every name they use, and
    those imports work, so a reader can paste one as it is."""
    for number, block in enumerate(_python_blocks(page, "py"), start=1):
        where = f"docs/{page} py block {number}"
        assert not _unbound_names(block, where), f"{where} uses names it never imports or defines"
        imports = [node for node in ast.parse(block).body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(imports, type_ignores=[]), where, "exec"), {})


def test_the_unbound_name_check_sees_a_missing_import():
    assert _unbound_names("x = lambda: getpass.getpass()\nprint(len(x))", "t") == {"getpass"}
    assert _unbound_names("import getpass\nx = lambda: getpass.getpass()\nf = [y for y in x()]", "t") == set()


# --- what the tables show --------------------------------------------------------------------------------


def _tables_paragraph() -> str:
    """library.md's list of the results that are tables, and what each gives (up to its example)."""
    page = _flat(_read("library.md"))
    start = page.index("Lists of VMs, pools and audit entries")
    return page[start:page.index("```python", start)]


def _named_tables() -> list[type]:
    listed = _tables_paragraph().split(" are tables.", 1)[0]
    modules = (bulk, bulk_register, errors, models, scan)
    return [next(getattr(module, name) for module in modules if hasattr(module, name))
            for name in re.findall(r"`([A-Z]\w+)`", listed)]


def test_the_tables_whose_repr_is_not_their_table_are_named_with_what_shows_it():
    # The page says a table's text repr is its bounded display. An exception keeps an exception's repr
    # (InvalidRows("3 bad rows, ...")): the page must say which, and what shows their table instead.
    classes = _named_tables()
    assert len(classes) >= 7 and all(issubclass(cls, tables.Tabular) for cls in classes)
    own_repr = sorted(cls.__name__ for cls in classes if cls.__repr__ is not tables.Tabular.__repr__)
    assert own_repr == ["InvalidRows"]
    said = [sentence for sentence in re.split(r"(?<=\.)\s+", _tables_paragraph()) if "keeps an exception's repr" in sentence]
    assert len(said) == 1, "the page does not say which tables keep another repr"
    assert sorted(set(re.findall(r"`([A-Z]\w+)`", said[0]))) == own_repr
    assert "print(error.to_string())" in said[0] and "HTML" in said[0]
    error = errors.InvalidRows([errors.RowProblem(1, errors.InvalidValue("pool", "C", ("A", "B")))])
    assert repr(error) == f"InvalidRows({str(error)!r})"
    assert "invalid pool 'C'" in error.to_string().splitlines()[-1] and "<table" in error._repr_html_()


# --- troubleshooting covers every error ----------------------------------------------------------------------


def _error_classes() -> list[type]:
    return [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.VgpuError) and cls.__module__ == errors.__name__]


def _error_table() -> dict[str, str]:
    """library.md's "Errors and their data" table: each class's name and its data cell."""
    section = _read("library.md").split("## Errors and their data", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([^|]*) \|$", section, re.MULTILINE)
    assert rows, "the errors table was not found"
    return dict(rows)


def _class_definitions() -> dict[str, ast.ClassDef]:
    """The classes of vgpu.errors, as written: some are defined in vgpu.error_root (and say they belong to
    vgpu.errors, which inspect.getsource cannot follow)."""
    trees = [ast.parse(inspect.getsource(module)) for module in (errors, error_root)]
    return {node.name: node for tree in trees for node in tree.body if isinstance(node, ast.ClassDef)}


def _own_attributes(cls: type) -> set[str]:
    """The public attributes the class itself sets (``self.x = ...`` in its methods), inherited ones aside."""
    tree = _class_definitions()[cls.__name__]
    targets = [target for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
               for target in (node.targets if isinstance(node, ast.Assign) else [node.target])]
    names = [element for target in targets for element in (target.elts if isinstance(target, ast.Tuple) else [target])]
    return {name.attr for name in names if isinstance(name, ast.Attribute) and isinstance(name.value, ast.Name)
            and name.value.id == "self" and not name.attr.startswith("_")}


def _public_errors() -> list[type]:
    """Every exception vgpu.errors exports, the root aside (the table's introduction names it)."""
    return [getattr(errors, name) for name in errors.__all__ if name != "VgpuError"
            and isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), BaseException)]


def test_the_library_errors_table_has_every_public_error_and_its_data():
    table, classes = _error_table(), _public_errors()
    assert len(classes) >= 20
    assert [cls.__name__ for cls in classes if cls.__name__ not in table] == []
    missing = {cls.__name__: sorted(attribute for attribute in _own_attributes(cls)
                                    if f"`{attribute}`" not in table[cls.__name__]) for cls in classes}
    assert {name: attributes for name, attributes in missing.items() if attributes} == {}


def test_the_attribute_check_sees_what_a_class_sets():
    assert _own_attributes(errors.StaleRegistrations) == {
        "vm_uuid", "planned", "current", "registered_since", "vm_ids_taken", "unregistered_since"}
    assert _own_attributes(errors.HostUnreachable) == set()


def _codes() -> list[str]:
    return [value for name, value in vars(codes).items() if name.isupper() and isinstance(value, str) and value == name]


def test_every_error_class_is_in_troubleshooting():
    page = _read("troubleshooting.md")
    classes = _error_classes()
    assert len(classes) >= 12
    assert [cls.__name__ for cls in classes if not re.search(rf"`{cls.__name__}`", page)] == []


def test_every_host_error_code_is_in_troubleshooting():
    page = _read("troubleshooting.md")
    found = _codes()
    assert len(found) >= 14
    assert [code for code in found if f"`{code}`" not in page] == []


def _fragments(sentence: str) -> list[str]:
    """The fixed words of a sentence built with «placeholders»: what the page must show verbatim."""
    return [part.strip() for part in re.split(r"«[^»]*»", sentence) if len(part.strip()) >= 10]


@pytest.mark.parametrize("code", _codes())
def test_every_host_error_sentence_is_in_troubleshooting(code):
    page = _flat(_read("troubleshooting.md"))
    sentence = codes.sentence_for(code, ["«0»", "«1»", "«2»"], "«vm»").replace("VM «vm»", "«vm»")  # the page: *VM*
    assert _fragments(sentence), sentence
    assert [part for part in _fragments(sentence) if part not in page] == []


_SEGMENT = devargs.render(VMConfig("A", Priority.HIGH, 1))


class _HostOf:
    """A host that lists one VM: what explain_unregistered asks."""

    def __init__(self, host_vm: HostVM) -> None:
        self.host_vm = host_vm

    def list_vms(self) -> list[HostVM]:
        return [self.host_vm]


def _example_errors() -> list[errors.VgpuError]:
    pool_c = [errors.RowProblem(row, errors.InvalidValue("pool", "C", ("A", "B"))) for row in (2, 5, 7)]
    return [
        errors.InvalidValue("«field»", "«value»", "«allowed»"),
        errors.InvalidValue("pool", "C", ("A", "B")),
        errors.InvalidRows(pool_c),
        bulk_register.RegistrationPlan((), (), tuple(pool_c)).invalid,
        errors.NotFound("registered VM", "«uuid»", "if the host has this VM, register it with "
                        "'vgpu-admin register-vm --vm-uuid=«uuid»' (see 'vgpu-admin scan-vms')"),
        errors.NotFound("registered VM", "«uuid»", "the host has no VM with this UUID either (see 'vgpu-admin scan-vms')"),
        errors.NotRegistered("«uuid»", "«name»"),
        lifecycle.explain_unregistered(_HostOf(HostVM("«uuid»", "«name»", PowerState.HALTED, "")),
                                       errors.NotFound("registered VM", "«uuid»"), removing=True),
        lifecycle.explain_unregistered(_HostOf(HostVM("«uuid»", "«name»", PowerState.HALTED, _SEGMENT)),
                                       errors.NotFound("registered VM", "«uuid»"), removing=True),
        _raised_by(values.parse_pool_name, '«"»'),
        errors.Conflict("vm_id", "«id»", "«holder»"),
        errors.AlreadyRegistered("«uuid»", 1, "B"),
        errors.StalePlan("«uuid»", None, VMConfig("A", Priority.HIGH, 1), VMConfig("B", Priority.HIGH, 1)),
        errors.StaleRegistrations(["«change»"], [], [1], ("«uuid»", VMConfig("A", Priority.HIGH, 1), None)),
        errors.InvalidColumns.missing(("vm_uuid", "uuid"), "VM UUID"),
        errors.InvalidColumns.doubled(("«key»", "«key»"), "«field»"),
        errors.InvalidColumns.extra_cells(["«cell»"]),
        errors.NotRows("«type»", "«hint»"),
        errors.Busy("«uuid»", "«since»"),
        errors.Busy("«uuid»", "«since»", interrupted=True),
        errors.Cancelled(),
        errors.UnsafeFile("«path»", "config file", "«problem»", "«fix»"),
        errors.DamagedDatabase("vms", "«row»", "«problem»", "«path»"),
        errors.IncompleteSchema("«path»", ["«what»"]),
        errors.ReconfigureFailed("«uuid»", errors.VgpuError("«cause»"), rolled_back=True),
        errors.ReconfigureFailed("«uuid»", errors.VgpuError("«cause»"), rolled_back=False, rollback_error=errors.VgpuError("«why»")),
        errors.ReconfigureFailed("«uuid»", errors.VgpuError("«cause»"), rolled_back=False,
                                 rollback_error=errors.HostUnreachable("HOST_UNREACHABLE", "«why»")),
        errors.ReconfigureFailed("«uuid»", errors.VgpuError("«cause»"), rolled_back=True, restart_error=errors.VgpuError("«why»")),
        errors.Busy("«uuid»", "«since»", session="«host:pid»", recovering=True),
        errors.ShutdownNotConfirmed("«uuid»", 120),
        errors.ShutdownNotConfirmed("«uuid»", 120, errors.HypervisorError("«code»", "«why»")),
        errors.MissingDependency("pandas", "to_pandas()", "pip install pandas"),
        errors.DuplicateVM("«uuid»", ["«a»", "«b»"]),
        errors.DuplicateVM("«uuid»", ["", ""]),
        errors.DuplicateVM("«uuid»", ["«a»", "«a»"]),
    ]


def _raised_by(function, *args) -> errors.VgpuError:
    try:
        function(*args)
    except errors.VgpuError as error:
        return error
    raise AssertionError(f"{function.__name__}{args} raised nothing")


@pytest.mark.parametrize("error", _example_errors(), ids=lambda error: type(error).__name__)
def test_every_library_error_sentence_is_in_troubleshooting(error):
    page = _flat(_read("troubleshooting.md"))
    assert [part for part in _fragments(str(error)) if part not in page] == []


# Messages built in other modules: each fragment must still be in its source (so this list cannot go stale)
# and on the page.
SOURCE_MESSAGES = {
    "vgpu/store_faults.py": [
        "could not write to database ", "could not read database ",
        "the file is read-only (changes need write access to it and its directory)",
        "is read-only (SQLite writes its -wal and -shm files there)", "the file system holding it is mounted read-only",
        "the disk is full", "the disk reported an I/O error (", "the file was moved or deleted while it was open; run the command again",
        "SQLite opened it read-only (changes need write access to it and its directory)",
        "cannot open database ", "(SQLite creates its -wal and -shm files beside it, even to read)",
    ],
    "vgpu/store.py": [
        "stayed locked by another process; try again",
        "was closed; open it again with Store(path)",
        "is not a vgpu database (SQLite says:",
        "is an SQLite database but not a vgpu database (it has",
        "newer than this vgpu-admin understands",
        "restore it from a backup",
        "it is a directory",
        "serves another thread, and a Store serves one thread ",
        "only; give this thread its own with store.reopen() (conn.reopen() for a vgpu.connect() ",
    ],
    "vgpu/journal.py": ["(that session has ended; run 'vgpu-admin recover' to finish or undo its change)",
                        "was interrupted at step", "run 'vgpu-admin recover' to finish or undo it.",
                        "; if that session is gone, 'vgpu-admin recover --take-over' ", "finishes or undoes its change)",
                        "being recovered by session ", "still in progress in session ", ", where this one cannot check it",
                        "that session is gone, run 'vgpu-admin recover --take-over'"],
    "vgpu/sessions.py": ["it ran on another host (", "(as before schema 2), so vgpu-admin ",
                         "cannot tell it from the process now running as PID "],
    "vgpu/hypervisor/fleet.py": ["does not exist on any host of the fleet", "is on none of the hosts that answered, and host ",
                                 "of the fleet, and this run has ",
                                 "with that host (--host ", " is not one of this run's configured hosts (not in [hosts], nor given by ",
                                 "--host): run 'vgpu-admin recover' with that host given again ("],
    "vgpu/bulk.py": ["is on none of the hosts that answered; "],
    "vgpu/bulk_register.py": [", which the plan gave ", "is registered now (vm_id ", "is not registered now (the plan found it registered: "],
    "shell/panel.py": ["; its registered VMs are shown from the database", "=== Same UUID on several hosts: "],
    "vgpu/recovery.py": ["the host is still carrying out ", " on the VM; nothing was changed: ", "run 'vgpu-admin recover' again once it is done",
                         "the host is busy with another operation on the VM (", "); nothing more was done: ",
                         "the change had reached the database and was undone by the session that made it",
                         "the change had not reached the database", "the VM kept running with ", " and was not restarted",
                         "the VM was stopped for the change and has been started again since, with ",
                         "; recover did not restart it", "the VM is running with ",
                         "the VM would not start again even with its previous configuration (", "): it is halted; ",
                         "fix that on the host, then start it"],
    "shell/render.py": ["; ⚠ needs attention: ", "=== Needs attention: ", "⚠ Needs attention (since "],
    "vgpu/confirming.py": ["Cancelled: the confirmation failed ("],
    "vgpu/locations.py": ["is configured in this run (in [hosts], or given by --host), so it may still run its VMs: ",
                          "take it out of the config first; only a host no longer configured can be forgotten",
                          "is not remembered by the database: ", "the hosts it remembers that this run does not configure are ",
                          "it remembers no host that this run does not configure", "has an unfinished change of VM ",
                          "and recover needs that host ", "to finish or undo it: give it again (",
                          "run 'vgpu-admin recover', ", "then forget it; nothing was forgotten"],
    "vgpu/lifecycle.py": ["resume it or shut it down first, then try again",
                          "; the shutdown request was delivered, so the VM may still halt by itself",
                          ", and being transient it will vanish when it halts unless it is defined again (virsh define)",
                          "Its configuration was not changed, and it is marked as needing attention until it is seen ",
                          "halted or running again", "; nothing was changed",
                          "was rolled back: its previous configuration is in place", " and the VM is running",
                          "also failed (",
                          "it is neither registered nor on the host (see 'vgpu-admin scan-vms')",
                          "the host has no such VM, though it is registered: ",
                          "the host has no VM with this UUID either (see 'vgpu-admin scan-vms')",
                          "would not start with its registered configuration (",
                          "started again with the arguments it ran with before, which now differ from the database"],
    "vgpu/config.py": ["cannot read config file", "has the wrong type", "unknown setting", "an absolute path",
                       "VGPU_CLEAN_TIMEOUT", "a whole number of at least 1", "the path of a database file",
                       "database path",
                       "a host URI such as xe: or sim:PATH, a label of [hosts], or a list of labels"],
    "vgpu/values.py": ["a number of seconds from 0 to "],
    "vgpu/hostspecs.py": ["a platform key name such as device-model-args: printable, without spaces, '=' or '/'"],
    "vgpu/hypervisor/xapi_uri.py": ["not set, and there is no prompt to ask for the password of",
                                    "(no terminal, ", "and no password_file in the config)"],
    "shell/console.py": ["No password was typed; nothing was changed.",
                         " is neither yes nor no (without a terminal the question is not asked ", "again); nothing was changed."],
    "vgpu/trust.py": ["can be written by others", "others can change it", "others can read it", "chmod go-w",
                      "chmod 600", "check what it holds, then chown", "which does not exist, and vgpu-admin never ",
                      "creates a file through a symlink", "or give the real path", "is not a regular file",
                      "keep the", "in a directory only you can write to (install -d -m 700 DIR)",
                      "its first line is empty", "write the password alone on the first line of",
                      "its path goes through the symlink ", "its path follows more than ", "is not a directory"],
    "vgpu/hypervisor/xe.py": ["run on a XCP-ng/XenServer dom0 or give its path as xe:/path/to/xe"],
    "vgpu/hypervisor/libvirt.py": ["libvirt-python is not installed; pip install 'vgpu-admin[libvirt]'"],
    "vgpu/pools.py": ['pool name "', " is already used by pool ", ' (named "'],
    "vgpu/vms.py": ["no change given for VM", ": expected at least one of pool, priority or vm_id"],
    "shell/parsing.py": ["needs at least one of"],
    "shell/runner.py": ["If a change was under way, run 'vgpu-admin recover' to finish or undo it.",
                        "error: the command finished, but its output could not be written (",
                        "error: the confirmation could not be written (", "); nothing was changed."],
    "shell/main.py": ["error: standard output is closed; nothing was done",
                      "prompt_toolkit is not installed: pip install 'vgpu-admin[shell]'; ", "one-shot commands work without it"],
    "vgpu/opening.py": ["(the host comes from "],
    "vgpu/paths.py": ["cannot create directory: "],
    "vgpu/connection.py": [" was closed; open another with vgpu.connect()",
                           "register_many() takes on_existing 'error' or 'skip', not 'update', which may restart VMs: ",
                           "plan_registrations(rows, on_existing='update'), then apply_many(plan.updates) once you have read it"],
}


@pytest.mark.parametrize("source", sorted(SOURCE_MESSAGES))
def test_messages_from_other_modules_are_in_troubleshooting(source):
    with open(os.path.join(REPO_ROOT, source), encoding="utf-8") as handle:
        code = handle.read()
    page = _flat(_read("troubleshooting.md"))
    for fragment in SOURCE_MESSAGES[source]:
        assert fragment in code, f"{source} no longer says {fragment!r}: update this list and the page"
        assert fragment in page, fragment


def test_the_exit_code_table_matches_the_runner():
    rows = dict(re.findall(r"^\| (\d) \| [^|]+ \| (.+) \|$", _read("troubleshooting.md"), flags=re.M))
    assert set(rows) == {"0", "1", "2", "3"}
    for cls, code in runner._EXIT_CODES:
        if cls is not errors.VgpuError and cls is not UsageError:
            assert f"`{cls.__name__}`" in rows[str(code)], (cls.__name__, code)
    assert "`Busy`" in rows["1"] and "`StoreError`" in rows["1"] and "`HypervisorError`" in rows["1"]

"""The command table: the one source for parsing, completion, ``help`` and docs/commands.md.

Each command names its options and the *kind* of each option's value; the parser, the completion engine
and the docs generator all read the kinds from here, so adding a command or an option is one edit. This
module is plain data and imports nothing heavy: the one-shot path reads it on every start.
"""

from __future__ import annotations

from vgpu.basics import Frozen

# Value kinds. Each kind that names something on the host or in the DB has a completer (a test checks it).
VM_UUID = "vm_uuid"  # a registered VM
HOST_VM_UUID = "host_vm_uuid"  # any VM on the host (registering: unregistered ones first)
ANY_VM_UUID = "any_vm_uuid"  # registered or on the host
POOL = "pool"
PRIORITY = "priority"
VM_ID = "vm_id"
VM_NAME = "vm_name"
FORGETTABLE_HOST = "forgettable_host"  # a host label the database remembers that the run does not configure
TEXT = "text"
NUMBER = "number"
SECONDS = "seconds"  # a duration: plain decimal seconds
FORMAT = "format"
COMMAND = "command"
FLAG = "flag"  # takes no value

COMPLETED_KINDS = (VM_UUID, HOST_VM_UUID, ANY_VM_UUID, POOL, PRIORITY, FORMAT, COMMAND, VM_NAME, FORGETTABLE_HOST)
FORMATS = ("text", "json")


# Frozen values (vgpu.basics), not dataclasses or NamedTuples: those compile their methods as they are
# defined (about 1 ms for a frozen dataclass, 0.1 ms for a NamedTuple), and this module is on every start of
# the one-shot command.
class Option(Frozen):
    __slots__ = ("name", "kind", "help", "required", "metavar")
    name: str  # without the leading dashes
    kind: str
    help: str
    required: bool
    metavar: str

    def __init__(self, name: str, kind: str, help: str, required: bool = False, metavar: str = "") -> None:
        self._set(name=name, kind=kind, help=help, required=required, metavar=metavar)

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def placeholder(self) -> str:
        return self.metavar or {
            VM_UUID: "<uuid>", HOST_VM_UUID: "<uuid>", ANY_VM_UUID: "<uuid>", POOL: "<A|B>",
            PRIORITY: "<low|medium|high>", VM_ID: "<id>", VM_NAME: "<name>", FORMAT: "<text|json>",
            NUMBER: "<n>", SECONDS: "<seconds>", TEXT: "<text>", COMMAND: "<command>", FORGETTABLE_HOST: "<label>",
        }.get(self.kind, "")


class Command(Frozen):
    __slots__ = ("name", "summary", "handler", "options", "positional", "details", "examples", "needs_host", "changes",
                 "restarts", "repl_only", "one_of", "aliases", "one_shot_only", "alias_note")
    name: str
    summary: str
    handler: str  # function name in shell.handlers
    options: tuple[Option, ...]
    positional: Option | None
    details: str
    examples: tuple[str, ...]
    needs_host: bool
    changes: bool  # changes the DB or the host
    restarts: bool  # may stop and start the VM (always asks first)
    repl_only: bool  # only at the vgpu> prompt (refresh, exit)
    one_of: tuple[str, ...]  # optional options of which at least one must be given
    aliases: tuple[str, ...]  # other names that run it; the command's own name is the documented one
    one_shot_only: bool  # only on the command line (shell: at the vgpu> prompt you are in it)
    alias_note: str  # where an alias comes from, for help and the docs

    def __init__(self, name: str, summary: str, handler: str, options: tuple[Option, ...] = (),
                 positional: Option | None = None, details: str = "", examples: tuple[str, ...] = (),
                 needs_host: bool = False, changes: bool = False, restarts: bool = False, repl_only: bool = False,
                 one_of: tuple[str, ...] = (), aliases: tuple[str, ...] = (), one_shot_only: bool = False,
                 alias_note: str = "") -> None:
        self._set(name=name, summary=summary, handler=handler, options=options, positional=positional,
                  details=details, examples=examples, needs_host=needs_host, changes=changes, restarts=restarts,
                  repl_only=repl_only, one_of=one_of, aliases=aliases, one_shot_only=one_shot_only,
                  alias_note=alias_note)

    def offered(self, in_repl: bool) -> bool:
        """Whether help and completion offer it where the user is."""
        return not (self.one_shot_only if in_repl else self.repl_only)

    def option(self, name: str) -> Option | None:
        return next((opt for opt in self.options if opt.name == name), None)

    @property
    def usage(self) -> str:
        parts = [self.name]
        if self.positional is not None:
            parts.append(self.positional.placeholder if self.positional.required else f"[{self.positional.placeholder}]")
        for opt in self.options:
            text = opt.flag if opt.kind == FLAG else f"{opt.flag}={opt.placeholder}"
            parts.append(text if opt.required else f"[{text}]")
        return " ".join(parts)


FORMAT_OPTION = Option("format", FORMAT, "output format: text (default) or json for scripts")
CLEAN_TIMEOUT_OPTION = Option(
    "clean-timeout", SECONDS, "seconds to wait for a clean shutdown before forcing (default: VGPU_CLEAN_TIMEOUT, "
    "else the config's clean_timeout, else 120)")
_UUID_REQUIRED = Option("vm-uuid", VM_UUID, "the registered VM's UUID (any case)", required=True)
_RESTART_NOTE = (
    "Shows the current and new configuration and asks 'Do you want to apply these settings? (yes/no)'. "
    "On yes a running VM is shut down (cleanly; forced off if the clean shutdown fails or runs past "
    "--clean-timeout, unless force_after_timeout = false), the database and the VM's device-model args are "
    "updated, and the VM is started again; a halted VM is only updated. On no, nothing changes and a running VM "
    "keeps running. If the VM will not start with the new configuration, the old one is restored and the VM "
    "started again. Ctrl-C while waiting stops the command at once and leaves the change to 'vgpu-admin recover'."
)

_CHANGES = ("pool", "priority", "vm-id")  # update-vm: what it can change, at least one

COMMANDS: tuple[Command, ...] = (
    Command(
        "list-pools", "List Pool A and Pool B with statistics", "list_pools", (FORMAT_OPTION,),
        details="Each pool's name, whether it is enabled and how many VMs of each priority it holds.",
        examples=("vgpu-admin list-pools", "vgpu-admin list-pools --format=json"),
    ),
    Command(
        "show-pool", "Show detailed pool information", "show_pool",
        (Option("pool-id", POOL, "the pool: A or B", required=True), FORMAT_OPTION),
        details="The pool's name, status, counts per priority and every VM in it (highest priority first).",
        examples=("vgpu-admin show-pool --pool-id=A",),
    ),
    Command(
        "set-pool-name", "Rename a pool (no VM restart)", "set_pool_name",
        (Option("pool-id", POOL, "the pool: A or B", required=True),
         Option("name", TEXT, "the new name, e.g. \"Production Pool\"", required=True)),
        details=("Pool names are metadata only: VMs keep running. The change is recorded in the history. The two "
                 "pools cannot share a name (in any case), and a name cannot hold a double quote."),
        examples=('vgpu-admin set-pool-name --pool-id=A --name="Production Pool"',),
        changes=True, aliases=("edit-pool-name",), alias_note="the spec's clarification 8",
    ),
    Command(
        "scan-vms", "Scan VMs, grouped by pool (A, B, then unregistered)", "scan_vms", (FORMAT_OPTION,),
        details=(
            "Lists every VM on the host: Pool A's, then Pool B's (each by priority, high first, then vm_id), "
            "then the unregistered ones (by name, numbers by value: VM-2 before VM-10). Each registered VM ends "
            "with its state: '✓ Configured' (running with "
            "its registration), '✓ Configured (halted)', '⚠ Pending restart' (its args are right but it booted "
            "with something else: apply-vm), '⚠ Args differ from DB' (drift: repair-vm), '⚠ Not on host' or "
            "'? Running config unknown' (the host cannot tell what it booted with). After those, any registered "
            "VMs missing from the host, VMs whose device-model args disagree with the database (drift), VMs "
            "pending restart, and unregistered VMs that carry a vgpu segment (clones carry their parent's "
            "vm_id). Last, a line naming any change that was started and not finished (run 'vgpu-admin "
            "recover' for those whose session has ended). Over a fleet of hosts, each line ends with '| Host: LABEL' "
            "(and the XAPI pool member), hosts that cannot be reached are named first ('⚠ gpu2 unreachable: ...') "
            "while the others are listed, the exit status is then 1, and a UUID on two hosts is shown as a "
            "conflict ('⚠ On 2 hosts')."
        ),
        examples=("vgpu-admin scan-vms", "vgpu-admin --host gpu1 scan-vms"), needs_host=True,
    ),
    Command(
        "register-vm", "Register a VM (defaults: Pool A, medium, next free vm_id)", "register_vm",
        (Option("vm-uuid", HOST_VM_UUID, "the VM's UUID on the host", required=True),
         Option("vm-name", VM_NAME, "a display name (default: the host's name for the VM)"),
         Option("pool", POOL, "A or B (default A)"),
         Option("priority", PRIORITY, "low (0), medium (1) or high (2); default medium"),
         Option("vm-id", VM_ID, "a free positive integer (default: the lowest free one)")),
        details=(
            "Records the VM in the database and writes its vgpu segment into the device-model args. A running "
            "VM's QEMU reads it at its next boot (until then scan-vms shows it as pending restart); use "
            "apply-vm to apply it now with a restart. A name another registered VM has too (in any case) is "
            "accepted, with a warning that names both UUIDs: commands take the UUID. So is a name that is "
            "another VM's UUID (registered, or on the host), with a warning naming that VM."
        ),
        examples=(
            'vgpu-admin register-vm --vm-uuid=<uuid> --vm-name="VM-1"',
            "vgpu-admin register-vm --vm-uuid=<uuid> --pool=B --priority=high --vm-id=8",
        ),
        needs_host=True, changes=True,
    ),
    Command(
        "show-vm", "Show a VM's configuration (includes pool)", "show_vm", (_UUID_REQUIRED, FORMAT_OPTION),
        details="The registration, plus the VM's power state, what its device-model args say, what its "
                "running QEMU booted with (pending restart when that differs), and a change to the VM that "
                "was started and not finished, if there is one. In --format=json, segment is null when the host "
                "could not be asked (as host_vm is), and present false only when the host answered: the VM's args "
                "hold no vgpu segment, or the host has no such VM; scan-vms and status say the same of each VM.",
        examples=("vgpu-admin show-vm --vm-uuid=<uuid>",), needs_host=True,
    ),
    Command(
        "list-vms", "List registered VMs, optionally by pool and priority", "list_vms",
        (Option("pool", POOL, "only this pool"), Option("priority", PRIORITY, "only this priority"), FORMAT_OPTION),
        details="From the database only; fast even when the host is slow or down. Over a fleet, each line ends "
                "with where the VM was last seen ('| Host: LABEL'), and --host LABEL lists the VMs last seen there.",
        examples=("vgpu-admin list-vms --pool=B --priority=high",),
    ),
    Command(
        "set-pool", "Move a VM to another pool (stops, reconfigures, restarts)", "set_pool",
        (_UUID_REQUIRED, Option("pool", POOL, "A or B", required=True), CLEAN_TIMEOUT_OPTION),
        details=_RESTART_NOTE, examples=("vgpu-admin set-pool --vm-uuid=<uuid> --pool=B",),
        needs_host=True, changes=True, restarts=True,
    ),
    Command(
        "set-priority", "Change a VM's priority (stops, reconfigures, restarts)", "set_priority",
        (_UUID_REQUIRED, Option("priority", PRIORITY, "low (0), medium (1) or high (2)", required=True), CLEAN_TIMEOUT_OPTION),
        details=_RESTART_NOTE, examples=("vgpu-admin set-priority --vm-uuid=<uuid> --priority=high",),
        needs_host=True, changes=True, restarts=True,
    ),
    Command(
        "set-vm-id", "Change a VM's vm_id (stops, reconfigures, restarts)", "set_vm_id",
        (_UUID_REQUIRED, Option("vm-id", VM_ID, "a free positive integer", required=True), CLEAN_TIMEOUT_OPTION),
        details=_RESTART_NOTE, examples=("vgpu-admin set-vm-id --vm-uuid=<uuid> --vm-id=21",),
        needs_host=True, changes=True, restarts=True,
    ),
    Command(
        "update-vm", "Change pool, priority and/or vm_id at once (one restart)", "update_vm",
        (_UUID_REQUIRED, Option("pool", POOL, "A or B"), Option("priority", PRIORITY, "low, medium or high"),
         Option("vm-id", VM_ID, "a free positive integer"), CLEAN_TIMEOUT_OPTION),
        details=_RESTART_NOTE + f" Give at least one of {', '.join('--' + name for name in _CHANGES)}.",
        examples=("vgpu-admin update-vm --vm-uuid=<uuid> --pool=B --priority=low",),
        needs_host=True, changes=True, restarts=True, one_of=_CHANGES,
    ),
    Command(
        "apply-vm", "Restart a VM that is pending restart with its registered configuration", "apply_vm",
        (_UUID_REQUIRED, CLEAN_TIMEOUT_OPTION),
        details=(
            "For a running VM whose QEMU booted with something other than its registration (it was registered "
            "or repaired while running: scan-vms shows '⚠ Pending restart'), or whose running configuration "
            "the host cannot tell. Shows what the VM runs with and what is registered, asks 'Do you want to "
            "apply these settings? (yes/no)', then, as set-pool does, shuts the VM down (cleanly, then forced "
            "after the deadline), rewrites its device-model args from the database and starts it again, "
            "journalled. A halted VM only gets its args rewritten; a VM already running with its registered "
            "configuration is left alone. A set-* command with the values the VM already has does the same, "
            "except for a VM whose running configuration is unknown."
        ),
        examples=("vgpu-admin apply-vm --vm-uuid=<uuid>",), needs_host=True, changes=True, restarts=True,
    ),
    Command(
        "remove-vm", "Unregister a VM and clear its segment", "remove_vm", (_UUID_REQUIRED,),
        details=(
            "Deletes the registration and removes the vgpu segment from the VM's device-model args (other "
            "arguments are kept). A running VM keeps its current settings until its next boot."
        ),
        examples=("vgpu-admin remove-vm --vm-uuid=<uuid>",), needs_host=True, changes=True,
    ),
    Command(
        "repair-vm", "Rewrite a VM's segment from the database (fixes drift and clones)", "repair_vm",
        (Option("vm-uuid", ANY_VM_UUID, "the VM's UUID", required=True),),
        details=(
            "Makes the VM's device-model args agree with the database: a registered VM gets its segment "
            "rewritten, an unregistered one (a clone, or a leftover) has the segment removed. Takes effect at "
            "the VM's next boot; no restart (a running VM is then pending restart: apply-vm restarts it)."
        ),
        examples=("vgpu-admin repair-vm --vm-uuid=<uuid>",), needs_host=True, changes=True,
    ),
    Command(
        "status", "Control panel: pools, VMs, assignments", "status", (FORMAT_OPTION,),
        details="Pool A and Pool B with their names, priorities and VMs, the unregistered VMs and a summary, "
                "then (as scan-vms) VMs missing, with drift or pending restart, and any changes started and not "
                "finished. If the host cannot be reached it still shows the database, with a warning. Over a "
                "fleet, each VM's details end with its host, and a host that is down is named while the others "
                "are shown.",
        examples=("vgpu-admin status",), needs_host=True,
    ),
    Command(
        "history", "Show recorded changes (register, update, remove, rename)", "history",
        (Option("vm-uuid", ANY_VM_UUID, "only this VM"), Option("pool-id", POOL, "only renames of this pool"),
         Option("limit", NUMBER, "at most this many entries (default 50)"), FORMAT_OPTION),
        details=("Newest first: each VM by name and UUID (or the pool), with the values before and after each "
                 "change as the other commands show them (priority low (0) → high (2)). --vm-uuid shows one VM's "
                 "changes, --pool-id one pool's renames; the two are refused together, since each entry is about a VM "
                 "or a pool, never both. --format=json gives the values as recorded (pool ids, priority numbers)."),
        examples=("vgpu-admin history --vm-uuid=<uuid>",),
    ),
    Command(
        "recover", "Finish or undo operations interrupted by a crash", "recover",
        (Option("take-over", FLAG, "also take operations whose session cannot be checked from here (it ran on another "
                                   "host, or was recorded by host and PID alone, before schema 2, and a process "
                                   "runs under that PID now): only when you know that session is gone (its host is "
                                   "down or its process ended)"),
         CLEAN_TIMEOUT_OPTION, FORMAT_OPTION),
        details=(
            "For each operation a crashed, killed or interrupted session left unfinished, recover first claims it "
            "(a second recover, or a session still at work, is never overtaken) and asks the host what the VM is "
            "doing. If the host is still busy with it (a start or shutdown under way), nothing is changed: run "
            "recover again later. If the VM already runs the new configuration, or the database already has the "
            "new values, the change is finished (args written, VM started if it was running); otherwise the old "
            "configuration is put back, and a VM still running its old configuration is not restarted, except one "
            "whose change was cut short while shutting it down: where the host cannot say whether that shutdown is "
            "still coming (libvirt shows none), recover sees it through, which can mean waiting up to clean_timeout "
            "and forcing it off (force_after_timeout), then starts it again, rather than leave a VM that halts by "
            "itself later. Stops follow clean_timeout and force_after_timeout. A VM that will not start even with "
            "its old configuration is left halted and marked as needing attention. Over a fleet, each change is "
            "recovered on the host it was made "
            "on; one of a host this run leaves out (--host LABEL) is left alone as 'other-host'. Exit status 1 when "
            "anything is left for you to do: a change left for later, not taken (its session cannot be checked from "
            "here: --take-over), of a host this run leaves out, failed, or a VM needing attention. A change a live "
            "session or another recover is making ('skipped') is in hand: it alone leaves the exit status 0."
        ),
        examples=("vgpu-admin recover", "vgpu-admin recover --take-over"), needs_host=True, changes=True,
    ),
    Command(
        "forget-host", "Forget a host retired for good: where VMs were last seen on it", "forget_host",
        (),
        positional=Option("label", FORGETTABLE_HOST, "the host's label: one the database remembers that this run "
                                                     "does not configure", required=True),
        details=(
            "A VM last seen on a host taken out of [hosts] (or with a copy recorded there) is refused by every change, "
            "since that host may still run it. When the host is gone for good, forget-host lets go of it: it shows "
            "the VMs last seen there and how many copies are recorded there, asks 'Do you want to forget host LABEL? "
            "(yes/no)', then removes what the database remembers of the host in one "
            "transaction, recorded in the history. No VM is unregistered: a VM last seen only there is then a "
            "registered VM none of the configured hosts has (remove-vm unregisters it), and one another host listed "
            "at the same time stays last seen there. A host this run configures (in [hosts], or given by --host) is "
            "refused: take it out of the config first. So is a host with an unfinished change, which recover needs "
            "it for. No host is asked."
        ),
        examples=("vgpu-admin forget-host gpu2", "echo yes | vgpu-admin forget-host gpu2"), changes=True,
    ),
    Command(
        "repair-db", "Restore the spec's constraints and indexes in the database", "repair_db",
        details=(
            "A database whose pools and vms tables lack the spec's CHECK constraints, keys or indexes (made by "
            "another tool, or edited by hand) is refused by every other command, since it would keep rows that "
            "break the spec's rules. This rebuilds the two tables to the spec's schema and keeps every row, and "
            "every column, constraint, index and trigger an admin added to them (the output names those). A row "
            "that breaks the rules (a priority of 7, a pool C), or something added that cannot be kept as it "
            "was, is named and nothing is changed. A vgpu table that says which hosts hold copies of a VM, if "
            "missing, is created again, empty, with those copies marked unknown until a scan that every host "
            "answers. vgpu's own indexes, if missing or defined otherwise, are created again (one of them makes an "
            "unfinished change its VM's lock), except while two unfinished changes hold one VM, which is named "
            "with what to do. No VM is touched."
        ),
        examples=("vgpu-admin repair-db",), changes=True,
    ),
    Command(
        "demo", "Show or re-create the simulated demo host (sim:demo)", "demo",
        (Option("reset", FLAG, "re-create the demo host and its database from the spec's 23-VM example"),),
        details="The demo host keeps its state between commands, seeded on first use. Without --reset this "
                "says where its files are; with --reset it starts again from scratch. When --db or --host (or "
                "VGPU_DB, VGPU_HOST, a config file's db or host) name another database or host, the next commands "
                "use those, not the demo's: one warning line on stderr says so, and which flags reach the demo.",
        examples=("vgpu-admin demo --reset",), changes=True,
    ),
    Command(
        "help", "Show the commands, or one command's options", "help", positional=Option("command", COMMAND, "a command name"),
        examples=("vgpu-admin help", "vgpu-admin help set-pool"), aliases=("?",),
    ),
    Command("shell", "Open the interactive vgpu> shell", "shell", details="Same as running vgpu-admin without a command. With its input from a pipe or a "
                    "file (vgpu-admin < commands.txt) it runs the lines one by one, without a prompt or echo; a question "
                    "takes its answer from the next line. It stops at the first line that fails, whose exit code it "
                    "exits with; with the global flag --keep-going (vgpu-admin --keep-going < commands.txt) every line "
                    "runs, and the exit code is that of the first line that failed. An answer of no is not a failure: "
                    "it gives exit code 3 only when no line failed.",
            one_shot_only=True),
    Command("refresh", "Reload the completion names now (shell only)", "refresh", repl_only=True),
    Command("exit", "Leave the shell (also Ctrl-D)", "exit", repl_only=True, aliases=("quit",)),
)

BY_NAME: dict[str, Command] = {command.name: command for command in COMMANDS}
ALIASES: dict[str, str] = {alias: command.name for command in COMMANDS for alias in command.aliases}


def lookup(name: str) -> Command | None:
    return BY_NAME.get(ALIASES.get(name, name))


def offered(in_repl: bool) -> tuple[Command, ...]:
    """The commands help and completion list where the user is: at the vgpu> prompt or on the command line."""
    return tuple(command for command in COMMANDS if command.offered(in_repl))

"""Text renderings of library results, in the spec's formats. Pure functions from objects to strings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from vgpu.basics import Pool, Priority
from vgpu.tables import plural

if TYPE_CHECKING:  # for annotations only: list-pools, whose start-up is measured, builds none of these
    from vgpu.models import VM, AuditEntry, HostVM, PoolDetail, VMConfig

from vgpu.escape import field, listed, shown

RULE = "=" * 80
POOL_RULE = "-" * 45
NAMES_LISTED = 10  # beyond this many VMs of one priority, the status panel counts instead of naming


# Every value that comes from the host or the database (names above all: guests' owners choose them) is
# printed through shown(), or listed() inside a comma-separated list, so that it cannot drive the terminal.


def name_of(vm: VM) -> str:
    return field(vm.vm_name) if vm.vm_name else "(unnamed)"


def host_name(host_vm: HostVM) -> str:
    return field(host_vm.name) if host_vm.name else "(unnamed)"


def listed_name(name: str | None) -> str:
    """A VM's name as one item of a list joined with ", "."""
    return listed(name) if name else "(unnamed)"


def marked_name(name: str | None, mark: str | None) -> str:
    """A name of a list, with its VM's mark after it when it has one (over a fleet: ``⚠ On 2 hosts``, as the
    VM's line in the table says)."""
    return f"{listed_name(name)} ({mark})" if mark else listed_name(name)


def enabled(pool: Pool) -> str:
    return "Enabled" if pool.enabled else "Disabled"


def config_text(config: VMConfig) -> str:
    return f"pool={config.pool_id};priority={int(config.priority)};vm_id={config.vm_id}"


def segment_text(segment) -> str:
    """A segment found in a VM's args, in a few words: its configuration, or what is wrong with it."""
    if segment is None:
        return "unknown"
    if segment.config is not None:
        return config_text(segment.config)
    return "unreadable segment" if segment.present else "no segment"


def apply_hint(vm_uuid: str) -> str:
    return f"Run 'vgpu-admin apply-vm --vm-uuid={vm_uuid}'"


def unfinished_hint(operation) -> str | None:
    """What to do about a VM with an unfinished change, instead of the repair or apply its state would call
    for (both are refused while the change holds the VM): None when it has none."""
    if operation is None:
        return None
    if operation.in_progress:
        return "wait: another session is changing it"
    if operation.session_unknown is not None:
        return f"a change to it is unfinished and vgpu-admin {TAKE_OVER_HINT}"
    return "run 'vgpu-admin recover': a change to it was interrupted"


# an unfinished change whose session cannot be checked from here (UnfinishedOperation.session_unknown)
TAKE_OVER_HINT = "cannot tell whether its session is alive: if it is gone, run 'vgpu-admin recover --take-over'"
TAKE_OVER_HINT_MANY = "cannot tell whether their sessions are alive: if they are gone, run 'vgpu-admin recover --take-over'"


# --- pools ------------------------------------------------------------------------------------------------


def pool_line(pool: Pool) -> str:
    c = pool.counts
    return (f'Pool {pool.pool_id}: "{shown(pool.pool_name)}" | Status: {enabled(pool)} | VMs: {pool.vm_count} | '
            f"High (2): {c.high} | Medium (1): {c.medium} | Low (0): {c.low}")


def pools_list(pools: Iterable[Pool]) -> str:
    return "\n".join(pool_line(pool) for pool in pools)


def _names(vms: list[VM], marks: dict[str, str] | None = None) -> str:
    if not vms:
        return ""
    names = ", ".join(marked_name(vm.vm_name, (marks or {}).get(vm.vm_uuid)) for vm in vms[:NAMES_LISTED])
    more = f", ... and {len(vms) - NAMES_LISTED} more" if len(vms) > NAMES_LISTED else ""
    return f" ({names}{more})"


def pool_block(pool: Pool, members: list[VM], hosts: dict[str, str] | None = None) -> list[str]:
    """The status panel's section for one pool (also what show-pool prints). ``hosts``: over a fleet, each
    VM's host (by UUID), shown as a trailing field of its line."""
    return list(pool_block_lines(pool, members, hosts))


def pool_block_lines(pool: Pool, members: list[VM], hosts: dict[str, str] | None = None,
                     marks: dict[str, str] | None = None) -> Iterator[str]:
    """pool_block line by line, for the status panel of many VMs. ``marks``: a mark for some VMs (by UUID),
    after each one's name in its priority's list."""
    yield from (f'Pool {pool.pool_id}: "{shown(pool.pool_name)}"', POOL_RULE, f"Status: {enabled(pool)}")
    if pool.description:
        yield f"Description: {shown(pool.description)}"
    yield f"VMs: {len(members)}"
    for priority in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        group = [vm for vm in members if vm.priority is priority]
        yield f"  {priority.label.capitalize()} Priority: {plural(len(group), 'VM')}{_names(group, marks)}"
    if members:
        yield from ("", "VM Details:")
        yield from (f"  {name_of(vm)} (UUID: {vm.vm_uuid}) | Priority: {vm.priority.label} | VM ID: {vm.vm_id}"
                    + (f" | Host: {hosts[vm.vm_uuid]}" if hosts is not None else "") for vm in members)


def pool_detail(detail: PoolDetail) -> str:
    return "\n".join(pool_block(detail.pool, list(detail.vms)))


# --- VMs --------------------------------------------------------------------------------------------------


def vm_line(vm: VM, host: str | None = None) -> str:
    line = (f"UUID: {vm.vm_uuid} | Name: {name_of(vm)} | Pool: {vm.pool_id} | "
            f"Priority: {vm.priority.describe()} | VM ID: {vm.vm_id}")
    return line if host is None else f"{line} | Host: {host}"


def vms_list(vms: list[VM], hosts: dict[str, str] | None = None) -> str:
    """The registered VMs; ``hosts``: over a fleet, where each was last seen (by UUID), as a trailing field."""
    if not vms:
        return "No registered VMs match."
    lines = (vm_line(vm, None if hosts is None else hosts.get(vm.vm_uuid, "not seen yet")) for vm in vms)
    return "\n".join(lines) + f"\n\n{plural(len(vms), 'VM')}"


def config_lines(config: VMConfig) -> list[str]:
    return [f"Pool: {config.pool_id}", f"Priority: {config.priority.describe()}", f"VM ID: {config.vm_id}"]


def confirmation(plan) -> str:
    """The spec's confirmation block (without the question, which the console asks). A plan that changes
    nothing in the database (applying a pending configuration) compares what the VM runs with, or what its
    args say, with the registration instead."""
    if plan.changes:
        lines = ["  Current configuration:", *(f"    {line}" for line in config_lines(plan.current))]
        if plan.running and plan.booted is not None and plan.booted.config != plan.current:  # pending already
            lines.append(f"    (the VM runs with {_booted_words(plan.booted)} until it restarts)")
        lines += ["  ", "  New configuration:"]
    elif plan.needs_restart:
        lines = ["  Current configuration (what the VM runs with):", f"    {_booted_block(plan.booted)}"]
        if plan.booted is not None and plan.booted.config is not None:
            lines[1:] = [f"    {line}" for line in config_lines(plan.booted.config)]
        lines += ["  ", "  New configuration (registered):"]
    else:
        lines = ["  Current configuration (what the VM's args say):", f"    {_booted_words(plan.stored)}",
                 "  ", "  New configuration (registered):"]
    lines += [f"    {line}" for line in config_lines(plan.new)]
    lines.append("  ")
    if plan.needs_restart:
        lines.append("  This change requires stopping and restarting the VM.")
    elif plan.running:  # it booted with the new configuration already
        lines.append("  The VM already runs with this configuration: only its args are rewritten, without a restart.")
    else:
        lines.append(f"  The VM is {plan.power_state.value}: no restart is needed; it takes the change at its next start.")
    return "\n".join(lines)


def _booted_block(booted) -> str:
    if booted is None:
        return "unknown: the host cannot tell what the VM booted with"
    return "none: it booted without a vgpu segment" if not booted.present else f"an unreadable vgpu segment {booted.raw!r}"


def _booted_words(segment) -> str:
    return {"no segment": "no vgpu segment", "unreadable segment": "an unreadable vgpu segment"}.get(
        segment_text(segment), segment_text(segment))


def nothing_to_do(result, apply: bool) -> str:
    """A set-* or apply-vm that found nothing to do; and, when the host cannot tell what the running VM
    booted with, how to restart it anyway."""
    who = f"{name_of(result.vm)} ({result.vm.vm_uuid})"
    if apply and not result.running:
        return f"{who} is halted and its args have its registered configuration, which it takes at its next start; nothing to do."
    text = f"{who} already runs with its registered configuration" if apply else f"{who} already has this configuration"
    if result.runs_unknown:
        return (f"{text} in the database and its args; the host cannot tell what the running VM booted with: "
                f"'vgpu-admin apply-vm --vm-uuid={result.vm.vm_uuid}' restarts it with it.")
    return f"{text}; nothing to do."


CONFIRM_QUESTION = "  Do you want to apply these settings? (yes/no): "


def _started_by_other(result, how: str) -> str:
    """The tail for a change whose VM someone else started while it was stopped ("" when it was not)."""
    if result.started_by_other == "other":  # restarted into the new configuration: what it booted with then decides
        return _started_again(result, f"The VM was {how} and reconfigured; someone else started it meanwhile with "
                                      "another configuration, so it was restarted", "the new one")
    text = {
        "new": "someone else started it meanwhile, with the new configuration, so it was not started again.",
        "unknown": ("someone else started it meanwhile, and the host cannot say with which configuration: "
                    f"'vgpu-admin apply-vm --vm-uuid={result.vm.vm_uuid}' restarts it with the new one."),
    }.get(result.started_by_other, "")
    return f"The VM was {how} and reconfigured; {text}" if text else ""


def _started_before_write(result) -> str:
    """The tail for a change whose VM, found halted, someone else started before its args were written ("" when
    not): never restarted by the change, so it may run with its previous configuration."""
    if result.restarted:
        return ""
    text = {
        "new": "it booted with the new configuration.",
        "other": "it runs with its previous configuration until it is restarted.",
        "unknown": ("the host cannot say with which configuration it booted: "
                    f"'vgpu-admin apply-vm --vm-uuid={result.vm.vm_uuid}' restarts it with the new one."),
    }.get(result.started_by_other, "")
    return f"The VM was not running, but someone else started it before its args were written: {text}" if text else ""


def started_before_write_error(result) -> str:
    """The error line of a change whose halted VM someone else started, with another configuration, before its
    args were written (result.started_by_other "other", not restarted)."""
    uuid = result.vm.vm_uuid
    return (f"VM {uuid} was started by someone else before its args were written and runs with its previous "
            f"configuration: 'vgpu-admin apply-vm --vm-uuid={uuid}' restarts it with the new one")


def _started_again(result, started: str, it: str = "") -> str:
    """``started`` ("The VM was ... started again") and what the VM booted with, as the host said right
    after: "with ``it``" only when the host saw it boot with the change."""
    if result.booted == "other":
        from vgpu.lifecycle import booted_without  # imported already by the command that changed the VM

        return f"{started}, but it booted {booted_without(result.booted_with)}."
    if result.booted == "not-running":
        return f"{started}, but it was not running right after: it halted, paused, crashed or left the host."
    if result.booted == "unknown":
        return f"{started}; the host cannot tell what it booted with."
    return f"{started} with {it}." if it else f"{started}."


def did_not_boot_with_it(result) -> str:
    """Why a VM a change started is not running with its configuration (result.not_running_with_it: it
    booted with something else, or was not running right after), and what to do: the error line of a
    command that did not get the VM running with its configuration."""
    return result.why_not_running_with_it


# How a change stopped its VM, after "The VM was".
_STOPPED = {"clean": "shut down cleanly", "forced": "forced off", "halted": "found halted after its clean shutdown failed"}


def reconfigured(result) -> str:
    vm = result.vm
    how = _STOPPED.get(result.stopped_how or "", "stopped")
    why = f" ({result.stop_reason})" if result.stopped_how in ("forced", "halted") and result.stop_reason else ""
    if result.old == vm.config:  # nothing changed in the database: its registered configuration was applied
        tail = (_started_by_other(result, how + why) or _started_again(result, f"The VM was {how}{why} and started again", "it")
                if result.restarted
                else _started_before_write(result) or "The VM already ran with it and was not restarted: its args now keep it at its next boot."
                if result.running else "The VM was not running; it takes it at its next start.")
        return f"Applied the registered configuration to {name_of(vm)} ({vm.vm_uuid}): {config_text(vm.config)}.\n{tail}"
    what = ", ".join(
        f"{label} {before} → {after}"
        for label, before, after in (
            ("pool", result.old.pool_id, vm.pool_id),
            ("priority", result.old.priority.describe(), vm.priority.describe()),
            ("VM ID", result.old.vm_id, vm.vm_id),
        )
        if str(before) != str(after)
    )
    if result.restarted:
        tail = _started_by_other(result, how + why) or _started_again(result, f"The VM was {how}{why}, reconfigured and started again")
    elif result.running:
        tail = (_started_before_write(result)
                or "The VM already ran with the new configuration and was not restarted: its args now keep it.")
    else:
        tail = "The VM was not running; it takes the new configuration at its next start."
    return f"Applied to {name_of(vm)} ({vm.vm_uuid}): {what}.\n{tail}"


def registered(result) -> str:
    vm = result.vm
    text = (f"Registered {name_of(vm)} ({vm.vm_uuid}) in Pool {vm.pool_id} with priority "
            f"{vm.priority.describe()} and VM ID {vm.vm_id}.")
    if not result.applies_at_next_boot:
        return text
    booted = result.host_vm.booted_args
    power = result.host_vm.power_state
    now = "The VM's power state is unknown" if power.value == "unknown" else f"The VM is {power.value}"
    if result.runs_it_already:
        return text + f"\n{now} and its QEMU already has this configuration."
    if power.value != "running":  # paused, suspended or unknown: apply-vm takes running or halted VMs only
        return text + f"\n{now}: its QEMU picks up this configuration at its next boot."
    unknown = " (the host cannot tell what it runs with now)" if booted is None else "; until then it is pending restart"
    return text + (f"\n{now}: its QEMU picks up this configuration at its next boot{unknown}. "
                   f"To apply it now: vgpu-admin apply-vm --vm-uuid={vm.vm_uuid}")


def removed(result) -> str:
    vm = result.vm
    tail = "its vgpu segment was cleared" if result.segment_cleared else "the host no longer has it, so no segment to clear"
    text = f"Removed {name_of(vm)} ({vm.vm_uuid}) from Pool {vm.pool_id}; {tail}."
    if result.running_with is not None:
        text += f"\nThe VM still runs with {config_text(result.running_with)} until it stops (scan-vms shows it meanwhile)."
    return text


def forget_host_plan(plan) -> Iterator[str]:
    """What forget-host will remove (vgpu.locations.ForgetHostPlan), before its question: the registered VMs
    last seen there as list-vms lists them, then how many unregistered VMs and copies."""
    host = shown(plan.host)
    yield (f"Forget host {host} (not configured in this run): where its VMs were last seen is forgotten; "
           "no VM is unregistered.")
    yield ""
    yield f"=== Registered VMs last seen on {host}: {len(plan.vms)} ==="
    yield from (vm_line(vm, host) for vm in plan.vms)
    moved = {uuid for uuid, _ in plan.moved}
    for vm in plan.vms:
        if vm.vm_uuid in moved:
            yield f"{name_of(vm)} ({vm.vm_uuid}) was listed by {shown(dict(plan.moved)[vm.vm_uuid])} too, and stays last seen there."
    yield ""
    yield f"Unregistered VMs last seen on {host}: {len(plan.unregistered)}"
    yield f"Copies recorded on {host}: {len(plan.copies)}"
    yield ""
    yield (f"Afterwards a VM last seen only on {host} is a registered VM that none of the configured hosts has: "
           "scan-vms shows it as such, and remove-vm unregisters it.")


def forget_question(label: str) -> str:
    return f"  Do you want to forget host {shown(label)}? (yes/no): "


def forgotten(plan) -> str:
    return (f"Host {shown(plan.host)} forgotten: {plural(plan.last_seen, 'VM')} no longer last seen there "
            f"({len(plan.vms)} registered), {len(plan.copies)} {'copy' if len(plan.copies) == 1 else 'copies'} no "
            "longer recorded there; "
            "no VM was unregistered.")


def operation_text(op) -> str:
    """One unfinished operation: what, where it stopped, since when (and, while alive or unknown, whose)."""
    text = f"{shown(op.kind)} at step {shown(op.step)}, since {shown(op.started_at)}"
    return f"{text}, in session {shown(op.session)}" if op.in_progress or op.session_unknown is not None else text


def unfinished_lines(operations) -> list[str]:
    """The lines that end status and scan-vms when changes were started and not finished: those whose
    session is gone (run recover), those whose session cannot be checked from here (the admin's to judge),
    then those another session is still making. With none, no lines: the spec's output is left exactly as it was."""
    def listed(ops) -> str:
        def why(op) -> str:
            return f": {shown(op.session_unknown)}" if op.session_unknown is not None else ""
        names = "; ".join(f"{shown(op.vm_name or op.vm_uuid)}: {operation_text(op)}{why(op)}" for op in ops[:NAMES_LISTED])
        return names + (f"; ... and {len(ops) - NAMES_LISTED} more" if len(ops) > NAMES_LISTED else "")

    stuck = [op for op in operations if not op.in_progress and op.session_unknown is None]
    unknown = [op for op in operations if op.session_unknown is not None]
    going = [op for op in operations if op.in_progress]
    lines = [f"Unfinished operations: {len(stuck)} ({listed(stuck)}) - run 'vgpu-admin recover'"] if stuck else []
    lines += [f"Operations whose session cannot be checked: {len(unknown)} ({listed(unknown)}) - vgpu-admin "
              f"{TAKE_OVER_HINT if len(unknown) == 1 else TAKE_OVER_HINT_MANY}"] if unknown else []
    lines += [f"Operations in progress: {len(going)} ({listed(going)})"] if going else []
    return ["", *lines] if lines else []


def attention_lines(marks, names: dict[str, str]) -> list[str]:
    """The section that ends status and scan-vms when VMs are marked as needing attention (none: no lines,
    so the spec's output stays as it is). ``names``: VM UUID → name, for the VMs the report knows."""
    if not marks:
        return []
    lines = ["", f"=== Needs attention: {len(marks)} ==="]
    lines += [f"UUID: {mark.vm_uuid} | Name: {names.get(mark.vm_uuid) or '(unnamed)'} | Since: {mark.since} | {mark.reason}"
              for mark in marks]
    return lines


def attention_line(mark) -> str:
    return f"⚠ Needs attention (since {mark.since}): {mark.reason}"


def show_vm(vm: VM, host_vm: HostVM | None, segment, host_error: str | None, operation=None, attention=None,
            booted=None, state: str = "", host: str | None = None, listed_elsewhere: HostVM | None = None,
            not_asked: str | None = None, narrowed_by: str = "--host", host_code: str | None = None) -> str:
    where = [f"Host: {host}"] if host else []  # over a fleet: the host that has it (or last had it, when down)
    lines = [f"VM: {name_of(vm)}", f"UUID: {vm.vm_uuid}", *where, *config_lines(vm.config)]
    if host_error and not_asked:
        lines.append(f"Status: {not_asked_mark(not_asked, narrowed_by)} ({shown(host_error)})")
    elif host_error:
        lines += _unasked_lines(host_error, host, listed_elsewhere, state_mark("unknown", False, host_down=down_word(host_code)))
    elif host_vm is None:
        lines.append("Host: ⚠ this VM is not on the host")
        lines.append(f"Status: {state_mark('missing')}")
    else:
        lines.append(f"Power state: {host_vm.power_state.value}")
        lines.append(f"Status: {transient_mark(state_mark(state), host_vm)}")  # as scan-vms: what the VM booted with decides
        lines.append(f"Device-model args: {segment_status(vm.config, segment, unfinished_hint(operation), host_vm.transient)}")
        if host_vm.power_state.value != "halted":
            lines.append(f"Running with: {booted_status(vm, booted, state, unfinished_hint(operation))}")
    lines.append(f"Registered: {shown(vm.created_at)} | Updated: {shown(vm.updated_at)}")
    if operation is not None and operation.in_progress:
        lines.append(f"Operation in progress: {operation_text(operation)}")
    elif operation is not None and operation.session_unknown is not None:
        lines.append(f"⚠ Unfinished operation: {operation_text(operation)} - vgpu-admin {TAKE_OVER_HINT} "
                     f"({shown(operation.session_unknown)})")
    elif operation is not None:
        lines.append(f"⚠ Unfinished operation: {operation_text(operation)} - run 'vgpu-admin recover'")
    if attention is not None:
        lines.append(attention_line(attention))
    return "\n".join(lines)


def not_asked_mark(not_asked: str, narrowed_by: str) -> str:
    """The Status (show-vm's, and scan-vms') of a VM whose host was not asked, by why (VMView.not_asked and
    ScannedVM.not_asked: vgpu.scan's NOT_CONFIGURED or LEFT_OUT, spelled here so that rendering imports no scan
    code), and what narrowed the run (Settings.narrowed_by); that host was not reachable is not what happened,
    so it is not said."""
    return f"? Host {not_asked_word(not_asked, narrowed_by)}"


def not_asked_word(not_asked: str, narrowed_by: str) -> str:
    """Why a host was not asked, as a VM's Host field says it: ``gpu2 (not configured)``."""
    return "not configured" if not_asked == "not_configured" else f"left out by {narrowed_by}"


def _unasked_lines(host_error: str, host: str | None, listed_elsewhere: HostVM | None, mark: str) -> list[str]:
    """show-vm's lines for a VM whose host cannot be asked (``mark``: its Status, as scan-vms says it). Over a
    fleet the Host line names that host already, so why it cannot be asked goes with the status: one Host line,
    as fleet.md shows it."""
    if host:
        lines = [f"Status: {mark} ({shown(host_error)})"]
    else:
        lines = [f"Host: ⚠ cannot be asked ({shown(host_error)})", f"Status: {mark}"]
    if listed_elsewhere is not None:  # a copy, or the VM moved: nobody can tell until the host answers
        lines.append(f"Also listed by: {listed_elsewhere.host} ({listed_elsewhere.power_state.value}) - not changed "
                     f"until {host} answers, or name the host you mean (--host {listed_elsewhere.host})")
    return lines


def booted_status(vm: VM, booted, state: str, instead: str | None = None) -> str:
    """What the running VM's QEMU booted with, beside the database (show-vm's "Running with" line).
    ``instead``: what to do in place of an apply-vm (see :func:`unfinished_hint`)."""
    if booted is None:
        return "? unknown (the host cannot tell what the VM booted with; restarting it applies the stored args)"
    if booted.config == vm.config:
        return f"✓ {config_text(booted.config)}"
    found = {"no segment": "no vgpu segment", "unreadable segment": f"unreadable vgpu segment {excerpt(booted.raw)}"}
    text = f"⚠ {found.get(segment_text(booted), segment_text(booted))}"
    if state == "pending":
        apply = f"run 'vgpu-admin apply-vm --vm-uuid={vm.vm_uuid}'"
        text += f" - pending restart ({instead or apply})"
    return text


def excerpt(text: str | None, limit: int = 80) -> str:
    """A value quoted, escaped and cut to ``limit`` characters (a segment may be thousands long)."""
    text = text or ""
    return repr(text if len(text) <= limit else text[:limit] + "…")


_MARKS = {
    "configured": "✓ Configured",
    "halted": "✓ Configured (halted)",  # its next boot takes it
    "pending": "⚠ Pending restart",
    "drift": "⚠ Args differ from DB",
    "missing": "⚠ Not on host",
}


# How a host that could not be listed reads (see down_word), and the Status of its VMs.
UNREACHABLE, NOT_LISTED, NOT_ASKED = "unreachable", "could not be listed", "could not be asked"
_DOWN_MARKS = {UNREACHABLE: "? Host not reachable", NOT_LISTED: "? Host could not be listed", NOT_ASKED: "? Host not asked"}


def down_word(code: str | None) -> str:
    """A host that could not be listed, by its error's code (vgpu.hypervisor.codes, spelled here): it did not
    answer (HOST_UNREACHABLE), a setting kept it from being asked (HOST_NOT_ASKED: no password, say), or it
    answered with an error (an internal error, a refusal)."""
    return {"HOST_UNREACHABLE": UNREACHABLE, "HOST_NOT_ASKED": NOT_ASKED}.get(code or "", NOT_LISTED)


def transient_mark(mark: str, host_vm: HostVM | None) -> str:
    """A state mark (:func:`state_mark`) of a VM its host keeps no definition of, saying so: whatever it runs
    with now, it has no next start, and no change can be made to it (HostVM.transient)."""
    return f"{mark} (transient)" if host_vm is not None and host_vm.transient else mark


def state_mark(state: str, host_known: bool = True, hosts: int = 0, host_down: str = UNREACHABLE) -> str:
    """A VM's state (vgpu.scan.STATES) as scan-vms and show-vm say it: "✓ Configured" only when the
    running VM booted with its registered configuration (or, halted, will at its next boot). ``host_down``:
    how the host that could not be listed failed (see :func:`down_word`)."""
    if state == "unknown" and not host_known:
        return _DOWN_MARKS[host_down]
    if state == "unknown":
        return "? Running config unknown"
    if state == "conflict":
        return f"⚠ On {hosts} hosts"
    return _MARKS[state]


def segment_status(expected: VMConfig, segment, instead: str | None = None, transient: bool = False) -> str:
    """The args stored on the host beside the database: what the VM takes at its next boot, which is not
    what a running VM has (show-vm's Status and "Running with" say that). ``instead``: what to do in place
    of a repair-vm (see :func:`unfinished_hint`). A ``transient`` VM has no next boot (HostVM.transient)."""
    fix = instead or ("define it (virsh define), then run 'vgpu-admin repair-vm'" if transient else "run 'vgpu-admin repair-vm'")
    if segment.config == expected and transient:
        return (f"✓ as registered ({config_text(expected)}); the VM is transient (no stored definition): it has no "
                "next start, and is deleted when it halts (virsh define keeps it)")
    if segment.config == expected:
        return f"✓ as registered ({config_text(expected)}), read at the VM's next boot"
    if not segment.present:
        return f"⚠ no vgpu segment ({fix})"
    if segment.config is None:
        return f"⚠ unreadable vgpu segment {excerpt(segment.raw)} ({shown(segment.reason)}; {fix})"
    return f"⚠ says {config_text(segment.config)} ({fix})"


# --- history and recovery ---------------------------------------------------------------------------------


# How history shows each recorded field, in this order (the audit log keeps them raw: pool ids, priority
# numbers); a field not listed here is shown as it is stored, after these.
_HISTORY_LABELS = {"pool_id": "pool", "priority": "priority", "vm_id": "VM ID", "vm_name": "name", "pool_name": "name",
                   "host": "last seen on", "copy_on": "copy on"}  # the last two: forget-host


def _history_value(key: str, value: object) -> str:
    if value is None:
        return "none"
    if key == "priority" and value in (0, 1, 2) and not isinstance(value, bool):
        return Priority(value).describe()
    if key in ("vm_name", "pool_name"):
        return f'"{shown(value)}"'
    return shown(value)


_STOPS = {"clean": "shut down cleanly", "forced": "forced off", "halted": "found halted after its clean shutdown failed",
          "requested": "clean shutdown requested, not seen through"}


def _change_summary(entry: AuditEntry) -> str:
    old, new = entry.old or {}, entry.new or {}
    if entry.action == "stop":  # how vgpu-admin stopped the VM, and why it had to force it
        how = _STOPS.get(new.get("stop"), f"stopped: {new.get('stop')}")
        return f"{how} ({new['reason']})" if new.get("reason") else how
    keys = [key for key in _HISTORY_LABELS if key in old or key in new]
    keys += sorted((set(old) | set(new)) - set(keys))
    if entry.action in ("register", "remove"):  # the whole record; its name is in the subject column
        record = new or old
        return ", ".join(f"{_HISTORY_LABELS.get(key, key)} {_history_value(key, record[key])}"
                         for key in keys if key in record and key != "vm_name")
    return ", ".join(
        f"{_HISTORY_LABELS.get(key, key)} {_history_value(key, old.get(key))} → {_history_value(key, new.get(key))}"
        for key in keys if old.get(key) != new.get(key)
    )


def _history_subject(entry: AuditEntry, names: dict[str, str]) -> str:
    if entry.action == "rename-pool":
        return f"Pool {shown(entry.subject)}"
    name = entry.vm_name or names.get(entry.subject)
    return f"{shown(name)} ({shown(entry.subject)})" if name else shown(entry.subject)


def history(entries: list[AuditEntry], names: dict[str, str] | None = None) -> str:
    """One line per entry: when, what, the VM (by name and UUID) or pool, and the change in the words the
    other commands use. ``names``: VM names for entries whose own record has none (audit.vm_names)."""
    if not entries:
        return "No recorded changes."
    return "\n".join(f"{shown(e.at)} | {shown(e.action)} | {_history_subject(e, names or {})} | {_change_summary(e)}"
                     for e in entries)


def recoveries(results) -> str:
    if not results:
        return "Nothing to recover: no interrupted operations."
    return "\n".join(f"{shown(r.kind)} of VM {shown(r.vm_uuid)} (stopped at step {shown(r.step)}): {r.action} - {shown(r.detail)}"
                     + (f"; ⚠ needs attention: {shown(r.attention)}" if r.attention else "") for r in results)


def repaired(result) -> str:
    if not result.changed:
        text = f"VM {result.vm_uuid}: the device-model args already agree with the database; nothing to do."
    elif result.expected is None:
        text = f"VM {result.vm_uuid} is not registered: its vgpu segment was removed (effective at its next boot)."
    else:
        text = (f"VM {result.vm_uuid}: the vgpu segment now says {config_text(result.expected)} "
                f"(effective at its next boot).")
    if result.pending:
        text += (f"\nThe VM is running with {_booted_words(result.booted)} until then: it is pending restart. "
                 f"To apply it now: vgpu-admin apply-vm --vm-uuid={result.vm_uuid}")
    return text

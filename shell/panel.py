"""scan-vms and status output, in the spec's formats, followed by the sections the library adds and, last,
a line naming any change that was started and not finished.

Over a fleet (a scan of several hosts) each VM's line ends with one more field, ``Host: LABEL`` (with the
XAPI pool member it runs on, in brackets); hosts that could not be listed are named first. A scan of one
host keeps the spec's layout exactly.

Each is rendered line by line (``scan_lines``, ``status_lines``) for the console to write as they come: at
100,000 VMs the whole text, its lines and the copies made joining and encoding them would be several times
its 12 MB."""

from __future__ import annotations

from typing import Callable, Iterator

from vgpu.hypervisor import codes
from vgpu.models import HostVM
from vgpu.scan import LEFT_OUT, NOT_CONFIGURED, ForeignSegment, ScannedVM, ScanReport
from vgpu.tables import plural

from vgpu.escape import listed, shown
from .render import (
    NAMES_LISTED,
    NOT_LISTED,
    RULE,
    UNREACHABLE,
    apply_hint,
    attention_lines,
    config_text,
    down_word,
    host_name,
    listed_name,
    marked_name,
    name_of,
    not_asked_mark,
    not_asked_word,
    pool_block_lines,
    segment_text,
    state_mark,
    transient_mark,
    unfinished_hint,
    unfinished_lines,
)

REGISTER_HINT = "Run 'vgpu-admin register-vm'"
TWIN_HINT = "keep one copy (remove or re-create the other), then run 'vgpu-admin register-vm'"
TWIN_REPAIR_HINT = ("keep one copy (remove or re-create the other), then run 'vgpu-admin repair-vm --vm-uuid={uuid}' "
                    "to clear it, or register it")


def _state_mark(entry: ScannedVM, down: dict[str, str] | None = None, narrowed_by: str = "--host") -> str:
    """The VM's state where the spec puts ``✓ Configured``; ``down`` (see :func:`down_words`) tells a host
    that did not answer from one that answered with an error, or was not asked; a host outside the run is
    named by why (``narrowed_by`` left it out, or it is not configured)."""
    if entry.not_asked is not None:
        return not_asked_mark(entry.not_asked, narrowed_by)
    host_down = UNREACHABLE if entry.host_known else _down_word(entry.host, down or {})
    return transient_mark(state_mark(entry.state, entry.host_known, len(entry.conflict), host_down=host_down), entry.host_vm)


def down_words(report: ScanReport) -> dict[str, str]:
    """Each host that could not be listed, as the lines about it say it (see render.down_word)."""
    return {host.label: down_word(host.code) for host in report.unreachable}


def _down_word(label: str, down: dict[str, str]) -> str:
    """How host ``label``'s failure reads; a VM whose place is not known may be on any host that failed:
    unreachable when one of them did not answer, else as they all failed (could not be listed when they
    failed in different ways)."""
    if label in down:
        return down[label]
    words = set(down.values())
    if not words or UNREACHABLE in words:
        return UNREACHABLE
    return words.pop() if len(words) == 1 else NOT_LISTED


def scan_line(entry: ScannedVM, where: Callable[[ScannedVM], str] | None = None, down: dict[str, str] | None = None,
              narrowed_by: str = "--host") -> str:
    vm = entry.vm
    line = (f"UUID: {vm.vm_uuid} | Name: {name_of(vm)} | Pool: {vm.pool_id} | Priority: {vm.priority.describe()} | "
            f"VM ID: {vm.vm_id} | {_state_mark(entry, down, narrowed_by)}")
    if where is None and entry.not_asked is not None:  # a run of one host: the host outside it is named all the same
        return f"{line} | Host: {_outside_host_text(entry, narrowed_by)}"
    return line if where is None else f"{line} | Host: {where(entry)}"


def _outside_host_text(entry: ScannedVM, narrowed_by: str) -> str:
    """The Host field of a VM last seen on a host outside the run too (ScannedVM.not_asked), as one of a host that
    is down reads: that host, why it was not asked, and the host that lists the VM."""
    copy = entry.listed_elsewhere
    lister = f"; listed by {member_text(copy.host, copy.resident_on)}" if copy is not None else ""
    return f"{entry.host} ({not_asked_word(entry.not_asked or '', narrowed_by)}{lister})"


def member_text(label: str, resident_on: str | None) -> str:
    """A host as the trailing field names it: ``pool1 (xcp-a2)``, or the label alone. Several are joined with
    ", ", so a member's name (the host's text) is quoted as a list's item is."""
    return f"{label} ({listed(resident_on)})" if resident_on else label


def host_field(report: ScanReport, narrowed_by: str = "--host") -> Callable[[ScannedVM], str] | None:
    """How each registered VM's host reads, or None for a scan of one host (the spec's layout)."""
    if not report.several_hosts:
        return None
    down = down_words(report)
    copies = report.copies_by_uuid()

    def where(entry: ScannedVM) -> str:
        if entry.conflict:
            return ", ".join(member_text(copy.host, copy.resident_on) for copy in copies[entry.vm.vm_uuid])
        if entry.host_vm is not None:
            return member_text(entry.host_vm.host, entry.host_vm.resident_on)
        if entry.not_asked is not None:  # a host outside the run: as one that is down
            return _outside_host_text(entry, narrowed_by)
        if entry.host in down:
            copy = entry.listed_elsewhere  # another host lists it: named, though not taken for the VM
            why = down[entry.host]
            return f"{entry.host} ({why}; listed by {copy.host})" if copy else f"{entry.host} ({why})"
        return f"{entry.host} (last seen)" if entry.host else "unknown"

    return where


def _unregistered_lines(report: ScanReport, narrowed_by: str = "--host") -> Iterator[str]:
    """The spec's line for each unregistered VM; one whose UUID is on several hosts is one line, marked as a
    registered one is, naming each host (registering it is refused until one copy is left); one last seen on a
    host that is down, or outside the run, too names that host, and says what register-vm's refusal says."""
    copies = report.copies_by_uuid()
    down_hosts, unasked, outside = down_words(report), report.down_by_uuid(), report.outside_by_uuid()
    for host_vm in report.unregistered:
        twins, last_seen, away = copies.get(host_vm.uuid), unasked.get(host_vm.uuid), outside.get(host_vm.uuid)
        status, action = ("⚠ Not registered", REGISTER_HINT) if twins is None else (
            state_mark("conflict", hosts=len(twins)), TWIN_HINT)
        if last_seen is not None:  # the host it was last seen on too may still hold a copy: as a registered VM's
            action = (f"wait until {last_seen.host} answers (registering it is refused until then), or name the host "
                      f"you mean (--host {host_vm.host})")
        elif away is not None:
            action = f"registering it is refused until {away.host} is asked: {_lower_first(away.advice)}"
        line = f"UUID: {shown(host_vm.uuid)} | Name: {host_name(host_vm)} | Status: {status} | Action: {action}"
        if last_seen is not None:
            line += (f" | Host: {last_seen.host} ({_down_word(last_seen.host, down_hosts)}; listed by "
                     f"{member_text(host_vm.host, host_vm.resident_on)})")
        elif away is not None:
            line += (f" | Host: {away.host} ({not_asked_word(away.reason, narrowed_by)}; listed by "
                     f"{member_text(host_vm.host, host_vm.resident_on)})")
        elif report.several_hosts:
            line += " | Host: " + ", ".join(member_text(copy.host, copy.resident_on) for copy in twins or (host_vm,))
        yield line


def unreachable_lines(report: ScanReport) -> list[str]:
    """Over a fleet, the hosts that could not be listed while others were (all down: the caller's own words)."""
    if report.host_error or not report.unreachable:
        return []
    down = down_words(report)
    lines = [f"⚠ {host.label} {down[host.label]}: {shown(host.error)}; its registered VMs are shown from the database"
             for host in report.unreachable]
    return [*lines, ""]


def _conflict_lines(report: ScanReport) -> Iterator[str]:
    if not report.conflicts:
        return
    yield from ("", f"=== Same UUID on several hosts: {len(report.conflicts)} ===")
    for conflict in report.conflicts:
        copies = ", ".join(f"{copy.host} ({listed_name(copy.name)}, {copy.power_state.value})" for copy in conflict.copies)
        registered = f" | Registered: {name_of(conflict.vm)}" if conflict.vm is not None else " | Not registered"
        yield (f"UUID: {conflict.vm_uuid} | Hosts: {copies}{registered} | Action: keep one copy (remove or "
               "re-create the other); commands on this VM are refused until then")


def _lower_first(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:]


def _listed_outside_lines(report: ScanReport, narrowed_by: str) -> Iterator[str]:
    """The registered VMs last seen on a host outside the run too, which the run lists: each copy, and how to
    ask that host (changes are refused until then, as register-vm is for an unregistered one)."""
    entries = [e for e in report.listed_elsewhere if e.not_asked is not None]
    if not entries:
        return
    advice = {entry.vm_uuid: entry.advice for entry in report.last_seen_outside}
    yield from ("", f"=== Listed by this run while a host it was last seen on is not in it: {len(entries)} ===")
    for e in entries:
        copy = e.listed_elsewhere
        assert copy is not None and e.not_asked is not None
        yield (f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Last seen: {e.host} ({not_asked_word(e.not_asked, narrowed_by)}) | "
               f"Listed by: {member_text(copy.host, copy.resident_on)} ({listed_name(copy.name)}, {copy.power_state.value}) | "
               f"Action: changes to this VM are refused until {e.host} is asked: {_lower_first(advice[e.vm.vm_uuid])}")


def _listed_elsewhere_lines(report: ScanReport) -> Iterator[str]:
    """The registered VMs last seen on a host that is down and listed by another: each copy, and why a
    change waits (the host that is down may still have the VM: see docs/fleet.md)."""
    entries = [e for e in report.listed_elsewhere if getattr(e, "not_asked", None) is None]
    if not entries:
        return
    down = down_words(report)
    yield from ("", f"=== Listed by another host while the host it was last seen on is down: {len(entries)} ===")
    for e in entries:
        copy = e.listed_elsewhere
        yield (f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Last seen: {e.host} ({_down_word(e.host, down)}) | Listed by: "
               f"{member_text(copy.host, copy.resident_on)} ({listed_name(copy.name)}, {copy.power_state.value}) | Action: wait until "
               f"{e.host} answers (changes to this VM are refused until then), or name the host you mean (--host {copy.host})")


def _extra_sections(report: ScanReport, narrowed_by: str = "--host") -> Iterator[str]:
    """Missing VMs, drift, pending restarts, boots the host cannot tell, VMs listed by another host than
    the one that is down, and foreign segments: after the spec's sections, only when there are any. Over a
    fleet each VM's line ends with its host, as in the pools' sections."""
    where = host_field(report, narrowed_by)

    def hosted(line: str, e: ScannedVM) -> str:
        return line if where is None else f"{line} | Host: {where(e)}"

    if report.missing:
        yield from ("", f"=== Registered but missing from host: {len(report.missing)} ===")
        yield from (hosted(f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Pool: {e.vm.pool_id} | VM ID: {e.vm.vm_id} | "
                           f"Action: Run 'vgpu-admin remove-vm --vm-uuid={e.vm.vm_uuid}' if it is gone for good", e)
                    for e in report.missing)
    # A VM whose change is unfinished is pointed at recover (or told to wait): a repair or an apply is refused
    # while the change holds it, and the change's own undo or completion is what puts it right.
    unfinished = {op.vm_uuid: op for op in report.unfinished}
    if report.drift:
        yield from ("", f"=== Device-model args differ from the database: {len(report.drift)} ===")
        for e in report.drift:
            found = config_text(e.segment.config) if e.segment.config else (
                f"unreadable ({shown(e.segment.reason)})" if e.segment.present else "no segment")
            action = _instead(unfinished.get(e.vm.vm_uuid)) or f"Run 'vgpu-admin repair-vm --vm-uuid={e.vm.vm_uuid}'"
            yield hosted(f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Database: {config_text(e.vm.config)} | "
                         f"Args: {found} | Action: {action}", e)
    if report.pending:
        yield from ("", f"=== Running with an older configuration (pending restart): {len(report.pending)} ===")
        yield from (hosted(f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Database: {config_text(e.vm.config)} | "
                           f"Running: {segment_text(e.booted)} | Action: "
                           f"{_instead(unfinished.get(e.vm.vm_uuid)) or apply_hint(e.vm.vm_uuid) + ' (restarts the VM)'}", e)
                    for e in report.pending)
    if report.booted_unknown:
        unknown = report.booted_unknown
        names = ", ".join(listed_name(e.vm.vm_name) for e in unknown[:NAMES_LISTED])
        more = f", ... and {len(unknown) - NAMES_LISTED} more" if len(unknown) > NAMES_LISTED else ""
        yield from ("", f"Running configuration unknown: {plural(len(unknown), 'VM')} ({names}{more}) - the host cannot "
                        "tell what they booted with; restart them to be sure (see docs/troubleshooting.md)")
    yield from _listed_elsewhere_lines(report)
    yield from _listed_outside_lines(report, narrowed_by)
    if report.foreign_segments:
        yield from _foreign_lines(report)


def _foreign_lines(report: ScanReport) -> Iterator[str]:
    """One line per UUID carrying a segment. A UUID on several hosts is one VM in conflict, as in the unregistered
    list: repair-vm (and register-vm) on it is refused until one copy is left, so its action says that first."""
    by_uuid, copies = report.foreign_by_uuid(), report.copies_by_uuid()
    yield from ("", f"=== Unregistered VMs carrying a vgpu segment: {len(by_uuid)} ===")
    for uuid, entries in by_uuid.items():
        twins = copies.get(uuid)
        if twins is not None:
            yield _twin_foreign_line(entries, twins)
            continue
        line = _foreign_line(entries[0])
        yield f"{line} | Host: {member_text(entries[0].host_vm.host, entries[0].host_vm.resident_on)}" if report.several_hosts else line


def _carried(f: ForeignSegment) -> str:
    return config_text(f.segment.config) if f.segment.config else f"unreadable segment ({shown(f.segment.reason)})"


def _foreign_line(f: ForeignSegment) -> str:
    if f.running_only:  # only its running QEMU has it: a restart or stop drops it
        return (f"UUID: {shown(f.host_vm.uuid)} | Name: {host_name(f.host_vm)} | Running with: {_carried(f)}{_owner_of(f)} | "
                "Action: Restart or stop it (its stored args have no segment), or register it")
    return (f"UUID: {shown(f.host_vm.uuid)} | Name: {host_name(f.host_vm)} | Carries: {_carried(f)}{_owner_of(f)} | "
            f"Action: Run 'vgpu-admin repair-vm --vm-uuid={shown(f.host_vm.uuid)}' to clear it, or register it")


def _owner_of(f: ForeignSegment) -> str:
    """Whose vm_id the segment carries: a stored one is likely a clone; a running-only one, a VM removed while running."""
    if f.owner is None:
        return ""
    return f" (vm_id of {name_of(f.owner)}, {f.owner.vm_uuid}{'' if f.running_only else ': a clone?'})"


def _twin_foreign_line(entries: tuple[ForeignSegment, ...], twins: tuple[HostVM, ...]) -> str:
    """What each copy carries (once, when they all carry the same), marked and hosted as its unregistered line."""
    by_host = {f.host_vm.host: f for f in entries}
    carried = [_copy_carries(by_host.get(copy.host)) for copy in twins]
    what = carried[0] if len(set(carried)) == 1 else "; ".join(f"{copy.host}: {text}" for copy, text in zip(twins, carried))
    first = entries[0].host_vm
    return (f"UUID: {shown(first.uuid)} | Name: {host_name(first)} | Carries: {what} | "
            f"Status: {state_mark('conflict', hosts=len(twins))} | Action: {TWIN_REPAIR_HINT.format(uuid=shown(first.uuid))} | "
            f"Host: {', '.join(member_text(copy.host, copy.resident_on) for copy in twins)}")


def _copy_carries(f: ForeignSegment | None) -> str:
    if f is None:
        return "no segment"
    return f"{'running with ' if f.running_only else ''}{_carried(f)}{_owner_of(f)}"


def not_shown_lines(report: ScanReport, narrowed_by: str = "--host", narrowed: bool = True) -> list[str]:
    """One line saying how many registered VMs the scan leaves out, last seen on which hosts and why (a host
    taken out of [hosts], or left out by what narrowed the run: --host, VGPU_HOST or a config's host, as
    Settings.narrowed_by names it): else an admin who took a host out sees fewer VMs, with no hint. None left
    out: no line, so a single host's output stays the spec's. ``narrowed``: the run leaves out a configured host
    (else plain list-vms lists every VM, whatever chose the hosts)."""
    if not report.not_shown:
        return []
    groups = []
    left_out = f"left out by {narrowed_by}"
    for reason, why in ((NOT_CONFIGURED, "not configured"), (LEFT_OUT, left_out)):
        entries = [entry for entry in report.not_shown if entry.reason == reason and entry.host]
        if entries:
            hosts = ", ".join(shown(entry.host) for entry in entries)
            groups.append((sum(entry.vm_count for entry in entries), f"last seen on {hosts} ({why})"))
    unseen = sum(entry.vm_count for entry in report.not_shown if not entry.host)
    if unseen:  # never seen by a scan of the fleet: it may be on any host --host leaves out
        groups.append((unseen, f"with no known host ({left_out})"))
    total = sum(count for count, _ in groups)
    verb, them = ("is", "it") if total == 1 else ("are", "them")
    if len(groups) == 1:
        text = f"{plural(total, 'registered VM')} {groups[0][1]} {verb} not shown"
    else:
        text = f"{plural(total, 'registered VM')} {verb} not shown: " + ", ".join(f"{count} {tail}" for count, tail in groups)
    return ["", f"{text}; {_listed_by(report, narrowed_by if narrowed else codes.NARROWED_BY_FLAG, them)}"]


def _listed_by(report: ScanReport, narrowed_by: str, them: str) -> str:
    """What lists the VMs not shown: plain list-vms, unless VGPU_HOST or a config's host narrows it as it narrowed
    this run; then list-vms --host of the hosts left out (when each VM left out has one, configured), or list-vms
    once that narrowing is undone."""
    if narrowed_by == codes.NARROWED_BY_FLAG:
        return f"'vgpu-admin list-vms' lists {them}"
    undo = codes.narrowing_undone(narrowed_by)
    if not all(entry.reason == LEFT_OUT and entry.host for entry in report.not_shown):
        return f"'vgpu-admin list-vms' lists {them} once you {undo}"  # --host of a host not configured is refused
    flags = " ".join(f"--host {shown(entry.host)}" for entry in report.not_shown)
    return f"'vgpu-admin list-vms {flags}' lists {them}, or 'vgpu-admin list-vms' once you {undo}"


def _instead(operation) -> str | None:
    """An Action for a VM with an unfinished change, in place of a repair or an apply; None without one."""
    hint = unfinished_hint(operation)
    return hint and hint[0].upper() + hint[1:]


def scan_lines(report: ScanReport, narrowed_by: str = "--host", narrowed: bool = True) -> Iterator[str]:
    yield from unreachable_lines(report)
    where, down = host_field(report, narrowed_by), down_words(report)
    for pool in report.pools:
        members = report.in_pool(pool.pool_id)
        yield f"=== Pool {pool.pool_id}: {plural(len(members), 'VM')} ==="
        yield from (scan_line(e, where, down, narrowed_by) for e in members)
        yield ""
    yield f"=== Unregistered VMs: {len(report.unregistered)} ==="
    yield from _unregistered_lines(report, narrowed_by)
    yield from _extra_sections(report, narrowed_by)
    yield from not_shown_lines(report, narrowed_by, narrowed)
    yield from _closing(report)


def scan(report: ScanReport) -> str:
    return "\n".join(scan_lines(report))


def _closing(report: ScanReport) -> Iterator[str]:
    """VMs on several hosts, the VMs needing attention and the unfinished changes (their names only when
    there are any)."""
    yield from _conflict_lines(report)
    if report.attention:
        yield from attention_lines(report.attention, _names(report))
    yield from unfinished_lines(report.unfinished)


def _names(report: ScanReport) -> dict[str, str]:
    return {**{h.uuid: h.name for h in report.unregistered}, **{e.vm.vm_uuid: name_of(e.vm) for e in report.registered}}


def _summary(report: ScanReport) -> list[str]:
    enabled = sum(pool.enabled for pool in report.pools)
    both = "both enabled" if enabled == len(report.pools) == 2 else f"{enabled} enabled"
    unregistered = "unknown" if report.total_unregistered is None else str(report.total_unregistered)
    in_system = "unknown" if report.total_in_system is None else str(report.total_in_system)
    if report.unreachable and not report.host_error:
        down = ", ".join(host.label for host in report.unreachable)
        which = "which" if len(report.unreachable) == 1 else "which each"
        unregistered += f" (not counting {down}, {which} could not be listed)"
        in_system += f" (not counting {down}'s unregistered VMs)"
    return [
        "System Summary:",
        "--------------",
        f"Total Pools: {len(report.pools)} ({both})",
        f"Total VMs Registered: {report.total_registered}",
        f"Total VMs Unregistered: {unregistered}",
        f"Total VMs in System: {in_system}",
    ]


def status_lines(report: ScanReport, narrowed_by: str = "--host", narrowed: bool = True) -> Iterator[str]:
    yield from (RULE, "                    GPU Virtualization Control Panel", RULE, "")
    if report.host_error:
        # the host's sentence says what went wrong ("cannot reach the host: ..."): said once, as a sentence
        said = shown(report.host_error)
        yield from (f"⚠ {said[:1].upper()}{said[1:]}; showing the database only.", "")
    yield from unreachable_lines(report)
    where = host_field(report, narrowed_by)
    for pool in report.pools:
        members = report.in_pool(pool.pool_id)
        hosts = None if where is None else {e.vm.vm_uuid: where(e) for e in members}
        marks = {e.vm.vm_uuid: _state_mark(e) for e in members if e.conflict}  # a VM on several hosts, as in scan-vms
        yield from pool_block_lines(pool, [e.vm for e in members], hosts, marks)
        yield ""
    if report.host_error:
        yield from ("Unregistered VMs: unknown (the host could not be listed)", "")
    else:
        yield f"Unregistered VMs: {len(report.unregistered)}"
        if report.unregistered:
            copies = report.copies_by_uuid()  # a UUID on several hosts is marked as its scan-vms line is
            names = ", ".join(marked_name(h.name, state_mark("conflict", hosts=len(copies[h.uuid])) if h.uuid in copies else None)
                              for h in report.unregistered)
            yield f"  {names} (not registered - will default to Pool A if registered without --pool)"
        yield ""
    yield from _summary(report)
    yield from _extra_sections(report, narrowed_by)
    yield from not_shown_lines(report, narrowed_by, narrowed)
    yield from _closing(report)


def status(report: ScanReport) -> str:
    return "\n".join(status_lines(report))

"""scan-vms and status output, in the spec's formats, followed by the sections the library adds and, last,
a line naming any change that was started and not finished."""

from __future__ import annotations

from vgpu.scan import ScannedVM, ScanReport
from vgpu.tables import plural

from .escape import shown
from .render import NAMES_LISTED, RULE, apply_hint, attention_lines, config_text, host_name, listed_name, name_of, pool_block, segment_text, unfinished_lines

REGISTER_HINT = "Run 'vgpu-admin register-vm'"
_MARKS = {
    "configured": "✓ Configured",
    "halted": "✓ Configured (halted)",  # its next boot takes it
    "pending": "⚠ Pending restart",
    "drift": "⚠ Args differ from DB",
    "missing": "⚠ Not on host",
}


def _state_mark(entry: ScannedVM) -> str:
    """The VM's state where the spec puts ``✓ Configured``."""
    if entry.state == "unknown":
        return "? Running config unknown" if entry.host_known else "? Host not reachable"
    return _MARKS[entry.state]


def scan_line(entry: ScannedVM) -> str:
    vm = entry.vm
    return (f"UUID: {vm.vm_uuid} | Name: {name_of(vm)} | Pool: {vm.pool_id} | Priority: {vm.priority.describe()} | "
            f"VM ID: {vm.vm_id} | {_state_mark(entry)}")


def _extra_sections(report: ScanReport) -> list[str]:
    """Missing VMs, drift, pending restarts, boots the host cannot tell and foreign segments: after the
    spec's sections, only when there are any."""
    lines: list[str] = []
    if report.missing:
        lines += ["", f"=== Registered but missing from host: {len(report.missing)} ==="]
        lines += [f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Pool: {e.vm.pool_id} | VM ID: {e.vm.vm_id} | "
                  f"Action: Run 'vgpu-admin remove-vm --vm-uuid={e.vm.vm_uuid}' if it is gone for good"
                  for e in report.missing]
    if report.drift:
        lines += ["", f"=== Device-model args differ from the database: {len(report.drift)} ==="]
        for e in report.drift:
            found = config_text(e.segment.config) if e.segment.config else (
                f"unreadable ({shown(e.segment.reason)})" if e.segment.present else "no segment")
            lines.append(f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Database: {config_text(e.vm.config)} | "
                         f"Args: {found} | Action: Run 'vgpu-admin repair-vm --vm-uuid={e.vm.vm_uuid}'")
    if report.pending:
        lines += ["", f"=== Running with an older configuration (pending restart): {len(report.pending)} ==="]
        lines += [f"UUID: {e.vm.vm_uuid} | Name: {name_of(e.vm)} | Database: {config_text(e.vm.config)} | "
                  f"Running: {segment_text(e.booted)} | Action: {apply_hint(e.vm.vm_uuid)} (restarts the VM)"
                  for e in report.pending]
    if report.booted_unknown:
        unknown = report.booted_unknown
        names = ", ".join(name_of(e.vm) for e in unknown[:NAMES_LISTED])
        more = f", ... and {len(unknown) - NAMES_LISTED} more" if len(unknown) > NAMES_LISTED else ""
        lines += ["", f"Running configuration unknown: {plural(len(unknown), 'VM')} ({names}{more}) - the host cannot "
                      "tell what they booted with; restart them to be sure (see docs/troubleshooting.md)"]
    if report.foreign_segments:
        lines += ["", f"=== Unregistered VMs carrying a vgpu segment: {len(report.foreign_segments)} ==="]
        for f in report.foreign_segments:
            carried = config_text(f.segment.config) if f.segment.config else f"unreadable segment ({shown(f.segment.reason)})"
            whose = f" (vm_id of {name_of(f.owner)}, {f.owner.vm_uuid}: a clone?)" if f.owner else ""
            lines.append(f"UUID: {shown(f.host_vm.uuid)} | Name: {host_name(f.host_vm)} | Carries: {carried}{whose} | "
                         f"Action: Run 'vgpu-admin repair-vm --vm-uuid={shown(f.host_vm.uuid)}' to clear it, or register it")
    return lines


def scan(report: ScanReport) -> str:
    lines: list[str] = []
    for pool in report.pools:
        members = report.in_pool(pool.pool_id)
        lines += [f"=== Pool {pool.pool_id}: {plural(len(members), 'VM')} ===", *(scan_line(e) for e in members), ""]
    lines.append(f"=== Unregistered VMs: {len(report.unregistered)} ===")
    lines += [f"UUID: {shown(h.uuid)} | Name: {host_name(h)} | Status: ⚠ Not registered | Action: {REGISTER_HINT}"
              for h in report.unregistered]
    lines += _extra_sections(report)
    lines += attention_lines(report.attention, _names(report))
    lines += unfinished_lines(report.unfinished)
    return "\n".join(lines)


def _names(report: ScanReport) -> dict[str, str]:
    return {**{h.uuid: h.name for h in report.unregistered}, **{e.vm.vm_uuid: name_of(e.vm) for e in report.registered}}


def _summary(report: ScanReport) -> list[str]:
    enabled = sum(pool.enabled for pool in report.pools)
    both = "both enabled" if enabled == len(report.pools) == 2 else f"{enabled} enabled"
    unregistered = "unknown" if report.host_error else str(report.total_unregistered)
    in_system = "unknown" if report.host_error else str(report.total_in_system)
    return [
        "System Summary:",
        "--------------",
        f"Total Pools: {len(report.pools)} ({both})",
        f"Total VMs Registered: {report.total_registered}",
        f"Total VMs Unregistered: {unregistered}",
        f"Total VMs in System: {in_system}",
    ]


def status(report: ScanReport) -> str:
    lines = [RULE, "                    GPU Virtualization Control Panel", RULE, ""]
    if report.host_error:
        lines += [f"⚠ The host could not be reached ({shown(report.host_error)}); showing the database only.", ""]
    for pool in report.pools:
        lines += pool_block(pool, [e.vm for e in report.in_pool(pool.pool_id)]) + [""]
    if report.host_error:
        lines += ["Unregistered VMs: unknown (the host could not be listed)", ""]
    else:
        names = ", ".join(listed_name(h.name) for h in report.unregistered)
        lines.append(f"Unregistered VMs: {len(report.unregistered)}")
        if report.unregistered:
            lines.append(f"  {names} (not registered - will default to Pool A if registered without --pool)")
        lines.append("")
    lines += _summary(report)
    lines += _extra_sections(report)
    lines += attention_lines(report.attention, _names(report))
    lines += unfinished_lines(report.unfinished)
    return "\n".join(lines)

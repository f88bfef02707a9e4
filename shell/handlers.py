"""One function per command: take the parsed options, call one library function, render the result.

No business rule lives here; every decision (defaults, validation, what needs a restart) is the library's.
Each handler returns the exit code; errors propagate as exceptions for shell.runner to report.
"""

from __future__ import annotations

from vgpu import pools  # the rest of the library is imported by the handler that needs it: start-up is measured

from . import render
from .context import Context
from .errors import UsageError


def _emit(ctx: Context, opts: dict, data, text) -> int:
    """Print ``data`` as JSON with --format=json, else the text rendering (a string, or a callable giving a
    string or, for a long report, its lines one by one)."""
    if opts.get("format") == "json":
        from vgpu.convert import to_data  # like json, loaded only for JSON output: the one-shot start-up is measured

        from vgpu.escape import json_text

        ctx.console.say(json_text(to_data(data)))
    else:
        rendered = text() if callable(text) else text
        if isinstance(rendered, str):
            ctx.console.say(rendered)
        else:
            ctx.console.say_lines(rendered)
    return 0


# --- pools ------------------------------------------------------------------------------------------------


def list_pools(ctx: Context, opts: dict) -> int:
    result = pools.list_pools(ctx.store)
    return _emit(ctx, opts, result, lambda: render.pools_list(result))


def show_pool(ctx: Context, opts: dict) -> int:
    detail = pools.show_pool(ctx.store, opts["pool-id"])
    return _emit(ctx, opts, detail, lambda: render.pool_detail(detail))


def set_pool_name(ctx: Context, opts: dict) -> int:
    renamed = pools.change_pool_name(ctx.store, opts["pool-id"], opts["name"])
    pool = renamed.pool
    if not renamed.changed:  # as set-pool says of a VM that already has its configuration
        ctx.console.say(f'Pool {pool.pool_id} is already named "{pool.pool_name}"; nothing to do.')
        return 0
    ctx.changed()
    ctx.console.say(f'Pool {pool.pool_id} is now named "{pool.pool_name}".')
    return 0


# --- VMs --------------------------------------------------------------------------------------------------


def list_vms(ctx: Context, opts: dict) -> int:
    from vgpu import vms

    result = vms.list_vms(ctx.store, opts.get("pool"), opts.get("priority"))
    settings = ctx.settings
    chosen = [spec.label for spec in settings.hosts]
    # narrowed to some of the configured hosts; a host given by a URI no [hosts] entry has (label "") is one
    # host without a label, whose VMs the database does not tell apart: it lists them all, as one host does
    narrowed = "" not in chosen and bool({spec.label for spec in settings.configured} - set(chosen))
    if not (settings.is_fleet or narrowed or opts.get("format") == "json"):
        return _emit(ctx, opts, result, lambda: render.vms_list(result))  # one host: the database alone, as ever
    from vgpu import locations

    # each label as this run's hosts name it (a renamed host by its new label), from their URIs: no host is asked
    locations.adopt_configured_hosts(ctx.store, {spec.label: spec.uri for spec in settings.hosts}, settings.left_out_uris)
    known = locations.where(ctx.store)
    if narrowed:
        result = locations.on_hosts(result, known, chosen)
    if opts.get("format") == "json":  # where each VM was last seen, whatever the number of hosts
        from vgpu.convert import to_data

        seen = {uuid: (loc.host, loc.resident_on) for uuid, loc in known.items()}
        data = [{**to_data(vm), **dict(zip(("host", "resident_on"), seen.get(vm.vm_uuid, (None, None))))} for vm in result]
        return _emit(ctx, opts, data, "")
    hosts = {uuid: panel_member(loc.host, loc.resident_on) for uuid, loc in known.items()} if settings.is_fleet else None
    return _emit(ctx, opts, result, lambda: render.vms_list(result, hosts))


def panel_member(label: str, resident_on: str | None) -> str:
    from .panel import member_text

    return member_text(label, resident_on)


def scan_vms(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    from . import panel

    report = scan.scan(ctx.store, ctx.host)
    _emit(ctx, opts, report, lambda: panel.scan_lines(report, ctx.settings.narrowed_by, bool(ctx.settings.left_out_uris)))
    return 1 if report.unreachable else 0  # a fleet with a host down: shown, but the scan did not see it all


def status(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    from . import panel

    report = scan.status(ctx.store, ctx.host)
    return _emit(ctx, opts, report, lambda: panel.status_lines(report, ctx.settings.narrowed_by, bool(ctx.settings.left_out_uris)))


def show_vm(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    view = scan.inspect_vm(ctx.store, ctx.host, opts["vm-uuid"])
    return _emit(ctx, opts, view, lambda: render.show_vm(view.vm, view.host_vm, view.segment, view.host_error,
                                                         view.operation, attention=view.attention,
                                                         booted=view.booted, state=view.state, host=view.host,
                                                         listed_elsewhere=view.listed_elsewhere,
                                                         not_asked=view.not_asked, host_code=view.host_code,
                                                         narrowed_by=ctx.settings.narrowed_by))


def register_vm(ctx: Context, opts: dict) -> int:
    from vgpu import lifecycle

    result = lifecycle.register_vm(
        ctx.store, ctx.host, opts["vm-uuid"], opts.get("vm-name"), opts.get("pool"), opts.get("priority"), opts.get("vm-id")
    )
    ctx.changed()
    ctx.console.say(render.registered(result))
    if result.shared_name is not None:
        ctx.console.error(f"warning: {result.shared_name}")
    if result.named_like_uuid is not None:
        ctx.console.error(f"warning: {result.named_like_uuid}")
    if result.host_name_refused is not None:
        ctx.console.error(f"warning: the host's name for the VM was not recorded ({result.host_name_refused}); "
                          "to name it, remove it and register it again with --vm-name")
    return 0


def remove_vm(ctx: Context, opts: dict) -> int:
    from vgpu import lifecycle

    result = lifecycle.remove_vm(ctx.store, ctx.host, opts["vm-uuid"])
    ctx.changed()
    ctx.console.say(render.removed(result))
    return 0


def repair_vm(ctx: Context, opts: dict) -> int:
    from vgpu import lifecycle

    result = lifecycle.repair_vm(ctx.store, ctx.host, opts["vm-uuid"])
    ctx.console.say(render.repaired(result))
    return 0


def _reconfigure(ctx: Context, opts: dict, apply: bool = False, **change) -> int:
    """A set-* command, or (``apply``) apply-vm: the same confirmed cycle."""
    from vgpu import lifecycle

    def confirm(plan) -> bool:
        ctx.console.say(render.confirmation(plan))
        return ctx.console.confirm(render.CONFIRM_QUESTION)

    run = lifecycle.apply_vm if apply else lifecycle.reconfigure_vm
    result = run(ctx.store, ctx.host, opts["vm-uuid"], confirm=confirm, progress=ctx.console.progress,
                 policy=ctx.policy_for(opts), **change)
    if not result.changed:
        ctx.console.say(render.nothing_to_do(result, apply))
        return 0
    ctx.changed()
    ctx.console.say(render.reconfigured(result))
    if result.not_running_with_it:  # done, but the VM did not end up running with it
        ctx.console.error(f"error: {render.did_not_boot_with_it(result)}")
        return 1
    if not result.restarted and result.started_by_other == lifecycle.RUNS_OTHER:  # it does not run what was confirmed
        ctx.console.error(f"error: {render.started_before_write_error(result)}")
        return 1
    return 0


def set_pool(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, pool=opts["pool"])


def set_priority(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, priority=opts["priority"])


def set_vm_id(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, vm_id=opts["vm-id"])


def update_vm(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, pool=opts.get("pool"), priority=opts.get("priority"), vm_id=opts.get("vm-id"))


def apply_vm(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, apply=True)


# --- the rest ---------------------------------------------------------------------------------------------


def history(ctx: Context, opts: dict) -> int:
    from vgpu import audit, values

    vm = values.parse_uuid(opts["vm-uuid"]) if "vm-uuid" in opts else None
    pool = values.parse_pool_id(opts["pool-id"]) if "pool-id" in opts else None  # checked even beside a VM
    if vm and pool:  # each entry is about a VM or a pool, never both: the two at once could only show nothing
        raise UsageError("history takes --vm-uuid or --pool-id, not both: a VM's changes and a pool's renames are "
                         "separate entries")
    limit = values.parse_count("limit", opts.get("limit", "50"))
    subject = vm or pool
    entries = audit.history(ctx.store, subject, limit=limit)
    return _emit(ctx, opts, entries, lambda: render.history(entries, audit.vm_names(ctx.store, entries)))


def recover(ctx: Context, opts: dict) -> int:
    from vgpu import recovery

    results = recovery.recover(ctx.store, ctx.host, ctx.console.progress, policy=ctx.policy_for(opts),
                               take_over=bool(opts.get("take-over")))
    ctx.changed()
    _emit(ctx, opts, results, lambda: render.recoveries(results))
    return 0 if all(r.settled for r in results) else 1


def forget_host(ctx: Context, opts: dict) -> int:
    from vgpu import locations

    def confirm(plan) -> bool:
        ctx.console.say_lines(render.forget_host_plan(plan))
        return ctx.console.confirm(render.forget_question(plan.host))

    forgotten = locations.forget_host(ctx.store, opts["label"], ctx.settings.configured_uris, confirm=confirm)
    ctx.changed()
    ctx.console.say(render.forgotten(forgotten))
    return 0


def repair_db(ctx: Context, opts: dict) -> int:
    from vgpu.store import repair_schema

    db = ctx.settings.db
    repair = repair_schema(db)
    ctx.store  # opens the repaired file as every command does: a database another tool made is adopted now
    ctx.changed()
    if repair.restored:
        also = f", and so was what the spec does not have: {', '.join(repair.kept)}" if repair.kept else ""
        unknown = (" Which hosts hold copies of a VM is unknown until a scan that every host answers: until then, a "
                   "change asks every host") if repair.copies_unknown else ""
        ctx.console.say(f"Restored in {db}: {', '.join(repair.restored)}. Every row was kept{also}.{unknown}")
    else:
        ctx.console.say(f"The database {db} already has the spec's constraints and indexes; nothing to repair.")
    return 0


def demo(ctx: Context, opts: dict) -> int:
    from vgpu import demo as demo_host

    if opts.get("reset"):
        demo_host.reset()
        ctx.close()  # the database and host this session opened were replaced: the next command opens the new ones
        ctx.changed()
        ctx.console.say("The demo host was re-created: 23 VMs, 20 registered (7 in Pool A, 13 in Pool B), 3 not.")
    else:
        demo_host.ensure()
    ctx.console.say(f"Demo host: sim:demo ({demo_host.host_path()})\nDemo database: {demo_host.db_path()}")
    differ = demo_host.not_the_demos(ctx.settings)
    if differ:
        ctx.console.error(_not_the_demo_warning(ctx.settings, differ, demo_host.db_path()))
    return 0


def _not_the_demo_warning(settings, differ: tuple[str, ...], demo_db: str) -> str:
    """One line: the host and database the next commands use instead of the demo's, where each came from, and
    the flags that reach the demo (flags win over VGPU_DB, VGPU_HOST and the config files)."""
    db = f"the database {settings.db}{_from(settings, 'db')}"
    # A database left to its default follows the host: --host=sim:demo alone brings the demo's.
    reach = [] if "db" not in differ or settings.sources.get("db") == "default" else [f"--db={demo_db}"]
    if "host" in differ:
        used, whose, reach = f"the host {settings.host}{_from(settings, 'host')} and {db}", "demo", ["--host=sim:demo", *reach]
    else:
        used, whose = f"the demo host with {db}", "demo's"
    return f"warning: the next commands use {used}, not the demo's; to use the {whose}, run vgpu-admin with {' '.join(reach)}"


def _from(settings, key: str) -> str:
    """Where a setting came from, as the admin would look for it: a flag, a variable, a config file."""
    source = settings.sources.get(key, "default")
    if source == "default":  # a default database follows the host; a default host other than the demo is xe:
        return " (the default where xe is on PATH)" if key == "host" else ""
    named = {"flag": f"--{key}", "environment": {"db": "VGPU_DB", "host": "VGPU_HOST"}[key]}.get(source, source)
    return f" (from {named})"


def help(ctx: Context, opts: dict) -> int:  # noqa: A001 - the command is called help
    from . import helptext

    ctx.console.say(helptext.help_text(opts.get("command"), in_repl=ctx.in_repl, from_script=ctx.from_script))
    return 0


def shell(ctx: Context, opts: dict) -> int:
    if ctx.open_shell is None:
        raise UsageError("the vgpu> shell opens only from vgpu-admin itself")
    return ctx.open_shell()


def refresh(ctx: Context, opts: dict) -> int:
    ctx.changed()
    return 0


def exit(ctx: Context, opts: dict) -> int:  # noqa: A001 - the command is called exit
    return 0


"""One function per command: take the parsed options, call one library function, render the result.

No business rule lives here; every decision (defaults, validation, what needs a restart) is the library's.
Each handler returns the exit code; errors propagate as exceptions for shell.runner to report.
"""

from __future__ import annotations

from vgpu import audit, pools, values, vms
from vgpu.errors import ConfigError

from . import render
from .context import Context


def _emit(ctx: Context, opts: dict, data, text) -> int:
    """Print ``data`` as JSON with --format=json, else the text rendering (a string or a callable)."""
    if opts.get("format") == "json":
        from vgpu.convert import to_data  # like json, loaded only for JSON output: the one-shot start-up is measured

        from .escape import json_text

        ctx.console.say(json_text(to_data(data)))
    else:
        ctx.console.say(text() if callable(text) else text)
    return 0


# --- pools ------------------------------------------------------------------------------------------------


def list_pools(ctx: Context, opts: dict) -> int:
    result = pools.list_pools(ctx.store)
    return _emit(ctx, opts, result, lambda: render.pools_list(result))


def show_pool(ctx: Context, opts: dict) -> int:
    detail = pools.show_pool(ctx.store, opts["pool-id"])
    return _emit(ctx, opts, detail, lambda: render.pool_detail(detail))


def set_pool_name(ctx: Context, opts: dict) -> int:
    pool = pools.set_pool_name(ctx.store, opts["pool-id"], opts["name"])
    ctx.changed()
    ctx.console.say(f'Pool {pool.pool_id} is now named "{pool.pool_name}".')
    return 0


# --- VMs --------------------------------------------------------------------------------------------------


def list_vms(ctx: Context, opts: dict) -> int:
    result = vms.list_vms(ctx.store, opts.get("pool"), opts.get("priority"))
    return _emit(ctx, opts, result, lambda: render.vms_list(result))


def scan_vms(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    from . import panel

    report = scan.scan(ctx.store, ctx.host)
    return _emit(ctx, opts, report, lambda: panel.scan(report))


def status(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    from . import panel

    report = scan.status(ctx.store, ctx.host)
    return _emit(ctx, opts, report, lambda: panel.status(report))


def show_vm(ctx: Context, opts: dict) -> int:
    from vgpu import scan

    view = scan.inspect_vm(ctx.store, ctx.host, opts["vm-uuid"])
    return _emit(ctx, opts, view, lambda: render.show_vm(view.vm, view.host_vm, view.segment, view.host_error, view.operation))


def register_vm(ctx: Context, opts: dict) -> int:
    from vgpu import lifecycle

    result = lifecycle.register_vm(
        ctx.store, ctx.host, opts["vm-uuid"], opts.get("vm-name"), opts.get("pool"), opts.get("priority"), opts.get("vm-id")
    )
    ctx.changed()
    ctx.console.say(render.registered(result))
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


def _reconfigure(ctx: Context, opts: dict, **change) -> int:
    from vgpu import lifecycle

    def confirm(plan) -> bool:
        ctx.console.say(render.confirmation(plan))
        return ctx.console.confirm(render.CONFIRM_QUESTION)

    result = lifecycle.reconfigure_vm(
        ctx.store, ctx.host, opts["vm-uuid"], confirm=confirm, progress=ctx.console.progress, policy=ctx.policy, **change
    )
    if not result.changed:
        ctx.console.say(f"{render.name_of(result.vm)} ({result.vm.vm_uuid}) already has this configuration; nothing to do.")
        return 0
    ctx.changed()
    ctx.console.say(render.reconfigured(result))
    return 0


def set_pool(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, pool=opts["pool"])


def set_priority(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, priority=opts["priority"])


def set_vm_id(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, vm_id=opts["vm-id"])


def update_vm(ctx: Context, opts: dict) -> int:
    return _reconfigure(ctx, opts, pool=opts.get("pool"), priority=opts.get("priority"), vm_id=opts.get("vm-id"))


# --- the rest ---------------------------------------------------------------------------------------------


def history(ctx: Context, opts: dict) -> int:
    subject = None
    if opts.get("vm-uuid"):
        subject = values.parse_uuid(opts["vm-uuid"])
    elif opts.get("pool-id"):
        subject = values.parse_pool_id(opts["pool-id"])
    limit = values.parse_count("limit", opts.get("limit", "50"))
    entries = audit.history(ctx.store, subject, limit=limit)
    return _emit(ctx, opts, entries, lambda: render.history(entries, audit.registered_names(ctx.store, entries)))


def recover(ctx: Context, opts: dict) -> int:
    from vgpu import recovery

    results = recovery.recover(ctx.store, ctx.host, ctx.console.progress)
    ctx.changed()
    _emit(ctx, opts, results, lambda: render.recoveries(results))
    return 1 if any(r.action == "failed" for r in results) else 0


def repair_db(ctx: Context, opts: dict) -> int:
    from vgpu.store import repair_schema

    db = ctx.settings.db
    restored = repair_schema(db)
    ctx.store  # opens the repaired file as every command does: a database another tool made is adopted now
    ctx.changed()
    if restored:
        ctx.console.say(f"Restored in {db}: {', '.join(restored)}. Every row was kept.")
    else:
        ctx.console.say(f"The database {db} already has the spec's constraints and indexes; nothing to repair.")
    return 0


def demo(ctx: Context, opts: dict) -> int:
    from vgpu import demo as demo_host

    if opts.get("reset"):
        demo_host.reset()
        ctx.changed()
        ctx.console.say("The demo host was re-created: 23 VMs, 20 registered (7 in Pool A, 13 in Pool B), 3 not.")
    else:
        demo_host.ensure()
    ctx.console.say(f"Demo host: sim:demo ({demo_host.host_path()})\nDemo database: {demo_host.db_path()}")
    return 0


def help(ctx: Context, opts: dict) -> int:  # noqa: A001 - the command is called help
    from . import helptext

    ctx.console.say(helptext.help_text(opts.get("command"), in_repl=ctx.in_repl))
    return 0


def shell(ctx: Context, opts: dict) -> int:
    try:
        from .repl import run_repl
    except ModuleNotFoundError as missing:  # an install without the shell extra: say how to add it
        if (missing.name or "").partition(".")[0] != "prompt_toolkit":
            raise
        raise ConfigError("shell", "prompt_toolkit is not installed: pip install 'vgpu-admin[shell]'; "
                                   "one-shot commands work without it") from None
    return run_repl(ctx)


def refresh(ctx: Context, opts: dict) -> int:
    ctx.changed()
    return 0


def exit(ctx: Context, opts: dict) -> int:  # noqa: A001 - the command is called exit
    return 0


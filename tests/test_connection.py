"""vgpu.connect() and the Connection it returns: the settings vgpu-admin would use, each method reaching its
library function with the connection's store and host, options checked, and everything closed at the end."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import subprocess
import sys
import threading

import pytest

import vgpu
from shell.parsing import take_globals
from vgpu import audit, bulk, bulk_register, config, demo, lifecycle, locations, opening, pools, recovery, scan, vms, workers
from vgpu.connection import SETTINGS_POLICY, Connection, connect, resolve_settings
from vgpu.errors import BulkInterrupted, ConfigError, InvalidRows, InvalidValue, StoreError, VgpuError
from vgpu.hypervisor.sim import SimHost
from vgpu.power import StopPolicy
from vgpu.store import Store

from .clikit import REPO, run
from .interruptkit import interrupt_after, interrupt_of

VM_1, VM_21, VM_22, VM_23 = (demo.demo_uuid(name) for name in ("VM-1", "VM-21", "VM-22", "VM-23"))


@pytest.fixture
def sandbox(tmp_path):
    """The demo's 23 VMs on a simulated host and database of their own: connect()'s db and host."""
    return demo.sandbox(str(tmp_path / "sandbox"))


@pytest.fixture
def conn(sandbox):
    with connect(**sandbox) as opened:
        yield opened


@pytest.fixture
def opened_hosts(monkeypatch):
    """How many times a host was opened: a connection opens its host on first use only."""
    count = []
    real = opening.open_hosts

    def counting(settings, ask=None):
        count.append(settings)
        return real(settings, ask)

    monkeypatch.setattr(opening, "open_hosts", counting)
    return count


def _write_config(text: str) -> str:
    folder = os.path.join(os.environ["XDG_CONFIG_HOME"], "vgpu")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "config.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


# --- the settings are vgpu-admin's ------------------------------------------------------------------------


def _cli_settings(*words: str) -> config.Settings:
    """The settings vgpu-admin reads for a command line with these global options (shell.main's first step)."""
    flags, _ = take_globals([*words, "list-pools"])
    return config.load(flags)


def test_with_nothing_set_it_opens_the_demo_as_vgpu_admin_does():
    with connect() as conn:
        assert conn.settings == _cli_settings()
        assert (conn.settings.host, conn.settings.db) == ("sim:demo", demo.db_path())
        assert [pool.vm_count for pool in conn.list_pools()] == [7, 13]  # seeded on first use, as the CLI seeds it
        assert len(conn.status().unregistered) == 3


def test_the_environment_names_the_db_and_the_host(sandbox, monkeypatch):
    monkeypatch.setenv("VGPU_DB", sandbox["db"])
    monkeypatch.setenv("VGPU_HOST", sandbox["host"])
    with connect() as conn:
        assert (conn.settings.db, conn.settings.host) == (sandbox["db"], sandbox["host"])
        assert conn.settings == _cli_settings()
        assert conn.settings.sources["db"] == conn.settings.sources["host"] == "environment"
    # The same database as the command line's: a rename there is seen here.
    assert run(["set-pool-name", "--pool-id=A", "--name=Render farm"]).code == 0
    with connect() as conn:
        assert conn.list_pools()[0].pool_name == "Render farm"
        assert conn.host.uri == sandbox["host"]


def test_the_config_file_names_them_when_the_environment_does_not(sandbox, tmp_path, monkeypatch):
    path = _write_config(f'db = "{sandbox["db"]}"\nhost = "{sandbox["host"]}"\nclean_timeout = 7\nforce_after_timeout = false\n')
    with connect() as conn:
        assert (conn.settings.db, conn.settings.host) == (sandbox["db"], sandbox["host"])
        assert conn.settings.sources["db"] == path
        assert conn.policy == StopPolicy(7.0, False)
        assert conn.settings == _cli_settings()
    other = str(tmp_path / "other.db")
    monkeypatch.setenv("VGPU_DB", other)  # the environment beats the file
    with connect() as conn:
        assert conn.settings.db == other and conn.settings.host == sandbox["host"]
        assert conn.settings == _cli_settings()


def test_explicit_arguments_win_over_the_environment_and_the_config(sandbox, tmp_path, monkeypatch):
    _write_config(f'db = "{tmp_path / "config.db"}"\nhost = "sim:{tmp_path / "config-host.sim"}"\n')
    monkeypatch.setenv("VGPU_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("VGPU_HOST", f"sim:{tmp_path / 'env-host.sim'}")
    with connect(db=sandbox["db"], host=sandbox["host"]) as conn:
        assert (conn.settings.db, conn.settings.host) == (sandbox["db"], sandbox["host"])
        assert conn.settings.sources["db"] == conn.settings.sources["host"] == "flag"
        assert conn.settings == _cli_settings("--db", sandbox["db"], "--host", sandbox["host"])
        assert len(conn.list_vms()) == 20
    with connect(db=sandbox["db"], host=sandbox["host"], clean_timeout=3, force_after_timeout=False) as conn:
        assert conn.settings == config.load({"db": sandbox["db"], "host": [sandbox["host"]], "clean_timeout": 3.0,
                                             "force_after_timeout": False})
        assert conn.policy == StopPolicy(3.0, False)


def test_a_path_object_names_the_database(sandbox):
    from pathlib import Path

    with connect(db=Path(sandbox["db"]), host=sandbox["host"]) as conn:
        assert conn.settings.db == sandbox["db"] and len(conn.list_vms()) == 20


def test_a_fleet_by_mapping_list_or_config_labels(tmp_path):
    one, two = SimHost(tmp_path / "one.sim"), SimHost(tmp_path / "two.sim")
    uris = {"gpu1": f"sim:{one.path}", "gpu2": f"sim:{two.path}"}
    db = str(tmp_path / "fleet.db")
    with connect(db=db, host=uris) as by_mapping, connect(db=db, host=[f"{k}={v}" for k, v in uris.items()]) as by_list:
        assert by_mapping.settings == by_list.settings
        assert [(spec.label, spec.uri) for spec in by_mapping.settings.hosts] == list(uris.items())
        assert by_mapping.host.labels == ("gpu1", "gpu2")
    _write_config("[hosts]\n" + "".join(f'{label} = "{uri}"\n' for label, uri in uris.items()))
    with connect(db=db, host="gpu2") as narrowed:
        assert [spec.label for spec in narrowed.settings.hosts] == ["gpu2"]
        assert narrowed.settings == _cli_settings("--db", db, "--host", "gpu2")


def test_a_bad_host_from_the_environment_says_where_it_came_from(monkeypatch, tmp_path):
    monkeypatch.setenv("VGPU_HOST", "vmware://esx")
    with pytest.raises(InvalidValue) as raised:
        connect(db=str(tmp_path / "v.db"))
    assert str(raised.value).endswith("(the host comes from VGPU_HOST)")
    assert not (tmp_path / "v.db").exists()  # nothing was opened


@pytest.mark.parametrize("arguments, field, value", [
    ({"hots": "sim:/x"}, "setting", "hots"),
    ({"db": 7}, "db", 7),
    ({"db": "  "}, "db", "  "),
    ({"host": 7}, "host", 7),
    ({"host": []}, "host", []),
    ({"host": ""}, "host", ""),
    ({"host": "gpu1,,gpu2"}, "host", "gpu1,,gpu2"),  # an empty item names no host
    ({"host": ["gpu1", " "]}, "host", ["gpu1", " "]),
    ({"host": {"gpu1": 7}}, "host", {"gpu1": 7}),
    ({"clean_timeout": "soon"}, "clean_timeout", "soon"),
    ({"clean_timeout": True}, "clean_timeout", True),
    ({"force_after_timeout": "yes"}, "force_after_timeout", "yes"),
    ({"parallel_hosts": 0}, "parallel_hosts", 0),
    ({"password_file": "relative/pw"}, "password_file", "relative/pw"),
    ({"args_key": ""}, "args_key", ""),
])
def test_a_bad_argument_is_one_line_naming_it_and_what_is_allowed(tmp_path, arguments, field, value):
    with pytest.raises(InvalidValue) as raised:
        connect(**{"db": str(tmp_path / "v.db"), **arguments})
    error = raised.value
    assert (error.field, error.value) == (field, value)
    assert "\n" not in str(error) and repr(value) in str(error) and "expected" in str(error)
    assert not (tmp_path / "v.db").exists()


def test_an_unknown_setting_names_every_setting_connect_takes(tmp_path):
    with pytest.raises(InvalidValue) as raised:
        connect(db=str(tmp_path / "v.db"), database="x")
    assert str(raised.value) == ("invalid setting 'database': expected db, host, password, args_key, clean_timeout, "
                                 "force_after_timeout, password_file or parallel_hosts")


def test_a_password_file_of_the_config_comes_before_the_callback(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    asked = []
    settings = resolve_settings(db=str(tmp_path / "v.db"), host="sim:/x", password_file=str(secret))
    assert opening.password_source(settings, lambda who: asked.append(who) or "typed")("sim:/x") == "s3cret"
    plain = resolve_settings(db=str(tmp_path / "v.db"), host="sim:/x")
    assert opening.password_source(plain, lambda who: asked.append(who) or "typed")("gpu1 (xapi://root@a)") == "typed"
    assert asked == ["gpu1 (xapi://root@a)"]
    assert opening.password_source(plain, None)("sim:/x") is None


# --- each method calls its function with the connection's store and host ------------------------------------

PLAN, ROWS = object(), [{"vm_uuid": VM_1, "pool": "B"}]


def _confirm(plan: object) -> bool:
    return True


def _progress(report: object) -> None:
    pass


# method, its arguments, its options, the function it calls (module, name), whether that takes the host
ROUTES = [
    ("list_pools", (), {}, pools, "list_pools", False),
    ("show_pool", ("b",), {}, pools, "show_pool", False),
    ("rename_pool", ("A", "Prod"), {}, pools, "set_pool_name", False),
    ("list_vms", (), {"pool": "B", "priority": "high"}, vms, "list_vms", False),
    ("get_vm", (VM_1,), {}, vms, "get", False),
    ("find_vm", (VM_1,), {}, vms, "find", False),
    ("history", (VM_1,), {"limit": 3}, audit, "history", False),
    ("inspect_vm", (VM_1,), {}, scan, "inspect_vm", True),
    ("register_vm", (VM_21,), {"vm_name": "x", "pool": "B", "priority": "low", "vm_id": 40}, lifecycle, "register_vm", True),
    ("remove_vm", (VM_1,), {}, lifecycle, "remove_vm", True),
    ("repair_vm", (VM_1,), {}, lifecycle, "repair_vm", True),
    ("plan_reconfigure", (VM_1,), {"priority": "low"}, lifecycle, "plan_reconfigure", True),
    ("reconfigure_vm", (VM_1,), {"pool": "B", "confirm": _confirm, "progress": _progress}, lifecycle, "reconfigure_vm", True),
    ("plan_apply", (VM_1,), {}, lifecycle, "plan_apply", True),
    ("apply_vm", (VM_1,), {"confirm": _confirm}, lifecycle, "apply_vm", True),
    ("apply_plan", (PLAN,), {"progress": _progress}, lifecycle, "apply_plan", True),
    ("scan", (), {"tolerate_host_errors": True}, scan, "scan", True),
    ("status", (), {}, scan, "status", True),
    ("plan_many", (ROWS,), {}, bulk, "plan_many", True),
    ("apply_many", (PLAN,), {"progress": "auto", "concurrency": 8, "per_host": 2}, bulk, "apply_many", True),
    ("reconfigure_many", (ROWS,), {"confirm": _confirm, "concurrency": 3}, bulk, "reconfigure_many", True),
    ("plan_registrations", (ROWS,), {"on_existing": "skip"}, bulk_register, "plan_registrations", True),
    ("register_planned", (PLAN,), {"progress": "auto", "concurrency": 8}, bulk_register, "register_planned", True),
    ("write_segments", ([VM_1],), {"concurrency": 2}, bulk_register, "write_segments", True),
    ("recover", (), {"progress": _progress, "take_over": True}, recovery, "recover", True),
    ("plan_forget_host", ("gpu2",), {}, locations, "plan_forget_host", False),
    ("forget_host", ("gpu2",), {"confirm": _confirm}, locations, "forget_host", False),
]
TAKES_POLICY = {"reconfigure_vm", "apply_vm", "apply_plan", "apply_many", "reconfigure_many", "recover"}
TAKES_CONFIGURED = {"plan_forget_host", "forget_host"}  # the settings' hosts (label -> URI), after the label


def _spy(monkeypatch, module, name):
    """Replace module.name by a stand-in with its signature that records each call and returns a marker."""
    real, calls = getattr(module, name), []

    @functools.wraps(real)
    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return ("returned by", name)

    monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize("method, args, options, module, function, uses_host", ROUTES, ids=[route[0] for route in ROUTES])
def test_each_method_calls_its_function_with_the_store_host_and_options(conn, monkeypatch, opened_hosts,
                                                                        method, args, options, module, function, uses_host):
    calls = _spy(monkeypatch, module, function)
    assert getattr(conn, method)(*args, **options) == ("returned by", function)
    expected = {**_defaults(getattr(module, function)), **options}
    if method in TAKES_POLICY:
        expected["policy"] = conn.policy
    front = (conn.store, conn.host) if uses_host else (conn.store,)
    configured = (conn.settings.configured_uris,) if method in TAKES_CONFIGURED else ()
    assert calls == [((*front, *args, *configured), expected)]
    assert len(opened_hosts) == (1 if uses_host else 0)  # opened on first use, once; never to read the database


def _options(function):
    """A function's (or a method's) keyword options, those a Connection method takes as keywords:
    {name: parameter}. history's subject, with a default, is an argument that both take."""
    given = ("self", "store", "host", "configured", "subject")
    return {name: param for name, param in inspect.signature(function).parameters.items()
            if name not in given and (param.kind is param.KEYWORD_ONLY or param.default is not param.empty)}


def _defaults(function):
    """What a method passes its function when given no option: the function's defaults."""
    return {name: param.default for name, param in _options(function).items() if param.default is not param.empty}


def _same_options(method, *functions):
    own = _options(method)
    theirs = {name: param for function in functions for name, param in _options(function).items()}
    assert list(own) == list(theirs)
    for name, param in own.items():
        assert param.kind is param.KEYWORD_ONLY, name
        if name == "policy":  # left out: the settings' stop policy (conn.policy), not the library's default
            assert (param.annotation, param.default) == ("StopPolicy | SettingsPolicy", SETTINGS_POLICY)
        else:
            assert (param.annotation, param.default) == (theirs[name].annotation, theirs[name].default), name


@pytest.mark.parametrize("method, args, options, module, function, uses_host", ROUTES, ids=[route[0] for route in ROUTES])
def test_each_method_takes_its_functions_options_with_their_types_and_defaults(method, args, options, module,
                                                                             function, uses_host):
    # keyword parameters of their own, so that a user's type checker sees a misspelt or mistyped option
    _same_options(getattr(Connection, method), getattr(module, function))


def test_register_many_takes_the_options_of_both_its_functions():
    _same_options(Connection.register_many, bulk_register.plan_registrations, bulk_register.register_planned)


def test_the_routes_cover_every_method():
    public = {name for name in vars(Connection) if not name.startswith("_") and callable(getattr(Connection, name))}
    assert public - {route[0] for route in ROUTES} == {"close", "reopen", "register_many"}


def test_reading_the_database_never_opens_the_host(conn, opened_hosts):
    conn.list_pools(), conn.show_pool("A"), conn.list_vms(pool="B"), conn.get_vm(VM_1), conn.history(limit=1)
    assert opened_hosts == []
    conn.status()
    conn.scan()
    assert len(opened_hosts) == 1


def test_the_settings_stop_policy_unless_the_call_gives_one(sandbox, monkeypatch):
    calls = _spy(monkeypatch, lifecycle, "reconfigure_vm")
    with connect(**sandbox, clean_timeout=5, force_after_timeout=False) as conn:
        conn.reconfigure_vm(VM_1, pool="B", confirm=_confirm)
        own = StopPolicy(1.0, True)
        conn.reconfigure_vm(VM_1, pool="B", confirm=_confirm, policy=own)
    assert [kwargs["policy"] for _, kwargs in calls] == [StopPolicy(5.0, False), own]


# --- an option a method does not take is Python's TypeError, before anything is done --------------------------


@pytest.mark.parametrize("method, args, option", [
    ("list_vms", (), "pol"),
    ("list_pools", (), "pool"),
    ("apply_many", (PLAN,), "progres"),
    ("register_planned", (PLAN,), "on_existing"),
    ("plan_registrations", (ROWS,), "concurrency"),
    ("reconfigure_vm", (VM_1,), "restart"),
    ("register_many", (ROWS,), "confirm"),
])
def test_an_unknown_option_is_a_type_error_naming_the_method_and_the_option(conn, method, args, option):
    before = conn.list_vms()
    with pytest.raises(TypeError) as raised:
        getattr(conn, method)(*args, **{option: 1})
    assert str(raised.value) == f"Connection.{method}() got an unexpected keyword argument {option!r}"
    assert conn.list_vms() == before


@pytest.mark.parametrize("method, args, options, module, function, uses_host", ROUTES, ids=[route[0] for route in ROUTES])
def test_every_method_refuses_an_option_its_function_does_not_take(conn, monkeypatch, method, args, options, module,
                                                                   function, uses_host):
    calls = _spy(monkeypatch, module, function)
    with pytest.raises(TypeError, match=f"{method}\\(\\) got an unexpected keyword argument 'colour'"):
        getattr(conn, method)(*args, **options, colour="blue")
    assert calls == []


def test_a_required_option_missing_is_named_before_anything_is_done(conn):
    before = conn.host.get_device_model_args(VM_1)
    with pytest.raises(TypeError) as raised:
        conn.reconfigure_vm(VM_1, pool="B")
    assert str(raised.value) == "Connection.reconfigure_vm() missing 1 required keyword-only argument: 'confirm'"
    with pytest.raises(TypeError, match=r"reconfigure_many\(\) missing 1 required keyword-only argument: 'confirm'"):
        conn.reconfigure_many(ROWS)
    assert conn.get_vm(VM_1).pool_id == "A" and conn.host.get_device_model_args(VM_1) == before


def test_a_bad_option_value_is_still_the_functions_invalid_value(conn):
    plan = conn.plan_many([{"vm_uuid": VM_1, "pool": "B"}])
    with pytest.raises(InvalidValue) as raised:
        conn.apply_many(plan, concurrency=0)
    assert raised.value.field == "concurrency"
    with pytest.raises(InvalidValue) as raised:
        conn.plan_registrations(ROWS, on_existing="bogus")
    assert raised.value.field == "on_existing"
    assert conn.get_vm(VM_1).pool_id == "A"


# --- real work through the connection -------------------------------------------------------------------------


def test_a_change_goes_through_the_cycle_on_the_host(conn):
    result = conn.reconfigure_vm(VM_1, pool="B", confirm=_confirm)
    assert result.changed and result.restarted
    assert conn.get_vm(VM_1).pool_id == "B" and "pool=B" in conn.host.get_device_model_args(VM_1)
    assert conn.inspect_vm(VM_1).state == "configured"
    assert [entry.action for entry in conn.history(VM_1, limit=2)] == ["update", "stop"]


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # "auto" then logs lines, as where tqdm is not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


@pytest.fixture
def worker_runs(monkeypatch):
    """The concurrency and progress each batch's workers were given (the real workers still run)."""
    seen, real = [], workers.run

    def recording(*args, **kwargs):
        seen.append((kwargs["concurrency"], kwargs["progress"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(workers, "run", recording)
    return seen


def _progress_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "vgpu.progress"]


def test_progress_auto_and_concurrency_reach_the_registration_workers(conn, no_tqdm, worker_runs, caplog):
    plan = conn.plan_registrations([{"uuid": uuid} for uuid in (VM_21, VM_22, VM_23)])
    with caplog.at_level(logging.INFO, logger="vgpu.progress"):
        result = conn.register_planned(plan, progress="auto", concurrency=3)
    assert result.ok and len(result.registered) == 3
    assert worker_runs == [(3, "auto")]
    lines = _progress_lines(caplog)  # one per VM, counted as each finishes, whichever finishes first
    assert [line.split(" VM ")[0] for line in lines] == [f"Writing segments [{n}/3]" for n in (1, 2, 3)]
    assert sorted(line.split(" VM ")[1] for line in lines) == sorted(f"{uuid} finished" for uuid in (VM_21, VM_22, VM_23))


def test_progress_auto_and_concurrency_reach_the_bulk_change_workers(conn, no_tqdm, worker_runs, caplog):
    move = conn.plan_many([{"vm_uuid": vm.vm_uuid, "pool": "A"} for vm in conn.list_vms(pool="B", priority="low")])
    with caplog.at_level(logging.INFO, logger="vgpu.progress"):
        moved = conn.apply_many(move, progress="auto", concurrency=2)
    assert moved.ok and len(moved.results) == 2
    assert worker_runs == [(2, "auto")]
    assert len(_progress_lines(caplog)) == 2 and all(line.startswith("Reconfiguring [") for line in _progress_lines(caplog))


def test_register_many_registers_every_row_in_one_call(conn, no_tqdm, worker_runs, caplog):
    with caplog.at_level(logging.INFO, logger="vgpu.progress"):
        result = conn.register_many([{"uuid": VM_21, "pool": "B"}, {"uuid": VM_22}], progress="auto", concurrency=5)
    assert result.ok and [vm.vm_name for vm in result.registered] == ["VM-21", "VM-22"]
    assert worker_runs == [(5, "auto")] and len(_progress_lines(caplog)) == 2
    assert "pool=B" in conn.host.get_device_model_args(VM_21)
    again = conn.register_many([{"uuid": VM_21, "pool": "B"}, {"uuid": VM_22}], on_existing="skip")
    assert again.registered == () and len(conn.list_vms()) == 22


def test_register_many_refuses_every_bad_row_and_registers_none(conn):
    before = conn.list_vms()
    with pytest.raises(InvalidRows) as raised:
        conn.register_many([{"uuid": VM_21}, {"uuid": VM_22, "pool": "C"}, {"uuid": VM_1}, {"uuid": "nope"}])
    assert [problem.row for problem in raised.value.problems] == [2, 3, 4]
    assert "nothing was changed" in str(raised.value) and "\n" not in str(raised.value)
    assert conn.list_vms() == before and conn.host.get_device_model_args(VM_21) == ""


def test_register_many_plans_again_when_its_plan_goes_stale_before_it_registers(conn, monkeypatch):
    planned = []
    plan_registrations = bulk_register.plan_registrations

    def plan_then_someone_registers(store, host, rows, **options):
        plan = plan_registrations(store, host, rows, **options)
        planned.append(plan)
        if len(planned) == 1:  # another session takes the vm_id the first plan chose for VM-22
            with connect(db=conn.settings.db, host=conn.settings.host) as other:
                other.register_vm(VM_21)
        return plan

    monkeypatch.setattr(bulk_register, "plan_registrations", plan_then_someone_registers)
    result = conn.register_many([{"uuid": VM_22}, {"uuid": VM_23}])
    assert len(planned) == 2 and planned[0].vms[0].vm_id == conn.get_vm(VM_21).vm_id
    assert result.ok and [vm.vm_uuid for vm in result.registered] == [VM_22, VM_23]
    assert len({vm.vm_id for vm in conn.list_vms()}) == 23


def test_register_many_interrupted_just_after_registering_hands_back_the_vms_whose_segments_are_to_write(conn, monkeypatch):
    interrupt_after(monkeypatch, vms, "db_register_many")  # a Ctrl-C landing as the transaction has committed
    caught = interrupt_of(lambda: conn.register_many([{"uuid": VM_21}, {"uuid": VM_22}, {"uuid": VM_23}]))
    monkeypatch.undo()
    assert isinstance(caught, BulkInterrupted), "a bare KeyboardInterrupt, with nothing of what was registered"
    partial = caught.partial
    assert [vm.vm_uuid for vm in partial.registered] == [VM_21, VM_22, VM_23]
    assert partial.not_started == (VM_21, VM_22, VM_23) and "write_segments(store, host, partial.not_started)" in str(caught)
    assert sorted(entry.vm.vm_uuid for entry in conn.status().drift) == sorted([VM_21, VM_22, VM_23])
    conn.write_segments(partial.not_started)
    assert conn.status().drift == []


def test_register_many_in_several_threads_beside_register_vm_registers_every_vm(tmp_path):
    sandbox = demo.sandbox(str(tmp_path / "sandbox"))
    host = SimHost(sandbox["host"][len("sim:"):])
    batches = [[demo.demo_uuid(f"bulk-{batch}-{n}") for n in range(10)] for batch in range(2)]
    singles = [demo.demo_uuid(f"single-{n}") for n in range(6)]
    for uuid in [*sum(batches, []), *singles]:
        host.add_vm(uuid, uuid[:8], "halted", "")
    failures: list[BaseException] = []

    def run(work) -> None:
        try:
            with connect(**sandbox) as own:
                work(own)
        except BaseException as error:  # noqa: B036 - reported below
            failures.append(error)

    works = [functools.partial(lambda rows, own: own.register_many([{"uuid": u} for u in rows], concurrency=2), rows)
             for rows in batches]
    works += [functools.partial(lambda uuids, own: [own.register_vm(u) for u in uuids], singles[i::2]) for i in range(2)]
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with connect(**sandbox) as own:
        registered = own.list_vms()
    assert len(registered) == 20 + 26 and len({vm.vm_id for vm in registered}) == 46


def test_register_many_leaves_updates_to_a_plan_that_is_read_first(conn):
    with pytest.raises(InvalidValue) as raised:
        conn.register_many([{"uuid": VM_1, "pool": "B"}], on_existing="update")
    assert raised.value.field == "on_existing" and "apply_many(plan.updates)" in str(raised.value)
    assert conn.get_vm(VM_1).pool_id == "A"


def test_register_many_names_only_the_on_existing_it_takes(conn):
    with pytest.raises(InvalidValue) as raised:
        conn.register_many([{"uuid": VM_21}], on_existing="bogus")
    assert str(raised.value) == "invalid on_existing 'bogus': expected error or skip"
    assert raised.value.allowed == ["error", "skip"] and conn.find_vm(VM_21) is None


def test_the_status_of_a_host_that_cannot_be_reached_says_so_once(tmp_path):
    with connect(db=str(tmp_path / "v.db"), host=f"sim:{tmp_path}/nonexistent/dir/host.sim") as conn:
        summary = repr(conn.status()).splitlines()[0]
    assert f"; cannot reach the host: simulated host directory {tmp_path}/nonexistent/dir does not exist " in summary
    assert summary.count("reach") == 1


def test_recover_through_the_connection_finds_nothing_to_do(conn):
    assert conn.recover() == []


# --- open, close, repr ------------------------------------------------------------------------------------------


def test_a_with_block_closes_the_store_and_the_host(sandbox, monkeypatch):
    closed = []
    real_close = SimHost.close
    monkeypatch.setattr(SimHost, "close", lambda self: (closed.append(self.path), real_close(self)))
    with connect(**sandbox) as conn:
        store, host = conn.store, conn.host
        assert conn.list_pools()
    assert closed == [host.path]
    with pytest.raises(StoreError, match="was closed"):
        pools.list_pools(store)
    with pytest.raises(StoreError) as raised:
        conn.list_pools()
    assert str(raised.value) == f"the connection to {sandbox['db']} was closed; open another with vgpu.connect()"
    with pytest.raises(StoreError, match="was closed"):
        conn.host
    conn.close()  # twice is harmless
    assert closed == [host.path]


def test_an_error_in_the_block_still_closes_everything(sandbox):
    with pytest.raises(VgpuError):
        with connect(**sandbox) as conn:
            conn.get_vm(VM_21)  # not registered: NotFound
    with pytest.raises(StoreError, match="was closed"):
        conn.list_vms()


def test_a_host_never_used_is_never_opened_nor_closed(sandbox, opened_hosts):
    with connect(**sandbox) as conn:
        conn.list_pools()
    assert opened_hosts == []


def test_the_repr_names_the_database_and_the_host(sandbox):
    conn = connect(**sandbox)
    assert repr(conn) == f"<vgpu.Connection db={sandbox['db']!r} host={sandbox['host']!r}>"
    conn.close()
    assert repr(conn).endswith(" (closed)>")
    with connect() as demo_conn:
        assert repr(demo_conn) == f"<vgpu.Connection db={demo.db_path()!r} host='sim:demo'>"


def test_a_fleets_repr_names_each_host_and_never_a_password(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPU_XAPI_PASSWORD", "env-secret")
    asked = []
    hosts = {"gpu1": "xapi://root@pool1.example.com", "kvm3": f"sim:{tmp_path / 'kvm3.sim'}"}
    with connect(db=str(tmp_path / "v.db"), host=hosts, password=lambda who: asked.append(who) or "cb-secret") as conn:
        text = repr(conn)
    assert text == (f"<vgpu.Connection db={str(tmp_path / 'v.db')!r} "
                    f"hosts='gpu1=xapi://root@pool1.example.com, kvm3=sim:{tmp_path / 'kvm3.sim'}'>")
    assert "secret" not in text and asked == []


@pytest.mark.parametrize("uri", ["qemu+ssh://root:s3cret@kvm3/system", "qemu+tcp://admin:s3cret@kvm3:16509/system"])
def test_a_password_in_a_libvirt_uri_is_refused_and_never_shown(tmp_path, uri):
    # libvirt takes no password in its URI (ssh keys, or its own prompt): one written there would sit in
    # shell history, ps, the repr and every error message.
    with pytest.raises(InvalidValue) as caught:
        connect(db=str(tmp_path / "v.db"), host=uri)
    assert "s3cret" not in str(caught.value) and "s3cret" not in repr(caught.value.value)
    assert "without a password" in str(caught.value)
    outcome = run(["--db", str(tmp_path / "v.db"), "--host", uri, "list-pools"])
    assert outcome.code == 2 and "s3cret" not in outcome.out + outcome.err
    assert "without a password" in outcome.one_error_line()


@pytest.mark.parametrize("host", [{"g": "bogus:x"}, ["g=bogus:x"], "gpu1", ["gpu1", "gpu2"], {"-bad": "sim:/x"}])
def test_a_bad_host_in_any_form_is_an_invalid_value_naming_the_argument_not_a_flag(tmp_path, host):
    with pytest.raises(InvalidValue) as caught:
        connect(db=str(tmp_path / "v.db"), host=host)
    assert caught.value.field == "host" and "--host" not in str(caught.value)
    assert not (tmp_path / "v.db").exists()


def test_reopen_gives_another_thread_a_connection_of_its_own(conn):
    found = []

    def elsewhere() -> None:
        with pytest.raises(StoreError, match="serves another thread"):
            conn.list_pools()
        with conn.reopen() as own:
            found.append((own.settings == conn.settings, len(own.list_vms())))

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert found == [(True, 20)]


def test_a_reopened_connection_serves_the_thread_it_is_handed_to(conn):
    # The documented pattern: conn.reopen() here, handed to a worker, which is the first to use it.
    import concurrent.futures

    with conn.reopen() as own, concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(lambda other: len(other.list_vms()), own).result() == 20
        with pytest.raises(StoreError, match="serves another thread"):
            own.list_vms()  # the worker's now: sharing it is still refused
    assert len(conn.list_vms()) == 20


def test_the_sandbox_leaves_the_users_demo_alone(tmp_path):
    settings = demo.sandbox(str(tmp_path / "box"))
    assert settings == {"db": str(tmp_path / "box" / "vgpu.db"), "host": f"sim:{tmp_path / 'box' / 'host.sim'}"}
    with Store(settings["db"]) as store:
        assert len(vms.list_vms(store)) == 20
    assert len(SimHost(tmp_path / "box" / "host.sim").list_vms()) == 23
    assert not os.path.exists(demo.db_path())


# --- import vgpu stays light ----------------------------------------------------------------------------------


def _fresh(code: str) -> dict:
    script = f"import json, sys\n{code}\nprint(json.dumps(result))"
    done = subprocess.run([sys.executable, "-c", script], cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_vgpu_loads_nothing_but_the_package_until_connect_is_used():
    result = _fresh(
        "before = set(sys.modules)\n"
        "import vgpu\n"
        "loaded = sorted(set(sys.modules) - before)\n"
        "names = dir(vgpu)\n"
        "still = sorted(set(sys.modules) - before)\n"
        "vgpu.connect\n"
        "result = {'loaded': loaded, 'after_dir': still, 'names': [n for n in ('connect', 'Connection') if n in names],\n"
        "          'all': vgpu.__all__, 'then': 'vgpu.connection' in sys.modules}"
    )
    assert result == {"loaded": ["vgpu"], "after_dir": ["vgpu"], "names": ["connect", "Connection"],
                      "all": ["Connection", "connect", "__version__"], "then": True}


def test_the_lazy_names_are_the_real_ones_and_help_shows_them():
    import pydoc

    assert vgpu.connect is connect and vgpu.Connection is Connection
    text = pydoc.render_doc(vgpu, renderer=pydoc.plaintext)
    assert "connect(db" in text and "class Connection" in text
    with pytest.raises(AttributeError, match="module 'vgpu' has no attribute 'conect'"):
        vgpu.conect  # noqa: B018 - the lookup is the test


def test_help_names_the_default_progress_rather_than_a_function_address():
    import pydoc

    for method in (Connection.apply_many, Connection.register_many, Connection.recover, Connection.reconfigure_vm):
        text = pydoc.render_doc(method, renderer=pydoc.plaintext)
        assert "<function" not in text and "= <no progress>" in text, text


# What `vgpu-admin list-pools` loaded before vgpu.connect existed, beyond `import sqlite3, attrs` (nothing else
# but these): the opening step now lives in vgpu.opening, which the shell imports instead of doing it itself;
# vgpu.schema_check is no longer among them, since a database vgpu made is found complete by one query.
# vgpu.uri_password (a few string functions) is: --host is checked for a password on every command.
LIST_POOLS_MODULES = sorted([
    "shell", "shell.commands", "shell.console", "shell.context", "shell.errors", "shell.handlers",
    "shell.main", "shell.parsing", "shell.render", "shell.runner",
    "vgpu", "vgpu.basics", "vgpu.config", "vgpu.error_root", "vgpu.errors", "vgpu.escape", "vgpu.host_uri", "vgpu.hostspecs",
    "vgpu.opening", "vgpu.paths", "vgpu.pools", "vgpu.schema", "vgpu.store", "vgpu.stored",
    "vgpu.tables", "vgpu.trust", "vgpu.uri_password",
])


def test_list_pools_imports_no_more_than_before(tmp_path):
    db = tmp_path / "v.db"
    subprocess.run([sys.executable, "-m", "shell", "--db", str(db), "list-pools"], cwd=str(REPO), check=True, capture_output=True)
    result = _fresh(
        "import sqlite3, attrs\n"
        "floor = set(sys.modules)\n"
        "from shell.main import main\n"
        f"code = main(['--db', {str(db)!r}, 'list-pools'])\n"
        "result = {'code': code, 'loaded': sorted(set(sys.modules) - floor)}"
    )
    assert result == {"code": 0, "loaded": LIST_POOLS_MODULES}


def test_a_config_error_from_connect_is_the_clis_too(tmp_path):
    _write_config('database = "x"\n')
    with pytest.raises(ConfigError) as raised:
        connect()
    outcome = run(["list-pools"])
    assert outcome.code == 2 and outcome.one_error_line() == f"error: {raised.value}"


@pytest.mark.parametrize("host", [{"gpu1": "root:Zz9secret@h"}, {"gpu1": "xapi://root:Zz9secret@h"},
                                  ["gpu1=root:Zz9secret@h"], ["gpu1=xapi://root:Zz9secret@h", "gpu2=xe:"]])
def test_a_host_argument_with_a_password_is_not_kept_in_the_error(isolated_environment, host):
    # the error's value is what a caller logs: it must not hold the password any more than its sentence
    with pytest.raises(InvalidValue) as caught:
        connect(host=host)
    assert "Zz9" not in str(caught.value) + repr(caught.value) + repr(caught.value.value)
    assert "***" in repr(caught.value.value)


@pytest.mark.parametrize("password", ["hunter2", b"hunter2", 42])
def test_a_password_that_is_not_a_function_is_refused_without_showing_it(tmp_path, password):
    # It used to be taken, and the first login raised a bare TypeError ('str' object is not callable).
    with pytest.raises(InvalidValue) as raised:
        connect(db=str(tmp_path / "v.db"), host="sim:/x", password=password)
    error = raised.value
    kind = type(password).__name__
    assert (error.field, error.value) == ("password", kind)
    assert str(error) == f"invalid password (a {kind}, not shown): expected a function password(who) that returns the password"
    assert "hunter2" not in repr(error.__dict__) and "42" not in str(error)
    assert not (tmp_path / "v.db").exists()

"""forget-host: letting go of a host retired for good.

A VM last seen on a host taken out of [hosts] (or with a copy recorded there) is refused by every change,
since that host may still run it. ``forget-host LABEL`` is the admin's explicit, confirmed word that the host
is gone: what the database remembers of it (vgpu_locations, vgpu_location_copies) goes in one transaction,
recorded in the history; no VM is unregistered. A configured host, a label the database does not remember,
and a host with an unfinished operation (recover needs it) are refused with nothing changed.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import pytest

import vgpu
from shell.completion_engine import suggest
from shell.names import build as build_names
from vgpu import journal, locations, vms
from vgpu.errors import Busy, Cancelled, InvalidValue
from vgpu.models import Priority, Registration

from .clikit import digest, run_process
from .fleetkit import fleet_world, ok_lines, segment, uuid_of

A1, A2 = uuid_of(1, 1), uuid_of(1, 2)  # on gpu1: registered and running; registered, with a copy on gpu2
B1, B2, U2 = uuid_of(2, 1), uuid_of(2, 2), uuid_of(2, 3)  # on gpu2: registered; registered, copy on gpu1; unregistered


@pytest.fixture
def world(tmp_path, monkeypatch, isolated_environment):
    """Two simulated hosts, configured in [hosts] and scanned (where each VM is, remembered)."""
    with fleet_world(tmp_path, monkeypatch) as made:
        made.sims["gpu1"].add_vm(A1, "a-one", "running", segment("A", 2, 1))
        made.sims["gpu2"].add_vm(B1, "b-one", "halted", segment("B", 0, 2))
        made.sims["gpu2"].add_vm(U2, "spare-2", "running", "")
        with made.store() as store:
            vms.db_register_many(store, [Registration(A1, "a-one", "A", Priority.HIGH, 1),
                                         Registration(B1, "b-one", "B", Priority.LOW, 2)])
        made.configure(isolated_environment / "config")
        ok_lines(made.cli("scan-vms", hosts=[]))
        made.config = isolated_environment / "config" / "vgpu" / "config.toml"
        yield made


def take_out(world, label: str = "gpu2") -> None:
    world.config.write_text("\n".join(line for line in world.config.read_text().splitlines()
                                      if not line.startswith(f"{label} ")) + "\n")


def files(world) -> dict[str, str | None]:
    return {name: digest(Path(f"{world.db}{name}")) for name in ("", "-wal")}


def places(world) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    conn = sqlite3.connect(world.db)
    try:
        return (conn.execute("SELECT vm_uuid, host FROM vgpu_locations ORDER BY vm_uuid").fetchall(),
                conn.execute("SELECT vm_uuid, host FROM vgpu_location_copies ORDER BY vm_uuid, host").fetchall())
    finally:
        conn.close()


def add_copies(world) -> None:
    """A2 (registered, on gpu1) with a copy recorded on gpu2; B2 (registered, last seen on gpu2) with one on gpu1."""
    with world.store() as store:
        vms.db_register_many(store, [Registration(A2, "a-two", "A", Priority.LOW, 3),
                                     Registration(B2, "b-two", "B", Priority.LOW, 4)])
        with store.writing() as conn:
            locations.record(conn, [(A2, "gpu1", None), (B2, "gpu2", None)])
            conn.executemany("INSERT INTO vgpu_location_copies (vm_uuid, host) VALUES (?, ?)", [(A2, "gpu2"), (B2, "gpu1")])
    world.sims["gpu1"].add_vm(A2, "a-two", "halted", segment("A", 0, 3))
    world.sims["gpu1"].add_vm(B2, "b-two", "halted", segment("B", 0, 4))


# --- the admin's path ---------------------------------------------------------------------------------------


def test_a_vm_of_a_retired_host_is_refused_until_the_host_is_forgotten_then_removed(world):
    take_out(world)
    refused = world.cli("remove-vm", f"--vm-uuid={B1}", hosts=[])
    assert refused.code == 1, refused
    assert "which is not one of this run's configured hosts" in refused.one_error_line()
    assert "forget-host gpu2" in refused.one_error_line()  # the refusal names the way out

    forgotten = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[])
    assert forgotten.code == 0, forgotten
    assert f"UUID: {B1} | Name: b-one | Pool: B | Priority: low (0) | VM ID: 2 | Host: gpu2" in forgotten.out_lines
    assert forgotten.out_lines[-1].startswith("Host gpu2 forgotten: "), forgotten.out
    assert places(world) == ([(A1, "gpu1")], [])
    with world.store() as store:
        assert vms.find(store, B1) is not None  # forgetting unregisters nothing

    removed = world.cli("remove-vm", f"--vm-uuid={B1}", hosts=[])
    assert removed.code == 0, removed
    with world.store() as store:
        assert vms.find(store, B1) is None


def test_after_forgetting_scan_shows_the_vm_as_any_registered_vm_no_host_has(world):
    take_out(world)
    before = ok_lines(world.cli("scan-vms", hosts=[]))
    assert before[-1].startswith("1 registered VM last seen on gpu2 (not configured) is not shown"), before
    ok_lines(world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[]))
    after = ok_lines(world.cli("scan-vms", hosts=[]))
    assert not any("not shown" in line for line in after), after
    assert any(line.startswith(f"UUID: {B1} |") and "⚠ Not on host" in line for line in after), after


# --- refused, nothing changed -------------------------------------------------------------------------------


def test_forgetting_a_configured_host_is_refused_with_the_db_unchanged(world):
    before = files(world)
    outcome = world.cli("forget-host", "gpu1", stdin="yes\n", hosts=[])
    assert outcome.code == 2, outcome
    line = outcome.one_error_line()
    assert line.startswith("error: host 'gpu1' is configured in this run"), line
    assert "take it out of" in line, line
    assert files(world) == before


def test_a_host_left_out_by_host_flag_is_configured_all_the_same(world):
    before = files(world)
    outcome = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=["gpu1"])  # gpu2 is still in [hosts]
    assert outcome.code == 2, outcome
    assert outcome.one_error_line().startswith("error: host 'gpu2' is configured in this run"), outcome
    assert files(world) == before


def test_a_label_the_database_does_not_remember_is_refused_naming_those_it_does(world):
    take_out(world)
    before = files(world)
    outcome = world.cli("forget-host", "gpu9", stdin="yes\n", hosts=[])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == ("error: host 'gpu9' is not remembered by the database: the hosts it remembers "
                                        "that this run does not configure are gpu2"), outcome
    assert files(world) == before


@pytest.mark.parametrize("word", ["xapi://root:s3cr3t@h", "root:s3cr3t@h"])
def test_a_url_with_a_password_given_as_the_label_is_refused_with_it_masked(world, word):
    # Every other refusal repeating a host masks its password; this one repeated it whole, in the library too.
    take_out(world)
    before = files(world)
    outcome = world.cli("forget-host", word, stdin="yes\n", hosts=[])
    assert outcome.code == 2, outcome
    assert "s3cr3t" not in outcome.out + outcome.err and "***" in outcome.one_error_line(), outcome
    assert files(world) == before
    with vgpu.connect() as conn, pytest.raises(InvalidValue) as refused:
        conn.plan_forget_host(word)
    assert "s3cr3t" not in str(refused.value) and b"s3cr3t" not in pickle.dumps(refused.value)  # its data too


def test_with_every_remembered_host_configured_the_refusal_says_there_are_none(world):
    before = files(world)
    outcome = world.cli("forget-host", "gpu9", stdin="yes\n", hosts=[])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == ("error: host 'gpu9' is not remembered by the database: it remembers no host "
                                        "that this run does not configure"), outcome
    assert files(world) == before


def test_forget_host_needs_its_label(world):
    outcome = world.cli("forget-host", hosts=[])
    assert outcome.code == 2 and outcome.one_error_line() == "error: forget-host needs <label>", outcome


def test_an_unfinished_operation_on_the_host_refuses_since_recover_needs_it(world):
    take_out(world)
    with world.store() as store, store.writing() as conn:
        journal.begin(conn, B1, "reconfigure", vms.select_vms(conn)[1], None, False, host="gpu2")
    before = files(world)
    outcome = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[])
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert line.startswith(f"error: host gpu2 has an unfinished change of VM {B1} (started "), line
    assert "recover needs that host" in line and "--host gpu2=URI" in line, line
    assert files(world) == before



def test_an_unfinished_operation_of_a_renamed_host_is_the_configured_hosts_not_one_to_forget(world):
    """gpu2 renamed gpu3 (same URI): forget-host gpu2 must not advise --host gpu2=URI (gpu3 is that URI)."""
    with world.store() as store, store.writing() as conn:
        journal.begin(conn, B1, "reconfigure", vms.select_vms(conn)[1], None, False, host="gpu2")
    world.config.write_text(world.config.read_text().replace("gpu2 = ", "gpu3 = "))
    outcome = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[])
    assert outcome.code == 2, outcome
    assert "host 'gpu2' is not remembered by the database" in outcome.one_error_line()
    with world.store() as store, store.reading() as conn:
        assert conn.execute("SELECT host FROM vgpu_operations WHERE finished_at IS NULL").fetchall() == [("gpu3",)]


# --- the question ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["no\n", ""], ids=["no", "end-of-input"])
def test_it_asks_and_a_no_or_no_answer_changes_nothing(world, answer):
    take_out(world)
    before = places(world)
    outcome = world.cli("forget-host", "gpu2", hosts=[], stdin=answer)
    assert outcome.code == 3, outcome
    assert "Do you want to forget host gpu2? (yes/no)" in outcome.out, outcome.out
    assert places(world) == before


def test_a_yes_answer_forgets(world):
    take_out(world)
    outcome = world.cli("forget-host", "gpu2", hosts=[], stdin="yes\n")
    assert outcome.code == 0, outcome
    lines = outcome.out_lines
    assert lines[0] == ("Forget host gpu2 (not configured in this run): where its VMs were last seen is forgotten; "
                        "no VM is unregistered."), lines
    assert "=== Registered VMs last seen on gpu2: 1 ===" in lines
    assert "Unregistered VMs last seen on gpu2: 1" in lines
    assert "Copies recorded on gpu2: 0" in lines
    assert places(world) == ([(A1, "gpu1")], [])


def test_at_the_shell_prompt_it_runs_as_on_the_command_line(world):
    take_out(world)
    outcome = run_process([], stdin="forget-host gpu2\nyes\n")  # the vgpu> shell, reading its lines from a pipe
    assert outcome.code == 0, outcome
    assert "Do you want to forget host gpu2? (yes/no)" in outcome.out, outcome.out
    assert places(world) == ([(A1, "gpu1")], [])


# --- copies, and the schema 5 mark ---------------------------------------------------------------------------


def test_copies_on_the_host_go_and_a_vm_last_seen_there_too_keeps_its_other_place(world):
    add_copies(world)
    take_out(world)
    refused = world.cli("set-pool", f"--vm-uuid={A2}", "--pool=B", hosts=[], stdin="yes\n")
    assert refused.code == 1 and "last seen on host gpu2 too" in refused.one_error_line(), refused

    outcome = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[])
    assert outcome.code == 0, outcome
    assert "Copies recorded on gpu2: 1" in outcome.out_lines, outcome.out
    assert places(world) == ([(A1, "gpu1"), (A2, "gpu1"), (B2, "gpu1")], [])  # B2's copy on gpu1 is its place now

    moved = world.cli("set-pool", f"--vm-uuid={A2}", "--pool=B", hosts=[], stdin="yes\n")
    assert moved.code == 0, moved
    with world.store() as store:
        assert vms.get(store, A2).pool_id == "B"


def test_forgetting_leaves_the_copies_unknown_mark_so_a_change_is_still_refused_while_a_host_is_down(world):
    add_copies(world)
    take_out(world)
    with world.store() as store, store.writing() as conn:
        conn.execute("INSERT INTO vgpu_copies_unknown DEFAULT VALUES")
    ok_lines(world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[]))
    with world.store() as store, store.reading() as conn:
        assert locations.copies_unknown(conn)
    # gpu2 configured again (another admin's config, say), and down: a change of a VM on gpu1 must ask it
    world.sims["gpu2"].set_fault("unreachable", "on")
    refused = world.cli("set-pool", f"--vm-uuid={A1}", "--pool=B", stdin="yes\n")
    assert refused.code == 1, refused
    assert "could not be asked whether it has a copy" in refused.one_error_line(), refused
    with world.store() as store:
        assert vms.get(store, A1).pool_id == "A"


# --- the history ---------------------------------------------------------------------------------------------


def test_the_history_records_what_was_forgotten_for_each_vm(world):
    add_copies(world)
    take_out(world)
    ok_lines(world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[]))
    lines = ok_lines(world.cli("history", f"--vm-uuid={B1}", hosts=[]))
    assert lines[0].endswith(f" | forget-host | b-one ({B1}) | last seen on gpu2 → none"), lines
    assert ok_lines(world.cli("history", f"--vm-uuid={B2}", hosts=[]))[0].endswith("| last seen on gpu2 → gpu1")
    assert ok_lines(world.cli("history", f"--vm-uuid={A2}", hosts=[]))[0].endswith("| copy on gpu2 → none")
    data = json.loads(world.cli("history", f"--vm-uuid={B1}", "--format=json", hosts=[]).out)
    assert (data[0]["action"], data[0]["old"], data[0]["new"]) == ("forget-host", {"host": "gpu2"}, None)


# --- the library ---------------------------------------------------------------------------------------------


def test_the_connection_plans_and_forgets_asking_confirm_and_printing_nothing(world, capsys):
    add_copies(world)
    take_out(world)
    with vgpu.connect() as conn:
        plan = conn.plan_forget_host("gpu2")
        assert (plan.host, [vm.vm_uuid for vm in plan.vms], plan.unregistered, plan.copies, plan.moved) == (
            "gpu2", [B1, B2], (U2,), (A2,), ((B2, "gpu1"),))
        with pytest.raises(Cancelled):
            conn.forget_host("gpu2", confirm=lambda plan: False)
        with pytest.raises(InvalidValue):
            conn.forget_host("gpu2", confirm=True)
        assert locations.forgettable(conn.store, conn.settings.configured_labels) == ("gpu2",)
        done = conn.forget_host("gpu2", confirm=lambda plan: True)
        assert done == plan
        assert locations.forgettable(conn.store, conn.settings.configured_labels) == ()
    assert capsys.readouterr() == ("", "")


def test_the_library_refuses_a_configured_host_and_an_operation_recover_needs(world):
    take_out(world)
    with vgpu.connect() as conn:
        with pytest.raises(InvalidValue) as configured:
            conn.plan_forget_host("gpu1")
        assert (configured.value.field, configured.value.value, configured.value.allowed) == ("host", "gpu1", ("gpu2",))
        with conn.store.writing() as db:
            journal.begin(db, B1, "reconfigure", vms.select_vms(db)[1], None, False, host="gpu2")
        with pytest.raises(Busy):
            conn.forget_host("gpu2", confirm=lambda plan: True)


# --- completion ------------------------------------------------------------------------------------------------


def test_completion_offers_the_remembered_hosts_the_run_does_not_configure(world):
    take_out(world)
    with world.store() as store:
        names = build_names(store, None, configured=("gpu1",))
    assert [s.text for s in suggest("forget-host ", names)] == ["gpu2"]  # gpu1 is configured
    assert [s.text for s in suggest("forget-host g", names)] == ["gpu2"]

"""vgpu-admin across a fleet: simulated hosts and XAPI stand-in pools, one database.

Every command works across the fleet: scan-vms, status and list-vms name each VM's host as a trailing field
(only when the run has several hosts), commands on one VM find its host by UUID, --host LABEL narrows, and
what a fleet brings (a host down, a VM migrating inside a pool, one UUID on two pools, a vm_id used on
another host, an operation of another host) is shown or refused as such.
"""

from __future__ import annotations

import json

import pytest

from vgpu import journal, lifecycle, locations, vms
from vgpu.hypervisor.fleet import Fleet
from vgpu.models import PowerState, Priority, Registration

from .fleetkit import fleet_world, ok_lines, segment, uuid_of

A1, U1 = uuid_of(1, 1), uuid_of(1, 2)  # on gpu1: registered and running; unregistered and halted
B1, U2 = uuid_of(2, 1), uuid_of(2, 2)  # on gpu2: registered and halted; unregistered and running
P1 = uuid_of(5, 1)  # in pool1: registered, running, resident on the member xcp-a2
REGISTER_HINT = "Action: Run 'vgpu-admin register-vm'"


def populate(world) -> None:
    world.sims["gpu1"].add_vm(A1, "a-one", "running", segment("A", 2, 1))
    world.sims["gpu1"].add_vm(U1, "spare-1", "halted", "")
    world.sims["gpu2"].add_vm(B1, "b-one", "halted", segment("B", 0, 2))
    world.sims["gpu2"].add_vm(U2, "spare-2", "running", "")
    registrations = [Registration(A1, "a-one", "A", Priority.HIGH, 1), Registration(B1, "b-one", "B", Priority.LOW, 2)]
    if "pool1" in world.pools:
        world.pools["pool1"].sim.add_vm(P1, "p1-web", "running", segment("A", 1, 3))
        world.pools["pool1"].place(P1, "xcp-a2")
        registrations.append(Registration(P1, "p1-web", "A", Priority.MEDIUM, 3))
    with world.store() as store:
        vms.db_register_many(store, registrations)


@pytest.fixture
def world(tmp_path, monkeypatch):
    with fleet_world(tmp_path, monkeypatch, pools=1) as made:
        populate(made)
        yield made


def b_one_untouched(world):
    """A refused command left b-one (on gpu2) as it was: registered, nothing unfinished, its segment unchanged."""
    with world.store() as store:
        assert vms.find(store, B1) is not None and journal.unfinished(store) == []
    assert world.sims["gpu2"].get_device_model_args(B1) == segment("B", 0, 2)


def line_of(lines, uuid):
    """The VM's line in its pool's (or the unregistered) section: the first line about it."""
    return next(line for line in lines if line.startswith(f"UUID: {uuid} |"))


# --- how it is shown ---------------------------------------------------------------------------------------


def test_scan_vms_shows_each_vms_host_as_a_trailing_field(world):
    assert ok_lines(world.cli("scan-vms")) == [
        "=== Pool A: 2 VMs ===",
        f"UUID: {A1} | Name: a-one | Pool: A | Priority: high (2) | VM ID: 1 | ✓ Configured | Host: gpu1",
        f"UUID: {P1} | Name: p1-web | Pool: A | Priority: medium (1) | VM ID: 3 | ? Running config unknown | Host: pool1 (xcp-a2)",
        "",
        "=== Pool B: 1 VM ===",
        f"UUID: {B1} | Name: b-one | Pool: B | Priority: low (0) | VM ID: 2 | ✓ Configured (halted) | Host: gpu2",
        "",
        "=== Unregistered VMs: 2 ===",
        f"UUID: {U1} | Name: spare-1 | Status: ⚠ Not registered | {REGISTER_HINT} | Host: gpu1",
        f"UUID: {U2} | Name: spare-2 | Status: ⚠ Not registered | {REGISTER_HINT} | Host: gpu2",
        "",
        "Running configuration unknown: 1 VM (p1-web) - the host cannot tell what they booted with; restart them "
        "to be sure (see docs/troubleshooting.md)",
    ]


def test_status_shows_each_registered_vms_host_in_its_details(world):
    lines = ok_lines(world.cli("status"))
    assert f"  a-one (UUID: {A1}) | Priority: high | VM ID: 1 | Host: gpu1" in lines
    assert f"  p1-web (UUID: {P1}) | Priority: medium | VM ID: 3 | Host: pool1 (xcp-a2)" in lines
    assert f"  b-one (UUID: {B1}) | Priority: low | VM ID: 2 | Host: gpu2" in lines
    assert "Total VMs in System: 5" in lines and "Total VMs Unregistered: 2" in lines


def test_list_vms_says_where_each_vm_was_last_seen_without_asking_any_host(world):
    ok_lines(world.cli("scan-vms"))  # sees every VM, and remembers where
    for sim in (world.sims["gpu1"], world.sims["gpu2"], world.pools["pool1"].sim):
        sim.set_fault("unreachable", "on")
    lines = ok_lines(world.cli("list-vms"))
    assert lines[:3] == [
        f"UUID: {A1} | Name: a-one | Pool: A | Priority: high (2) | VM ID: 1 | Host: gpu1",
        f"UUID: {P1} | Name: p1-web | Pool: A | Priority: medium (1) | VM ID: 3 | Host: pool1 (xcp-a2)",
        f"UUID: {B1} | Name: b-one | Pool: B | Priority: low (0) | VM ID: 2 | Host: gpu2",
    ]
    listed = json.loads(world.cli("list-vms", "--format=json").out)
    assert [(vm["vm_name"], vm["host"], vm["resident_on"]) for vm in listed] == [
        ("a-one", "gpu1", None), ("p1-web", "pool1", "xcp-a2"), ("b-one", "gpu2", None)]


def test_json_always_names_the_host_and_the_member(world):
    data = json.loads(world.cli("scan-vms", "--format=json").out)
    assert [(e["vm"]["vm_name"], e["host"], e["resident_on"], e["state"]) for e in data["registered"]] == [
        ("a-one", "gpu1", None, "configured"), ("p1-web", "pool1", "xcp-a2", "unknown"), ("b-one", "gpu2", None, "halted")]
    assert [(h["name"], h["host"]) for h in data["unregistered"]] == [("spare-1", "gpu1"), ("spare-2", "gpu2")]
    assert [(h["label"], h["error"], h["vm_count"]) for h in data["hosts"]] == [
        ("gpu1", None, 2), ("gpu2", None, 2), ("pool1", None, 1)]


def test_json_names_the_host_even_for_a_single_host(tmp_path):
    from .clikit import SpecHost, run

    spec = SpecHost(tmp_path)
    data = json.loads(run(["scan-vms", "--format=json", *spec.flags]).out)
    assert {(e["host"], e["resident_on"]) for e in data["registered"]} == {("", None)}
    assert [(h["label"], h["uri"]) for h in data["hosts"]] == [("", f"sim:{spec.host_file}")]


def test_one_host_keeps_the_spec_layout_and_a_label_narrows_to_one_host(world, isolated_environment):
    world.configure(isolated_environment / "config")
    lines = ok_lines(world.cli("scan-vms", hosts=["gpu1"]))
    assert lines[:3] == [
        "=== Pool A: 1 VM ===",
        f"UUID: {A1} | Name: a-one | Pool: A | Priority: high (2) | VM ID: 1 | ✓ Configured",
        "",
    ]
    assert not any(B1 in line or P1 in line or "Host:" in line for line in lines)  # elsewhere, not missing
    assert not any("missing" in line for line in lines)
    ok_lines(world.cli("scan-vms"))  # the whole fleet: where each VM is
    listed = ok_lines(world.cli("list-vms", hosts=["gpu2"]))
    assert listed == [f"UUID: {B1} | Name: b-one | Pool: B | Priority: low (0) | VM ID: 2", "", "1 VM"]


@pytest.mark.parametrize("words", [["remove-vm"], ["repair-vm"], ["set-pool", "--pool=A"]])
@pytest.mark.parametrize("scanned", [True, False], ids=["place-known", "never-seen"])
def test_a_run_narrowed_to_one_host_never_calls_another_hosts_vm_gone(world, isolated_environment, words, scanned):
    # b-one runs on gpu2; a run of gpu1 alone cannot tell whether it is gone or elsewhere: it must not
    # unregister it, nor tell the admin to. Where it was last seen, the refusal names that host, as a bulk
    # plan's row and show-vm do; never seen by a scan, it may be on any host the run leaves out.
    world.configure(isolated_environment / "config")
    if scanned:
        ok_lines(world.cli("scan-vms"))  # where each VM is, remembered
    command, *rest = words
    outcome = world.cli(command, f"--vm-uuid={B1}", *rest, hosts=["gpu1"], stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    if scanned:
        assert line.startswith(f"error: VM {B1} is on none of this run's hosts (gpu1); it was last seen on host gpu2, "
                               "which this run leaves out (--host), so it may still be there: run without --host, or "
                               "with --host gpu2"), line
    else:
        assert line.startswith(f"error: VM {B1} is on none of this run's hosts (gpu1); it may be on gpu2 or pool1, which "
                               "this run leaves out (--host): run without --host, or with --host naming its host"), line
    b_one_untouched(world)


def test_a_narrowed_scan_leaves_out_the_other_hosts_vms_needing_attention(world, isolated_environment):
    from vgpu import attention

    world.configure(isolated_environment / "config")
    with world.store() as store, store.writing() as conn:
        attention.mark(conn, B1, attention.NOT_RESTARTED, "it would not start again")  # b-one is on gpu2
    whole = ok_lines(world.cli("scan-vms"))
    assert "=== Needs attention: 1 ===" in whole and any("b-one" in line and B1 in line for line in whole)
    for command in ("scan-vms", "status"):
        narrowed = world.cli(command, hosts=["gpu1"]).out_lines
        assert not any(B1 in line or "(unnamed)" in line for line in narrowed), narrowed


# --- a host down -------------------------------------------------------------------------------------------


def test_a_host_going_down_mid_scan_is_reported_while_the_others_are_listed(world):
    ok_lines(world.cli("scan-vms"))  # where p1-web runs is remembered
    world.pools["pool1"].master.die_at("host.get_all_records")  # the master goes down part way through its listing
    outcome = world.cli("scan-vms")
    assert outcome.code == 1 and outcome.err == ""  # the scan did not see everything
    lines = outcome.out_lines
    assert lines[0].startswith("⚠ pool1 unreachable: host pool1: cannot reach the host: ")
    assert lines[0].endswith("; its registered VMs are shown from the database")
    assert line_of(lines, P1).endswith("| ? Host not reachable | Host: pool1 (unreachable)")
    assert line_of(lines, A1).endswith("| ✓ Configured | Host: gpu1")
    assert line_of(lines, U2).endswith("| Host: gpu2")
    status = world.cli("status")
    assert status.code == 0 and any(line.startswith("⚠ pool1 unreachable: ") for line in status.out_lines)
    assert f"  p1-web (UUID: {P1}) | Priority: medium | VM ID: 3 | Host: pool1 (unreachable)" in status.out_lines
    assert "Total VMs Unregistered: 2 (not counting pool1, which could not be listed)" in status.out_lines


def test_a_host_whose_listing_fails_with_an_error_is_not_called_unreachable(world):
    # gpu2 answers, with an internal error: its VMs could not be listed, but it is not "not reachable".
    ok_lines(world.cli("scan-vms"))  # b-one seen on gpu2
    world.sims["gpu2"].set_fault("list", "fail")
    outcome = world.cli("scan-vms")
    assert outcome.code == 1 and outcome.out_lines[0].startswith("⚠ gpu2 could not be listed: the host failed "), outcome
    assert line_of(outcome.out_lines, B1).endswith("| VM ID: 2 | ? Host could not be listed | Host: gpu2 (could not be listed)")
    assert line_of(outcome.out_lines, A1).endswith("| ✓ Configured | Host: gpu1")
    status = world.cli("status")
    assert f"  b-one (UUID: {B1}) | Priority: low | VM ID: 2 | Host: gpu2 (could not be listed)" in status.out_lines


def test_a_host_whose_password_is_not_set_was_not_asked_and_is_not_said_to_have_failed_its_listing(world, monkeypatch):
    # No VGPU_XAPI_PASSWORD and no terminal to ask at: pool1 is never contacted (a configuration problem), so
    # neither "unreachable" nor "could not be listed" (it answered with an error) is true of it.
    ok_lines(world.cli("scan-vms"))  # p1-web seen on pool1
    monkeypatch.delenv("VGPU_XAPI_PASSWORD")
    outcome = world.cli("scan-vms")
    assert outcome.code == 1 and outcome.out_lines[0].startswith("⚠ pool1 could not be asked: VGPU_XAPI_PASSWORD: not set"), outcome
    assert line_of(outcome.out_lines, P1).endswith("| VM ID: 3 | ? Host not asked | Host: pool1 (could not be asked)")
    assert line_of(outcome.out_lines, A1).endswith("| ✓ Configured | Host: gpu1")
    shown = world.cli("show-vm", f"--vm-uuid={P1}")
    assert shown.code == 0 and "Status: ? Host not asked" in shown.out_lines, shown  # as scan-vms says it
    assert any(line.startswith("Host: ⚠ cannot be asked (") and "VGPU_XAPI_PASSWORD: not set" in line for line in shown.out_lines)


def test_a_vm_last_seen_on_a_host_whose_listing_fails_and_listed_by_another_says_so(world):
    ok_lines(world.cli("scan-vms"))  # b-one seen on gpu2
    world.sims["gpu1"].add_vm(B1, "b-one", "halted", segment("B", 0, 2))
    world.sims["gpu2"].set_fault("list", "fail")
    lines = world.cli("scan-vms").out_lines
    assert line_of(lines, B1).endswith("| ? Host could not be listed | Host: gpu2 (could not be listed; listed by gpu1)")
    section = lines.index("=== Listed by another host while the host it was last seen on is down: 1 ===")
    assert lines[section + 1].startswith(f"UUID: {B1} | Name: b-one | Last seen: gpu2 (could not be listed) | Listed by: gpu1")


def test_every_per_vm_section_of_a_fleet_scan_ends_with_the_vms_host(world):
    ok_lines(world.cli("scan-vms"))  # where each VM is, remembered
    ok_lines(world.cli("register-vm", f"--vm-uuid={U2}"))  # running while registered: pending restart
    world.sims["gpu1"].set_device_model_args(A1, segment("B", 2, 1))  # drift
    world.sims["gpu2"].remove_vm(B1)  # missing, last seen on gpu2
    for command in ("scan-vms", "status"):
        lines = world.cli(command).out_lines

        def section(title):
            start = next(n for n, line in enumerate(lines) if line.startswith(f"=== {title}"))
            return lines[start + 1]

        assert section("Registered but missing from host").endswith("| Host: gpu2 (last seen)"), lines
        assert section("Device-model args differ from the database").endswith("| Host: gpu1"), lines
        assert section("Running with an older configuration").endswith("| Host: gpu2"), lines


def test_json_totals_name_the_hosts_they_leave_out(world):
    assert json.loads(world.cli("status", "--format=json").out)["uncounted_hosts"] == []
    world.sims["gpu2"].set_fault("unreachable", "on")
    data = json.loads(world.cli("status", "--format=json").out)
    assert data["host_error"] is None and data["uncounted_hosts"] == ["gpu2"]  # partial: gpu2's are not counted
    assert data["total_unregistered"] == 1


def test_json_of_a_vm_on_a_host_that_could_not_be_listed_says_its_segment_is_unknown(world):
    # gpu2 was not asked: b-one's args are unknown (null), not "no segment" (present false); a-one's host answered
    ok_lines(world.cli("scan-vms"))  # b-one seen on gpu2
    world.sims["gpu2"].set_fault("unreachable", "on")
    for command in ("scan-vms", "status"):
        entries = {e["vm"]["vm_uuid"]: e for e in json.loads(world.cli(command, "--format=json").out)["registered"]}
        assert (entries[B1]["state"], entries[B1]["host_vm"], entries[B1]["segment"]) == ("unknown", None, None), command
        assert entries[A1]["segment"]["present"] and entries[A1]["segment"]["config"]["vm_id"] == 1, command
    shown = json.loads(world.cli("show-vm", f"--vm-uuid={B1}", "--format=json").out)
    assert (shown["state"], shown["segment"], shown["booted"]) == ("unknown", None, None), shown


def test_every_host_down_is_still_an_error_for_scan_vms_and_a_database_panel_for_status(world):
    for sim in (world.sims["gpu1"], world.sims["gpu2"], world.pools["pool1"].sim):
        sim.set_fault("unreachable", "on")
    scanned = world.cli("scan-vms")
    assert scanned.code == 1
    line = scanned.one_error_line()  # every host that could not be listed is named, as status names them
    assert all(f"host {label}: cannot reach the host" in line for label in ("gpu1", "gpu2", "pool1")), line
    status = world.cli("status")
    assert status.code == 0 and status.out_lines[4].startswith("⚠ Host gpu1: cannot reach the host: ")  # each host's sentence, once
    assert status.out_lines[4].endswith("; showing the database only.") and "host gpu2: cannot reach the host: " in status.out_lines[4]


# --- a copy that may be left behind on a host that is down ----------------------------------------------------

TWIN = uuid_of(1, 77)  # registered on gpu1; a copy with its UUID turns up on gpu2


@pytest.fixture
def twin_left_behind(world):
    """TWIN registered and seen on gpu1; then a copy of it on gpu2, and gpu1 down: gpu2's copy is all that
    answers, and whether gpu1 still has the VM nobody can tell."""
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", segment("A", 1, 77))
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77"))
    world.sims["gpu2"].add_vm(TWIN, "twin", "running", segment("A", 1, 77))
    refused = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", stdin="yes\n")
    assert refused.code == 2 and "gpu1" in refused.err and "gpu2" in refused.err  # both up: the documented conflict
    world.sims["gpu1"].set_fault("unreachable", "on")
    return world


def test_a_scan_while_the_host_a_vm_was_seen_on_is_down_keeps_that_host_as_its_place(twin_left_behind):
    world = twin_left_behind
    assert world.cli("scan-vms").code == 1  # gpu1 could not be listed
    with world.store() as store:
        assert locations.where(store)[TWIN].host == "gpu1"  # not moved to gpu2: gpu1 may still have it


def test_a_scan_while_the_host_a_vm_was_seen_on_is_down_shows_it_there_not_reachable_and_names_the_copy(twin_left_behind):
    # As the change commands see it: the VM is gpu1's (which cannot be asked), not gpu2's copy, so it is not
    # shown as gpu2's VM with drift and a repair-vm that would then be refused; the copy is named, not dropped.
    world = twin_left_behind
    world.sims["gpu2"].set_device_model_args(TWIN, "")  # the copy differs: before, a drift line asked for repair-vm
    scanned = world.cli("scan-vms")
    assert scanned.code == 1, scanned
    line = line_of(scanned.out_lines, TWIN)
    assert line.endswith("| VM ID: 77 | ? Host not reachable | Host: gpu1 (unreachable; listed by gpu2)"), line
    assert "=== Device-model args differ from the database" not in scanned.out
    assert "=== Unregistered VMs: 1 ===" in scanned.out_lines and TWIN not in scanned.out.split("=== Unregistered VMs")[1].split("\n\n")[0]  # the copy is this registered VM, not an unregistered one
    section = scanned.out_lines.index("=== Listed by another host while the host it was last seen on is down: 1 ===")
    assert scanned.out_lines[section + 1] == (
        f"UUID: {TWIN} | Name: twin | Last seen: gpu1 (unreachable) | Listed by: gpu2 (twin, running) | "
        "Action: wait until gpu1 answers (changes to this VM are refused until then), or name the host you mean (--host gpu2)")
    entry = next(e for e in json.loads(world.cli("scan-vms", "--format=json").out)["registered"] if e["vm"]["vm_uuid"] == TWIN)
    assert (entry["host"], entry["state"], entry["host_vm"], entry["listed_elsewhere"]["host"]) == ("gpu1", "unknown", None, "gpu2")
    assert entry["segment"] is None  # gpu1 was not asked; the copy's args are not taken for the VM's
    status = world.cli("status")
    assert status.code == 0, status
    detail = next(s for s in status.out_lines if f"(UUID: {TWIN})" in s)
    assert detail.endswith("| VM ID: 77 | Host: gpu1 (unreachable; listed by gpu2)"), detail
    assert scanned.out_lines[section + 1] in status.out_lines


def test_show_vm_of_a_vm_whose_host_is_down_names_that_host_from_its_last_place(world):
    # b-one was last seen on gpu2, which is down now, and no other host lists it: one Host line naming gpu2
    # (where the database last saw it), and why it cannot be asked in Status, as troubleshooting.md shows it
    ok_lines(world.cli("scan-vms"))  # b-one seen on gpu2
    world.sims["gpu2"].set_fault("unreachable", "on")
    shown = world.cli("show-vm", f"--vm-uuid={B1}")
    assert shown.code == 0, shown
    assert [line for line in shown.out_lines if line.startswith("Host:")] == ["Host: gpu2"], shown.out
    assert ("Status: ? Host not reachable (cannot reach the host: the simulated host is switched off (fault 'unreachable'))"
            in shown.out_lines), shown.out
    data = json.loads(world.cli("show-vm", f"--vm-uuid={B1}", "--format=json").out)
    assert (data["host"], data["state"], data["host_vm"]) == ("gpu2", "unknown", None), data
    assert data["host_error"] == "cannot reach the host: the simulated host is switched off (fault 'unreachable')", data


def test_show_vm_while_the_host_a_vm_was_seen_on_is_down_shows_it_there_not_reachable_and_names_the_copy(twin_left_behind):
    world = twin_left_behind
    world.sims["gpu2"].set_device_model_args(TWIN, "")
    shown = world.cli("show-vm", f"--vm-uuid={TWIN}")
    assert shown.code == 0, shown
    assert [line for line in shown.out_lines if line.startswith("Host:")] == ["Host: gpu1"], shown.out  # one Host line
    assert ("Status: ? Host not reachable (cannot reach the host: the simulated host is switched off (fault 'unreachable'))"
            in shown.out_lines), shown.out
    assert ("Also listed by: gpu2 (running) - not changed until gpu1 answers, or name the host you mean (--host gpu2)"
            in shown.out_lines), shown.out
    assert not any(line.startswith(("Power state:", "Device-model args:")) for line in shown.out_lines), shown.out
    data = json.loads(world.cli("show-vm", f"--vm-uuid={TWIN}", "--format=json").out)
    assert (data["host"], data["state"], data["listed_elsewhere"]["host"], data["segment"]) == ("gpu1", "unknown", "gpu2", None)


@pytest.mark.parametrize("words", [
    ("set-priority", f"--vm-uuid={TWIN}", "--priority=high"),
    ("apply-vm", f"--vm-uuid={TWIN}"),
    ("repair-vm", f"--vm-uuid={TWIN}"),
    ("remove-vm", f"--vm-uuid={TWIN}"),
])
def test_a_change_is_refused_while_the_host_the_vm_was_last_seen_on_cannot_be_asked(twin_left_behind, words):
    world = twin_left_behind
    world.sims["gpu2"].set_device_model_args(TWIN, "-vnc :3 " + segment("A", 1, 77))  # repair-vm would have work
    world.cli("scan-vms")
    outcome = world.cli(*words, stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert f"VM {TWIN} is on host gpu2, but it was last seen on host gpu1, which could not be asked" in line, line
    assert "nothing was done" in line
    copy = world.sims["gpu2"].describe_vm(TWIN)
    assert (copy.power_state, copy.device_model_args) == (PowerState.RUNNING, "-vnc :3 " + segment("A", 1, 77))
    with world.store() as store:
        assert vms.get(store, TWIN).config.priority is Priority.MEDIUM
        assert journal.unfinished(store) == []


def test_a_vm_that_moved_off_a_host_that_answers_again_is_changed_where_it_is(twin_left_behind):
    world = twin_left_behind
    world.sims["gpu1"].remove_vm(TWIN)  # it had moved to gpu2: gpu1, back up, no longer has it
    world.sims["gpu1"].set_fault("unreachable", None)
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", stdin="yes\n")
    assert outcome.code == 0, outcome
    assert world.sims["gpu2"].describe_vm(TWIN).device_model_args == segment("A", 2, 77)


def test_a_vm_last_seen_on_a_host_that_is_up_is_changed_while_another_host_is_down(world):
    ok_lines(world.cli("scan-vms"))
    world.pools["pool1"].sim.set_fault("unreachable", "on")
    outcome = world.cli("set-priority", f"--vm-uuid={A1}", "--priority=low", stdin="yes\n")
    assert outcome.code == 0, outcome
    assert world.sims["gpu1"].describe_vm(A1).device_model_args == segment("A", 0, 1)


def test_naming_the_host_with_the_copy_changes_it_there(twin_left_behind, isolated_environment):
    world = twin_left_behind
    world.configure(isolated_environment / "config")
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", stdin="yes\n", hosts=["gpu2"])
    assert outcome.code == 0, outcome
    assert world.sims["gpu2"].describe_vm(TWIN).device_model_args == segment("A", 2, 77)


# --- a UUID seen on two hosts, one of them down since -----------------------------------------------------------


@pytest.fixture
def twin_seen_on_both(world):
    """TWIN registered on gpu1, a copy with the same UUID and args on gpu2, a scan that saw both (the
    conflict), then gpu2 down: gpu1's VM is all that answers, and gpu2 may still hold the copy."""
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77"))
    world.sims["gpu2"].add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    scanned = world.cli("scan-vms")
    assert line_of(scanned.out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2"), scanned
    world.sims["gpu2"].set_fault("unreachable", "on")
    return world


def test_a_scan_while_one_of_the_hosts_a_uuid_was_seen_on_is_down_does_not_show_the_other_copy_as_the_vm(twin_seen_on_both):
    world = twin_seen_on_both
    scanned = world.cli("scan-vms")
    assert scanned.code == 1, scanned
    line = line_of(scanned.out_lines, TWIN)
    assert line.endswith("| VM ID: 77 | ? Host not reachable | Host: gpu2 (unreachable; listed by gpu1)"), line
    world.sims["gpu2"].set_fault("unreachable", None)
    assert line_of(world.cli("scan-vms").out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2")  # still both


@pytest.mark.parametrize("words", [
    ("set-priority", f"--vm-uuid={TWIN}", "--priority=high"),
    ("apply-vm", f"--vm-uuid={TWIN}"),
    ("repair-vm", f"--vm-uuid={TWIN}"),
    ("remove-vm", f"--vm-uuid={TWIN}"),
])
def test_a_change_is_refused_while_another_host_the_uuid_was_seen_on_cannot_be_asked(twin_seen_on_both, words):
    world = twin_seen_on_both
    world.sims["gpu1"].set_device_model_args(TWIN, "-vnc :3")  # drift: repair-vm and apply-vm would have work
    outcome = world.cli(*words, stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert f"VM {TWIN} is on host gpu1, but it was last seen on host gpu2 too, which could not be asked" in line, line
    assert "nothing was done" in line
    assert world.sims["gpu1"].get_device_model_args(TWIN) == "-vnc :3"
    world.sims["gpu2"].set_fault("unreachable", None)
    assert world.sims["gpu2"].get_device_model_args(TWIN) == segment("A", 1, 77)
    with world.store() as store:
        assert vms.get(store, TWIN).config.priority is Priority.MEDIUM
        assert journal.unfinished(store) == []


def test_once_the_copy_is_gone_from_the_host_that_was_down_the_vm_is_changed_where_it_is(twin_seen_on_both):
    world = twin_seen_on_both
    world.sims["gpu2"].remove_vm(TWIN)
    world.sims["gpu2"].set_fault("unreachable", None)
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", stdin="yes\n")
    assert outcome.code == 0, outcome
    assert "priority=2" in world.sims["gpu1"].get_device_model_args(TWIN)
    ok_lines(world.cli("scan-vms"))  # gpu2 answered without it: the copy is forgotten
    world.sims["gpu2"].set_fault("unreachable", "on")
    assert world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=low", stdin="yes\n").code == 0


# --- copies a schema 3 database could not remember ----------------------------------------------------------


def as_of_schema_3(world) -> None:
    """The database as vgpu-admin with schema 3 left it: one host per UUID (vgpu_locations), no copies."""
    import sqlite3

    conn = sqlite3.connect(world.db, isolation_level=None)
    for table in ("vgpu_location_copies", "vgpu_copies_unknown", "vgpu_copies_known_on", "vgpu_host_identities"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("PRAGMA user_version = 3")
    conn.close()


@pytest.fixture
def twin_seen_by_schema_3(world):
    """TWIN on gpu1 and gpu2, the conflict reported by a scan of schema 3 (which kept gpu1 alone), the database
    upgraded, then gpu2 down: that gpu2 holds a copy is in no table."""
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77"))
    world.sims["gpu2"].add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    assert line_of(world.cli("scan-vms").out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2")
    as_of_schema_3(world)
    world.sims["gpu2"].set_fault("unreachable", "on")
    return world


def refused_until_a_full_scan(world, uuid: str) -> str:
    outcome = world.cli("set-priority", f"--vm-uuid={uuid}", "--priority=low", stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert f"VM {uuid} is on host gpu1, but host gpu2 could not be asked whether it has a copy" in line, line
    assert "run 'vgpu-admin scan-vms' once every host answers" in line and "nothing was done" in line, line
    with world.store() as store:
        assert journal.unfinished(store) == [] and vms.get(store, uuid).config.priority is not Priority.LOW
    return line


def test_after_upgrading_from_schema_3_a_change_is_refused_while_a_host_that_may_hold_a_copy_is_down(twin_seen_by_schema_3):
    world = twin_seen_by_schema_3
    refused_until_a_full_scan(world, TWIN)
    refused_until_a_full_scan(world, A1)  # any VM: which UUIDs have copies is not known at all
    assert world.cli("scan-vms").code == 1  # gpu2 still down: the copies are not known yet
    refused_until_a_full_scan(world, A1)
    world.sims["gpu2"].set_fault("unreachable", None)
    assert line_of(world.cli("scan-vms").out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2")
    world.sims["gpu2"].set_fault("unreachable", "on")  # every host answered that scan: the copies are known
    assert world.cli("set-priority", f"--vm-uuid={A1}", "--priority=low", stdin="yes\n").code == 0
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=low", stdin="yes\n")
    assert outcome.code == 1 and "it was last seen on host gpu2 too, which could not be asked" in outcome.one_error_line()


def test_after_upgrading_from_schema_3_a_bulk_plan_holds_back_rows_while_a_host_is_down(twin_seen_by_schema_3):
    from vgpu import bulk
    from vgpu.errors import InvalidRows
    from vgpu.hosts import open_fleet

    world = twin_seen_by_schema_3
    with world.store() as store, open_fleet(world.uris) as fleet:
        with pytest.raises(InvalidRows) as caught:
            bulk.plan_many(store, fleet, [{"vm_uuid": TWIN, "priority": "low"}])
    assert "host gpu2 could not be asked whether it has a copy" in str(caught.value), caught.value


def test_a_schema_3_database_of_one_host_has_no_copies_to_learn(tmp_path):
    from .clikit import SpecHost, run

    spec = SpecHost(tmp_path)
    assert run(["scan-vms", *spec.flags]).code == 0
    conn = __import__("sqlite3").connect(spec.db, isolation_level=None)
    for table in ("vgpu_location_copies", "vgpu_copies_unknown", "vgpu_copies_known_on", "vgpu_host_identities"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    assert run(["list-vms", *spec.flags]).code == 0
    conn = __import__("sqlite3").connect(spec.db, isolation_level=None)
    assert conn.execute("SELECT COUNT(*) FROM vgpu_locations").fetchone()[0] == 0  # a single host keeps no places
    if "vgpu_copies_unknown" in {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}:
        assert conn.execute("SELECT COUNT(*) FROM vgpu_copies_unknown").fetchone()[0] == 0
    conn.close()



def drop_copies_and_repair(world) -> None:
    """vgpu_location_copies dropped (by hand, or another tool) and created again, empty, by repair-db."""
    import sqlite3

    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("DROP TABLE vgpu_location_copies")
    conn.close()
    assert world.cli("repair-db").code == 0


def test_repair_db_creating_the_copies_table_again_forgets_which_hosts_copies_were_learnt(world):
    """The hosts a scan learnt (vgpu_copies_known_on) vouch for copies vgpu_location_copies recorded: once
    repair-db created that table again, empty, none is known, so a change while gpu2 (which holds a copy) is
    down is refused, not made on gpu1 alone."""
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77"))
    world.sims["gpu2"].add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    drop_copies_and_repair(world)
    assert line_of(world.cli("scan-vms").out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2")
    drop_copies_and_repair(world)  # the copy on gpu2 recorded nowhere again
    with world.store() as store, store.reading() as conn:
        assert locations.copies_unknown(conn) and locations.copies_unknown_on(conn, ["gpu1", "gpu2"]) == ("gpu1", "gpu2")
    world.sims["gpu2"].set_fault("unreachable", "on")
    refused_until_a_full_scan(world, TWIN)
    world.sims["gpu2"].set_fault("unreachable", None)
    assert world.sims["gpu2"].get_device_model_args(TWIN) == world.sims["gpu1"].get_device_model_args(TWIN)


@pytest.fixture
def learnt_on_gpu3_since_taken_out(world):
    """After an upgrade from schema 3, a scan of gpu1, gpu2 and gpu3 learnt their copies (TWIN on gpu1 and
    gpu3); gpu3 was then taken out of the run and gpu4 put in: the world, the new run's --host words, gpu4."""
    from vgpu.hypervisor.sim import SimHost

    gpu3, gpu4 = (SimHost(world.tmp_path / f"gpu{n}.json") for n in (3, 4))
    first = [f"{label}={world.uris[label]}" for label in ("gpu1", "gpu2")] + [f"gpu3=sim:{gpu3.path}"]
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77", hosts=first))
    gpu3.add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    as_of_schema_3(world)
    assert line_of(world.cli("scan-vms", hosts=first).out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu3")
    return world, [*first[:2], f"gpu4=sim:{gpu4.path}"], gpu4


def test_a_learnt_host_taken_out_of_the_run_does_not_keep_a_scan_from_learning_the_new_hosts(learnt_on_gpu3_since_taken_out):
    """Learning the hosts a scan asked is sound whether or not a host learnt before is in its run: every UUID
    a host of the run lists is recorded on it, and copies recorded on a host the run lacks are kept. So gpu4,
    asked by a scan every host of its run answered, is known: a change of a1 while gpu4 is down goes ahead."""
    world, run, gpu4 = learnt_on_gpu3_since_taken_out
    assert world.cli("scan-vms", hosts=run).code == 0
    with world.store() as store, store.reading() as conn:
        assert locations.copies_unknown_on(conn, ["gpu1", "gpu2", "gpu3", "gpu4"]) == ()
    gpu4.set_fault("unreachable", "on")
    outcome = world.cli("set-priority", f"--vm-uuid={A1}", "--priority=low", hosts=run, stdin="yes\n")
    assert outcome.code == 0, outcome


def test_a_vm_with_a_copy_on_a_learnt_host_taken_out_of_the_run_is_still_refused(learnt_on_gpu3_since_taken_out):
    world, run, _ = learnt_on_gpu3_since_taken_out
    assert world.cli("scan-vms", hosts=run).code == 0  # learns gpu4; the copy recorded on gpu3 is kept
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=low", hosts=run, stdin="yes\n")
    assert outcome.code == 1, outcome
    assert "it was last seen on host gpu3 too, which is not one of this run's configured hosts" in outcome.one_error_line()
    assert "priority=1" in world.sims["gpu1"].get_device_model_args(TWIN)


# --- a copy on a host the run leaves out ---------------------------------------------------------------------


@pytest.fixture
def twin_configured_on_both(world, isolated_environment):
    """The fleet in [hosts]; TWIN registered on gpu1, a copy with its UUID and args on gpu2, and a scan of
    every host that saw both (gpu2 remembered as holding a copy)."""
    world.configure(isolated_environment / "config")
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77", hosts=[]))
    world.sims["gpu2"].add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    scanned = world.cli("scan-vms", hosts=[])
    assert line_of(scanned.out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu2"), scanned
    with world.store() as store:
        assert locations.hosts_of(store, TWIN) == ("gpu1", "gpu2")
    return world


def take_out_of_config(isolated_environment, *labels: str) -> None:
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    kept = [line for line in config.read_text().splitlines() if not line.startswith(tuple(f"{label} " for label in labels))]
    config.write_text("\n".join(kept) + "\n")


def test_a_scan_narrowed_by_host_keeps_the_copy_on_a_host_it_left_out(twin_configured_on_both):
    world = twin_configured_on_both
    for command in ("scan-vms", "status"):
        assert world.cli(command, hosts=["gpu1"]).code == 0  # gpu2 is up, but this run does not list it
        with world.store() as store:
            assert locations.hosts_of(store, TWIN) == ("gpu1", "gpu2")
    world.sims["gpu2"].set_fault("unreachable", "on")
    world.sims["gpu1"].set_device_model_args(TWIN, "")  # apply-vm would have work on gpu1's copy
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", hosts=[], stdin="yes\n")
    assert outcome.code == 1, outcome
    assert "it was last seen on host gpu2 too, which could not be asked" in outcome.one_error_line()
    with world.store() as store:
        assert vms.get(store, TWIN).config.priority is Priority.MEDIUM


def test_a_scan_with_a_host_taken_out_of_the_config_keeps_the_copies_on_it(twin_configured_on_both, isolated_environment):
    world = twin_configured_on_both
    take_out_of_config(isolated_environment, "gpu2")
    for command in ("scan-vms", "status"):
        assert world.cli(command, hosts=[]).code == 0
        with world.store() as store:
            assert locations.hosts_of(store, TWIN) == ("gpu1", "gpu2")


def test_a_scan_forgets_a_copy_only_on_a_host_that_answered_without_it(twin_configured_on_both):
    world = twin_configured_on_both
    world.sims["gpu2"].remove_vm(TWIN)
    ok_lines(world.cli("scan-vms", hosts=["gpu1"]))  # gpu2 left out: not asked, so not forgotten
    with world.store() as store:
        assert locations.hosts_of(store, TWIN) == ("gpu1", "gpu2")
    ok_lines(world.cli("scan-vms", hosts=[]))
    with world.store() as store:
        assert locations.hosts_of(store, TWIN) == ("gpu1",)


@pytest.mark.parametrize("taken_out", [("gpu2",), ("gpu2", "pool1")])  # several hosts left, or one
@pytest.mark.parametrize("words", [
    ("set-priority", f"--vm-uuid={TWIN}", "--priority=high"),
    ("apply-vm", f"--vm-uuid={TWIN}"),
    ("remove-vm", f"--vm-uuid={TWIN}"),
])
def test_a_change_is_refused_while_a_copy_is_recorded_on_a_host_taken_out_of_the_config(
        twin_configured_on_both, isolated_environment, taken_out, words):
    world = twin_configured_on_both
    take_out_of_config(isolated_environment, *taken_out)
    world.sims["gpu1"].set_device_model_args(TWIN, "")  # apply-vm would have work
    outcome = world.cli(*words, hosts=[], stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert (f"VM {TWIN} is on host gpu1, but it was last seen on host gpu2 too, which is not one of this run's "
            "configured hosts") in line, line
    assert "nothing was done" in line and "--host gpu2=URI" in line, line
    assert world.sims["gpu1"].get_device_model_args(TWIN) == ""
    with world.store() as store:
        assert vms.get(store, TWIN).config.priority is Priority.MEDIUM and journal.unfinished(store) == []


def test_a_change_is_refused_while_a_copy_is_recorded_on_a_host_the_run_leaves_out(twin_configured_on_both):
    world = twin_configured_on_both
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", hosts=["gpu1", "pool1"], stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert (f"VM {TWIN} is on host gpu1, but it was last seen on host gpu2 too, which this run leaves out (--host)"
            in line), line
    assert "Run without --host" in line and "nothing was done" in line, line
    with world.store() as store:
        assert vms.get(store, TWIN).config.priority is Priority.MEDIUM and journal.unfinished(store) == []
    # naming the one host you mean is how to act on that copy alone (docs/fleet.md)
    assert world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", hosts=["gpu1"], stdin="yes\n").code == 0
    assert world.sims["gpu2"].get_device_model_args(TWIN) == segment("A", 1, 77)


def test_a_bulk_plan_holds_back_a_row_whose_copy_is_recorded_on_a_host_outside_the_run(twin_configured_on_both):
    from vgpu import bulk
    from vgpu.errors import InvalidRows
    from vgpu.hosts import open_fleet

    world = twin_configured_on_both
    run = {label: uri for label, uri in world.uris.items() if label != "gpu2"}
    for elsewhere, words in (((), "which is not one of this run's configured hosts"), (("gpu2",), "which this run leaves out (--host)")):
        with world.store() as store, open_fleet(run, elsewhere=elsewhere) as fleet:
            with pytest.raises(InvalidRows) as caught:
                bulk.plan_many(store, fleet, [{"vm_uuid": TWIN, "priority": "high"}, {"vm_uuid": A1, "priority": "low"}])
        assert len(caught.value.problems) == 1, caught.value
        assert f"VM {TWIN} is on host gpu1, but it was last seen on host gpu2 too, {words}" in str(caught.value), caught.value


# --- a host taken out of the configuration ---------------------------------------------------------------------


@pytest.fixture
def gpu2_taken_out(world, isolated_environment):
    """The fleet configured with every host, b-one seen on gpu2, then gpu2 taken out of [hosts]."""
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))  # the configured fleet: where each VM is, remembered
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("gpu2 ")) + "\n")
    return world


def test_a_vm_last_seen_on_a_host_no_longer_configured_is_not_called_gone(gpu2_taken_out):
    world = gpu2_taken_out
    for command in ("scan-vms", "status"):
        outcome = world.cli(command, hosts=[])
        assert outcome.code == 0, outcome
        assert not any("Not on host" in line or "remove-vm" in line or "missing" in line.lower() for line in outcome.out_lines), outcome.out
        assert not any(B1 in line for line in outcome.out_lines), outcome.out  # on a host not in this run, as --host leaves it out
    shown = world.cli("show-vm", f"--vm-uuid={B1}", hosts=[])
    assert "Not on host" not in shown.out and "gpu2" in shown.out, shown


@pytest.mark.parametrize("words", [["remove-vm"], ["repair-vm"], ["set-pool", "--pool=A"]])
def test_a_vm_last_seen_on_a_host_no_longer_configured_is_neither_unregistered_nor_changed(gpu2_taken_out, words):
    world = gpu2_taken_out
    command, *rest = words
    outcome = world.cli(command, f"--vm-uuid={B1}", *rest, hosts=[], stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert line.startswith(f"error: VM {B1} is on none of this run's hosts (gpu1, pool1); it was last seen on host gpu2, "
                           "which is not one of this run's configured hosts"), line
    b_one_untouched(world)
    assert world.cli("register-vm", f"--vm-uuid={U1}", "--vm-id=2", hosts=[]).code == 2  # b-one keeps its vm_id


@pytest.mark.parametrize("words", [["remove-vm"], ["repair-vm"], ["set-pool", "--pool=A"], ["apply-vm"]])
@pytest.mark.parametrize("narrowed", ["gpu1", "pool1"])
def test_a_run_narrowed_by_host_names_the_unconfigured_host_a_vm_was_last_seen_on(gpu2_taken_out, words, narrowed):
    # --host LABEL leaves pool1 (or gpu1) out too, but b-one was last seen on gpu2, which is in no [hosts]:
    # the refusal names gpu2, as the run of every configured host and a bulk plan do, not the host left out
    world = gpu2_taken_out
    command, *rest = words
    outcome = world.cli(command, f"--vm-uuid={B1}", *rest, hosts=[narrowed], stdin="yes\n")
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert line.startswith(f"error: VM {B1} is on none of this run's hosts ({narrowed}); it was last seen on host gpu2, "
                           "which is not one of this run's configured hosts"), line
    b_one_untouched(world)



def _only_gpu1_configured(world, isolated_environment):
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("pool1 ")) + "\n")


@pytest.mark.parametrize("single", [False, True], ids=["fleet", "one-configured-host"])
def test_show_vm_of_a_vm_last_seen_on_a_host_no_longer_configured_names_that_host_and_why(gpu2_taken_out, isolated_environment, single):
    world = gpu2_taken_out
    if single:
        _only_gpu1_configured(world, isolated_environment)
    shown = world.cli("show-vm", f"--vm-uuid={B1}", hosts=[])
    assert shown.code == 0, shown
    assert [line for line in shown.out_lines if line.startswith("Host:")] == ["Host: gpu2"], shown.out  # one, as for a host that is down
    assert shown.out_lines[2] == "Host: gpu2", shown.out
    status = next(line for line in shown.out_lines if line.startswith("Status:"))
    assert status.startswith(f"Status: ? Host not configured (VM {B1} is on none of this run's hosts ("), status
    assert "it was last seen on host gpu2, which is not one of this run's configured hosts" in status, status
    assert "not reachable" not in shown.out, shown.out
    data = json.loads(world.cli("show-vm", f"--vm-uuid={B1}", "--format=json", hosts=[]).out)
    assert (data["host"], data["state"], data["not_asked"], data["segment"]) == ("gpu2", "unknown", "not_configured", None)


def test_show_vm_of_a_vm_last_seen_on_a_host_the_run_leaves_out_names_that_host_and_why(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))  # where each VM is, remembered
    shown = world.cli("show-vm", f"--vm-uuid={B1}", hosts=["gpu1"])
    assert shown.code == 0, shown
    assert [line for line in shown.out_lines if line.startswith("Host:")] == ["Host: gpu2"], shown.out
    status = next(line for line in shown.out_lines if line.startswith("Status:"))
    assert status == (f"Status: ? Host left out by --host (VM {B1} is on none of this run's hosts (gpu1); it was last "
                      "seen on host gpu2, which this run leaves out (--host), so it may still be there: run without "
                      "--host, or with --host gpu2)"), status
    data = json.loads(world.cli("show-vm", f"--vm-uuid={B1}", "--format=json", hosts=["gpu1"]).out)
    assert (data["host"], data["state"], data["not_asked"], data["segment"]) == ("gpu2", "unknown", "left_out", None)


def test_scan_and_status_say_how_many_registered_vms_a_host_taken_out_of_the_config_hides(gpu2_taken_out):
    world = gpu2_taken_out
    hint = "1 registered VM last seen on gpu2 (not configured) is not shown; 'vgpu-admin list-vms' lists it"
    for command in ("scan-vms", "status"):
        lines = ok_lines(world.cli(command, hosts=[]))
        assert lines.count(hint) == 1, lines
        assert lines[lines.index(hint) - 1] == ""
    data = json.loads(world.cli("scan-vms", "--format=json", hosts=[]).out)
    assert data["elsewhere"] == 1
    assert data["not_shown"] == [{"host": "gpu2", "vm_count": 1, "reason": "not_configured"}]


def test_scan_and_status_say_how_many_registered_vms_a_run_narrowed_by_host_leaves_out(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))  # where each VM is, remembered
    hint = "2 registered VMs last seen on gpu2, pool1 (left out by --host) are not shown; 'vgpu-admin list-vms' lists them"
    for command in ("scan-vms", "status"):
        assert ok_lines(world.cli(command, hosts=["gpu1"]))[-2:] == ["", hint]
    data = json.loads(world.cli("status", "--format=json", hosts=["gpu1"]).out)
    assert [(e["host"], e["vm_count"], e["reason"]) for e in data["not_shown"]] == [("gpu2", 1, "left_out"), ("pool1", 1, "left_out")]


@pytest.mark.parametrize("chosen_by", ["config", "environment"])
def test_a_run_narrowed_by_the_config_or_vgpu_host_says_so_not_host_flag(world, isolated_environment, monkeypatch, chosen_by):
    # no --host was given: the words name what narrowed the run, and their advice can be followed
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))  # b-one seen on gpu2
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    if chosen_by == "config":
        config.write_text('host = "gpu1"\n' + config.read_text())
        by, undo = f"host = in {config}", f"take host = out of {config}"
    else:
        monkeypatch.setenv("VGPU_HOST", "gpu1")
        by, undo = "VGPU_HOST", "unset VGPU_HOST"
    for command in ("scan-vms", "status"):  # plain list-vms is narrowed as this run is: the hint says what lists them
        lines = ok_lines(world.cli(command, hosts=[]))
        assert lines[-1] == (f"2 registered VMs last seen on gpu2, pool1 (left out by {by}) are not shown; "
                             f"'vgpu-admin list-vms --host gpu2 --host pool1' lists them, or 'vgpu-admin list-vms' once "
                             f"you {undo}"), lines
    assert B1 not in world.cli("list-vms", hosts=[]).out
    assert B1 in world.cli("list-vms", hosts=["gpu2", "pool1"]).out  # what the hint says lists them
    refused = world.cli("set-pool", f"--vm-uuid={B1}", "--pool=A", hosts=[], stdin="yes\n")
    assert refused.code == 1, refused
    assert refused.one_error_line() == (f"error: VM {B1} is on none of this run's hosts (gpu1); it was last seen on host "
                                        f"gpu2, which this run leaves out ({by}), so it may still be there: run with "
                                        f"--host gpu2, or {undo}"), refused
    shown = world.cli("show-vm", f"--vm-uuid={B1}", hosts=[])
    assert any(line.startswith(f"Status: ? Host left out by {by} (") for line in shown.out_lines), shown.out
    assert "--host)" not in shown.out and "without --host" not in shown.out, shown.out


def test_vms_of_a_host_not_configured_hidden_by_vgpu_host_are_listed_once_it_is_unset(gpu2_taken_out, monkeypatch):
    world = gpu2_taken_out  # --host gpu2 would be refused: gpu2 is in no [hosts]
    monkeypatch.setenv("VGPU_HOST", "gpu1")
    lines = ok_lines(world.cli("status", hosts=[]))
    assert lines[-1] == ("2 registered VMs are not shown: 1 last seen on gpu2 (not configured), 1 last seen on pool1 "
                         "(left out by VGPU_HOST); 'vgpu-admin list-vms' lists them once you unset VGPU_HOST"), lines


def test_registered_vms_hidden_for_several_reasons_are_told_apart_in_one_line(gpu2_taken_out):
    world = gpu2_taken_out
    lines = ok_lines(world.cli("scan-vms", hosts=["gpu1"]))
    assert lines[-1] == ("2 registered VMs are not shown: 1 last seen on gpu2 (not configured), 1 last seen on pool1 "
                         "(left out by --host); 'vgpu-admin list-vms' lists them"), lines


def test_a_narrowed_scan_does_not_call_a_vm_gone_from_its_host_missing_while_it_may_be_on_a_host_left_out(
        world, isolated_environment):
    # a-one moved from gpu1 to gpu2, host side. A run of gpu1 alone cannot tell moved from gone: show-vm and
    # remove-vm say it may be on a host the run leaves out, so the scan must neither call it missing nor advise
    # remove-vm (which that run refuses); it is left out, as a VM with no known host is, and counted
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))  # a-one seen on gpu1
    gpu1, gpu2 = world.sims["gpu1"], world.sims["gpu2"]
    gpu2.add_vm(A1, "a-one", "halted", "", gpu1.platform(A1))
    gpu1.remove_vm(A1)
    for command in ("scan-vms", "status"):
        lines = ok_lines(world.cli(command, hosts=["gpu1"]))
        assert not any(A1 in line for line in lines), lines
        assert not any("missing" in line.lower() or "Not on host" in line for line in lines), lines
        assert lines[-1] == ("3 registered VMs are not shown: 2 last seen on gpu2, pool1 (left out by --host), 1 with no "
                             "known host (left out by --host); 'vgpu-admin list-vms' lists them"), lines
    data = json.loads(world.cli("scan-vms", "--format=json", hosts=["gpu1"]).out)
    assert {"host": "", "vm_count": 1, "reason": "left_out"} in data["not_shown"], data["not_shown"]
    shown = world.cli("show-vm", f"--vm-uuid={A1}", hosts=["gpu1"])
    assert any(line.startswith("Status: ? Host left out by --host (") for line in shown.out_lines), shown.out
    # the whole fleet finds it where it is now
    assert "Host: gpu2" in line_of(ok_lines(world.cli("scan-vms", hosts=[])), A1)


def test_a_scan_of_every_host_says_nothing_of_vms_not_shown(world):
    for command in ("scan-vms", "status"):
        assert not any("not shown" in line for line in ok_lines(world.cli(command)))
    assert json.loads(world.cli("scan-vms", "--format=json").out)["not_shown"] == []


def test_one_host_named_by_its_uri_alone_keeps_no_places_and_still_calls_a_vm_it_lacks_missing(gpu2_taken_out, tmp_path):
    from vgpu.hypervisor.sim import SimHost

    world = gpu2_taken_out
    lone = SimHost(tmp_path / "lone.json")
    scanned = world.cli("scan-vms", hosts=[f"sim:{lone.path}"])
    assert line_of(scanned.out_lines, B1).endswith("| VM ID: 2 | ⚠ Not on host"), scanned.out

# --- XAPI pools: migration, conflicts ------------------------------------------------------------------------


def test_a_vm_migrating_inside_a_pool_between_scans_is_the_same_vm(world):
    before = ok_lines(world.cli("scan-vms"))
    world.pools["pool1"].place(P1, "xcp-a3")  # a live migration inside the pool
    after = ok_lines(world.cli("scan-vms"))
    assert line_of(after, P1) == line_of(before, P1).replace("pool1 (xcp-a2)", "pool1 (xcp-a3)")
    assert len(after) == len(before) and sum(P1 in line for line in after) == 1  # no duplicate, no drift
    with world.store() as store:
        assert locations.where(store)[P1].resident_on == "xcp-a3"


def test_the_same_uuid_in_two_pools_is_a_conflict_never_merged(tmp_path, monkeypatch):
    with fleet_world(tmp_path, monkeypatch, pools=2) as world:
        populate(world)
        world.pools["pool2"].sim.add_vm(P1, "p1-web-copy", "halted", segment("A", 1, 3))  # a cross-pool copy
        lines = world.cli("scan-vms").out_lines
        assert line_of(lines, P1).endswith("| VM ID: 3 | ⚠ On 2 hosts | Host: pool1 (xcp-a2), pool2")
        assert "  Medium Priority: 1 VM (p1-web (⚠ On 2 hosts))" in ok_lines(world.cli("status"))  # as in the table
        header = lines.index("=== Same UUID on several hosts: 1 ===")
        assert lines[header + 1] == (
            f"UUID: {P1} | Hosts: pool1 (p1-web, running), pool2 (p1-web-copy, halted) | Registered: p1-web | "
            "Action: keep one copy (remove or re-create the other); commands on this VM are refused until then")
        data = json.loads(world.cli("status", "--format=json").out)
        (entry,) = [e for e in data["registered"] if e["vm"]["vm_uuid"] == P1]
        assert entry["state"] == "conflict" and entry["conflict"] == ["pool1", "pool2"]
        # two copies, each with its own args (data["conflicts"]): neither is taken for its segment, nor is "none"
        assert (entry["host_vm"], entry["segment"]) == (None, None)
        for words in (["set-pool", f"--vm-uuid={P1}", "--pool=B"], ["show-vm", f"--vm-uuid={P1}"],
                      ["repair-vm", f"--vm-uuid={P1}"]):
            refused = world.cli(*words, stdin="yes\n")
            assert refused.code == 2, refused
            assert refused.one_error_line() == (
                f"error: VM {P1} is on 2 hosts of the fleet, pool1 and pool2 (the same UUID twice, as after a copy "
                "between pools); vgpu-admin will not choose one: remove or re-create one copy, or name the host "
                "with --host LABEL")
        assert world.pools["pool1"].sim.power_state(P1) is PowerState.RUNNING  # nothing was touched


CLONE_X = uuid_of(9, 1)  # an unregistered VM copied to a second host, UUID and all


def test_an_unregistered_uuid_on_two_hosts_is_one_vm_shown_as_a_conflict_and_counted_once(world):
    world.sims["gpu1"].add_vm(CLONE_X, "clone-x", "running", "")
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", "")
    lines = ok_lines(world.cli("scan-vms"))
    assert "=== Unregistered VMs: 3 ===" in lines  # spare-1, spare-2 and clone-x once
    assert [line for line in lines if line.startswith(f"UUID: {CLONE_X} | Name:")] == [
        f"UUID: {CLONE_X} | Name: clone-x | Status: ⚠ On 2 hosts | Action: keep one copy (remove or re-create the "
        "other), then run 'vgpu-admin register-vm' | Host: gpu1, gpu2"]
    header = lines.index("=== Same UUID on several hosts: 1 ===")  # each copy is still shown there
    assert lines[header + 1].startswith(f"UUID: {CLONE_X} | Hosts: gpu1 (clone-x, running), gpu2 (clone-x, halted) | Not registered")
    status = ok_lines(world.cli("status"))
    assert ("  clone-x (⚠ On 2 hosts), spare-1, spare-2 (not registered - will default to Pool A if registered "
            "without --pool)") in status  # marked in the names list as in the table
    assert "Total VMs Unregistered: 3" in status and "Total VMs in System: 6" in status
    data = json.loads(world.cli("status", "--format=json").out)
    assert (data["total_unregistered"], data["total_in_system"]) == (3, 6)
    assert [h["uuid"] for h in data["unregistered"]].count(CLONE_X) == 1
    assert [c["vm_uuid"] for c in data["conflicts"]] == [CLONE_X]


def test_an_unregistered_uuid_seen_on_two_hosts_one_of_them_down_since_says_so_and_not_to_register_it(world):
    world.sims["gpu1"].add_vm(CLONE_X, "clone-x", "halted", "")
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", "")
    ok_lines(world.cli("scan-vms"))  # both copies remembered
    world.sims["gpu2"].set_fault("unreachable", "on")
    scanned = world.cli("scan-vms")
    assert scanned.code == 1, scanned
    assert line_of(scanned.out_lines, CLONE_X) == (
        f"UUID: {CLONE_X} | Name: clone-x | Status: ⚠ Not registered | Action: wait until gpu2 answers (registering "
        "it is refused until then), or name the host you mean (--host gpu1) | Host: gpu2 (unreachable; listed by gpu1)")
    data = json.loads(world.cli("scan-vms", "--format=json").out)
    assert data["unregistered_down"] == [{"vm_uuid": CLONE_X, "host": "gpu2", "listed_by": "gpu1"}]
    refused = world.cli("register-vm", f"--vm-uuid={CLONE_X}")
    assert refused.code == 1 and "last seen on host gpu2 too, which could not be asked" in refused.err, refused
    spare = line_of(scanned.out_lines, U1)  # an unregistered VM seen on one host alone is as before
    assert spare.endswith(f"| Status: ⚠ Not registered | {REGISTER_HINT} | Host: gpu1"), spare


def test_a_scans_records_show_an_unregistered_uuid_on_two_hosts_once_with_both_hosts(world):
    from vgpu import scan
    from vgpu.hosts import open_fleet

    world.sims["gpu1"].add_vm(CLONE_X, "clone-x", "running", "")
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", "")
    with world.store() as store, open_fleet(world.uris) as fleet:
        report = scan.scan(store, fleet)
    assert [h.uuid for h in report.unregistered].count(CLONE_X) == 1 and report.total_unregistered == 3
    (record,) = [r for r in report.records() if r["vm_uuid"] == CLONE_X]
    assert (record["host"], record["state"]) == ("gpu1, gpu2", "unregistered, on 2 hosts")


def _carrying_section(lines):
    header = next(index for index, line in enumerate(lines) if line.startswith("=== Unregistered VMs carrying a vgpu segment"))
    end = next((index for index in range(header + 1, len(lines)) if not lines[index]), len(lines))
    return lines[header], lines[header + 1:end]


KEEP_ONE_THEN_REPAIR = (f"Action: keep one copy (remove or re-create the other), then run 'vgpu-admin repair-vm "
                        f"--vm-uuid={CLONE_X}' to clear it, or register it")


def test_an_unregistered_uuid_on_two_hosts_carrying_a_segment_is_one_line_that_says_keep_one_copy(world):
    world.sims["gpu1"].add_vm(CLONE_X, "clone-x", "halted", segment("A", 2, 1))  # a-one's vm_id: a clone, copied twice
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", segment("A", 2, 1))
    header, section = _carrying_section(ok_lines(world.cli("scan-vms")))
    assert header == "=== Unregistered VMs carrying a vgpu segment: 1 ==="
    assert section == [
        f"UUID: {CLONE_X} | Name: clone-x | Carries: pool=A;priority=2;vm_id=1 (vm_id of a-one, {A1}: a clone?) | "
        f"Status: ⚠ On 2 hosts | {KEEP_ONE_THEN_REPAIR} | Host: gpu1, gpu2"]
    # the action works in its order: repair-vm is refused while both copies are there, and clears the kept one
    assert world.cli("repair-vm", f"--vm-uuid={CLONE_X}", stdin="yes\n").code == 2
    world.sims["gpu2"].remove_vm(CLONE_X)
    ok_lines(world.cli("repair-vm", f"--vm-uuid={CLONE_X}", stdin="yes\n"))
    assert "=== Unregistered VMs carrying a vgpu segment" not in "\n".join(ok_lines(world.cli("scan-vms")))


def test_copies_of_one_uuid_carrying_different_segments_are_one_line_saying_what_each_host_has(world):
    world.sims["gpu1"].add_vm(CLONE_X, "clone-x", "halted", segment("B", 0, 40))
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", "")
    header, section = _carrying_section(ok_lines(world.cli("scan-vms")))
    assert header == "=== Unregistered VMs carrying a vgpu segment: 1 ==="
    assert section == [
        f"UUID: {CLONE_X} | Name: clone-x | Carries: gpu1: pool=B;priority=0;vm_id=40; gpu2: no segment | "
        f"Status: ⚠ On 2 hosts | {KEEP_ONE_THEN_REPAIR} | Host: gpu1, gpu2"]


def test_in_a_fleet_an_unregistered_vm_carrying_a_segment_names_its_host(world):
    world.sims["gpu2"].add_vm(CLONE_X, "clone-x", "halted", segment("B", 0, 40))
    _, section = _carrying_section(ok_lines(world.cli("scan-vms")))
    assert section == [f"UUID: {CLONE_X} | Name: clone-x | Carries: pool=B;priority=0;vm_id=40 | Action: Run "
                       f"'vgpu-admin repair-vm --vm-uuid={CLONE_X}' to clear it, or register it | Host: gpu2"]


# --- one database: vm_id unique across the fleet -------------------------------------------------------------


def test_register_vm_finds_the_vms_host_and_a_vm_id_used_on_another_host_is_refused(world):
    registered = world.cli("register-vm", f"--vm-uuid={U1}", "--vm-id=7")
    assert registered.code == 0, registered
    assert "vm_id=7" in world.sims["gpu1"].get_device_model_args(U1)
    clash = world.cli("register-vm", f"--vm-uuid={U2}", "--vm-id=7")
    assert clash.code == 2 and clash.one_error_line() == f"error: vm_id 7 is already used by VM spare-1 ({U1})"
    assert world.sims["gpu2"].get_device_model_args(U2) == ""
    assert world.cli("set-vm-id", f"--vm-uuid={B1}", "--vm-id=7", stdin="yes\n").code == 2
    with world.store() as store:
        assert vms.get(store, B1).vm_id == 2 and locations.where(store)[U1].host == "gpu1"


def test_a_change_finds_the_vms_host_and_its_journal_row_names_it(world):
    changed = world.cli("set-pool", f"--vm-uuid={B1}", "--pool=A", stdin="yes\n")
    assert changed.code == 0, changed
    assert "pool=A" in world.sims["gpu2"].get_device_model_args(B1)
    with world.store() as store, store.reading() as conn:
        assert conn.execute("SELECT host, outcome FROM vgpu_operations").fetchall() == [("gpu2", "done")]


# --- recover goes to the right host --------------------------------------------------------------------------


class _InterruptedStart:
    """A host whose start is interrupted (Ctrl-C while the VM boots): the change is left to recover."""

    def __init__(self, host):
        self._host = host

    def __getattr__(self, name):
        return getattr(self._host, name)

    def start(self, vm_uuid):
        raise KeyboardInterrupt


def test_recover_takes_an_operation_to_the_host_it_was_made_on(world, isolated_environment):
    world.configure(isolated_environment / "config")
    gpu1, gpu2 = world.sims["gpu1"], world.sims["gpu2"]
    gpu2.start(B1)
    with world.store() as store:
        fleet = Fleet({"gpu1": gpu1, "gpu2": _InterruptedStart(gpu2)})
        with pytest.raises(KeyboardInterrupt):
            lifecycle.reconfigure_vm(store, fleet, B1, pool="A", confirm=lambda plan: True)
        (op,) = journal.unfinished(store)
    assert (op.host, op.step, gpu2.power_state(B1)) == ("gpu2", journal.STARTING, PowerState.HALTED)
    gpu1.add_vm(B1, "b-one-copy", "halted", "")  # a copy on gpu1: by UUID alone, the fleet could not choose

    narrowed = world.cli("recover", hosts=["gpu1"])
    assert narrowed.code == 1
    assert narrowed.out_lines == [
        f"reconfigure of VM {B1} (stopped at step starting): other-host - it was made on host gpu2 of the fleet, "
        "and this run has gpu1; run 'vgpu-admin recover' with that host (--host gpu2, or the whole fleet)"]
    assert gpu2.power_state(B1) is PowerState.HALTED and gpu1.get_device_model_args(B1) == ""

    done = world.cli("recover")
    assert done.code == 0, done
    assert "finished - the new configuration is in place and the VM was started with it" in done.out
    assert gpu2.power_state(B1) is PowerState.RUNNING and "pool=A" in gpu2.booted_device_model_args(B1)
    assert gpu1.power_state(B1) is PowerState.HALTED and gpu1.get_device_model_args(B1) == ""


def test_recover_of_an_operation_of_a_host_taken_out_of_the_configuration_asks_for_its_uri(world, isolated_environment):
    world.configure(isolated_environment / "config")
    gpu2 = world.sims["gpu2"]
    gpu2.start(B1)
    with world.store() as store:
        fleet = Fleet({"gpu1": world.sims["gpu1"], "gpu2": _InterruptedStart(gpu2)})
        with pytest.raises(KeyboardInterrupt):
            lifecycle.reconfigure_vm(store, fleet, B1, pool="A", confirm=lambda plan: True)
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("gpu2 ")) + "\n")
    left = world.cli("recover", hosts=[])
    assert left.code == 1
    assert left.out_lines == [
        f"reconfigure of VM {B1} (stopped at step starting): other-host - it was made on host gpu2 of the fleet, "
        "and this run has gpu1, pool1; gpu2 is not one of this run's configured hosts (not in [hosts], nor given by "
        "--host): run 'vgpu-admin recover' with that host given again (in [hosts], or --host gpu2=URI)"]
    assert world.cli("recover", hosts=["gpu2"]).one_error_line().startswith("error: --host: unknown host 'gpu2'")  # as it says
    assert world.cli("recover", hosts=["gpu1", f"gpu2={world.uris['gpu2']}"]).code == 0  # as it advises


def test_recover_names_the_host_it_could_not_reach(world):
    gpu2 = world.sims["gpu2"]
    gpu2.start(B1)
    with world.store() as store:
        fleet = Fleet({"gpu1": world.sims["gpu1"], "gpu2": _InterruptedStart(gpu2)})
        with pytest.raises(KeyboardInterrupt):
            lifecycle.reconfigure_vm(store, fleet, B1, pool="A", confirm=lambda plan: True)
    gpu2.set_fault("unreachable", "on")
    failed = world.cli("recover")
    assert failed.code == 1
    assert failed.out_lines == [
        f"reconfigure of VM {B1} (stopped at step starting): failed - host gpu2: cannot reach the host: "
        "the simulated host is switched off (fault 'unreachable')"]
    (shown,) = json.loads(world.cli("recover", "--format=json").out)
    assert shown["detail"].startswith("host gpu2: cannot reach the host: ")
    with world.store() as store:
        assert [op.vm_uuid for op in journal.unfinished(store)] == [B1]  # left for the next recover


# --- round trips ------------------------------------------------------------------------------------------


def test_host_calls_per_scan_are_constant_per_host_whatever_the_vm_count(world):
    pool = world.pools["pool1"]

    def calls_of_a_scan() -> dict[str, int]:
        pool.master.calls.clear()
        ok_lines(world.cli("scan-vms"))
        return dict(pool.master.calls)

    few = calls_of_a_scan()
    pool.sim.add_vms([(uuid_of(5, n), f"more-{n}", "running", "") for n in range(100, 140)])
    assert calls_of_a_scan() == few == {"session.login_with_password": 1, "VM.get_all_records": 1,
                                        "host.get_all_records": 1, "session.logout": 1}


def test_show_vm_finds_the_vm_on_its_host_and_names_it(world):
    shown = ok_lines(world.cli("show-vm", f"--vm-uuid={B1}"))
    assert shown[:3] == ["VM: b-one", f"UUID: {B1}", "Host: gpu2"] and "Power state: halted" in shown
    data = json.loads(world.cli("show-vm", f"--vm-uuid={B1}", "--format=json").out)
    assert (data["host"], data["host_vm"]["host"]) == ("gpu2", "gpu2")


def test_notebook_records_of_a_scan_carry_the_host(world):
    from vgpu import scan
    from vgpu.hosts import open_fleet

    with world.store() as store, open_fleet(world.uris) as fleet:
        records = scan.scan(store, fleet).records()
    assert [(r["vm_name"], r["host"], r["resident_on"]) for r in records] == [
        ("a-one", "gpu1", None), ("p1-web", "pool1", "xcp-a2"), ("b-one", "gpu2", None),
        ("spare-1", "gpu1", None), ("spare-2", "gpu2", None)]


def test_the_shells_completion_names_keep_the_other_hosts_vms_when_one_is_down(world):
    from shell import names

    from vgpu.hosts import open_fleet

    world.sims["gpu2"].set_fault("unreachable", "on")
    with world.store() as store, open_fleet(world.uris) as fleet:
        cache = names.build(store, fleet)
    assert [vm.name for vm in cache.unregistered] == ["spare-1"]  # gpu1's; gpu2's cannot be listed
    assert not cache.host_ok and all("not on the host" not in vm.meta for vm in cache.registered)


def test_the_shells_completion_names_do_not_call_a_vm_on_a_host_left_out_not_on_the_host(world, isolated_environment):
    # a run of gpu1 alone did not ask gpu2 or pool1: their VMs may well be there (scan-vms leaves them out)
    import vgpu
    from shell import names

    from .test_completer import complete

    world.configure(isolated_environment / "config")
    with vgpu.connect(host="gpu1") as conn:
        cache = names.build(conn.store, conn.host)
    assert [(vm.name, vm.meta) for vm in cache.registered] == [
        ("a-one", "a-one · Pool A"), ("p1-web", "p1-web · Pool A"), ("b-one", "b-one · Pool B")]
    (found,) = complete("set-pool --vm-uuid=b-o", names=lambda: cache)
    assert found.display_meta_text == "b-one · Pool B"
    world.sims["gpu2"].remove_vm(B1)  # gone: the whole fleet, every host answering, says so
    with vgpu.connect() as conn:
        whole = names.build(conn.store, conn.host)
    assert next(vm.meta for vm in whole.registered if vm.uuid == B1) == "b-one · Pool B, not on the host"


def test_the_shells_refusal_of_host_on_a_line_names_the_one_label_the_run_was_given(world, isolated_environment):
    # as it names a run of two labels ("gpu1,pool1"), not the host's URI
    from .clikit import run_process

    world.configure(isolated_environment / "config")
    for hosts, named in ((["gpu1"], "gpu1"), (["gpu1", "pool1"], "gpu1,pool1")):
        flags = ["--db", str(world.db), *(word for label in hosts for word in ("--host", label))]
        outcome = run_process(flags, stdin="list-vms --host gpu2\n")  # the lines of a pipe, as the shell reads them
        assert outcome.code == 2, outcome
        assert outcome.err.startswith(f"error: --host is chosen when the shell starts, and this one uses {named}; "), outcome


def test_the_shells_completion_names_do_not_call_a_vm_on_a_host_taken_out_of_the_config_not_on_the_host(gpu2_taken_out):
    # b-one was last seen on gpu2, which this run does not have: not asked, so not known to be gone (scan-vms leaves
    # it out); a VM no configured host lists, though it was last seen on one of them, still is marked
    import vgpu
    from shell import names

    world = gpu2_taken_out
    world.sims["gpu1"].remove_vm(A1)
    with vgpu.connect() as conn:
        cache = names.build(conn.store, conn.host, conn.settings.configured_labels)
    metas = {vm.name: vm.meta for vm in cache.registered}
    assert (metas["b-one"], metas["a-one"]) == ("b-one · Pool B", "a-one · Pool A, not on the host"), metas


def test_the_shells_toolbar_names_the_hosts_that_are_down_not_the_whole_fleet(world):
    from shell import names, repl

    from vgpu.hosts import open_fleet

    def toolbar() -> str:
        with world.store() as store, open_fleet(world.uris) as fleet:
            cache = names.build(store, fleet)
        return repl.toolbar("/db", "gpu1,gpu2,pool1", cache, refreshing=False).split(" | ")[1]

    assert toolbar() == "Host: gpu1,gpu2,pool1"
    world.sims["gpu2"].set_fault("unreachable", "on")
    assert toolbar() == "Host: gpu1,gpu2,pool1 (gpu2 unreachable)"
    world.sims["gpu1"].set_fault("unreachable", "on")
    assert toolbar() == "Host: gpu1,gpu2,pool1 (gpu1, gpu2 unreachable)"


def test_a_host_that_refuses_the_login_is_named_as_such_while_the_others_are_listed(world, monkeypatch):
    monkeypatch.setenv("VGPU_XAPI_PASSWORD", "not-the-pools-password")
    outcome = world.cli("scan-vms")
    assert outcome.code == 1
    assert outcome.out_lines[0] == ("⚠ pool1 could not be listed: the host refused the login for user root: wrong user "
                                    "name or password; its registered VMs are shown from the database")
    assert line_of(outcome.out_lines, A1).endswith("| ✓ Configured | Host: gpu1")
    assert "not-the-pools-password" not in outcome.out + outcome.err


def test_one_xapi_host_with_no_password_to_use_is_still_the_callers_error(tmp_path, monkeypatch):
    from vgpu import scan
    from vgpu.errors import ConfigError
    from vgpu.hypervisor.xapi import XapiHost

    with fleet_world(tmp_path, monkeypatch, pools=1) as world, world.store() as store:
        monkeypatch.delenv("VGPU_XAPI_PASSWORD")
        host = XapiHost.from_uri(world.pools["pool1"].uri())  # no prompt either
        with pytest.raises(ConfigError, match="VGPU_XAPI_PASSWORD: not set"):
            scan.status(store, host)  # a setting, not a host that is down: raised, as before fleets


def test_a_scan_without_a_host_taken_out_of_the_config_does_not_learn_the_copies(twin_seen_by_schema_3, isolated_environment):
    """A scan every configured host answered, but with gpu2 taken out of [hosts], never asked gpu2: after an
    upgrade from schema 3, which hosts hold copies is still not known, so a change of TWIN while gpu2 (back in
    the configuration) is down stays refused."""
    world = twin_seen_by_schema_3
    world.configure(isolated_environment / "config")
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    every_host = config.read_text()
    config.write_text("\n".join(line for line in every_host.splitlines() if not line.startswith("gpu2 ")) + "\n")
    assert world.cli("scan-vms", hosts=[]).code == 0  # gpu1 and pool1 answered: gpu2 was not asked
    config.write_text(every_host)
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=low", hosts=[], stdin="yes\n")
    assert outcome.code == 1, outcome
    assert "host gpu2 could not be asked whether it has a copy" in outcome.one_error_line(), outcome


@pytest.mark.parametrize("labels", [("gpu1", "gpu2", "pool1"), ("gpu1",)], ids=["several hosts", "one host"])
def test_a_host_holding_only_a_copy_is_asked_before_its_copies_are_known(world, labels):
    """gpu3 holds nothing but a copy of TWIN, so after an upgrade from schema 3 no table names it (it is nobody's
    last place, and ran no operation). A scan every host of its run (the fleet without gpu3) answered never asked
    it: once gpu3 is given again and is down, a change of TWIN (on gpu1) is refused, not made on gpu1 alone. A
    scan that gpu3 answered too records the copy."""
    from vgpu.hypervisor.sim import SimHost

    gpu3 = SimHost(world.tmp_path / "gpu3.json")
    fleet = [f"{label}={world.uris[label]}" for label in labels]
    with_gpu3 = [*fleet, f"gpu3=sim:{gpu3.path}"]
    world.sims["gpu1"].add_vm(TWIN, "twin", "halted", "")
    ok_lines(world.cli("register-vm", f"--vm-uuid={TWIN}", "--vm-id=77", hosts=with_gpu3))
    gpu3.add_vm(TWIN, "twin", "halted", world.sims["gpu1"].get_device_model_args(TWIN))
    assert line_of(world.cli("scan-vms", hosts=with_gpu3).out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu3")
    as_of_schema_3(world)
    assert world.cli("scan-vms", hosts=fleet).code == 0  # every host of the run answered: gpu3 was not asked
    gpu3.set_fault("unreachable", "on")
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", hosts=with_gpu3, stdin="yes\n")
    assert outcome.code == 1, outcome
    assert "host gpu3 could not be asked whether it has a copy" in outcome.one_error_line(), outcome
    gpu3.set_fault("unreachable", None)
    assert "priority=1" in gpu3.get_device_model_args(TWIN) and "priority=1" in world.sims["gpu1"].get_device_model_args(TWIN)
    assert line_of(world.cli("scan-vms", hosts=with_gpu3).out_lines, TWIN).endswith("| ⚠ On 2 hosts | Host: gpu1, gpu3")
    gpu3.set_fault("unreachable", "on")  # the copy is known now: refused as one
    outcome = world.cli("set-priority", f"--vm-uuid={TWIN}", "--priority=high", hosts=with_gpu3, stdin="yes\n")
    assert outcome.code == 1 and "it was last seen on host gpu3 too, which could not be asked" in outcome.one_error_line()
    assert world.cli("set-priority", f"--vm-uuid={A1}", "--priority=low", hosts=with_gpu3, stdin="yes\n").code == 0



@pytest.mark.parametrize("outside", ["taken out of [hosts]", "left out by --host"])
def test_a_scan_shows_a_vm_with_a_copy_on_a_host_outside_the_run_as_its_commands_see_it(twin_configured_on_both, isolated_environment,
                                                                                       outside):
    """TWIN (registered) and CLONE_X (not) were seen on gpu1 and gpu2; gpu2 is then outside the run. Their commands
    are refused (a copy may be on gpu2), so the scan does not call TWIN Configured nor tell to register CLONE_X:
    each line names gpu2, why it was not asked, and the refusal's advice."""
    world = twin_configured_on_both
    for label in ("gpu1", "gpu2"):
        world.sims[label].add_vm(CLONE_X, "clone-x", "halted", "")
    ok_lines(world.cli("scan-vms", hosts=[]))  # both copies remembered
    if outside == "taken out of [hosts]":
        take_out_of_config(isolated_environment, "gpu2")
        hosts, why = [], "not configured"
        advice = "give that host again (in [hosts], or --host gpu2=URI beside the others) to ask it, or, if it is gone for good, 'vgpu-admin forget-host gpu2'"
    else:
        hosts, why = ["gpu1", "pool1"], "left out by --host"
        advice = "run without --host (or with --host gpu2 as well) to ask it, or name the one host you mean (--host gpu1)"
    for command in ("scan-vms", "status"):
        lines = world.cli(command, hosts=hosts).out_lines
        if command == "scan-vms":
            assert line_of(lines, TWIN).endswith(f"| VM ID: 77 | ? Host {why} | Host: gpu2 ({why}; listed by gpu1)"), lines
            assert (f"UUID: {TWIN} | Name: twin | Last seen: gpu2 ({why}) | Listed by: gpu1 (twin, halted) | Action: changes "
                    f"to this VM are refused until gpu2 is asked: {advice}") in lines, lines
        assert not any(line.startswith(f"UUID: {TWIN}") and "✓ Configured" in line for line in lines), lines
        assert any(f"{TWIN}" in line and line.endswith(f"| Host: gpu2 ({why}; listed by gpu1)") for line in lines), lines
        if command == "scan-vms":
            assert line_of(lines, CLONE_X) == (
                f"UUID: {CLONE_X} | Name: clone-x | Status: ⚠ Not registered | Action: registering it is refused until "
                f"gpu2 is asked: {advice} | Host: gpu2 ({why}; listed by gpu1)"), lines
    data = json.loads(world.cli("scan-vms", "--format=json", hosts=hosts).out)
    reason = "not_configured" if hosts == [] else "left_out"
    assert data["last_seen_outside"] == [
        {"vm_uuid": uuid, "host": "gpu2", "listed_by": "gpu1", "reason": reason, "advice": advice[0].upper() + advice[1:]}
        for uuid in (TWIN, CLONE_X)]
    twin = next(entry for entry in data["registered"] if entry["vm"]["vm_uuid"] == TWIN)
    assert (twin["state"], twin["host"], twin["not_asked"], twin["listed_elsewhere"]["host"]) == ("unknown", "gpu2", reason, "gpu1")
    assert twin["segment"] is None  # gpu2 was not asked; gpu1's copy is not taken for the VM
    refused = world.cli("register-vm", f"--vm-uuid={CLONE_X}", hosts=hosts)
    assert refused.code == 1 and "last seen on host gpu2 too" in refused.err, refused


def test_a_scan_of_the_one_host_the_run_names_shows_its_copy_as_the_one_meant(twin_configured_on_both):
    """A run of gpu1 alone (--host gpu1) is how an admin names the copy they mean: its changes go through, so
    its scan shows TWIN on gpu1 as ever."""
    world = twin_configured_on_both
    world.sims["gpu1"].set_device_model_args(TWIN, world.sims["gpu2"].get_device_model_args(TWIN))
    lines = world.cli("scan-vms", hosts=["gpu1"]).out_lines
    assert line_of(lines, TWIN).endswith("| VM ID: 77 | ✓ Configured (halted)"), lines


def test_list_vms_of_a_host_given_by_its_uri_alone_beside_a_config_lists_the_database(world, isolated_environment, tmp_path):
    # A host named by a URI that no [hosts] entry has is one host without a label: as for one host without a
    # config, list-vms lists the database; it was taken for a narrowing to the label "" and listed nothing.
    from vgpu.hypervisor.sim import SimHost

    world.configure(isolated_environment / "config")
    other = SimHost(tmp_path / "other.json")
    ok_lines(world.cli("scan-vms"))
    listed = ok_lines(world.cli("list-vms", hosts=[f"sim:{other.path}"]))
    assert listed[-1] == "3 VMs" and any(line.startswith(f"UUID: {A1} |") for line in listed), listed

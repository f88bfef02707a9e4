"""Where a fleet's VMs were last seen, kept right as hosts are renamed and VMs move.

- One host under two labels (a label renamed, or two configs naming one URI differently) is one host: the
  database remembers each label's host identity (its URI as the "same URI; keep one" check spells it, without
  credentials), and a remembered label whose identity is one of the run's hosts is taken for that host, its
  rows moved under the run's label, instead of a phantom copy that locks the VM out of every change.
- A change that finds a VM moved records its new place (and forgets a copy on a host that answered without it).
- register-vm of a UUID no host of the run lists names the hosts it may be on, as repair-vm does.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from vgpu import locations, vms
from vgpu.models import Priority, Registration

from .fleetkit import fleet_world, ok_lines, segment, uuid_of

R1 = uuid_of(2, 1)  # on the second host (gpu2 to config A, gpu3 to config B): registered
A1 = uuid_of(1, 1)  # on gpu1: registered


@pytest.fixture
def world(tmp_path, monkeypatch):
    with fleet_world(tmp_path, monkeypatch) as made:
        made.sims["gpu1"].add_vm(A1, "a-one", "running", segment("A", 2, 1))
        made.sims["gpu2"].add_vm(R1, "r-one", "running", "")
        with made.store() as store:
            vms.db_register_many(store, [Registration(A1, "a-one", "A", Priority.HIGH, 1)])
        yield made


def config_a(world) -> list[str]:
    return [f"gpu1={world.uris['gpu1']}", f"gpu2={world.uris['gpu2']}"]


def config_b(world) -> list[str]:
    """The same two hosts, the second under another label (a rename, or another admin's config)."""
    return [f"gpu1={world.uris['gpu1']}", f"gpu3={world.uris['gpu2']}"]


def rows(world, table: str) -> list[tuple]:
    conn = sqlite3.connect(world.db)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        conn.close()


def places(world) -> list[tuple[str, str]]:
    return [(uuid, host) for uuid, host, *_ in rows(world, "vgpu_locations")]


def set_priority(world, hosts: list[str], priority: str):
    return world.cli("set-priority", f"--vm-uuid={R1}", f"--priority={priority}", stdin="yes\n", hosts=hosts)


def test_a_host_under_a_new_label_is_the_same_host_not_a_second_copy(world):
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    ok_lines(world.cli("scan-vms", hosts=config_b(world)))
    assert places(world) == sorted([(A1, "gpu1"), (R1, "gpu3")])
    assert rows(world, "vgpu_location_copies") == []  # no phantom copy under the old label
    assert set_priority(world, config_a(world), "high").code == 0
    assert set_priority(world, config_b(world), "low").code == 0
    assert "priority=0" in world.sims["gpu2"].get_device_model_args(R1)
    assert rows(world, "vgpu_location_copies") == []


def test_the_label_identity_is_the_uri_without_credentials(world):
    ok_lines(world.cli("scan-vms", hosts=config_a(world)))
    identities = dict(rows(world, "vgpu_host_identities"))
    assert identities == {label: f"sim:{os.path.realpath(world.sims[label].path)}" for label in ("gpu1", "gpu2")}


def test_a_label_whose_identity_is_unknown_is_still_refused(world):
    """Rows from before the upgrade do not say which host a label was: a host it may have been is not guessed."""
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("DELETE FROM vgpu_host_identities")
    conn.close()
    assert world.cli("scan-vms", hosts=config_b(world)).code == 0
    refused = set_priority(world, config_b(world), "high")
    assert refused.code == 1, refused
    assert "it was last seen on host gpu2 too, which is not one of this run's configured hosts" in refused.one_error_line()


def test_forget_host_forgets_the_labels_identity_and_learnt_copies(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("INSERT INTO vgpu_copies_known_on (host) VALUES ('gpu2')")
    conn.close()
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("gpu2 ")) + "\n")
    ok_lines(world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[]))
    assert rows(world, "vgpu_copies_known_on") == []
    assert "gpu2" not in dict(rows(world, "vgpu_host_identities"))


def test_forget_host_forgets_a_label_remembered_only_as_a_host_whose_copies_are_known(world, isolated_environment):
    world.configure(isolated_environment / "config")
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("INSERT INTO vgpu_copies_known_on (host) VALUES ('gpu9')")
    conn.close()
    ok_lines(world.cli("forget-host", "gpu9", stdin="yes\n", hosts=[]))
    assert rows(world, "vgpu_copies_known_on") == []


# --- a change that finds the VM moved ------------------------------------------------------------------------


@pytest.fixture
def moved(world):
    """A1 registered on gpu1, then moved host-side to gpu2."""
    ok_lines(world.cli("scan-vms"))
    gpu1, gpu2 = world.sims["gpu1"], world.sims["gpu2"]
    gpu2.add_vm(A1, "a-one", "halted", "", gpu1.platform(A1))
    gpu1.remove_vm(A1)
    return world


def test_a_change_that_finds_a_vm_moved_records_its_new_host(moved):
    world = moved
    assert world.cli("set-pool", f"--vm-uuid={A1}", "--pool=B", stdin="yes\n").code == 0
    assert (A1, "gpu2") in places(world)
    world.sims["gpu1"].set_fault("unreachable", "1")  # it said it had no such VM: no copy is left there
    outcome = world.cli("set-pool", f"--vm-uuid={A1}", "--pool=A", stdin="yes\n")
    assert outcome.code == 0, outcome


def test_a_change_forgets_a_copy_on_a_host_that_answered_without_it(moved):
    world = moved
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("INSERT INTO vgpu_location_copies (vm_uuid, host) VALUES (?, 'gpu2')", (A1,))
    conn.close()
    assert world.cli("set-pool", f"--vm-uuid={A1}", "--pool=B", stdin="yes\n").code == 0
    assert (A1, "gpu2") in places(world)
    assert rows(world, "vgpu_location_copies") == []
    with world.store() as store:
        assert locations.hosts_of(store, A1) == ("gpu2",)


def test_a_bulk_change_that_finds_a_vm_moved_records_its_new_host(moved):
    from vgpu import bulk
    from vgpu.hosts import open_fleet

    world = moved
    with world.store() as store, open_fleet(world.uris) as fleet:
        result = bulk.apply_many(store, fleet, bulk.plan_many(store, fleet, [{"vm_uuid": A1, "pool": "B"}]))
    assert result.ok, result
    assert (A1, "gpu2") in places(world)
    assert rows(world, "vgpu_location_copies") == []  # gpu1 listed without it: no copy is left there


def test_a_change_made_on_one_host_by_name_keeps_the_copy_on_the_host_it_left_out(world, isolated_environment):
    """A run of one host (--host gpu2) is how an admin names the copy they mean: the copy on gpu1, which it did
    not ask, stays remembered, so a change while gpu1 is down is still refused."""
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))
    world.sims["gpu2"].add_vm(A1, "a-one", "halted", "", world.sims["gpu1"].platform(A1))
    outcome = world.cli("set-pool", f"--vm-uuid={A1}", "--pool=B", stdin="yes\n", hosts=["gpu2"])
    assert outcome.code == 0, outcome
    assert (A1, "gpu2") in places(world) and (A1, "gpu1") in rows(world, "vgpu_location_copies")
    world.sims["gpu1"].set_fault("unreachable", "1")
    refused = world.cli("set-pool", f"--vm-uuid={A1}", "--pool=A", stdin="yes\n", hosts=[])
    assert refused.code == 1 and "it was last seen on host gpu1 too, which could not be asked" in refused.one_error_line()


# --- register-vm of a UUID no host of the run lists -----------------------------------------------------------


def test_register_vm_of_a_vm_on_a_host_left_out_names_that_host(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("scan-vms", hosts=[]))
    outcome = world.cli("register-vm", f"--vm-uuid={R1}", hosts=["gpu1"])
    assert outcome.code == 1, outcome
    line = outcome.one_error_line()
    assert "it was last seen on host gpu2, which this run leaves out (--host)" in line, line
    assert "the host has no such VM" not in line
    with world.store() as store:
        assert vms.find(store, R1) is None


def test_register_vm_of_a_uuid_no_host_of_the_fleet_has_says_so(world):
    unknown = uuid_of(9, 9)
    outcome = world.cli("register-vm", f"--vm-uuid={unknown}")
    assert outcome.code == 2, outcome
    assert f"VM {unknown} does not exist on any host of the fleet (gpu1, gpu2)" in outcome.one_error_line()


# --- a label whose host changed, and one host under two labels in one run -------------------------------------

T1 = uuid_of(1, 5)  # a halted VM on gpu1, registered, with a copy (same args) on gpu3


def third_host(world):
    from vgpu.hypervisor.sim import SimHost

    return SimHost(world.tmp_path / "gpu3.json")


def apart(world, label: str) -> str:
    """The label the rows remembered under ``label`` are kept apart under once it names another host."""
    return f"{label}@sim:{os.path.realpath(world.sims[label].path)}"


def test_a_label_reused_for_another_host_keeps_the_old_hosts_vms_apart(world):
    """gpu2 now names gpu3's URI: R1, last seen on the old gpu2 (still running there), is on a host this run does
    not configure, so remove-vm must not take it for gone and free its vm_id."""
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    reused = [f"gpu1={world.uris['gpu1']}", f"gpu2=sim:{third_host(world).path}"]
    scanned = world.cli("scan-vms", hosts=reused)
    assert scanned.code == 0, scanned
    assert f"last seen on {apart(world, 'gpu2')} (not configured) is not shown" in scanned.out, scanned.out
    refused = world.cli("remove-vm", f"--vm-uuid={R1}", stdin="yes\n", hosts=reused)
    assert refused.code == 1, refused
    assert f"it was last seen on host {apart(world, 'gpu2')}, which is not one of this run's configured hosts" \
        in refused.one_error_line()
    assert "give that host again (its URI sim:" in refused.one_error_line()  # no --host gpu2@…=URI: no such label
    with world.store() as store:
        assert vms.find(store, R1) is not None
    identities = dict(rows(world, "vgpu_host_identities"))
    assert identities[apart(world, "gpu2")] == apart(world, "gpu2").split("@", 1)[1]
    assert identities["gpu2"] == f"sim:{os.path.realpath(third_host(world).path)}"


def test_a_label_given_another_hosts_uri_is_that_host_and_its_own_vms_stay_apart(world):
    """Only gpu2 = gpu1's URI: gpu1's VMs are gpu2's now, R1 (the old gpu2's) is not merged in and called missing."""
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    ok_lines(world.cli("scan-vms", hosts=config_a(world)))
    relabelled = [f"gpu2={world.uris['gpu1']}"]
    assert world.cli("scan-vms", hosts=relabelled).code == 0
    assert places(world) == sorted([(A1, "gpu2"), (R1, apart(world, "gpu2"))])
    refused = world.cli("remove-vm", f"--vm-uuid={R1}", stdin="yes\n", hosts=relabelled)
    assert refused.code == 1, refused


def test_forget_host_of_a_label_renamed_in_the_config_is_refused_as_not_remembered(world, isolated_environment):
    """gpu2 renamed gpu3 (same URI): gpu2 is that configured host, not a host retired for good."""
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=[]))
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text(config.read_text().replace("gpu2 = ", "gpu3 = "))
    refused = world.cli("forget-host", "gpu2", stdin="yes\n", hosts=[])
    assert refused.code == 2, refused
    assert "host 'gpu2' is not remembered by the database" in refused.one_error_line()
    assert (R1, "gpu3") in places(world)
    from vgpu import config as vgpu_config

    with world.store() as store:
        assert "gpu2" not in locations.forgettable(store, vgpu_config.load().configured_uris)


def test_a_label_reused_after_an_upgrade_from_schema_3_is_not_a_learnt_host(world):
    """gpu2 (learnt) now names gpu3, which holds a copy and is down: the new gpu2 was never asked, so a change of
    the VM on gpu1 alone is refused."""
    gpu3 = third_host(world)
    world.sims["gpu1"].add_vm(T1, "twin", "halted", segment("A", 0, 77))
    with world.store() as store:
        vms.db_register_many(store, [Registration(T1, "twin", "A", Priority.LOW, 77)])
    conn = sqlite3.connect(world.db, isolation_level=None)
    conn.execute("INSERT INTO vgpu_copies_unknown (since) VALUES ('2026-01-01')")
    conn.close()
    ok_lines(world.cli("scan-vms", hosts=config_a(world)))
    assert [host for (host,) in rows(world, "vgpu_copies_known_on")] == ["gpu1", "gpu2"]
    gpu3.add_vm(T1, "twin", "halted", "", world.sims["gpu1"].platform(T1))
    gpu3.set_fault("unreachable", "1")
    reused = [f"gpu1={world.uris['gpu1']}", f"gpu2=sim:{gpu3.path}"]
    refused = world.cli("set-priority", f"--vm-uuid={T1}", "--priority=high", stdin="yes\n", hosts=reused)
    assert refused.code == 1, refused
    assert "priority=0" in world.sims["gpu1"].get_device_model_args(T1)


def test_one_uri_under_a_run_label_and_a_configured_label_left_out_is_one_host(world, isolated_environment):
    world.configure(isolated_environment / "config")
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text(config.read_text().replace("gpu2 = ", "gpu3 = "))
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=[]))
    assert (R1, "gpu3") in places(world)
    scanned = world.cli("scan-vms", hosts=["gpu1", f"gpu2={world.uris['gpu2']}"])
    assert scanned.code == 0, scanned
    line = next(line for line in scanned.out_lines if R1 in line)
    assert "left out" not in line and line.endswith("| Host: gpu2"), line
    assert (R1, "gpu2") in places(world)


def test_two_labels_swapping_their_uris_keep_each_hosts_vms_and_one_identity_each(world):
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    ok_lines(world.cli("scan-vms", hosts=config_a(world)))
    swapped = [f"gpu1={world.uris['gpu2']}", f"gpu2={world.uris['gpu1']}"]
    assert set_priority(world, swapped, "high").code == 0
    identities = dict(rows(world, "vgpu_host_identities"))
    assert len(set(identities.values())) == len(identities), identities
    assert places(world) == sorted([(A1, "gpu2"), (R1, "gpu1")])


def test_a_bulk_plan_applied_under_other_labels_leaves_one_identity_per_host(world):
    from vgpu import bulk
    from vgpu.hosts import open_fleet

    ok_lines(world.cli("scan-vms", hosts=config_a(world)))
    with world.store() as store:
        with open_fleet(world.uris) as fleet:
            plan = bulk.plan_many(store, fleet, [{"vm_uuid": A1, "pool": "B"}])
        with open_fleet({"x": world.uris["gpu1"], "y": world.uris["gpu2"]}) as fleet:
            assert bulk.apply_many(store, fleet, plan).ok
    identities = dict(rows(world, "vgpu_host_identities"))
    assert len(set(identities.values())) == len(identities), identities
    assert (A1, "x") in places(world)


# --- right after [hosts] is edited, before any scan or change --------------------------------------------------
# recover, show-vm and list-vms read the labels as this run's configured hosts name them, as a scan or a change
# does: none of them takes a label for whatever host it named before.


def reused(world) -> list[str]:
    """gpu2 given to another host (gpu3's file); the old gpu2's file still holds R1."""
    return [f"gpu1={world.uris['gpu1']}", f"gpu2=sim:{third_host(world).path}"]


def unfinished_change(world, label: str) -> None:
    """R1 registered on gpu2 (config A), and a set-pool of it cut short, journalled on host ``label``."""
    from vgpu import journal
    from vgpu.models import VMConfig

    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    with world.store() as store:
        old = vms.get(store, R1)
        with store.writing() as conn:
            journal.begin(conn, R1, "reconfigure", old, VMConfig("B", Priority.LOW, 7), True, host=label)


def open_operations(world) -> list[str]:
    """The hosts of the unfinished operations."""
    conn = sqlite3.connect(world.db)
    try:
        return [host for (host,) in conn.execute("SELECT host FROM vgpu_operations WHERE finished_at IS NULL")]
    finally:
        conn.close()


def test_an_operation_kept_apart_under_a_long_host_identity_is_read_back(world):
    """The label it is kept apart under carries the old host's URI (here a long path): still a journal row
    vgpu-admin wrote, not a damaged database."""
    unfinished_change(world, "gpu2")
    assert len(apart(world, "gpu2")) > 64, apart(world, "gpu2")
    status = world.cli("status", hosts=reused(world))
    assert status.code == 0 and status.err == "", status
    assert open_operations(world) == [apart(world, "gpu2")]
    assert world.cli("show-vm", f"--vm-uuid={R1}", hosts=reused(world)).code == 0


def test_recover_leaves_alone_a_change_of_a_host_whose_label_now_names_another(world):
    """It must not ask the new gpu2, find no VM there and close the change while the VM runs on the old gpu2."""
    unfinished_change(world, "gpu2")
    before = world.sims["gpu2"].get_device_model_args(R1)
    recovered = world.cli("recover", hosts=reused(world))
    assert recovered.code == 1, recovered
    (line,) = recovered.out_lines
    assert f"reconfigure of VM {R1} (stopped at step planned): other-host - " in line, line
    assert f"{apart(world, 'gpu2')} is not one of this run's configured hosts" in line, line
    assert open_operations(world) == [apart(world, "gpu2")]
    assert world.sims["gpu2"].get_device_model_args(R1) == before


def test_recover_takes_a_change_of_a_renamed_host_to_it_under_its_new_label(world):
    unfinished_change(world, "gpu2")
    recovered = world.cli("recover", hosts=config_b(world))
    assert recovered.code == 0, recovered
    (line,) = recovered.out_lines
    assert line.startswith(f"reconfigure of VM {R1} (stopped at step planned): rolled-back - "), line
    assert open_operations(world) == []


def test_show_vm_of_a_vm_whose_label_now_names_another_host_says_its_host_is_not_configured(world):
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    shown = ok_lines(world.cli("show-vm", f"--vm-uuid={R1}", hosts=reused(world)))
    assert f"Host: {apart(world, 'gpu2')}" in [line.strip() for line in shown], shown
    status = next(line for line in shown if line.strip().startswith("Status:"))
    assert "Host not configured" in status and f"forget-host {apart(world, 'gpu2')}" in status, status
    assert not any("Not on host" in line for line in shown), shown


def listed_host(outcome, uuid: str) -> str | None:
    line = next((line for line in ok_lines(outcome) if uuid in line), None)
    return None if line is None else line.rpartition("Host: ")[2].strip()


def test_list_vms_names_a_renamed_host_by_its_new_label(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=[]))
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text(config.read_text().replace("gpu2 = ", "gpu3 = "))
    assert listed_host(world.cli("list-vms", hosts=[]), R1) == "gpu3"
    assert R1 in world.cli("list-vms", hosts=["gpu3"]).out


def test_list_vms_does_not_list_under_a_label_the_vms_of_the_host_it_named_before(world, isolated_environment):
    world.configure(isolated_environment / "config")
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=[]))
    config = isolated_environment / "config" / "vgpu" / "config.toml"
    config.write_text(config.read_text().replace(world.uris["gpu2"], f"sim:{third_host(world).path}"))
    narrowed = world.cli("list-vms", hosts=["gpu2"])
    assert narrowed.code == 0 and R1 not in narrowed.out, narrowed
    assert listed_host(world.cli("list-vms", hosts=[]), R1) == apart(world, "gpu2")


# --- a database this process may only read --------------------------------------------------------------------
# The labels cannot be made to agree with [hosts] there: a run that would read a label as another host than the
# one it names now (a VM still running on the old host called missing, another host's VMs under a swapped label)
# is refused instead; one with nothing to relabel reads as ever.


@pytest.fixture
def read_only(monkeypatch):
    """Calling it makes every Store opened from then on one this process may only read (SQLite opens the file
    read-only, as on a read-only mount or without write access: root ignores file modes)."""
    from vgpu import store as store_module

    def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)

    return lambda: monkeypatch.setattr(store_module, "_connect", connect)


def refused_as_unrelabelled(outcome, *labels: str) -> None:
    assert outcome.code == 1 and outcome.out == "", outcome
    line = outcome.one_error_line()
    assert "holds host labels that [hosts] now names differently" in line, line
    assert "a run with write access relabels them first" in line, line
    for label in labels:
        assert label in line, line


def test_a_read_only_database_whose_label_now_names_another_host_is_refused_not_misread(world, read_only):
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    before = rows(world, "vgpu_locations")
    read_only()
    for words in (["show-vm", f"--vm-uuid={R1}"], ["scan-vms"], ["list-vms"], ["recover"], ["status"]):
        refused_as_unrelabelled(world.cli(*words, hosts=reused(world)), "gpu2")
    assert rows(world, "vgpu_locations") == before


def test_a_read_only_database_with_a_renamed_label_is_refused_not_misread(world, read_only):
    unfinished_change(world, "gpu2")
    read_only()
    for words in (["show-vm", f"--vm-uuid={R1}"], ["recover"]):
        refused_as_unrelabelled(world.cli(*words, hosts=config_b(world)), "gpu2", "gpu3")
    assert open_operations(world) == ["gpu2"]


def test_a_read_only_database_with_nothing_to_relabel_reads_as_ever(world, read_only):
    ok_lines(world.cli("register-vm", f"--vm-uuid={R1}", "--vm-id=7", hosts=config_a(world)))
    read_only()
    shown = ok_lines(world.cli("show-vm", f"--vm-uuid={R1}", hosts=config_a(world)))
    assert "Host: gpu2" in [line.strip() for line in shown], shown
    assert world.cli("scan-vms", hosts=config_a(world)).code == 0


# --- recover on one host named by its URI, of a change made on a host of the fleet ------------------------------


def test_recover_on_one_host_by_uri_of_a_change_kept_apart_gives_that_hosts_uri_under_another_label(world):
    """--host gpu2@URI is no label a run can be given: the advice is its URI under a label other than gpu2."""
    unfinished_change(world, "gpu2")
    ok_lines(world.cli("status", hosts=reused(world)))  # gpu2 given to another host: the change is kept apart
    recovered = world.cli("recover", hosts=[world.uris["gpu2"]])
    assert recovered.code == 1, recovered
    (line,) = recovered.out_lines
    identity = apart(world, "gpu2").split("@", 1)[1]
    assert f"its URI {identity} under a label other than gpu2, which names another host now" in line, line
    assert "--host gpu2@" not in line, line
    followed = world.cli("recover", hosts=[f"other={identity}"])
    assert followed.code == 0 and followed.out_lines[0].split(": ")[1].startswith("rolled-back"), followed


def test_recover_on_one_host_by_uri_of_a_change_made_on_a_labelled_host_names_its_label_and_uri(world):
    """Before any run relabelled it, gpu2 may name another host in [hosts] now: the advice names its URI too."""
    unfinished_change(world, "gpu2")
    recovered = world.cli("recover", hosts=[world.uris["gpu1"]])
    assert recovered.code == 1, recovered
    (line,) = recovered.out_lines
    identity = apart(world, "gpu2").split("@", 1)[1]
    assert f"(--host gpu2={identity})" in line, line
    followed = world.cli("recover", hosts=[f"gpu2={identity}"])
    assert followed.code == 0 and followed.out_lines[0].split(": ")[1].startswith("rolled-back"), followed

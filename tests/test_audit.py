"""vgpu.audit: every change recorded with its time and old and new values, read back newest first."""

from __future__ import annotations

import re

import pytest

from vgpu import audit, pools, vms
from vgpu.errors import Conflict, InvalidRows, InvalidValue
from vgpu.models import AuditEntry

U1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
U2 = "11111111-2222-4333-8444-555555555555"


def summary(entries: list[AuditEntry]) -> list[tuple]:
    return [(e.action, e.subject, e.old, e.new) for e in entries]


def test_a_new_store_has_no_history(store):
    assert audit.history(store) == []


def test_history_records_every_kind_of_change_newest_first(store):
    vms.db_register(store, U1, vm_name="web", pool="A", priority="low", vm_id=3)
    vms.db_update(store, U1, pool="B", priority="high")
    pools.set_pool_name(store, "B", "GPU farm")
    vms.db_remove(store, U1)
    entries = audit.history(store)
    web = {"vm_id": 3, "vm_name": "web"}
    assert summary(entries) == [
        ("remove", U1, {**web, "pool_id": "B", "priority": 2}, None),
        ("rename-pool", "B", {"pool_name": "Pool B"}, {"pool_name": "GPU farm"}),
        ("update", U1, {**web, "pool_id": "A", "priority": 0}, {**web, "pool_id": "B", "priority": 2}),
        ("register", U1, None, {**web, "pool_id": "A", "priority": 0}),
    ]
    ids = [e.entry_id for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", e.at) for e in entries)
    # stops: tests/test_stopping.py; forget-host: tests/test_forget_host.py
    assert {e.action for e in entries} == set(audit.ACTIONS) - {"stop", "forget-host"}


def test_history_filters_by_subject_in_any_case(store):
    vms.db_register(store, U1)
    vms.db_register(store, U2)
    vms.db_update(store, U1, vm_id=9)
    pools.set_pool_name(store, "A", "Prod")
    assert [e.action for e in audit.history(store, U1.upper())] == ["update", "register"]
    assert [e.subject for e in audit.history(store, U2)] == [U2]
    assert summary(audit.history(store, "a")) == [("rename-pool", "A", {"pool_name": "Pool A"}, {"pool_name": "Prod"})]
    assert audit.history(store, "B") == []


def test_vm_names_fills_in_only_vms_whose_records_name_none(store):
    vms.db_register(store, U1, vm_name="web")
    vms.db_register(store, U2)  # no name when registered ...
    with store.writing() as conn:  # ... one given later (names come from the host; no command renames)
        conn.execute("UPDATE vms SET vm_name = 'late' WHERE vm_uuid = ?", (U2,))
    pools.set_pool_name(store, "A", "Prod")
    assert audit.vm_names(store, audit.history(store)) == {U2: "late"}
    assert audit.vm_names(store, audit.history(store, U1)) == {}
    vms.db_remove(store, U2)
    assert audit.vm_names(store, audit.history(store)) == {U2: "late"}  # removed: the name its removal recorded


def test_vm_names_of_a_removed_vm_come_from_its_own_records_for_its_stop_rows(store):
    vms.db_register_many(store, [{"vm_uuid": U1, "vm_name": "web"}])  # a batch registration: one entry for all
    with store.writing() as conn:  # a stop names no VM (as every database has recorded them)
        audit.record(conn, "stop", U1, None, {"stop": "clean"})
    vms.db_remove(store, U1)
    entries = audit.history(store, U1)
    assert [(e.action, e.vm_name) for e in entries] == [("remove", "web"), ("stop", None), ("register", "web")]
    assert audit.vm_names(store, entries) == {U1: "web"}
    assert audit.vm_names(store, audit.history(store, U1, limit=2)[1:]) == {U1: "web"}  # the stop row alone
    vms.db_register(store, U2)  # never named: nothing to show but its UUID
    vms.db_remove(store, U2)
    assert audit.vm_names(store, audit.history(store, U2)) == {}


def test_history_limit_keeps_the_newest(store):
    for vm_id in range(1, 6):
        vms.db_register(store, f"{vm_id:08x}-0000-4000-8000-000000000000", vm_id=vm_id)
    assert [e.new["vm_id"] for e in audit.history(store, limit=2)] == [5, 4]


def test_refused_changes_leave_no_audit_entry(store):
    vms.db_register(store, U1, vm_id=1)
    with pytest.raises(Conflict):
        vms.db_register(store, U2, vm_id=1)
    with pytest.raises(InvalidRows):
        vms.db_register_many(store, [{"vm_uuid": U2}, {"vm_uuid": "bad"}])
    vms.db_update(store, U1, vm_id=1)  # no change, nothing to record
    assert [e.action for e in audit.history(store)] == ["register"]


def test_record_and_a_registration_batch_write_inside_the_callers_transaction(store):
    with store.writing() as conn:
        audit.record(conn, "update", U1, {"k": "é"}, {"k": 'quote " and \\'})
        conn.execute("INSERT INTO vms (vm_id, vm_uuid, vm_name, pool_id, priority) VALUES (1, ?, 'x', 'B', 2)", (U2,))
        audit.record_registrations_since(conn, 0)
    assert summary(audit.history(store)) == [
        ("register", U2, None, {"vm_id": 1, "vm_name": "x", "pool_id": "B", "priority": 2}),
        ("update", U1, {"k": "é"}, {"k": 'quote " and \\'}),
    ]


def test_a_bulk_registration_is_one_row_expanded_into_one_entry_per_vm(store):
    uuids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(3)]
    vms.db_register_many(store, [{"vm_uuid": u, "pool": "B"} for u in uuids])
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM vgpu_audit").fetchone()[0] == 1
    entries = audit.history(store)
    assert [e.subject for e in entries] == list(reversed(uuids))
    assert [e.new["vm_id"] for e in entries] == [3, 2, 1]
    assert [e.subject for e in audit.history(store, uuids[1])] == [uuids[1]]
    assert len(audit.history(store, limit=2)) == 2


def test_an_audit_entry_rolls_back_with_its_change(store):
    with pytest.raises(RuntimeError):
        with store.writing() as conn:
            audit.record(conn, "update", U1, None, {"vm_id": 1})
            raise RuntimeError("the change failed")
    assert audit.history(store) == []


def test_records_are_stored_as_compact_sorted_json(store):
    import json

    vms.db_register(store, U1, vm_name="Zoë \"quoted\"", pool="B", priority="high", vm_id=7)
    with store.reading() as conn:
        (text,) = conn.execute("SELECT new FROM vgpu_audit").fetchone()
    record = {"vm_id": 7, "vm_name": 'Zoë "quoted"', "pool_id": "B", "priority": 2}
    assert text == json.dumps(record, sort_keys=True, separators=(",", ":"))


def test_entries_of_one_bulk_registration_share_one_time(store):
    vms.db_register_many(store, [{"vm_uuid": f"{n:08x}-0000-4000-8000-000000000000"} for n in range(50)])
    entries = audit.history(store)
    assert len(entries) == 50 and len({e.at for e in entries}) == 1


def test_history_takes_a_subject_as_typed_and_refuses_anything_else(store):
    vms.db_register(store, U1)
    pools.set_pool_name(store, "A", "Prod")
    assert [e.subject for e in audit.history(store, f"  {U1.upper()} ")] == [U1]
    assert [e.action for e in audit.history(store, " a ")] == ["rename-pool"]
    with pytest.raises(InvalidValue) as caught:
        audit.history(store, "web-1")
    assert caught.value.field == "subject" and caught.value.value == "web-1"
    with pytest.raises(InvalidValue):
        audit.history(store, limit=0)


def test_the_old_name_of_vm_names_still_answers_for_scripts_written_against_it():
    assert audit.registered_names is audit.vm_names

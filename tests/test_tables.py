"""Results in notebooks: HTML tables (escaped) and flat records, while lists stay lists and pandas stays out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from vgpu import audit, bulk, bulk_register, lifecycle, pools, scan, tables, vms
from vgpu.convert import to_data
from vgpu.errors import InvalidRows
from vgpu.models import Registration

from .lifekit import World, config, vm_uuid

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def world(tmp_path, store):
    world = World.create(tmp_path, store)
    world.add(1, "running", config("A", 2, 1), name="web-1")
    world.add(2, "halted", config("B", 0, 2), name="db-2")
    world.sim.add_vm(vm_uuid(3), SCRIPT, "running")  # unregistered, with a hostile name
    return world


def _every_result(world) -> dict[str, tables.Tabular]:
    """One of each result that renders as a table, built through the public API."""
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": vm_uuid(1), "pool": "B"}, {"vm_uuid": vm_uuid(2), "priority": "high"}])
    try:
        vms.db_register_many(world.store, [{"uuid": "nope", "pool": "C"}, {"uuid": vm_uuid(1), "priority": "urgent"}])
    except InvalidRows as error:
        invalid = error
    registration = bulk_register.plan_registrations(world.store, world.sim, [{"uuid": vm_uuid(3)}])
    return {
        "list_vms": vms.list_vms(world.store),
        "list_pools": pools.list_pools(world.store),
        "history": audit.history(world.store),
        "show_pool": pools.show_pool(world.store, "A"),
        "status": scan.status(world.store, world.sim),
        "bulk_plan": plan,
        "bulk_result": bulk.apply_many(world.store, world.sim, plan, concurrency=1),
        "invalid_rows": invalid,
        "registration_plan": registration,
        "registration_result": bulk_register.register_planned(world.store, world.sim, registration),
    }


def test_every_result_gives_flat_json_ready_records_and_an_html_table(world):
    for name, result in _every_result(world).items():
        records = result.records()
        assert records, name
        for record in records:
            assert isinstance(record, dict), name
            assert all(isinstance(key, str) for key in record), name
            assert all(value is None or type(value) in (str, int, float, bool) for value in record.values()), (name, record)
        assert json.loads(json.dumps(records)) == records
        page = result._repr_html_()
        assert page.startswith('<table class="vgpu-table">') and page.endswith("</table>"), name
        assert page.count("<tr>") == len(records) + 1, name  # a header row and one row per record


def test_priority_is_its_name_and_its_number(world):
    rows = vms.list_vms(world.store).records()
    assert rows[0]["priority"] == "high" and rows[0]["priority_value"] == 2
    assert rows[1]["priority"] == "low" and rows[1]["priority_value"] == 0
    assert "0 is the lowest" in vms.list_vms(world.store)._repr_html_()


def test_html_escapes_names_values_and_captions(world):
    vms.db_register(world.store, vm_uuid(4), vm_name=SCRIPT, pool="B")
    pools.set_pool_name(world.store, "B", "<b>bold</b> & co")
    pages = [
        vms.list_vms(world.store)._repr_html_(),
        pools.show_pool(world.store, "B")._repr_html_(),
        scan.status(world.store, world.sim)._repr_html_(),
        pools.list_pools(world.store)._repr_html_(),
    ]
    for page in pages:
        assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in pages[1] and "&lt;b&gt;bold" in pages[3]


FORGED = "x\n" + vm_uuid(1) + "  web-1  A  high  2  1  running  configured"


def test_text_displays_show_control_characters_escaped_not_obeyed(world):
    # The text a print() or a Python prompt shows: a VM's name (the host's, chosen by a guest's owner) must
    # not clear the screen or forge a row, as vgpu-admin's own output does not let it.
    world.sim.add_vm(vm_uuid(5), FORGED, "halted")
    world.sim.add_vm(vm_uuid(6), "evil\x1b[2J\x1b[31mRED\u202e", "running")
    for name, result in _every_result(world).items():
        text = str(result)
        assert all(line.isprintable() for line in text.split("\n")), (name, text)
    lines = str(scan.status(world.store, world.sim)).split("\n")
    assert any("x\\n" + vm_uuid(1) in line for line in lines) and any("evil\\x1b[2J" in line for line in lines)
    assert not any(line.startswith(vm_uuid(1) + "  web-1  A  high") for line in lines)  # no forged row


def test_a_bad_value_in_a_bulk_row_is_escaped_too(world):
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, [{"uuid": SCRIPT}])
    assert "<script>" not in caught.value._repr_html_()
    assert caught.value.records()[0]["value"] == SCRIPT


def test_row_labels_of_any_index_stay_json_ready(world):
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    import numpy

    frame = pandas.DataFrame({"uuid": ["not-a-uuid", vm_uuid(3)]}, index=pandas.to_datetime(["2024-01-01", "2024-01-02"]))
    plan = bulk_register.plan_registrations(world.store, world.sim, frame)
    for data in (plan.records(), plan.problems.records(), to_data(plan.invalid), plan.invalid.records()):
        json.dumps(data)
    assert plan.records()[0]["row"] == "2024-01-02 00:00:00"
    assert plan.problems.records()[0]["row"] == to_data(plan.invalid)["problems"][0]["row"] == "2024-01-01 00:00:00"
    assert plan.rows == (frame.index[1],)  # the labels themselves, to index the frame with
    numbered = pandas.DataFrame({"uuid": ["nope"]}, index=numpy.array([7], dtype=numpy.int64))
    assert bulk_register.plan_registrations(world.store, world.sim, numbered).problems.records()[0]["row"] == 7


def test_a_bad_value_that_is_an_infinite_float_is_kept_as_its_repr_in_strict_json(world):
    # JSON has no inf or nan (json.dumps writes them as Infinity and NaN, which strict parsers refuse).
    rows = [{"uuid": vm_uuid(3), "vm_id": float("inf")}, {"uuid": vm_uuid(3), "vm_id": float("-inf")}]
    plan = bulk_register.plan_registrations(world.store, world.sim, rows)
    assert [record["value"] for record in plan.problems.records()] == ["inf", "-inf"]
    assert [problem["value"] for problem in to_data(plan.invalid)["problems"]] == ["inf", "-inf"]
    for data in (plan.problems.records(), plan.invalid.records(), to_data(plan.invalid), to_data(plan)):
        json.dumps(data, allow_nan=False)


def test_lists_stay_lists(world):
    found = vms.list_vms(world.store)
    assert isinstance(found, list) and isinstance(found, tables.VMList)
    plain = list(found)
    assert found == plain and plain == found and found[:1] == plain[:1]
    assert pools.list_pools(world.store) == list(pools.list_pools(world.store))
    assert audit.history(world.store) == list(audit.history(world.store))
    registered = vms.db_register_many(world.store, [Registration(vm_uuid(5), "five")])
    assert isinstance(registered, list) and [vm.vm_uuid for vm in registered] == [vm_uuid(5)]
    assert to_data(found) == to_data(plain) and isinstance(to_data(found)[0], dict)


def test_a_slice_of_a_result_list_is_still_a_table(world):
    found = vms.list_vms(world.store)
    first = found[:1]
    assert type(first) is tables.VMList and first == [found[0]] and "<table" in first._repr_html_()
    assert found[0] == list(found)[0] and type(found[-1]) is not tables.VMList


def test_empty_results_say_none(store):
    page = vms.list_vms(store, pool="B")._repr_html_()
    assert "0 VMs" in page and "<em>none</em>" in page
    assert vms.list_vms(store).records() == []


def test_invalid_rows_name_row_field_value_and_allowed(world):
    rows = [
        {"uuid": "nope"},                                   # 1 bad UUID
        {"uuid": vm_uuid(6), "pool": "C"},                  # 2 no such pool
        {"uuid": vm_uuid(7), "priority": "urgent"},         # 3 no such priority
        {"uuid": vm_uuid(8), "vm_id": "1"},                 # 4 vm_id held by web-1
        {"uuid": vm_uuid(9), "vm_id": "40"},
        {"uuid": vm_uuid(10), "vm_id": "40"},               # 6 same vm_id as row 5
    ]
    with pytest.raises(InvalidRows) as caught:
        vms.db_register_many(world.store, rows)
    records = caught.value.records()
    assert [(r["row"], r["field"], r["value"]) for r in records] == [
        (1, "VM UUID", "nope"), (2, "pool", "C"), (3, "priority", "urgent"), (4, "vm_id", 1), (6, "vm_id", 40),
    ]
    assert records[1]["allowed"] == "A, B"
    assert "low" in records[2]["allowed"] and "high" in records[2]["allowed"]
    assert "row 5" in records[4]["allowed"]
    assert "5 problems in 5 rows; nothing was changed" in caught.value._repr_html_()


def test_bulk_plan_shows_current_new_and_restart(world):
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": vm_uuid(1), "pool": "B"}, {"vm_uuid": vm_uuid(2), "priority": "high"}])
    first, second = plan.records()
    assert first["vm_name"] == "web-1" and first["change"] == "pool A → B" and first["restart"] == "yes"
    assert first["current"] == "pool A, high (2), vm_id 1" and first["new"] == "pool B, high (2), vm_id 1"
    assert second["change"] == "priority low (0) → high (2)" and second["restart"] == "no"
    assert "2 VMs: 2 to change, 1 to restart" in plan._repr_html_()


def test_bulk_result_lists_changes_and_failures(world):
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", vm_uuid(1))  # will not boot in Pool B
    plan = bulk.plan_many(world.store, world.sim, [{"vm_uuid": vm_uuid(1), "pool": "B"}, {"vm_uuid": vm_uuid(2), "priority": "high"}])
    result = bulk.apply_many(world.store, world.sim, plan, concurrency=1)
    by_uuid = {record["vm_uuid"]: record for record in result.records()}
    assert by_uuid[vm_uuid(2)]["outcome"] == "changed" and by_uuid[vm_uuid(2)]["restarted"] == "no"
    assert by_uuid[vm_uuid(1)]["outcome"] == "failed" and "restored" in by_uuid[vm_uuid(1)]["error"]
    failed, planned = by_uuid[vm_uuid(1)], plan.plans[0]
    assert (failed["vm_name"], failed["old"], failed["new"]) == (
        planned.vm.vm_name, tables.config_text(planned.current), tables.config_text(planned.new))
    assert failed["new"].startswith("pool B,") and failed["vm_name"]


def test_scan_rows_cover_registered_and_unregistered(world):
    records = scan.status(world.store, world.sim).records()
    assert [(r["vm_name"], r["state"]) for r in records] == [("web-1", "configured"), ("db-2", "halted"), (SCRIPT, "unregistered")]
    assert records[0]["power_state"] == "running" and records[2]["pool_id"] is None
    assert [r["running_with"] for r in records] == ["pool A, high (2), vm_id 1", None, None]


def test_scan_rows_and_caption_count_pending_restarts(world):
    vms.db_update(world.store, vm_uuid(1), vm_id=11)
    lifecycle.repair_vm(world.store, world.sim, vm_uuid(1))  # the args follow; the running QEMU does not
    report = scan.scan(world.store, world.sim)
    (row,) = [r for r in report.records() if r["vm_name"] == "web-1"]
    assert (row["state"], row["vm_id"], row["running_with"]) == ("pending", 11, "pool A, high (2), vm_id 1")
    assert "; 1 pending restart" in report._repr_html_()


def test_the_library_never_imports_pandas_or_ipython(tmp_path):
    """Even where pandas is installed: a finder refuses it and IPython, and the results still render."""
    script = textwrap.dedent(f"""
        import sys
        refused = []
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("pandas", "IPython"):
                    refused.append(name)
                    raise ImportError(name)
        sys.meta_path.insert(0, Refuse())
        from vgpu import audit, demo, pools, scan, vms
        from vgpu.hypervisor.sim import SimHost
        from vgpu.store import Store
        host = SimHost({str(tmp_path / 'host.json')!r})
        demo.seed(host, {str(tmp_path / 'vgpu.db')!r})
        store = Store({str(tmp_path / 'vgpu.db')!r})
        for result in (vms.list_vms(store), pools.list_pools(store), audit.history(store), pools.show_pool(store, "A"), scan.status(store, host)):
            result._repr_html_(); result.records()
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("pandas", "IPython"))
        print(refused, loaded)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"

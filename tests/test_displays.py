"""Bounded displays: a result shows at most ``vgpu.tables.options.max_rows`` rows in its text repr and its
HTML (the rest summarised with counts per pool and state), so a 2,000-VM status saved in a notebook stays
small; ``records()`` and ``to_pandas()`` give every row."""

from __future__ import annotations

import html as html_text
import re
import sys

import pytest

from vgpu import devargs, pools, scan, tables, vms
from vgpu.errors import InvalidValue, MissingDependency
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, Registration, VMConfig

from .test_tables import _every_result, world  # noqa: F401  (the fixture, and one of every result)

FLEET = 2000
UNREGISTERED = 100
DRIFTED = 20


def fleet_uuid(number: int) -> str:
    return f"5e1b0000-0000-4000-8000-{number:012d}"


@pytest.fixture
def fleet(tmp_path, store):
    """2,000 VMs on a simulated host: 1,900 registered (20 of them drifted), 100 not."""
    host = SimHost(tmp_path / "host.json")
    registrations, rows = [], []
    for number in range(1, FLEET + 1):
        uuid, power = fleet_uuid(number), PowerState.RUNNING if number % 3 else PowerState.HALTED
        args = ""
        if number <= FLEET - UNREGISTERED:
            config = VMConfig("A" if number % 2 else "B", Priority(number % 3), number)
            registrations.append(Registration(uuid, f"vm-{number}", config.pool_id, config.priority, number))
            drifted = number % 95 == 0
            args = devargs.render(VMConfig(config.pool_id, config.priority, number + FLEET) if drifted else config)
        rows.append((uuid, f"vm-{number}", power, args))
    host.add_vms(rows)
    vms.db_register_many(store, registrations)
    return store, host


@pytest.fixture(autouse=True)
def default_options():
    tables.options.reset()
    yield
    tables.options.reset()


def _shown_rows(text: str) -> int:
    return len(re.findall(r"^ *5e1b0000-", text, flags=re.M))


def test_a_2000_vm_status_shows_a_bounded_table_with_a_summary_and_counts(fleet):
    report = scan.status(*fleet)
    text, html = repr(report), report._repr_html_()
    limit = tables.options.max_rows
    assert 20 <= limit <= 60
    assert _shown_rows(text) == limit and html.count("<td>5e1b0000-") == limit
    hidden = FLEET - limit
    for page in (text, html_text.unescape(html)):
        assert f"… {hidden} more rows" in page
        assert "pool_id: A 950, B 950, none 100" in page
        halted = sum(1 for n in range(1, FLEET - UNREGISTERED + 1) if n % 3 == 0 and n % 95)  # drift wins over halted
        configured = FLEET - UNREGISTERED - DRIFTED - halted
        assert f"state: configured {configured}, drift {DRIFTED}, halted {halted}, unregistered {UNREGISTERED}" in page
        assert 'Pool A "Pool A": 950 VMs; Pool B "Pool B": 950 VMs; 100 unregistered; 2000 in system' in page
    assert len(report.records()) == FLEET  # records() has every row


def test_what_a_notebook_saves_for_a_2000_vm_status_stays_under_50_kb(fleet):
    """IPython's formatter gives exactly what a notebook saves: text/plain and text/html."""
    from IPython.core.formatters import DisplayFormatter

    store, host = fleet
    for result in (scan.status(store, host), scan.scan(store, host), vms.list_vms(store)):
        saved, _ = DisplayFormatter().format(result)
        assert set(saved) >= {"text/plain", "text/html"}
        size = sum(len(value.encode("utf-8")) for value in saved.values())
        assert size < 50_000, (type(result).__name__, size)
        assert saved["text/plain"] == repr(result)  # the bounded table, not the list or attrs repr


def test_a_small_result_shows_every_row_without_a_more_line(world):
    for name, result in _every_result(world).items():
        text = repr(result)
        assert "more rows" not in text, name
        assert type(result).__name__ in text.splitlines()[0], name


def test_every_result_is_bounded_by_the_option(world):
    tables.options.max_rows = 1
    for name, result in _every_result(world).items():
        rows = len(result.records())
        text, html = repr(result), result._repr_html_()
        if rows > 1:
            assert f"… {rows - 1} more row" in html, name
            # an error's repr stays an error's (one sentence); its table is the HTML and to_string()
            assert f"… {rows - 1} more row" in (result.to_string() if isinstance(result, Exception) else text), name
        assert html.count("<tr>") <= 3, name  # header, one row, the "more" line


def test_max_rows_per_call_and_none_for_every_row(fleet):
    report = scan.status(*fleet)
    assert _shown_rows(report.to_string(max_rows=100)) == 100
    assert _shown_rows(report.to_string(max_rows=None)) == FLEET and "more rows" not in report.to_string(max_rows=None)
    assert report.to_html(max_rows=5).count("<td>5e1b0000-") == 5
    shown = report.table(max_rows=7)  # what a notebook cell displays
    assert _shown_rows(repr(shown)) == 7 and shown._repr_html_().count("<td>5e1b0000-") == 7
    tables.options.max_rows = 3
    assert _shown_rows(repr(report)) == 3 and _shown_rows(report.to_string()) == 3
    tables.options.max_rows = None
    assert _shown_rows(repr(report)) == FLEET


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_a_bad_max_rows_is_refused_naming_what_is_allowed(bad, world):
    with pytest.raises(InvalidValue) as caught:
        tables.options.max_rows = bad
    assert caught.value.field == "max_rows" and "None" in str(caught.value)
    with pytest.raises(InvalidValue):
        vms.list_vms(world.store).to_string(max_rows=bad)
    assert tables.options.max_rows == tables.DEFAULT_MAX_ROWS


def test_long_cells_are_cut_in_the_display_only(world):
    long_name = "x" * 255
    vms.db_register(world.store, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", vm_name=long_name)
    found = vms.list_vms(world.store)
    assert long_name not in repr(found) and long_name not in found._repr_html_()
    assert "x" * 199 + "…" in repr(found)  # the default leaves a sentence whole (a problem, an error)
    tables.options.max_colwidth = 60
    assert "x" * (tables.options.max_colwidth - 1) + "…" in repr(found)
    assert long_name in [record["vm_name"] for record in found.records()]
    tables.options.max_colwidth = None
    assert long_name in repr(found)


def test_to_pandas_gives_every_row_and_column(fleet):
    pandas = pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    report = scan.status(*fleet)
    frame = report.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == FLEET
    assert list(frame.columns) == list(report.records()[0])
    assert frame["state"].value_counts()["drift"] == DRIFTED
    assert len(pools.list_pools(fleet[0]).to_pandas()) == 2


def test_to_pandas_of_an_empty_result_still_has_its_columns(store):
    pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    frame = vms.list_vms(store).to_pandas()
    assert frame.empty and list(frame.columns) == ["vm_uuid", "vm_name", "pool_id", "priority", "priority_value", "vm_id"]


def test_every_empty_result_has_the_columns_its_rows_would_have(world):
    # Re-running the same CSV registers nothing: its result must still have a "segment" column to read.
    pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    from vgpu import bulk, bulk_register

    from .test_tables import _every_result

    empty_plan = bulk.plan_many(world.store, world.sim, [])
    empties = {
        "bulk_plan": empty_plan,
        "bulk_result": bulk.apply_many(world.store, world.sim, empty_plan),
        "registration_plan": bulk_register.plan_registrations(world.store, world.sim, []),
        "registration_result": bulk_register.register_planned(world.store, world.sim, bulk_register.plan_registrations(world.store, world.sim, [])),
    }
    full = _every_result(world)
    for name, empty in empties.items():
        assert empty.records() == [], name
        assert list(empty.to_pandas().columns) == list(full[name].to_pandas().columns), name


def test_whole_number_columns_with_blanks_stay_whole_numbers(world):
    # A status's unregistered VMs have no vm_id: the column is pandas' nullable Int64, not float, so the
    # frame, edited, is a batch plan_many takes as it is.
    pytest.importorskip("pandas", reason="pandas is in the test extra; the library itself never needs it")
    from vgpu import bulk

    frame = scan.status(world.store, world.sim).to_pandas()
    assert str(frame["vm_id"].dtype) == "Int64" and str(frame["priority_value"].dtype) == "Int64"
    registered = frame[frame["vm_id"].notna()].copy()
    registered.loc[registered.index[0], "pool_id"] = "B" if registered.iloc[0]["pool_id"] == "A" else "A"
    plan = bulk.plan_many(world.store, world.sim, registered)
    assert len(plan.changing) == 1


def test_to_pandas_without_pandas_says_how_to_install_it(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without pandas gives: ImportError
    with pytest.raises(MissingDependency) as caught:
        vms.list_vms(store).to_pandas()
    assert isinstance(caught.value, ImportError)  # caught as the ImportError a pandas user expects, too
    assert "pip install pandas" in str(caught.value) and caught.value.package == "pandas"


@pytest.mark.parametrize("real, typed", [
    ("a\x1bb", "a\\x1bb"),  # an escape character, and its escape typed as text
    ("a\nb", "a\\nb"),
    ("a\x1bb", '"a\\x1bb"'),  # ... and the escaped form typed with its quotes
    ("a\u202eb", "a\\u202eb"),
])
def test_a_name_holding_a_control_character_never_reads_like_one_holding_its_escape_as_text(real, typed):
    from vgpu.escape import field, listed

    for show in (field, listed):  # how a name is shown among other values
        assert show(real) != show(typed), show.__name__
        assert show(real).isprintable() and show(typed).isprintable()
    assert field("a\\x1bb") == "a\\x1bb"  # a printable name is shown as it is, backslash and all

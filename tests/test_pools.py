"""vgpu.pools: listing with counts per priority, showing one pool, its name, renaming, existence."""

from __future__ import annotations

import pytest

from vgpu import audit, pools, vms
from vgpu.errors import Conflict, InvalidValue, NotFound
from vgpu.models import Pool, PoolDetail, Priority, PriorityCounts


def uuid_of(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


@pytest.fixture
def populated(store):
    """Pool A: 2 high, 1 low. Pool B: 1 medium, 3 low."""
    layout = [("A", "high"), ("A", "low"), ("B", "medium"), ("A", "high"), ("B", "low"), ("B", "low"), ("B", "low")]
    for number, (pool, priority) in enumerate(layout, start=1):
        vms.db_register(store, uuid_of(number), pool=pool, priority=priority)
    return store


def test_list_pools_of_a_new_store_has_a_and_b_empty(store):
    listed = pools.list_pools(store)
    assert [(p.pool_id, p.pool_name, p.description, p.enabled, p.counts, p.vm_count) for p in listed] == [
        ("A", "Pool A", None, True, PriorityCounts(0, 0, 0), 0),
        ("B", "Pool B", None, True, PriorityCounts(0, 0, 0), 0),
    ]
    assert all(p.created_at and p.updated_at for p in listed)


def test_list_pools_counts_vms_per_priority(populated):
    pool_a, pool_b = pools.list_pools(populated)
    assert (pool_a.counts, pool_a.vm_count) == (PriorityCounts(low=1, medium=0, high=2), 3)
    assert (pool_b.counts, pool_b.vm_count) == (PriorityCounts(low=3, medium=1, high=0), 4)
    assert pool_b.counts.of(Priority.LOW) == 3 and pool_a.counts.of(Priority.HIGH) == 2


def test_list_pools_reports_a_disabled_pool(store):
    with store.writing() as conn:
        conn.execute("UPDATE pools SET enabled = 0, description = 'maintenance' WHERE pool_id = 'B'")
    pool_b = pools.list_pools(store)[1]
    assert (pool_b.enabled, pool_b.description) == (False, "maintenance")


def test_show_pool_gives_the_pool_and_its_vms_high_to_low_then_by_vm_id(populated):
    detail = pools.show_pool(populated, "a")
    assert isinstance(detail, PoolDetail) and isinstance(detail.vms, tuple)
    assert detail.pool == pools.list_pools(populated)[0]
    assert [(vm.vm_id, vm.priority) for vm in detail.vms] == [(1, Priority.HIGH), (4, Priority.HIGH), (2, Priority.LOW)]


def test_show_an_empty_pool(store):
    detail = pools.show_pool(store, " B ")
    assert detail.pool.pool_id == "B" and detail.vms == ()


@pytest.mark.parametrize("call", [pools.show_pool, pools.get_pool_name, pools.validate_pool_exists])
def test_pool_functions_refuse_an_unknown_pool_id(store, call):
    with pytest.raises(InvalidValue) as caught:
        call(store, "C")
    assert (caught.value.field, caught.value.value) == ("pool", "C")


def test_validate_pool_exists_returns_the_canonical_id(store):
    assert pools.validate_pool_exists(store, "a") == "A"
    assert pools.validate_pool_exists(store, "B ") == "B"


def test_a_pool_whose_row_was_deleted_is_not_found(store):
    with store.writing() as conn:
        conn.execute("DELETE FROM pools WHERE pool_id = 'B'")
    with pytest.raises(NotFound) as caught:
        pools.validate_pool_exists(store, "b")
    error = caught.value
    assert (error.kind, error.key) == ("pool", "B")
    assert str(error) == "pool B not found; the database has lost that pool's row and may be damaged"
    with pytest.raises(NotFound, match="^pool B not found$"):
        pools.show_pool(store, "B")
    with pytest.raises(NotFound, match="^pool B not found$"):
        pools.set_pool_name(store, "B", "Spare")


def test_get_pool_name(store):
    assert pools.get_pool_name(store, "a") == "Pool A"
    pools.set_pool_name(store, "B", "Development Pool")
    assert pools.get_pool_name(store, "b") == "Development Pool"


def test_get_pool_name_falls_back_to_the_default_when_stored_empty_or_missing(store):
    with store.writing() as conn:
        conn.execute("UPDATE pools SET pool_name = '' WHERE pool_id = 'A'")
        conn.execute("DELETE FROM pools WHERE pool_id = 'B'")
    assert pools.get_pool_name(store, "A") == "Pool A"
    assert pools.get_pool_name(store, "B") == "Pool B"


def test_set_pool_name_renames_and_is_audited(store):
    pool = pools.set_pool_name(store, "a", "  Production Pool ")
    assert isinstance(pool, Pool) and (pool.pool_id, pool.pool_name) == ("A", "Production Pool")
    assert pools.list_pools(store)[0].pool_name == "Production Pool"
    (entry,) = audit.history(store)
    assert (entry.action, entry.subject, entry.old, entry.new) == (
        "rename-pool", "A", {"pool_name": "Pool A"}, {"pool_name": "Production Pool"},
    )


def test_change_pool_name_says_whether_the_name_changed(store, snapshot):
    assert pools.change_pool_name(store, "B", "Dev").changed is True
    before = snapshot()
    again = pools.change_pool_name(store, "b", " Dev ")
    assert (again.changed, again.pool.pool_id, again.pool.pool_name) == (False, "B", "Dev")
    assert snapshot() == before


def test_set_pool_name_to_the_current_name_records_nothing(store, snapshot):
    before = snapshot()
    assert pools.set_pool_name(store, "B", "Pool B").pool_name == "Pool B"
    assert snapshot() == before


def test_set_pool_name_keeps_vm_counts(populated):
    assert pools.set_pool_name(populated, "B", "Dev").vm_count == 4


@pytest.mark.parametrize(("pool_id", "name", "field"), [("C", "x", "pool"), ("A", "", "pool name"), ("A", "   ", "pool name"), ("A", "x" * 65, "pool name"), ("A", "a\nb", "pool name"), ("A", None, "pool name")])
def test_set_pool_name_refuses_bad_input_and_changes_nothing(store, snapshot, pool_id, name, field):
    before = snapshot()
    with pytest.raises(InvalidValue) as caught:
        pools.set_pool_name(store, pool_id, name)
    assert caught.value.field == field and "\n" not in str(caught.value)
    assert snapshot() == before


@pytest.mark.parametrize("name", ["Pool A", "pool a", "  POOL A "])
def test_set_pool_name_refuses_the_other_pools_name_and_changes_nothing(store, snapshot, name):
    before = snapshot()
    with pytest.raises(Conflict) as caught:
        pools.set_pool_name(store, "B", name)
    error = caught.value
    assert (error.field, error.value, error.holder) == ("pool name", name.strip(), "pool A")
    named = "" if name == "Pool A" else ' (named "Pool A")'
    assert str(error) == f'pool name "{name.strip()}" is already used by pool A{named}'
    assert snapshot() == before


def test_set_pool_name_refuses_the_other_pools_custom_name_but_frees_the_old_one(store):
    pools.set_pool_name(store, "A", "Production")
    with pytest.raises(Conflict, match='^pool name "Production" is already used by pool A$'):
        pools.set_pool_name(store, "B", "Production")
    assert pools.set_pool_name(store, "B", "Pool A").pool_name == "Pool A"  # A no longer has it
    assert pools.set_pool_name(store, "B", "pool a").pool_name == "pool a"  # its own name, in another case


def test_set_pool_name_refuses_a_double_quote(store, snapshot):
    before = snapshot()
    with pytest.raises(InvalidValue) as caught:
        pools.set_pool_name(store, "A", 'The "fast" pool')
    assert str(caught.value) == ("invalid pool name 'The \"fast\" pool': expected printable text of at most 64 "
                                 "characters, without double quotes")
    assert snapshot() == before


def test_select_pools_inside_a_transaction(populated):
    with populated.reading() as conn:
        assert [p.pool_id for p in pools.select_pools(conn)] == ["A", "B"]
        assert [p.vm_count for p in pools.select_pools(conn, "B")] == [4]
        assert pools.select_pools(conn, "C") == []

"""The attrs value types: priorities, counts, a VM's config and display name."""

from __future__ import annotations

import attrs
import pytest

from vgpu.models import DEFAULT_POOL, DEFAULT_PRIORITY, POOL_IDS, VM, Pool, PriorityCounts, Priority, Registration, VMConfig

U1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"


def test_priorities_are_low_0_medium_1_high_2():
    assert [(p.name, int(p), p.label, p.describe()) for p in Priority] == [
        ("LOW", 0, "low", "low (0)"), ("MEDIUM", 1, "medium", "medium (1)"), ("HIGH", 2, "high", "high (2)"),
    ]


def test_defaults_are_pool_a_and_medium():
    assert (POOL_IDS, DEFAULT_POOL, DEFAULT_PRIORITY) == (("A", "B"), "A", Priority.MEDIUM)
    assert Registration(U1) == Registration(U1, None, "A", Priority.MEDIUM, None)


def test_vm_config_and_display_name():
    named = VM(3, U1, "web", "B", Priority.HIGH)
    assert named.config == VMConfig("B", Priority.HIGH, 3) and named.display_name == "web"
    assert attrs.evolve(named, vm_name=None).display_name == U1


def test_counts_total_and_per_priority():
    counts = PriorityCounts(low=3, medium=1, high=2)
    assert counts.total == 6 and [counts.of(p) for p in Priority] == [3, 1, 2]
    assert Pool("A", "Pool A", None, True, counts).vm_count == 6
    assert Pool("B", "Pool B", None, True).vm_count == 0


def test_values_are_immutable():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        VM(1, U1, None, "A", Priority.LOW).vm_id = 2

"""Pool and PriorityCounts, the values `vgpu-admin list-pools` builds, are attrs classes like every other
result of the library, but their attrs description is built the first time something asks for it, so a
process that never asks never imports attrs. Everything attrs and cattrs offer must work on them as on a
class attrs decorated, in a process that had not imported attrs before."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vgpu.basics import AttrsOnDemand

from .clikit import REPO

# Run in a fresh interpreter: this test process has imported attrs long ago.
CHECKS = r"""
import json, pickle, sys
from vgpu.basics import Pool, PriorityCounts
before = sorted(name for name in sys.modules if name.split(".")[0] in ("attr", "attrs"))
import attrs, cattrs
counts = PriorityCounts(low=1, high=2)
pool = Pool("A", "Pool A", None, True, counts)
fields = attrs.fields(Pool)
converter = cattrs.Converter()
result = {
    "before": before,
    "has": [attrs.has(Pool), attrs.has(PriorityCounts), attrs.has(pool), attrs.has(object)],
    "names": [field.name for field in fields],
    "by_name": fields.pool_id.name,
    "defaults": [None if field.default is attrs.NOTHING else repr(field.default) for field in fields],
    "types": [str(field.type) for field in attrs.fields(PriorityCounts)],
    "resolved": str(attrs.fields(attrs.resolve_types(Pool)).counts.type),
    "asdict": attrs.asdict(pool),
    "evolved": repr(attrs.evolve(pool, enabled=False, counts=attrs.evolve(counts, medium=5))),
    "unstructured": converter.unstructure(pool),
    "round_trip": converter.structure(converter.unstructure(pool), Pool) == pool,
    "pickled": pickle.loads(pickle.dumps(pool)) == pool,
    "same_view": attrs.fields(Pool) is fields,
    "frozen": None,
}
try:
    pool.enabled = False
except AttributeError as error:
    result["frozen"] = str(error)
print(json.dumps(result))
"""


def test_attrs_and_cattrs_see_the_pools_values_as_attrs_classes():
    done = subprocess.run([sys.executable, "-c", CHECKS], cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    counts = {"low": 1, "medium": 0, "high": 2}
    pool = {"pool_id": "A", "pool_name": "Pool A", "description": None, "enabled": True, "counts": counts,
            "created_at": None, "updated_at": None}
    assert result == {
        "before": [],  # importing the values did not import attrs
        "has": [True, True, True, False],  # as for a decorated class, an instance answers for its class
        "names": ["pool_id", "pool_name", "description", "enabled", "counts", "created_at", "updated_at"],
        "by_name": "pool_id",
        "defaults": [None, None, None, None, "PriorityCounts(low=0, medium=0, high=0)", "None", "None"],
        "types": ["int", "int", "int"],
        "resolved": "<class 'vgpu.basics.PriorityCounts'>",
        "asdict": pool,
        "evolved": "Pool(pool_id='A', pool_name='Pool A', description=None, enabled=False, "
                   "counts=PriorityCounts(low=1, medium=5, high=2), created_at=None, updated_at=None)",
        "unstructured": pool,
        "round_trip": True,
        "pickled": True,
        "same_view": True,
        "frozen": "Pool.enabled cannot be changed",
    }


def test_a_plain_frozen_value_is_not_an_attrs_class():
    # HostSpec and the command table's values are Frozen without an attrs description: asking finds none
    done = subprocess.run([sys.executable, "-c", "import attrs; from vgpu.hostspecs import HostSpec; "
                           "from vgpu.basics import AttrsOnDemand; "
                           "print(attrs.has(HostSpec), attrs.has(AttrsOnDemand), hasattr(HostSpec, '__attrs_attrs__'))"],
                          cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.split()) == (0, ["False", "False", "False"]), done.stderr


def test_a_subclass_whose_slots_and_annotations_disagree_is_refused_when_defined():
    # attrs is told the annotated fields and Frozen stores the slots: a field in one list only would be
    # missing from one of them, so the class is refused at once rather than misdescribed later.
    with pytest.raises(TypeError, match=r"Odd: __slots__ \('a', 'b'\) must name the annotated fields \('b', 'a'\)"):
        class Odd(AttrsOnDemand):
            __slots__ = ("a", "b")
            b: int
            a: int

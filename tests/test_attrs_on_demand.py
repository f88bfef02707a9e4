"""Pool and PriorityCounts, the values `vgpu-admin list-pools` builds, are attrs classes like every other
result of the library, but their attrs description is built the first time something asks for it, so a
process that never asks never imports attrs. Everything attrs and cattrs offer must work on them as on a
class attrs decorated, in a process that had not imported attrs before: each check runs in a fresh
interpreter (this test process imported attrs long ago)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vgpu.basics import AttrsOnDemand, frozen_on_demand

from .clikit import REPO


def _fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it sets ``result``, which comes back as JSON."""
    done = subprocess.run([sys.executable, "-c", f"import json, sys\n{code}\nprint(json.dumps(result))"],
                          cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


CHECKS = r"""
import pickle
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
}
refusals = []
for target, name in ((pool, "enabled"), (pool, "not_a_field"), (Pool.__new__(Pool), "pool_id")):
    try:
        setattr(target, name, False)
    except attrs.exceptions.FrozenInstanceError:  # as for every other attrs result (VM, ...), whatever is set
        refusals.append(name)
result["frozen"] = refusals
match pool:
    case Pool("A", name, counts=PriorityCounts(low, medium, high)):  # positional patterns: __match_args__
        result["matched"] = [name, low, medium, high]
"""


def test_attrs_and_cattrs_see_the_pools_values_as_attrs_classes():
    result = _fresh(CHECKS)
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
        "frozen": ["enabled", "not_a_field", "pool_id"],
        "matched": ["Pool A", 1, 0, 2],
    }


# The same classes, decorated by attrs itself at import, as they were before (their annotations strings, as
# vgpu's are under `from __future__ import annotations`): what attrs says of them must not differ.
REFERENCE = r"""
import attrs
from vgpu.basics import Frozen, PriorityCounts as OnDemandCounts, Pool as OnDemandPool

@attrs.frozen(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class PriorityCounts(Frozen):
    low: "int" = 0
    medium: "int" = 0
    high: "int" = 0

    def __init__(self, low=0, medium=0, high=0):
        self._set(low=low, medium=medium, high=high)

@attrs.frozen(init=False, repr=False, eq=False, weakref_slot=False, getstate_setstate=False)
class Pool(Frozen):
    pool_id: "str"
    pool_name: "str"
    description: "str | None"
    enabled: "bool"
    counts: "PriorityCounts" = PriorityCounts()
    created_at: "str | None" = None
    updated_at: "str | None" = None

    def __init__(self, pool_id, pool_name, description, enabled, counts=PriorityCounts(), created_at=None, updated_at=None):
        self._set(pool_id=pool_id, pool_name=pool_name, description=description, enabled=enabled, counts=counts,
                  created_at=created_at, updated_at=updated_at)

def described(cls):
    props = repr(attrs.inspect(cls)) if hasattr(attrs, "inspect") else "attrs < 25.4 has no inspect"
    fields = [repr(field).replace("OnDemand", "") for field in attrs.fields(cls)]
    return {"props": props, "fields": fields, "match_args": cls.__match_args__}

# attrs.inspect first: it reads the class's __dict__ itself, before anything else has asked
result = {"on_demand": [described(OnDemandPool), described(OnDemandCounts)], "decorated": [described(Pool), described(PriorityCounts)]}
"""


def test_attrs_describes_them_as_it_describes_the_same_classes_it_decorated_itself():
    result = _fresh(REFERENCE)
    assert result["on_demand"] == result["decorated"]
    assert "is_frozen=True" in result["on_demand"][0]["props"] or "no inspect" in result["on_demand"][0]["props"]


SUBCLASSES = r"""
import attr, attrs, cattrs
from vgpu.basics import Pool, PriorityCounts

class MyPool(Pool):  # a plain subclass, as a user may write: the same fields
    def label(self): return self.pool_id

class TaggedPool(Pool):
    __slots__ = ()
    def label(self): return f"{self.pool_id}:{self.pool_name}"

@attrs.frozen(init=False)
class NotedPool(Pool):  # a user's attrs subclass adding a field
    note: str = ""
    def __init__(self, *args, note="", **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "note", note)

@attrs.define
class Annotated(Pool):  # a mutable attrs subclass: attrs' own __init__ sets the fields
    note: str = ""

@attr.s(auto_attribs=True)
class Counts(PriorityCounts):  # the old-style API
    spare: int = 0

class Named(Pool):  # its own __init__, through attrs' hook for one
    __slots__ = ()
    def __init__(self, pool_id, pool_name):
        self.__attrs_init__(pool_id, pool_name, None, True)

tagged = TaggedPool("A", "Pool A", None, True)
annotated = Annotated("A", "Pool A", None, True, note="n")
refused = []
for target, name in ((annotated, "pool_id"), (annotated, "note"), (MyPool("A", "Pool A", None, True), "extra")):
    try:
        setattr(target, name, "B")  # a subclass of a frozen class is frozen too, as it was
    except attrs.exceptions.FrozenInstanceError:
        refused.append(name)
result = {
    "frozen_to_attrs": [attrs.inspect(Annotated).is_frozen, attrs.inspect(Counts).is_frozen],
    "hashable": len({annotated, Annotated("A", "Pool A", None, True, note="n"), Counts(1, 2, 3, spare=4)}),
    "annotated": repr(annotated),
    "refused": refused,
    "counts": repr(Counts(1, 2, 3, spare=4)),
    "named": repr(Named("B", "Pool B")),
    "labels": [MyPool("A", "Pool A", None, True).label(), tagged.label()],
    "has": [attrs.has(MyPool), attrs.has(TaggedPool)],
    "asdict": attrs.asdict(tagged)["pool_name"],
    "repr": repr(tagged),
    "structured": repr(cattrs.Converter().structure({"pool_id": "B", "pool_name": "x", "description": None, "enabled": False}, TaggedPool)),
    "noted": [field.name for field in attrs.fields(NotedPool)][-2:],
    "noted_value": attrs.asdict(NotedPool("A", "Pool A", None, True, note="n"))["note"],
}
"""


def test_a_users_subclass_works_as_a_subclass_of_an_attrs_class_does():
    assert _fresh(SUBCLASSES) == {
        "annotated": "Annotated(pool_id='A', pool_name='Pool A', description=None, enabled=True, "
                     "counts=PriorityCounts(low=0, medium=0, high=0), created_at=None, updated_at=None, note='n')",
        "refused": ["pool_id", "note", "extra"],
        "frozen_to_attrs": [True, True],
        "hashable": 2,
        "counts": "Counts(low=1, medium=2, high=3, spare=4)",
        "named": "Named(pool_id='B', pool_name='Pool B', description=None, enabled=True, "
                 "counts=PriorityCounts(low=0, medium=0, high=0), created_at=None, updated_at=None)",
        "labels": ["A", "A:Pool A"],
        "has": [True, True],
        "asdict": "Pool A",
        "repr": "TaggedPool(pool_id='A', pool_name='Pool A', description=None, enabled=True, "
                "counts=PriorityCounts(low=0, medium=0, high=0), created_at=None, updated_at=None)",
        "structured": "TaggedPool(pool_id='B', pool_name='x', description=None, enabled=False, "
                      "counts=PriorityCounts(low=0, medium=0, high=0), created_at=None, updated_at=None)",
        "noted": ["updated_at", "note"],
        "noted_value": "n",
    }


# Thread 1 asks first; the description of Pool it builds is held up until a second build of it starts (or 5 s pass). Had
# thread 2 built its own, it could replace the one thread 1 had types resolved on, and cattrs then failed
# on every later call with "Unsupported type: 'int'".
RACE = r"""
import threading
import attrs, cattrs
from vgpu.basics import Pool
real = attrs.make_class
builds, second = [], threading.Event()
def make_class(name, *args, **kwargs):
    builds.append(name)
    if builds.count("Pool") == 1 and name == "Pool":
        second.wait(5)
    elif name == "Pool":
        second.set()
    return real(name, *args, **kwargs)
attrs.make_class = make_class
data = {"pool_id": "A", "pool_name": "Pool A", "description": None, "enabled": True, "counts": {"low": 1, "medium": 0, "high": 2}}
outcomes = {}
def load(name):
    try:
        outcomes[name] = repr(cattrs.Converter().structure(data, Pool).counts)
    except Exception as error:
        outcomes[name] = repr(error)
threads = [threading.Thread(target=load, args=(name,), name=name) for name in ("one", "two")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
load("later")
result = {"builds": sorted(builds), "outcomes": outcomes, "types": [str(field.type) for field in attrs.fields(Pool)][:2]}
"""


def test_threads_asking_at_once_share_one_description():
    counts = "PriorityCounts(low=1, medium=0, high=2)"
    assert _fresh(RACE) == {"builds": ["Pool", "PriorityCounts"], "outcomes": {"one": counts, "two": counts, "later": counts},
                            "types": ["<class 'str'>", "<class 'str'>"]}


def test_a_plain_frozen_value_is_not_an_attrs_class():
    # HostSpec and the command table's values are Frozen without an attrs description: asking finds none
    result = _fresh("import attrs\nfrom vgpu.hostspecs import HostSpec\nfrom vgpu.basics import AttrsOnDemand\n"
                    "result = [attrs.has(HostSpec), attrs.has(AttrsOnDemand), hasattr(HostSpec, '__attrs_attrs__')]")
    assert result == [False, False, False]


def test_a_class_naming_its_own_slots_is_refused_when_defined():
    # The decorator makes the slots from the annotations, as attrs does: slots named as well could disagree.
    with pytest.raises(TypeError, match=r"Odd: frozen_on_demand makes an AttrsOnDemand slotted from its annotations; "
                                        r"it must not name __slots__ itself"):
        @frozen_on_demand()
        class Odd(AttrsOnDemand):
            __slots__ = ("a",)
            a: int


# Thread "builder" asks first and is held inside the build (holding the lock) while the process forks: the
# child, which has no such thread, must build its own description, not wait for that lock forever.
FORK = r"""
import os, signal, threading
import attrs
from vgpu.basics import Pool
real, held, release = attrs.make_class, threading.Event(), threading.Event()
def make_class(*args, **kwargs):
    if threading.current_thread().name == "builder":
        held.set()
        release.wait(30)
    return real(*args, **kwargs)
attrs.make_class = make_class
builder = threading.Thread(target=lambda: attrs.fields(Pool), name="builder")
builder.start()
held.wait(30)
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # a child stuck on the lock is killed rather than hanging the test
    os._exit(0 if [field.name for field in attrs.fields(Pool)][0] == "pool_id" else 3)
release.set()
builder.join()
_, status = os.waitpid(pid, 0)
result = {"child": os.waitstatus_to_exitcode(status), "parent": attrs.fields(Pool)[0].name}
"""


def test_a_child_forked_while_a_thread_builds_the_description_builds_its_own():
    assert _fresh(FORK) == {"child": 0, "parent": "pool_id"}

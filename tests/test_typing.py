"""The library's annotations hold: ``mypy --strict vgpu`` finds nothing (vgpu ships py.typed, so a loose
annotation is an Any in its users' code), and a user's script is checked against the real types: a wrong
argument is an error there, and results have their own types, not Any.

mypy is in the test extra, so it runs wherever the tests do. Both runs use the settings of setup.cfg and
its cache (.mypy_cache, ignored by git): the second run reuses what the first found of the library.
"""

from __future__ import annotations

import subprocess
import sys

from .clikit import REPO


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_mypy_strict_finds_no_error_in_the_library():
    done = _mypy("--strict", "vgpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found"), done.stdout


# A script as a user writes it. Each line that should be refused ends with the error code mypy gives it.
USER_SCRIPT = """\
import attrs

from vgpu import audit, bulk_register, errors, lifecycle, pools, vms
from vgpu.hosts import open_host
from vgpu.store import Store


def yes(plan: lifecycle.ReconfigurePlan) -> bool:
    return plan.needs_restart or not plan.is_noop


with Store("vgpu.db") as store:
    host = open_host("sim:demo")
    reveal_type(vms.list_vms(store)[0])
    reveal_type(vms.list_vms(store)[:10])
    reveal_type(lifecycle.reconfigure_vm(store, host, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", pool="B", confirm=yes))
    reveal_type(pools.list_pools(store)[0].counts.high)
    reveal_type(attrs.evolve(pools.list_pools(store)[0], enabled=False))  # an attrs class to mypy too
    reveal_type(audit.history(store)[0].at)
    plan = bulk_register.plan_registrations(store, host, [{"uuid": "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"}])
    reveal_type(plan.problems[0].row)
    reveal_type(plan.problems.to_pandas())
    lifecycle.reconfigure_vm(host, store, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", pool="B", confirm=yes)  # arg-type
    lifecycle.reconfigure_vm(store, host, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", pool="B", confirm="yes")  # arg-type
    vms.list_vms(store)[0].vm_idd  # attr-defined
    errors.InvalidValue("pool", "C")  # call-arg
    attrs.evolve(pools.list_pools(store)[0], enabeld=False)  # call-arg
"""

REVEALED = [
    "vgpu.models.VM",
    "vgpu.tables.VMList",
    "vgpu.lifecycle.ReconfigureResult",
    "int",
    "vgpu.basics.Pool",
    "str",
    "typing.Hashable",
    "pandas.core.frame.DataFrame",  # pandas-stubs, in the test extra
]


def test_a_users_script_is_checked_against_the_librarys_real_types(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(USER_SCRIPT)
    done = _mypy("--strict", str(script))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    revealed = [line.split('Revealed type is "', 1)[1].rstrip('"').removeprefix("builtins.")  # older mypy: builtins.int
                for line in out.splitlines() if "Revealed type" in line]
    assert revealed == REVEALED, out
    assert _errors_found(out, script.name) == _errors_expected(USER_SCRIPT), out
    assert 'Argument 1 to "reconfigure_vm" has incompatible type "Hypervisor"; expected "Store"' in out
    assert '"VM" has no attribute "vm_idd"' in out



def _errors_expected(text: str) -> dict[int, set[str]]:
    """Line number -> the error code its comment names, for each line of ``text`` that should be refused."""
    return {number: {line.rsplit("# ", 1)[1]} for number, line in enumerate(text.splitlines(), start=1)
            if line.endswith(("# arg-type", "# attr-defined", "# call-arg"))}


def _errors_found(out: str, name: str) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for line in out.splitlines():
        if f"{name}:" in line and ": error: " in line:
            number = int(line.split(f"{name}:", 1)[1].split(":", 1)[0])
            found.setdefault(number, set()).add(line.rsplit("[", 1)[1].rstrip("]"))
    return found


# A Connection's options as a notebook user mistypes them: each method takes its function's options, typed.
CONNECTION_MISTAKES = """\
import vgpu


def move(conn: vgpu.Connection) -> None:
    plan = conn.plan_many([{"vm_uuid": "x", "pool": "B"}])
    conn.apply_many(plan, concurency=8)  # call-arg
    conn.apply_many(plan, concurrency="eight")  # arg-type
    conn.register_planned(conn.plan_registrations([], on_existing="skip"), progres="auto")  # call-arg
    conn.register_many([], on_existing=True)  # arg-type
    conn.recover(take_over="yes")  # arg-type
    conn.history(limit="3")  # arg-type
    conn.reconfigure_vm("x", pool="B")  # call-arg
    conn.list_pools(pool="A")  # call-arg
    conn.recover(policy=None)  # arg-type
"""


def test_a_connections_misspelt_or_mistyped_option_is_a_type_error(tmp_path):
    script = tmp_path / "mistakes.py"
    script.write_text(CONNECTION_MISTAKES)
    done = _mypy("--strict", str(script))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert _errors_found(out, script.name) == _errors_expected(CONNECTION_MISTAKES), out
    assert 'Unexpected keyword argument "concurency" for "apply_many" of "Connection"' in out
    assert 'Argument "concurrency" to "apply_many" of "Connection" has incompatible type "str"; expected "int"' in out
    assert 'Missing named argument "confirm" for "reconfigure_vm" of "Connection"' in out


# Every option given, as the docs give them: accepted.
CONNECTION_OPTIONS = """\
import vgpu
from vgpu.bulk import BulkPlan
from vgpu.lifecycle import Progress, ReconfigurePlan
from vgpu.power import StopPolicy


def yes(plan: ReconfigurePlan) -> bool:
    return True


def every(plan: BulkPlan) -> bool:
    return True


def shown(event: Progress) -> None:
    pass


def work(conn: vgpu.Connection, uuid: str) -> None:
    policy = StopPolicy(5.0, False)
    conn.list_vms(pool="B", priority="high")
    conn.register_vm(uuid, vm_name="render-1", pool="B", priority=2, vm_id=7)
    conn.plan_reconfigure(uuid, pool="A", priority="low", vm_id=None)
    conn.reconfigure_vm(uuid, pool="A", confirm=yes, progress=shown, policy=policy)
    conn.apply_vm(uuid, confirm=yes)
    conn.apply_plan(conn.plan_apply(uuid), progress=shown)
    conn.scan(tolerate_host_errors=True)
    plan = conn.plan_many([{"vm_uuid": uuid, "pool": "B"}])
    conn.apply_many(plan, progress="auto", policy=policy, concurrency=8, per_host=2)
    conn.reconfigure_many([{"vm_uuid": uuid, "pool": "B"}], confirm=every, progress=None, concurrency=2)
    planned = conn.plan_registrations([{"uuid": uuid}], on_existing="update")
    conn.register_planned(planned, progress=shown, concurrency=8)
    conn.register_many([{"uuid": uuid}], on_existing="skip", progress="auto", concurrency=4)
    conn.write_segments([uuid], progress="auto", concurrency=2)
    conn.forget_host("gpu2", confirm=lambda plan: bool(plan.vms))
    conn.history(uuid, limit=3)
    conn.recover(progress=shown, policy=policy, take_over=True)
"""


def test_a_connections_options_given_as_documented_type_check(tmp_path):
    script = tmp_path / "options.py"
    script.write_text(CONNECTION_OPTIONS)
    done = _mypy("--strict", str(script))
    assert done.returncode == 0, done.stdout + done.stderr


# The docs' own idioms around vgpu.connect(), as a notebook writes them: they must check without a complaint.
CONNECTION_SCRIPT = """\
import vgpu
from vgpu import bulk, demo
from vgpu.errors import BulkInterrupted

with vgpu.connect(**demo.sandbox()) as conn:
    print(conn.list_vms().records(), conn.list_pools().to_string(max_rows=5), conn.history(limit=3).to_pandas())
    plan = conn.plan_many([])
    try:
        result = conn.apply_many(plan, progress="auto")
    except BulkInterrupted as stopped:
        result = stopped.partial
        conn.apply_many(bulk.BulkPlan(result.not_started))
    print(result.not_started)
"""


def test_the_docs_connection_idioms_type_check(tmp_path):
    """Connection's tables are the module functions' tables (with records() and to_pandas()), demo.sandbox()
    fits connect()'s keywords, and an interrupt's partial result can stand in for the call's result."""
    script = tmp_path / "notebook_cell.py"
    script.write_text(CONNECTION_SCRIPT)
    done = _mypy("--strict", str(script))
    assert done.returncode == 0, done.stdout + done.stderr


# A user's attrs subclass of a Pool, as mypy's attrs plugin sees it: the pool's defaults are known, so a field
# without one after them is the error attrs raises at run time, and a call giving only the first fields is fine.
SUBCLASS_SCRIPT = """\
import attrs

from vgpu.models import Pool


@attrs.frozen
class Tagged(Pool):
    tag: str = ""


@attrs.frozen
class Owned(Pool):
    owner: str


print(Tagged("A", "Pool A", None, True, tag="x"))
"""


def test_a_users_attrs_subclass_of_a_pool_sees_the_pools_defaults(tmp_path):
    script = tmp_path / "subclass.py"
    script.write_text(SUBCLASS_SCRIPT)
    done = _mypy("--strict", str(script))
    owner = SUBCLASS_SCRIPT.splitlines().index("    owner: str") + 1
    assert _errors_found(done.stdout, script.name) == {owner: {"misc"}}, done.stdout
    assert "Non-default attributes not allowed after default attributes" in done.stdout, done.stdout

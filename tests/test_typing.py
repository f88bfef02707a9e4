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
    reveal_type(audit.history(store)[0].at)
    plan = bulk_register.plan_registrations(store, host, [{"uuid": "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"}])
    reveal_type(plan.problems[0].row)
    reveal_type(plan.problems.to_pandas())
    lifecycle.reconfigure_vm(host, store, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", pool="B", confirm=yes)  # arg-type
    lifecycle.reconfigure_vm(store, host, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", pool="B", confirm="yes")  # arg-type
    vms.list_vms(store)[0].vm_idd  # attr-defined
    errors.InvalidValue("pool", "C")  # call-arg
"""

REVEALED = [
    "vgpu.models.VM",
    "vgpu.tables.VMList",
    "vgpu.lifecycle.ReconfigureResult",
    "int",
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
    expected = {number: line.rsplit("# ", 1)[1] for number, line in enumerate(USER_SCRIPT.splitlines(), start=1)
                if line.endswith(("# arg-type", "# attr-defined", "# call-arg"))}
    found = {}
    for line in out.splitlines():
        if f"{script.name}:" in line and ": error: " in line:
            number = int(line.split(f"{script.name}:", 1)[1].split(":", 1)[0])
            found.setdefault(number, set()).add(line.rsplit("[", 1)[1].rstrip("]"))
    assert found == {number: {code} for number, code in expected.items()}, out
    assert 'Argument 1 to "reconfigure_vm" has incompatible type "Hypervisor"; expected "Store"' in out
    assert '"VM" has no attribute "vm_idd"' in out



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

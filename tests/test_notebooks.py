"""The notebooks, executed for real (nbclient, the python3 kernel of ipykernel) against a simulated host in a
temporary directory; and committed without outputs."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from vgpu import demo, devargs, pools, scan, vms
from vgpu.errors import InvalidValue
from vgpu.hypervisor.sim import SimHost
from vgpu.store import Store
from vgpu.values import parse_uuid

from .conftest import REPO_ROOT

NOTEBOOKS = os.path.join(REPO_ROOT, "notebooks")
REGISTRATION = "bulk_registration.ipynb"
POOL_MOVE = "bulk_pool_move.ipynb"
AT_SCALE = "at_scale.ipynb"


def _execute(name: str, workdir) -> nbformat.NotebookNode:
    """Run a committed notebook in ``workdir`` (beside a copy of the sample CSV) and return it with outputs.
    The kernel inherits this process's environment: VGPU_*, and PYTHONPATH naming this checkout."""
    shutil.copy(os.path.join(NOTEBOOKS, "sample_vms.csv"), workdir)
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    # "python3" is the kernel ipykernel provides itself (jupyter_client runs it with this interpreter).
    client = NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def _output_of(notebook: nbformat.NotebookNode, marker: str) -> str:
    """Everything the one code cell whose source contains ``marker`` showed: streams, HTML and plain text."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and marker in cell.source]
    assert len(cells) == 1, marker
    parts = []
    for output in cells[0].outputs:
        assert output.output_type != "error", output
        if output.output_type == "stream":
            # As printed: the kernel splits one cell's prints into several outputs whenever another stream
            # (progress on stderr) comes between them, at whatever moment the messages happen to arrive.
            parts.append(output.text)
        else:
            parts.extend(output.get("data", {}).get(kind, "") + "\n" for kind in ("text/html", "text/plain"))
    return "".join(parts)


def test_a_cells_prints_read_the_same_however_the_kernel_split_them():
    cell = nbformat.v4.new_code_cell("marker")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="one\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="progress\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="two\nthree\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert _output_of(notebook, "marker") == "one\nprogress\ntwo\nthree\n\n42\n"


def _all_streams(notebook: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)


@pytest.fixture
def sim_env(tmp_path, monkeypatch):
    """VGPU_DB and VGPU_HOST naming a demo-seeded simulated host in tmp_path, which also has the sample
    CSV's VMs (as a real host would have the VMs an admin is about to register)."""
    db, host_file = tmp_path / "vgpu.db", tmp_path / "host.json"
    host = SimHost(host_file)
    demo.seed(host, str(db))
    on_host = {vm.uuid for vm in host.list_vms()}
    with open(os.path.join(NOTEBOOKS, "sample_vms.csv"), newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                uuid = parse_uuid(row["uuid"])
            except InvalidValue:
                continue
            if uuid not in on_host:
                host.add_vm(uuid, row["name"], "halted")
                on_host.add(uuid)
    monkeypatch.setenv("VGPU_DB", str(db))
    monkeypatch.setenv("VGPU_HOST", f"sim:{host_file}")
    workdir = tmp_path / "run"
    workdir.mkdir()
    return db, host, workdir


@pytest.fixture
def own_tmpdir(tmp_path, monkeypatch):
    """Where a notebook without VGPU_DB/VGPU_HOST makes its fresh simulated host."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _check_registration_outputs(notebook: nbformat.NotebookNode) -> None:
    problems = _output_of(notebook, "plan.invalid if")
    assert "5 problems in 5 rows; the plan leaves these rows out" in problems and "nothing was changed" not in problems
    for row, shown in [
        (6, "86552b78-e97b-4bd4-8b34-211ec57e155"),  # bad UUID
        (7, "<td>C</td>"),                           # pool C
        (8, "<td>urgent</td>"),                      # no such priority
        (9, "vm_id 30 is already used by row 3"),    # duplicate vm_id
        (10, "is already used by row 4"),            # duplicate UUID
    ]:
        assert f"<tr><td>{row}</td>" in problems and shown in problems, row
    checked = _output_of(notebook, "plan_registrations")  # rows 4 and 12 both name a VM render-01: registered, with a warning
    assert ("warning: 2 VMs are named render-01: 053cce83-a733-4963-87d9-50c18f59d196 (Pool B, VM ID 23), "
            "dac3ad41-8a9c-4727-9469-52cddf72e2ab (Pool B, VM ID 31)") in checked
    plan_cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip() == "plan")
    plan_html = plan_cell.outputs[0]["data"]["text/html"]
    assert "7 VMs to register; 5 rows refused" in plan_html
    assert [f"<tr><td>{row}</td>" in plan_html for row in (1, 2, 3, 4, 5, 11, 12)] == [True] * 7
    registered = _output_of(notebook, "register_planned")
    assert "7 VMs registered, 0 segments not written" in registered and registered.count("writing-segment") == 7
    status = _output_of(notebook, "conn.status()")
    assert "Total VMs Registered: 27" in status and "Total VMs Unregistered: 3" in status
    assert "Total VMs in System: 30" in status
    assert 'Pool A &quot;Pool A&quot;: 10 VMs; Pool B &quot;Pool B&quot;: 17 VMs' in status
    assert "; 2 pending restart" in status  # VM-21 and VM-23 were running when registered


def _pending_cell(notebook: nbformat.NotebookNode) -> str:
    return _output_of(notebook, "RESTART_PENDING = False")


def test_bulk_registration_on_the_host_and_db_named_by_the_environment(sim_env):
    db, host, workdir = sim_env
    notebook = _execute(REGISTRATION, workdir)
    _check_registration_outputs(notebook)
    assert f"<vgpu.Connection db='{db}' host='sim:" in _output_of(notebook, "getpass")
    assert _pending_cell(notebook).strip() == ("pending restart: VM-23, VM-21\n"  # Pool A first, as everywhere
                                               "Not confirmed: nothing was restarted. Set RESTART_PENDING = True above and run again.")
    with Store(db) as store:
        assert [pool.vm_count for pool in pools.list_pools(store)] == [10, 17]
        assert vms.get(store, "F37F5C03-A43C-58A2-A159-996D5A1D740D").vm_id == 30
        report = scan.status(store, host)
    assert report.total_registered == 27 and not report.drift and not report.missing
    assert [entry.vm.vm_name for entry in report.pending] == ["VM-23", "VM-21"]


def test_bulk_registration_confirmed_restarts_the_vms_pending_restart(sim_env, monkeypatch):
    db, host, workdir = sim_env
    monkeypatch.setenv("VGPU_CONFIRM", "yes")
    notebook = _execute(REGISTRATION, workdir)
    pending = _pending_cell(notebook)
    assert pending.startswith("pending restart: VM-23, VM-21\n")
    assert "restarted 2 VMs with their registered configuration; 0 failed\npending restart now: 0\n" in pending
    assert "stopping" in pending and "started" in pending
    with Store(db) as store:
        assert scan.status(store, host).pending == []


def test_bulk_registration_defaults_to_a_fresh_simulated_host(tmp_path, own_tmpdir):
    notebook = _execute(REGISTRATION, tmp_path)
    _check_registration_outputs(notebook)
    assert "added 7 VMs to the simulated host" in _output_of(notebook, "canonical_uuid")
    assert f"<vgpu.Connection db='{own_tmpdir}" in _output_of(notebook, "getpass")
    assert not os.path.exists(demo.db_path())  # the user's own demo is left alone


def test_bulk_pool_move_confirmed_moves_the_batch_with_progress(sim_env, monkeypatch):
    db, host, workdir = sim_env
    monkeypatch.setenv("VGPU_CONFIRM", "yes")
    notebook = _execute(POOL_MOVE, workdir)
    plan = _output_of(notebook, "conn.plan_many")
    assert "6 VMs: 6 to change, 4 to restart" in plan and plan.count("<td>pool B → A</td>") == 6
    applied = _output_of(notebook, "apply_many")
    assert "moved 6 VMs to Pool A; 0 failed" in applied
    streams = _all_streams(notebook)
    for name in ("VM-13", "VM-15", "VM-16", "VM-17"):  # the running ones: stopped and started again
        assert f"{name}  stopping" in streams and f"{name}  started" in streams, name
    assert [f"[{n}/6]" in streams for n in range(1, 7)] == [True] * 6  # each VM's last report counts the batch
    results = _output_of(notebook, "result if result")
    assert "6 changed, 0 failed" in results and results.count("<td>changed</td>") == 6
    assert "Pool A: 13 VMs, Pool B: 7 VMs, drift: 0, missing: 0" in _output_of(notebook, "conn.status()")
    with Store(db) as store:
        assert [vm.vm_name for vm in vms.list_vms(store, pool="B", priority="medium")] == []
        assert len(vms.list_vms(store, pool="A", priority="medium")) == 8
    assert all(host.power_state(demo.demo_uuid(f"VM-{n}")).value == "running" for n in (13, 15, 16, 17))


def test_bulk_pool_move_without_confirmation_changes_nothing(sim_env):
    db, host, workdir = sim_env
    before_args = {vm.uuid: vm.device_model_args for vm in host.list_vms()}
    with Store(db) as store:
        before = vms.list_vms(store)
    notebook = _execute(POOL_MOVE, workdir)
    assert "Not confirmed: nothing was changed" in _output_of(notebook, "apply_many")
    assert "nothing was applied" in _output_of(notebook, "result if result")
    with Store(db) as store:
        assert vms.list_vms(store) == before
    assert {vm.uuid: vm.device_model_args for vm in host.list_vms()} == before_args


# --- the whole job at scale -------------------------------------------------------------------------------------


def _bad_lines_of(csv_path: str, on_host: set[str]) -> list[int]:
    """The lines of the notebook's CSV (line 1 is the header) that no registration could accept, found here
    from the file itself: a UUID the host does not have (or not a UUID at all), pool C, priority urgent, vm_id 0."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [line for line, row in enumerate(rows, start=2)
            if row["uuid"] not in on_host or row["pool"] == "C" or row["priority"] == "urgent" or row["vm_id"] == "0"]


def _saved_size(outputs) -> int:
    return len(json.dumps(outputs, ensure_ascii=False).encode("utf-8"))


@pytest.mark.slow  # about 5 s in all; it runs in CI (nothing deselects slow: see the test below)
def test_the_at_scale_notebook_runs_the_whole_job_on_2000_vms(tmp_path, own_tmpdir, monkeypatch):
    monkeypatch.setenv("VGPU_DB", str(tmp_path / "not-this.db"))  # the notebook's explicit db and host win
    notebook = _execute(AT_SCALE, tmp_path)
    (workdir,) = glob.glob(str(own_tmpdir / "vgpu-at-scale-*"))
    for cell in notebook.cells:
        assert all(output.output_type != "error" for output in cell.get("outputs", ())), cell.source[:60]
    assert f"<vgpu.Connection db='{workdir}/vgpu.db' host='sim:{workdir}/host.sim'>" in _output_of(notebook, "vgpu.connect(")
    assert not (tmp_path / "not-this.db").exists()
    host = SimHost(os.path.join(workdir, "host.sim"))
    on_host = {vm.uuid for vm in host.list_vms()}
    bad = _bad_lines_of(os.path.join(workdir, "vms.csv"), on_host)
    assert len(on_host) == 2000 and len(bad) == 30

    preview = _output_of(notebook, 'plan = conn.plan_registrations(frame, on_existing="skip")')
    assert "1500 VMs to register; 30 problems in 30 rows" in preview
    assert f"bad lines: {', '.join(map(str, bad))}" in preview
    assert "30 bad rows, the plan leaves these rows out" in preview
    assert [f"<tr><td>{line}</td>" in preview for line in bad] == [True] * 30  # each bad row shown by its line
    assert "1500 VMs registered, 0 segments not written" in _output_of(notebook, "register_planned")
    rerun = _output_of(notebook, "again = conn.plan_registrations")
    assert "re-run: 0 to register, 1500 already registered (skipped), 30 problems" in rerun
    assert "problems about registered VMs: 0" in rerun and "the problems are the bad lines, and only they: True" in rerun
    assert "register_many: 0 registered" in _output_of(notebook, "conn.register_many")
    assert "300 to move from Pool A to Pool B" in _output_of(notebook, "conn.plan_many")
    assert "300 VMs moved, 0 failed" in _output_of(notebook, "conn.apply_many")
    assert "2000 VMs; moved to Pool B: 300" in _output_of(notebook, "to_pandas()")

    status_cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and "conn.status()" in cell.source)
    assert "2000 in system" in _output_of(notebook, "conn.status()")
    assert _saved_size(status_cell.outputs) < 50_000
    assert len(nbformat.writes(notebook).encode("utf-8")) < 150_000

    with Store(os.path.join(workdir, "vgpu.db")) as store:
        registered = vms.list_vms(store)
        report = scan.status(store, host)
    assert len(registered) == 1500 and {vm.vm_id for vm in registered} == set(range(1, 1501))
    assert report.total_registered == 1500 and not report.drift and not report.missing
    segments = {vm.uuid: devargs.parse(vm.device_model_args) for vm in host.list_vms()}
    assert all(segments[vm.vm_uuid].config == vm.config for vm in registered)  # every segment written, as the DB says
    assert sum(segment.present for segment in segments.values()) == 1500
    moved = [entry for entry in report.registered if entry.state == "configured"]  # restarted by the move
    assert len(moved) == 194 and {entry.vm.pool_id for entry in moved} == {"B"}


def test_nothing_deselects_the_slow_tests():
    """The at-scale notebook is marked slow; CI runs plain `python -m pytest`, which must still run it."""
    with open(os.path.join(REPO_ROOT, "setup.cfg"), encoding="utf-8") as handle:
        addopts = next(line for line in handle if line.startswith("addopts"))
    assert "-m" not in addopts.split() and "slow" not in addopts
    for script in ("run", "each-test-file"):
        with open(os.path.join(REPO_ROOT, ".ci", script), encoding="utf-8") as handle:
            assert "slow" not in handle.read(), script


@pytest.mark.parametrize("name", [REGISTRATION, POOL_MOVE, AT_SCALE])
def test_notebooks_are_committed_without_outputs(name):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert notebook.metadata.kernelspec.name == "python3"
    assert "widgets" not in notebook.metadata

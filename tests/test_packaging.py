"""What ships: ``vgpu/py.typed`` (PEP 561: users' type checkers read the library's annotations instead of
treating it as Any) is in the source distribution and in what the wheel packs; and what the extras the docs
name install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from .clikit import REPO


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The files of this checkout (tracked, or new and not ignored), copied: building writes an .egg-info beside setup.cfg."""
    root = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if os.path.exists(REPO / name):  # a file deleted in the work tree but not yet committed is skipped
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    return root


def _build(checkout, code: str) -> None:
    subprocess.run([sys.executable, "-c", code], cwd=checkout, check=True, capture_output=True)


def test_the_sdist_ships_py_typed(checkout, tmp_path):
    _build(checkout, f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})")
    [sdist] = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "vgpu/py.typed" in names and "vgpu/__init__.py" in names


def test_the_wheel_packs_py_typed(checkout, tmp_path):
    """build_py lays out exactly the files a pure-Python wheel packs (bdist_wheel zips its output)."""
    lib = tmp_path / "lib"
    _build(checkout, f"import setuptools; setuptools.setup(script_args=['build_py', '--build-lib', {str(lib)!r}])")
    assert (lib / "vgpu" / "py.typed").is_file() and (lib / "vgpu" / "tables.py").is_file()
    assert not (lib / "shell" / "py.typed").exists()  # the shell is an application, not a typed library


def _extra_requirements(checkout, tmp_path, extra: str) -> dict[str, str]:
    """What the built metadata requires for ``extra``: each distribution's name and version specifier (from
    egg_info's requires.txt, which this setuptools writes without needing the wheel package)."""
    _build(checkout, f"import setuptools; setuptools.setup(script_args=['egg_info', '--egg-base', {str(tmp_path)!r}])")
    [requires] = tmp_path.glob("*.egg-info/requires.txt")
    sections = re.split(r"^\[([^\]]*)\]$", requires.read_text(), flags=re.M)
    lines = dict(zip(sections[1::2], sections[2::2])).get(extra, "").split()
    return {match[1].lower(): match[2] for match in (re.fullmatch(r"([\w.-]+)(.*)", line) for line in lines) if match}


def test_the_notebook_extra_gives_the_widget_progress_bar(checkout, tmp_path):
    # library.md promises progress="auto" draws a widget in a notebook after pip install 'vgpu-admin[notebook]':
    # tqdm.auto draws one only with ipywidgets (else it warns "IProgress not found" and falls back to text),
    # and draws ipywidgets 8's only from tqdm 4.64.1 on (before, the bar shows as JSON in JupyterLab).
    required = _extra_requirements(checkout, tmp_path, "notebook")
    assert set(required) == {"tqdm", "ipywidgets"}
    assert required["tqdm"] == ">=4.64.1" and required["ipywidgets"] == ">=8"
    # CI installs the test extra, which stays without a widget library: the notebooks run headless there
    test = _extra_requirements(checkout, tmp_path, "test")
    assert "pytest" in test and "ipywidgets" not in test

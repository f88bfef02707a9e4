"""The one-shot path never loads prompt_toolkit or the shell's interactive modules (it must start fast),
and the completion engine stays pure. Each check runs in a fresh interpreter, where sys.modules is honest."""

from __future__ import annotations

import json
import subprocess
import sys

from .clikit import REPO

INTERACTIVE = ("prompt_toolkit", "shell.repl", "shell.completer", "shell.refresher", "shell.names", "shell.completion_engine")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it sets ``result``, which comes back as JSON."""
    script = f"import json, sys\n{code}\nprint(json.dumps(result))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_one_shot_command_does_not_import_the_interactive_shell(tmp_path):
    argv = ["--db", str(tmp_path / "v.db"), "--host", f"sim:{tmp_path / 'h.json'}", "list-pools"]
    result = loaded_after(
        "from shell.main import main\n"
        f"code = main({argv!r})\n"
        f"result = {{'code': code, 'loaded': [m for m in {INTERACTIVE!r} if m in sys.modules]}}"
    )
    assert result == {"code": 0, "loaded": []}


# What `vgpu-admin list-pools` (whose start-up bench/cold_start.py measures) does not need: the VM value types
# and code (each attrs class costs about half a millisecond to build), attrs itself (with inspect, ast, dis,
# tokenize..., about half of the start-up: vgpu/basics.py), the hypervisor layer, value parsing, and the
# standard modules other commands use (shutil pulls in zlib, bz2 and lzma; getpass, termios).
NOT_FOR_LIST_POOLS = ("vgpu.models", "vgpu.vms", "vgpu.audit", "vgpu.values", "vgpu.columns", "vgpu.rows",
                      "vgpu.hypervisor", "vgpu.convert", "attr", "attrs", "cattrs", "shutil", "getpass", "shlex", "json")
STANDARD_MODULES = ("shutil", "getpass", "shlex")  # json is the check's own


def test_list_pools_imports_only_what_it_needs(tmp_path):
    db = tmp_path / "v.db"
    subprocess.run([sys.executable, "-m", "shell", "--db", str(db), "list-pools"], cwd=str(REPO), check=True, capture_output=True)
    argv = ["--db", str(db), "list-pools"]  # the file exists: no first-run work
    result = loaded_after(
        # The standard modules among them are forgotten first: site-packages' start-up (.pth files, an
        # editable install's finder) may have imported them here, and not on a clean install.
        f"for name in {STANDARD_MODULES!r}: sys.modules.pop(name, None)\n"
        "before = set(sys.modules)\n"
        "from shell.main import main\n"
        f"code = main({argv!r})\n"
        f"result = {{'code': code, 'loaded': [m for m in {NOT_FOR_LIST_POOLS!r} if m in sys.modules and m not in before]}}"
    )
    assert result == {"code": 0, "loaded": []}


def test_the_completion_engine_does_not_import_prompt_toolkit():
    result = loaded_after(
        "import shell.completion_engine, shell.names, shell.refresher, shell.docs\n"
        "result = [m for m in sys.modules if m.split('.')[0] == 'prompt_toolkit']"
    )
    assert result == []


def test_the_library_imports_neither_prompt_toolkit_nor_the_shell():
    result = loaded_after(
        "import pkgutil, importlib, vgpu\n"
        "for info in pkgutil.walk_packages(vgpu.__path__, 'vgpu.'):\n"
        "    try:\n"
        "        importlib.import_module(info.name)\n"
        "    except ImportError:\n"
        "        pass  # an optional backend SDK (libvirt, XenAPI) that is not installed here\n"
        "result = [m for m in sys.modules if m.split('.')[0] in ('prompt_toolkit', 'shell')]"
    )
    assert result == []


def test_without_the_shell_extra_the_shell_names_its_install_command(tmp_path):
    # As on a host where only 'pip install vgpu-admin' ran: prompt_toolkit cannot be imported at all.
    argv = ["--db", str(tmp_path / "v.db"), "--host", f"sim:{tmp_path / 'h.json'}"]
    result = loaded_after(
        "import io\n"
        "sys.modules['prompt_toolkit'] = None\n"
        "sys.stdin = type('Terminal', (io.StringIO,), {'isatty': lambda self: True})()  # the shell's prompt, not a script\n"
        "from shell.console import Console\n"
        "from shell.main import main\n"
        "err = io.StringIO()\n"
        f"code = main({argv!r}, Console(io.StringIO(), err, lambda q: None))\n"
        "result = {'code': code, 'err': err.getvalue()}"
    )
    assert result == {"code": 2, "err": "error: shell: prompt_toolkit is not installed: pip install 'vgpu-admin[shell]'; "
                                        "one-shot commands work without it\n"}

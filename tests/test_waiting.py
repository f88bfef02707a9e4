"""Waiting for a VM to stop: the deadline set per call (a flag) or per environment (VGPU_CLEAN_TIMEOUT), a
line every few seconds while waiting even when the output is not a terminal, and a first Ctrl-C that ends
the waiting at once and leaves the VM to recover."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from shell.console import Console
from vgpu import config, lifecycle
from vgpu.errors import ConfigError
from vgpu.lifecycle import Progress, StopPolicy
from vgpu.models import PowerState

from .clikit import REPO, SpecHost, run

# --- the deadline, per call ---------------------------------------------------------------------------------


def test_the_environment_sets_the_clean_timeout_between_flags_and_config_files(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("clean_timeout = 300\n")
    settings = config.load(environ={})
    assert (settings.clean_timeout, settings.sources["clean_timeout"]) == (300.0, str(path))
    settings = config.load(environ={"VGPU_CLEAN_TIMEOUT": "45"})
    assert (settings.clean_timeout, settings.sources["clean_timeout"]) == (45.0, "environment")
    settings = config.load({"clean_timeout": 7}, environ={"VGPU_CLEAN_TIMEOUT": "45"})
    assert (settings.clean_timeout, settings.sources["clean_timeout"]) == (7.0, "flag")


def test_a_bad_clean_timeout_in_the_environment_is_one_line_and_exit_2(monkeypatch):
    with pytest.raises(ConfigError) as caught:
        config.load(environ={"VGPU_CLEAN_TIMEOUT": "soon"})
    assert str(caught.value) == ("VGPU_CLEAN_TIMEOUT: invalid clean timeout 'soon': expected a number of seconds "
                                 "from 0 to 86400")
    monkeypatch.setenv("VGPU_CLEAN_TIMEOUT", "-1")
    outcome = run(["list-pools"])
    assert outcome.code == 2
    assert outcome.one_error_line() == ("error: VGPU_CLEAN_TIMEOUT: invalid clean timeout '-1': expected a number of "
                                        "seconds from 0 to 86400")


@pytest.fixture
def spec(tmp_path):
    return SpecHost(tmp_path)


def test_the_clean_timeout_flag_sets_the_wait_of_one_call(spec, monkeypatch):
    uuid = spec.uuid("VM-2")
    spec.sim.set_fault("clean_shutdown", "ignore", uuid)
    monkeypatch.setenv("VGPU_CLEAN_TIMEOUT", "3600")  # the flag wins over the environment
    outcome = spec.cli("set-pool", f"--vm-uuid={uuid}", "--pool=B", "--clean-timeout=0.2", stdin="yes\n")
    assert outcome.code == 0, outcome
    assert f"VM {uuid} did not shut down within 0.2s; forcing it off" in outcome.err_lines
    assert outcome.out_lines[-1] == (f"The VM was forced off (VM {uuid} did not shut down within 0.2s), reconfigured "
                                     "and started again.")


@pytest.mark.parametrize("value", ["soon", "-5", "nan", "90000"])
def test_a_bad_clean_timeout_flag_is_bad_input_and_changes_nothing(spec, value):
    before = spec.files()
    outcome = spec.cli("set-priority", f"--vm-uuid={spec.uuid('VM-2')}", "--priority=low", f"--clean-timeout={value}",
                       stdin="yes\n")
    assert outcome.code == 2
    assert outcome.one_error_line() == (f"error: invalid clean timeout {value!r}: expected a number of seconds from 0 "
                                        "to 86400")
    assert spec.files() == before


# --- progress while waiting -----------------------------------------------------------------------------------


def waiting(seconds: float) -> Progress:
    return Progress("6a7b8c9d-0000-4000-8000-000000000003", "stopping", "waiting for VM-3 to shut down", seconds, 120)


def test_output_that_is_not_a_terminal_gets_a_line_every_few_seconds():
    err = io.StringIO()
    console = Console(io.StringIO(), err, lambda prompt: None, interactive=False)
    console.progress(Progress("6a7b8c9d-0000-4000-8000-000000000003", "stopping", "Shutting down VM-3", 0, 120))
    for second in range(1, 13):
        console.progress(waiting(second + 0.02))
    assert err.getvalue().splitlines() == [
        "Shutting down VM-3",
        "waiting for VM-3 to shut down: 5 s of 120 s",
        "waiting for VM-3 to shut down: 10 s of 120 s",
    ]


def test_a_terminal_gets_one_line_that_counts():
    err = io.StringIO()
    console = Console(io.StringIO(), err, lambda prompt: None, interactive=True)
    console.progress(waiting(3.4))
    assert err.getvalue() == "\r\033[Kwaiting for VM-3 to shut down: 3 s of 120 s"


# --- Ctrl-C -----------------------------------------------------------------------------------------------------


class SlowGuest:
    """A host whose clean shutdown takes ``seconds`` (the guest is busy); everything else is the sim's."""

    def __init__(self, sim, seconds: float) -> None:
        self.sim, self.seconds = sim, seconds
        self.finished = threading.Event()

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        time.sleep(self.seconds)
        self.finished.set()
        return False

    def __getattr__(self, name):
        return getattr(self.sim, name)


def test_ctrl_c_while_waiting_for_a_clean_shutdown_returns_at_once(spec):
    uuid = spec.uuid("VM-2")
    host = SlowGuest(spec.sim, 3)

    def ctrl_c(event: Progress) -> None:
        if event.elapsed:  # the first "still waiting" report: the user presses Ctrl-C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lifecycle.stop_vm(host, uuid, StopPolicy(clean_timeout=60, tick=0.01), ctrl_c)
    assert not host.finished.is_set()  # back before the host call ended


def test_the_first_ctrl_c_ends_a_real_commands_wait_and_leaves_the_vm_to_recover(spec, isolated_environment):
    uuid = spec.uuid("VM-2")
    spec.sim.set_latency("clean_shutdown", 600)  # the guest takes ten minutes to shut down
    settings = isolated_environment / "config" / "vgpu" / "config.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text("clean_timeout = 900\n")  # and we would wait for it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "shell", "set-pool", f"--vm-uuid={uuid}", "--pool=B", *spec.flags]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=str(REPO), env=env)
    try:
        process.stdin.write("yes\n")
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while spec.sim.current_operations(uuid) != ("clean_shutdown",):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)  # not the ten minutes of the shutdown
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, err
    assert err.splitlines()[-1] == "Interrupted. If a change was under way, run 'vgpu-admin recover' to finish or undo it."
    assert spec.sim.power_state(uuid) is PowerState.RUNNING  # the host is still shutting it down
    assert spec.vm("VM-2").pool_id == "A"
    recovered = spec.cli("recover")
    assert recovered.code == 1 and ": later - the host is still carrying out clean_shutdown on the VM" in recovered.out

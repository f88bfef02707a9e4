"""Whether a recorded session is alive (vgpu.sessions.judge): only what this machine can check counts."""

from __future__ import annotations

import subprocess

import pytest

from vgpu import sessions
from vgpu.sessions import Session, Verdict

from .crashkit import wait_until_zombie


@pytest.fixture
def ended_pid() -> int:
    """The PID of a process that has ended and been reaped: in this PID namespace nothing runs it."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def live_process():
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def test_a_session_of_this_host_whose_process_ended_is_dead(ended_pid):
    here = sessions.current()
    assert sessions.judge(Session(here.host, ended_pid, here.boot_id, "1234"))[0] is Verdict.DEAD


@pytest.mark.parametrize("pid_here", ["ended", "live"])
def test_a_session_under_another_host_name_on_this_kernel_cannot_be_checked_here(ended_pid, live_process, pid_here):
    """A container on this machine shares its kernel (so its boot id) but has its own host name and PID
    namespace: its PID means nothing in ours, dead or alive, so the session is another host's (UNKNOWN)."""
    here = sessions.current()
    pid = ended_pid if pid_here == "ended" else live_process.pid
    verdict, why = sessions.judge(Session("ct1", pid, here.boot_id, sessions.process_start(pid)))
    assert verdict is Verdict.UNKNOWN
    assert why == "it ran on another host (ct1: a container on this machine, or this machine under an earlier name)"


def test_a_session_of_another_machine_cannot_be_checked_here(ended_pid):
    session = Session("db-host-2.invalid", ended_pid, "00000000-0000-4000-8000-00000000e15e", "1234")
    assert sessions.judge(session) == (Verdict.UNKNOWN, "it ran on another host (db-host-2.invalid)")


def test_a_session_of_this_host_before_it_restarted_is_dead(live_process):
    here = sessions.current()
    session = Session(here.host, live_process.pid, "00000000-0000-4000-8000-0000000b007", sessions.process_start(live_process.pid))
    assert sessions.judge(session) == (Verdict.DEAD, f"{here.host} has restarted since")


@pytest.fixture
def zombie():
    """A child process that has ended and that its parent (this test) has not reaped yet."""
    process = subprocess.Popen(["true"])
    try:
        wait_until_zombie(process.pid)
        yield process
    finally:
        process.wait()


def test_a_session_whose_process_ended_but_was_not_reaped_is_dead(zombie):
    """A killed session whose parent has not reaped it yet still has its /proc entry (state Z), with its start
    time: it is dead all the same, and must not hold its VM locked and halted."""
    here = sessions.current()
    session = Session(here.host, zombie.pid, here.boot_id, sessions.process_start(zombie.pid))
    assert sessions.judge(session) == (Verdict.DEAD, f"process {zombie.pid} has ended")


@pytest.mark.parametrize("recorded", ["host and PID alone", "no start time", "no boot id"])
def test_a_session_recorded_without_its_boot_id_or_start_time_whose_pid_runs_cannot_be_checked(live_process, recorded):
    """A row of schema 1 (migrated: boot id and start time NULL) names a PID alone: after a reboot, or by chance,
    another process runs under it. That process must not keep the session's VM locked and halted for good: the
    session cannot be told from it, so the admin decides (UNKNOWN: recover --take-over)."""
    here, pid = sessions.current(), live_process.pid
    boot_id, started = {"host and PID alone": (None, None), "no start time": (here.boot_id, None),
                        "no boot id": (None, sessions.process_start(pid))}[recorded]
    verdict, why = sessions.judge(Session(here.host, pid, boot_id, started))
    assert verdict is Verdict.UNKNOWN
    missing = {"host and PID alone": "a boot id and start time", "no start time": "a start time",
               "no boot id": "a boot id"}[recorded]
    assert why == (f"its session was recorded without {missing} (as before schema 2), so vgpu-admin cannot tell it "
                   f"from the process now running as PID {pid}")


def test_a_session_recorded_by_host_and_pid_alone_whose_pid_has_ended_is_dead(ended_pid):
    here = sessions.current()
    assert sessions.judge(Session(here.host, ended_pid)) == (Verdict.DEAD, f"process {ended_pid} has ended")

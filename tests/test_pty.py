"""The real ``vgpu-admin`` in a pseudo-terminal: type part of a UUID, press Tab, run the command, leave.

prompt_toolkit redraws with escape sequences, so the screen text is matched after stripping them, with
regexes and generous timeouts (never asserted on). PROMPT_TOOLKIT_NO_CPR=1 stops it asking the terminal
for the cursor position, which pexpect would never answer.
"""

from __future__ import annotations

import os
import re
import sys

import pexpect
import pytest

from .clikit import REPO, SpecHost

TIMEOUT = 60
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")


class Screen:
    """The child's output with escape sequences removed, read up to what a test waits for."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.raw = ""  # stripped as a whole each time: an escape sequence may be split across reads
        self.position = 0  # in the stripped text: what earlier waits consumed

    def wait_for(self, pattern: str) -> re.Match:
        compiled = re.compile(pattern)
        while True:
            found = compiled.search(ANSI.sub("", self.raw), self.position)
            if found:
                self.position = found.end()
                return found
            try:
                self.raw += self.child.read_nonblocking(4096, timeout=TIMEOUT)
            except (pexpect.TIMEOUT, pexpect.EOF) as error:
                shown = ANSI.sub("", self.raw)[self.position:]
                raise AssertionError(f"never saw {pattern!r}; the screen showed: {shown[-2000:]!r}") from error


@pytest.fixture
def shell(tmp_path, isolated_environment):
    spec = SpecHost(tmp_path)
    env = dict(os.environ, TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1", PYTHONPATH=str(REPO))
    args = ["-m", "shell", "--db", str(spec.db), "--host", f"sim:{spec.host_file}"]
    child = pexpect.spawn(sys.executable, args, env=env, cwd=str(REPO), encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 200))
    yield spec, child, Screen(child)
    if child.isalive():
        child.terminate(force=True)


def test_tab_completes_a_uuid_and_the_command_runs(shell, isolated_environment):
    spec, child, screen = shell
    uuid = spec.uuid("VM-3")
    screen.wait_for(r"vgpu>")
    child.send("show-vm --vm-uuid=" + uuid[:8])
    screen.wait_for(re.escape(uuid) + r"\s+VM-3 · Pool A")  # the menu: the UUID, its VM's name and pool
    child.send("\t")
    screen.wait_for(re.escape(uuid[8:]))  # the rest of the UUID, written into the line
    child.send("\r")
    screen.wait_for(r"VM: VM-3\s+UUID: " + re.escape(uuid))
    screen.wait_for(r"Pool: A\s+Priority: high \(2\)\s+VM ID: 3")
    screen.wait_for(r"vgpu>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (isolated_environment / "data" / "vgpu" / "history").read_text(encoding="utf-8")
    assert f"+show-vm --vm-uuid={uuid}\n" in history  # the line that ran held the whole UUID

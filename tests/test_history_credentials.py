"""Which shell lines the history keeps: none that carries a URI password, whatever the password holds
('/', '#', '?', a quoted space), while lines that only look alike are kept."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell.history import carries_credential


@pytest.mark.parametrize("line", [
    "list-vms --host xapi://root:Zz9/secret@127.0.1.1:44561",
    "list-vms --host=xapi://root:Zz9#secret@h",
    "list-vms --host xapi://root:Zz9?secret@h",
    "--host 'xapi://root:my secret@h'",
    '--host="xapi://root:my secret@h" status',
    "status --host XAPI://root:Zz9secret@h",
    "scan-vms --host qemu+ssh://root:Zz9/secret@kvm/system",
    "scan-vms --host 'xapi://root:unclosed secret@h",
    "VGPU_HOST=gpu1=xapi://root:Zz9@h list-vms",
    "status password=hunter2",
])
def test_a_line_carrying_a_password_is_not_kept(line):
    assert carries_credential(line)


@pytest.mark.parametrize("line", [
    "list-vms --host xapi://root@127.0.1.1:44561",
    "list-vms --host xapis://root@[fd00::5]:443?cafile=/etc/vgpu/ca.pem",
    "set-name --vm-uuid=abc --name='vm: a@b'",
    "scan-vms --host=qemu+ssh://root@kvm3/system --format=json",
    "status",
])
def test_a_line_without_one_is_kept(line):
    assert not carries_credential(line)


@given(password=st.text(min_size=1).filter(lambda text: "\0" not in text))
def test_any_password_quoted_as_a_shell_would_is_found(password):
    uri = f"xapi://root:{password}@127.0.1.1:44561"
    assert carries_credential(f"list-vms --host {shlex.quote(uri)}")
    assert carries_credential(f"list-vms --host={shlex.quote(uri)}")

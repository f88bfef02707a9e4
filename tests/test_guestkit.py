"""The integration suite's reading of a guest's console log (tests/guestkit.py)."""

from __future__ import annotations

from tests import guestkit


def test_only_whole_lines_of_the_console_count(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("boot\r\nVGPU-CONFIG: none\r\nVGPU-GUEST: ready\r\nVGPU-CONFIG: pool=B;pr")  # QEMU still writing
    assert guestkit.printed_configs(console) == ["none"]
    console.write_text(console.read_text() + "iority=0;vm_id=12\r\n")
    assert guestkit.printed_configs(console) == ["none", "pool=B;priority=0;vm_id=12"]


def test_a_guest_that_has_printed_nothing_yet_has_no_configs(tmp_path):
    assert guestkit.printed_configs(tmp_path / "not-yet.log") == []

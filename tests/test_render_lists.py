"""Every list of names joined with ", " quotes a name that holds a comma (vgpu.escape.listed), so one VM
named "db, primary" never reads as two, whichever list it is in."""

from __future__ import annotations

from types import SimpleNamespace

from shell import hints, panel
from vgpu.models import VM, HostVM, PowerState, Priority
from vgpu.naming import SharedName

UUID_1 = "0c0a0000-0000-4000-8000-000000000001"
UUID_2 = "0c0a0000-0000-4000-8000-000000000002"


def test_a_pool_member_named_with_a_comma_is_quoted():
    assert panel.member_text("pool1", "xcp, a") == 'pool1 ("xcp, a")'
    assert panel.member_text("pool1", "xcp-a2") == "pool1 (xcp-a2)"


def test_the_copies_of_a_vm_on_several_hosts():
    copies = tuple(HostVM(UUID_1, name, PowerState.RUNNING, host=host) for host, name in (("gpu1", "db, primary"), ("gpu2", "db")))
    report = SimpleNamespace(conflicts=[SimpleNamespace(vm_uuid=UUID_1, copies=copies, vm=None)])
    line = list(panel._conflict_lines(report))[-1]
    assert 'Hosts: gpu1 ("db, primary", running), gpu2 (db, running) |' in line


def test_the_uuids_a_prefix_starts():
    said = hints.for_bad_uuid("0c0a0000", [(UUID_1, "db, primary"), (UUID_2, "web")])
    assert said == f"; '0c0a0000' starts 2 UUIDs: {UUID_1} (\"db, primary\"), {UUID_2} (web)"


def test_vms_sharing_a_name_in_two_spellings():
    shared = SharedName("DB, primary", (VM(1, UUID_1, "DB, primary", "A", Priority.LOW),
                                        VM(2, UUID_2, "db, primary", "B", Priority.LOW)))
    assert str(shared) == ('2 VMs are named DB, primary (in any case): '
                           f'{UUID_1} ("DB, primary", Pool A, VM ID 1), {UUID_2} ("db, primary", Pool B, VM ID 2); '
                           "commands tell them apart by UUID")


def _listed_elsewhere(name: str) -> str:
    from vgpu import devargs
    from vgpu.scan import ScannedVM

    copy = HostVM(UUID_1, name, PowerState.RUNNING, host="ga")
    entry = ScannedVM(VM(2, UUID_1, name, "A", Priority.LOW), None, devargs.ABSENT, host_known=False, host="gb",
                      listed_elsewhere=copy)
    report = SimpleNamespace(listed_elsewhere=[entry], unreachable=[SimpleNamespace(label="gb", code="HOST_UNREACHABLE")])
    return list(panel._listed_elsewhere_lines(report))[-1]


def test_the_copy_another_host_lists_while_the_vms_host_is_down():
    assert '| Listed by: ga ("beta,x", running) |' in _listed_elsewhere("beta,x")  # as the conflict section quotes it
    assert "| Listed by: ga (beta, running) |" in _listed_elsewhere("beta")


def test_a_name_holding_a_field_separator_is_quoted_in_a_list_inside_a_field():
    """A list of names sits inside one field of a " | " line: a "|" in a name must not read as a field's end."""
    assert '| Listed by: ga ("a | b", running) |' in _listed_elsewhere("a | b")
    copies = (HostVM(UUID_1, "a | b", PowerState.RUNNING, host="gpu1"), HostVM(UUID_1, "a", PowerState.HALTED, host="gpu2"))
    report = SimpleNamespace(conflicts=[SimpleNamespace(vm_uuid=UUID_1, copies=copies, vm=None)])
    assert 'Hosts: gpu1 ("a | b", running), gpu2 (a, halted) |' in list(panel._conflict_lines(report))[-1]

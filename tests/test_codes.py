"""The sentences host error codes read as, whichever backend met them (vgpu.hypervisor.codes)."""

from __future__ import annotations

import pytest

from vgpu.hypervisor import codes

VM = "0b7c1f52-1111-4a2b-9c3d-000000000001"


@pytest.mark.parametrize("needed, available, said", [
    ("4311744512", "1048576000", "(needs 4.0 GiB, 1000 MiB free)"),
    ("536870912", "0", "(needs 512 MiB, 0 bytes free)"),
    ("17179869184", "16106127360", "(needs 16.0 GiB, 15.0 GiB free)"),
])
def test_memory_in_plain_units(needed, available, said):
    assert codes.sentence_for(codes.HOST_NOT_ENOUGH_FREE_MEMORY, [needed, available], VM) == (
        f"not enough free memory on the host to start VM {VM} {said}")


def test_memory_without_byte_counts_says_no_numbers():
    # xapi's host evacuation sends [vm ref] with the same code: no amounts to give, and no ref to show
    assert codes.sentence_for(codes.HOST_NOT_ENOUGH_FREE_MEMORY, ["OpaqueRef:5e1f"], VM) == (
        f"not enough free memory on the host to start VM {VM}")


def test_a_member_not_live():
    assert codes.sentence_for(codes.HOST_NOT_LIVE, [], VM) == (
        f"the pool member chosen to run VM {VM} is not live: the pool master has not heard from it")
    assert codes.sentence_for(codes.HOST_NOT_LIVE, ["xcp2"], VM).startswith("pool member xcp2 is not live")


def test_a_storage_repository_not_named_is_still_a_sentence():
    said = codes.sentence_for(codes.VM_REQUIRES_SR, ["OpaqueRef:vm", "OpaqueRef:sr"], VM)
    assert said.startswith(f"VM {VM} needs a storage repository") and "OpaqueRef" not in said


def test_a_code_without_a_sentence_never_shows_a_ref():
    said = codes.sentence_for("HOST_DISABLED", ["OpaqueRef:host-xcp2"], VM)
    assert said == f"the host refused the operation on VM {VM}: HOST_DISABLED"
    assert codes.sentence_for("SR_BACKEND_FAILURE_46", ["", "The VDI is not available"]).endswith(
        "SR_BACKEND_FAILURE_46 (, The VDI is not available)")

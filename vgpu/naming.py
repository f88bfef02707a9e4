"""VM display names: the order people expect (VM-2 before VM-10), and VMs that share a name.

A name is for display only: every command takes the UUID, and the spec's own Workflow 1 registers a second
"VM-1". So a shared name is accepted, and reported (with each VM's UUID) so that nobody mistakes one VM for
the other in ``status`` or ``scan-vms``. So is a name that is another VM's UUID: copied from a list into a
command, it would act on that other VM.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Iterable, Mapping

import attrs

from .errors import InvalidValue
from .escape import listed
from .models import VM, HostVM
from .values import parse_uuid
from .vms import select_vm, select_vms

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[int | str, ...]:
    """Sort key for names: case-insensitive, runs of digits by their value (VM-1, VM-2, VM-10).

    The split alternates text and digits and always starts with text, so two keys never compare a number
    with a string at the same position.
    """
    parts = _DIGITS.split(name.casefold())
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


@attrs.frozen
class SharedName:
    """Registered VMs (or VMs about to be) whose display names are the same in any case."""

    name: str  # as the first of them (the lowest vm_id) spells it
    vms: tuple[VM, ...]  # by vm_id

    def __str__(self) -> str:
        one_spelling = len({vm.vm_name for vm in self.vms}) == 1
        each = ", ".join(
            f"{vm.vm_uuid} ({'' if one_spelling else f'{listed(vm.vm_name)}, '}Pool {vm.pool_id}, VM ID {vm.vm_id})"
            for vm in self.vms
        )
        case = "" if one_spelling else " (in any case)"
        return f"{len(self.vms)} VMs are named {self.name}{case}: {each}; commands tell them apart by UUID"


def shared_names(conn: sqlite3.Connection, candidates: Iterable[VM]) -> tuple[SharedName, ...]:
    """For each name among ``candidates`` (VMs just registered, or planned) that another VM has too, among
    the registered ones or the candidates: the VMs that have it. Empty when every name is its own."""
    candidates = [vm for vm in candidates if vm.vm_name]
    wanted = {_folded(vm) for vm in candidates}
    if not wanted:
        return ()
    named = {vm.vm_uuid: vm for vm in select_vms(conn) if vm.vm_name and vm.vm_name.casefold() in wanted}
    named.update((vm.vm_uuid, vm) for vm in candidates)  # a planned VM is not in the table yet
    groups: dict[str, list[VM]] = {}
    for vm in sorted(named.values(), key=lambda vm: vm.vm_id):
        groups.setdefault(_folded(vm), []).append(vm)
    return tuple(SharedName(group[0].vm_name or "", tuple(group)) for group in groups.values() if len(group) > 1)


def _folded(vm: VM) -> str:
    """The name of a VM that has one (the only ones compared here), in any case."""
    return (vm.vm_name or "").casefold()


@attrs.frozen
class NamedLikeUUID:
    """A VM whose display name is, as a command reads a UUID (any case, blanks around it), another VM's UUID."""

    vm: VM  # the VM so named
    other_uuid: str
    other_name: str | None  # what the other VM is called (registered, else on the host), if anything

    def __str__(self) -> str:
        other, whose = (self.other_name, self.other_name) if self.other_name else ("another VM", "that VM")
        return (f"VM {self.vm.vm_uuid} is named like {other}'s UUID {self.other_uuid}: "
                f"commands take UUIDs, so this name copied where a UUID goes means {whose}, not this VM")


def named_like_uuid(conn: sqlite3.Connection, vm: VM, listed: Iterable[HostVM] | Mapping[str, HostVM]) -> NamedLikeUUID | None:
    """Whether ``vm``'s name is the UUID of a registered VM or of one in ``listed`` (a host listing already
    made, or such a listing by UUID, as a bulk plan checks a batch against it: no host is asked here); None
    when it is no UUID, its own, or one that names no VM we know."""
    try:
        named = parse_uuid(vm.vm_name)
    except InvalidValue:
        return None
    if named == vm.vm_uuid:
        return None
    registered = select_vm(conn, named)
    if registered is not None:
        return NamedLikeUUID(vm, named, registered.vm_name)
    if isinstance(listed, Mapping):
        on_host = listed.get(named)
    else:
        on_host = next((host_vm for host_vm in listed if host_vm.uuid == named), None)
    return NamedLikeUUID(vm, named, on_host.name or None) if on_host is not None else None

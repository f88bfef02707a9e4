"""A database and a simulated host side by side, for the lifecycle, recovery, scan and bulk tests.

``World`` puts VMs on the host (optionally registered, with their segment written as register_vm would)
and reads back what the tests compare: the DB row, the device-model args, the power state, the journal.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import attrs

from vgpu import attention, audit, devargs, journal, sessions, vms
from vgpu.hypervisor import codes
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, Registration, VMConfig
from vgpu.store import Store


def vm_uuid(number: int) -> str:
    return f"6a7b8c9d-0000-4000-8000-{number:012d}"


def config(pool: str, priority: int, vm_id: int) -> VMConfig:
    return VMConfig(pool, Priority(priority), vm_id)


def other_live_session() -> sessions.Session:
    """A session that is alive and is not this process: the process that started the tests."""
    parent = os.getppid()
    return sessions.Session(socket.gethostname(), parent, sessions.read_boot_id(), sessions.process_start(parent))


def other_live_owner() -> str:
    return other_live_session().label


def hand_over(conn, op_id: int, session: sessions.Session | None = None) -> None:
    """Make journal row ``op_id`` another session's (by default a live one that is not this process)."""
    session = session or other_live_session()
    conn.execute("UPDATE vgpu_operations SET owner = ?, owner_boot_id = ?, owner_started = ? WHERE op_id = ?",
                 (session.label, session.boot_id, session.started, op_id))


@attrs.define
class World:
    store: Store
    sim: SimHost

    @classmethod
    def create(cls, tmp_path: Path, store: Store | None = None) -> "World":
        return cls(store or Store(tmp_path / "vgpu.db"), SimHost(tmp_path / "host.json"))

    def add(
        self,
        number: int,
        power: str = "running",
        cfg: VMConfig | None = None,
        own_args: str = "",
        name: str | None = None,
    ) -> str:
        """Put VM ``number`` on the host; with ``cfg`` also register it and write its segment."""
        uuid = vm_uuid(number)
        name = name or f"vm-{number}"
        args = devargs.merge(own_args, cfg) if cfg is not None else own_args
        self.sim.add_vm(uuid, name, power, args)
        if cfg is not None:
            vms.db_register_many(self.store, [Registration(uuid, name, cfg.pool_id, cfg.priority, cfg.vm_id)])
        return uuid

    def config(self, uuid: str) -> VMConfig | None:
        vm = vms.find(self.store, uuid)
        return None if vm is None else vm.config

    def args(self, uuid: str) -> str:
        return self.sim.get_device_model_args(uuid)

    def segment(self, uuid: str) -> VMConfig | None:
        return devargs.parse(self.args(uuid)).config

    def power(self, uuid: str) -> PowerState:
        return self.sim.power_state(uuid)

    def open_ops(self) -> list[journal.Operation]:
        return journal.unfinished(self.store)

    def marks(self) -> list:
        """The VMs marked as needing attention."""
        with self.store.reading() as conn:
            return attention.select(conn)

    def audit_count(self, uuid: str) -> int:
        return len(audit.history(self.store, uuid))

    def agrees(self, uuid: str) -> bool:
        """The DB row and the VM's segment say the same thing."""
        return devargs.parse(self.args(uuid)).config == vms.get(self.store, uuid).config

    def tables(self) -> dict[str, list[tuple]]:
        """Every row of the tables a refused change must not touch."""
        with self.store.reading() as conn:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("pools", "vms", "vgpu_audit")
            }

    def host_picture(self, uuid: str) -> dict[str, Any]:
        return {"args": self.args(uuid), "power": self.power(uuid), "boots": self.sim.boots(uuid)}


class Recorder:
    """A progress callback that keeps every report."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, event) -> None:
        self.events.append(event)

    @property
    def steps(self) -> list[str]:
        """The steps reported, with repeats of a step ("still waiting") folded into one."""
        folded: list[str] = []
        for event in self.events:
            if not folded or folded[-1] != event.step:
                folded.append(event.step)
        return folded


class FailingProgress(Recorder):
    """A progress callback with a bug (a notebook's dict lookup): it keeps every report, then raises
    KeyError for each report of ``step`` (or of every step when ``step`` is None)."""

    def __init__(self, step: str | None = None) -> None:
        super().__init__()
        self.step = step

    def __call__(self, event) -> None:
        super().__call__(event)
        if self.step is None or event.step == self.step:
            raise KeyError(event.step)


class Blind:
    """The host behind ``sim``, except that it cannot tell what a running VM booted with (as a remote XenAPI
    connection cannot): booted args are None, everything else is the simulated host's."""

    def __init__(self, sim) -> None:
        self.sim = sim

    def list_vms(self):
        return [attrs.evolve(vm, booted_args=None) for vm in self.sim.list_vms()]

    def describe_vm(self, vm_uuid: str):
        return attrs.evolve(self.sim.describe_vm(vm_uuid), booted_args=None)

    def booted_device_model_args(self, vm_uuid: str) -> None:
        self.sim.power_state(vm_uuid)  # an unknown VM is an error, as on every host
        return None

    def reopen(self) -> "Blind":
        return Blind(self.sim.reopen())

    def __getattr__(self, name):
        return getattr(self.sim, name)


class Advising:
    """The host behind ``sim``, with advice of its own for a suspended VM a change refuses (as libvirt has
    for a managed save image, which no resume call resumes: see hypervisor.base.refusal_advice)."""

    ADVICE = "start it and shut it down, then try again"

    def __init__(self, sim) -> None:
        self.sim = sim

    def refusal_advice(self, vm_uuid: str, state: PowerState) -> str | None:
        return self.ADVICE if state is PowerState.SUSPENDED else None

    def reopen(self) -> "Advising":
        return Advising(self.sim.reopen())

    def __getattr__(self, name):
        return getattr(self.sim, name)


class Unsure:
    """The host behind ``sim``, except that, like libvirt, it cannot tell whether a running VM's guest still has
    a shutdown request to carry out (libvirt shows none until the guest powers off): what is under way on a
    running VM is None (cannot tell); on any other, the simulated host's answer."""

    def __init__(self, sim) -> None:
        self.sim = sim

    def current_operations(self, vm_uuid: str):
        operations = self.sim.current_operations(vm_uuid)
        return None if self.sim.power_state(vm_uuid) is PowerState.RUNNING else operations

    def reopen(self) -> "Unsure":
        return Unsure(self.sim.reopen())

    def __getattr__(self, name):
        return getattr(self.sim, name)


class Raising:
    """The host behind ``sim``, except that ``method`` raises ``error`` (an exception instance or class)
    when called for ``vm`` (any VM when None): on its ``nth`` such call only, or on every one from the
    ``nth`` on with ``every``. A bug in a backend, or (with KeyboardInterrupt) Ctrl-C at that step."""

    def __init__(self, sim, method: str, error, vm: str | None = None, nth: int = 1, every: bool = False) -> None:
        self.sim, self.method, self.error, self.vm, self.nth, self.every = sim, method, error, vm, nth, every
        self.calls = 0

    def reopen(self) -> "Raising":
        return Raising(self.sim.reopen(), self.method, self.error, self.vm, self.nth, self.every)

    def __getattr__(self, name):
        real = getattr(self.sim, name)
        if name != self.method:
            return real

        def call(*args, **kwargs):
            if self.vm is None or (args and args[0] == self.vm):
                self.calls += 1
                if self.calls == self.nth or (self.every and self.calls > self.nth):
                    raise self.error
            return real(*args, **kwargs)

        return call


class Transient:
    """The host behind ``sim``, except that the VMs of ``uuids`` are transient, as a libvirt domain with no
    stored definition is: listed and described so, and their args write and every stop refused (VM_IS_TRANSIENT)."""

    def __init__(self, sim, *uuids: str) -> None:
        self.sim, self.uuids = sim, set(uuids)

    def list_vms(self):
        return [attrs.evolve(vm, transient=vm.uuid in self.uuids) for vm in self.sim.list_vms()]

    def describe_vm(self, vm_uuid: str):
        return attrs.evolve(self.sim.describe_vm(vm_uuid), transient=vm_uuid in self.uuids)

    def is_transient(self, vm_uuid: str) -> bool:
        self.sim.power_state(vm_uuid)  # an unknown VM is an error, as on every host
        return vm_uuid in self.uuids

    def _refused(self, vm_uuid: str, call):
        if vm_uuid in self.uuids:
            raise codes.host_error(codes.VM_IS_TRANSIENT, [vm_uuid], vm_uuid)
        return call()

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._refused(vm_uuid, lambda: self.sim.set_device_model_args(vm_uuid, value))

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        return self._refused(vm_uuid, lambda: self.sim.clean_shutdown(vm_uuid, timeout, halted_ok=halted_ok))

    def hard_shutdown(self, vm_uuid: str) -> bool:
        return self._refused(vm_uuid, lambda: self.sim.hard_shutdown(vm_uuid))

    def reopen(self) -> "Transient":
        return Transient(self.sim.reopen(), *self.uuids)

    def __getattr__(self, name):
        return getattr(self.sim, name)

"""A simulated host whose state persists in a JSON file: for the demo, the tests and teaching.

Several processes may share one host file (the xe and XenAPI stand-ins run over it, tests kill processes
mid-operation), so every read-modify-write holds an ``flock`` on a lock file beside it and replaces the
file atomically. Waiting (latencies, a slow guest) happens with the lock released, so concurrent
operations on different VMs overlap as they would on a real host.

Faults and latencies are part of the state, so a test (or a teacher) can set them from outside:

    host = SimHost("/tmp/host.json")
    host.set_fault("start", "fail_if_args_contain:pool=B", vm_uuid)   # won't boot in pool B
    host.set_latency("clean_shutdown", 1.0)

A clean shutdown and a start are requests the host carries out on its own time, whatever becomes of the
client that asked: each is recorded with the moment it completes (``halt_at``, ``start_at``), and until
then :meth:`SimHost.current_operations` names it, as xapi's ``current_operations`` does. A VM's boots
(the args each domain was started with) are recorded when a start completes; a VM added as running is
taken to have booted with the args it was added with. Each boot is a new domain, numbered as Xen numbers
them (one counter for the host), and keeps the whole platform map it was started with: what xenopsd writes
into xenstore, which the xe and XenAPI stand-ins serve from :meth:`SimHost.domains`.

Fault kinds: ``clean_shutdown``: ``ignore`` (the guest never obeys), ``lacks_feature`` (no PV drivers),
``fail`` (the host refuses), ``not_acknowledged`` (the guest does not take the request up:
VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT), ``shutdown_timeout`` (the host's own deadline passes: VM_SHUTDOWN_TIMEOUT);
``hard_shutdown``, ``set_args``, ``list``: ``fail``; ``start``: ``fail`` or
``fail_if_args_contain:TEXT``; ``unreachable`` (any VM, value ``on``). A fault applies to one VM or to
all (``*``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator

from ..models import HostVM, PowerState
from . import codes
from .base import DEFAULT_ARGS_KEY

FAULT_KINDS = ("clean_shutdown", "hard_shutdown", "start", "set_args", "list", "unreachable")
LATENCY_KINDS = ("clean_shutdown", "hard_shutdown", "start", "list", "set_args")
_EMPTY_STATE: dict[str, Any] = {"vms": {}, "faults": {}, "latency": {}, "next_domid": 1}


class SimHost:
    """A simulated host at ``path``. Implements :class:`vgpu.hypervisor.base.Hypervisor`."""

    def __init__(self, path: str | os.PathLike[str], *, args_key: str = DEFAULT_ARGS_KEY, clock: Callable[[], float] = time.time) -> None:
        self.path = os.fspath(path)
        self.uri = f"sim:{self.path}"
        self.args_key = args_key
        self._clock = clock

    # --- state file -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, write: bool = True) -> Iterator[dict[str, Any]]:
        """The state under the host's lock; written back when a writing block finishes without raising.

        Readers do not write back: what they change is only a settled shutdown, which the next caller
        settles again from the same ``halt_at``.
        """
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host directory {directory} does not exist"])
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            state = self._read()
            yield state
            if write:
                self._write(state)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                state = json.load(handle)
        except FileNotFoundError:
            return json.loads(json.dumps(_EMPTY_STATE))
        except (OSError, ValueError) as exc:
            raise codes.host_error(codes.HOST_UNREACHABLE, [f"simulated host file {self.path} is unreadable: {exc}"]) from exc
        for key, value in _EMPTY_STATE.items():
            state.setdefault(key, value if isinstance(value, int) else type(value)())
        return state

    def _write(self, state: dict[str, Any]) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".simhost-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, separators=(",", ":"))
        os.replace(tmp, self.path)

    def _snapshot(self) -> dict[str, Any]:
        with self._locked(write=False) as state:
            return state

    # --- faults and latencies -----------------------------------------------------------------------------

    def set_fault(self, kind: str, value: str | None, vm_uuid: str = "*") -> None:
        """Inject (or, with ``value=None``, clear) a fault for one VM or all of them."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        with self._locked() as state:
            faults = state["faults"].setdefault(kind, {})
            if value is None:
                faults.pop(vm_uuid, None)
            else:
                faults[vm_uuid] = value

    def clear_faults(self) -> None:
        with self._locked() as state:
            state["faults"] = {}

    def set_latency(self, kind: str, seconds: float) -> None:
        if kind not in LATENCY_KINDS:
            raise ValueError(f"unknown latency kind {kind!r}; expected one of {', '.join(LATENCY_KINDS)}")
        with self._locked() as state:
            state["latency"][kind] = float(seconds)

    def _fault(self, state: dict[str, Any], kind: str, vm_uuid: str) -> str | None:
        faults = state["faults"].get(kind, {})
        return faults.get(vm_uuid, faults.get("*"))

    def _check_reachable(self, state: dict[str, Any], vm_uuid: str = "*") -> None:
        if self._fault(state, "unreachable", vm_uuid):
            raise codes.host_error(codes.HOST_UNREACHABLE, ["the simulated host is switched off (fault 'unreachable')"])

    def _latency(self, kind: str) -> float:
        return float(self._snapshot()["latency"].get(kind, 0.0))

    # --- building a host ---------------------------------------------------------------------------------

    def add_vm(self, vm_uuid: str, name: str, power_state: PowerState | str = PowerState.HALTED, device_model_args: str = "", platform: dict[str, str] | None = None) -> None:
        self.add_vms([(vm_uuid, name, power_state, device_model_args, platform)])

    def add_vms(self, rows: Iterable[tuple]) -> None:
        """Add many VMs at once: (uuid, name, power_state, device_model_args[, platform]) tuples."""
        with self._locked() as state:
            for row in rows:
                vm_uuid, name, power, args = row[:4]
                platform = dict(row[4] or {}) if len(row) > 4 else {}
                if args:
                    platform[self.args_key] = args
                power_state = PowerState(power).value
                vm = state["vms"][vm_uuid.lower()] = {
                    "name": name,
                    "power_state": power_state,
                    "platform": platform,
                    "halt_at": None,
                    "start_at": None,
                    "boots": [],
                    "domain": None,
                }
                if power_state == "running":
                    # A VM that is already running booted with what it has now (as far as anyone can tell).
                    vm["domain"] = self._new_domain(state, platform)
                    vm["boots"].append(platform.get(self.args_key, ""))

    def remove_vm(self, vm_uuid: str) -> None:
        with self._locked() as state:
            state["vms"].pop(vm_uuid, None)

    def settle(self) -> None:
        """Carry out now every start and shutdown whose time has come by this host's clock, and write it
        down (readers only see them; a test with a clock ahead uses this to let slow operations finish)."""
        with self._locked() as state:
            for vm in state["vms"].values():
                self._settle(vm)

    def boots(self, vm_uuid: str) -> list[str]:
        """The device-model args each boot of this VM was given, oldest first (what QEMU saw)."""
        return list(self._vm(self._snapshot(), vm_uuid)["boots"])

    # --- the protocol ------------------------------------------------------------------------------------

    def _vm(self, state: dict[str, Any], vm_uuid: str) -> dict[str, Any]:
        self._check_reachable(state, vm_uuid)
        vm = state["vms"].get(vm_uuid.lower())
        if vm is None:
            raise codes.host_error(codes.UUID_INVALID, ["VM", vm_uuid], vm_uuid)
        self._settle(vm)
        return vm

    @staticmethod
    def _new_domain(state: dict[str, Any], platform: dict[str, str]) -> dict[str, Any]:
        """A domain for a VM being started: the host's next domid, and a copy of the platform map it boots
        with (what xenopsd writes into xenstore). Made when the start is asked for, as Xen builds the domain
        first, so every reader of the state file sees the same number."""
        domain = {"domid": state["next_domid"], "platform": dict(platform)}
        state["next_domid"] += 1
        return domain

    def _settle(self, vm: dict[str, Any]) -> None:
        """A requested clean shutdown or start completes when its time comes, whether or not anyone waited."""
        now = self._clock()
        if vm["power_state"] == "running" and vm.get("halt_at") is not None and vm["halt_at"] <= now:
            self._halt(vm)
        if vm.get("start_at") is not None and vm["start_at"] <= now:
            vm["power_state"] = "running"
            vm["domain"] = vm.pop("start_domain", None)
            vm["boots"].append(vm.pop("start_args", ""))
            vm["start_at"] = None

    @staticmethod
    def _halt(vm: dict[str, Any]) -> None:
        vm["power_state"] = "halted"
        vm["halt_at"] = None
        vm["domain"] = None

    @staticmethod
    def _operations(vm: dict[str, Any]) -> tuple[str, ...]:
        pending = []
        if vm.get("start_at") is not None:
            pending.append("start")
        if vm.get("halt_at") is not None:
            pending.append("clean_shutdown")
        return tuple(pending)

    def _refuse_if_busy(self, vm: dict[str, Any], vm_uuid: str) -> None:
        if vm.get("start_at") is not None:
            raise codes.host_error(codes.OTHER_OPERATION_IN_PROGRESS, ["VM", vm_uuid, "start"], vm_uuid)

    def _booted(self, vm: dict[str, Any]) -> str | None:
        if vm["power_state"] != "running":
            return None
        domain = vm.get("domain")
        if domain is not None:
            return domain["platform"].get(self.args_key, "")
        return vm["boots"][-1] if vm["boots"] else None  # a host file written before domains were kept

    def list_vms(self) -> list[HostVM]:
        delay = self._latency("list")
        if delay:
            time.sleep(delay)
        with self._locked(write=False) as state:
            self._check_reachable(state)
            if self._fault(state, "list", "*"):
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated listing failure (fault 'list')"])
            result = []
            for vm_uuid, vm in state["vms"].items():
                self._settle(vm)
                result.append(HostVM(vm_uuid, vm["name"], PowerState(vm["power_state"]),
                                     vm["platform"].get(self.args_key, ""), self._booted(vm)))
            return result

    def power_state(self, vm_uuid: str) -> PowerState:
        with self._locked(write=False) as state:
            return PowerState(self._vm(state, vm_uuid)["power_state"])

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        with self._locked(write=False) as state:
            return self._booted(self._vm(state, vm_uuid))

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        with self._locked(write=False) as state:
            return self._operations(self._vm(state, vm_uuid))

    def clean_shutdown(self, vm_uuid: str, timeout: float) -> bool:
        with self._locked() as state:
            vm = self._vm(state, vm_uuid)
            self._refuse_if_busy(vm, vm_uuid)
            if vm["power_state"] == "halted":
                return True
            if vm["power_state"] != "running":
                raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, "running", vm["power_state"]], vm_uuid)
            fault = self._fault(state, "clean_shutdown", vm_uuid)
            if fault == "lacks_feature":
                raise codes.host_error(codes.VM_LACKS_FEATURE, [vm_uuid], vm_uuid)
            if fault == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated clean shutdown failure"], vm_uuid)
            if fault == "not_acknowledged":
                raise codes.host_error(codes.VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, [vm_uuid], vm_uuid)
            if fault == "shutdown_timeout":
                raise codes.host_error(codes.VM_SHUTDOWN_TIMEOUT, [vm_uuid, "1200"], vm_uuid)
            if fault != "ignore" and vm.get("halt_at") is None:
                vm["halt_at"] = self._clock() + float(state["latency"].get("clean_shutdown", 0.0))
            halt_at = vm.get("halt_at")
        if halt_at is None:  # the guest ignores the request: it will still be running at the deadline
            time.sleep(max(0.0, timeout))
            return False
        wait = halt_at - self._clock()
        if wait > timeout:
            time.sleep(max(0.0, timeout))
            return False
        if wait > 0:
            time.sleep(wait)
        return self.power_state(vm_uuid) is PowerState.HALTED

    def hard_shutdown(self, vm_uuid: str) -> None:
        self._sleep_for("hard_shutdown")
        with self._locked() as state:
            vm = self._vm(state, vm_uuid)
            if self._fault(state, "hard_shutdown", vm_uuid) == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated forced shutdown failure"], vm_uuid)
            self._halt(vm)
            vm["start_at"] = None  # forcing a VM off also ends a start still under way
            vm.pop("start_domain", None)

    def start(self, vm_uuid: str) -> None:
        """Ask for a start and wait until it completes (it completes even if the caller is gone by then)."""
        with self._locked() as state:
            vm = self._vm(state, vm_uuid)
            self._refuse_if_busy(vm, vm_uuid)
            if vm["power_state"] != "halted":
                raise codes.host_error(codes.VM_BAD_POWER_STATE, [vm_uuid, "halted", vm["power_state"]], vm_uuid)
            args = vm["platform"].get(self.args_key, "")
            fault = self._fault(state, "start", vm_uuid) or ""
            if fault == "fail" or (fault.startswith("fail_if_args_contain:") and fault.split(":", 1)[1] in args):
                raise codes.host_error(
                    codes.FAILED_TO_START_EMULATOR, [vm_uuid, "vgpu", "Daemon exited unexpectedly"], vm_uuid
                )
            vm["start_at"] = self._clock() + float(state["latency"].get("start", 0.0))
            vm["start_args"] = args
            vm["start_domain"] = self._new_domain(state, vm["platform"])
            start_at = vm["start_at"]
        wait = start_at - self._clock()
        if wait > 0:
            time.sleep(wait)
        with self._locked() as state:
            self._vm(state, vm_uuid)  # settles the start (and writes it down) now that its time has come

    def get_device_model_args(self, vm_uuid: str) -> str:
        with self._locked(write=False) as state:
            return self._vm(state, vm_uuid)["platform"].get(self.args_key, "")

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._sleep_for("set_args")
        with self._locked() as state:
            vm = self._vm(state, vm_uuid)
            if self._fault(state, "set_args", vm_uuid) == "fail":
                raise codes.host_error(codes.INTERNAL_ERROR, ["simulated platform write failure"], vm_uuid)
            if value:
                vm["platform"][self.args_key] = value
            else:
                vm["platform"].pop(self.args_key, None)

    def platform(self, vm_uuid: str) -> dict[str, str]:
        """The VM's whole platform map (the xe and XenAPI stand-ins serve it)."""
        return dict(self._vm(self._snapshot(), vm_uuid)["platform"])

    def domains(self) -> dict[int, tuple[str, dict[str, str]]]:
        """The running domains, by domid: the VM's UUID and the platform map its domain was started with."""
        with self._locked(write=False) as state:
            self._check_reachable(state)
            found = {}
            for vm_uuid, vm in state["vms"].items():
                self._settle(vm)
                if vm.get("domain") is not None and vm["power_state"] != "halted":
                    found[vm["domain"]["domid"]] = (vm_uuid, dict(vm["domain"]["platform"]))
            return found

    def domid(self, vm_uuid: str) -> int:
        """The VM's current domain id, or -1 when it has none (halted), as XAPI reports ``domid``."""
        with self._locked(write=False) as state:
            domain = self._vm(state, vm_uuid).get("domain")
            return -1 if domain is None else int(domain["domid"])

    def set_platform_key(self, vm_uuid: str, key: str, value: str | None) -> None:
        """Set or (``None``) remove any platform key: what ``xe vm-param-set platform:KEY=`` does."""
        with self._locked() as state:
            vm = self._vm(state, vm_uuid)
            if value is None:
                vm["platform"].pop(key, None)
            else:
                vm["platform"][key] = value

    def _sleep_for(self, kind: str) -> None:
        delay = self._latency(kind)
        if delay:
            time.sleep(delay)

    def reopen(self) -> "SimHost":
        return SimHost(self.path, args_key=self.args_key, clock=self._clock)

    def close(self) -> None:
        """Nothing to release: every call opens and closes the state file."""

    def __repr__(self) -> str:
        return f"SimHost({self.path!r})"


"""A loopback XAPI: XenAPI's XML-RPC wire format over a SimHost, for testing the real SDK end to end.

What it reproduces (see xen-api's doc/content/xen-api/wire-protocol.md): every answer is a struct
``{"Status": "Success", "Value": ...}`` or ``{"Status": "Failure", "ErrorDescription": [CODE, *params]}``;
refs are ``OpaqueRef:...`` strings; power states are capitalised (``Running``); 64-bit ints travel as
strings; void is ``""``. Login checks one user and password (or answers ``HOST_IS_SLAVE`` with the
master's address when ``master`` is set); every other call needs a live session ref. Faults set on the
SimHost come back as the XAPI failures a real host sends, with the VM's ref where XAPI puts it (a clean
shutdown's as the failure of its ``Async.VM.clean_shutdown`` task: VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT,
VM_SHUTDOWN_TIMEOUT, INTERNAL_ERROR, VM_LACKS_FEATURE; a start under way as OTHER_OPERATION_IN_PROGRESS); a host
switched off (fault ``unreachable``) drops the connection without answering, as a dead host would.

``calls`` counts calls per method and ``logouts`` counts logouts, for tests to assert on; ``logins`` lists
every login attempt this address received (user, password), so a test can prove a password never reached
an address; ``fail_next`` makes the next call of one method fail with any ErrorDescription; ``die_at``
switches the host off when a method is called (a host that goes down part way through a listing).

A pool: the stand-in can serve a pool of hosts (``host_names``, the master's first) with its running VMs
resident on any of them (``place``): ``host.get_all_records`` and each VM's ``resident_on`` say so, as a
pool master does. tests/standins/xapi_pool.py runs a master with its members, each at its own address.
"""

from __future__ import annotations

import collections
import http.server
import re
import socketserver
import ssl
import threading
import uuid as uuidlib
import xmlrpc.client
from typing import Any, Callable

from vgpu.errors import HostUnreachable, HypervisorError
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState

_SNAPSHOT_ARGS = "-fw_cfg name=opt/vgpu/config,string=pool=A;priority=1;vm_id=1"
# Records a real pool always has besides the guests; the backend must leave all three out.
_EXTRA_VMS = {
    "OpaqueRef:dom0": dict(uuid="00000000-0000-4000-8000-00000000d0d0", name_label="Control domain on host: xcp1",
                           power_state="Running", is_control_domain=True, domid="0"),
    "OpaqueRef:template": dict(uuid="00000000-0000-4000-8000-000000007e77", name_label="Debian Bookworm 12",
                               power_state="Halted", is_a_template=True),
    "OpaqueRef:snapshot": dict(uuid="00000000-0000-4000-8000-000000005a55", name_label="web-1 before upgrade",
                               power_state="Halted", is_a_template=True, is_a_snapshot=True,
                               platform={"device-model-args": _SNAPSHOT_ARGS}),  # snapshots copy platform
}


class Failure(Exception):
    """Answer the current call with Status Failure and this ErrorDescription."""

    def __init__(self, *description: str) -> None:
        self.description = list(description)


class _Unreachable(Exception):
    """Answer nothing at all: the simulated host is off."""


class _Task:
    def __init__(self) -> None:
        self.status = "pending"
        self.error_info: list[str] = []
        self.cancel = threading.Event()


class XapiStandIn:
    """Serves XAPI over ``sim`` on 127.0.0.1 (an ephemeral port) or, with ``socket_path``, a Unix socket."""

    def __init__(self, sim: SimHost, *, user: str = "root", password: str = "xapi-test", master: str | None = None,
                 socket_path: str | None = None, tls: tuple[str, str] | None = None, address: str = "127.0.0.1",
                 port: int = 0, host_names: tuple[str, ...] = ("xcp1",)) -> None:
        self.sim, self.user, self.password, self.master = sim, user, password, master
        self.host_names = tuple(host_names)
        self.residence: dict[str, str] = {}  # VM uuid -> the pool member it runs on (default: the first host)
        self.calls: collections.Counter[str] = collections.Counter()
        self.logins: list[tuple[str, str]] = []
        self.logouts = 0
        self._dies_at: str | None = None
        self._dead = False
        self.sessions: dict[str, str] = {}  # session ref -> originator
        self._refs: dict[str, str] = {}  # VM ref -> uuid
        self._tasks: dict[str, _Task] = {}
        self._failures: dict[str, list[str]] = {}
        self._task_failures: dict[str, list[str]] = {}
        self.sr_names: dict[str, str] = {}  # SR ref -> name_label (the stand-in has no storage otherwise)
        self._lock = threading.Lock()
        self._server = _make_server(self, socket_path, tls, address, port)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._methods: dict[str, Callable[..., Any]] = {
            "VM.get_all_records": self._get_all_records,
            "VM.get_all_records_where": self._get_all_records_where,
            "VM.get_record": lambda ref: self._vm_record(self._uuid(ref)),
            "VM.get_by_uuid": self._get_by_uuid, "VM.get_power_state": self._get_power_state,
            "VM.get_domid": lambda ref: str(self.sim.domid(self._uuid(ref))),
            "VM.get_current_operations": lambda ref: self._current_operations(self._uuid(ref)),
            "VM.hard_shutdown": self._hard_shutdown, "VM.start": self._start, "Async.VM.start": self._async_start,
            "Async.VM.clean_shutdown": self._async_clean_shutdown, "VM.get_platform": self._get_platform,
            "VM.add_to_platform": self._add_to_platform, "VM.remove_from_platform": self._remove_from_platform,
            "task.get_status": lambda t: self._task(t).status, "task.get_result": self._result,
            "task.get_error_info": lambda t: self._task(t).error_info, "task.cancel": self._cancel,
            "task.destroy": self._destroy,
            "host.get_all_records": self._host_records,
            "host.get_name_label": lambda ref: self._name_label(ref, "host", self._host_names_by_ref()),
            "SR.get_name_label": lambda ref: self._name_label(ref, "SR", self.sr_names),
        }

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        return self._server.server_address[0]

    def fail_next(self, method: str, *description: str) -> None:
        self._failures[method] = list(description)

    def fail_next_task(self, method: str, *description: str) -> None:
        """The next ``method`` (an ``Async.`` call) makes a task that fails with this ErrorDescription, as
        xapi reports what goes wrong past its first checks (a member offline, too little memory)."""
        self._task_failures[method] = list(description)

    def die_at(self, method: str) -> None:
        """Answer nothing from the next call of ``method`` on, as a host that went down would."""
        self._dies_at = method

    def place(self, vm_uuid: str, host_name: str) -> None:
        """Make a VM resident on another member of the pool (what a live migration inside the pool does)."""
        if host_name not in self.host_names:
            raise ValueError(f"{host_name} is not a host of this pool ({', '.join(self.host_names)})")
        self.residence[vm_uuid.lower()] = host_name

    def __enter__(self) -> "XapiStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Cancelling every task ends the threads that wait for a guest on its behalf.
        for task in list(self._tasks.values()):
            task.cancel.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # --- dispatch --------------------------------------------------------------------------------------

    def dispatch(self, method: str, params: tuple) -> dict[str, Any]:
        with self._lock:
            self.calls[method] += 1
            if method == self._dies_at:
                self._dead = True
        if self._dead:
            raise _Unreachable()
        try:
            if method in self._failures:
                raise Failure(*self._failures.pop(method))
            if method == "session.login_with_password":
                return _success(self._login(*params))
            session, *args = params
            if session not in self.sessions:
                raise Failure("SESSION_INVALID", str(session))
            if method == "session.logout":
                return _success(self._logout(session))
            if method not in self._methods:
                raise Failure("MESSAGE_METHOD_UNKNOWN", method)
            return _success(self._methods[method](*args))
        except Failure as failure:
            return {"Status": "Failure", "ErrorDescription": failure.description}
        except HostUnreachable:
            raise _Unreachable() from None
        except HypervisorError as exc:  # a SimHost fault: XAPI puts the VM's ref where the sim has its uuid
            return {"Status": "Failure", "ErrorDescription": [exc.code, *map(self._as_ref, exc.details)]}

    def _login(self, user: str, password: str, version: str = "", originator: str = "") -> str:
        with self._lock:
            self.logins.append((user, password))
        if self.master:
            raise Failure("HOST_IS_SLAVE", self.master)
        if (user, password) != (self.user, self.password):
            raise Failure("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
        ref = f"OpaqueRef:{uuidlib.uuid4()}"
        self.sessions[ref] = originator
        return ref

    def _logout(self, session: str) -> str:
        del self.sessions[session]
        self.logouts += 1
        return ""

    # --- VMs -------------------------------------------------------------------------------------------

    def _as_ref(self, word: str) -> str:
        known = {vm_uuid: ref for ref, vm_uuid in self._refs.items()}
        return known.get(word, word)

    def _ref_for(self, vm_uuid: str) -> str:
        ref = self._as_ref(vm_uuid)
        if ref == vm_uuid:
            ref = f"OpaqueRef:{uuidlib.uuid5(uuidlib.NAMESPACE_URL, vm_uuid)}"
            self._refs[ref] = vm_uuid
        return ref

    def _uuid(self, ref: str) -> str:
        if ref not in self._refs:
            raise Failure("HANDLE_INVALID", "VM", ref)
        return self._refs[ref]

    def _record(self, **fields: Any) -> dict[str, Any]:
        # last_booted_record: "" as on every current xapi, which fills it only when a VM suspends (xen-api
        # commit 37dc4fb03c); a running VM's boot arguments are in dom0's xenstore (tests/standins/xenstore-ls).
        record = dict(uuid="", name_label="", name_description="", power_state="Halted", is_a_template=False,
                      is_a_snapshot=False, is_control_domain=False, platform={}, other_config={}, domid="-1",
                      memory_static_max="4294967296", VCPUs_max="2", user_version="1", resident_on="OpaqueRef:NULL",
                      current_operations={}, last_booted_record="")
        record.update(fields)
        return record

    def _get_all_records(self) -> dict[str, dict[str, Any]]:
        records = {ref: self._record(**fields) for ref, fields in _EXTRA_VMS.items()}
        for vm in self.sim.list_vms():
            records[self._ref_for(vm.uuid)] = self._vm_record(vm.uuid)
        return records

    def _vm_record(self, vm_uuid: str) -> dict[str, Any]:
        vm = self.sim.describe_vm(vm_uuid)
        return self._record(uuid=vm.uuid, name_label=vm.name, power_state=_wire_power(vm.power_state),
                            platform=self.sim.platform(vm.uuid), domid=str(self.sim.domid(vm.uuid)),
                            current_operations=self._current_operations(vm.uuid),
                            resident_on=self._resident_on(vm.uuid, vm.power_state))

    def _resident_on(self, vm_uuid: str, power: PowerState) -> str:
        """The member a VM with a domain runs on (xapi says OpaqueRef:NULL for a halted VM)."""
        if power not in (PowerState.RUNNING, PowerState.PAUSED):
            return "OpaqueRef:NULL"
        return _host_ref(self.residence.get(vm_uuid, self.host_names[0]))

    def _host_records(self) -> dict[str, dict[str, Any]]:
        return {_host_ref(name): dict(uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, name)), name_label=name,
                                      hostname=name, enabled=True) for name in self.host_names}

    def _host_names_by_ref(self) -> dict[str, str]:
        return {_host_ref(name): name for name in self.host_names}

    @staticmethod
    def _name_label(ref: str, cls: str, names: dict[str, str]) -> str:
        if ref not in names:
            raise Failure("HANDLE_INVALID", cls, ref)
        return names[ref]

    def _get_all_records_where(self, expr: str) -> dict[str, dict[str, Any]]:
        """Only the query the backend sends, ``field "uuid" = "UUID"``, as xapi answers it ({} for none)."""
        match = re.fullmatch(r'field "uuid" = "([^"]*)"', expr)
        if match is None:
            raise Failure("INTERNAL_ERROR", f"the stand-in does not evaluate {expr!r}")
        found = {ref: record for ref, record in self._get_all_records().items() if record["uuid"] == match.group(1)}
        return found

    def _current_operations(self, vm_uuid: str) -> dict[str, str]:
        """task ref -> operation, as xapi's VM.current_operations (one made-up task ref per operation)."""
        return {f"OpaqueRef:task-{op}-{vm_uuid}": op for op in self.sim.current_operations(vm_uuid)}

    def _get_by_uuid(self, vm_uuid: str) -> str:
        self.sim.power_state(vm_uuid)  # UUID_INVALID ["VM", uuid] for a VM the host does not have
        return self._ref_for(vm_uuid.lower())

    def _get_power_state(self, ref: str) -> str:
        return _wire_power(self.sim.power_state(self._uuid(ref)))

    def _require(self, ref: str, expected: PowerState) -> str:
        vm_uuid = self._uuid(ref)
        actual = self.sim.power_state(vm_uuid)
        if actual is not expected:
            raise Failure("VM_BAD_POWER_STATE", ref, expected.value, actual.value)
        return vm_uuid

    def _hard_shutdown(self, ref: str) -> str:
        self.sim.hard_shutdown(self._require(ref, PowerState.RUNNING))  # halted: VM_BAD_POWER_STATE, as xapi
        return ""

    def _start(self, ref: str, paused: bool, force: bool) -> str:
        self.sim.start(self._uuid(ref))
        return ""

    def _get_platform(self, ref: str) -> dict[str, str]:
        return self.sim.platform(self._uuid(ref))

    def _add_to_platform(self, ref: str, key: str, value: str) -> str:
        vm_uuid = self._uuid(ref)
        if key in self.sim.platform(vm_uuid):
            raise Failure("MAP_DUPLICATE_KEY", "VM", "platform", vm_uuid, key)
        self._write_platform(vm_uuid, key, value)
        return ""

    def _remove_from_platform(self, ref: str, key: str) -> str:
        self._write_platform(self._uuid(ref), key, None)  # an absent key is not an error
        return ""

    def _write_platform(self, vm_uuid: str, key: str, value: str | None) -> None:
        if key == self.sim.args_key:  # through the sim's args path, so its set_args fault and latency apply
            self.sim.set_device_model_args(vm_uuid, value or "")
        else:
            self.sim.set_platform_key(vm_uuid, key, value)

    # --- tasks -----------------------------------------------------------------------------------------

    def _task(self, ref: str) -> _Task:
        if ref not in self._tasks:
            raise Failure("HANDLE_INVALID", "task", ref)
        return self._tasks[ref]

    def _async(self, ref: str, work: Callable[[_Task, str, str], None]) -> str:
        """Start ``work`` as an xapi task on its own thread; its outcome (or XAPI failure) lands in the task."""
        vm_uuid = self._uuid(ref)
        task_ref, task = f"OpaqueRef:{uuidlib.uuid4()}", _Task()
        self._tasks[task_ref] = task

        def run() -> None:
            try:
                work(task, ref, vm_uuid)
            except Failure as failure:
                task.error_info, task.status = failure.description, "failure"
            except HypervisorError as exc:
                task.error_info, task.status = [exc.code, *map(self._as_ref, exc.details)], "failure"

        threading.Thread(target=run, daemon=True).start()
        return task_ref

    def _failing(self, method: str, work: Callable[[_Task, str, str], None]) -> Callable[[_Task, str, str], None]:
        """``work``, or a task failure set by :meth:`fail_next_task` for this call of ``method``."""
        description = self._task_failures.pop(method, None)
        if description is None:
            return work

        def fail(task: _Task, ref: str, vm_uuid: str) -> None:
            raise Failure(*description)

        return fail

    def _async_clean_shutdown(self, ref: str) -> str:
        return self._async(ref, self._failing("Async.VM.clean_shutdown", self._run_clean_shutdown))

    def _run_clean_shutdown(self, task: _Task, ref: str, vm_uuid: str) -> None:
        """xapi checks the power state inside the task, then waits for the guest until cancelled."""
        self._require(ref, PowerState.RUNNING)
        while not task.cancel.is_set():
            if self.sim.clean_shutdown(vm_uuid, timeout=0.05):
                task.status = "success"
                return
        task.status = "cancelled"

    def _async_start(self, ref: str, paused: bool, force: bool) -> str:
        return self._async(ref, self._failing("Async.VM.start", self._run_start))

    def _run_start(self, task: _Task, ref: str, vm_uuid: str) -> None:
        """Past its first checks xapi cannot take a start back: a cancel then changes nothing, as here."""
        self._require(ref, PowerState.HALTED)
        self.sim.start(vm_uuid)
        task.status = "success"

    def _result(self, task_ref: str) -> str:
        self._task(task_ref)
        return ""  # clean_shutdown and start return void, which XAPI sends as ""

    def _destroy(self, task_ref: str) -> str:
        self._task(task_ref)
        del self._tasks[task_ref]
        return ""

    def _cancel(self, task_ref: str) -> str:
        task = self._task(task_ref)
        if task.status == "pending":
            task.status = "cancelling"
            task.cancel.set()
        return ""


def _host_ref(name: str) -> str:
    return f"OpaqueRef:host-{name}"


def _success(value: Any) -> dict[str, Any]:
    return {"Status": "Success", "Value": value}


def _wire_power(state: PowerState) -> str:
    return state.value.capitalize()


class _Handler(http.server.BaseHTTPRequestHandler):
    """POST an XML-RPC call, get the XAPI struct back. HTTP/1.0: one call per connection, so stopping the
    server leaves no keep-alive connection answering behind its back."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        params, method = xmlrpc.client.loads(body)
        try:
            answer = self.server.standin.dispatch(method, params)  # type: ignore[attr-defined]
        except _Unreachable:
            self.close_connection = True
            return
        payload = xmlrpc.client.dumps((answer,), methodresponse=True, allow_none=True).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
        pass


class _TCPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-call (timeouts under test) is expected


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _make_server(standin: XapiStandIn, socket_path: str | None, tls: tuple[str, str] | None, address: str,
                 port: int) -> socketserver.BaseServer:
    if socket_path:
        server: Any = _UnixServer(socket_path, _Handler)
    else:
        server = _TCPServer((address, port), _Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.standin = standin
    return server


"""A proxy that records every call made to the object behind it (to prove "one hypervisor call per scan")."""

from __future__ import annotations


class CountingHost:
    """Counts every call made to the host behind it."""

    def __init__(self, host) -> None:
        self.host = host
        self.calls: list[str] = []

    def __getattr__(self, name):
        real = getattr(self.host, name)
        if not callable(real):
            return real

        def counted(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)

        return counted


class UnreachableHost:
    """A host that is down, as a XAPI host whose connection times out: every call is one connection attempt
    that fails (HostUnreachable), recorded in ``attempts``, which its reopened copies (a bulk call's
    workers) share."""

    args_quoted = False

    def __init__(self, uri: str = "xapi://root@down.example", attempts: list[str] | None = None) -> None:
        self.uri = uri
        self.attempts: list[str] = [] if attempts is None else attempts

    def _attempt(self, name: str):
        from vgpu.hypervisor import codes

        self.attempts.append(name)
        return codes.host_error(codes.HOST_UNREACHABLE, [f"{self.uri} did not answer in time (connect 10 s)"])

    def list_vms(self):
        raise self._attempt("list_vms")

    def describe_vm(self, vm_uuid):
        raise self._attempt("describe_vm")

    def power_state(self, vm_uuid):
        raise self._attempt("power_state")

    def get_device_model_args(self, vm_uuid):
        raise self._attempt("get_device_model_args")

    def set_device_model_args(self, vm_uuid, value):
        raise self._attempt("set_device_model_args")

    def booted_device_model_args(self, vm_uuid):
        raise self._attempt("booted_device_model_args")

    def current_operations(self, vm_uuid):
        raise self._attempt("current_operations")

    def clean_shutdown(self, vm_uuid, timeout, *, halted_ok=True):
        raise self._attempt("clean_shutdown")

    def hard_shutdown(self, vm_uuid):
        raise self._attempt("hard_shutdown")

    def start(self, vm_uuid):
        raise self._attempt("start")

    def reopen(self):
        return UnreachableHost(self.uri, self.attempts)

    def close(self) -> None:
        pass

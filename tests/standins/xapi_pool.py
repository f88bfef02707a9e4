"""A XAPI pool of stand-ins: a master and its members, each at its own loopback address, on one port.

As in a real pool, every host listens on the same port and only the master serves the API: a member
answers a login with ``HOST_IS_SLAVE`` and the master's address (no port: the client keeps its own).
Addresses are taken from 127.0.0.0/8, which Linux routes to the loopback interface as a whole, so a
client that follows the master really connects to another address, and each stand-in records the login
attempts it received (``logins``): a test can prove a password never reached an address.

The pool's VMs live on one SimHost (the master's view of the pool); running VMs are resident on the
master unless placed on a member (:meth:`XapiPool.place`, a live migration inside the pool).
"""

from __future__ import annotations

import contextlib
import errno
from typing import Iterator

from vgpu.hypervisor.sim import SimHost

from .xapi_server import XapiStandIn


class XapiPool:
    """``addresses`` are the hosts' loopback addresses, the master's first; ``names`` their name labels."""

    def __init__(self, sim: SimHost, addresses: tuple[str, ...], names: tuple[str, ...], *, user: str = "root",
                 password: str = "xapi-pool-pw") -> None:
        if len(addresses) != len(names):
            raise ValueError("one name per address")
        self.sim, self.addresses, self.names, self.user, self.password = sim, addresses, names, user, password
        self.master: XapiStandIn | None = None
        self.members: list[XapiStandIn] = []
        self._stack = contextlib.ExitStack()

    @property
    def port(self) -> int:
        assert self.master is not None, "the pool is not running"
        return self.master.port

    def uri(self, index: int = 0) -> str:
        """The XenAPI URI of host ``index`` (0: the master)."""
        return f"xapi://{self.user}@{self.addresses[index]}:{self.port}"

    def standin(self, index: int) -> XapiStandIn:
        assert self.master is not None
        return self.master if index == 0 else self.members[index - 1]

    def place(self, vm_uuid: str, name: str) -> None:
        assert self.master is not None
        self.master.place(vm_uuid, name)

    def __enter__(self) -> "XapiPool":
        for _attempt in range(20):
            try:
                self._start()
                return self
            except OSError as exc:  # the master's port was taken on a member's address: try another port
                self._stack.close()
                self._stack = contextlib.ExitStack()
                self.members = []
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise RuntimeError("no free port for a stand-in pool on every address")

    def _start(self) -> None:
        self.master = self._stack.enter_context(XapiStandIn(
            self.sim, user=self.user, password=self.password, address=self.addresses[0], host_names=self.names))
        for address in self.addresses[1:]:
            self.members.append(self._stack.enter_context(XapiStandIn(
                self.sim, user=self.user, password=self.password, master=self.addresses[0], address=address,
                port=self.master.port, host_names=self.names)))

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


@contextlib.contextmanager
def two_pools(tmp_path) -> Iterator[tuple[XapiPool, XapiPool]]:
    """Two pools at once: pool 1 (127.0.1.1 master xcp-a1, members xcp-a2, xcp-a3) and pool 2 (127.0.2.1
    master xcp-b1, member xcp-b2), each over its own SimHost, with one password between them (as
    VGPU_XAPI_PASSWORD gives)."""
    first = XapiPool(SimHost(tmp_path / "pool1.json"), ("127.0.1.1", "127.0.1.2", "127.0.1.3"), ("xcp-a1", "xcp-a2", "xcp-a3"))
    second = XapiPool(SimHost(tmp_path / "pool2.json"), ("127.0.2.1", "127.0.2.2"), ("xcp-b1", "xcp-b2"))
    with first, second:
        yield first, second

"""vgpu: register VMs with the host's GPU-sharing service and reconfigure them safely.

The importable library behind ``vgpu-admin``. It never prints, never reads the terminal and never imports
the shell's UI toolkit, so scripts and notebooks can use every part of it. Start with :func:`vgpu.connect`:
it opens the database and the host that ``vgpu-admin`` would use (``VGPU_DB``, ``VGPU_HOST``, config.toml;
arguments win), and its methods keep the database and each VM's device-model arguments in step, asking
before a restart:

    import vgpu

    with vgpu.connect() as conn:                      # or vgpu.connect(db="/var/lib/vgpu/vgpu.db", host="xe:")
        uuid = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
        conn.register_vm(uuid, vm_name="render-1", pool="B", priority="high")
        conn.reconfigure_vm(uuid, pool="A", confirm=lambda plan: True)   # stop, update, start
        plan = conn.plan_registrations(rows, on_existing="skip")        # many: check every row first,
        conn.register_planned(plan, progress="auto", concurrency=8)     # then register the good ones
        conn.status()                                  # the host beside the database, drift included
        conn.list_pools()

The module functions behind each method take the store and the host explicitly (``conn.store``,
``conn.host``): :mod:`vgpu.pools`, :mod:`vgpu.vms`, :mod:`vgpu.lifecycle`, :mod:`vgpu.scan`,
:mod:`vgpu.bulk`, :mod:`vgpu.bulk_register`, :mod:`vgpu.audit`, :mod:`vgpu.recovery`; for example
``lifecycle.register_vm(store, host, uuid, pool="B")`` or ``bulk_register.plan_registrations(store, host, rows)``.

Database only, for tests and repairs by hand (a VM changed this way keeps its old arguments and shows as
drift until ``repair_vm``): ``vms.db_register``, ``vms.db_register_many``, ``vms.db_update`` and
``vms.db_remove``. See docs/library.md for the whole API.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, which type checkers honour too, without importing typing
if TYPE_CHECKING:  # type checkers and IDEs see the real names; at run time they load on first use
    from .connection import Connection, connect

__version__ = "0.1.0"
__all__ = ["Connection", "connect", "__version__"]

# ``import vgpu`` stays light (every one-shot command's start-up imports it, and it is measured): the
# connection module, which reaches the whole library, loads when one of these names is first used.
_LAZY = {"connect": "connection", "Connection": "connection"}


if not TYPE_CHECKING:  # hidden from type checkers, which then still call a misspelt name an error

    def __getattr__(name: str) -> object:
        if name in _LAZY:
            from . import connection

            value = getattr(connection, name)
            globals()[name] = value  # found directly from now on
            return value
        raise AttributeError(f"module 'vgpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

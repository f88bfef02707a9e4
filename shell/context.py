"""What a command runs against: the settings, the console, and the store and host opened on first use.

Opening is lazy so that a command that needs only the database never connects to the host (a XenAPI login
is a network round trip) and ``help`` touches neither.
"""

from __future__ import annotations

import os
import threading

from vgpu import config, errors, opening
from vgpu.store import Store

from .console import Console


class Context:
    def __init__(self, settings: config.Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self._store: Store | None = None
        self._store_gone = False  # the file the session opened was deleted or replaced: reopened with a line saying so
        self._host = None
        self.on_change = None  # the REPL sets this to refresh its completion names after a change
        self.name_cache = None  # the REPL sets this to its completion names (a NameCache getter)
        self.in_repl = False  # True while the vgpu> shell runs: messages say 'help', not 'vgpu-admin help'
        self.from_script = False  # True while its lines come from a pipe or a file (shell.script): no prompt, no toolbar
        # shell.main sets this to open the vgpu> shell: the shell runs its lines through shell.runner, so
        # the handlers the runner calls may not import it (modules import only downward).
        self.open_shell = None
        self.interrupts = 0  # Ctrl-Cs that ended a command: lines read from a pipe stop at one

    @property
    def store(self) -> Store:
        if self._store is None:
            if self._store_gone:
                self._reopen_store()
            else:
                self._store = opening.open_store(self.settings)
        return self._store

    def check_store(self) -> None:
        """Before each command: the database this session opened must still be the file its path names (one
        stat). Replaced (a backup restored with mv), the file there now is opened, as any is, with a line
        saying so; deleted, the commands that need it are refused until it is back."""
        if self._store is None:
            return
        change = self._store.file_changed()
        if change is None:
            return
        self._store.close()  # closing keeps the old connection's last changes out of the file there now
        self._store, self._store_gone = None, True
        if change == "replaced":
            self._reopen_store()  # now, so that its line comes before the command's output

    def _reopen_store(self) -> None:
        db = self.settings.db
        if not os.path.exists(db):  # opening it would create a new, empty database in its place, unasked
            raise errors.StoreError(db, f"database {db} was deleted since this shell opened it; restore it (the next "
                                    "command opens it again), or leave the shell and start it again for a new, empty database")
        self._store = opening.open_store(self.settings)
        self._store_gone = False
        self.console.error(f"database {db} was replaced; reopened it")
        self.changed()  # the completion names came from the old file

    @property
    def host(self):
        if self._host is None:  # opened on first use: only commands that talk to the host pay for it
            self._host = opening.open_hosts(self.settings, self._password)
        return self._host

    @property
    def policy(self):
        return self.policy_for({})

    def policy_for(self, opts: dict):
        """The stop policy of the settings, with the command's own --clean-timeout when it has one."""
        from vgpu import values

        timeout = None
        if opts.get("clean-timeout") is not None:
            timeout = values.parse_seconds("clean timeout", opts["clean-timeout"])
        return opening.stop_policy(self.settings, timeout)

    def _password(self, who: str | None = None) -> str | None:
        """Called only when a XenAPI login needs it, VGPU_XAPI_PASSWORD is unset and the config names no
        password_file (vgpu.opening reads that first): the terminal, never stdin. None when there is no
        terminal (the library then raises the documented ConfigError). Never echoed or stored. ``who`` names
        the host (its URI, or in a fleet its label and URI): each host's password is asked for on its own.

        Only the main thread asks at the terminal: the shell's background name refresh must not read it while
        prompt_toolkit owns it (it lists the DB alone until a command has asked for the password)."""
        if threading.current_thread() is not threading.main_thread():
            raise errors.ConfigError("VGPU_XAPI_PASSWORD", "not set; the password is asked by a command, not by a background task")
        ask = self.console.read_secret
        return ask(f"Password for {who or self.settings.host}: ") if ask is not None else None

    def known_vms(self) -> list[tuple[str, str]]:
        """(UUID, name) of the VMs a hint on bad input may name: the shell's names (the DB's and the host's),
        else the database's registrations and, when the command opened the host, its VMs (a hint never
        opens a connection or asks for a password). Only for hints, so a failure to look finds none."""
        if self.name_cache is not None:
            return [(vm.uuid, vm.name) for vm in self.name_cache().every]
        from vgpu import vms

        found: dict[str, str] = {}
        try:
            found.update((vm.vm_uuid, vm.vm_name or "") for vm in vms.list_vms(self.store))
        except errors.VgpuError:
            pass
        if self._host is not None:
            try:
                for host_vm in self._host.list_vms():
                    found.setdefault(host_vm.uuid, host_vm.name)
            except errors.VgpuError:
                pass
        return list(found.items())

    def abandon_host(self) -> None:
        """After an interrupt. The interrupted command may still be waiting for the host on a background
        thread (a shutdown under way), with this connection, which serves one thread only: leave it to that
        wait, and let the next command open its own."""
        self._host = None

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def close(self) -> None:
        self._store_gone = False
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._host is not None:
            self._host.close()
            self._host = None

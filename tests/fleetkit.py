"""A fleet under test: simulated hosts and XAPI stand-in pools, one database, and the --host flags naming them.

:class:`FleetWorld` gives each host a label (``gpu1``, ``gpu2``: simulated hosts; ``pool1``, ``pool2``:
XAPI stand-in pools, reached through their masters with one password from VGPU_XAPI_PASSWORD) and runs
``vgpu-admin`` in-process against all of them, or some (``--host LABEL`` narrows a run of the configured
fleet, which :meth:`FleetWorld.configure` writes to config.toml).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from vgpu import devargs
from vgpu.hypervisor.sim import SimHost
from vgpu.models import PowerState, Priority, VMConfig
from vgpu.store import Store

from .clikit import Outcome, run
from .standins.xapi_pool import XapiPool

PASSWORD = "fleet-pool-pw"


def uuid_of(host: int, number: int) -> str:
    """A UUID that says which host made it (host 1..9, VM number)."""
    return f"f1ee7{host:03d}-0000-4000-8000-{number:012d}"


def segment(pool: str, priority: int, vm_id: int) -> str:
    return devargs.render(VMConfig(pool, Priority(priority), vm_id))


class FleetWorld:
    def __init__(self, tmp_path: Path, *, pools: int = 0) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "vgpu.db"
        self.sims = {f"gpu{n}": SimHost(tmp_path / f"gpu{n}.json") for n in (1, 2)}
        self.pools: dict[str, XapiPool] = {}
        self._stack = contextlib.ExitStack()
        for n in range(1, pools + 1):
            pool = XapiPool(SimHost(tmp_path / f"pool{n}.json"), tuple(f"127.0.{10 + n}.{m}" for m in (1, 2, 3)),
                            tuple(f"xcp-{'ab'[n - 1]}{m}" for m in (1, 2, 3)), password=PASSWORD)
            self.pools[f"pool{n}"] = self._stack.enter_context(pool)

    def close(self) -> None:
        self._stack.close()

    @property
    def uris(self) -> dict[str, str]:
        found = {label: f"sim:{sim.path}" for label, sim in self.sims.items()}
        found.update({label: pool.uri() for label, pool in self.pools.items()})
        return found

    def sim_of(self, label: str) -> SimHost:
        return self.sims[label] if label in self.sims else self.pools[label].sim

    @property
    def flags(self) -> list[str]:
        words = ["--db", str(self.db)]
        for label, uri in self.uris.items():
            words += ["--host", f"{label}={uri}"]
        return words

    def configure(self, config_dir: Path) -> None:
        """Write the fleet into config.toml's [hosts], so that --host LABEL can narrow a run."""
        path = config_dir / "vgpu" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f'db = "{self.db}"', "", "[hosts]", *(f'{label} = "{uri}"' for label, uri in self.uris.items())]
        path.write_text("\n".join(lines) + "\n")

    def cli(self, *words: str, stdin: str = "", hosts: list[str] | None = None) -> Outcome:
        """vgpu-admin WORDS against the whole fleet, or (``hosts``) with those --host words instead."""
        flags = self.flags if hosts is None else ["--db", str(self.db), *(w for h in hosts for w in ("--host", h))]
        return run([*words, *flags], stdin=stdin)

    def store(self) -> Store:
        return Store(self.db)


@contextlib.contextmanager
def fleet_world(tmp_path: Path, monkeypatch, *, pools: int = 0) -> Iterator[FleetWorld]:
    monkeypatch.setenv("VGPU_XAPI_PASSWORD", PASSWORD)
    world = FleetWorld(tmp_path, pools=pools)
    try:
        yield world
    finally:
        world.close()


def ok_lines(outcome: Outcome) -> list[str]:
    assert (outcome.code, outcome.err) == (0, ""), outcome
    return outcome.out_lines


__all__ = ["FleetWorld", "fleet_world", "ok_lines", "uuid_of", "segment", "PowerState"]

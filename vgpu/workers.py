"""One journalled operation for each of many VMs, at most ``concurrency`` at a time: the engine of
:func:`vgpu.bulk.apply_many` and :func:`vgpu.bulk_register.write_segments`.

- Each worker thread opens its own database and host connections (a Store serves the thread that opened
  it; a host connection is not shared either) and the batch closes them when it ends.
- Progress reports come from the worker threads one at a time, each with ``done`` and ``total`` filled in,
  and each VM's last report (``finished`` or ``failed``) names it.
- One VM's failure does not stop the others.
- An interrupt stops the batch: Ctrl-C in the calling thread, or a KeyboardInterrupt the progress callback
  raises in a worker (which cuts that VM's operation part way, left open for ``recover``). No VM is begun
  after it; those under way finish. A second Ctrl-C stops waiting for them: the call returns at once, and
  their threads carry on in the background. Each VM's operation stays in progress while its thread works on
  it (:func:`vgpu.journal.at_work`: ``recover``, here or in another process, leaves it alone), and when the
  thread ends it is finished, or released for ``recover`` by that thread. The caller gets every VM's place
  in an :class:`Outcome` and raises :class:`vgpu.errors.BulkInterrupted` with its partial result.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Callable, Generic, Sequence, TypeVar, cast

import attrs

from . import journal, values
from .errors import VgpuError
from .hypervisor.base import Hypervisor
from .power import FAILED, FINISHED, Progress, ProgressCallback, guarded
from .reporting import ProgressOption, reporter
from .store import Store

R = TypeVar("R")
SIGNAL_CHECK_SECONDS = 0.2  # the longest a Ctrl-C waits to be acted on while a batch runs

Work = Callable[[Store, Hypervisor, int, ProgressCallback], R]


@attrs.frozen
class Outcome(Generic[R]):
    """Where each VM of a batch ended up, by its index in the batch."""

    results: dict[int, R]
    failures: dict[int, Exception]
    cut: tuple[int, ...]  # interrupted part way, or still under way when the caller stopped waiting
    not_started: tuple[int, ...]
    interrupt: BaseException | None = None  # what stopped the batch, if anything did
    under_way: tuple[int, ...] = ()  # of ``cut``, those whose thread still worked when the caller stopped waiting

    @property
    def interrupted(self) -> bool:
        return self.interrupt is not None


def check_concurrency(concurrency: object, name: str = "concurrency") -> int:
    """``concurrency`` (or ``per_host``) as a plain int: any integer type, numpy's too, as for a vm_id."""
    return values.parse_at_least(name, concurrency, 1)


class _Turns:
    """Which VMs start next: up to ``concurrency`` under way, at most ``per_group`` of one group (a fleet's
    host), taken from the groups in turn, so that one host's long queue does not hold the others back: the
    next VM comes from the group with work and room that was served least recently."""

    def __init__(self, groups: Sequence[str], concurrency: int, per_group: int | None) -> None:
        self._queues: dict[str, collections.deque[int]] = {}
        for index, group in enumerate(groups):
            self._queues.setdefault(group, collections.deque()).append(index)
        self._groups = groups
        self._running: collections.Counter[str] = collections.Counter()
        self._concurrency = concurrency
        self._per_group = per_group or concurrency
        # The groups with VMs still to begin, the one served least recently first (an ordered set).
        self._turn: dict[str, None] = dict.fromkeys(self._queues)
        self._under_way = 0

    def next(self) -> list[int]:
        started: list[int] = []
        while self._under_way < self._concurrency:
            group = next((group for group in self._turn if self._running[group] < self._per_group), None)
            if group is None:
                break
            del self._turn[group]
            queue = self._queues[group]
            started.append(queue.popleft())
            self._running[group] += 1
            self._under_way += 1
            if queue:
                self._turn[group] = None  # its next VM waits for every other group's turn
        return started

    def finished(self, index: int) -> None:
        self._running[self._groups[index]] -= 1
        self._under_way -= 1


class _Batch:
    """The shared state of one run: what each VM came to, the count of finished VMs, the stop flag."""

    def __init__(self, vm_uuids: Sequence[str], progress: ProgressCallback) -> None:
        self.vm_uuids = vm_uuids
        self.progress = progress
        self.lock = threading.Lock()  # the outcome so far, and one progress report at a time
        self.idle = threading.Condition(self.lock)  # notified when a VM's work ends
        self.stop = threading.Event()
        self.started: set[int] = set()
        self.active = 0  # VMs whose work has begun and not yet ended
        self.results: dict[int, object] = {}
        self.failures: dict[int, Exception] = {}
        self.cut: list[int] = []
        self.interrupts: list[BaseException] = []
        self.done = 0

    def report(self, event: Progress) -> None:
        with self.lock:
            self.progress(attrs.evolve(event, done=self.done, total=len(self.vm_uuids)))

    def finished(self, index: int, result: object = None, error: Exception | None = None) -> None:
        uuid = self.vm_uuids[index]
        with self.lock:
            if error is None:
                self.results[index] = result
            else:
                self.failures[index] = error
            self.done += 1
            if error is None:
                event = Progress(uuid, FINISHED, f"VM {uuid} finished", done=self.done, total=len(self.vm_uuids))
            else:
                event = Progress(uuid, FAILED, f"VM {uuid} failed: {_message(error)}", done=self.done, total=len(self.vm_uuids))
            self.progress(event)

    def ended(self) -> None:
        with self.lock:
            self.active -= 1
            self.idle.notify_all()

    def wait_until_idle(self) -> None:
        """Wait for every VM under way. By the count, not the executor's futures: an interrupt landing inside
        the executor's submit can leave a VM under way whose thread and future neither recorded. In short
        waits: a Ctrl-C whose signal arrives just before a wait blocks does not interrupt it (the handler has
        run already; Python acts on it when the wait returns), so one wait with no deadline could hold a
        second Ctrl-C for a whole VM's cycle."""
        with self.idle:
            while self.active:
                self.idle.wait(timeout=SIGNAL_CHECK_SECONDS)

    def interrupted(self, index: int | None, interrupt: BaseException) -> None:
        with self.lock:
            if index is not None and index not in self.results and index not in self.failures:
                self.cut.append(index)
            self.interrupts.append(interrupt)
        self.stop.set()


def _message(error: Exception) -> str:
    return str(error) if isinstance(error, VgpuError) else f"internal error: {type(error).__name__}: {error}"


def run(
    store: Store,
    host: Hypervisor,
    vm_uuids: Sequence[str],
    work: Work[R],
    *,
    concurrency: int,
    progress: ProgressOption,
    description: str,
    groups: Sequence[str] | None = None,
    per_group: int | None = None,
    began: Callable[[], object] | None = None,
) -> Outcome[R]:
    """Call ``work(store, host, index, progress)`` for each VM of ``vm_uuids`` (its index in them), with the
    worker's own connections, at most ``concurrency`` at a time and, with ``groups`` (each VM's group: its
    host's label in a fleet), at most ``per_group`` of one group. An exception of ``work`` is that VM's
    failure; any BaseException (an interrupt) stops the batch.

    ``began`` is called as the batch begins, before any VM; an interrupt while the batch runs is in the
    Outcome. A caller that changed something before the batch (register_planned) so tells an interrupt that
    reached it before the batch began (none of the batch done) from one after."""
    concurrency = check_concurrency(concurrency)
    if per_group is not None:
        per_group = check_concurrency(per_group, "per_host")
    bar = reporter(progress, len(vm_uuids), description)
    batch = _Batch(vm_uuids, guarded(bar))
    local = threading.local()
    opened: list[tuple[Store, Hypervisor]] = []

    def connections() -> tuple[Store, Hypervisor]:
        if not hasattr(local, "pair"):
            local.pair = (store.reopen(), host.reopen())
            with batch.lock:
                opened.append(local.pair)
        pair: tuple[Store, Hypervisor] = local.pair
        return pair

    def one(index: int) -> None:
        with batch.lock:
            if batch.stop.is_set():
                return
            batch.started.add(index)
            batch.active += 1
        try:
            try:
                with journal.at_work(batch.vm_uuids[index]):  # in progress until this thread is done with it
                    worker_store, worker_host = connections()
                    result = work(worker_store, worker_host, index, batch.report)
            except Exception as error:  # one VM's failure (a bug met by its cycle included) is reported with the others
                batch.finished(index, error=error)
            else:
                batch.finished(index, result)
        except BaseException as interrupt:  # noqa: BLE001 - an interrupt from the progress callback stops the batch
            batch.interrupted(index, interrupt)
        finally:
            batch.ended()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vgpu-bulk")
    turns = _Turns(groups if groups is not None else [""] * len(vm_uuids), concurrency, per_group)
    running: dict[concurrent.futures.Future[None], int] = {}

    def begin_more() -> None:
        if not batch.stop.is_set():
            running.update((pool.submit(one, index), index) for index in turns.next())

    waited = False
    try:
        try:
            if began is not None:
                began()
            begin_more()
            while running:  # in short waits: see _Batch.wait_until_idle
                done, _ = concurrent.futures.wait(running, timeout=SIGNAL_CHECK_SECONDS,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    turns.finished(running.pop(future))
                begin_more()
        except KeyboardInterrupt as interrupt:  # Ctrl-C: begin no more VMs; let those under way finish
            batch.interrupted(None, interrupt)
            batch.wait_until_idle()
        waited = True
    except KeyboardInterrupt as again:  # a second Ctrl-C: stop waiting; the VMs under way go on in their threads
        batch.interrupted(None, again)
    finally:
        pool.shutdown(wait=waited, cancel_futures=True)
        bar.close()
        if waited:
            for worker_store, worker_host in opened:
                worker_store.close()
                worker_host.close()
    with batch.lock:
        under_way = [index for index in sorted(batch.started)
                     if index not in batch.results and index not in batch.failures and index not in batch.cut]
        return Outcome(  # (each result is what work returned)
            cast("dict[int, R]", dict(batch.results)), dict(batch.failures), (*batch.cut, *under_way),
            tuple(index for index in range(len(vm_uuids)) if index not in batch.started),
            batch.interrupts[0] if batch.interrupts else None, tuple(under_way),
        )


def interrupted_sentence(done: int, failed: int, cut: int, not_started: int, leftover: str, *, under_way: int = 0) -> str:
    """What an interrupted batch did, for its BulkInterrupted. ``cut`` counts every VM neither done, failed
    nor left untouched; ``under_way`` those of them whose thread was still at work when the caller stopped
    waiting (a second Ctrl-C)."""
    parts = [f"{done} done", f"{failed} failed"]
    if cut - under_way:
        parts.append(f"{cut - under_way} cut part way (run 'vgpu-admin recover' to finish or undo them)")
    if under_way:
        going = "its change goes on" if under_way == 1 else "their changes go on"
        parts.append(f"{under_way} still under way (this process stopped waiting for {'it' if under_way == 1 else 'them'}: "
                     f"{going} in the background until done, rolled back or left to 'vgpu-admin recover')")
    parts.append(f"{not_started} not started{leftover if not_started else ''}")
    return f"Interrupted: {', '.join(parts)}; the exception's .partial holds the result so far"

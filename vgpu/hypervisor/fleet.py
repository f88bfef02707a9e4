"""A fleet: several hosts, each with a label, behind the one protocol.

:class:`Fleet` implements :class:`~vgpu.hypervisor.base.Hypervisor` itself, so the lifecycle, recovery and
bulk code work on a fleet as on one host. It adds no agent: each member is an ordinary backend (a XAPI
pool master, which reaches every member of its pool; a libvirt URI; a simulated host), and the fleet only
fans calls out and routes them:

- A listing asks every host at once, at most ``parallel`` at a time, one listing each (a constant number
  of round trips per host, whatever the VM count). :meth:`Fleet.survey` keeps each host's answer apart, so a
  host that cannot be reached is reported while the others are listed; :meth:`Fleet.list_vms` (the
  protocol's "every VM") raises instead, naming the host.
- A call about one VM goes to the host that has it. Where a VM is comes from the last listing or, the
  first time, from asking every host at once (one call each); a host that answers "no such VM" later (the
  VM moved) has it looked for again. A UUID found on two hosts (a copy between pools) is refused with
  :class:`~vgpu.errors.DuplicateVM`, never merged; a XAPI pool lists a VM once, wherever in the pool it
  runs, so a migration inside a pool is the same VM.
- A host that cannot be reached is asked once per operation (one command, one bulk call: see
  :func:`one_operation`), not again by each later question of that operation about where a VM is.
- Before calls fan out to worker threads, each member's ``prepare()`` (where it has one) runs on the
  calling thread: a XenAPI host asks for its password there, never on a worker.

Each listed VM carries its host's label (``HostVM.host``). A fleet of one host passes every call straight
through, errors untouched, so a single host behaves exactly as without a fleet.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import functools
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, ParamSpec, Sequence, TypeVar

import attrs

from ..errors import DuplicateVM, HostUnreachable, HypervisorError, VgpuError
from ..models import HostVM, PowerState
from . import codes
from .base import Hypervisor, args_if_changed, args_quoted, booted_after_start, describe, describe_best_reading, is_transient, refusal_advice, set_args_if_unchanged, tells_booted

_Answer = TypeVar("_Answer")
_Params = ParamSpec("_Params")

DEFAULT_PARALLEL = 16


@attrs.frozen
class Listing:
    """One host's answer to a survey: its VMs (each labelled), or the error that stopped it."""

    label: str
    uri: str
    vms: tuple[HostVM, ...] = ()
    error: VgpuError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Whereabouts:
    """Which hosts hold which VM UUIDs, as last seen; shared by a fleet and its reopened copies (bulk
    workers), so a VM located once is not looked for again on each thread."""

    def __init__(self) -> None:
        self._by_label: dict[str, set[str]] = {}
        self._unread: dict[str, tuple[HostVM, ...]] = {}  # listings not looked into yet (a scan never routes)
        self._without: dict[str, set[str]] = {}  # UUID -> the hosts that said "no such VM" since it was last looked for
        self._lock = threading.Lock()

    def listed(self, label: str, vms: tuple[HostVM, ...]) -> None:
        with self._lock:
            self._unread[label] = vms
            self._by_label.pop(label, None)

    def _read(self) -> None:
        for label, vms in self._unread.items():
            self._by_label[label] = {vm.uuid.lower() for vm in vms}
        self._unread.clear()

    def looking_for(self, uuid: str) -> None:
        """Every host is asked again where the VM is: what they answered before no longer counts."""
        with self._lock:
            self._without.pop(uuid, None)

    def found(self, uuid: str, labels: Iterable[str]) -> None:
        with self._lock:
            self._read()
            for label in labels:
                self._by_label.setdefault(label, set()).add(uuid)
                self._without.get(uuid, set()).discard(label)

    def lost(self, uuid: str, label: str) -> None:
        with self._lock:
            self._read()
            self._by_label.get(label, set()).discard(uuid)
            self._without.setdefault(uuid, set()).add(label)

    def answered_without(self, uuid: str) -> set[str]:
        """The hosts that answered "no such VM" since every host was last asked where it is."""
        with self._lock:
            return set(self._without.get(uuid, ()))

    def labels_of(self, uuid: str, order: Iterable[str]) -> list[str]:
        with self._lock:
            self._read()
            return [label for label in order if uuid in self._by_label.get(label, ())]

    def lacks(self, uuid: str, label: str) -> bool:
        """Whether the host's last listing (or a call since) said it has no such VM."""
        with self._lock:
            self._read()
            return label in self._by_label and uuid not in self._by_label[label]


class _DownHosts:
    """The hosts that could not be reached (HostUnreachable: a connect timeout, a refused connection) during
    the operation under way, with the error each gave, so that the operation waits on each once: locating a
    VM asks every host, then asking the host it was last seen on would wait on the same timeout again, and
    so would each worker of a bulk call locating its VM. A host that answered earlier in the operation and
    stops answering (switched off part way through a bulk call) is remembered as down from then on too.
    Only unreachability counts: a host that answers with an error (an internal error, a refusal) is up.

    Scoped to the operation, not expired after a time: hosts are remembered only while one is open (see
    :func:`one_operation`), and forgotten when the last open one ends, so a long-lived fleet (a notebook's
    ``vgpu.connect()``, the ``vgpu>`` shell's) asks a host again at its next command, however soon: a host
    that came back is seen. Shared by a fleet and its reopened copies (a bulk call's workers)."""

    def __init__(self) -> None:
        self._open = 0
        self._errors: dict[str, HostUnreachable] = {}
        self._answered: set[str] = set()  # hosts that answered in this operation: asked without waiting
        self._first_contact: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        with self._lock:
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if not self._open:
                    self._errors.clear()
                    self._answered.clear()
                    self._first_contact.clear()

    def error_of(self, label: str) -> HostUnreachable | None:
        """A copy of the error the host gave earlier in the operation (each caller may reword its own), or None."""
        with self._lock:
            error = self._errors.get(label)
        return None if error is None else copy.copy(error)

    def ask(self, label: str, question: Callable[[], Any]) -> Any:
        """``question()`` (asking host ``label``, answering its outcome, an error included), or the error the
        host gave earlier in the operation. Until a host has answered once in the operation, one question to
        it goes at a time: the others (a bulk call's workers) wait for its outcome rather than each waiting
        on the same timeout."""
        error = self.error_of(label)
        if error is not None:
            return error
        with self._lock:
            gate = None if not self._open or label in self._answered else self._first_contact.setdefault(label, threading.Lock())
        if gate is None:
            return self._remembered(label, question())
        with gate:
            error = self.error_of(label)
            if error is not None:
                return error
            return self._remembered(label, question())

    def _remembered(self, label: str, outcome: Any) -> Any:
        if isinstance(outcome, HostUnreachable):
            self.unreached(label, outcome)
        else:
            with self._lock:
                if self._open:
                    self._answered.add(label)
        return outcome

    def unreached(self, label: str, error: HostUnreachable) -> None:
        """Host ``label`` could not be reached (``error``, as it was raised, before a caller names the host):
        for the rest of the operation under way, it is not asked again where a VM is."""
        with self._lock:
            if self._open and label not in self._errors:
                self._errors[label] = copy.copy(error)
                self._answered.discard(label)


class Fleet:
    """Several hosts by label (in the config's order). ``parallel`` bounds how many are asked at once;
    ``elsewhere`` names the fleet's other hosts, left out of this run (``--host LABEL`` narrows), whose
    VMs a scan leaves out rather than calling them missing (label -> URI, as the config names them, lets a label
    remembered for one of them be told from one of this run's hosts: :attr:`elsewhere_uris`); ``narrowed_by`` says what left them out, as the
    refusals name it (--host, VGPU_HOST or a config's host: see :func:`vgpu.hypervisor.codes.widen_advice`)."""

    def __init__(self, members: Mapping[str, Hypervisor], *, parallel: int = DEFAULT_PARALLEL,
                 elsewhere: Iterable[str] | Mapping[str, str] = (), narrowed_by: str = codes.NARROWED_BY_FLAG,
                 _where: _Whereabouts | None = None, _down: _DownHosts | None = None) -> None:
        if not members:
            raise ValueError("a fleet needs at least one host")
        if "" in members and len(members) > 1:
            raise ValueError("every host of a fleet of several needs a label")
        self.members: dict[str, Hypervisor] = dict(members)
        self.parallel = max(1, int(parallel))
        self.elsewhere = frozenset(elsewhere) - set(self.members)
        self.elsewhere_uris: dict[str, str] = ({label: uri for label, uri in elsewhere.items() if label in self.elsewhere}
                                               if isinstance(elsewhere, Mapping) else {})
        self.narrowed_by = narrowed_by
        self.uri = ",".join(f"{label}={host.uri}" if label else host.uri for label, host in self.members.items())
        self._where = _where or _Whereabouts()
        self._down = _down or _DownHosts()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # made on first fan-out, kept until close()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.members)

    @property
    def several(self) -> bool:
        return len(self.members) > 1

    def member(self, label: str) -> Hypervisor | None:
        """The host with this label in this run, or None."""
        return self.members.get(label)

    def quoted_labels(self) -> frozenset[str]:
        """The labels of the hosts that keep their args as a quoted argument list (libvirt's; see
        :func:`vgpu.hypervisor.base.args_quoted`): a fleet mixes both kinds."""
        return frozenset(label for label, host in self.members.items() if args_quoted(host))

    def args_quoted_for(self, vm_uuid: str) -> bool:
        """Whether the host that has this VM keeps its args quoted (asking where the VM is, as a call would)."""
        return args_quoted(self.members[self.label_of(vm_uuid)])

    def is_transient(self, vm_uuid: str) -> bool:
        """Whether the host that has this VM keeps no definition of it (see :func:`vgpu.hypervisor.base.is_transient`)."""
        return is_transient(self.members[self.label_of(vm_uuid)], vm_uuid)

    def tells_booted(self, vm_uuid: str) -> bool:
        """Whether the host that has this VM can say what it booted with (see :func:`vgpu.hypervisor.base.tells_booted`)."""
        return tells_booted(self.members[self.label_of(vm_uuid)], vm_uuid)

    def refusal_advice(self, vm_uuid: str, state: PowerState) -> str | None:
        """The advice of the host that has this VM (see :func:`vgpu.hypervisor.base.refusal_advice`)."""
        return refusal_advice(self.members[self.label_of(vm_uuid)], vm_uuid, state)

    # --- fanning out ------------------------------------------------------------------------------------

    def _each(self, call: Callable[[Hypervisor], Any], labels: Iterable[str] | None = None) -> dict[str, Any]:
        """``call`` on each host (all, or ``labels``), at most ``parallel`` at once: label → its result, or
        the VgpuError it raised. Anything else (a bug) is raised once every host has answered."""
        targets = list(self.members if labels is None else labels)
        outcomes: dict[str, Any] = {label: error for label in targets
                                    if (error := self._down.error_of(label) or self._prepare(label)) is not None}
        ready = [label for label in targets if label not in outcomes]
        if len(ready) <= 1:
            for label in ready:  # one host: on this thread, as without a fleet
                outcomes[label] = self._ask(label, call)
            return {label: outcomes[label] for label in targets}
        if self._pool is None:  # kept between calls: a notebook's repeated status() does not start threads again
            workers = min(self.parallel, len(self.members))
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vgpu-fleet")
        futures = {label: self._pool.submit(self._ask, label, call) for label in ready}
        try:
            for label, future in futures.items():
                outcomes[label] = future.result()
        finally:
            for future in futures.values():
                future.cancel()  # after an interrupt, ask no host that was not asked yet; a slow one is not awaited
        return {label: outcomes[label] for label in targets}

    def _ask(self, label: str, call: Callable[[Hypervisor], Any]) -> Any:
        """``call`` on the host: its result or the VgpuError it raised (see :meth:`_DownHosts.ask`)."""
        return self._down.ask(label, lambda: _outcome(call, self.members[label]))

    def _prepare(self, label: str) -> VgpuError | None:
        """Let the host do on this thread what it cannot do on a worker (ask for a password)."""
        prepare = getattr(self.members[label], "prepare", None)
        if prepare is None:
            return None
        try:
            prepare()
        except VgpuError as error:
            return error
        return None

    # --- listing ------------------------------------------------------------------------------------------

    def survey(self) -> list[Listing]:
        """Every host's listing, each apart: a host that failed has its error instead of VMs."""
        listings = []
        for label, outcome in self._each(lambda host: host.list_vms()).items():
            uri = self.members[label].uri
            if isinstance(outcome, VgpuError):
                listings.append(Listing(label, uri, (), self._named(label, outcome)))
                continue
            vms = _labelled(list(outcome), label) if label else tuple(outcome)
            self._where.listed(label, vms)
            listings.append(Listing(label, uri, vms))
        return listings

    def survey_answered(self) -> list[Listing]:
        """:meth:`survey`, for a planner whose rows a host that is down holds back: raises that host's
        error (HostUnreachable, typically) when no host answered, since then no row is the bad one."""
        listings = self.survey()
        errors = [listing.error for listing in listings if listing.error is not None]
        if errors and len(errors) == len(listings):
            raise errors[0]
        return listings

    def list_vms(self) -> list[HostVM]:
        """Every guest of every host, each labelled with its host. A host that cannot be listed raises (the
        protocol promises every VM): :meth:`survey` answers with the others."""
        listings = self.survey()
        for listing in listings:
            if listing.error is not None:
                raise listing.error
        return [vm for listing in listings for vm in listing.vms]

    # --- one VM ---------------------------------------------------------------------------------------------

    def label_of(self, vm_uuid: str, *, fresh: bool = False) -> str:
        """The label of the host that has this VM (asking every host once when it is not known yet, or with
        ``fresh`` whatever the fleet remembers); DuplicateVM when two hosts have it."""
        if not self.several:
            return next(iter(self.members))
        key = vm_uuid.lower()
        labels = (None if fresh else self._where.labels_of(key, self.members)) or self._probe(key)
        if len(labels) > 1:
            raise DuplicateVM(key, labels)
        return labels[0]

    def _probe(self, key: str) -> list[str]:
        """Ask every host whether it has the VM (one call each, at once)."""
        found, failed = [], {}
        self._where.looking_for(key)
        for label, outcome in self._each(lambda host: host.power_state(key)).items():
            if isinstance(outcome, HypervisorError) and codes.vm_missing(outcome):
                self._where.lost(key, label)  # what it remembered of this host no longer holds
                continue
            if isinstance(outcome, VgpuError):
                failed[label] = outcome
            else:
                found.append(label)
        if found:
            self._where.found(key, found)
            return found
        if failed:
            label, error = next(iter(failed.items()))
            unreached = HostUnreachable if isinstance(error, HostUnreachable) else HypervisorError
            raise unreached(codes.failure_code(error), f"VM {key} is on none of the hosts that answered, and host {label} could not be "
                                  f"asked ({error})", ["VM", key])
        raise self._missing(key, self.on_no_host(key))

    def on_no_host(self, vm_uuid: str) -> HypervisorError:
        """UUID_INVALID: no host of this run has the VM, every one of them having answered."""
        key = vm_uuid.lower()
        return HypervisorError(codes.UUID_INVALID, f"VM {key} does not exist on any host of the fleet ({', '.join(self.members)})",
                               ["VM", key])

    def check_only_copy(self, vm_uuid: str, found_on: str, last_seen: Sequence[str], *,
                        copies_unknown: Sequence[str] = ()) -> None:
        """Before a change to the VM found on host ``found_on``: every other host of this run it was last seen
        on (``last_seen``: the host it was last seen on, and any that listed a copy of it at the same time) is
        asked too (see :meth:`ask_last_place`), and so is each of ``copies_unknown`` (the hosts whose copies the
        database cannot tell: see :func:`vgpu.locations.copies_unknown_on`). A VM that moved is
        changed where it is now; one still there too is DuplicateVM; and a host that cannot be asked refuses
        the change, since it may still hold a copy that a change made on ``found_on`` alone would leave behind
        with the old configuration (the same vm_id on two VMs). Locating the VM has asked every host already,
        so this asks none again but those it could not tell about."""
        unasked = self.ask_last_place(vm_uuid, found_on, (*last_seen, *copies_unknown))
        if unasked is None:
            outside = self.outside_run(vm_uuid, found_on, last_seen)
            if outside is not None:
                raise outside
            return
        if unasked[0] not in last_seen:
            raise copies_unknown_refusal(vm_uuid.lower(), found_on, *unasked)
        raise left_behind(vm_uuid.lower(), found_on, *unasked, seen_there_too=found_on in last_seen)

    def outside_run(self, vm_uuid: str, found_on: str, last_seen: Sequence[str]) -> HypervisorError | None:
        """The refusal of a change to the VM found on host ``found_on`` when another host it was last seen on
        (``last_seen``) is not in this run, so it cannot be asked whether it still holds a copy: one taken out
        of [hosts] (given again, it is asked), or one --host leaves out while the run has several hosts (a run
        of the one host the VM is on is how an admin names the copy they mean, as the refusals advise). None
        when every such host is in the run, and for a single host named by its URI (no places)."""
        label = self.outside_host(found_on, last_seen)
        if label is None:
            return None
        return outside_refusal(vm_uuid.lower(), found_on, label, ", ".join(self.members), left_out=label in self.elsewhere,
                               seen_there_too=found_on in last_seen, narrowed_by=self.narrowed_by)

    def outside_host(self, found_on: str, last_seen: Sequence[str]) -> str | None:
        """The host :meth:`outside_run` refuses a change for: the first of ``last_seen`` (where a VM found on
        ``found_on`` was last seen) that this run does not ask; None when there is none."""
        if self.labels == ("",):
            return None
        return next((label for label in last_seen if label and label != found_on and label not in self.members
                     and (label not in self.elsewhere or self.several)), None)

    def ask_last_place(self, vm_uuid: str, found_on: str, last_seen: Sequence[str]) -> tuple[str, VgpuError] | None:
        """Whether the VM found on host ``found_on`` is the only copy, as far as ``last_seen`` (the hosts it was
        last seen on) can say: None when it is (it moved, or was last seen only where it is, or on hosts this
        run leaves out, or whose listing in this run already said they lack the VM); DuplicateVM raised when
        one of them has it too; else the first host that cannot be asked, with its error (nobody can tell)."""
        key = vm_uuid.lower()
        others = [label for label in self.members if label in last_seen and label != found_on and not self._where.lacks(key, label)]
        unasked = None
        for label in others:
            outcome = self._ask(label, lambda host: host.power_state(key))
            if isinstance(outcome, HypervisorError) and codes.vm_missing(outcome):
                self._where.lost(key, label)
            elif not isinstance(outcome, VgpuError):
                self._where.found(key, [label])
                raise DuplicateVM(key, [label, found_on])
            elif unasked is None:
                unasked = (label, outcome)
        return unasked

    def _missing(self, key: str, error: HypervisorError) -> HypervisorError:
        """A VM none of this run's hosts has: gone, unless the run leaves some of the fleet's hosts out
        (--host LABEL), when it may be on one of those; that is not "gone", and nothing may act as if it were
        (remove-vm would unregister a VM that still runs there)."""
        return self._maybe_left_out(key) or error

    def _maybe_left_out(self, key: str) -> HypervisorError | None:
        """VM_ON_HOST_LEFT_OUT, naming every host the run leaves out, when it leaves some out."""
        if not self.elsewhere:
            return None
        return codes.left_out(", ".join(self.members), " or ".join(sorted(self.elsewhere)), key, self.narrowed_by)

    def not_configured(self, vm_uuid: str, last_seen: Sequence[str]) -> HypervisorError | None:
        """For a VM none of this run's hosts has, last seen on the hosts ``last_seen``: the refusal to call it gone
        when one of them is a host the fleet does not have at all (neither in this run nor left out by --host:
        taken out of [hosts]), which may still have it; None when there is none (a fleet of one unlabelled host
        has no places)."""
        unknown = [label for label in last_seen if label and label not in self.members and label not in self.elsewhere]
        if not unknown or self.labels == ("",):
            return None
        return codes.host_error(codes.VM_ON_HOST_NOT_CONFIGURED, [", ".join(self.members), unknown[0], codes.give_again(unknown[0])],
                                vm_uuid.lower())

    def not_in_run(self, vm_uuid: str, last_seen: Sequence[str]) -> HypervisorError | None:
        """For a VM none of this run's hosts lists, last seen on the hosts ``last_seen``: why it is not called
        gone, when this run cannot tell: last seen on a host the fleet does not have (:meth:`not_configured`), or
        on one --host leaves out (naming it), or the run leaves hosts out and it may be on one of them; None when
        every host it may be on was asked."""
        refusal = self.not_configured(vm_uuid, last_seen)
        if refusal is not None:
            return refusal
        left_out = [label for label in last_seen if label in self.elsewhere]
        if left_out:
            return codes.left_out_last_seen(", ".join(self.members), left_out[0], vm_uuid.lower(), self.narrowed_by)
        return self._maybe_left_out(vm_uuid.lower())

    def answered_without(self, vm_uuid: str) -> tuple[str, ...]:
        """The hosts of this run that said they have no such VM when every host was last asked where it is (or
        when asked since), or whose last listing lacked it (a bulk call's): a change records that no copy is
        left there, as a scan records a host that answered without the UUID. A host that could not be reached
        in the operation under way is not among them."""
        key = vm_uuid.lower()
        without = self._where.answered_without(key)
        return tuple(label for label in self.members if (label in without or self._where.lacks(key, label))
                     and self._down.error_of(label) is None)

    def last_known_label(self, vm_uuid: str) -> str | None:
        """The host the VM was last found on by this fleet, without asking any host (the only host of a fleet of
        one); None when it is not known, or known on several."""
        if not self.several:
            return next(iter(self.members))
        labels = self._where.labels_of(vm_uuid.lower(), self.members)
        return labels[0] if len(labels) == 1 else None

    def _with_vm(self, vm_uuid: str, call: Callable[[str, Hypervisor], _Answer]) -> _Answer:
        """``call(label, host)`` for the host that has the VM."""
        label = self.label_of(vm_uuid)
        try:
            return call(label, self.members[label])
        except HypervisorError as error:
            if isinstance(error, HostUnreachable):
                self._down.unreached(label, error)  # a bulk call begins no more of its VMs (see unreached_error)
            if not codes.vm_missing(error):
                raise self._named(label, error) from None
            if not self.several:
                raise self._missing(vm_uuid.lower(), error) from None
            first = error
        # The host no longer has the VM: it moved to another host (or is gone). Look for it once more.
        key = vm_uuid.lower()
        self._where.lost(key, label)
        moved_to = self.label_of(key)
        if moved_to == label:
            raise self._missing(key, first)
        return call(moved_to, self.members[moved_to])

    def _named(self, label: str, error: VgpuError) -> VgpuError:
        """An error about a whole host names it, when there are several."""
        if self.several and isinstance(error, HostUnreachable) and not error.sentence.startswith(f"host {label}: "):
            error.reword(f"host {label}: {error.sentence}")
        return error

    # --- the protocol ---------------------------------------------------------------------------------------

    def describe_vm(self, vm_uuid: str) -> HostVM:
        """The VM as its host describes it (one round trip there), labelled with that host."""
        return self._with_vm(vm_uuid, lambda label, host: _labelled([describe(host, vm_uuid)], label)[0])

    def describe_vm_best_reading(self, vm_uuid: str) -> tuple[HostVM, bool]:
        """:func:`describe_best_reading` of the VM's host, labelled with that host."""
        def labelled(label: str, host: Hypervisor) -> tuple[HostVM, bool]:
            seen, exact = describe_best_reading(host, vm_uuid)
            return _labelled([seen], label)[0], exact

        return self._with_vm(vm_uuid, labelled)

    def power_state(self, vm_uuid: str) -> PowerState:
        return self._with_vm(vm_uuid, lambda label, host: host.power_state(vm_uuid))

    def clean_shutdown(self, vm_uuid: str, timeout: float, *, halted_ok: bool = True) -> bool:
        return self._with_vm(vm_uuid, lambda label, host: host.clean_shutdown(vm_uuid, timeout, halted_ok=halted_ok))

    def hard_shutdown(self, vm_uuid: str) -> bool:
        return self._with_vm(vm_uuid, lambda label, host: host.hard_shutdown(vm_uuid))

    def start(self, vm_uuid: str) -> None:
        self._with_vm(vm_uuid, lambda label, host: host.start(vm_uuid))

    def booted_device_model_args(self, vm_uuid: str) -> str | None:
        return self._with_vm(vm_uuid, lambda label, host: host.booted_device_model_args(vm_uuid))

    def booted_after_start(self, vm_uuid: str) -> str | None:
        return self._with_vm(vm_uuid, lambda label, host: booted_after_start(host, vm_uuid))

    def current_operations(self, vm_uuid: str) -> tuple[str, ...] | None:
        return self._with_vm(vm_uuid, lambda label, host: host.current_operations(vm_uuid))

    def get_device_model_args(self, vm_uuid: str) -> str:
        return self._with_vm(vm_uuid, lambda label, host: host.get_device_model_args(vm_uuid))

    def set_device_model_args(self, vm_uuid: str, value: str) -> None:
        self._with_vm(vm_uuid, lambda label, host: host.set_device_model_args(vm_uuid, value))

    def set_device_model_args_if_unchanged(self, vm_uuid: str, value: str, expected: str) -> str | None:
        """As the host that has this VM writes it (see :func:`vgpu.hypervisor.base.set_args_if_unchanged`)."""
        return self._with_vm(vm_uuid, lambda label, host: set_args_if_unchanged(host, vm_uuid, value, expected))

    def args_if_changed(self, vm_uuid: str, expected: str) -> str | None:
        """As the host that has this VM tells it (see :func:`vgpu.hypervisor.base.args_if_changed`)."""
        return self._with_vm(vm_uuid, lambda label, host: args_if_changed(host, vm_uuid, expected))

    def prepare(self) -> None:
        """Run every member's own ``prepare`` on this thread (see the module docstring)."""
        for label in self.members:
            error = self._prepare(label)
            if error is not None and not self.several:
                raise error

    def unreached_error(self, label: str) -> HostUnreachable | None:
        """The error host ``label`` gave when it could not be reached earlier in the operation under way
        (named, as the fleet names it), or None: a bulk call begins no change on a host that has stopped
        answering, where each change would wait on it, fail and be left to recover."""
        error = self._down.error_of(label)
        if error is not None:
            self._named(label, error)  # reworded in place: a copy of its own
        return error

    def operation(self) -> contextlib.AbstractContextManager[None]:
        """One operation (see :func:`one_operation`): a host that cannot be reached during it is asked once."""
        return self._down.operation()

    def reopen(self) -> "Fleet":
        """Every host reopened (each connects on first use), sharing what is known of where VMs are and which
        hosts could not be reached in the operation under way."""
        members = {label: host.reopen() for label, host in self.members.items()}
        elsewhere = self.elsewhere_uris if set(self.elsewhere_uris) == self.elsewhere else self.elsewhere
        return Fleet(members, parallel=self.parallel, elsewhere=elsewhere, narrowed_by=self.narrowed_by,
                     _where=self._where, _down=self._down)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for host in self.members.values():
            host.close()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Fleet({self.uri})"


def _outcome(call: Callable[[Hypervisor], Any], host: Hypervisor) -> Any:
    try:
        return call(host)
    except VgpuError as error:
        return error


def _labelled(vms: list[HostVM], label: str) -> tuple[HostVM, ...]:
    """A host's listing with each VM labelled. A listing is made of new objects, made for this call and
    seen by nobody yet, so they are labelled where they are: for a fleet of ten thousand VMs that is a
    tenth of the cost of building labelled copies. One that already carries a label (a host that hands the
    same object out twice) is copied instead."""
    for index, vm in enumerate(vms):
        if vm.host == "":
            object.__setattr__(vm, "host", label)  # frozen: only ever here, before anyone else holds it
        elif vm.host != label:
            vms[index] = HostVM(vm.uuid, vm.name, vm.power_state, vm.device_model_args, vm.booted_args, label, vm.resident_on,
                                vm.transient)
    return tuple(vms)


def left_behind(vm_uuid: str, found_on: str, last_seen: str, error: VgpuError, *, seen_there_too: bool = False) -> HypervisorError:
    """The refusal of a change to a VM found on ``found_on`` while ``last_seen``, a host it was last seen on
    (``seen_there_too``: as well as on ``found_on``, a copy), cannot be asked (``error`` says why): see
    :meth:`Fleet.check_only_copy`."""
    cause = error.sentence.removeprefix(f"host {last_seen}: ")
    too = " too" if seen_there_too else ""
    return _unasked(error, vm_uuid, f"VM {vm_uuid} is on host {found_on}, but it was last seen on host {last_seen}{too}, "
                                    f"which could not be asked ({cause}): a copy may still be there, which a change made "
                                    f"on {found_on} alone would leave behind; nothing was done. Try again when "
                                    f"{last_seen} answers, or name the host you mean (--host {found_on})")


def outside_refusal(vm_uuid: str, found_on: str, other: str, members: str, *, left_out: bool,
                    seen_there_too: bool = False, narrowed_by: str = codes.NARROWED_BY_FLAG) -> HypervisorError:
    """The refusal of a change to a VM found on ``found_on`` while ``other``, a host it was last seen on, is not
    in this run (of hosts ``members``): left out by ``narrowed_by`` (--host, VGPU_HOST, a config's host), or not
    configured at all (see :meth:`Fleet.outside_run`)."""
    too = " too" if seen_there_too else ""
    if left_out:
        why, code = f"which this run leaves out ({narrowed_by}), so it was not asked", codes.VM_ON_HOST_LEFT_OUT
    else:
        why, code = ("which is not one of this run's configured hosts (not in [hosts], nor given by --host), so it "
                     "could not be asked"), codes.VM_ON_HOST_NOT_CONFIGURED
    advice = outside_advice(found_on, other, left_out=left_out, narrowed_by=narrowed_by)
    return HypervisorError(code, f"VM {vm_uuid} is on host {found_on}, but it was last seen on host {other}{too}, {why}: "
                                 f"a copy may still be there, which a change made on {found_on} alone would leave "
                                 f"behind; nothing was done. {advice}", [members, other])


def outside_advice(found_on: str, other: str, *, left_out: bool, narrowed_by: str = codes.NARROWED_BY_FLAG) -> str:
    """How to ask ``other``, a host outside the run that a VM found on ``found_on`` was last seen on too (see
    :func:`outside_refusal`), as its refusal and a scan's line about the VM say it."""
    if not left_out:
        return (f"Give that host again ({codes.give_again(other)} beside the others) to ask it, or, if it is "
                f"gone for good, 'vgpu-admin forget-host {other}'")
    if narrowed_by == codes.NARROWED_BY_FLAG:
        return f"Run without --host (or with --host {other} as well) to ask it, or name the one host you mean (--host {found_on})"
    return (f"To ask it, {codes.widen_advice(narrowed_by, other + ' beside the others')}; or name the one host "
            f"you mean (--host {found_on})")


def copies_unknown_refusal(vm_uuid: str, found_on: str, other: str, error: VgpuError) -> HypervisorError:
    """The refusal of a change to a VM found on ``found_on`` while ``other`` cannot be asked (``error`` says
    why) and the database cannot say which hosts hold copies (upgraded from schema 3): see
    :meth:`Fleet.check_only_copy`."""
    cause = error.sentence.removeprefix(f"host {other}: ")
    return _unasked(error, vm_uuid, f"VM {vm_uuid} is on host {found_on}, but host {other} could not be asked whether it "
                                    f"has a copy ({cause}), and which hosts hold copies of a VM is not known since this "
                                    f"database was upgraded from schema 3: a copy may be there, which a change made on "
                                    f"{found_on} alone would leave behind; nothing was done. Try again when {other} "
                                    f"answers, run 'vgpu-admin scan-vms' once every host answers (it records the "
                                    f"copies), or name the host you mean (--host {found_on})")


def _unasked(error: VgpuError, vm_uuid: str, sentence: str) -> HypervisorError:
    """``sentence``, as the kind of error the host that could not be asked gave (unreachable or not)."""
    unreached = HostUnreachable if isinstance(error, HostUnreachable) else HypervisorError
    return unreached(codes.failure_code(error), sentence, ["VM", vm_uuid])


def locate_again(host: Hypervisor, vm_uuid: str) -> None:
    """Before a change to the VM: over a fleet of several hosts, every host is asked again where it is, since
    a long-lived fleet (a notebook's) may have last looked before the VM was copied to another host, and the
    copy must be found (DuplicateVM), not left behind. One host asks nothing."""
    if isinstance(host, Fleet) and host.several:
        host.label_of(vm_uuid, fresh=True)


@contextlib.contextmanager
def one_operation(host: Hypervisor) -> Iterator[None]:
    """Over a fleet, the block is one operation: a host that cannot be reached during it is asked once, and its
    error given again to every later question the block asks it about where a VM is (a change locates the VM
    on every host, then asks the host it was last seen on; a bulk call lists every host to plan, again to
    apply, and its workers locate each VM). Only those questions: a call to the host a VM is on (stopping it,
    rolling a change back) always tries that host, and when such a call finds it unreachable, it is
    remembered as down as well, so a bulk call begins no more changes there (:meth:`Fleet.unreached_error`).
    Operations nest, and a fleet's reopened copies (a bulk call's workers) share the one open. One host:
    nothing to remember."""
    if isinstance(host, Fleet):
        with host.operation():
            yield
    else:
        yield


def one_fleet_operation(function: Callable[_Params, _Answer]) -> Callable[_Params, _Answer]:
    """A library call taking ``(store, host, ...)`` made :func:`one_operation` of its host, whole."""

    @functools.wraps(function)
    def call(*args: _Params.args, **kwargs: _Params.kwargs) -> _Answer:
        with one_operation(args[1] if len(args) > 1 else kwargs["host"]):  # type: ignore[arg-type]
            return function(*args, **kwargs)

    return call


def as_fleet(host: Hypervisor) -> Fleet:
    """``host`` as a fleet: itself when it is one, else a fleet of that one host (label "")."""
    return host if isinstance(host, Fleet) else Fleet({"": host})


def label_for(host: Hypervisor, vm_uuid: str) -> str | None:
    """The label of the host of a fleet that has this VM (for the journal); None for a single host, or when
    no host has it now (a VM being removed after it was deleted). DuplicateVM when two hosts have it."""
    if not isinstance(host, Fleet):
        return None
    try:
        return host.label_of(vm_uuid) or None
    except HypervisorError:
        return None


def named_for(host: Hypervisor, label: str | None, error: VgpuError) -> VgpuError:
    """``error``, met on host ``label`` of ``host`` outside the fleet's own calls (recover works on the member
    itself: see :func:`for_operation`), named as the fleet names an error about a whole host; untouched for
    one host."""
    return host._named(label, error) if isinstance(host, Fleet) and label else error


def for_operation(host: Hypervisor, label: str | None, identity: str | None = None) -> tuple[Hypervisor | None, str]:
    """The host an operation journalled on host ``label`` is to be recovered on: that host of the fleet; the
    whole fleet (found by UUID) for an operation of a single host without a label; or None and why, when
    the host it belongs to is not in this run. ``identity``: the URI the database remembers for ``label``
    (:func:`vgpu.locations.select_identities`), which a run of one host named by its URI names in its advice,
    as it knows no [hosts] to tell whether the label still names that host."""
    if not label:
        return host, ""
    if isinstance(host, Fleet):
        member = host.member(label)
        if member is not None:
            return member, ""
    fleet = host if isinstance(host, Fleet) and host.labels != ("",) else None  # None: one host, named by its URI
    here = ", ".join(fleet.labels) if fleet else "one host, named by its URI"
    made = f"it was made on host {label} of the fleet, and this run has {here}"
    # a label kept apart (vgpu.locations.apart_label: gpu2@URI) is one no --host can give; a fleet's label neither
    # in this run nor among the configured hosts it leaves out (elsewhere) was taken out of [hosts], so --host LABEL
    # would be refused as an unknown host (one host opened by its URI alone knows no [hosts])
    if "@" in label or (fleet and label not in fleet.elsewhere):
        return None, (f"{made}; {label} is not one of this run's configured hosts (not in [hosts], nor given by "
                      f"--host): run 'vgpu-admin recover' with that host given again ({codes.give_again(label)})")
    if not fleet and identity:  # [hosts] may name another host gpu2 by now: the URI it was made on says which
        return None, f"{made}; run 'vgpu-admin recover' with that host (--host {label}={identity})"
    return None, f"{made}; run 'vgpu-admin recover' with that host (--host {label}, or the whole fleet)"

"""Where each VM was last seen in a fleet: the host's label and, in a XAPI pool, the member it ran on.

A hint, never the truth: a VM is always found again by its UUID (a scan lists every host). What the hint
is for: a host that cannot be reached still has its registered VMs shown as on that host ("host
unreachable") instead of missing, ``list-vms`` says where each VM is without asking any host, and
``--host LABEL`` leaves out the VMs seen on the fleet's other hosts. A UUID listed by several hosts at once
(a copy between pools) is remembered on each, so that a change made while one of them is down is refused
rather than leaving that copy behind (a fleet's database upgraded from schema 3, which kept one host per
UUID, takes each host for a possible copy until a scan that every host of its run answered asked it). A single
host named by its URI alone (label "") writes nothing here, so a run without a fleet changes nothing it did not change before.

Each label's host identity (its URI as :func:`vgpu.host_uri.host_key` spells it, never a password) is remembered
too, when a scan or a change finds VMs there: a remembered label whose identity is one of a run's hosts (a host
renamed in [hosts], or named under another label by another config) is that host, and
:func:`adopt_same_hosts` moves its rows under the run's label rather than taking it for a host that may hold a
copy; a label of the run remembered as another host (its URI changed) has that host's rows kept apart
(:func:`apart_label`), never taken for the new host's. A label remembered before schema 7 has no identity, and
is not guessed.

A host retired for good is let go of by :func:`forget_host` (``vgpu-admin forget-host LABEL``): until then,
a VM last seen there (or with a copy there) is refused by every change, since that host may still run it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Collection, Iterable, Mapping

import attrs

from . import audit
from .confirming import ask, check_confirm
from .errors import Busy, HypervisorError, InvalidValue, StoreError, VgpuError
from .host_uri import host_key, resolve
from .hypervisor import codes
from .hypervisor.base import Hypervisor
from .hypervisor.fleet import Fleet
from .models import VM
from .naming import natural_key
from .store import Store
from .uri_password import mask_passwords
from .tables import VMList
from .uri_password import mask_password
from .vms import select_vms


@attrs.frozen
class Location:
    """Where a VM was last seen: ``host`` (the fleet's label), ``resident_on`` (the XAPI pool member it was
    resident on, None when the host has no members or the VM was not running) and ``seen_at``."""

    vm_uuid: str
    host: str
    resident_on: str | None = None
    seen_at: str | None = None


Place = tuple[str, str | None]  # (host, resident_on): a Location without its UUID and time, as a scan compares them


def select_places(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
    """UUID -> (host, resident_on), for a scan: plain tuples, as it reads and compares ten thousand."""
    return {uuid: (host, resident_on) for uuid, host, resident_on in conn.execute("SELECT vm_uuid, host, resident_on FROM vgpu_locations")}


def select(conn: sqlite3.Connection) -> dict[str, Location]:
    rows = conn.execute("SELECT vm_uuid, host, resident_on, seen_at FROM vgpu_locations")
    return {row[0]: Location(*row) for row in rows}


def select_copies(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """UUID -> the hosts besides its place (:func:`select_places`) that listed it too when it was last seen:
    a copy between pools. Empty for almost every fleet."""
    copies: dict[str, tuple[str, ...]] = {}
    for uuid, host in conn.execute("SELECT vm_uuid, host FROM vgpu_location_copies ORDER BY vm_uuid, host"):
        copies[uuid] = (*copies.get(uuid, ()), host)
    return copies


def select_last_hosts(conn: sqlite3.Connection, outside: Collection[str] | None = None) -> dict[str, tuple[str, ...]]:
    """UUID -> every host it was last seen on: its place first, then the hosts that listed a copy. With
    ``outside`` (a run's labels), only the UUIDs last seen on some host not among them: none, as a rule."""
    if outside is None:
        copies = select_copies(conn)
        return {uuid: (place[0], *copies.get(uuid, ())) for uuid, place in select_places(conn).items()}
    marks = ", ".join("?" * len(outside))
    rows = conn.execute(
        "SELECT l.vm_uuid, l.host, c.host FROM vgpu_locations l LEFT JOIN vgpu_location_copies c ON c.vm_uuid = l.vm_uuid"
        f" WHERE l.vm_uuid IN (SELECT vm_uuid FROM vgpu_locations WHERE host NOT IN ({marks})"
        f" UNION SELECT vm_uuid FROM vgpu_location_copies WHERE host NOT IN ({marks})) ORDER BY l.vm_uuid, c.host",
        (*outside, *outside))
    hosts: dict[str, tuple[str, ...]] = {}
    for uuid, place, copy in rows:
        hosts[uuid] = hosts.get(uuid, (place,)) + ((copy,) if copy is not None and copy != place else ())
    return hosts


def hosts_of(store: Store, vm_uuid: str) -> tuple[str, ...]:
    """Every host the VM was last seen on, its place first (a UUID listed by several hosts at once has them
    all); () when it never was seen (or only on a single host)."""
    with store.reading() as conn:
        return _hosts_of(conn, vm_uuid)


def last_seen(store: Store, vm_uuid: str, labels: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`hosts_of`, and those of the hosts ``labels`` (a run's) that may hold a copy no table records
    (:func:`copies_unknown_on`)."""
    with store.reading() as conn:
        return _hosts_of(conn, vm_uuid), copies_unknown_on(conn, labels)


def _hosts_of(conn: sqlite3.Connection, vm_uuid: str) -> tuple[str, ...]:
    row = conn.execute("SELECT host FROM vgpu_locations WHERE vm_uuid = ?", (vm_uuid,)).fetchone()
    if row is None:
        return ()
    copies = conn.execute("SELECT host FROM vgpu_location_copies WHERE vm_uuid = ? ORDER BY host", (vm_uuid,))
    return (str(row[0]), *(str(host) for (host,) in copies if host != row[0]))


def copies_unknown(conn: sqlite3.Connection) -> bool:
    """Whether the database was upgraded from schema 3 (which kept one host per UUID) by a fleet: then which hosts
    hold copies of a UUID is known only on the hosts :func:`copies_to_learn` let a scan learn (see
    :data:`vgpu.schema.COPIES_UNKNOWN_V5` and :data:`vgpu.schema.COPIES_KNOWN_ON_V6`)."""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM vgpu_copies_unknown)").fetchone()[0])


def _copies_known_on(conn: sqlite3.Connection) -> set[str]:
    return {str(host) for (host,) in conn.execute("SELECT host FROM vgpu_copies_known_on")}


def copies_unknown_on(conn: sqlite3.Connection, labels: Iterable[str]) -> tuple[str, ...]:
    """Those of the hosts ``labels`` that may hold a copy no table records: after an upgrade from schema 3, every
    one whose copies no scan learnt since (:func:`copies_to_learn`); none otherwise. A change asks each of them."""
    if not copies_unknown(conn):
        return ()
    known = _copies_known_on(conn)
    return tuple(label for label in labels if label and label not in known)


def copies_to_learn(conn: sqlite3.Connection, labels: Collection[str]) -> tuple[str, ...]:
    """The hosts whose copies a scan learns when every host of its run (``labels``, not narrowed by --host)
    answered it: those of the run not known yet (:func:`copies_unknown_on`). Every UUID a host of the run
    listed is then recorded on that host, as its place or a copy, so its copies are known. A host the scan did
    not ask (taken out of [hosts], or one that holds only copies, which no table names) is never learnt by it: a
    copy there of a UUID the run listed is recorded nowhere. One learnt before and left out of this run stays
    known: the scan keeps the copies recorded on a host it did not ask, and a VM last seen there is refused by
    every change while that host is not configured, so it need not be in the run for the others to be learnt."""
    return copies_unknown_on(conn, labels)


def not_in_run(store: Store, host: Hypervisor, vm_uuid: str, error: HypervisorError | None = None) -> HypervisorError | None:
    """Over a fleet, for a VM none of the run's hosts has (``error``: the fleet's answer, UUID_INVALID or
    VM_ON_HOST_LEFT_OUT; None: known to be on no host of the run): the refusal to take it for gone, by the one
    rule of :meth:`Fleet.not_in_run` (a host it was last seen on that is not configured first, then one --host
    leaves out, then any host the run leaves out), as a bulk plan and show-vm say it. None when every host it
    may be on was asked, for any other error, and always on a single host."""
    if not isinstance(host, Fleet):
        return None
    if error is not None and not (codes.vm_missing(error) or error.code == codes.VM_ON_HOST_LEFT_OUT):
        return None
    adopt_same_hosts(store, host)
    return host.not_in_run(vm_uuid, hosts_of(store, vm_uuid.lower()))


def where(store: Store) -> dict[str, Location]:
    """Every VM's last known place, by UUID."""
    with store.reading() as conn:
        return select(conn)


def on_hosts(vms: Iterable[VM], known: Mapping[str, Location], labels: Collection[str]) -> VMList:
    """The VMs last seen on one of the hosts ``labels`` (``--host LABEL`` narrowing a DB-only listing): a VM
    never seen is on no host known here, so it is left out too."""
    return VMList(vm for vm in vms if vm.vm_uuid in known and known[vm.vm_uuid].host in labels)


def remember(store: Store, seen: Mapping[str, tuple[str, str | None]], known: Mapping[str, tuple[str, str | None]],
             copies: Mapping[str, Collection[str]] | None = None, *, copies_learned_on: Collection[str] = (),
             identities: Mapping[str, str] | None = None) -> None:
    """Write down where VMs were just seen (UUID -> (host, resident_on)), where that changed from ``known``
    (as :func:`select_places` read it before), and ``copies``: UUID -> the other hosts that listed it too
    (none: only its place), for the UUIDs whose copies changed; ``copies_learned_on``: the hosts whose copies,
    unknown until now, this scan learnt (:func:`copies_to_learn`); ``identities``: label -> host identity of
    the hosts that answered, where it changed (:func:`new_identities`). Best effort: a
    database this process may only read keeps its older hints (a scan must still answer)."""
    changed = [(uuid, *place) for uuid, place in seen.items() if place[0] and known.get(uuid) != place]
    if not changed and not copies and not copies_learned_on and not identities:
        return
    try:
        with store.writing() as conn:
            record_identities(conn, identities or {})
            conn.executemany("INSERT OR IGNORE INTO vgpu_copies_known_on (host) VALUES (?)", [(host,) for host in copies_learned_on])
            record(conn, changed)
            for uuid, hosts in (copies or {}).items():
                conn.execute("DELETE FROM vgpu_location_copies WHERE vm_uuid = ?", (uuid,))
                conn.executemany("INSERT INTO vgpu_location_copies (vm_uuid, host) VALUES (?, ?)",
                                 [(uuid, host) for host in hosts if host])
    except StoreError:
        pass


def record(conn: sqlite3.Connection, rows: Iterable[tuple[str, str, str | None]]) -> None:
    """(UUID, label, resident_on) rows, inside the caller's write transaction."""
    conn.executemany(
        "INSERT INTO vgpu_locations (vm_uuid, host, resident_on) VALUES (?, ?, ?) ON CONFLICT (vm_uuid) DO UPDATE"
        " SET host = excluded.host, resident_on = excluded.resident_on, seen_at = strftime('%Y-%m-%d %H:%M:%f', 'now')",
        [row for row in rows if row[1]],
    )


def seen_by_change(conn: sqlite3.Connection, host: Hypervisor, vm_uuid: str) -> None:
    """Inside a change's write transaction, over a fleet: where the change found the VM becomes its place, as a
    scan would record it, and the copies recorded on hosts that answered without it go (:meth:`Fleet.answered_without`).
    Its last place, when another host that did not say it lacks the VM (one the run leaves out: a run of one
    host names the copy it means), stays a copy. Nothing for a single host named by its URI alone."""
    if isinstance(host, Fleet) and host.labels != ("",):
        found_on = host.last_known_label(vm_uuid)
        if found_on:
            seen_listed(conn, host, vm_uuid, found_on, host.answered_without(vm_uuid))


def seen_listed(conn: sqlite3.Connection, host: Hypervisor, vm_uuid: str, found_on: str, without: Collection[str]) -> None:
    """:func:`seen_by_change` of a VM found on host ``found_on`` while the hosts ``without`` answered without it."""
    if not isinstance(host, Fleet) or host.labels == ("",) or not found_on:
        return
    # first: a label remembered as another host has that host's rows kept apart before this one's are recorded
    record_identities(conn, identities(host, [found_on]))
    key = vm_uuid.lower()
    row = conn.execute("SELECT host FROM vgpu_locations WHERE vm_uuid = ?", (key,)).fetchone()
    if row is not None and row[0] != found_on and row[0] not in without:
        conn.execute("INSERT OR IGNORE INTO vgpu_location_copies (vm_uuid, host) VALUES (?, ?)", (key, row[0]))
    if row is None or row[0] != found_on:
        record(conn, [(key, found_on, None)])
    conn.executemany("DELETE FROM vgpu_location_copies WHERE vm_uuid = ? AND host = ?",
                     [(key, label) for label in (*without, found_on)])


# --- which host each label names ------------------------------------------------------------------------------


def identities(host: Hypervisor, labels: Iterable[str] | None = None) -> dict[str, str]:
    """Label -> host identity of the hosts of a fleet (all, or ``labels``): the URI as the "same URI; keep one"
    check spells it (:func:`vgpu.host_uri.host_key`), any password masked; {} for a single host named by its URI
    alone. A URI that cannot be spelled so (a host object of a script's own) has none."""
    if not isinstance(host, Fleet) or host.labels == ("",):
        return {}
    chosen = host.labels if labels is None else labels
    return identities_of({label: host.members[label].uri for label in chosen if label in host.members})


def identities_of(uris: Mapping[str, str]) -> dict[str, str]:
    """Label -> host identity of label -> URI (a config's hosts), leaving out a URI that cannot be spelled so."""
    found = {}
    for label, uri in uris.items():
        try:
            found[label] = mask_password(host_key(resolve(uri)))  # sim:demo as the host opened from it names it
        except (VgpuError, ValueError):
            continue
    return found


def select_identities(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(host): str(identity) for host, identity in conn.execute("SELECT host, identity FROM vgpu_host_identities")}


def new_identities(remembered: Mapping[str, str], host: Hypervisor, labels: Iterable[str]) -> dict[str, str]:
    """Those of the identities of hosts ``labels`` of ``host`` that ``remembered`` (:func:`select_identities`)
    does not hold yet: what a scan that listed them writes down."""
    return {label: identity for label, identity in identities(host, labels).items() if remembered.get(label) != identity}


def apart_label(label: str, identity: str) -> str:
    """The label under which what was remembered of host ``identity`` under ``label`` is kept once ``label``
    names another host: ``gpu2@sim:/srv/b.json``. No config can name a host so ('@' is no label's), so it is a
    host no run configures (its VMs refused, not called gone) until its URI is configured again, under any
    label, or forget-host lets it go."""
    return f"{label}@{identity}"


def record_identities(conn: sqlite3.Connection, named: Mapping[str, str]) -> None:
    """Label -> host identity rows, inside the caller's write transaction, before places are recorded under
    those labels. A label remembered as another host is never overwritten: what the database remembers under it
    is first kept apart (:func:`apart_label`), as the old host's."""
    remembered = select_identities(conn)
    for label, identity in named.items():
        if label and identity and remembered.get(label, identity) != identity:
            _move_label(conn, label, apart_label(label, remembered[label]))
    conn.executemany("INSERT OR IGNORE INTO vgpu_host_identities (host, identity) VALUES (?, ?)",
                     [(label, identity) for label, identity in named.items() if label and identity])


def relabelling(remembered: Mapping[str, str], named: Mapping[str, str], off_limits: Collection[str] = ()) -> list[tuple[str, str]]:
    """(old, new): the moves that make the labels ``remembered`` (label -> identity) agree with a run's hosts
    ``named`` (label -> identity, each identity once), in order. First, each label of the run remembered as
    another host is kept apart (:func:`apart_label`); then each label outside the run (and not ``off_limits``:
    a configured host whose URI this run does not know) whose identity is one of the run's hosts is that host.
    So a label renamed, two labels swapping their URIs, or one label given another's URI all end with one label
    per host, and a host no run names is never merged into another."""
    moves, now = [], dict(remembered)
    for label, identity in remembered.items():
        if label in named and named[label] != identity:
            moves.append((label, apart_label(label, identity)))
            del now[label]
            now[apart_label(label, identity)] = identity
    ours = {identity: label for label, identity in named.items()}
    moves += [(label, ours[identity]) for label, identity in now.items()
              if label not in named and label not in off_limits and identity in ours]
    return moves


def run_identities(host: Hypervisor) -> tuple[dict[str, str], frozenset[str]]:
    """A fleet's hosts as :func:`relabelling` takes them: label -> identity of its hosts, then of the configured
    hosts it leaves out whose URI it knows (:attr:`Fleet.elsewhere_uris`) and that are not one of its own under
    another label (``--host gpu2=URI`` while [hosts] names that URI gpu3: one host, this run's gpu2); and the
    labels it leaves out whose URI it does not know, which nothing moves."""
    if not isinstance(host, Fleet) or host.labels == ("",):
        return {}, frozenset()
    named = _with_left_out(identities(host), host.elsewhere_uris)
    return named, frozenset(host.elsewhere - set(host.elsewhere_uris))


def _with_left_out(named: dict[str, str], left_out: Mapping[str, str]) -> dict[str, str]:
    """``named`` (a run's hosts, label -> identity) with those of the configured hosts it leaves out (label ->
    URI) that are not one of its own under another label."""
    taken = set(named.values())
    for label, identity in identities_of(left_out).items():
        if identity not in taken:
            named[label] = identity
            taken.add(identity)
    return named


def adopt_same_hosts(store: Store, host: Hypervisor) -> None:
    """Over a fleet, before its places are read: the remembered labels made to agree with the run's hosts
    (:func:`relabelling`). A label outside the run whose identity is one of the run's hosts (the host renamed,
    or named so by another config over this database) is that host, so its places, copies, learnt copies and
    unfinished operations move under the run's label (a VM placed there and copied here, or the other way
    round, is one VM on one host), and its identity goes. A label of the run remembered as another host (its URI
    changed in the config) has what it remembered kept apart, as a host this run does not configure. One small
    read when there is nothing to move. On a database this process may only read, a StoreError when there is
    something to move (read under the old labels, a VM still on the old host would be called missing)."""
    named, off_limits = run_identities(host)
    if named:
        adopt_identities(store, named, off_limits)


def adopt_configured_hosts(store: Store, hosts: Mapping[str, str], left_out: Mapping[str, str]) -> None:
    """:func:`adopt_same_hosts` of the run whose hosts are ``hosts`` (label -> URI, as the settings name them:
    :attr:`vgpu.config.Settings.hosts`) and which leaves out the configured hosts ``left_out``
    (:attr:`~vgpu.config.Settings.left_out_uris`), without opening any: the identities are the URIs, so a
    command that asks no host (list-vms) reads the labels as a scan would. Nothing for one host named by its
    URI alone (label "")."""
    if hosts and "" not in hosts:
        adopt_identities(store, _with_left_out(identities_of(hosts), left_out))


def adopt_identities(store: Store, named: Mapping[str, str], off_limits: Collection[str] = ()) -> None:
    """:func:`adopt_same_hosts` for a run's hosts given as label -> identity (:func:`identities_of`)."""
    with store.reading() as conn:
        moves = relabelling(select_identities(conn), named, off_limits)
        if not moves:
            return
    try:
        with store.writing() as conn:
            moves = relabelling(select_identities(conn), named, off_limits)  # again, under the write lock
            for old, new in moves:
                _move_label(conn, old, new)
    except StoreError as error:
        raise _cannot_relabel(store, moves, error) from error


def _cannot_relabel(store: Store, moves: list[tuple[str, str]], error: StoreError) -> StoreError:
    """The refusal of a run whose labels could not be made to agree with its hosts (``moves``, :func:`relabelling`):
    read under the old labels, a VM still running on a host whose label now names another would be called
    missing, and another host's VMs listed under its label, so nothing is read."""
    told = [f"{old} now names another host" if new.startswith(f"{old}@") else f"{old} is {new} now"
            for old, new in moves]
    cause = str(error).removeprefix(f"could not write to database {store.path}: ")
    return StoreError(store.path, (
        f"database {store.path} holds host labels that [hosts] now names differently ({'; '.join(told)}), and this "
        f"run cannot relabel them: {cause}; a run with write access relabels them first (any command that reads "
        f"where VMs are, such as 'vgpu-admin status'); nothing was read under the old labels"))


def _move_label(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Everything remembered under label ``old`` moved under ``new``, the same host's label (in this run, or
    :func:`apart_label`)."""
    names = {"old": old, "new": new}
    for statement in (
        "UPDATE vgpu_locations SET host = :new WHERE host = :old",
        "INSERT OR IGNORE INTO vgpu_location_copies (vm_uuid, host) SELECT vm_uuid, :new FROM vgpu_location_copies WHERE host = :old",
        "DELETE FROM vgpu_location_copies WHERE host = :old",
        "DELETE FROM vgpu_location_copies WHERE host = :new AND vm_uuid IN (SELECT vm_uuid FROM vgpu_locations WHERE host = :new)",
        "INSERT OR IGNORE INTO vgpu_copies_known_on (host) SELECT :new FROM vgpu_copies_known_on WHERE host = :old",
        "DELETE FROM vgpu_copies_known_on WHERE host = :old",
        "UPDATE vgpu_operations SET host = :new WHERE host = :old AND finished_at IS NULL",
        # the label moved to names that host now, whether or not this run records a place there
        "INSERT INTO vgpu_host_identities (host, identity) SELECT :new, identity FROM vgpu_host_identities WHERE host = :old"
        " ON CONFLICT (host) DO UPDATE SET identity = excluded.identity",
        "DELETE FROM vgpu_host_identities WHERE host = :old",
    ):
        conn.execute(statement, names)


# --- forgetting a host retired for good ---------------------------------------------------------------------


@attrs.frozen
class ForgetHostPlan:
    """What forgetting host ``host`` removes (:func:`forget_host`): where ``vms`` (registered) and
    ``unregistered`` (UUIDs) were last seen, and the copies recorded there (``copies``: UUIDs last seen on
    another host too). ``moved``: (UUID, host) for each VM last seen there that another host listed at the
    same time, which stays last seen on that host. No VM is unregistered."""

    host: str
    vms: VMList
    unregistered: tuple[str, ...]
    copies: tuple[str, ...]
    moved: tuple[tuple[str, str], ...]

    @property
    def last_seen(self) -> int:
        """How many VMs (registered or not) were last seen on the host."""
        return len(self.vms) + len(self.unregistered)


def seen_outside(store: Store, labels: Collection[str]) -> frozenset[str]:
    """The UUIDs last seen on some host not among ``labels`` (a run's hosts): not known to be gone when the run
    does not list them, since that host was not asked (a scan leaves them out). None, as a rule."""
    with store.reading() as conn:
        return frozenset(select_last_hosts(conn, outside=labels))


def remembered_hosts(conn: sqlite3.Connection) -> list[str]:
    """Every host label the database remembers, in natural order: one a VM (or a copy of one) was last seen on,
    one whose copies a scan learnt, or one whose identity it keeps."""
    rows = conn.execute("SELECT host FROM vgpu_locations UNION SELECT host FROM vgpu_location_copies"
                        " UNION SELECT host FROM vgpu_copies_known_on UNION SELECT host FROM vgpu_host_identities")
    return sorted((str(host) for (host,) in rows), key=natural_key)


def forgettable(store: Store, configured: Collection[str]) -> tuple[str, ...]:
    """The hosts :func:`forget_host` can forget: those the database remembers that are not ``configured``
    (a run's labels: :attr:`vgpu.config.Settings.configured_labels`; label -> URI,
    :attr:`~vgpu.config.Settings.configured_uris`, leaves out a label that is one of them renamed too, as
    forget-host would find it). Reads only."""
    with store.reading() as conn:
        remembered = remembered_hosts(conn)
        if isinstance(configured, Mapping):
            for old, new in relabelling(select_identities(conn), identities_of(configured)):
                remembered = [new if label == old else label for label in remembered]
        return tuple(dict.fromkeys(label for label in sorted(remembered, key=natural_key) if label not in configured))


def _adopt_configured(store: Store, configured: Collection[str]) -> None:
    """Before forgetting: with ``configured`` as label -> URI, a remembered label that is one of those hosts under
    another name is that host (:func:`adopt_identities`), not a host retired for good."""
    if isinstance(configured, Mapping):
        adopt_identities(store, identities_of(configured))


def plan_forget_host(store: Store, label: object, configured: Collection[str]) -> ForgetHostPlan:
    """What :func:`forget_host` would remove; changes nothing it remembers of a host (a label renamed is first
    taken for its host when ``configured`` is label -> URI: see :func:`forgettable`). InvalidValue for a host of
    ``configured`` (the run's labels: it may still run its VMs) or one the database does not remember; Busy while
    an operation made on that host is unfinished (recover needs the host)."""
    _adopt_configured(store, configured)
    with store.reading() as conn:
        return _plan_forget(conn, label, configured)


def forget_host(store: Store, label: object, configured: Collection[str], *,
                confirm: Callable[[ForgetHostPlan], bool]) -> ForgetHostPlan:
    """Forget host ``label``, retired for good: shows ``confirm`` the plan (:func:`plan_forget_host`), then in
    one transaction removes where VMs were last seen on it and the copies recorded there, each VM's entry in
    the history (action ``forget-host``). A VM last seen there is then a registered VM none of the hosts has,
    so ``remove-vm`` unregisters it; one another host listed at the same time stays last seen there.

    The "copies unknown" mark of a database upgraded from schema 3 (:func:`copies_unknown`) stays, as it always
    does; the host goes from the hosts whose copies a scan learnt (:func:`copies_to_learn`), so a host given
    again under its label is asked by every change until a scan every host of its run answered learns it.
    Returns what was forgotten, as read in the transaction that forgot it; Cancelled when ``confirm`` says
    anything but True."""
    check_confirm(confirm)
    ask(confirm, plan_forget_host(store, label, configured))  # takes a renamed label for its host first
    with store.writing() as conn:
        plan = _plan_forget(conn, label, configured)  # again under the write lock: what is there now goes
        _forget(conn, plan)
    return plan


def _plan_forget(conn: sqlite3.Connection, label: object, configured: Collection[str]) -> ForgetHostPlan:
    remembered = remembered_hosts(conn)
    allowed = tuple(host for host in remembered if host not in configured)
    shown = mask_passwords(label)  # a URI typed where the label goes may hold a password: never repeated
    if label in configured:
        kept = [host for host in allowed if host.startswith(f"{label}@")]
        then = (f" (what was remembered of the host it named before is kept apart as {', '.join(kept)}: forget that)"
                if kept else "")
        raise InvalidValue("host", shown, allowed, sentence=(
            f"host {shown!r} is configured in this run (in [hosts], or given by --host), so it may still run its VMs: "
            f"take it out of the config first; only a host no longer configured can be forgotten{then}"))
    if not isinstance(label, str) or label not in remembered:
        which = (f"the hosts it remembers that this run does not configure are {', '.join(allowed)}" if allowed
                 else "it remembers no host that this run does not configure")
        raise InvalidValue("host", shown, allowed, sentence=f"host {shown!r} is not remembered by the database: {which}")
    _check_no_operation(conn, label)
    placed = [str(uuid) for (uuid,) in conn.execute("SELECT vm_uuid FROM vgpu_locations WHERE host = ? ORDER BY vm_uuid", (label,))]
    copies = tuple(str(uuid) for (uuid,) in conn.execute(
        "SELECT vm_uuid FROM vgpu_location_copies WHERE host = ? AND vm_uuid NOT IN"
        " (SELECT vm_uuid FROM vgpu_locations WHERE host = ?) ORDER BY vm_uuid", (label, label)))
    registered, there = {vm.vm_uuid: vm for vm in select_vms(conn)}, set(placed)
    return ForgetHostPlan(label, VMList(vm for vm in registered.values() if vm.vm_uuid in there),
                          tuple(uuid for uuid in placed if uuid not in registered), copies,
                          _new_places(conn, label, configured))


def _new_places(conn: sqlite3.Connection, label: str, configured: Collection[str]) -> tuple[tuple[str, str], ...]:
    """Each VM last seen on ``label`` that another host listed at the same time, with the host that becomes
    its place: a configured one first, then by name."""
    others: dict[str, list[str]] = {}
    for uuid, host in conn.execute(
            "SELECT vm_uuid, host FROM vgpu_location_copies WHERE host <> ? AND vm_uuid IN"
            " (SELECT vm_uuid FROM vgpu_locations WHERE host = ?)", (label, label)):
        others.setdefault(str(uuid), []).append(str(host))
    return tuple((uuid, min(hosts, key=lambda host: (host not in configured, natural_key(host))))
                 for uuid, hosts in sorted(others.items()))


def _check_no_operation(conn: sqlite3.Connection, label: str) -> None:
    """Busy when an operation made on host ``label`` is unfinished: recover takes it back to that host alone."""
    row = conn.execute("SELECT op_id, vm_uuid, started_at FROM vgpu_operations WHERE host = ? AND finished_at IS NULL"
                       " ORDER BY op_id LIMIT 1", (label,)).fetchone()
    if row is None:
        return
    op_id, vm_uuid, since = row
    error = Busy(str(vm_uuid), str(since), int(op_id), interrupted=True)
    error.reword(f"host {label} has an unfinished change of VM {vm_uuid} (started {since}), and recover needs that host "
                 f"to finish or undo it: give it again ({codes.give_again(label)}), run 'vgpu-admin recover', "
                 f"then forget it; nothing was forgotten")
    raise error


def _forget(conn: sqlite3.Connection, plan: ForgetHostPlan) -> None:
    """Remove what ``plan`` names, inside the caller's write transaction, with a history entry for each VM."""
    label, moved = plan.host, dict(plan.moved)
    for uuid, host in plan.moved:
        conn.execute("UPDATE vgpu_locations SET host = ?, resident_on = NULL WHERE vm_uuid = ?", (host, uuid))
        conn.execute("DELETE FROM vgpu_location_copies WHERE vm_uuid = ? AND host = ?", (uuid, host))
    conn.execute("DELETE FROM vgpu_locations WHERE host = ?", (label,))
    conn.execute("DELETE FROM vgpu_location_copies WHERE host = ?", (label,))
    conn.execute("DELETE FROM vgpu_copies_known_on WHERE host = ?", (label,))  # else no scan could learn copies again
    conn.execute("DELETE FROM vgpu_host_identities WHERE host = ?", (label,))
    for uuid in sorted([vm.vm_uuid for vm in plan.vms] + list(plan.unregistered)):
        audit.record(conn, "forget-host", uuid, {"host": label}, {"host": moved[uuid]} if uuid in moved else None)
    for uuid in plan.copies:
        audit.record(conn, "forget-host", uuid, {"copy_on": label}, None)

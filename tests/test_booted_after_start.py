"""What a change says of the VM it started, and of a VM the host is busy with.

"Started again with it" must mean the running VM booted with that configuration. Once the change has
started the VM, the host is asked what the domain booted with (no extra xe process: see test_round_trips):
a host that drops the args key at start (stock xapi's platform filter) or another admin's edit of the args
between our write and our start make it boot with something else, which is said, not taken for success; a
host that cannot tell (a remote XenAPI connection) says "unknown". A halted VM the host is already starting
is refused (it would boot with the old args while we say "at its next start"), and so is registering it. A
registered VM the host no longer has gets the same sentence (and exit code) from every command.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from vgpu import bulk_register, devargs, journal, lifecycle, recovery
from vgpu.errors import HostUnreachable, HypervisorError, NotFound, ReconfigureFailed
from vgpu.hypervisor import codes
from vgpu.lifecycle import StopPolicy
from vgpu.models import PowerState

from . import crashkit
from .clikit import SpecHost
from .hostkit import BACKENDS, SIMULATED, running_vm_on
from .lifekit import World, config

OLD = config("A", 1, 4)
NEW = config("B", 1, 4)
OWN_ARGS = "-vnc 127.0.0.1:4"
QUICK = StopPolicy(clean_timeout=5, tick=0.05)
TELLS_BOOTED = {"sim", "xe", "xapi-dom0"}  # a remote XenAPI connection cannot say what a domain booted with


@pytest.fixture(params=SIMULATED)
def backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 4, OLD, OWN_ARGS) as found:
        yield found


def last_outcome(world, vm_uuid: str) -> str:
    """How the VM's last journalled operation ended, with the detail it was closed with."""
    with world.store.reading() as conn:
        return conn.execute("SELECT outcome FROM vgpu_operations WHERE vm_uuid = ? ORDER BY op_id DESC LIMIT 1",
                            (vm_uuid,)).fetchone()[0]


def to_pool_b(world, host, uuid):
    return lifecycle.reconfigure_vm(world.store, host, uuid, pool="B", confirm=lambda plan: True, policy=QUICK)


def test_a_vm_that_booted_with_the_change_says_so_where_the_host_tells(backend):
    under_test, world, uuid = backend
    result = to_pool_b(world, under_test.host, uuid)
    assert result.restarted and result.started_by_other == ""
    assert result.booted == ("new" if under_test.name in TELLS_BOOTED else "unknown")
    assert result.booted_with is None and not result.args_changed


def test_a_host_that_drops_the_args_key_at_start_is_not_taken_for_success(backend):
    under_test, world, uuid = backend
    world.sim.set_fault("start", "drop_args", uuid)  # stock xapi without the "no platform filter" feature
    result = to_pool_b(world, under_test.host, uuid)
    assert result.restarted and result.changed and world.power(uuid) is PowerState.RUNNING
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)  # the change stands
    assert world.open_ops() == []
    if under_test.name in TELLS_BOOTED:
        assert result.booted == "other" and not result.args_changed
        assert result.booted_with is not None and not result.booted_with.present
        assert "booted without" in last_outcome(world, uuid)
    else:
        assert result.booted == "unknown" and result.booted_with is None


def test_applying_to_a_host_that_drops_the_args_key_is_not_taken_for_success(backend):
    under_test, world, uuid = backend
    world.sim.set_fault("start", "drop_args", uuid)
    to_pool_b(world, under_test.host, uuid)  # now pending restart for good: the host drops the key
    result = lifecycle.apply_vm(world.store, under_test.host, uuid, confirm=lambda plan: True, policy=QUICK)
    assert result.restarted and result.changed
    if under_test.name in TELLS_BOOTED:
        assert result.booted == "other" and not result.booted_with.present
    else:
        assert result.booted == "unknown"


def test_args_another_admin_rewrites_between_our_write_and_our_start_are_reported(backend, monkeypatch):
    under_test, world, uuid = backend
    original = journal.advance

    def advance(store, op, to, **recorded):
        if to == journal.STARTING:  # right after our args write
            world.sim.set_device_model_args(uuid, "-vga std")
        return original(store, op, to, **recorded)

    monkeypatch.setattr(journal, "advance", advance)
    result = to_pool_b(world, under_test.host, uuid)
    assert result.restarted and world.power(uuid) is PowerState.RUNNING and world.args(uuid) == "-vga std"
    if under_test.name in TELLS_BOOTED:
        assert result.booted == "other" and result.args_changed and not result.booted_with.present
    else:
        assert result.booted == "unknown"


# --- two domains naming one VM ----------------------------------------------------------------------------


LEFTOVER_DOMID = 999  # listed after the live one (a small domid), so a last-one-wins read takes it


def with_a_leftover_domain(under_test, tmp_path, uuid):
    """The backend's xenstore-ls shows, beside the VM's live domain, a leftover one of it not yet torn down,
    with the platform it booted with long ago (no vgpu segment)."""
    xenstore = getattr(under_test.host, "xenstore", None) or under_test.host._xenstore
    node = f"/local/domain/{LEFTOVER_DOMID}"
    wrapper = tmp_path / "xenstore-ls-with-leftover"
    wrapper.write_text(f'#!/bin/sh\n"{xenstore.ls_path}" "$@" || exit $?\n'
                       f'[ "$2" = /local/domain ] && printf \'%s\\n\' \'{node}/vm = "/vm/{uuid}"\' '
                       f'\'{node}/platform = ""\' \'{node}/platform/acpi = "1"\'\nexit 0\n')
    wrapper.chmod(0o755)
    xenstore.ls_path = str(wrapper)


@pytest.fixture(params=["xe", "xapi-dom0"])  # the backends that read xenstore
def dom0_backend(request, tmp_path, store):
    with running_vm_on(request.param, tmp_path, store, 4, OLD, OWN_ARGS) as found:
        yield found


def test_a_leftover_domain_of_the_vm_is_never_taken_for_the_one_it_runs(dom0_backend, tmp_path):
    """The change's after-start read and a listing see every domain, not xapi's domid: with two naming the
    VM they say unknown (a listing with the domid XenAPI reports uses it); a look by the VM's domid reads
    its live domain whatever else xenstore holds."""
    under_test, world, uuid = dom0_backend
    with_a_leftover_domain(under_test, tmp_path, uuid)
    result = to_pool_b(world, under_test.host, uuid)
    assert result.restarted and result.booted == "unknown" and result.booted_with is None
    live = devargs.merge(OWN_ARGS, NEW)
    assert under_test.host.describe_vm(uuid).booted_args == live
    listed = {vm.uuid: vm.booted_args for vm in under_test.host.list_vms()}
    assert listed[uuid] == (live if under_test.name == "xapi-dom0" else None)  # xe's listing has no dom-id


# --- a halted VM the host is starting ---------------------------------------------------------------------


@pytest.fixture(params=SIMULATED)
def halted(request, tmp_path, store):
    with BACKENDS[request.param](tmp_path) as under_test:
        world = World(store, under_test.sim)
        yield under_test, world, world.add(5, "halted", OLD, OWN_ARGS)


def someone_starts(world, uuid, seconds=4.0):
    """Another admin's start of ``uuid``, under way (the host names it in current_operations) on return."""
    world.sim.set_latency("start", seconds)
    starter = threading.Thread(target=world.sim.reopen().start, args=(uuid,), daemon=True)
    starter.start()
    deadline = time.monotonic() + 5
    while world.sim.current_operations(uuid) != ("start",) and time.monotonic() < deadline:
        time.sleep(0.02)
    return starter


def test_a_halted_vm_the_host_is_starting_is_refused_before_the_question(halted):
    under_test, world, uuid = halted
    before = world.tables(), world.args(uuid)
    starter = someone_starts(world, uuid)
    asked = []
    with pytest.raises(HypervisorError) as refused:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=asked.append)
    starter.join()
    assert refused.value.code == codes.OTHER_OPERATION_IN_PROGRESS and asked == []
    assert "being started" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert (world.tables(), world.args(uuid)) == before and world.open_ops() == []


def test_a_halted_vm_the_host_starts_after_the_plan_is_refused_and_nothing_changed(halted):
    under_test, world, uuid = halted
    before = world.tables(), world.args(uuid)
    plan = lifecycle.plan_reconfigure(world.store, under_test.host, uuid, pool="B")
    assert not plan.needs_restart
    starter = someone_starts(world, uuid)
    with pytest.raises(HypervisorError) as refused:
        lifecycle.apply_plan(world.store, under_test.host, plan)
    starter.join()
    assert refused.value.code == codes.OTHER_OPERATION_IN_PROGRESS
    assert (world.tables(), world.args(uuid)) == before and world.open_ops() == []


def test_registering_a_halted_vm_the_host_is_starting_is_refused(halted):
    under_test, world, _ = halted
    uuid = world.add(6, "halted", None, OWN_ARGS)
    before = world.tables()
    starter = someone_starts(world, uuid)
    with pytest.raises(HypervisorError) as refused:
        lifecycle.register_vm(world.store, under_test.host, uuid, pool="B")
    starter.join()
    assert refused.value.code == codes.OTHER_OPERATION_IN_PROGRESS and "not registered" in str(refused.value)
    assert "restarted by the change" not in str(refused.value)  # registering never restarts a running VM
    assert "takes its segment at its next boot" in str(refused.value)
    assert world.tables() == before and world.args(uuid) == OWN_ARGS and world.open_ops() == []


def failed_to_write(world, host, uuid):
    """write_segments' failure for the VM, raised as repair_vm would raise it."""
    written, failures = bulk_register.write_segments(world.store, host, [uuid], concurrency=1)
    assert written == [] and [failure.vm_uuid for failure in failures] == [uuid], (written, failures)
    raise failures[0].error


@pytest.mark.parametrize("change", [
    lambda world, host, uuid: lifecycle.repair_vm(world.store, host, uuid),
    lambda world, host, uuid: lifecycle.remove_vm(world.store, host, uuid),
    failed_to_write,
], ids=["repair", "remove", "write_segments"])
def test_rewriting_the_segment_of_a_halted_vm_the_host_is_starting_is_refused(halted, change):
    """repair-vm would say "effective at its next boot" of a VM about to run with the args its start read."""
    under_test, world, uuid = halted
    world.sim.set_device_model_args(uuid, OWN_ARGS)  # its segment lost: a repair has something to write
    before = world.tables(), world.args(uuid)
    starter = someone_starts(world, uuid)
    try:
        with pytest.raises(HypervisorError) as refused:
            change(world, under_test.host, uuid)
    finally:
        starter.join()
    assert refused.value.code == codes.OTHER_OPERATION_IN_PROGRESS and "being started" in str(refused.value)
    assert (world.tables(), world.args(uuid)) == before and world.open_ops() == []


def starts_before_our_write(monkeypatch, sim, uuid):
    """Another admin's start of ``uuid`` done between the change's last look and its args write (so it booted
    with the args as they were)."""
    original = journal.advance

    def advance(store, op, to, **recorded):
        if to == journal.WRITING_ARGS:
            sim.reopen().start(uuid)
        return original(store, op, to, **recorded)

    monkeypatch.setattr(journal, "advance", advance)


def test_a_halted_vm_started_before_the_args_write_is_not_said_to_take_it_at_its_next_start(halted, monkeypatch):
    under_test, world, uuid = halted
    starts_before_our_write(monkeypatch, world.sim, uuid)
    result = to_pool_b(world, under_test.host, uuid)
    assert world.power(uuid) is PowerState.RUNNING and world.config(uuid) == NEW  # the change stands, not restarted
    assert result.changed and not result.restarted and result.running and world.open_ops() == []
    assert result.started_by_other == ("other" if under_test.name in TELLS_BOOTED else "unknown")
    assert "before its args were written" in last_outcome(world, uuid)


def test_set_pool_of_a_halted_vm_started_before_the_args_write_says_so_and_fails(tmp_path, monkeypatch):
    spec = SpecHost(tmp_path)
    name = next(vm.vm_name for vm in spec.registered() if spec.sim.power_state(vm.vm_uuid) is PowerState.HALTED)
    uuid = spec.uuid(name)
    starts_before_our_write(monkeypatch, spec.sim, uuid)
    outcome = spec.cli("set-pool", "--vm-uuid", uuid, "--pool", "B" if spec.pool_of(name) == "A" else "A", stdin="yes\n")
    assert outcome.code == 1, outcome
    assert "takes the new configuration at its next start" not in outcome.out
    assert "someone else started it before its args were written" in outcome.out
    error = outcome.err_lines[-1]  # after the progress lines
    assert error.startswith("error: ") and f"'vgpu-admin apply-vm --vm-uuid={uuid}'" in error


# --- a registered VM the host no longer has ---------------------------------------------------------------


GONE = "the host has no such VM, though it is registered: 'vgpu-admin remove-vm --vm-uuid={}' unregisters it"


@pytest.mark.parametrize("change", [
    lambda world, uuid: lifecycle.reconfigure_vm(world.store, world.sim, uuid, pool="B", confirm=lambda plan: True),
    lambda world, uuid: lifecycle.apply_vm(world.store, world.sim, uuid, confirm=lambda plan: True),
    lambda world, uuid: lifecycle.repair_vm(world.store, world.sim, uuid),
], ids=["reconfigure", "apply", "repair"])
def test_a_registered_vm_gone_from_the_host_gets_the_same_remedy_from_every_change(tmp_path, store, change):
    world = World.create(tmp_path, store)
    uuid = world.add(7, "halted", OLD)
    world.sim.remove_vm(uuid)
    with pytest.raises(NotFound) as missing:
        change(world, uuid)
    assert str(missing.value) == f"VM {uuid} not found; " + GONE.format(uuid)
    assert world.open_ops() == [] and world.config(uuid) == OLD


# --- what vgpu-admin says -----------------------------------------------------------------------------------


def test_set_pool_and_apply_vm_on_a_host_that_drops_the_key_say_so_and_fail(tmp_path):
    spec = SpecHost(tmp_path)
    uuid = spec.uuid("VM-1")
    spec.sim.set_fault("start", "drop_args", uuid)
    outcome = spec.cli("set-pool", "--vm-uuid", uuid, "--pool", "B", stdin="yes\n")
    assert outcome.code == 1, outcome
    said = outcome.out + outcome.err
    assert "started again with" not in said and "reconfigured and started again." not in said
    assert "booted without the vgpu segment" in said and "docs/install-xcp-ng.md" in said
    again = spec.cli("apply-vm", "--vm-uuid", uuid, stdin="yes\n")
    assert again.code == 1 and "started again with it" not in again.out + again.err


def test_set_pool_of_a_registered_vm_gone_from_the_host_says_what_repair_vm_says(tmp_path):
    spec = SpecHost(tmp_path)
    uuid = spec.uuid("VM-1")
    spec.sim.remove_vm(uuid)
    repair = spec.cli("repair-vm", "--vm-uuid", uuid)
    for argv in (["set-pool", "--pool", "B"], ["update-vm", "--priority", "low"], ["apply-vm"]):
        outcome = spec.cli(*argv, "--vm-uuid", uuid, stdin="yes\n")
        assert (outcome.code, outcome.err) == (repair.code, repair.err) == (2, f"error: VM {uuid} not found; {GONE.format(uuid)}\n")


def test_set_pool_of_a_halted_vm_the_host_is_starting_is_refused_with_exit_1(tmp_path):
    spec = SpecHost(tmp_path)
    name = next(vm.vm_name for vm in spec.registered() if spec.sim.power_state(vm.vm_uuid) is PowerState.HALTED)
    uuid = spec.uuid(name)
    before = spec.files()
    world = World(None, spec.sim)
    starter = someone_starts(world, uuid)
    outcome = spec.cli("set-pool", "--vm-uuid", uuid, "--pool", "B" if spec.pool_of(name) == "A" else "A", stdin="yes\n")
    starter.join()
    assert outcome.code == 1 and "no restart is needed" not in outcome.out, outcome
    assert outcome.one_error_line().startswith("error: ") and "nothing was changed" in outcome.one_error_line()
    assert spec.files()["vgpu.db"] == before["vgpu.db"]


# --- recover finishing a change: the same look at what the VM booted with --------------------------------


def killed_while_starting(world, uuid):
    """A change to pool B whose session was killed once it journalled "starting", the VM halted."""
    child = crashkit.run(world.store.path, world.sim.path, "reconfigure", uuid, "starting", "kill", pool="B")
    assert child.returncode == -signal.SIGKILL, (child.stdout, child.stderr)
    assert world.power(uuid) is PowerState.HALTED


def test_recover_finishing_a_change_on_a_host_that_drops_the_key_says_it_did_not_boot_with_it(backend):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    world.sim.set_fault("start", "drop_args", uuid)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == "finished" and world.power(uuid) is PowerState.RUNNING
    assert world.config(uuid) == NEW and world.open_ops() == []
    assert "started with it" not in outcome.detail
    if under_test.name in TELLS_BOOTED:
        assert "did not boot with its registered configuration" in outcome.attention and not outcome.settled
        assert "booted without the vgpu segment" in outcome.detail and "booted without" in last_outcome(world, uuid)
    else:
        assert "cannot tell what it booted with" in outcome.detail and outcome.settled


def test_recover_finishing_a_change_says_started_with_it_where_the_host_saw_it(backend):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == "finished" and outcome.settled
    assert ("started with it" in outcome.detail) == (under_test.name in TELLS_BOOTED)


# --- a VM that is not running right after our start -------------------------------------------------------


def halts_right_after_our_start(world, monkeypatch):
    """Our start completes, then the VM halts (its guest crashed, or someone stopped it) before we look."""
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        original(host, vm_uuid, *args, **kwargs)
        world.sim.hard_shutdown(vm_uuid)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)


def test_a_vm_not_running_right_after_our_start_is_said_to_be_not_running(backend, monkeypatch, request):
    under_test, world, uuid = backend
    halts_right_after_our_start(world, monkeypatch)
    result = to_pool_b(world, under_test.host, uuid)
    assert result.restarted and world.power(uuid) is PowerState.HALTED
    if request.node.callspec.params["backend"] == "xapi":
        # A remote XenAPI connection cannot see what a VM booted with, so it does not ask whether it still runs
        # either (that call would be an 11th round trip of every change): it says it cannot tell, as ever.
        assert result.booted == lifecycle.RUNS_UNKNOWN and not result.not_running_with_it
        return
    assert result.booted == lifecycle.NOT_RUNNING and result.not_running_with_it  # not "the host cannot tell"
    assert "not running right after" in last_outcome(world, uuid) and world.open_ops() == []


def test_set_pool_of_a_vm_not_running_right_after_the_start_says_so_and_fails(tmp_path, monkeypatch):
    spec = SpecHost(tmp_path)
    vm = next(vm for vm in spec.registered() if spec.sim.power_state(vm.vm_uuid) is PowerState.RUNNING)
    uuid = vm.vm_uuid
    halts_right_after_our_start(World(None, spec.sim), monkeypatch)
    outcome = spec.cli("set-pool", "--vm-uuid", uuid, "--pool", "B" if vm.pool_id == "A" else "A", stdin="yes\n")
    said = outcome.out + outcome.err
    assert outcome.code == 1 and "cannot tell" not in said, outcome
    assert "not running right after" in outcome.out and "is not running" in outcome.err.splitlines()[-1]


# --- a rollback that starts the VM again: the same look at what it booted with -------------------------


def rollback_start_meets(world, monkeypatch, after):
    """Our start of the VM with its new configuration fails (the host will not boot pool B); the rollback's
    start of it, with its previous configuration, then ``after``: "drop_args" boots it without its args key
    (stock xapi's platform filter), "halt" halts it right after (its guest crashed, or someone stopped it)."""
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        if world.power(vm_uuid) is not PowerState.HALTED or "pool=B" in world.args(vm_uuid):
            return original(host, vm_uuid, *args, **kwargs)  # the first start: the fault refuses it
        world.sim.set_fault("start", "drop_args" if after == "drop_args" else None, vm_uuid)
        original(host, vm_uuid, *args, **kwargs)
        if after == "halt":
            world.sim.hard_shutdown(vm_uuid)

    world.sim.set_fault("start", "fail_if_args_contain:pool=B")  # every VM; a fault of the VM's own comes first
    monkeypatch.setattr(lifecycle, "start_vm", start_vm)


@pytest.mark.parametrize("after", ["drop_args", "halt"])
def test_a_rollback_that_starts_the_vm_again_says_what_it_booted_with(backend, monkeypatch, after):
    under_test, world, uuid = backend
    rollback_start_meets(world, monkeypatch, after)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error = failed.value
    assert error.rolled_back and error.vm_restarted and world.config(uuid) == OLD and world.open_ops() == []
    said = str(error)
    if under_test.name not in TELLS_BOOTED:  # a remote XenAPI connection: nothing more is asked (see above)
        assert error.vm_booted == lifecycle.RUNS_UNKNOWN and "the host cannot tell what it booted with" in said
        return
    assert "the VM started again" not in said or "but it" in said
    if after == "drop_args":
        assert error.vm_booted == lifecycle.RUNS_OTHER and "booted without the vgpu segment" in said
    else:
        assert error.vm_booted == lifecycle.NOT_RUNNING and "not running right after" in said
    assert "but it" in last_outcome(world, uuid)


def test_a_rollback_whose_vm_booted_with_its_previous_configuration_says_so(backend, monkeypatch):
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    assert failed.value.vm_restarted and world.power(uuid) is PowerState.RUNNING
    assert failed.value.vm_booted == ("new" if under_test.name in TELLS_BOOTED else "unknown")
    assert ("but it" in str(failed.value)) is False


def test_recover_rolling_back_a_change_its_vm_would_not_start_with_says_what_it_booted_with(backend, monkeypatch):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    rollback_start_meets(world, monkeypatch, "drop_args")
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == "rolled-back" and world.config(uuid) == OLD and world.power(uuid) is PowerState.RUNNING
    if under_test.name in TELLS_BOOTED:
        assert "booted without the vgpu segment" in outcome.detail and not outcome.settled
        assert "did not boot with" in outcome.attention
    else:
        assert "cannot tell what it booted with" in outcome.detail


def test_set_pool_whose_rollback_restarts_the_vm_without_its_segment_says_so(tmp_path, monkeypatch):
    spec = SpecHost(tmp_path)
    vm = next(vm for vm in spec.registered() if spec.sim.power_state(vm.vm_uuid) is PowerState.RUNNING and vm.pool_id == "A")
    rollback_start_meets(World(None, spec.sim), monkeypatch, "drop_args")
    outcome = spec.cli("set-pool", "--vm-uuid", vm.vm_uuid, "--pool", "B", stdin="yes\n")
    assert outcome.code == 1, outcome
    error = outcome.err.splitlines()[-1]  # after the progress lines
    assert error.startswith("error: ") and "booted without the vgpu segment" in error
    assert "started again with its previous" not in outcome.out + outcome.err


# --- a start the host reports failed, that ran the VM all the same ---------------------------------------


def starts_despite_failing(world, monkeypatch, which=(1,)):
    """The ``which`` (1-based) starts of ours run the VM, and then the host reports a failure all the same
    (xenopsd's internal error once the domain is up, a start that outlived our wait)."""
    original = lifecycle.start_vm
    calls = []

    def start_vm(host, vm_uuid, *args, **kwargs):
        calls.append(vm_uuid)
        original(host, vm_uuid, *args, **kwargs)
        if len(calls) in which:
            raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: Xenlight.Error(_)")

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)


def test_a_start_that_reports_failure_but_ran_the_vm_finishes_the_change(backend, monkeypatch):
    under_test, world, uuid = backend
    starts_despite_failing(world, monkeypatch)
    result = to_pool_b(world, under_test.host, uuid)  # not a ReconfigureFailed: the VM runs the change
    assert result.changed and result.restarted and world.power(uuid) is PowerState.RUNNING
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW) and world.open_ops() == []
    assert result.booted == ("new" if under_test.name in TELLS_BOOTED else "unknown")
    assert last_outcome(world, uuid) == "done"


def test_a_rollback_start_that_reports_failure_but_ran_the_vm_says_it_runs_again(backend, monkeypatch):
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    starts_despite_failing(world, monkeypatch, which=(2,))  # the rollback's start
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error = failed.value
    assert error.rolled_back and error.vm_restarted and error.restart_error is None
    assert world.config(uuid) == OLD and world.power(uuid) is PowerState.RUNNING and world.open_ops() == []
    assert error.vm_booted == ("new" if under_test.name in TELLS_BOOTED else "unknown")


def test_recover_whose_start_reports_failure_but_ran_the_vm_finishes_the_change(backend, monkeypatch):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    starts_despite_failing(world, monkeypatch)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == "finished" and world.config(uuid) == NEW and world.power(uuid) is PowerState.RUNNING
    assert "would not start" not in outcome.detail and "restored" not in outcome.detail
    assert ("started with it" in outcome.detail) == (under_test.name in TELLS_BOOTED)


def test_a_vm_that_came_up_with_the_new_configuration_during_the_rollback_is_not_said_restored(backend, monkeypatch):
    """Our start reports failure and the VM is halted when we look, but the host goes on starting it (its
    start outlived our wait): it comes up with the new args while the rollback puts the old ones back. The
    rollback must not say the previous configuration is what the VM has."""
    under_test, world, uuid = backend
    original_start, original_put_back = lifecycle.start_vm, lifecycle.put_back_device_model_args
    started = []

    def start_vm(host, vm_uuid, *args, **kwargs):
        if not started:
            started.append(True)
            raise HypervisorError(codes.OPERATION_TIMED_OUT, "'xe vm-start' did not answer within 3 seconds")
        return original_start(host, vm_uuid, *args, **kwargs)

    def put_back(host, vm_uuid, *args, **kwargs):
        if world.power(vm_uuid) is PowerState.HALTED:
            world.sim.start(vm_uuid)  # the host's start completes now, with the args it read: the new ones
        return original_put_back(host, vm_uuid, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    monkeypatch.setattr(lifecycle, "put_back_device_model_args", put_back)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    said = str(failed.value)
    assert world.power(uuid) is PowerState.RUNNING and world.config(uuid) == OLD
    if under_test.name not in TELLS_BOOTED:  # nothing said of what the VM runs but that the host cannot tell
        assert failed.value.vm_booted == lifecycle.RUNS_UNKNOWN and "cannot tell what it booted with" in said, said
        return
    assert "the previous configuration was restored" not in said or "but it" in said, said
    assert failed.value.vm_booted == lifecycle.RUNS_OTHER and "pool=B" in said, said
    assert "apply-vm" in said or "with the args it held before" in said, said


def test_a_start_that_ran_the_vm_is_not_undone_when_the_host_cannot_be_asked_right_after(backend, monkeypatch):
    """The start ran the VM and failed; the look right after fails too (the host busy for a moment): the
    rollback asks again before undoing anything, finds it running with the change, and leaves it to recover,
    which finishes it. Never the previous configuration written back under a VM running the new one."""
    under_test, world, uuid = backend
    starts_despite_failing(world, monkeypatch)
    original, looks = lifecycle.describe, []

    def describe(host, vm_uuid):
        looks.append(vm_uuid)
        if len(looks) == 1:
            raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: busy")
        return original(host, vm_uuid)

    monkeypatch.setattr(lifecycle, "describe", describe)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error = failed.value
    assert not error.rolled_back and not error.vm_restarted
    assert error.rollback_error.code == codes.VM_RUNNING_AFTER_FAILED_START and "recover" in str(error)
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)  # nothing undone
    assert world.power(uuid) is PowerState.RUNNING and len(world.open_ops()) == 1
    monkeypatch.undo()
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == "finished" and world.config(uuid) == NEW and world.open_ops() == []


def test_a_rollback_that_finds_the_vm_started_by_someone_else_does_not_say_it_started_it(backend, monkeypatch):
    """Someone else starts the VM with its old args while the change has it stopped; restarting it into the
    new configuration is refused (its guest cannot shut down cleanly, and forcing is off): the rollback puts
    the old configuration back, and the VM runs with it, but the rollback did not start it."""
    from vgpu.lifecycle import StopPolicy as Policy

    under_test, world, uuid = backend
    original = journal.advance

    def advance(store, op, to, **recorded):
        if to == journal.WRITING_ARGS:  # after our stop, before our write: started with the old args
            world.sim.start(uuid)
            world.sim.set_fault("clean_shutdown", "lacks_feature", uuid)
        return original(store, op, to, **recorded)

    monkeypatch.setattr(journal, "advance", advance)
    policy = Policy(clean_timeout=5, tick=0.05, force=False)
    if under_test.name not in TELLS_BOOTED:  # it cannot tell what the VM runs, so it is not restarted: done
        result = lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=policy)
        assert result.started_by_other == "unknown" and world.config(uuid) == NEW
        return
    with pytest.raises(ReconfigureFailed) as failed:
        lifecycle.reconfigure_vm(world.store, under_test.host, uuid, pool="B", confirm=lambda plan: True, policy=policy)
    said = str(failed.value)
    assert world.config(uuid) == OLD and world.power(uuid) is PowerState.RUNNING and world.open_ops() == []
    assert "started again" not in said and not failed.value.vm_restarted, said
    assert said.endswith("and the VM started meanwhile (not by the rollback) and runs with it"), said


def boots_with(world, monkeypatch, booted_args):
    """Our start boots the VM with ``booted_args(written)`` (from the args written), which its args keep."""
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        written = world.sim.get_device_model_args(vm_uuid)
        world.sim.set_device_model_args(vm_uuid, booted_args(written))
        original(host, vm_uuid, *args, **kwargs)
        world.sim.set_device_model_args(vm_uuid, written)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)


def test_a_vm_that_booted_with_an_unreadable_segment_is_not_said_to_have_booted_older_args(backend, monkeypatch):
    under_test, world, uuid = backend
    boots_with(world, monkeypatch, lambda written: written.replace("vm_id=4", "vm_id=4;extra"))
    result = to_pool_b(world, under_test.host, uuid)
    if under_test.name not in TELLS_BOOTED:  # a remote XenAPI connection cannot see it
        assert result.booted == "unknown"
        return
    assert result.booted == "other" and result.booted_with.present and result.booted_with.config is None
    why = result.why_not_running_with_it
    assert "cannot be read" in why and "held before" not in why and "platform filter" not in why, why


def test_a_vm_that_booted_with_an_older_segment_than_its_args_is_not_blamed_on_the_platform_filter(backend, monkeypatch):
    under_test, world, uuid = backend
    boots_with(world, monkeypatch, lambda written: devargs.merge(OWN_ARGS, OLD))  # the args it held before our write
    result = to_pool_b(world, under_test.host, uuid)
    if under_test.name not in TELLS_BOOTED:  # a remote XenAPI connection cannot see it
        assert result.booted == "unknown"
        return
    assert result.booted == "other" and result.booted_with.present and result.not_running_with_it
    why = result.why_not_running_with_it
    assert "platform filter" not in why and "will not help" not in why and "apply-vm" in why, why


# --- a batch ----------------------------------------------------------------------------------------------


def test_a_batch_on_a_host_that_drops_the_key_is_not_ok_and_its_rows_say_why(tmp_path, store):
    from vgpu import bulk

    world = World.create(tmp_path, store)
    uuids = [world.add(number, "running", config("A", 1, number), OWN_ARGS) for number in (4, 5)]
    world.sim.set_fault("start", "drop_args", "*")
    plan = bulk.plan_many(store, world.sim, [{"vm_uuid": uuid, "priority": "high"} for uuid in uuids])
    result = bulk.apply_many(store, world.sim, plan, concurrency=2)
    assert [done.booted for done in result.results] == ["other", "other"] and not result.failures
    assert not result.ok
    assert [row["outcome"] for row in result.records()] == ["booted without segment"] * 2


# --- a rollback under a start that went on, or that someone else made, and a VM left paused -----------------


BUSY = HypervisorError(codes.OTHER_OPERATION_IN_PROGRESS, "another operation is already running on the VM")


@pytest.mark.parametrize("refusal", ["runs already", "busy starting it"])
def test_a_rollback_whose_start_finds_the_vm_started_by_someone_else_does_not_say_it_started_it(backend, monkeypatch, refusal):
    """The change's start fails (the VM stays halted); just before the rollback's start, another admin starts
    the VM, so the host refuses ours (VM_BAD_POWER_STATE, or OTHER_OPERATION_IN_PROGRESS while that start was
    under way): the VM runs, but not because the rollback started it."""
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        if "pool=B" not in world.args(vm_uuid):  # the rollback's start: another admin's comes first
            world.sim.start(vm_uuid)
            if refusal == "busy starting it":
                raise BUSY
        return original(host, vm_uuid, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert error.rolled_back and not error.vm_restarted, said
    assert world.config(uuid) == OLD and world.power(uuid) is PowerState.RUNNING and world.open_ops() == []
    assert "started again" not in said and "started meanwhile (not by the rollback)" in said, said


def test_a_start_still_under_way_on_the_host_is_not_undone_under_it(backend, monkeypatch):
    """Our start outlives our wait, and the host goes on starting the VM (with the new args it read): the
    rollback must not put the old configuration back under it. It is left to recover, which waits for that
    start ("later") and then finishes the change the VM came up with."""
    under_test, world, uuid = backend
    original, starters = lifecycle.start_vm, []

    def start_vm(host, vm_uuid, *args, **kwargs):
        if not starters:  # ours: the host takes it, and answers too late
            starters.append(someone_starts(world, vm_uuid))
            raise HostUnreachable(codes.HOST_UNREACHABLE, "cannot reach the host: 'xe vm-start' did not answer within 2 seconds")
        return original(host, vm_uuid, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert not error.rolled_back and error.rollback_error.code == codes.VM_STARTING_AFTER_FAILED_START, said
    assert "is still being started by the host (start)" in said and said.endswith(
        "run 'vgpu-admin recover' once the host is done starting it: it then finishes the change, or undoes it"), said
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW)  # nothing undone
    (later,) = recovery.recover(world.store, under_test.host)  # the start still goes on: nothing is done
    assert later.action == recovery.LATER and world.config(uuid) == NEW and len(world.open_ops()) == 1, later
    starters[0].join()
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.FINISHED and world.config(uuid) == NEW and world.open_ops() == [], outcome
    assert world.power(uuid) is PowerState.RUNNING


def paused(world, uuid, state="paused"):
    """The VM's domain paused, or suspended (as a start that failed after creating it may leave it)."""
    with world.sim._transaction() as conn:  # the simulated host has no pause of its own: its record is set
        vm = world.sim._vm(conn, uuid)
        vm["power_state"] = state
        world.sim._store(conn, uuid, vm)


def starts_then_leaves_it(world, monkeypatch, state):
    """Our starts run the VM, leave it ``state`` (paused, suspended), then report a failure all the same."""
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        original(host, vm_uuid, *args, **kwargs)
        paused(world, vm_uuid, state)
        raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: xenopsd: QMP")

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)


@pytest.mark.parametrize("state", ["paused", "suspended"])
def test_a_failed_start_that_leaves_the_vm_paused_with_the_change_is_not_undone(backend, monkeypatch, state):
    under_test, world, uuid = backend
    starts_then_leaves_it(world, monkeypatch, state)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert not error.rolled_back and error.rollback_error.code == codes.VM_RUNNING_AFTER_FAILED_START, said
    assert f"VM {uuid} is {state}, though the host said its start failed" in said, said
    assert said.endswith("run 'vgpu-admin recover' once the VM is resumed: it finishes the change"), said
    assert world.config(uuid) == NEW and world.args(uuid) == devargs.merge(OWN_ARGS, NEW) and len(world.open_ops()) == 1
    monkeypatch.undo()
    paused(world, uuid, "running")  # resumed by the admin
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.FINISHED and world.config(uuid) == NEW and world.open_ops() == [], outcome


def test_recover_whose_start_fails_while_the_vm_comes_up_with_the_change_finishes_it(backend, monkeypatch):
    """recover's own start is said to fail, and the VM is halted when recover looks; by the time the rollback
    asks, it is up with the change. Nothing was undone: recover finishes the change, as it says it would."""
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    original_running_after = lifecycle.running_after

    def start_vm(host, vm_uuid, *args, **kwargs):
        raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: Xenlight.Error(_)")

    def running_after(host, vm_uuid, refused):
        seen = original_running_after(host, vm_uuid, refused)  # halted still ...
        world.sim.start(vm_uuid)  # ... and up right after, with the args recover wrote: the new ones
        return seen

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    monkeypatch.setattr(lifecycle, "running_after", running_after)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.FINISHED, outcome
    assert world.config(uuid) == NEW and world.power(uuid) is PowerState.RUNNING and world.open_ops() == []
    assert ("started with it" in outcome.detail) == (under_test.name in TELLS_BOOTED), outcome


def test_a_vm_a_rollback_started_that_is_not_running_right_after_is_marked_for_attention(backend, monkeypatch):
    under_test, world, uuid = backend
    rollback_start_meets(world, monkeypatch, "halt")
    with pytest.raises(ReconfigureFailed):
        to_pool_b(world, under_test.host, uuid)
    marks = [(mark.vm_uuid, mark.kind) for mark in world.marks()]
    assert marks == ([(uuid, "not-restarted")] if under_test.name in TELLS_BOOTED else []), marks


def test_a_vm_recover_started_that_is_not_running_right_after_is_marked_for_attention(backend, monkeypatch):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    halts_right_after_our_start(world, monkeypatch)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.FINISHED
    marks = [(mark.vm_uuid, mark.kind) for mark in world.marks()]
    assert marks == ([(uuid, "not-restarted")] if under_test.name in TELLS_BOOTED else []), (marks, outcome)


def test_a_vm_a_change_started_that_is_not_running_right_after_is_marked_for_attention(backend, monkeypatch):
    under_test, world, uuid = backend
    halts_right_after_our_start(world, monkeypatch)
    result = to_pool_b(world, under_test.host, uuid)
    marks = [(mark.vm_uuid, mark.kind, "not running right after" in mark.reason) for mark in world.marks()]
    assert marks == ([(uuid, "not-restarted", True)] if result.booted == lifecycle.NOT_RUNNING else []), marks


def test_a_start_refused_while_another_admins_start_was_under_way_is_not_called_ours(backend, monkeypatch):
    """Our start is refused because the host is busy starting the VM for someone else (that start read the
    args we wrote): the VM runs, started by someone else, not by the change."""
    under_test, world, uuid = backend
    original, calls = lifecycle.start_vm, []

    def start_vm(host, vm_uuid, *args, **kwargs):
        calls.append(vm_uuid)
        if len(calls) == 1:
            world.sim.start(vm_uuid)  # the other admin's start, done by the time we look
            raise BUSY
        return original(host, vm_uuid, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    result = to_pool_b(world, under_test.host, uuid)
    assert result.changed and world.config(uuid) == NEW and world.power(uuid) is PowerState.RUNNING
    assert result.started_by_other == ("new" if under_test.name in TELLS_BOOTED else "unknown"), result


def test_a_host_busy_with_something_else_is_not_said_to_be_starting_the_vm(backend, monkeypatch):
    """Our start is refused because the host is exporting the VM: nothing is undone under that operation
    (recover does it once it is done), but the VM is not said to be "still being started"."""
    under_test, world, uuid = backend

    def start_vm(host, vm_uuid, *args, **kwargs):
        raise BUSY

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    monkeypatch.setattr(under_test.host, "current_operations", lambda vm_uuid: ("export",))
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert not error.rolled_back and error.rollback_error.code == codes.OTHER_OPERATION_IN_PROGRESS, said
    assert "being started" not in said and "come up with the change" not in said, said
    assert f"rolling back also failed (another operation is already running on VM {uuid}" in said, said


@pytest.mark.parametrize("state", ["paused", "suspended"])
def test_recover_whose_start_leaves_the_vm_paused_with_the_change_waits_for_it_to_be_resumed(backend, monkeypatch, state):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    starts_then_leaves_it(world, monkeypatch, state)
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.LATER and f"is {state}" in outcome.detail and "resume it" in outcome.detail, outcome
    assert "started with it" not in outcome.detail and world.config(uuid) == NEW and len(world.open_ops()) == 1


def test_a_rollback_whose_start_leaves_the_vm_paused_does_not_call_it_halted(backend, monkeypatch):
    """The rollback's start fails once the domain is up, and leaves it paused: not "halted and would not
    start", but started again and not running, marked as needing attention."""
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        original(host, vm_uuid, *args, **kwargs)  # the change's start: refused by the fault, as it should be
        paused(world, vm_uuid)  # the rollback's: up, then paused
        raise HypervisorError(codes.INTERNAL_ERROR, "the host failed with an internal error: xenopsd: QMP")

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert error.rolled_back and error.restart_error is None and "halted" not in said.replace("halted, paused", ""), said
    assert "would not start" not in said and "not running right after (it halted, paused, crashed" in said, said
    assert world.config(uuid) == OLD and [(mark.vm_uuid, mark.kind) for mark in world.marks()] == [(uuid, "not-restarted")]


def test_a_vm_started_and_paused_while_the_rollback_undid_the_change_is_said_so(backend, monkeypatch):
    """The change's start fails; while the rollback puts the args back, someone starts the VM and pauses it."""
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    original = lifecycle.put_back_device_model_args

    def put_back(host, vm_uuid, *args, **kwargs):
        original(host, vm_uuid, *args, **kwargs)
        world.sim.start(vm_uuid)
        paused(world, vm_uuid)

    monkeypatch.setattr(lifecycle, "put_back_device_model_args", put_back)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert error.rolled_back and not error.vm_restarted and world.config(uuid) == OLD, said
    assert said.endswith("and the VM started meanwhile (not by the rollback), but it was not running right after "
                         "(it halted, paused, crashed or left the host)"), said
    [mark] = world.marks()
    assert (mark.vm_uuid, mark.kind) == (uuid, "not-restarted") and "started again" not in mark.reason, mark
    assert "started meanwhile by someone else (not by the rollback)" in mark.reason and "resume or start it" in mark.reason


def test_a_rollback_whose_start_is_refused_as_someone_else_starts_and_pauses_the_vm_does_not_say_it_started_it(
        backend, monkeypatch):
    under_test, world, uuid = backend
    world.sim.set_fault("start", "fail_if_args_contain:pool=B", uuid)
    original = lifecycle.start_vm

    def start_vm(host, vm_uuid, *args, **kwargs):
        if "pool=B" not in world.args(vm_uuid):  # the rollback's start: another admin's comes first, then a pause
            world.sim.start(vm_uuid)
            paused(world, vm_uuid)
        return original(host, vm_uuid, *args, **kwargs)  # refused: the VM is not halted

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    with pytest.raises(ReconfigureFailed) as failed:
        to_pool_b(world, under_test.host, uuid)
    error, said = failed.value, str(failed.value)
    assert error.rolled_back and not error.vm_restarted and "started again" not in said, said
    assert "started meanwhile (not by the rollback), but it was not running right after" in said, said
    [mark] = world.marks()
    assert "started meanwhile by someone else" in mark.reason, mark


def test_recover_whose_own_start_outlives_its_wait_says_later_and_then_finishes(backend, monkeypatch):
    under_test, world, uuid = backend
    killed_while_starting(world, uuid)
    original, starters = lifecycle.start_vm, []

    def start_vm(host, vm_uuid, *args, **kwargs):
        if not starters:  # recover's start: the host takes it, and answers too late
            starters.append(someone_starts(world, vm_uuid))
            raise HostUnreachable(codes.HOST_UNREACHABLE, "cannot reach the host: 'xe vm-start' did not answer within 2 seconds")
        return original(host, vm_uuid, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "start_vm", start_vm)
    (later,) = recovery.recover(world.store, under_test.host)
    assert later.action == recovery.LATER and "still starting the VM" in later.detail, later
    assert world.config(uuid) == NEW and len(world.open_ops()) == 1
    starters[0].join()
    (outcome,) = recovery.recover(world.store, under_test.host)
    assert outcome.action == recovery.FINISHED and world.config(uuid) == NEW and world.open_ops() == [], outcome

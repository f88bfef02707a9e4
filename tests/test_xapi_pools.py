"""XAPI pools: a member's HOST_IS_SLAVE, following the master only to allowed addresses, and members in listings.

Each host of a stand-in pool has its own loopback address and records every login attempt it receives, so
these tests can prove where a password went, and where it never went.
"""

from __future__ import annotations

import pytest

from vgpu.errors import HypervisorError, InvalidValue
from vgpu.hypervisor import codes, open_host
from vgpu.hypervisor.sim import SimHost
from vgpu.hypervisor.xapi import XapiHost
from vgpu.hypervisor.xapi_uri import PASSWORD_ENV, allows
from vgpu.models import PowerState

from .standins.xapi_pool import XapiPool, two_pools

WEB = "7a000000-0000-4000-8000-000000000001"
DB = "7a000000-0000-4000-8000-000000000002"


@pytest.fixture(autouse=True)
def no_password_in_env(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture
def pool(tmp_path):
    sim = SimHost(tmp_path / "pool.json")
    sim.add_vm(WEB, "web", "running", "")
    sim.add_vm(DB, "db", "running", "")
    with XapiPool(sim, ("127.0.3.1", "127.0.3.2", "127.0.3.3"), ("xcp-m", "xcp-n", "xcp-o"), password="pool-pw") as running:
        yield running


def member_host(pool, follow=(), index=1, password="pool-pw"):
    return XapiHost.from_uri(pool.uri(index), password=lambda: password, follow_master=follow)


def all_logins(pool):
    return {address: list(pool.standin(index).logins) for index, address in enumerate(pool.addresses)}


def test_by_default_a_member_refuses_naming_the_master_and_the_master_never_sees_the_password(pool):
    host = member_host(pool)
    with pytest.raises(HypervisorError) as caught:
        host.list_vms()
    assert caught.value.code == codes.HOST_IS_SLAVE
    assert str(caught.value) == "this host is a pool member, not the pool master; connect to the master at 127.0.3.1"
    assert all_logins(pool) == {"127.0.3.1": [], "127.0.3.2": [("root", "pool-pw")], "127.0.3.3": []}


def test_following_an_allowed_master_logs_in_there_and_lists_the_pool(pool):
    host = member_host(pool, follow=["127.0.3.1"])
    try:
        listed = {vm.uuid: vm for vm in host.list_vms()}
    finally:
        host.close()
    assert set(listed) == {WEB, DB}
    assert all_logins(pool) == {"127.0.3.1": [("root", "pool-pw")], "127.0.3.2": [("root", "pool-pw")], "127.0.3.3": []}


def test_a_network_in_follow_master_allows_every_address_in_it(pool):
    host = member_host(pool, follow=["127.0.3.0/29"])
    try:
        assert host.power_state(WEB) is PowerState.RUNNING
    finally:
        host.close()
    assert pool.standin(0).logins == [("root", "pool-pw")]


@pytest.mark.parametrize("follow", [["127.0.4.1"], ["127.0.3.128/25"], ["xcp-m"], ["::1"]])
def test_a_master_outside_follow_master_is_refused_and_never_gets_the_password(pool, follow):
    host = member_host(pool, follow=follow)
    with pytest.raises(HypervisorError) as caught:
        host.list_vms()
    assert caught.value.code == codes.HOST_IS_SLAVE
    text = str(caught.value)
    assert f"its master is at 127.0.3.1, which follow_master ({', '.join(follow)}) does not allow" in text
    assert "password was not sent there" in text and "pool-pw" not in text
    assert pool.standin(0).logins == []  # the master: never asked
    assert pool.standin(1).logins == [("root", "pool-pw")]  # the configured address: the only one


def test_a_reopened_session_goes_straight_to_the_master_it_found(pool):
    host = member_host(pool, follow=["127.0.3.1"])
    host.list_vms()
    worker = host.reopen()
    try:
        assert worker.power_state(DB) is PowerState.RUNNING
        assert worker.uri == host.uri == pool.uri(1)  # still named as configured
    finally:
        worker.close()
        host.close()
    assert len(pool.standin(1).logins) == 1 and len(pool.standin(0).logins) == 2


def test_a_failover_is_followed_when_the_new_master_is_allowed(pool):
    """The old master was demoted: it now answers HOST_IS_SLAVE, naming the member that took over."""
    pool.standin(0).master = "127.0.3.3"
    pool.standin(2).master = None  # xcp-o is the master now
    host = XapiHost.from_uri(pool.uri(0), password=lambda: "pool-pw", follow_master=["127.0.3.0/24"])
    try:
        assert {vm.uuid for vm in host.list_vms()} == {WEB, DB}
    finally:
        host.close()
    assert [len(pool.standin(i).logins) for i in range(3)] == [1, 0, 1]


def test_follow_master_is_refused_for_a_host_that_is_not_xapi(tmp_path):
    with pytest.raises(InvalidValue) as caught:
        open_host(f"sim:{tmp_path}/h.json", follow_master=["10.0.0.1"])
    assert "follow_master" in str(caught.value) and "xapi://" in str(caught.value)


def test_running_vms_name_their_member_in_each_of_two_pools_at_once(tmp_path):
    with two_pools(tmp_path) as (first, second):
        first.sim.add_vm(WEB, "web", "running", "")
        second.sim.add_vm(DB, "db", "running", "")
        second.sim.add_vm("7a000000-0000-4000-8000-000000000003", "off", "halted", "")
        first.place(WEB, "xcp-a3")
        one, two = (XapiHost.from_uri(p.uri(), password=lambda p=p: p.password) for p in (first, second))
        try:
            assert [(vm.uuid, vm.resident_on) for vm in one.list_vms()] == [(WEB, "xcp-a3")]
            assert sorted((vm.name, vm.resident_on) for vm in two.list_vms()) == [("db", "xcp-b1"), ("off", None)]
        finally:
            one.close()
            two.close()


@pytest.mark.parametrize(("allowed", "address", "expected"), [
    (["10.0.2.1"], "10.0.2.1", True),
    (["10.0.2.1"], "10.0.2.10", False),
    (["10.0.2.0/24"], "10.0.2.77", True),
    (["10.0.2.0/24"], "10.0.3.1", False),
    (["xcp-b1.example"], "XCP-B1.example.", True),
    (["xcp-b1.example"], "xcp-b1.example.evil", False),
    (["xcp-b1.example"], "10.0.2.1", False),  # names are never resolved
    (["10.0.2.0/24"], "xcp-b1.example", False),
    (["fd00::/8"], "fd00::5", True),
    (["fd00::/8"], "[fd00::5]", True),
    (["10.0.0.0/8"], "::ffff:10.0.0.1", False),
    ([], "10.0.2.1", False),
])
def test_allows_matches_addresses_networks_and_names_exactly(allowed, address, expected):
    assert allows(allowed, address) is expected

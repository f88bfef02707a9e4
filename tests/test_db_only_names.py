"""The functions that change only the database say so in their names (vms.db_*), so nobody takes them for
the host-aware ones; the old names still work, with a DeprecationWarning pointing at both."""

from __future__ import annotations

import inspect
import re
import warnings

import pytest

import vgpu
from vgpu import vms

U1 = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
U2 = "11111111-2222-4333-8444-555555555555"

RENAMED = {  # old name: (new name, the host-aware function to use on a real host)
    "register": ("db_register", "lifecycle.register_vm"),
    "register_many": ("db_register_many", "bulk_register.plan_registrations"),
    "update": ("db_update", "lifecycle.reconfigure_vm"),
    "remove": ("db_remove", "lifecycle.remove_vm"),
}


@pytest.mark.parametrize("new", [new for new, _ in RENAMED.values()])
def test_each_db_only_function_says_so_first(new):
    doc = inspect.getdoc(getattr(vms, new))
    assert doc.startswith("Database only"), doc


def test_the_old_names_still_work_and_warn_naming_the_new_and_the_host_aware_function(store):
    calls = {
        "register": lambda: vms.register(store, U1, vm_name="web", pool="B"),
        "register_many": lambda: vms.register_many(store, [{"uuid": U2}]),
        "update": lambda: vms.update(store, U1, priority="high"),
        "remove": lambda: vms.remove(store, U2),
    }
    for old, call in calls.items():
        new, host_aware = RENAMED[old]
        with pytest.warns(DeprecationWarning) as caught:
            call()
        message = str(caught[0].message)
        assert f"vms.{old}" in message and f"vms.{new}" in message and host_aware in message, message
        assert caught[0].filename == __file__  # points at the caller's line, not the library's
    assert [(vm.vm_uuid, vm.pool_id, vm.priority.label) for vm in vms.list_vms(store)] == [(U1, "B", "high")]


def test_the_new_names_do_not_warn(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vms.db_register(store, U1)
        vms.db_register_many(store, [{"uuid": U2}])
        vms.db_update(store, U1, pool="B")
        vms.db_remove(store, U2)


def test_the_package_docstring_leads_with_connect_then_the_host_aware_functions():
    doc = vgpu.__doc__
    calls = re.findall(r"\b(\w+)\.(\w+)\(", doc)
    assert calls, doc
    assert calls[0] == ("vgpu", "connect")
    modules = [module for module, _ in calls]
    first_db_only = next((i for i, (module, name) in enumerate(calls) if name.startswith("db_")), len(calls))
    assert "lifecycle" in modules[:first_db_only] and "bulk_register" in modules[:first_db_only]
    for old in RENAMED:
        assert f"vms.{old}(" not in doc
    assert "database only" in doc.lower()

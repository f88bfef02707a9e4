"""vgpu: register VMs with the host's GPU-sharing service and reconfigure them safely.

The importable library behind ``vgpu-admin``. It never prints, never reads the terminal and never imports
the shell's UI toolkit, so scripts and notebooks can use every part of it. On a host, use the host-aware
functions: they keep the database and each VM's device-model arguments in step, and ask before a restart:

    from vgpu import bulk_register, lifecycle, pools, scan
    from vgpu.hosts import open_host
    from vgpu.store import Store

    store = Store("/var/lib/vgpu/vgpu.db")
    host = open_host("xe:")
    uuid = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
    lifecycle.register_vm(store, host, uuid, vm_name="render-1", pool="B", priority="high")
    lifecycle.reconfigure_vm(store, host, uuid, pool="A", confirm=lambda plan: True)   # stop, update, start
    plan = bulk_register.plan_registrations(store, host, rows, on_existing="skip")    # many: check first,
    bulk_register.register_planned(store, host, plan)                                 # then register them
    print(scan.status(store, host))                   # the host beside the database, drift included
    for pool in pools.list_pools(store):
        print(pool.pool_id, pool.pool_name, pool.vm_count)

Database only, for tests and repairs by hand (a VM changed this way keeps its old arguments and shows as
drift until ``lifecycle.repair_vm``): ``vms.db_register``, ``vms.db_register_many``, ``vms.db_update`` and
``vms.db_remove``. See docs/library.md for the whole API.
"""

__version__ = "0.1.0"

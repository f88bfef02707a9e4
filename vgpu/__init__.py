"""vgpu: register VMs with the host's GPU-sharing service and reconfigure them safely.

The importable library behind ``vgpu-admin``. It never prints, never reads the terminal and never imports
the shell's UI toolkit, so scripts and notebooks can use every part of it:

    from vgpu.store import Store
    from vgpu import pools, vms

    store = Store("/var/lib/vgpu/vgpu.db")
    vms.register(store, "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7", vm_name="render-1", pool="B", priority="high")
    for pool in pools.list_pools(store):
        print(pool.pool_id, pool.pool_name, pool.vm_count)
"""

__version__ = "0.1.0"

"""The vgpu-admin command line and the interactive vgpu> shell, a thin face over the vgpu library."""

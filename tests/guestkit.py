"""A tiny real guest for the libvirt tests, built from Debian packages and cached.

Debian's cloud kernel and busybox-static (downloaded, not installed, by .ci/libvirt-setup) are unpacked with
dpkg-deb and packed with cpio into an initramfs whose init:

- loads qemu_fw_cfg (and the power-button driver), each after the modules it depends on;
- prints vgpu's fw_cfg blob to the serial console as ``VGPU-CONFIG: pool=A;priority=2;vm_id=7``
  (``VGPU-CONFIG: none`` without one), then ``VGPU-GUEST: ready``;
- powers off when the ACPI power button is pressed (libvirt's clean shutdown), as a real OS does; with
  ``poweroff_delay`` only that many seconds later, as a real OS that takes its time to shut down.

The built kernel and initramfs are cached under a directory keyed by the package files and this recipe,
so only the first run pays for the build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import attrs

DEBS_DIR = Path(os.environ.get("VGPU_GUEST_DEBS", "/var/cache/vgpu-admin/guest-debs"))
CACHE_DIR = Path(os.environ.get("VGPU_GUEST_CACHE", "/var/cache/vgpu-admin/guest"))
MODULES = ("evdev", "button", "qemu_fw_cfg")  # evdev + button: the power button as /dev/input/eventN
CONFIG_MARK = "VGPU-CONFIG: "
READY_MARK = "VGPU-GUEST: ready"

_INIT = """#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
{insmods}
raw=/sys/firmware/qemu_fw_cfg/by_name/opt/vgpu/config/raw
if [ -r $raw ]; then echo "{config_mark}$(cat $raw)"; else echo "{config_mark}none"; fi
button=
for dev in /sys/class/input/input*; do
    [ "$(cat $dev/name)" = "Power Button" ] && button=$(basename $dev/event*)
done
# One evdev event (24 bytes) is a press of the power button: power off as a real OS would.
dd if=/dev/input/$button of=/dev/null bs=24 count=1 2>/dev/null &
echo "{ready_mark}"
wait
echo "VGPU-GUEST: power button pressed, powering off"
{pause}poweroff -f
"""


@attrs.frozen
class Guest:
    kernel: Path
    initrd: Path


def missing_packages() -> str | None:
    """Why the guest cannot be built here, or None when it can."""
    for pattern in ("linux-image-*-cloud-amd64_*.deb", "busybox-static_*.deb"):
        if not list(DEBS_DIR.glob(pattern)):
            return f"no {pattern} in {DEBS_DIR} (run .ci/libvirt-setup as root)"
    for tool in ("dpkg-deb", "cpio"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run .ci/libvirt-setup as root)"
    return None


def _deb(pattern: str) -> Path:
    return max(DEBS_DIR.glob(pattern))


def build_guest(poweroff_delay: int = 0) -> Guest:
    """The cached guest, building it first when the packages or this recipe changed. ``poweroff_delay``:
    seconds between the power button and the power-off (a slow guest)."""
    kernel_deb, busybox_deb = _deb("linux-image-*-cloud-amd64_*.deb"), _deb("busybox-static_*.deb")
    pause = f"sleep {int(poweroff_delay)}; " if poweroff_delay else ""
    key = hashlib.sha256("\n".join([kernel_deb.name, busybox_deb.name, _INIT, pause, *MODULES]).encode()).hexdigest()[:16]
    target = CACHE_DIR / key
    if not (target / "initrd.cpio").exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as work:
            _build(Path(work), kernel_deb, busybox_deb, pause)
            # Renaming a finished directory into place: a concurrent or killed build never leaves half a guest.
            try:
                os.rename(Path(work) / "out", target)
            except OSError:
                if not (target / "initrd.cpio").exists():
                    raise
    return Guest(target / "vmlinuz", target / "initrd.cpio")


def _build(work: Path, kernel_deb: Path, busybox_deb: Path, pause: str) -> None:
    unpacked, stage, out = work / "unpacked", work / "stage", work / "out"
    for deb in (kernel_deb, busybox_deb):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    for folder in ("bin", "dev", "proc", "sys", "lib/modules"):
        (stage / folder).mkdir(parents=True)
    shutil.copy2(unpacked / "bin" / "busybox", stage / "bin" / "busybox")
    modules = _modules_in_load_order(_module_files(unpacked))
    for path in modules:
        shutil.copy2(path, stage / "lib/modules" / path.name)
    insmods = "\n".join(f"insmod /lib/modules/{path.name}" for path in modules)
    init = stage / "init"
    init.write_text(_INIT.format(insmods=insmods, config_mark=CONFIG_MARK, ready_mark=READY_MARK, pause=pause))
    init.chmod(0o755)
    out.mkdir()
    shutil.copy2(next(unpacked.glob("boot/vmlinuz-*")), out / "vmlinuz")
    _pack(stage, out / "initrd.cpio")


def _module_files(unpacked: Path) -> dict[str, Path]:
    """Every kernel module of the package by its name (dashes read as underscores, as the kernel does)."""
    return {path.name[: -len(".ko")].replace("-", "_"): path for path in unpacked.glob("lib/modules/*/kernel/**/*.ko")}


def _depends(path: Path) -> list[str]:
    """The module's ``depends=`` entry from its .modinfo section (depmod's modules.dep is made at install)."""
    match = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name] if match else []


def _modules_in_load_order(available: dict[str, Path]) -> list[Path]:
    ordered: list[Path] = []

    def visit(name: str) -> None:
        if name not in available:
            raise FileNotFoundError(f"kernel module {name} is not in the kernel package")
        if available[name] in ordered:
            return
        for dependency in _depends(available[name]):
            visit(dependency)
        ordered.append(available[name])

    for name in MODULES:
        visit(name)
    return ordered


def _pack(stage: Path, target: Path) -> None:
    names = sorted(str(path.relative_to(stage)) for path in stage.rglob("*"))
    with open(target, "wb") as archive:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage, input="\n".join(names).encode(), stdout=archive, check=True)


def printed_configs(console: Path) -> list[str]:
    """What the guest printed after ``VGPU-CONFIG:`` on each boot whose console output is in ``console``.

    Only whole lines count: QEMU writes the console log as the guest prints, so the last line may still be
    half written when we read it."""
    try:
        text = console.read_text(errors="replace")
    except FileNotFoundError:
        return []
    whole_lines = text.split("\n")[:-1]  # the piece after the last newline is unfinished (or empty)
    return [line.split(CONFIG_MARK, 1)[1].strip() for line in whole_lines if CONFIG_MARK in line]

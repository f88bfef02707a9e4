"""What a running domain was started with, read from xenstore on a XCP-ng/XenServer dom0.

When xapi starts a VM, xenopsd builds its domain and, before QEMU runs, writes into xenstore (xen-api
``ocaml/xenopsd/xc/domain.ml``, ``make``)::

    /local/domain/<domid>/vm               = "/vm/<VM uuid>"
    /local/domain/<domid>/platform/<key>   = <value>     for each key of the platform map it starts with

Nothing rewrites them while the domain lives (the guest may not write there; a later ``VM.platform`` change
goes to the VM's record, for its next boot), and a suspend/resume or migration rebuilds them from the same
saved state. So for a domain that is running here they are its booted configuration. The ``vm`` node ties
a domain to its VM: a domid from a listing is never trusted alone, since in a pool a VM running on another
host has a domid that names some other domain here.

Not ``VM.last_booted_record``: xapi stopped filling it at start in 2017 (xen-api commit 37dc4fb03c, "Don't
set VM.last_booted_record on start": the field now only holds xenopsd's opaque state of a *suspended* VM),
and a value left from an older release is never cleared, so on a current host it is empty or stale.

``xenstore-ls -f PATH`` prints every node under PATH as ``FULL/PATH = "VALUE"``, one per line, the value
*sanitised* (xen ``tools/xs-clients/xenstore_client.c``, ``sanitise_value``): printable ASCII as it is except
the backslash, then ``\\t`` ``\\n`` ``\\r`` ``\\\\``, ``\\ooo`` for bytes below 8 and ``\\xhh`` for the rest;
a double quote is not escaped. ``-f`` lifts the width limit unless stdout is a terminal (here it is a pipe).
One call lists every domain of the host, so a listing costs one xenstore read whatever the number of VMs.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Mapping

import attrs

LOCAL_DOMAINS = "/local/domain"
_NODE = re.compile(r'^/local/domain/(?P<domid>\d+)(?P<rest>(?:/[^ ]*)?) = "(?P<value>.*)"$')
_VM_PATH = re.compile(r"^/vm/(?P<uuid>[0-9a-fA-F-]{36})$")


@attrs.frozen
class Domain:
    """One domain as xenstore shows it: the VM it belongs to and the platform map it was started with
    (None when its ``platform`` node is missing: a domain still being built, or not xenopsd's)."""

    domid: int
    vm_uuid: str | None
    platform: dict[str, str] | None


def unsanitise(text: str) -> str:
    """The value xenstore-ls printed, as it is stored (the inverse of its ``sanitise_value``)."""
    if "\\" not in text:
        return text
    out = bytearray()
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        index += 1
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            continue
        if index == end:
            break  # a trailing backslash stands for nothing, as in unsanitise_value
        code = text[index]
        index += 1
        if code in "tnr\\":
            out += {"t": b"\t", "n": b"\n", "r": b"\r", "\\": b"\\"}[code]
        elif code == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[index:])
            if digits is None:
                out += b"x"  # sscanf found no digits: the letter stays, as in unsanitise_value
                continue
            out.append(int(digits.group(), 16))
            index += len(digits.group())
        elif code in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[index - 1:])
            assert digits is not None, "it starts at code, an octal digit"
            out.append(int(digits.group(), 8) & 0xFF)
            index += len(digits.group()) - 1
        else:
            out += code.encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def parse_ls(text: str) -> dict[int, Domain]:
    """The domains in ``xenstore-ls -f /local/domain`` (or ``/local/domain/<domid>``) output, by domid."""
    vms: dict[int, str] = {}
    platforms: dict[int, dict[str, str]] = {}
    for line in text.split("\n"):
        match = _NODE.match(line)
        if match is None:
            continue
        domid, rest = int(match["domid"]), match["rest"]
        if rest == "/vm":
            owner = _VM_PATH.match(unsanitise(match["value"]))
            if owner:
                vms[domid] = owner["uuid"].lower()
        elif rest == "/platform":
            platforms.setdefault(domid, {})
        elif rest.startswith("/platform/") and "/" not in rest[len("/platform/"):]:
            platforms.setdefault(domid, {})[rest[len("/platform/"):]] = unsanitise(match["value"])
    return {domid: Domain(domid, vms.get(domid), platforms.get(domid)) for domid in vms.keys() | platforms.keys()}


def booted_args(domains: Mapping[int, Domain], key: str, live: Mapping[str, int] | None = None) -> dict[str, str]:
    """VM UUID -> the value of platform ``key`` its domain was started with ("" when it had none).

    A VM's domain is the one ``live`` names for it (the domid the host reports, by lower-case VM UUID), else
    its only domain here. Two domains can name one VM (a leftover one not yet torn down beside the one its
    new start built), and nothing in xenstore says which is live: such a VM, with no domid to tell them
    apart, is left out (unknown, never a guess), and so is one whose reported domid is none of its domains
    here (it runs on another host of the pool) or whose domain has no platform node yet."""
    named: dict[str, list[Domain]] = {}
    for domain in domains.values():
        if domain.vm_uuid is not None:
            named.setdefault(domain.vm_uuid, []).append(domain)
    found = {}
    for vm_uuid, its in named.items():
        domid = (live or {}).get(vm_uuid)
        chosen = its if domid is None else [domain for domain in its if domain.domid == domid]
        if len(chosen) == 1 and chosen[0].platform is not None:
            found[vm_uuid] = chosen[0].platform.get(key, "")
    return found


class Xenstore:
    """Reads domains from the local xenstore with ``xenstore-ls`` (an argument list, never a shell).

    Every failure (no xenstore-ls here, not root, xenstored down, a domain gone) reads as "cannot tell":
    :meth:`domains` returns None, and the caller reports the booted configuration as unknown.
    """

    def __init__(self, ls_path: str = "xenstore-ls", *, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
        self.ls_path = ls_path
        self.env = dict(env or {})
        self.timeout = timeout

    def domains(self, domid: int | None = None) -> dict[int, Domain] | None:
        """Every domain of this host, or only ``domid``'s; None when xenstore cannot be read."""
        path = LOCAL_DOMAINS if domid is None else f"{LOCAL_DOMAINS}/{int(domid)}"
        env = {**os.environ, **self.env} if self.env else None
        try:
            done = subprocess.run([self.ls_path, "-f", path], stdin=subprocess.DEVNULL, capture_output=True,
                                  env=env, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        return parse_ls(done.stdout.decode("utf-8", "surrogateescape"))

    def booted_args(self, key: str, vm_uuid: str | None = None, domid: int | None = None, *,
                    live: Mapping[str, int] | None = None) -> dict[str, str] | None:
        """VM UUID -> the args its domain booted with (see :func:`booted_args`, which ``live`` is passed to);
        None when xenstore cannot be read. With ``domid``, only that domain is read (and kept only if it
        belongs to ``vm_uuid``)."""
        domains = self.domains(domid)
        if domains is None:
            return None
        found = booted_args(domains, key, live)
        if vm_uuid is not None:
            found = {uuid: args for uuid, args in found.items() if uuid == vm_uuid.lower()}
        return found

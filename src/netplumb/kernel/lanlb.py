"""The LAN path of ``model/lanlb.py`` in the kernel: ``np_lan_in`` attached at tc ingress (tcx)
of the uplinks, ``np_lan_out`` at that of the published guests' veths (or bridges), and their
ports map kept equal to the published ports.

The programs and their two maps are found again through the links they are attached to
(``bpf(PROG_QUERY)`` on a link, then the program's maps by name): no bpffs is needed, and a
namespace's links lead to its own maps only. Attached with ``BPF_PROG_ATTACH``, a program stays
when the command that attached it exits, and goes with its link. The first entry loads and
attaches them; the last one gone detaches them everywhere, which frees the maps. A lock file
serialises the netplumbs here.

``NETPLUMB_LAN_FASTPATH=off`` turns the LAN path off (the DNAT serves these connections, and
the machine's firewall sees them). Where the kernel refuses BPF or tcx (no privilege, a kernel
before 6.6), nothing is done either.
"""

from __future__ import annotations

import os
import posix
from errno import E2BIG, ENODEV

from netplumb.errors import KernelError
from netplumb.model import lanlb as model

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LOCK = "/run/netplumb/lanlb.lock"
# what the kernel answers where BPF or tcx cannot be had
_UNAVAILABLE = {1, 13, 22, 38, 95}  # EPERM EACCES EINVAL ENOSYS EOPNOTSUPP
_NAMES = (model.IN, model.OUT)


def enabled() -> bool:
    return os.environ.get("NETPLUMB_LAN_FASTPATH", "") != "off"


class _Found:
    """The programs attached to the links looked at (link -> name -> fd), one fd of each
    program, and the maps' fds; closed together."""

    def __init__(self) -> None:
        self.attached: dict[int, dict[str, int]] = {}
        self.progs: dict[str, int] = {}
        self.ports = self.conns = -1
        self._fds: list[int] = []

    def keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self._fds:
            posix.close(fd)


def _look(links: list[int]) -> _Found:
    from netplumb.kernel import bpf as b

    found = _Found()
    for index in links:
        try:
            ids = b.prog_query(index, b.TCX_INGRESS)
        except KernelError as exc:
            if exc.errno == ENODEV:
                continue  # gone meanwhile
            raise
        for prog_id in ids:
            try:
                fd = b.prog_fd(prog_id)
            except KernelError:
                continue  # detached meanwhile
            name, map_ids = b.prog_info(fd)
            if name not in _NAMES:
                posix.close(fd)
                continue
            found.attached.setdefault(index, {})[name] = found.keep(fd)
            found.progs.setdefault(name, fd)
            if found.conns < 0 or found.ports < 0:
                _maps(found, map_ids)
    return found


def _maps(found: _Found, map_ids: list[int]) -> None:
    from netplumb.kernel import bpf as b

    for map_id in map_ids:
        fd = b.map_fd(map_id)
        name = b.map_name(fd)
        if name == model.PORTS and found.ports < 0:
            found.ports = found.keep(fd)
        elif name == model.CONNS and found.conns < 0:
            found.conns = found.keep(fd)
        else:
            posix.close(fd)


def _load(found: _Found) -> None:
    """Make the maps if none were found, and load the programs not found."""
    from netplumb.kernel import bpf as b

    if found.conns < 0:
        found.conns = found.keep(
            b.map_create(
                b.MAP_LRU_HASH, model.CONN_KEY_SIZE, model.CONN_VALUE_SIZE, model.CONNS_MAX, 0,
                model.CONNS,
            )
        )  # fmt: skip
    if found.ports < 0 and model.IN not in found.progs:
        found.ports = found.keep(
            b.map_create(
                b.MAP_HASH, model.KEY_SIZE, model.VALUE_SIZE, model.PORTS_MAX, b.F_NO_PREALLOC,
                model.PORTS,
            )
        )  # fmt: skip
    if model.IN not in found.progs:
        code = model.in_program(found.ports, found.conns)
        found.progs[model.IN] = found.keep(b.prog_load(code, 0, model.IN, b.PROG_SCHED_CLS))
    if model.OUT not in found.progs:
        code = model.out_program(found.conns)
        found.progs[model.OUT] = found.keep(b.prog_load(code, 0, model.OUT, b.PROG_SCHED_CLS))


def _all_links() -> list[int]:
    from netplumb.kernel.netlink import Netlink

    with Netlink() as nl:
        return [link.index for link in nl.links()]


def update(
    add: dict[bytes, bytes],
    drop: list[bytes],
    uplinks: set[int],
    bridges: set[int],
    whole: bool = False,
) -> bool:
    """Write ``add`` to the ports map and delete ``drop``; attach ``np_lan_in`` to the
    ``uplinks`` and ``np_lan_out`` to the ``bridges`` (the guests' veths or bridges: where
    replies are turned; ifindexes) where they are not yet.
    ``whole``: ``add`` is every entry (the others are deleted, only those that differ are
    written) and the programs leave every other link of this namespace. With no entry left,
    both are detached everywhere. An entry that does not fit (the map is full) is left out:
    the DNAT serves it. Returns whether the kernel changed."""
    if not enabled():
        return False
    return _locked(lambda: _update(add, drop, uplinks, bridges, whole))


def clear() -> bool:
    """Detach the programs from every link of this namespace (their maps go with them), even
    with the LAN path turned off. Returns whether the kernel changed."""

    def run() -> bool:
        found = _look(_all_links())
        try:
            return _detach(found, set(), set())
        finally:
            found.close()

    return _locked(run)


def _locked(run: Callable[[], bool]) -> bool:
    from netplumb.kernel import bpf as b

    lock = b.lock_file(LOCK)
    try:
        return run()
    except KernelError as exc:
        if exc.errno not in _UNAVAILABLE:
            raise
        return False
    finally:
        posix.close(lock)


def _update(
    add: dict[bytes, bytes], drop: list[bytes], uplinks: set[int], bridges: set[int], whole: bool
) -> bool:
    from netplumb.kernel import bpf as b

    found = _look(_all_links() if whole else sorted(uplinks | bridges))
    if found.ports < 0 and not whole:
        found.close()  # not on the links named: elsewhere, maybe
        found = _look(_all_links())
    try:
        if found.ports < 0 and not add:
            return _detach(found, set(), set())
        _load(found)
        changed = False
        items = None
        if whole:
            items = b.map_items(found.ports, model.KEY_SIZE, model.VALUE_SIZE)
            drop = [k for k in items if k not in add]
        for key in drop:
            changed = b.map_delete(found.ports, key) or changed
        for key, value in add.items():
            if items is not None and items.get(key) == value:
                continue
            try:
                b.map_update(found.ports, key, value)
            except KernelError as exc:
                if exc.errno != E2BIG:
                    raise
                continue
            changed = True
        if b.map_empty(found.ports, model.KEY_SIZE):
            if not whole:  # attached to links not named too, maybe
                found.close()
                found = _look(_all_links())
            return _detach(found, set(), set()) or changed
        if whole:
            changed = _detach(found, uplinks, bridges) or changed
        return _attach(found, uplinks, bridges) or changed
    finally:
        found.close()


def _attach(found: _Found, uplinks: set[int], bridges: set[int]) -> bool:
    from netplumb.kernel import bpf as b

    changed = False
    for name, links in ((model.IN, uplinks), (model.OUT, bridges)):
        for index in sorted(links):
            if name in found.attached.get(index, {}):
                continue
            try:
                b.prog_attach(index, found.progs[name], b.TCX_INGRESS)
            except KernelError as exc:
                if exc.errno == ENODEV:
                    continue  # the link went meanwhile
                raise
            changed = True
    return changed


def _detach(found: _Found, uplinks: set[int], bridges: set[int]) -> bool:
    """Detach the programs from the links they should not be on."""
    from netplumb.kernel import bpf as b

    changed = False
    for index, progs in found.attached.items():
        for name, fd in progs.items():
            if index in (uplinks if name == model.IN else bridges):
                continue
            try:
                b.prog_detach(index, fd, b.TCX_INGRESS)
            except KernelError as exc:
                if exc.errno not in (ENODEV, 2):  # the link, or the program, went meanwhile
                    raise
                continue
            changed = True
    return changed


def attached() -> dict[str, list[str]]:
    """The links of this namespace with a program of the LAN path attached, by program name
    (for ``reconcile``, the tests and the leak check)."""
    from netplumb.kernel import bpf as b
    from netplumb.kernel.netlink import Netlink

    out: dict[str, list[str]] = {}
    with Netlink() as nl:
        links = nl.links()
    for link in links:
        try:
            ids = b.prog_query(link.index, b.TCX_INGRESS)
        except KernelError:
            continue
        for prog_id in ids:
            try:
                fd = b.prog_fd(prog_id)
            except KernelError:
                continue
            try:
                name = b.prog_info(fd)[0]
            finally:
                posix.close(fd)
            if name in _NAMES:
                out.setdefault(name, []).append(link.name)
    return out


def foreign_filter() -> str | None:
    """What besides netplumb's and dockerd's own rules could filter the LAN path's
    connections here (``model.lanlb.foreign_filter``), read from nf_tables (``nft -j list
    chains``), ``iptables -S DOCKER-USER`` where that chain exists, and the x_tables list."""
    import json
    import shutil
    import subprocess

    nft = subprocess.run(
        ["nft", "-j", "list", "chains"], capture_output=True, text=True, check=False
    )
    if nft.returncode != 0:
        return f"nftables cannot be read ({nft.stderr.strip() or nft.returncode})"
    chains = []
    docker_user = False
    for item in json.loads(nft.stdout).get("nftables", []):
        c = item.get("chain")
        if not c:
            continue
        if (c["family"], c["table"], c["name"]) == ("ip", "filter", "DOCKER-USER"):
            docker_user = True
        if c.get("type") == "filter" and "hook" in c:
            chains.append((str(c["family"]), str(c["table"]), str(c["name"]), str(c["hook"])))
    rules = None
    if docker_user:
        exe = shutil.which("iptables")
        if exe is None:
            return "DOCKER-USER cannot be read (no iptables)"
        proc = subprocess.run(
            [exe, "-w", "5", "-S", "DOCKER-USER"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            return f"DOCKER-USER cannot be read ({proc.stderr.strip()})"
        rules = proc.stdout.splitlines()
    try:
        with open("/proc/net/ip_tables_names") as f:
            legacy = "filter" in f.read().split()
    except OSError:
        legacy = False
    return model.foreign_filter(chains, rules, legacy)

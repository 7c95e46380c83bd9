"""The socket redirection of ``model/socklb.py`` in the kernel: its two programs attached to the
machine's cgroup v2 root, its services map kept equal to the published ports.

One pair of programs and one services map serve every namespace on the machine (an entry is
keyed by its namespace's netns cookie): a netplumb adds and deletes only its own namespace's
entries. The first entry loads and attaches the programs; the last one gone detaches them,
which frees the maps. Programs attached with ``BPF_F_ALLOW_MULTI`` stay attached when the
command that attached them exits, and are found again by name (``bpf(PROG_QUERY)``), so no
bpffs is needed. A lock file serialises the netplumbs of all state directories here.

The cgroup is the cgroup v2 mount's root, as this process sees it (``/proc/self/mountinfo``),
or ``NETPLUMB_SOCKLB_CGROUP`` (a cgroup directory; ``off`` turns the redirection off). Without
cgroup v2, or where the kernel refuses BPF (no privilege, an old kernel), nothing is done: the
DNAT rules serve the same connections, only slower. ``ip netns exec`` mounts a fresh ``/sys``
without the cgroup mounts, so a netplumb run through it (the tests' labs) redirects nothing
unless told a cgroup.
"""

from __future__ import annotations

import _socket  # not ``socket``: its wrapper (enum, selectors) costs a publication ~5 ms
import os
import posix
from errno import E2BIG

from netplumb.errors import KernelError
from netplumb.model import socklb as model

LOCK = "/run/netplumb/socklb.lock"
SO_NETNS_COOKIE = 71
# what the kernel answers where BPF or cgroup v2 programs cannot be had
_UNAVAILABLE = {1, 2, 13, 22, 38, 95}  # EPERM ENOENT EACCES EINVAL ENOSYS EOPNOTSUPP


def cgroup_root() -> str | None:
    """The cgroup the programs go to, or None (no cgroup v2 here, or turned off)."""
    told = os.environ.get("NETPLUMB_SOCKLB_CGROUP", "")
    if told:
        return None if told == "off" else told
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                fs = fields[fields.index("-") + 1]
                if fs == "cgroup2" and fields[3] == "/":
                    return fields[4]
    except (OSError, ValueError):
        pass
    return None


def netns_cookie() -> int:
    """The cookie of this process's network namespace (``SO_NETNS_COOKIE``, Linux 5.14)."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        return int.from_bytes(s.getsockopt(_socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
    finally:
        s.close()


class _Attached:
    """The programs attached to one cgroup and the services map, by fd (closed together)."""

    def __init__(self, connect: int, peername: int, services: int) -> None:
        self.connect, self.peername, self.services = connect, peername, services

    def close(self) -> None:
        for fd in (self.connect, self.peername, self.services):
            posix.close(fd)


def _find(cgroup_fd: int, attach_type: int, name: str) -> int | None:
    """An fd of the program ``name`` attached to the cgroup for ``attach_type``, or None."""
    from netplumb.kernel import bpf as b

    for prog_id in b.prog_query(cgroup_fd, attach_type):
        try:
            fd = b.prog_fd(prog_id)
        except KernelError:
            continue  # detached meanwhile
        if b.prog_info(fd)[0] == name:
            return fd
        posix.close(fd)
    return None


def _attached(cgroup_fd: int) -> _Attached | None:
    from netplumb.kernel import bpf as b

    connect = _find(cgroup_fd, b.CGROUP_INET4_CONNECT, model.CONNECT)
    if connect is None:
        return None
    peername = _find(cgroup_fd, b.CGROUP_INET4_GETPEERNAME, model.PEERNAME)
    services = None
    for map_id in b.prog_info(connect)[1]:
        fd = b.map_fd(map_id)
        if b.map_name(fd) == model.SERVICES:
            services = fd
            break
        posix.close(fd)
    if services is None or peername is None:  # half of a pair: detached below, made again
        found = _Attached(connect, peername if peername is not None else posix.dup(connect), -1)
        _detach(cgroup_fd, found, half=True)
        return None
    return _Attached(connect, peername, services)


def _attach(cgroup_fd: int) -> _Attached:
    from netplumb.kernel import bpf as b

    services = b.map_create(
        b.MAP_HASH, model.KEY_SIZE, model.VALUE_SIZE, model.SERVICES_MAX, b.F_NO_PREALLOC,
        model.SERVICES,
    )  # fmt: skip
    peers = b.map_create(
        b.MAP_LRU_HASH, model.PEER_KEY_SIZE, model.VALUE_SIZE, model.PEERS_MAX, 0, model.PEERS
    )
    try:
        connect = b.prog_load(
            model.connect_program(services, peers), b.CGROUP_INET4_CONNECT, model.CONNECT
        )
        peername = b.prog_load(
            model.peername_program(peers), b.CGROUP_INET4_GETPEERNAME, model.PEERNAME
        )
    finally:
        posix.close(peers)  # the programs hold it
    # getpeername's first: a socket the connect program changes is always named right
    b.prog_attach(cgroup_fd, peername, b.CGROUP_INET4_GETPEERNAME)
    try:
        b.prog_attach(cgroup_fd, connect, b.CGROUP_INET4_CONNECT)
    except KernelError:
        b.prog_detach(cgroup_fd, peername, b.CGROUP_INET4_GETPEERNAME)
        raise
    return _Attached(connect, peername, services)


def _detach(cgroup_fd: int, found: _Attached, half: bool = False) -> None:
    from netplumb.kernel import bpf as b

    # connect's first: no socket is changed without getpeername there to name it
    b.prog_detach(cgroup_fd, found.connect, b.CGROUP_INET4_CONNECT)
    if not half:
        b.prog_detach(cgroup_fd, found.peername, b.CGROUP_INET4_GETPEERNAME)
    posix.close(found.connect)
    posix.close(found.peername)
    if found.services >= 0:
        posix.close(found.services)


def netns_cookie_of(path: str) -> int:
    """The cookie of the network namespace at ``path`` (``/proc/PID/ns/net``): a socket made
    in it, this thread switched there and back."""
    from netplumb.kernel import netns

    fd = netns.open_netns(path)
    try:
        with netns.entered(fd):
            return netns_cookie()
    finally:
        posix.close(fd)


def update(
    add: dict[bytes, bytes], drop: list[bytes], replace: set[int] | frozenset[int] = frozenset()
) -> bool:
    """Write ``add`` to the services map and delete ``drop``; every other entry of the
    namespaces in ``replace`` (netns cookies) goes too, and then only entries that differ are
    written. An entry that does not fit (the map is full) is left out: the DNAT serves it.
    Loads and attaches the programs for a first entry, detaches them when none is left.
    Nothing happens where the redirection cannot be had (see the module's text). Returns
    whether the kernel changed."""
    root = cgroup_root()
    if root is None:
        return False
    try:
        cgroup_fd = posix.open(root, posix.O_RDONLY | posix.O_DIRECTORY)
    except OSError:
        return False
    try:
        return _update(cgroup_fd, add, drop, replace)
    except KernelError as exc:
        if exc.errno not in _UNAVAILABLE:
            raise
        return False
    finally:
        posix.close(cgroup_fd)


def _update(
    cgroup_fd: int, add: dict[bytes, bytes], drop: list[bytes], replace: set[int] | frozenset[int]
) -> bool:
    from netplumb.kernel import bpf as b

    lock = b.lock_file(LOCK)
    try:
        found = _attached(cgroup_fd)
        changed = False
        if found is None:
            if not add:
                return False
            found = _attach(cgroup_fd)
            changed = True
        try:
            items = None
            if replace:
                items = b.map_items(found.services, model.KEY_SIZE, model.VALUE_SIZE)
                mine = (k for k in items if model.key_cookie(k) in replace and k not in add)
                drop = [*drop, *mine]
            for key in drop:
                changed = b.map_delete(found.services, key) or changed
            for key, value in add.items():
                if items is None or items.get(key) != value:
                    try:
                        b.map_update(found.services, key, value)
                    except KernelError as exc:
                        if exc.errno != E2BIG:
                            raise
                        continue
                    changed = True
            if drop and not add and b.map_empty(found.services, model.KEY_SIZE):
                _detach(cgroup_fd, found)
                found = None
        finally:
            if found is not None:
                found.close()
        return changed
    finally:
        posix.close(lock)

"""The address leases of netplumb's networks: one table per network, under its lock.

One entry per leased address, ``leases.d/<network>/<address>``, a symbolic link whose target
is the owner (one symlink(2) creates it or fails with EEXIST), and per owner a small
append-only list of what it was given, ``leases.by-owner/<owner>`` (``+<network>@<address>``
lines, checked against the address entries when read): leasing, releasing and listing an
owner's addresses then cost the same with 10 guests as with 10,000 (reading and rewriting a
whole table per lease made bringing up N guests O(N^2)). The network's lock file holds, per
family, the offset below which every host address is taken, so the lowest free address is
found without listing the folder; a release lowers it *before* the entry goes, so after a
crash it can only be too low, never too high. Every change is made under the network's lock.
Files are created sparingly: on this kind of machine a file creation costs 0.2-0.8 ms when
other work is writing to the disk, an in-place write of the lock file a microsecond.
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, NetplumbError, StateError
from netplumb.model.ip import IP, Interface
from netplumb.model.network import Network
from netplumb.state.lock import Lock

_LEASES = "leases.d"
_BY_OWNER = "leases.by-owner"


def _network(name: str) -> Network | None:
    rec = state.read("networks", name)
    return Network.from_record(rec) if rec else None


def drop(name: str) -> None:
    """Forget every lease of network ``name`` (the network is being removed)."""
    import shutil

    with Lock(_LEASES, f"{name}.lock") as lock:
        shutil.rmtree(state.path(_LEASES, name), ignore_errors=True)
        _set_hint(lock, 4, 0)
        _set_hint(lock, 6, 0)


def leases(name: str) -> dict[str, str]:
    """address -> owner, every lease of network ``name`` (one pass over its folder)."""
    out = {}
    for ip in state.names(_LEASES, name):
        owner = state.readlink(_LEASES, name, ip)
        if owner is not None:
            out[ip] = owner
    return out


def _range(gw: Interface) -> tuple[int, int]:
    """First and last host address of the gateway's subnet, as ``allocate`` counts them."""
    return gw.network_int + 1, gw.broadcast_int - (1 if gw.version == 4 else 0)


def _hints(lock: Lock) -> list[int]:
    """[IPv4 offset, IPv6 offset] from the network's lock file (zeros if unreadable)."""
    words = os.pread(lock.fd, 128, 0).split()
    if len(words) == 2 and all(w.isdigit() for w in words):
        return [int(words[0]), int(words[1])]
    return [0, 0]


def _set_hint(lock: Lock, version: int, offset: int) -> None:
    hints = _hints(lock)
    hints[version == 6] = offset
    os.pwrite(lock.fd, f"{hints[0]} {hints[1]}".encode().ljust(63) + b"\n", 0)


def _lower_hint(lock: Lock, gw: Interface, ip: IP) -> None:
    offset = ip.as_int - _range(gw)[0]
    if 0 <= offset < _hints(lock)[gw.version == 6]:
        _set_hint(lock, gw.version, offset)


def _take_lowest(lock: Lock, name: str, gw: Interface, owner: str) -> IP:
    """Lease the lowest free host address (the caller holds the network's lock)."""
    first, last = _range(gw)
    width = 4 if gw.version == 4 else 16
    candidate = first + _hints(lock)[gw.version == 6]
    while candidate <= last:
        ip = IP(candidate.to_bytes(width, "big"))
        if candidate != gw.ip.as_int and state.link(owner, _LEASES, name, str(ip)):
            _set_hint(lock, gw.version, candidate - first + 1)
            return ip
        candidate += 1
    raise InvalidValue(f"no free address left in {gw.ip}/{gw.prefixlen}")


def _index(owner: str, name: str, ip: str) -> None:
    """Add the lease to the owner's list (one write with O_APPEND: atomic among writers)."""
    p = state.path(_BY_OWNER, owner)
    try:
        try:
            fd = state.open_file(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except FileNotFoundError:
            state.ensure_dir(_BY_OWNER)
            fd = state.open_file(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"+{name}@{ip}\n".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateError(f"cannot write netplumb lease index {p}: {exc.strerror}") from None


def lease(name: str, owner: str, wanted: IP | None = None, family: int | None = None) -> IP:
    """Lease an address of network ``name`` to ``owner``: the wanted one, or the lowest free
    of the family asked for (default: the network's primary family)."""
    net = _network(name)
    if net is None:
        raise NetplumbError(f"network {name} not found")
    version = wanted.version if wanted is not None else family or net.gateway.version
    gw = next((g for g in net.gateways if g.version == version), None)
    if gw is None:
        raise Conflict(f"network {name} has no IPv{version} subnet")
    with Lock(_LEASES, f"{name}.lock") as lock:
        if wanted is not None:
            if not gw.contains(wanted) or wanted == gw.ip:
                raise Conflict(
                    f"address {wanted} is not available in network {name} ({gw.ip}/{gw.prefixlen})"
                )
            state.ensure_dir(_LEASES, name)
            if not state.link(owner, _LEASES, name, str(wanted)):
                holder = state.readlink(_LEASES, name, str(wanted))
                if holder is not None and holder != owner:
                    raise Conflict(
                        f"address {wanted} is already in use in network {name} (by {holder})"
                    )
            ip = wanted
        else:
            state.ensure_dir(_LEASES, name)
            ip = _take_lowest(lock, name, gw, owner)
        _index(owner, name, str(ip))
    return ip


def _free(lock: Lock, net: Network | None, name: str, ip: str, owner: str) -> bool:
    """Free one address if ``owner`` holds it (the caller holds the network's lock)."""
    if state.readlink(_LEASES, name, ip) != owner:
        return False
    if net is not None:
        addr = IP.parse(ip)
        gw = next((g for g in net.gateways if g.version == addr.version), None)
        if gw is not None:
            _lower_hint(lock, gw, addr)
    state.remove(_LEASES, name, ip)
    return True


def _owned(owner: str) -> list[tuple[str, str]]:
    """(network, address) pairs of ``owner``'s list, in order, unchecked."""
    try:
        with open(state.path(_BY_OWNER, owner), "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    out: dict[tuple[str, str], None] = {}
    for line in lines:
        net, _, ip = line[1:].partition("@")
        if line[:1] == "+" and ip:
            out[(net, ip)] = None
    return list(out)


def indexed_owners() -> list[str]:
    """Every owner with a lease list (for ``gc``)."""
    return state.names(_BY_OWNER)


def release(name: str, owner: str) -> None:
    """Release every address ``owner`` holds in network ``name``."""
    release_many([owner], only=name)


def release_many(owners: list[str], only: str | None = None) -> int:
    """Release every address of every owner (in network ``only`` if given), taking each
    network's lock once; returns how many addresses were freed."""
    by_net: dict[str, list[tuple[str, str]]] = {}
    emptied = []
    for owner in owners:
        pairs = _owned(owner)
        for net, ip in pairs:
            if only is None or net == only:
                by_net.setdefault(net, []).append((owner, ip))
        if only is None or all(net == only for net, _ in pairs):
            emptied.append(owner)
    freed = 0
    for name, pairs in by_net.items():
        network = _network(name)
        with Lock(_LEASES, f"{name}.lock") as lock:
            for owner, ip in pairs:
                freed += _free(lock, network, name, ip, owner)
    for owner in emptied:
        # A lease the owner takes in another network meanwhile would lose its line here; its
        # address is still found (and freed for a dead owner) by ``gc``'s pass over networks.
        state.remove(_BY_OWNER, owner)
    return freed


def release_address(name: str, ip: str, owner: str) -> None:
    """Release one address, if ``owner`` holds it (its line in the owner's list stays until
    the owner's last release: reading the list checks each address)."""
    with Lock(_LEASES, f"{name}.lock") as lock:
        _free(lock, _network(name), name, ip, owner)


def leases_of(owner: str) -> list[tuple[str, str]]:
    """(network, address) pairs ``owner`` holds (from its index; each checked)."""
    return [(n, ip) for n, ip in _owned(owner) if state.readlink(_LEASES, n, ip) == owner]

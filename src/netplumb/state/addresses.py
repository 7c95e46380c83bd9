"""The address leases of netplumb's networks: one table of the allocator (``leases.py``) per
network, named after it.

What is specific to a network: its candidates are the host addresses of its subnets (one per
family) less its gateway, leased lowest first; a wanted address must be one of them. Leasing,
releasing and listing cost the same with 10 guests as with 10,000 (the allocator's per-owner
lists and lowest-free hint).
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, NetplumbError
from netplumb.model.ip import IP, Interface
from netplumb.model.network import Network
from netplumb.state import leases as alloc


def _network(name: str) -> Network | None:
    rec = state.read("networks", name)
    return Network.from_record(rec) if rec else None


def is_network_table(table: str) -> bool:
    """Whether an allocator table is a network's (the others' names start with ``%``)."""
    return not table.startswith("%")


def drop(name: str) -> None:
    """Forget every lease of network ``name`` (the network is being removed)."""
    alloc.drop_table(name)


def leases(name: str) -> dict[str, str]:
    """address -> owner, every lease of network ``name`` (one pass over its folder)."""
    return alloc.held(name)


def span(gw: Interface) -> tuple[int, int]:
    """First and last host address of the gateway's subnet, as ``allocate`` counts them."""
    return gw.network_int + 1, gw.broadcast_int - (1 if gw.version == 4 else 0)


def lease_in(
    table: str,
    gw: Interface,
    owner: str,
    wanted: IP | None,
    what: str,
    reserved: frozenset[IP] = frozenset(),
) -> IP:
    """Lease ``wanted`` or the lowest free host address of ``gw``'s subnet (not the gateway
    nor any of ``reserved``) in ``table``; ``what`` names the table in errors (``network
    net1``)."""
    if wanted is not None:
        if not gw.contains(wanted) or wanted == gw.ip:
            raise Conflict(f"address {wanted} is not available in {what} ({gw.ip}/{gw.prefixlen})")
        if wanted in reserved:
            raise Conflict(
                f"address {wanted} is reserved in {what}: published ports' connections come from it"
            )
        with alloc.lock(table):
            theirs = alloc.take(table, str(wanted), owner)
        if theirs is not None:
            raise Conflict(f"address {wanted} is already in use in {what} (by {theirs})")
        return wanted
    width = 4 if gw.version == 4 else 16
    skip = {gw.ip.as_int, *(ip.as_int for ip in reserved if ip.version == gw.version)}
    with alloc.lock(table) as lk:
        key = alloc.take_lowest(
            lk,
            table,
            owner,
            span(gw),
            lambda n: str(IP(n.to_bytes(width, "big"))),
            reserved=skip.__contains__,
        )
    if key is None:
        raise InvalidValue(f"no free address left in {gw.ip}/{gw.prefixlen}")
    return IP.parse(key)


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
    return lease_in(name, gw, owner, wanted, f"network {name}", net.reserved)


def indexed_owners() -> list[str]:
    """Every owner with a lease list (for ``gc``)."""
    return alloc.owners()


def release(name: str, owner: str) -> None:
    """Release every address ``owner`` holds in network ``name``."""
    alloc.release_owner(owner, lambda t: t == name)


def release_many(owners: list[str], only: str | None = None) -> int:
    """Release every network address of every owner (in network ``only`` if given), taking
    each network's lock once; returns how many addresses were freed."""
    return alloc.release_owners(owners, is_network_table if only is None else (lambda t: t == only))


def release_address(name: str, ip: str, owner: str) -> None:
    """Release one address, if ``owner`` holds it."""
    alloc.release(name, ip, owner)


def leases_of(owner: str) -> list[tuple[str, str]]:
    """(network, address) pairs ``owner`` holds (from its index; each checked)."""
    return alloc.leases_of(owner, is_network_table)

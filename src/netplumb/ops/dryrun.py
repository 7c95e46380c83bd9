"""``--dry-run`` of the changing commands besides attach and up/down: each observes what it
would change, refuses what the command would refuse (same words), and returns the plan's
typed actions, changing nothing (reads only: records, netlink dumps)."""

from __future__ import annotations

from netplumb import state
from netplumb.errors import Conflict, InvalidValue, NetplumbError
from netplumb.model.ip import IP
from netplumb.ops import networks
from netplumb.plan.actions import Action
from netplumb.plan.steps import DetachInterface, PublishPort, ReleaseAddress, UnpublishPort
from netplumb.plan.upsteps import network_steps, remove_network_steps, remove_steps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.model.network import Network
    from netplumb.model.ports import PortMapping


def network_create(net: Network) -> list[Action]:
    existing = networks.get(net.name)
    if existing is not None and existing != net:
        raise Conflict(
            f"network {net.name} exists with another definition "
            f"({existing.subnet} on {existing.bridge})"
        )
    if existing is not None:
        return []
    for other in networks.names():
        o = networks.get(other)
        if o is not None and o.bridge == net.bridge:
            raise Conflict(
                f"network {net.name} clashes with network {o.name} ({o.subnet} on {o.bridge})"
            )
    return list(network_steps(net))


def network_remove(name: str) -> list[Action]:
    net = networks.get(name)
    if net is None:
        raise NetplumbError(f"network {name} not found")
    held = networks.leases(name)
    if held:
        raise Conflict(
            f"network {name} has active endpoints: {', '.join(sorted(set(held.values())))}"
        )
    return list(remove_network_steps(net, name))


def detach(guest_ref: str, ifname: str) -> list[Action]:
    """The removal of an attachment, from its record (or its mark, without one)."""
    from netplumb.kernel.session import Session
    from netplumb.model.names import mark_owner
    from netplumb.runtimes.guests import resolve

    with resolve(guest_ref) as guest:
        record = state.read("attach", f"{guest.key}@{ifname}")
        if record is None:
            session = Session(guest.fd)
            try:
                link = session.guest.get_link(ifname)
            finally:
                session.close()
            if link is None:
                raise NetplumbError(f'guest {guest_ref} has no interface "{ifname}"')
            if mark_owner(link.alias) != guest.key:
                raise Conflict(
                    f'interface "{ifname}" of guest {guest_ref} was not attached by netplumb'
                )
            return [DetachInterface(ifname, None)]
        host = record.get("host_name") if record.get("kind") == "veth" else None
        out: list[Action] = [DetachInterface(ifname, str(host) if host else None)]
        sig = record.get("signature") or {}
        net = networks.by_bridge(str(sig.get("host_if"))) if sig.get("host_if") else None
        if net is not None:
            held = networks.leases(net.name)
            for a in sig.get("addresses", []):
                ip = str(a).split("/")[0]
                if held.get(ip) == guest.key:
                    out.append(ReleaseAddress(net.name, ip))
        return out


def publish(guest_name: str, mappings: list[PortMapping]) -> list[Action]:
    from netplumb.ops import ports

    addrs = ports.guest_addresses(guest_name)
    if not addrs:
        raise NetplumbError(
            f"cannot publish ports of {guest_name}: it has no address the machine reaches"
        )
    out: list[Action] = []
    for m in mappings:
        fams = [4, 6] if m.host_ip is None else [m.host_ip.version]
        ips = tuple(IP.parse(addrs[f]) for f in fams if f in addrs)
        if not ips:
            raise InvalidValue(f"cannot publish {m}: {guest_name} has no IPv{fams[0]} address")
        out.append(PublishPort(m, ips))
    return out


def unpublish(owner: str, mappings: list[PortMapping]) -> list[Action]:
    """The bindings ``unpublish`` would remove (the same match as ``ports.unpublish``)."""
    from netplumb.state import portrecords

    out: list[Action] = []
    for b in portrecords.bindings(owner) if portrecords.exists(owner) else []:
        if any(
            m.container_port == b["container_port"]
            and m.proto == b["proto"]
            and (not m.host_port or m.host_port <= int(b["host_port"]) <= m.host_port_end)
            and (m.host_ip is None or str(m.host_ip) == b.get("host_ip"))
            for m in mappings
        ):
            out.append(UnpublishPort(b))
    return out


def rm(name: str) -> list[Action]:
    """``rm NAME``: its ports, interfaces (one by one), leases, then its process."""
    from netplumb.hosts import runtime
    from netplumb.ops.holdings import guest

    record = runtime.get(name)  # "No such host: NAME", as rm says
    running = runtime.status(record) in ("running", "restarting")
    g = guest(name, "host", None, None, running, f"host:{name}")
    return list(remove_steps(g, one_by_one=True))

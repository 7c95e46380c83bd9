"""netplumb's records as the nftables renderer takes them (``nft/render.py``): the networks,
their bridge ports and link flows, the publications, and the whole ruleset made from them.

Read here rather than through ``ops/networks.py``: a network created or removed asks for the
whole ruleset (``networks.create``/``remove`` call ``portrules.sync``), so neither this module
nor ``portrules.py`` may import that one. The renderer and the networks' model are imported
where they are used: a publication needs neither, and ``netplumb publish`` is a command scripts
run once per port (each import costs it).
"""

from __future__ import annotations

from netplumb import state
from netplumb.state import portrecords

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.model.network import Network
    from netplumb.nft.render import Allow, NetSpec, Publication
    from netplumb.state import Record


def network_names() -> list[str]:
    return state.names("networks")


def network(name: str) -> Network | None:
    from netplumb.model.network import Network

    rec = state.read("networks", name)
    return Network.from_record(rec) if rec else None


def nets(isolated_only: bool = False) -> list[NetSpec]:
    from netplumb.nft.render import NetSpec

    nets = []
    for name in network_names():
        net = network(name)
        if net is not None and (net.isolation or not isolated_only):
            ports = _bridge_ports(net.bridge) if net.isolation else ()
            nets.append(
                NetSpec(
                    net.name,
                    net.bridge,
                    net.subnet,
                    net.gateway.version,
                    net.isolation,
                    ports,
                    net.subnet6,
                    net.internal,
                    tuple(str(ip) for ip in net.nat_sources),
                )
            )
    return nets


def desired() -> str:
    from netplumb.nft.render import render

    pubs = [publication(b) for b in portrecords.all_bindings()]
    return render(nets(), pubs, allows())


def _bridge_ports(bridge: str) -> tuple[str, ...]:
    """The host ends of the veths netplumb attached to ``bridge``, from its records."""
    out = []
    for name in state.names("attach"):
        rec = state.read("attach", name)
        if rec and rec.get("kind") == "veth" and rec.get("bridge") == bridge:
            out.append(str(rec["host_name"]))
    return tuple(sorted(out))


def isolation_in_use() -> bool:
    return any((n := network(name)) is not None and n.isolation for name in network_names())


def allows() -> list[Allow]:
    """Link flows on isolated networks: the linking host may reach the target's exposed ports."""
    from netplumb.model.ports import parse_expose
    from netplumb.nft.render import Allow

    isolated = {}
    for name in network_names():
        net = network(name)
        if net is not None and net.isolation:
            isolated[name] = net
    if not isolated:
        return []
    hosts = {n: state.read("hosts", n) for n in state.names("hosts")}  # the hosts' records
    out = []
    for name, rec in hosts.items():
        if rec is None:
            continue
        for target_name, _alias in rec.get("links", []):
            target = hosts.get(str(target_name))
            if target is None:
                continue
            for mine in rec.get("networks", []):
                net = isolated.get(str(mine["network"]))
                theirs = [t for t in target.get("networks", []) if t["network"] == mine["network"]]
                if net is None or not theirs:
                    continue
                for spec in target.get("expose", []):
                    for port, proto in parse_expose(str(spec)):
                        out.append(
                            Allow(
                                net.bridge,
                                str(mine["ip"]),
                                str(theirs[0]["ip"]),
                                port,
                                proto,
                                f"link:{name}:{target_name}",
                            )
                        )
    return out


def binding_fields(b: Record) -> tuple[str, int, str | None, int, str, int, str]:
    """A binding's record as ``Publication`` and ``Element`` take it (the same fields)."""
    host_ip = b.get("host_ip")
    return (
        str(b["owner"]),
        int(b["family"]),
        None if host_ip is None else str(host_ip),
        int(b["host_port"]),
        str(b["container_ip"]),
        int(b["container_port"]),
        str(b["proto"]),
    )


def publication(b: Record) -> Publication:
    from netplumb.nft.render import Publication

    return Publication(*binding_fields(b))

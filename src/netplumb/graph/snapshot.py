"""What ``netplumb graph`` draws, read from netplumb's records (no kernel access)."""

from __future__ import annotations

from netplumb import state
from netplumb.graph.svg import GHost, GNet
from netplumb.ops import networks, ports


def snapshot() -> tuple[list[GNet], list[GHost]]:
    from netplumb.hosts import runtime

    nets = []
    for name in networks.names():
        net = networks.get(name)
        if net is not None:
            subnets = (net.subnet,) + ((net.subnet6,) if net.subnet6 else ())
            nets.append(GNet(net.name, net.bridge, subnets))
    bridge_of = {n.name: n.bridge for n in nets}
    hosts = []
    for name in runtime.names():
        rec = state.read("hosts", name)
        if rec is None:
            continue
        ifaces = [
            (bridge_of.get(str(e["network"]), str(e["network"])), str(e["ifname"]), str(e["ip"]))
            for e in rec.get("networks", [])
        ]
        ifaces += _attached(f"host:{name}", [i for _, i, _ in ifaces])
        hosts.append(
            GHost(
                name,
                runtime.status(rec),
                tuple(ifaces),
                tuple((str(t), str(a)) for t, a in rec.get("links", [])),
                _published(f"host:{name}"),
            )
        )
    for name in state.names("docker"):  # the projects' Docker services
        rec = state.read("docker", name)
        if rec is None:
            continue
        owner = str(rec["owner"])
        hosts.append(
            GHost(
                name,
                "docker",
                tuple(_attached(owner, [])),
                tuple((str(t), str(a)) for t, a in rec.get("links", [])),
                _published(owner),
            )
        )
    return nets, hosts


def _attached(owner: str, have: list[str]) -> list[tuple[str, str, str]]:
    """(bridge, ifname, address) of the bridge interfaces attached to ``owner``, but ``have``."""
    out = []
    for aname in state.names("attach"):
        if not aname.startswith(f"{owner}@"):
            continue
        a = state.read("attach", aname) or {}
        if a.get("ifname") in have or not a.get("bridge"):
            continue
        addrs = (a.get("signature") or {}).get("addresses", [])
        addr = str(addrs[0]).split("@")[0] if addrs else ("dhcp" if a.get("dhcp_pidfile") else "")
        out.append((str(a["bridge"]), str(a["ifname"]), addr))
    return out


def _published(owner: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                f"{b['container_port']}/{b['proto']} <- :{b['host_port']}"
                for b in ports.bindings(owner)
            }
        )
    )

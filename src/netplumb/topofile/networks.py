"""The networks of a topology: validated with ``make_network``, no two on one bridge or on
overlapping subnets (the default network included)."""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.network import DEFAULT_NETWORK, Network, make_network
from netplumb.topofile.model import Path, TopologyError
from netplumb.topofile.raw import RawNetwork, RawTopology


def resolve_networks(raw: RawTopology, default: Network) -> tuple[Network, ...]:
    out: list[Network] = []
    for name, rn in raw.networks.items():
        here: Path = ("networks", name)
        if name == DEFAULT_NETWORK:
            raise TopologyError(here, "the default network cannot be defined in a topology file")
        net = _network(name, rn, here)
        for other in (default, *out):
            if other.bridge == net.bridge:
                raise TopologyError(
                    (*here, "bridge"),
                    f"bridge {net.bridge} is already that of network {other.name}",
                )
            for mine in net.gateways:
                for theirs in other.gateways:
                    if _overlap(mine, theirs):
                        sub = subnet_text(mine)
                        raise TopologyError(
                            (*here, "subnet"),
                            f"{sub} overlaps network {other.name} ({subnet_text(theirs)})",
                        )
        out.append(net)
    return tuple(out)


def _network(name: str, rn: RawNetwork, here: Path) -> Network:
    by_family: dict[int, str] = {}
    for i, text in enumerate(rn.subnet):
        version = Interface.parse(text).version
        if version in by_family:
            raise TopologyError((*here, "subnet", i), "at most one IPv4 and one IPv6 subnet")
        by_family[version] = text
    gateways: dict[int, str] = {}
    for i, text in enumerate(rn.gateway or []):
        version = IP.parse(text).version
        if version not in by_family:
            raise TopologyError((*here, "gateway", i), f"no IPv{version} subnet for gateway {text}")
        if version in gateways:
            raise TopologyError((*here, "gateway", i), "at most one gateway per family")
        gateways[version] = text
    primary = 4 if 4 in by_family else 6
    try:
        return make_network(
            name,
            rn.bridge or f"np-{name}"[:15],
            by_family[primary],
            gateways.get(primary),
            rn.isolation,
            rn.mtu,
            by_family.get(6) if primary == 4 else None,
            gateways.get(6) if primary == 4 else None,
            rn.internal,
        )
    except InvalidValue as exc:
        words = str(exc).split()  # "invalid subnet ...", "invalid gateway ...", "invalid MTU"
        field = {"subnet": "subnet", "subnets": "subnet", "gateway": "gateway"}.get(words[1], "")
        raise TopologyError((*here, field) if field else here, str(exc)) from None


def _overlap(a: Interface, b: Interface) -> bool:
    if a.version != b.version:
        return False
    wide, narrow = (a, b) if a.prefixlen <= b.prefixlen else (b, a)
    return wide.contains(IP(narrow.network_int.to_bytes(len(narrow.ip.packed), "big")))


def subnet_text(gw: Interface) -> str:
    return f"{IP(gw.network_int.to_bytes(len(gw.ip.packed), 'big'))}/{gw.prefixlen}"

"""netplumb's nftables ruleset, rendered as ``nft -f`` text from its records (pure).

One ``inet netplumb`` table does published ports (DNAT for traffic from elsewhere and from the
machine itself, masquerade for loopback and hairpin traffic) and the guards Docker lacked before
28.0; one ``bridge netplumb`` table isolates networks with ``isolation`` on. Every rule is
commented with its owner. The text replaces both tables in one transaction (``apply_text``), so
a half-applied ruleset never exists; golden files in tests pin the output.
"""

from __future__ import annotations

from netplumb.model.value import Value

TABLE = "netplumb"


class NetSpec(Value):
    """A network as the ruleset sees it."""

    __slots__ = ("bridge", "family", "isolation", "name", "ports", "subnet", "subnet6")
    name: str
    bridge: str
    subnet: str
    family: int
    isolation: bool
    ports: tuple[str, ...]
    subnet6: str | None  # the IPv6 subnet of a dual-stack network

    def __init__(
        self,
        name: str,
        bridge: str,
        subnet: str,
        family: int,
        isolation: bool,
        ports: tuple[str, ...] = (),
        subnet6: str | None = None,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.subnet = subnet
        self.family = family
        self.isolation = isolation
        self.ports = ports  # the bridge ports netplumb made (for isolation)
        self.subnet6 = subnet6
        self._freeze()

    def subnets(self) -> list[tuple[str, str]]:
        """(ip keyword, subnet) of each family the network has."""
        out = [(_ipkw(self.family), self.subnet)]
        if self.subnet6:
            out.append(("ip6", self.subnet6))
        return out


class Publication(Value):
    """One DNAT: ``host_ip`` None means every local address of that family."""

    __slots__ = (
        "container_ip",
        "container_port",
        "family",
        "host_ip",
        "host_port",
        "owner",
        "proto",
    )
    owner: str
    family: int
    host_ip: str | None
    host_port: int
    container_ip: str
    container_port: int
    proto: str

    def __init__(
        self,
        owner: str,
        family: int,
        host_ip: str | None,
        host_port: int,
        container_ip: str,
        container_port: int,
        proto: str,
    ) -> None:
        self.owner = owner
        self.family = family
        self.host_ip = host_ip
        self.host_port = host_port
        self.container_ip = container_ip
        self.container_port = container_port
        self.proto = proto
        self._freeze()


class Allow(Value):
    """On an isolated network: ``src`` may reach ``dst`` on ``port``/``proto`` (a link)."""

    __slots__ = ("bridge", "dst", "owner", "port", "proto", "src")
    bridge: str
    src: str
    dst: str
    port: int
    proto: str
    owner: str

    def __init__(self, bridge: str, src: str, dst: str, port: int, proto: str, owner: str) -> None:
        self.bridge = bridge
        self.src = src
        self.dst = dst
        self.port = port
        self.proto = proto
        self.owner = owner
        self._freeze()


def _ipkw(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def _addr(ip: str, family: int) -> str:
    return ip if family == 4 else f"[{ip}]"


def _comment(text: str) -> str:
    return 'comment "' + text.replace('"', "'") + '"'


def _iso_chain(n: NetSpec) -> str:
    # The network's name as it is: nft takes '-' and '.' in a chain name, and making '-' a '_'
    # gave "a-b" and "a_b" one chain (nft merges the two definitions: the first network's final
    # drop came before the second's link allows). Names are ASCII (model.network).
    return f"iso_{n.name}"


def _publish_rule(p: Publication) -> str:
    kw = _ipkw(p.family)
    # 0.0.0.0 and :: mean every address of the family, as in Docker ("ip daddr 0.0.0.0" would
    # match no packet at all)
    if p.host_ip and p.host_ip not in ("0.0.0.0", "::"):
        match = f"{kw} daddr {p.host_ip} "
    else:
        match = f"meta nfproto ipv{p.family} "
    target = f"{_addr(p.container_ip, p.family)}:{p.container_port}"
    return (
        f"\t\t{match}{p.proto} dport {p.host_port} dnat {kw} to {target} "
        f"{_comment('netplumb:' + p.owner)}"
    )


def render(nets: list[NetSpec], pubs: list[Publication], allows: list[Allow]) -> str:
    """The whole ruleset; an empty string when netplumb owns nothing to filter or translate."""
    if not nets and not pubs:
        return ""
    out = [f"table inet {TABLE} {{"]
    out += [
        "\tchain raw_prerouting {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        # 127.0.0.0/8 is reachable only over lo: route_localnet on netplumb's bridges must not
        # let a guest or a neighbour reach a port published on 127.0.0.1 (CVE-2020-8558).
        '\t\tiifname != "lo" ip daddr 127.0.0.0/8 drop '
        + _comment("netplumb: loopback only from lo"),
        '\t\tiifname != "lo" ip saddr 127.0.0.0/8 drop '
        + _comment("netplumb: loopback only from lo"),
    ]
    for n in sorted(nets, key=lambda n: n.name):
        # Guests are reached directly only from their own bridge; from anywhere else only
        # through published ports (Docker engine 28's rule; before it, neighbours that routed
        # the container subnet via the host reached every container port).
        for kw, subnet in n.subnets():
            out.append(
                f'\t\tiifname != "{n.bridge}" {kw} daddr {subnet} fib daddr type != local drop '
                + _comment(f"netplumb:network:{n.name}")
            )
    out.append("\t}")
    out += [
        "\tchain nat_prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump publish",
        "\t}",
        "\tchain nat_output {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump publish",
        "\t}",
        "\tchain publish {",
    ]
    key = lambda p: (p.family, p.proto, p.host_port, p.host_ip or "")  # noqa: E731
    out += [_publish_rule(p) for p in sorted(pubs, key=key)]
    out.append("\t}")
    out += [
        "\tchain nat_postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    ]
    for n in sorted(nets, key=lambda n: n.name):
        c = _comment(f"netplumb:network:{n.name}")
        if n.family == 4:
            # the machine's own 127.0.0.1:PORT, DNATed to a guest: give it a routable source
            out.append(
                f'\t\toifname "{n.bridge}" ip saddr 127.0.0.0/8 ct status dnat masquerade {c}'
            )
        # hairpin: a guest reaching another guest's published port through a host address
        out.append(f'\t\tiifname "{n.bridge}" oifname "{n.bridge}" ct status dnat masquerade {c}')
        # guests reaching beyond the machine leave with its address, as with Docker
        for kw, subnet in n.subnets():
            out.append(f'\t\t{kw} saddr {subnet} oifname != "{n.bridge}" masquerade {c}')
    out += ["\t}", "}"]
    isolated = [n for n in nets if n.isolation]
    if isolated:
        out += [
            f"table bridge {TABLE} {{",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy accept;",
        ]
        for n in sorted(isolated, key=lambda n: n.name):
            # Frames between two of the network's ports (``meta ibrname`` would be simpler, but
            # kernels without CONFIG_NFT_BRIDGE_META, as here, refuse it).
            if n.ports:
                ports = "{ " + ", ".join(f'"{p}"' for p in sorted(n.ports)) + " }"
                out.append(f"\t\tiifname {ports} oifname {ports} jump {_iso_chain(n)}")
        out.append("\t}")
        for n in sorted(isolated, key=lambda n: n.name):
            out += [f"\tchain {_iso_chain(n)} {{", "\t\tether type arp accept"]
            if n.family == 6 or n.subnet6:
                out.append("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept")
            mine = sorted(
                (a for a in allows if a.bridge == n.bridge),
                key=lambda a: (a.src, a.dst, a.proto, a.port),
            )
            for a in mine:
                kw = _ipkw(n.family)
                c = _comment(f"netplumb:{a.owner}")
                out.append(
                    f"\t\t{kw} saddr {a.src} {kw} daddr {a.dst} {a.proto} dport {a.port} accept {c}"
                )
                out.append(
                    f"\t\t{kw} saddr {a.dst} {kw} daddr {a.src} {a.proto} sport {a.port} accept {c}"
                )
            out += [f"\t\tdrop {_comment('netplumb:network:' + n.name)}", "\t}"]
        out.append("}")
    return "\n".join(out) + "\n"


def transaction(text: str) -> str:
    """``nft -f`` input that replaces netplumb's tables in one transaction, or removes them.

    ``table X`` before ``delete table X`` makes the delete valid whether or not X exists yet.
    """
    head = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    head += [f"table bridge {TABLE}", f"delete table bridge {TABLE}"]
    return "\n".join(head) + "\n" + text


def rule_count(text: str) -> int:
    """How many rules the rendered text holds (to notice a ruleset someone flushed)."""
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("\t\t") and not line.lstrip().startswith("type ")
    )

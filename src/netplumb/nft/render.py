"""netplumb's nftables ruleset, rendered as ``nft -f`` text from its records (pure).

One ``inet netplumb`` table does published ports (DNAT for traffic from elsewhere and from the
machine itself, masquerade for loopback and hairpin traffic), the guards Docker lacked before
28.0, and cuts ``internal`` networks off (a ``forward`` chain; Docker's ``--internal``); one
``bridge netplumb`` table isolates networks with ``isolation`` on. Every rule is
commented with its owner. The text replaces both tables in one transaction (``apply_text``), so
a half-applied ruleset never exists; golden files in tests pin the output.

Published ports are not rules but elements of four DNAT maps (``nft/elements.py``): the rules of
the chain ``publish`` are fixed, and publishing or unpublishing one port adds or deletes one
element (``kernel/nftset.py``) without rewriting anything else. The whole text, elements
included, is what the records say; it is applied when the tables are missing or drifted
(``reconcile``) and when something other than a publication changes.
"""

from __future__ import annotations

from netplumb.model.names import IFNAME_CHARS, IFNAME_RULE, IFNAMSIZ
from netplumb.model.network import NETWORK_NAME_MAX
from netplumb.nft.elements import (
    ADDRESS_CHARS,
    COMMENT_MAX,
    MAPS,
    SELF_KEY,
    SELF_SET,
    Element,
    SetElement,
    address,
    comment,
    link_element,
    port,
    port_element,
    proto,
    refuse,
    self_element,
)
from netplumb.nft.specs import Allow, NetSpec, Publication, ipkw
from netplumb.nft.text import TABLE, element_count, rule_count, transaction

__all__ = [
    "COMMENT_MAX",
    "TABLE",
    "Allow",
    "NetSpec",
    "Publication",
    "element",
    "element_count",
    "render",
    "rule_count",
    "self_elements",
    "transaction",
]


# -- what may be pasted into the text ---------------------------------------------------------
#
# Defence in depth (issue 12): the model refuses a name nft could read as syntax before
# anything changes (model.names.check_ifname, model.network.make_network). The renderer checks
# again every value it pastes, and raises rather than emit one that could end a quoted string,
# add tokens or start a comment: a record written by an older netplumb or by hand, or a caller
# that skipped the model, must not be able to rewrite the firewall. Comments are the exception:
# they match nothing, so they are made safe instead of refused (see _comment).

_DIGITS = frozenset("0123456789")
_refuse, _address, _port, _proto, _comment = refuse, address, port, proto, comment


def _ifname(name: str, what: str) -> str:
    # the model's rule exactly (model.names.check_ifname), "." and ".." included
    ok = isinstance(name, str) and 0 < len(name) < IFNAMSIZ and name not in (".", "..")
    if not (ok and set(name) <= IFNAME_CHARS):
        raise _refuse(what, name, IFNAME_RULE + " (1 to 15 of them, not '.' or '..')")
    return name


def _subnet(subnet: str) -> str:
    # an address, "/" and one to three ASCII digits (no ``re``: see elements.ADDRESS_CHARS)
    ip, slash, bits = subnet.partition("/") if isinstance(subnet, str) else ("", "", "")
    ok = slash and ip and ADDRESS_CHARS.issuperset(ip)
    if not (ok and 0 < len(bits) <= 3 and _DIGITS.issuperset(bits)):
        raise _refuse("subnet", subnet, "not an IP subnet")
    return subnet


def _iso_chain(n: NetSpec) -> str:
    # The network's name as it is: nft takes '-' and '.' in a chain name, and making '-' a '_'
    # gave "a-b" and "a_b" one chain (nft merges the two definitions: the first network's final
    # drop came before the second's link allows). It is pasted unquoted: the model's rule
    # (model.network.make_network) is checked again here.
    return f"iso_{_network_name(n.name)}"


def _network_name(name: str) -> str:
    ok = isinstance(name, str) and 0 < len(name) <= NETWORK_NAME_MAX
    if not (ok and set(name) <= IFNAME_CHARS):
        raise _refuse("network name", name, IFNAME_RULE + f" (1 to {NETWORK_NAME_MAX} of them)")
    return name


def _net_comment(n: NetSpec) -> str:
    return _comment(f"netplumb:network:{_network_name(n.name)}")


def element(p: Publication) -> Element:
    """The publication as an element of one of the DNAT maps."""
    return Element(
        p.owner, p.family, p.host_ip, p.host_port, p.container_ip, p.container_port, p.proto
    )


def self_elements(pubs: list[Publication]) -> list[SetElement]:
    """The guests with a published IPv4 port, each once, in ``SELF_SET`` (sorted)."""
    first: dict[str, str] = {}
    for p in pubs:
        if p.family == 4:
            first.setdefault(p.container_ip, p.owner)
    return [self_element(ip, f"netplumb:{owner}") for ip, owner in sorted(first.items())]


def _maps(pubs: list[Publication]) -> list[str]:
    """The four DNAT maps with their elements, each on a line of its own, sorted."""
    by_map: dict[str, list[Element]] = {name: [] for name, _, _ in MAPS}
    for p in pubs:
        e = element(p)
        by_map[e.map].append(e)
    out = []
    for name, key, data in MAPS:
        out += [f"\tmap {name} {{", f"\t\ttype {key} : {data}"]
        elements = sorted(by_map[name], key=lambda e: e.sort_key)
        if elements:
            out.append("\t\telements = {")
            out += [f"\t\t\t{e.text}," for e in elements[:-1]]
            out += [f"\t\t\t{elements[-1].text}", "\t\t}"]
        out.append("\t}")
    return out


# The chain ``publish``: one lookup per map, never changed by a publication. ``th dport`` is the
# destination port of TCP, UDP and SCTP alike; a packet whose key is in no map matches nothing.
PUBLISH_RULES = [
    "\t\tmeta nfproto ipv4 dnat ip to meta l4proto . th dport map @publish4",
    "\t\tdnat ip to ip daddr . meta l4proto . th dport map @publish4_addr",
    "\t\tmeta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @publish6",
    "\t\tdnat ip6 to ip6 daddr . meta l4proto . th dport map @publish6_addr",
]


def render(nets: list[NetSpec], pubs: list[Publication], allows: list[Allow]) -> str:
    """The whole ruleset; an empty string when netplumb owns nothing to filter or translate."""
    if not nets and not pubs:
        return ""
    out = [f"table inet {TABLE} {{"]
    out += _maps(pubs)
    out += _set(SELF_SET, SELF_KEY, self_elements(pubs))
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
        bridge = _ifname(n.bridge, "bridge name")
        for kw, subnet in n.subnets():
            out.append(
                f'\t\tiifname != "{bridge}" {kw} daddr {_subnet(subnet)} '
                f"fib daddr type != local drop {_net_comment(n)}"
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
    out += PUBLISH_RULES
    out.append("\t}")
    out += _internal_chain(nets)
    out += [
        "\tchain nat_postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    ]
    for n in sorted(nets, key=lambda n: n.name):
        c = _net_comment(n)
        bridge = _ifname(n.bridge, "bridge name")
        # Translated connections leave from the network's NAT sources, addresses nothing else
        # uses, not from the gateway the machine's direct connections use: see
        # ``model.network.nat_sources_for`` (a shared source made the guest drop SYNs as old).
        loop, hairpin, own = n.nat_sources if len(n.nat_sources) == 3 else ("", "", "")
        if n.family == 4:
            # the machine's own 127.0.0.1:PORT, DNATed to a guest: give it a routable source
            to = f"snat ip to {loop}" if loop else "masquerade"
            out.append(f'\t\toifname "{bridge}" ip saddr 127.0.0.0/8 ct status dnat {to} {c}')
        # hairpin: a guest reaching another guest's published port through a host address
        if hairpin:  # by addresses: with bridge-nf-call-iptables on, the packet is bridged
            sub = _subnet(n.subnet)
            # a guest reaching its own published port first: it needs an address of its own too
            out.append(
                f"\t\tip saddr {sub} ip saddr . ip daddr @{SELF_SET} ct status dnat "
                f"snat ip to {own} {c}"
            )
            out.append(f"\t\tip saddr {sub} ip daddr {sub} ct status dnat snat ip to {hairpin} {c}")
        out.append(f'\t\tiifname "{bridge}" oifname "{bridge}" ct status dnat masquerade {c}')
        # guests reaching beyond the machine leave with its address, as with Docker; an
        # internal network's guests reach nothing beyond it (``forward``), so no masquerade
        for kw, subnet in [] if n.internal else n.subnets():
            out.append(f'\t\t{kw} saddr {_subnet(subnet)} oifname != "{bridge}" masquerade {c}')
    out += ["\t}", "}"]
    isolated = sorted((n for n in nets if n.isolation), key=lambda n: n.name)
    if isolated:
        out += [f"table bridge {TABLE} {{"]
        for n in isolated:
            ports, links = isolation_elements(n, allows)
            out += _set(ports_set(n), "ifname", ports)
            out += _set(links_set(n), f"{_addr_type(n)} . {_addr_type(n)} . {FLOW}", links)
        out += [
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter; policy accept;",
        ]
        for n in isolated:
            # Frames between two of the network's ports (``meta ibrname`` would be simpler, but
            # kernels without CONFIG_NFT_BRIDGE_META, as here, refuse it).
            s = ports_set(n)
            out.append(f"\t\tiifname @{s} oifname @{s} jump {_iso_chain(n)}")
        out.append("\t}")
        for n in isolated:
            out += [f"\tchain {_iso_chain(n)} {{", "\t\tether type arp accept"]
            if n.family == 6 or n.subnet6:
                out.append("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept")
            kw, s = ipkw(n.family), links_set(n)
            # a link flow, and its replies: one set lookup each, whatever the number of links
            out.append(f"\t\t{kw} saddr . {kw} daddr . meta l4proto . th dport @{s} accept")
            out.append(f"\t\t{kw} daddr . {kw} saddr . meta l4proto . th sport @{s} accept")
            out += [f"\t\tdrop {_net_comment(n)}", "\t}"]
        out.append("}")
    return "\n".join(out) + "\n"


def _internal_chain(nets: list[NetSpec]) -> list[str]:
    """Docker's ``--internal``: nothing is routed from an internal network's bridge to another
    interface, nor to it from one (published ports from elsewhere included). Its guests still
    reach each other (bridged, not routed) and the machine's own addresses (input, not
    forward), where netplumb's DNS server answers them. A drop in any base chain is final,
    whatever other tables (Docker's ``DOCKER-USER`` accepts) say."""
    internal = sorted((n for n in nets if n.internal), key=lambda n: n.name)
    if not internal:
        return []
    out = ["\tchain forward {", "\t\ttype filter hook forward priority filter; policy accept;"]
    for n in internal:
        c, bridge = _net_comment(n), _ifname(n.bridge, "bridge name")
        out.append(f'\t\tiifname "{bridge}" oifname != "{bridge}" drop {c}')
        out.append(f'\t\tiifname != "{bridge}" oifname "{bridge}" drop {c}')
    return [*out, "\t}"]


FLOW = "inet_proto . inet_service"


def _addr_type(n: NetSpec) -> str:
    return "ipv4_addr" if n.family == 4 else "ipv6_addr"


def ports_set(n: NetSpec) -> str:
    """The set of an isolated network's bridge ports (its name is checked as the chain's)."""
    return f"ports_{_network_name(n.name)}"


def links_set(n: NetSpec) -> str:
    """The set of an isolated network's link flows: source . target . protocol . port."""
    return f"links_{_network_name(n.name)}"


def isolation_elements(n: NetSpec, allows: list[Allow]) -> tuple[list[SetElement], ...]:
    """The elements of the network's two sets: its bridge ports and its link flows (sorted)."""
    note = f"netplumb:network:{_network_name(n.name)}"
    names = sorted({_ifname(p, "bridge port name") for p in n.ports})
    ports = [port_element(ports_set(n), p, note) for p in names]
    mine = sorted(
        {(a.src, a.dst, a.proto, a.port, a.owner) for a in allows if a.bridge == n.bridge}
    )
    links = [
        link_element(links_set(n), n.family, src, dst, port_, proto_, f"netplumb:{owner}")
        for src, dst, proto_, port_, owner in mine
    ]
    return ports, links


def _set(name: str, key: str, elements: list[SetElement]) -> list[str]:
    out = [f"\tset {name} {{", f"\t\ttype {key}"]
    if elements:
        out.append("\t\telements = {")
        out += [f"\t\t\t{e.text}," for e in elements[:-1]]
        out += [f"\t\t\t{elements[-1].text}", "\t\t}"]
    return [*out, "\t}"]

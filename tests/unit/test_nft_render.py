"""netplumb's nftables ruleset as ``nft -f`` text (``netplumb.nft.render``).

Golden files live in ``tests/unit/golden/nft_*.nft``; each was checked with ``nft -c -f`` (and
loaded, its rules counted with ``nft -j``) in a throwaway network namespace before it was
checked in. After a reviewed change of the renderer, rewrite them with
``NETPLUMB_UPDATE_GOLDEN=1 pytest tests/unit/test_nft_render.py``, read the diff, and check them
again the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.nft.render import (
    TABLE,
    Allow,
    NetSpec,
    Publication,
    element_count,
    render,
    rule_count,
    transaction,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("NETPLUMB_UPDATE_GOLDEN"))

# the default network with its NAT sources; "beta" below is a network recorded before them
DEFAULT = NetSpec(
    "netplumb",
    "np0",
    "10.89.0.0/16",
    4,
    False,
    nat_sources=("10.89.255.254", "10.89.255.253"),
)
V6NET = NetSpec("v6net", "np-v6", "fd00:89::/64", 6, False)
ISO = NetSpec("iso", "np-iso", "10.90.0.0/24", 4, True, ("vethdb", "vethweb", "vethcache"))
ISO_EMPTY = NetSpec("iso-empty", "np-iso2", "10.91.0.0/24", 4, True)  # no guest attached yet
ISO6 = NetSpec("iso.v6", "np-iso6", "fd00:90::/64", 6, True, ("veth6a", "veth6b"))
# Docker's --internal: no masquerade, nothing routed between its bridge and anything else
INTERNAL = NetSpec("back", "np-back", "10.95.0.0/24", 4, False, (), "fd00:95::/64", internal=True)

WEB = "host:web"
PUBLICATIONS = [
    Publication(WEB, 4, None, 8080, "10.89.0.2", 8080, "tcp"),  # -p 8080:8080, IPv4 side
    Publication(WEB, 6, None, 8080, "fd00:89::2", 8080, "tcp"),  # and its IPv6 side
    Publication(WEB, 4, "127.0.0.1", 8081, "10.89.0.2", 80, "tcp"),
    Publication(WEB, 6, "::1", 8090, "fd00:89::2", 80, "tcp"),
    Publication(WEB, 4, "192.168.1.10", 8085, "10.89.0.2", 80, "tcp"),
    # 0.0.0.0 and :: are every address of their family, as in Docker: the same rule as None
    Publication(WEB, 4, "0.0.0.0", 8083, "10.89.0.2", 80, "tcp"),
    Publication(WEB, 6, "::", 8084, "fd00:89::2", 80, "tcp"),
    Publication("host:dns", 4, None, 8082, "10.89.0.3", 80, "udp"),
    Publication("docker:0123456789ab", 4, None, 5000, "10.89.0.4", 5000, "sctp"),
]
ALLOWS = [
    Allow("np-iso", "10.90.0.3", "10.90.0.2", 27017, "tcp", "link:web:db"),
    Allow("np-iso", "10.90.0.3", "10.90.0.2", 27018, "tcp", "link:web:db"),
    Allow("np-iso", "10.90.0.4", "10.90.0.2", 53, "udp", "link:cache:db"),
    Allow("np-elsewhere", "10.99.0.3", "10.99.0.2", 80, "tcp", "link:x:y"),  # no such network
]
ALLOWS6 = [Allow("np-iso6", "fd00:90::3", "fd00:90::2", 5432, "tcp", "link:app:pg")]

# The chain ``publish`` holds four fixed rules, one lookup per DNAT map; publications are the
# maps' elements.
PUBLISH = 4

# (golden file, networks, publications, allows, rule count, element count)
CASES: list[tuple[str, list[NetSpec], list[Publication], list[Allow], int, int]] = [
    ("nothing", [], [], [], 0, 0),
    # postrouting: loopback SNAT, hairpin SNAT (IPv4) and masquerade (IPv6), masquerade out
    ("one_network", [DEFAULT], [], [], 3 + 2 + PUBLISH + 4, 0),
    ("publications", [DEFAULT, V6NET], PUBLICATIONS, [], 4 + 2 + PUBLISH + 6, 9),
    ("publications_only", [], PUBLICATIONS[:1], [], 2 + 2 + PUBLISH, 1),
    (
        "isolated",
        [DEFAULT, ISO, ISO_EMPTY],
        [Publication("host:db", 4, None, 27017, "10.90.0.2", 27017, "tcp")],
        ALLOWS,
        # the isolated networks: a jump each, and a chain of ARP, two set lookups and a drop
        5 + 2 + PUBLISH + 10 + 2 + (1 + 2 + 1) + (1 + 2 + 1),
        1 + 3 + 3,  # a publication, the ports of np-iso, its link flows (np-elsewhere: none)
    ),
    ("isolated_v6", [ISO6], [], ALLOWS6, 3 + 2 + PUBLISH + 2 + 1 + (1 + 1 + 2 + 1), 2 + 1),
    (
        "internal",
        [DEFAULT, INTERNAL],
        [],
        [],
        # guards: 1 + 2; the forward chain: 2 drops; postrouting: the internal network keeps
        # its loopback and hairpin rules, without a masquerade
        5 + 2 + PUBLISH + 2 + 4 + 2,
        0,
    ),
    (
        "two_networks",
        [NetSpec("beta", "np-beta", "10.92.0.0/24", 4, False), DEFAULT],
        [],
        [],
        4 + 2 + PUBLISH + 7,
        0,
    ),
]


def golden(name: str) -> Path:
    return GOLDEN / f"nft_{name}.nft"


@pytest.mark.parametrize(
    ("name", "nets", "pubs", "allows", "rules", "elements"), CASES, ids=[c[0] for c in CASES]
)
def test_golden_ruleset(
    name: str,
    nets: list[NetSpec],
    pubs: list[Publication],
    allows: list[Allow],
    rules: int,
    elements: int,
) -> None:
    text = render(nets, pubs, allows)
    path = golden(name)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"ruleset differs from {path}"
    assert rule_count(text) == rules
    assert element_count(text) == elements


def test_every_golden_file_has_a_case() -> None:
    assert {p.name for p in GOLDEN.glob("nft_*.nft")} == {golden(c[0]).name for c in CASES}


def test_an_internal_network_masquerades_nothing_and_forwards_nothing() -> None:
    text = render([DEFAULT, INTERNAL], [], [])
    mark = 'comment "netplumb:network:back"'
    assert f'\t\tiifname "np-back" oifname != "np-back" drop {mark}\n' in text
    assert f'\t\tiifname != "np-back" oifname "np-back" drop {mark}\n' in text
    assert "10.95.0.0/24 oifname" not in text and "fd00:95::/64 oifname" not in text
    assert 'ip saddr 10.89.0.0/16 oifname != "np0" masquerade' in text  # the others keep theirs
    # the same network not internal: a masquerade per family, and no forward chain at all
    plain = NetSpec("back", "np-back", "10.95.0.0/24", 4, False, (), "fd00:95::/64")
    other = render([DEFAULT, plain], [], [])
    assert "chain forward" not in other
    assert 'ip6 saddr fd00:95::/64 oifname != "np-back" masquerade' in other


def test_nothing_to_render_is_empty() -> None:
    assert render([], [], []) == ""
    # allows alone mean nothing: they live on isolated networks
    assert render([], [], ALLOWS) == ""


def test_every_address_is_the_family_wide_rule() -> None:
    # -p 0.0.0.0:80:80 used to render "ip daddr 0.0.0.0", which matches no packet at all
    for family, unspecified in ((4, "0.0.0.0"), (6, "::")):
        ip = "10.89.0.2" if family == 4 else "fd00:89::2"
        explicit = render([], [Publication(WEB, family, unspecified, 80, ip, 80, "tcp")], [])
        implicit = render([], [Publication(WEB, family, None, 80, ip, 80, "tcp")], [])
        assert explicit == implicit
        assert f'\t\t\ttcp . 80 comment "netplumb:{WEB}" : {ip} . 80\n' in explicit
        assert "0.0.0.0 ." not in explicit and ":: ." not in explicit


def test_isolation_chains_of_similar_names_stay_apart() -> None:
    # "a-b" and "a_b" both used to become chain iso_a_b: nft merged the two chains, and the
    # first network's final drop came before the second network's link allows
    nets = [
        NetSpec("a-b", "np-ab1", "10.93.0.0/24", 4, True, ("v1",)),
        NetSpec("a_b", "np-ab2", "10.94.0.0/24", 4, True, ("v2",)),
    ]
    text = render(nets, [], [])
    chains = [line.strip() for line in text.splitlines() if line.startswith("\tchain iso")]
    assert len(chains) == len(set(chains)) == 2
    jumps = [line.split()[-1] for line in text.splitlines() if " jump iso" in line]
    assert [f"\tchain {j} {{" for j in jumps] == [f"\t{c}" for c in chains]


def test_comment_quotes_cannot_end_the_comment() -> None:
    text = render([], [Publication('host:we"b', 4, None, 80, "10.89.0.2", 80, "tcp")], [])
    assert 'comment "netplumb:host:we\'b"' in text


# -------------------------------------------------------------------------------- transaction


def test_transaction_of_nothing_deletes_both_tables() -> None:
    assert transaction("") == (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table bridge {TABLE}\n"
        f"delete table bridge {TABLE}\n"
    )


def test_transaction_replaces_both_tables() -> None:
    text = render([DEFAULT, ISO], [], ALLOWS)
    assert transaction(text) == transaction("") + text
    assert rule_count(transaction(text)) == rule_count(text)


# ------------------------------------------------------------------------------ properties


def rule_lines(text: str) -> list[str]:
    """Rules: the lines of chains, told apart from chain types and closing braces by their
    shape (maps hold no rules, only their type and elements)."""
    out, in_chain = [], False
    for line in text.splitlines():
        word = line.strip().split(" ", 1)[0]
        if word in ("table", "map", "chain"):
            in_chain = word == "chain"
        elif in_chain and word and word not in ("type", "}"):
            out.append(line.strip())
    return out


def is_uncommented_kind(rule: str) -> bool:
    """Jumps, the ARP/neighbour-discovery accepts of isolated networks and the lookups of maps
    and sets (whose elements carry the owners' comments) carry no comment."""
    words = rule.split()
    fixed = rule.startswith(("ether type arp accept", "icmpv6 type {"))
    return fixed or words[-2] in ("jump", "map") or words[-2].startswith("@")


NETS = [
    DEFAULT,
    V6NET,
    ISO,
    ISO_EMPTY,
    ISO6,
    NetSpec("beta", "np-beta", "10.92.0.0/24", 4, False),
]


@given(
    st.lists(st.sampled_from(NETS), unique=True),
    st.lists(st.sampled_from(PUBLICATIONS), unique=True),
    st.lists(st.sampled_from(ALLOWS + ALLOWS6), unique=True),
    st.data(),
)
def test_output_does_not_depend_on_input_order(
    nets: list[NetSpec], pubs: list[Publication], allows: list[Allow], data: st.DataObject
) -> None:
    text = render(nets, pubs, allows)
    shuffled = (
        data.draw(st.permutations(nets), label="nets"),
        data.draw(st.permutations(pubs), label="pubs"),
        data.draw(st.permutations(allows), label="allows"),
    )
    assert render(*shuffled) == text

    rules = rule_lines(text)
    assert rule_count(text) == len(rules)
    elements = [line for line in text.splitlines() if line.startswith("\t\t\t")]
    assert element_count(text) == len(elements)
    assert sum(1 for line in elements if " : " in line) == len(set(pubs))  # the DNAT maps'
    for line in elements:
        assert ' comment "netplumb:' in line, line
    for rule in rules:
        assert ('comment "netplumb' in rule) != is_uncommented_kind(rule), rule
    assert text.count("{") == text.count("}")
    if not nets and not pubs:
        assert text == ""
    else:
        assert text.startswith(f"table inet {TABLE} {{\n") and text.endswith("}\n")
        assert (f"table bridge {TABLE} {{" in text) == any(n.isolation for n in nets)

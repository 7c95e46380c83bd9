"""Names that reach netplumb's nftables text (issue 12: "a bridge name can rewrite the firewall").

The kernel takes '"' in an interface name, and the ruleset quotes names: a bridge named
'b"accept#' turned ``iifname != "<bridge>" ... drop`` into ``iifname != "b" accept``. Two layers
are tested here: the model refuses such a name with one line naming the field, before anything
changes; the renderer refuses it again (defence in depth) and never lets a comment end early.
The property at the end: every name the model accepts changes nothing in the ruleset but the
name itself (compared with a reference name's ruleset, as golden text).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.cni.config import parse_conf, parse_env
from netplumb.cni.types import CniError
from netplumb.errors import InvalidValue
from netplumb.model.names import IFNAME_CHARS, check_ifname
from netplumb.model.network import NETWORK_NAME_MAX, make_network
from netplumb.nft.render import COMMENT_MAX, Allow, NetSpec, Publication, render, rule_count

RULE = "only ASCII letters, digits, '_', '.' and '-' are allowed"
KERNEL_RULE = "contains '/', ':', NUL or white space"

# What nft reads as syntax, or the kernel refuses, each in a name of at most 15 bytes.
HOSTILE = [
    ('b"accept#', RULE),  # the bridge: ends the string, the rest becomes a comment
    ("b;accept", RULE),
    ("b{x}", RULE),
    ("b#x", RULE),
    ("b\\x", RULE),
    ('b\\"', RULE),
    ("b$x", RULE),
    ("b@set", RULE),
    ("np*", RULE),  # a wildcard at the end of a quoted interface name
    ("b'x", RULE),
    ("b\u00e9", RULE),
    ("b\x1bx", RULE),
    ("b x", KERNEL_RULE),
    ("b\nx", KERNEL_RULE),
    ("b\tx", KERNEL_RULE),
]
IDS = [repr(name) for name, _ in HOSTILE]

# the model's reference network, and the renderer's
SUBNET = "10.249.0.0/24"
REF = NetSpec("refnet", "refbr0", SUBNET, 4, True, ("refport0",))


def _rendered(net: NetSpec) -> str:
    pub = Publication("host:web", 4, None, 8080, "10.249.0.2", 80, "tcp")
    link = Allow(net.bridge, "10.249.0.3", "10.249.0.2", 80, "tcp", "link:app:web")
    return render([net], [pub], [link])


# -- the model: one line naming the field, before anything is created -----------------------


@pytest.mark.parametrize(("name", "why"), HOSTILE, ids=IDS)
def test_model_refuses_a_hostile_bridge_name(name: str, why: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        make_network("evil", name, SUBNET, isolation=True)
    assert str(exc.value) == f"invalid bridge name {name!r}: {why}"
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("name", "_why"), HOSTILE, ids=IDS)
def test_model_refuses_a_hostile_network_name(name: str, _why: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        make_network(name, "np-evil", SUBNET)
    assert str(exc.value) == f"invalid network name: {name!r}"


def test_network_name_fits_a_rule_comment() -> None:
    # "netplumb:network:NAME" is the comment of every rule of the network: nft keeps 128 bytes
    longest = "n" * NETWORK_NAME_MAX
    assert make_network(longest, "np-long", SUBNET).name == longest
    assert len(f"netplumb:network:{longest}") == COMMENT_MAX
    with pytest.raises(InvalidValue, match=r"^invalid network name: 'n{20}'\.\.\.: longer than"):
        make_network(longest + "n", "np-long", SUBNET)


@pytest.mark.parametrize(("name", "why"), HOSTILE, ids=IDS)
def test_every_interface_name_field_refuses(name: str, why: str) -> None:
    # one checker behind every front door: pipework's and attach's host interface, -i and -l,
    # the topology file's bridge, ifname and host_if, the LAN's interfaces, CNI's
    for what in ("host interface", "interface name (-i)", "shim name", "master interface"):
        with pytest.raises(InvalidValue) as exc:
            check_ifname(name, what)
        assert str(exc.value) == f"invalid {what} {name!r}: {why}"


def _cni_error(fields: dict[str, Any], **environ: str) -> str:
    doc = {"cniVersion": "1.0.0", "name": "demo", "type": "netplumb-cni", "subnet": SUBNET}
    doc.update(fields)
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee01", "CNI_NETNS": "/run/netns/x"}
    env.update({"CNI_IFNAME": "eth0", **environ})
    with pytest.raises(CniError) as exc:
        parse_conf(json.dumps(doc), parse_env(env))
    return exc.value.msg


def test_cni_config_refuses_hostile_names() -> None:
    assert _cni_error({"bridge": 'b"accept#'}) == (
        f"invalid network config: invalid bridge name 'b\"accept#': {RULE}"
    )
    assert _cni_error({"name": "de;mo"}) == "invalid network config: invalid network name: 'de;mo'"
    assert _cni_error({"mode": "macvlan", "master": "e{th0}"}) == (
        f"invalid network config: invalid master interface 'e{{th0}}': {RULE}"
    )
    with pytest.raises(CniError) as exc:
        parse_env(
            {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "e#0"}
        )
    assert exc.value.msg == f"CNI_IFNAME: invalid interface name 'e#0': {RULE}"


# -- the renderer: refuses what the model should have refused ---------------------------------


@pytest.mark.parametrize(("name", "_why"), HOSTILE, ids=IDS)
def test_renderer_refuses_a_hostile_bridge(name: str, _why: str) -> None:
    net = NetSpec("evil", name, SUBNET, 4, True)
    with pytest.raises(InvalidValue) as exc:
        _rendered(net)
    assert str(exc.value) == (
        f"invalid bridge name {name!r} in the nftables ruleset: "
        f"{RULE} (1 to 15 of them, not '.' or '..')"
    )


@pytest.mark.parametrize(("name", "_why"), HOSTILE, ids=IDS)
def test_renderer_refuses_a_hostile_bridge_port(name: str, _why: str) -> None:
    # the host end of a guest's veth: pipework names it v<ifname>pl<pid>
    net = NetSpec("evil", "np-evil", SUBNET, 4, True, ("vethok", name))
    with pytest.raises(InvalidValue, match=r"^invalid bridge port name .* in the nftables ruleset"):
        _rendered(net)


@pytest.mark.parametrize(("name", "_why"), HOSTILE, ids=IDS)
def test_renderer_refuses_a_hostile_network_name(name: str, _why: str) -> None:
    # pasted unquoted, as the chain iso_NAME
    for isolation in (True, False):
        with pytest.raises(InvalidValue, match=r"^invalid network name .* in the nftables"):
            _rendered(NetSpec(name, "np-evil", SUBNET, 4, isolation))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            NetSpec("evil", "np-evil", "10.0.0.0/8 accept #", 4, False),
            "invalid subnet '10.0.0.0/8 accept #' in the nftables ruleset: not an IP subnet",
        ),
        (
            Publication("host:web", 4, "1.2.3.4 accept", 80, "10.0.0.2", 80, "tcp"),
            "invalid host address '1.2.3.4 accept' in the nftables ruleset: not an IP address",
        ),
        (
            Publication("host:web", 4, None, 80, "10.0.0.2;", 80, "tcp"),
            "invalid container address '10.0.0.2;' in the nftables ruleset: not an IP address",
        ),
        (
            Publication("host:web", 4, None, 80, "10.0.0.2", 80, "tcp accept"),
            "invalid protocol 'tcp accept' in the nftables ruleset: not tcp, udp or sctp",
        ),
        (
            Publication("host:web", 4, None, "80 accept", "10.0.0.2", 80, "tcp"),  # type: ignore[arg-type]
            "invalid host port '80 accept' in the nftables ruleset: not a port number",
        ),
        (
            Allow("np-evil", "10.0.0.3 ", "10.0.0.2", 80, "tcp", "link:a:b"),
            "invalid link source '10.0.0.3 ' in the nftables ruleset: not an IP address",
        ),
    ],
    ids=["subnet", "host_ip", "container_ip", "proto", "host_port", "link_src"],
)
def test_renderer_refuses_other_hostile_values(
    spec: NetSpec | Publication | Allow, message: str
) -> None:
    # records are netplumb's own, but a hand-edited or older one must not write rules either
    net = NetSpec("evil", "np-evil", SUBNET, 4, True, ("vethok",))
    nets = [spec] if isinstance(spec, NetSpec) else [net]
    pubs = [spec] if isinstance(spec, Publication) else []
    allows = [spec] if isinstance(spec, Allow) else []
    with pytest.raises(InvalidValue) as exc:
        render(nets, pubs, allows)
    assert str(exc.value) == message


# -- comments: an owner id cannot end its comment -------------------------------------------


@pytest.mark.parametrize(
    ("owner", "shown"),
    [
        ('netns:a"b:1', "netns:a'b:1"),  # a netns guest's name is any file name
        ('netns:a\\"; accept #:1', "netns:a?'; accept #:1"),
        ("netns:a\nb\r\x00:1", "netns:a?b??:1"),
        ("netns:r\u00e9seau:1", "netns:r?seau:1"),
        ("netns:" + "x" * 200, ("netplumb:netns:" + "x" * 200)[:COMMENT_MAX]),
    ],
    ids=["quote", "backslash-quote", "control", "non-ascii", "too-long"],
)
def test_an_owner_changes_nothing_but_its_comment(owner: str, shown: str) -> None:
    # A comment matches no packet: an odd owner is shown altered rather than refused (refusing
    # would let one guest stop every later ruleset rewrite). The rest is the reference's text.
    def text(who: str) -> str:
        pub = Publication(who, 4, None, 8080, "10.249.0.2", 80, "tcp")
        link = Allow("refbr0", "10.249.0.3", "10.249.0.2", 80, "tcp", who)
        return render([REF], [pub], [link])

    ref = text("OWNER")
    got = text(owner)
    expected = ref.replace('"netplumb:OWNER"', '"' + ("netplumb:" + shown)[:COMMENT_MAX] + '"')
    if shown.startswith("netplumb:"):  # the too-long case: cut after the prefix was added
        expected = ref.replace('"netplumb:OWNER"', f'"{shown}"')
    assert got == expected
    assert rule_count(got) == rule_count(ref)


# -- the property: an accepted name changes nothing but itself --------------------------------

IFNAME_OR_HOSTILE = st.one_of(
    st.text(alphabet=sorted(IFNAME_CHARS), min_size=1, max_size=15),
    st.text(alphabet=sorted(IFNAME_CHARS) + list("\"\\;#{}$@* \n'\u00e9"), max_size=15),
    st.text(max_size=16),
)


def _accepted_ifname(name: str) -> bool:
    try:
        check_ifname(name, "bridge name")
    except InvalidValue:
        return False
    return True


def _accepted_network(name: str) -> bool:
    try:
        make_network(name, "np-x", SUBNET)
    except InvalidValue:
        return False
    return True


@given(IFNAME_OR_HOSTILE, IFNAME_OR_HOSTILE, IFNAME_OR_HOSTILE)
def test_an_accepted_name_changes_nothing_but_itself(bridge: str, port: str, net: str) -> None:
    """For names the model accepts, the ruleset is the reference's with the name put in place
    of the reference name: same lines, same quotes, same rules (golden comparison). Names it
    refuses are refused by the renderer too."""
    ok = _accepted_ifname(bridge) and _accepted_ifname(port) and _accepted_network(net)
    spec = NetSpec(net, bridge, SUBNET, 4, True, (port,))
    if not ok:
        with pytest.raises(InvalidValue):
            _rendered(spec)
        return
    ref = _rendered(REF)
    expected = (
        ref.replace('"refbr0"', f'"{bridge}"')
        .replace('"refport0"', f'"{port}"')
        .replace("iso_refnet", f"iso_{net}")
        .replace("ports_refnet", f"ports_{net}")
        .replace("links_refnet", f"links_{net}")
        .replace("netplumb:network:refnet", f"netplumb:network:{net}")
    )
    got = _rendered(spec)
    assert got == expected
    assert rule_count(got) == rule_count(ref)
    # and, read as nft tokens: with each quoted string and the chain and set names blanked, every
    # line is the reference's (no verdict, match or comment appeared or went)
    assert [_skeleton(line) for line in got.splitlines()] == [
        _skeleton(line) for line in ref.splitlines()
    ]


def _skeleton(line: str) -> str:
    return re.sub(r"(iso|ports|links)_\S+", r"\1_N", re.sub(r'"[^"]*"', '"S"', line))

"""The attach planner: golden plans for representative pipework command lines, its refusals,
and the ordering every plan keeps.

Golden files live in ``tests/unit/golden/``; after a reviewed change of the planner, rewrite them
with ``NETPLUMB_UPDATE_GOLDEN=1 pytest tests/unit/test_plan_attach.py`` and read the diff.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.errors import Conflict, InvalidValue, NetplumbError, NotSupported
from netplumb.model.addresses import parse_address_spec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.model.mac import Mac
from netplumb.model.names import IFNAMSIZ
from netplumb.pipework.grammar import parse
from netplumb.plan.actions import (
    Action,
    AddAddress,
    AddHostRoute,
    Announce,
    CreateBridge,
    CreateMacvlan,
    CreateVeth,
    GuestLinkUp,
    MoveIntoGuest,
    ReplaceDefault,
    StartDhcp,
)
from netplumb.plan.attach import HostLink, Observed, plan_attach

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("NETPLUMB_UPDATE_GOLDEN"))

# A Docker guest as the runtime resolver describes it.
OWNER, SHORT, NAME = "docker:0123456789ab", "01234567", "web1"

BR0 = HostLink("br0", is_bridge=True, mtu=1500)
BR0_JUMBO = HostLink("br0", is_bridge=True, mtu=9000)
ETH0 = HostLink("eth0", is_bridge=False, mtu=1500)
ETH2 = HostLink("eth2", is_bridge=False, mtu=1500)


def request(line: str) -> AttachRequest:
    req = parse(shlex.split(line))
    assert isinstance(req, AttachRequest)
    return req


def describe(obs: Observed) -> str:
    host = obs.host_link
    if host is None:
        seen = "host interface: missing"
    else:
        kind = "bridge" if host.is_bridge else "not a bridge"
        seen = f"host interface: {host.name} ({kind}, mtu {host.mtu})"
    if obs.dhcp_client:
        seen += f"; DHCP client: {obs.dhcp_client}"
    return seen


# (golden file, pipework command line, what the kernel holds, guest: owner/short/name)
CASES: list[tuple[str, str, Observed, tuple[str, str, str]]] = [
    ("bridge_gateway", "br0 web1 10.0.0.2/24@10.0.0.1", Observed(BR0), (OWNER, SHORT, NAME)),
    ("bridge_created", "br1 -i eth2 web1 192.168.4.25/20", Observed(None), (OWNER, SHORT, NAME)),
    (
        "bridge_dual_stack",
        "br0 -l hostapp1 web1 10.0.0.2/24@10.0.1.1,fd00::2/64@fe80::1 U:web1",
        Observed(BR0_JUMBO),
        (OWNER, SHORT, NAME),
    ),
    ("bridge_ipv6", "br0 -a 6 web1 fd00::2/64@fd00::1", Observed(BR0), (OWNER, SHORT, NAME)),
    ("bridge_no_address", "br0 web1 0/0", Observed(BR0), (OWNER, SHORT, NAME)),
    (
        "bridge_long_ifname",
        "br0 -i verylongifname web1 10.0.0.2/24",
        Observed(BR0),
        (OWNER, SHORT, NAME),
    ),
    ("bridge_pid_guest", "br0 4242 10.0.0.2/24", Observed(BR0), ("pid:4242:98765", "4242", "4242")),
    (
        "bridge_dhcp_args",
        "br0 web1 'dhcp:-f -q'",
        Observed(BR0, dhcp_client="udhcpc"),
        (OWNER, SHORT, NAME),
    ),
    (
        "macvlan_gateway_mac",
        "eth0 web1 10.1.1.234/24@10.1.1.254 26:2e:71:98:60:8f",
        Observed(ETH0),
        (OWNER, SHORT, NAME),
    ),
    (
        "macvlan_by_host_mac",
        "mac:52:54:00:12:34:56 -i eth3 web1 10.0.0.3/24",
        Observed(HostLink("eth0", is_bridge=False, mtu=9000)),
        (OWNER, SHORT, NAME),
    ),
    (
        "macvlan_dhclient",
        "eth0 web1 dhclient fa:de:b0:99:52:1c",
        Observed(ETH0, dhcp_client="dhclient"),
        (OWNER, SHORT, NAME),
    ),
    (
        "direct_phys",
        "--direct-phys eth2 web1 10.0.0.5/24@10.0.0.1 26:2e:71:98:60:8f",
        Observed(ETH2),
        (OWNER, SHORT, NAME),
    ),
]


def render(line: str, obs: Observed, guest: tuple[str, str, str]) -> str:
    owner, short, name = guest
    actions = plan_attach(request(line), obs, owner=owner, guest_short=short, guest_name=name)
    header = [f"# pipework {line}", f"# {describe(obs)}; guest {name} ({owner})"]
    return "\n".join(header + [str(a) for a in actions]) + "\n"


@pytest.mark.parametrize(("golden", "line", "obs", "guest"), CASES, ids=[c[0] for c in CASES])
def test_golden_plan(golden: str, line: str, obs: Observed, guest: tuple[str, str, str]) -> None:
    path = GOLDEN / f"attach_{golden}.txt"
    text = render(line, obs, guest)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"plan differs from {path}"


def test_every_golden_file_has_a_case() -> None:
    names = {f"attach_{c[0]}.txt" for c in CASES}
    assert {p.name for p in GOLDEN.glob("attach_*.txt")} == names


def plan(req: AttachRequest, obs: Observed) -> list[Action]:
    return plan_attach(req, obs, owner=OWNER, guest_short=SHORT, guest_name=NAME)


def test_plan_objects_carry_the_owner_mark_and_fields() -> None:
    actions = plan(request("br0 web1 10.0.0.2/24 U:web1"), Observed(BR0_JUMBO))
    veth = actions[0]
    assert veth == CreateVeth(
        "veth1pl01234567", "eth1", "br0", 9000, Mac.derived("web1").octets, "netplumb:" + OWNER
    )
    macvlan = plan(request("eth0 web1 10.0.0.2/24"), Observed(ETH0))[0]
    assert macvlan == CreateMacvlan("eth0", "eth1", 1500, None, "netplumb:" + OWNER)
    moved = plan(request("--direct-phys eth2 -i eth5 web1 0/0"), Observed(ETH2))[0]
    assert moved == MoveIntoGuest("eth2", "eth5", None, "netplumb:" + OWNER)


def test_create_bridge_flag_creates_any_missing_name() -> None:
    req = AttachRequest(
        NAME, "lan0", addresses=(parse_address_spec("10.0.0.2/24"),), create_bridge=True
    )
    actions = plan(req, Observed(None))
    assert actions[0] == CreateBridge("lan0")
    assert isinstance(actions[1], CreateVeth) and actions[1].mtu == 1500


def test_dhcp_client_runs_with_the_guest_name_as_hostname() -> None:
    req = request("br0 web1 udhcpc:-f")
    actions = plan(req, Observed(BR0, dhcp_client="udhcpc"))
    assert actions[-1] == StartDhcp("eth1", "udhcpc", ("-f",), NAME)


# (id, request, observed, exception type, message)
REFUSALS: list[tuple[str, AttachRequest, Observed, type[NetplumbError], str]] = [
    (
        "guest has the ifname",
        request("br0 web1 10.0.0.2/24"),
        Observed(BR0, guest_has_ifname=True),
        Conflict,
        'guest web1 already has an interface "eth1": choose another name with -i',
    ),
    (
        "host name taken",
        request("br0 web1 10.0.0.2/24"),
        Observed(BR0, host_name_taken=True),
        Conflict,
        'host interface name "veth1pl01234567" is taken: choose another with -l',
    ),
    (
        "-l name taken",
        request("br0 -l hostapp1 web1 10.0.0.2/24"),
        Observed(BR0, host_name_taken=True),
        Conflict,
        'host interface name "hostapp1" is taken: choose another with -l',
    ),
    (
        "vlan on a bridge",
        request("br0 web1 10.0.0.2/24 @10"),
        Observed(BR0, vlan_supported=True),
        NotSupported,
        "VLAN configuration is not supported for a Linux bridge",
    ),
    (
        "vlan without 8021q",
        request("eth0 web1 10.0.0.2/24 @10"),
        Observed(ETH0),
        NotSupported,
        "cannot use VLAN 10: this kernel has no 802.1q support (module 8021q)",
    ),
    (
        "vlan not implemented",
        request("eth0 web1 10.0.0.2/24 26:2e:71:98:60:8f@10"),
        Observed(ETH0, vlan_supported=True),
        NotSupported,
        "VLAN subinterfaces are not implemented by netplumb yet",
    ),
    (
        "no dhcp client",
        request("br0 web1 dhcp"),
        Observed(BR0),
        NotSupported,
        "DHCP asked for, but no DHCP client is installed: udhcpc (busybox), dhclient or dhcpcd",
    ),
    (
        "named dhcp client missing",
        request("br0 web1 dhclient"),
        Observed(BR0),
        NotSupported,
        "DHCP asked for, but no DHCP client is installed: dhclient",
    ),
    (
        "missing interface, not br*",
        request("eth9 web1 10.0.0.2/24"),
        Observed(None),
        InvalidValue,
        'host interface "eth9" does not exist (only missing names starting with "br" are '
        "created as bridges)",
    ),
    (
        "no interface has the MAC",
        request("mac:52:54:00:12:34:56 web1 10.0.0.2/24"),
        Observed(None),
        InvalidValue,
        "no host interface has the MAC address 52:54:00:12:34:56",
    ),
    (
        "-l on a macvlan",
        request("eth0 -l hostapp1 web1 10.0.0.2/24"),
        Observed(ETH0),
        InvalidValue,
        "-l names the host end of a veth; a macvlan has no host end",
    ),
    (
        "--direct-phys on a missing interface",
        request("--direct-phys eth2 web1 10.0.0.5/24"),
        Observed(None),
        InvalidValue,
        "host interface eth2 does not exist",
    ),
    (
        "--direct-phys by a MAC nobody has",
        request("--direct-phys mac:52:54:00:12:34:56 web1 10.0.0.5/24"),
        Observed(None),
        InvalidValue,
        "host interface mac:52:54:00:12:34:56 does not exist",
    ),
    (
        "--direct-phys on a bridge",
        request("--direct-phys br0 web1 10.0.0.5/24"),
        Observed(BR0),
        InvalidValue,
        "--direct-phys moves a physical interface, and br0 is a bridge",
    ),
]


@pytest.mark.parametrize(
    ("req", "obs", "kind", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(
    req: AttachRequest, obs: Observed, kind: type[NetplumbError], message: str
) -> None:
    with pytest.raises(NetplumbError) as exc:
        plan(req, obs)
    assert type(exc.value) is kind
    assert str(exc.value) == message


# ------------------------------------------------------------------------------ properties

SPECS = st.sampled_from(
    [
        "10.0.0.2/24",
        "10.0.0.2/24@10.0.0.1",
        "10.0.0.2/24@192.168.0.1",
        "10.0.5.2/16",
        "fd00::2/64",
        "fd00::2/64@fd00::1",
        "fd00::2/64@fe80::1",
        "fd01::7/48",
        "0/0",
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[AttachRequest, Observed]:
    host = draw(
        st.sampled_from([None, BR0, BR0_JUMBO, ETH0, HostLink("eth1", is_bridge=False, mtu=1400)])
    )
    direct = host is not None and not host.is_bridge and draw(st.booleans())
    texts = draw(st.lists(SPECS, max_size=3, unique=True))
    specs = tuple(parse_address_spec(t) for t in texts)
    # At most one gateway per family, as the grammar guarantees.
    seen: set[int] = set()
    kept = []
    for spec in specs:
        if spec.gateway is not None:
            if spec.gateway.version in seen:
                continue
            seen.add(spec.gateway.version)
        kept.append(spec)
    dhcp = draw(st.one_of(st.none(), st.just(DhcpSpec(None, ("-f",)))))
    req = AttachRequest(
        NAME,
        host.name if host else draw(st.sampled_from(["br1", "br-lan"])),
        guest_ifname=draw(st.sampled_from(["eth1", "eth2", "net0", "verylongifname"])),
        host_ifname=None
        if direct or (host and not host.is_bridge)
        else draw(st.sampled_from([None, "hostapp1"])),
        addresses=tuple(kept),
        dhcp=dhcp,
        mac=draw(st.one_of(st.none(), st.just(Mac.derived("x")))),
        direct_phys=direct,
    )
    return req, Observed(host, dhcp_client="udhcpc" if dhcp else None)


LINKS = (CreateVeth, CreateMacvlan, MoveIntoGuest)


@given(requests())
def test_plans_keep_their_order(case: tuple[AttachRequest, Observed]) -> None:
    req, obs = case
    actions = plan(req, obs)
    assert actions == plan(req, obs)  # deterministic
    kinds = [type(a) for a in actions]

    # A bridge only when it is missing, then exactly one link, first of all guest actions.
    start = 1 if kinds[0] is CreateBridge else 0
    assert (kinds[0] is CreateBridge) == (obs.host_link is None)
    assert kinds[start] in LINKS
    assert sum(k in LINKS for k in kinds) == 1
    link = actions[start]
    assert isinstance(link, CreateVeth | CreateMacvlan | MoveIntoGuest)
    assert link.owner == "netplumb:" + OWNER
    assert link.guest_name == req.guest_ifname
    if isinstance(link, CreateVeth):
        assert len(link.host_name.encode()) < IFNAMSIZ
        assert link.mtu == (obs.host_link.mtu if obs.host_link else 1500)

    # Addresses while the link is down, one announcement, up, then routes, then DHCP.
    up = kinds.index(GuestLinkUp)
    assert kinds.count(GuestLinkUp) == 1
    addresses = [a for a in actions if isinstance(a, AddAddress)]
    assert addresses == [
        AddAddress(req.guest_ifname, s.interface) for s in req.addresses if s.interface
    ]
    assert all(i < up for i, kind in enumerate(kinds) if kind is AddAddress)
    has_v4 = any(s.interface and s.interface.version == 4 for s in req.addresses)
    assert kinds.count(Announce) == int(has_v4)
    if has_v4:
        assert kinds.index(Announce) == up - 1
    after = actions[up + 1 :]
    gateways = [s for s in req.addresses if s.gateway is not None]
    expected_routes: list[Action] = []
    for spec in gateways:
        assert spec.gateway is not None
        if not spec.gateway_on_link:
            expected_routes.append(AddHostRoute(req.guest_ifname, spec.gateway))
        expected_routes.append(ReplaceDefault(req.guest_ifname, spec.gateway))
    dhcp = [StartDhcp(req.guest_ifname, "udhcpc", ("-f",), NAME)] if req.dhcp else []
    assert after == expected_routes + dhcp
    # Every guest-side action is about the requested interface.
    for action in actions[start + 1 :]:
        assert getattr(action, "ifname", req.guest_ifname) == req.guest_ifname


@pytest.mark.parametrize(
    ("client", "rendered"),
    [
        ("udhcpc", "GUEST: udhcpc -i eth1 -f -q (kept running to renew the lease)"),
        ("dhclient", "GUEST: dhclient -f -q eth1 (kept running to renew the lease)"),
        ("dhcpcd", "GUEST: dhcpcd -f -q eth1 (kept running to renew the lease)"),
    ],
)
def test_start_dhcp_renders_each_clients_command_line(client: str, rendered: str) -> None:
    # dhclient's and dhcpcd's "-i" mean something else: the dry run used to print "dhclient -i".
    assert str(StartDhcp("eth1", client, ("-f", "-q"), NAME)) == rendered

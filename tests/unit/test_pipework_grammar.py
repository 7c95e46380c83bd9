"""pipework's command-line grammar: every form of the reference, every error, and properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netplumb.errors import InvalidValue, NetplumbError, UsageError
from netplumb.model.addresses import AddressSpec, parse_address_spec
from netplumb.model.attach import AttachRequest, DhcpSpec, GuestCommand, WaitRequest
from netplumb.model.mac import Mac
from netplumb.pipework.grammar import USAGE, parse


def addrs(*texts: str) -> tuple[AddressSpec, ...]:
    return tuple(parse_address_spec(t) for t in texts)


def attach(
    guest: str = "web1",
    host_if: str | None = "br1",
    guest_ifname: str = "eth1",
    host_ifname: str | None = None,
    host_if_mac: str | None = None,
    addresses: tuple[AddressSpec, ...] = addrs("192.168.1.1/24"),
    dhcp: DhcpSpec | None = None,
    mac: str | None = None,
    vlan: int | None = None,
    direct_phys: bool = False,
) -> AttachRequest:
    return AttachRequest(
        guest=guest,
        host_if=host_if,
        guest_ifname=guest_ifname,
        host_ifname=host_ifname,
        host_if_mac=Mac.parse(host_if_mac) if host_if_mac else None,
        addresses=addresses,
        dhcp=dhcp,
        mac=Mac.parse(mac) if mac else None,
        vlan=vlan,
        direct_phys=direct_phys,
    )


# The forms of the reference (and of pipework's README), one line each.
ATTACH_FORMS: list[tuple[str, AttachRequest]] = [
    # <hostif>: a bridge, a physical interface: the grammar does not tell them apart.
    ("br1 web1 192.168.1.1/24", attach()),
    ("eth2 web1 50.19.169.157/24", attach(host_if="eth2", addresses=addrs("50.19.169.157/24"))),
    ("ovsbr0 web1 192.168.1.1/24", attach(host_if="ovsbr0")),
    # mac:<mac of host interface>
    (
        "mac:52:54:00:12:34:56 web1 192.168.1.1/24",
        attach(host_if=None, host_if_mac="52:54:00:12:34:56"),
    ),
    (
        "mac:52-54-00-12-34-56 -i eth2 web1 192.168.1.1/24",
        attach(host_if=None, host_if_mac="52:54:00:12:34:56", guest_ifname="eth2"),
    ),
    # -i, -l, -a 4|6, in any order before the guest
    ("br1 -i eth2 web1 192.168.1.1/24", attach(guest_ifname="eth2")),
    ("br1 -i ib0 web1 192.168.1.1/24", attach(guest_ifname="ib0")),
    ("br1 -l hostapp1 web1 192.168.1.1/24", attach(host_ifname="hostapp1")),
    (
        "br1 -i eth2 -l hostapp1 web1 192.168.1.1/24",
        attach(guest_ifname="eth2", host_ifname="hostapp1"),
    ),
    (
        "br1 -l hostapp1 -i eth2 web1 192.168.1.1/24",
        attach(guest_ifname="eth2", host_ifname="hostapp1"),
    ),
    ("br1 -a 4 web1 192.168.1.1/24", attach()),
    ("br1 -a 6 web1 fd00::2/64", attach(addresses=addrs("fd00::2/64"))),
    (
        "br1 -i eth2 -l hostapp1 -a 6 web1 fd00::2/64@fd00::1",
        attach(guest_ifname="eth2", host_ifname="hostapp1", addresses=addrs("fd00::2/64@fd00::1")),
    ),
    # -i after the guest is still an option (pipework needs it first; we do not mind)
    ("br1 web1 -i eth2 192.168.1.1/24", attach(guest_ifname="eth2")),
    # ip/prefix@gw, an off-link gateway, a list of addresses, 0/0
    ("br1 web1 192.168.4.25/20", attach(addresses=addrs("192.168.4.25/20"))),
    (
        "br1 web1 192.168.4.25/20@192.168.4.1",
        attach(addresses=addrs("192.168.4.25/20@192.168.4.1")),
    ),
    (
        "eth0 web1 10.1.1.234/24@10.1.2.254",
        attach(host_if="eth0", addresses=addrs("10.1.1.234/24@10.1.2.254")),
    ),
    ("br1 web1 10.0.0.7/32", attach(addresses=addrs("10.0.0.7/32"))),
    ("br1 web1 fd00::2/64@fe80::1", attach(addresses=addrs("fd00::2/64@fe80::1"))),
    (
        "br1 web1 10.0.0.2/24@10.0.0.1,fd00::2/64@fd00::1",
        attach(addresses=addrs("10.0.0.2/24@10.0.0.1", "fd00::2/64@fd00::1")),
    ),
    (
        "br1 web1 10.0.0.2/24@10.0.0.1,10.0.1.2/24",
        attach(addresses=addrs("10.0.0.2/24@10.0.0.1", "10.0.1.2/24")),
    ),
    ("br1 web1 0/0", attach(addresses=(AddressSpec(None),))),
    ("br1 web1 0.0.0.0/0", attach(addresses=(AddressSpec(None),))),
    # dhcp, dhcp:args, a named client with or without args
    ("br1 web1 dhcp", attach(addresses=(), dhcp=DhcpSpec())),
    ("br1 web1 dhcp:", attach(addresses=(), dhcp=DhcpSpec())),
    ("eth1 web1 dhcp:-f", attach(host_if="eth1", addresses=(), dhcp=DhcpSpec(None, ("-f",)))),
    ("br1 web1 udhcpc", attach(addresses=(), dhcp=DhcpSpec("udhcpc"))),
    ("br1 web1 udhcpc:-f", attach(addresses=(), dhcp=DhcpSpec("udhcpc", ("-f",)))),
    ("br1 web1 dhclient", attach(addresses=(), dhcp=DhcpSpec("dhclient"))),
    ("br1 web1 dhcpcd", attach(addresses=(), dhcp=DhcpSpec("dhcpcd"))),
    # mac, U:text, @vlan, mac@vlan
    (
        "eth0 web1 192.168.1.2/24 26:2e:71:98:60:8f",
        attach(host_if="eth0", addresses=addrs("192.168.1.2/24"), mac="26:2e:71:98:60:8f"),
    ),
    (
        "br0 web1 dhcp fa:de:b0:99:52:1c",
        attach(host_if="br0", addresses=(), dhcp=DhcpSpec(), mac="fa:de:b0:99:52:1c"),
    ),
    ("br1 web1 192.168.1.1/24 U:web1", attach(mac="02:66:ee:60:6d:50")),
    ("ovsbr0 web1 dhcp @10", attach(host_if="ovsbr0", addresses=(), dhcp=DhcpSpec(), vlan=10)),
    ("eth0 web1 192.168.1.1/24 @4094", attach(host_if="eth0", vlan=4094)),
    (
        "eth0 web1 192.168.1.1/24 26:2e:71:98:60:8f@1",
        attach(host_if="eth0", mac="26:2e:71:98:60:8f", vlan=1),
    ),
    ("eth0 web1 192.168.1.1/24 U:web1@20", attach(host_if="eth0", mac="U:web1", vlan=20)),
    ("br1 web1 192.168.1.1/24 ''", attach()),
    # the guest: a netplumb host, a netns name, a PID, a path, a container id
    ("br1 4242 192.168.1.1/24", attach(guest="4242")),
    ("br1 /run/netns/blue 192.168.1.1/24", attach(guest="/run/netns/blue")),
    ("br1 0123456789ab 192.168.1.1/24", attach(guest="0123456789ab")),
    # --direct-phys
    (
        "--direct-phys eth2 web1 10.0.0.5/24",
        attach(host_if="eth2", addresses=addrs("10.0.0.5/24"), direct_phys=True),
    ),
    (
        "--direct-phys eth2 -i eth1 web1 10.0.0.5/24@10.0.0.1 26:2e:71:98:60:8f",
        attach(
            host_if="eth2",
            addresses=addrs("10.0.0.5/24@10.0.0.1"),
            mac="26:2e:71:98:60:8f",
            direct_phys=True,
        ),
    ),
    (
        "--direct-phys mac:52:54:00:12:34:56 web1 dhcp",
        attach(
            host_if=None,
            host_if_mac="52:54:00:12:34:56",
            addresses=(),
            dhcp=DhcpSpec(),
            direct_phys=True,
        ),
    ),
]


def split(line: str) -> list[str]:
    return ["" if word == "''" else word for word in line.split(" ")]


@pytest.mark.parametrize(("line", "expected"), ATTACH_FORMS, ids=[f[0] for f in ATTACH_FORMS])
def test_attach_forms(line: str, expected: AttachRequest) -> None:
    assert parse(split(line)) == expected


def test_dhcp_args_are_split_on_white_space() -> None:
    req = parse(["br1", "web1", "dhcp:-f  -q\t-x hostname:web1"])
    assert isinstance(req, AttachRequest)
    assert req.dhcp == DhcpSpec(None, ("-f", "-q", "-x", "hostname:web1"))


GUEST_COMMANDS: list[tuple[list[str], GuestCommand]] = [
    (
        ["route", "web1", "add", "default", "via", "10.0.0.1"],
        GuestCommand("route", "web1", ("add", "default", "via", "10.0.0.1")),
    ),
    (
        ["rule", "web1", "add", "from", "10.0.0.2", "table", "100"],
        GuestCommand("rule", "web1", ("add", "from", "10.0.0.2", "table", "100")),
    ),
    (
        ["tc", "web1", "qdisc", "add", "dev", "eth1", "root", "netem", "delay", "100ms"],
        GuestCommand(
            "tc", "web1", ("qdisc", "add", "dev", "eth1", "root", "netem", "delay", "100ms")
        ),
    ),
    # Arguments pass through untouched, options included.
    (["route", "4242", "-6", "show"], GuestCommand("route", "4242", ("-6", "show"))),
]


@pytest.mark.parametrize(
    ("argv", "expected"), GUEST_COMMANDS, ids=[" ".join(c[0]) for c in GUEST_COMMANDS]
)
def test_guest_commands(argv: list[str], expected: GuestCommand) -> None:
    assert parse(argv) == expected


WAITS: list[tuple[list[str], WaitRequest]] = [
    (["--wait"], WaitRequest("eth1", 60.0)),
    (["--wait", "-i", "eth2"], WaitRequest("eth2", 60.0)),
    (["--wait", "-i", "ib0"], WaitRequest("ib0", 60.0)),
    (["--wait", "--timeout", "5"], WaitRequest("eth1", 5.0)),
    (["--wait", "-t", "0.5"], WaitRequest("eth1", 0.5)),
    (["--wait", "-i", "eth2", "--timeout", "2.5"], WaitRequest("eth2", 2.5)),
    (["--wait", "--timeout", "10", "-i", "eth3"], WaitRequest("eth3", 10.0)),
]


@pytest.mark.parametrize(("argv", "expected"), WAITS, ids=[" ".join(w[0]) for w in WAITS])
def test_wait(argv: list[str], expected: WaitRequest) -> None:
    assert parse(argv) == expected


# ------------------------------------------------------------------------------- errors

LONG = "x" * 16
NAME_TOO_LONG = f"{LONG!r}: longer than 15 bytes"

# (argv, exception type, the whole message). Every message is one line.
ERRORS: list[tuple[str, list[str], type[NetplumbError], str]] = [
    ("no arguments", [], UsageError, "pipework: missing arguments (see pipework --help)"),
    ("-h", ["-h"], UsageError, "pipework: missing arguments (see pipework --help)"),
    ("--help", ["--help"], UsageError, "pipework: missing arguments (see pipework --help)"),
    ("missing guest", ["br1"], UsageError, "pipework: missing <guest> (see pipework --help)"),
    (
        "missing guest after options",
        ["br1", "-i", "eth2"],
        UsageError,
        "pipework: missing <guest> (see pipework --help)",
    ),
    (
        "missing ip",
        ["br1", "web1"],
        UsageError,
        "pipework: missing <ipaddr>/<subnet> or dhcp after guest web1",
    ),
    (
        "missing ip with options",
        ["br1", "-i", "eth2", "web1"],
        UsageError,
        "pipework: missing <ipaddr>/<subnet> or dhcp after guest web1",
    ),
    (
        "missing prefix",
        ["br1", "web1", "192.168.1.1"],
        InvalidValue,
        "invalid address 192.168.1.1: it needs a prefix length, maybe you meant 192.168.1.1/24",
    ),
    (
        "missing prefix with gateway",
        ["br1", "web1", "192.168.1.1@192.168.1.254"],
        InvalidValue,
        "invalid address 192.168.1.1: it needs a prefix length, maybe you meant 192.168.1.1/24",
    ),
    (
        "missing prefix v6",
        ["br1", "web1", "fd00::2"],
        InvalidValue,
        "invalid address fd00::2: it needs a prefix length, maybe you meant fd00::2/64",
    ),
    ("not an address", ["br1", "web1", "web2"], InvalidValue, "invalid IP address: web2"),
    (
        "empty address in a list",
        ["br1", "web1", "10.0.0.2/24,"],
        InvalidValue,
        "invalid IP address: ",
    ),
    (
        "bad prefix",
        ["br1", "web1", "10.0.0.2/33"],
        InvalidValue,
        "invalid prefix length /33 for 10.0.0.2",
    ),
    (
        "bad prefix v6",
        ["br1", "web1", "fd00::2/129"],
        InvalidValue,
        "invalid prefix length /129 for fd00::2",
    ),
    (
        "prefix not a number",
        ["br1", "web1", "10.0.0.2/abc"],
        InvalidValue,
        "invalid prefix length in 10.0.0.2/abc",
    ),
    (
        "network address",
        ["br1", "web1", "10.0.0.0/24"],
        InvalidValue,
        "invalid address 10.0.0.0/24: the subnet's network or broadcast address",
    ),
    (
        "bad MAC",
        ["br1", "web1", "10.0.0.2/24", "26:2e:71:98:60"],
        InvalidValue,
        "invalid MAC address: 26:2e:71:98:60",
    ),
    (
        "bad MAC with vlan",
        ["br1", "web1", "10.0.0.2/24", "26:2e:71:98:60:zz@10"],
        InvalidValue,
        "invalid MAC address: 26:2e:71:98:60:zz",
    ),
    (
        "multicast MAC",
        ["br1", "web1", "10.0.0.2/24", "01:00:5e:00:00:01"],
        InvalidValue,
        "invalid MAC address: 01:00:5e:00:00:01: a multicast address cannot be assigned",
    ),
    (
        "bad host MAC",
        ["mac:52:54:00:12:34", "web1", "10.0.0.2/24"],
        InvalidValue,
        "invalid MAC address: 52:54:00:12:34",
    ),
    (
        "empty U:",
        ["br1", "web1", "dhcp", "U:"],
        InvalidValue,
        "invalid MAC address: U: needs a text to derive it from",
    ),
    ("VLAN 0", ["eth0", "web1", "dhcp", "@0"], UsageError, "pipework: invalid VLAN id: 0 (1-4094)"),
    (
        "VLAN 4095",
        ["eth0", "web1", "dhcp", "@4095"],
        UsageError,
        "pipework: invalid VLAN id: 4095 (1-4094)",
    ),
    (
        "VLAN not a number",
        ["eth0", "web1", "dhcp", "@ten"],
        UsageError,
        "pipework: invalid VLAN id: ten (1-4094)",
    ),
    (
        "VLAN negative",
        ["eth0", "web1", "dhcp", "@-1"],
        UsageError,
        "pipework: invalid VLAN id: -1 (1-4094)",
    ),
    (
        "VLAN empty",
        ["eth0", "web1", "dhcp", "26:2e:71:98:60:8f@"],
        UsageError,
        "pipework: invalid VLAN id: <empty> (1-4094)",
    ),
    # str.isdigit() is true for '²': int() then raised a bare ValueError.
    (
        "VLAN superscript",
        ["eth0", "web1", "dhcp", "@\u00b2"],
        UsageError,
        "pipework: invalid VLAN id: \u00b2 (1-4094)",
    ),
    (
        "VLAN arabic digits",
        ["eth0", "web1", "dhcp", "@\u0661\u0660"],
        UsageError,
        "pipework: invalid VLAN id: \u0661\u0660 (1-4094)",
    ),
    (
        "-a 6 with IPv4",
        ["br1", "-a", "6", "web1", "10.0.0.2/24"],
        InvalidValue,
        "invalid address 10.0.0.2/24: not an IPv6 address (-a 6)",
    ),
    (
        "-a 4 with IPv6",
        ["br1", "-a", "4", "web1", "fd00::2/64"],
        InvalidValue,
        "invalid address fd00::2/64: not an IPv4 address (-a 4)",
    ),
    (
        "-a 4 with a mixed list",
        ["br1", "-a", "4", "web1", "10.0.0.2/24,fd00::2/64"],
        InvalidValue,
        "invalid address fd00::2/64: not an IPv4 address (-a 4)",
    ),
    (
        "-a 5",
        ["br1", "-a", "5", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: invalid address family (-a): 5 (4 or 6)",
    ),
    (
        "-a inet6",
        ["br1", "-a", "inet6", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: invalid address family (-a): inet6 (4 or 6)",
    ),
    (
        "host interface too long",
        [LONG, "web1", "10.0.0.2/24"],
        InvalidValue,
        f"invalid host interface {NAME_TOO_LONG}",
    ),
    (
        "-i too long",
        ["br1", "-i", LONG, "web1", "10.0.0.2/24"],
        InvalidValue,
        f"invalid container interface name (-i) {NAME_TOO_LONG}",
    ),
    (
        "-l too long",
        ["br1", "-l", LONG, "web1", "10.0.0.2/24"],
        InvalidValue,
        f"invalid local interface name (-l) {NAME_TOO_LONG}",
    ),
    (
        "-i too long in bytes",
        ["br1", "-i", "\u00e9" * 8, "web1", "10.0.0.2/24"],
        InvalidValue,
        f"invalid container interface name (-i) {'é' * 8!r}: longer than 15 bytes",
    ),
    (
        "--wait -i too long",
        ["--wait", "-i", LONG],
        InvalidValue,
        f"invalid container interface name (-i) {NAME_TOO_LONG}",
    ),
    (
        "-i with a slash",
        ["br1", "-i", "eth/1", "web1", "10.0.0.2/24"],
        InvalidValue,
        "invalid container interface name (-i) 'eth/1': contains '/', ':', NUL or white space",
    ),
    (
        "-i not UTF-8",
        ["br1", "-i", "eth\udcff", "web1", "10.0.0.2/24"],
        InvalidValue,
        "invalid container interface name (-i) 'eth\\udcff': not valid UTF-8",
    ),
    (
        "unknown option",
        ["br1", "-x", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: unknown option: -x",
    ),
    (
        "unknown long option",
        ["br1", "--mtu", "9000", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: unknown option: --mtu",
    ),
    (
        "unknown first option",
        ["-x", "br1", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: unknown option: -x",
    ),
    (
        "pipework's --save",
        ["--save", "f", "br1", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: unknown option: --save",
    ),
    (
        "option after --direct-phys",
        ["--direct-phys", "-i", "eth1"],
        UsageError,
        "pipework: unknown option: -i",
    ),
    ("-i without value", ["br1", "-i"], UsageError, "pipework: option -i needs a value"),
    (
        "-l with empty value",
        ["br1", "-l", "", "web1", "10.0.0.2/24"],
        UsageError,
        "pipework: option -l needs a value",
    ),
    (
        "-a without value",
        ["br1", "web1", "10.0.0.2/24", "-a"],
        UsageError,
        "pipework: option -a needs a value",
    ),
    (
        "too many arguments",
        ["br1", "web1", "10.0.0.2/24", "26:2e:71:98:60:8f", "extra"],
        UsageError,
        "pipework: unexpected argument: extra",
    ),
    (
        "too many arguments, a dash word",
        ["br1", "web1", "10.0.0.2/24", "@10", "-v"],
        UsageError,
        "pipework: unexpected argument: -v",
    ),
    (
        "gateway of the other family",
        ["br1", "web1", "10.0.0.2/24@fd00::1"],
        InvalidValue,
        "invalid gateway fd00::1: not of the same family as 10.0.0.2/24",
    ),
    (
        "two IPv4 gateways",
        ["br1", "web1", "10.0.0.2/24@10.0.0.1,10.0.1.2/24@10.0.1.1"],
        UsageError,
        "pipework: invalid address list 10.0.0.2/24@10.0.0.1,10.0.1.2/24@10.0.1.1: "
        "more than one gateway per family",
    ),
    (
        "two IPv6 gateways",
        ["br1", "web1", "fd00::2/64@fd00::1,10.0.0.2/24,fd01::2/64@fd01::1"],
        UsageError,
        "pipework: invalid address list fd00::2/64@fd00::1,10.0.0.2/24,fd01::2/64@fd01::1: "
        "more than one gateway per family",
    ),
    (
        "gateway without address",
        ["br1", "web1", "0/0@10.0.0.1"],
        InvalidValue,
        "invalid address 0/0@10.0.0.1: a gateway needs an address",
    ),
    (
        "route without arguments",
        ["route", "web1"],
        UsageError,
        "pipework: route needs a guest and ip route arguments",
    ),
    (
        "rule without guest",
        ["rule"],
        UsageError,
        "pipework: rule needs a guest and ip rule arguments",
    ),
    (
        "tc without arguments",
        ["tc", "web1"],
        UsageError,
        "pipework: tc needs a guest and tc arguments",
    ),
    (
        "--wait timeout 0",
        ["--wait", "--timeout", "0"],
        UsageError,
        "pipework: invalid --timeout: 0",
    ),
    (
        "--wait timeout negative",
        ["--wait", "-t", "-1"],
        UsageError,
        "pipework: invalid --timeout: -1",
    ),
    (
        "--wait timeout nan",
        ["--wait", "--timeout", "nan"],
        UsageError,
        "pipework: invalid --timeout: nan",
    ),
    (
        "--wait timeout text",
        ["--wait", "--timeout", "soon"],
        UsageError,
        "pipework: invalid --timeout: soon",
    ),
    (
        "--wait timeout missing",
        ["--wait", "--timeout"],
        UsageError,
        "pipework: option --timeout needs a value",
    ),
    (
        "--wait with a guest",
        ["--wait", "web1"],
        UsageError,
        "pipework: unexpected argument for --wait: web1",
    ),
    (
        "--wait -l",
        ["--wait", "-l", "x"],
        UsageError,
        "pipework: unexpected argument for --wait: -l",
    ),
    (
        "--direct-phys alone",
        ["--direct-phys"],
        UsageError,
        "pipework: --direct-phys needs a host interface",
    ),
    (
        "--direct-phys with vlan",
        ["--direct-phys", "eth2", "web1", "10.0.0.5/24", "@10"],
        UsageError,
        "pipework: --direct-phys takes neither @vlan nor -l",
    ),
    (
        "--direct-phys with -l",
        ["--direct-phys", "eth2", "-l", "hostapp1", "web1", "10.0.0.5/24"],
        UsageError,
        "pipework: --direct-phys takes neither @vlan nor -l",
    ),
]


@pytest.mark.parametrize(
    ("argv", "kind", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors(argv: list[str], kind: type[NetplumbError], message: str) -> None:
    with pytest.raises(NetplumbError) as exc:
        parse(argv)
    assert type(exc.value) is kind
    assert exc.value.exit_code == 2
    assert str(exc.value) == message
    if not message.endswith(USAGE):
        assert "\n" not in message


def test_usage_lists_every_form() -> None:
    for form in (
        "pipework <hostinterface> [-i containerinterface] [-l localinterfacename]",
        "[-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]",
        "dhcp[:client-args] [macaddr][@vlan]",
        "pipework mac:<mac of host interface>",
        "pipework route|rule|tc <guest> <arguments...>",
        "pipework --wait [-i containerinterface] [--timeout seconds]",
        "pipework --direct-phys <hostinterface>",
        "U:<text>",
        "0/0",
    ):
        assert form in USAGE


# ---------------------------------------------------------------------------- properties

IFNAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=15
).filter(lambda s: not s.startswith("-") and s not in (".", ".."))
HOST_IF = IFNAME.filter(lambda s: s not in ("route", "rule", "tc"))
GUEST = st.text(min_size=1, max_size=30).filter(lambda s: not s.startswith("-"))
UNICAST_MAC = (
    st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and b != b"\0" * 6).map(Mac)
)


@st.composite
def v4_spec(draw: st.DrawFn, gateway: bool) -> str:
    addr = ipaddress.IPv4Address(draw(st.integers(1, 2**32 - 1)))
    prefixlen = draw(st.integers(1, 32))
    net = ipaddress.ip_network(f"{addr}/{prefixlen}", strict=False)
    assume(not (addr.is_multicast or addr.is_loopback))
    assume(prefixlen >= 31 or addr not in (net.network_address, net.broadcast_address))
    text = f"{addr}/{prefixlen}"
    if gateway:
        gw = ipaddress.IPv4Address(draw(st.integers(1, 0xDFFFFFFF)))
        assume(gw != addr)
        text += f"@{gw}"
    return text


@st.composite
def v6_spec(draw: st.DrawFn, gateway: bool) -> str:
    addr = ipaddress.IPv6Address(draw(st.integers(2, 0xFEFF << 112)))
    prefixlen = draw(st.integers(1, 128))
    text = f"{addr}/{prefixlen}"
    if gateway:
        gw = ipaddress.IPv6Address(draw(st.integers(1, 0xFEFF << 112)))
        assume(gw != addr and not gw.is_loopback)
        text += f"@{gw}"
    return text


@st.composite
def address_list(draw: st.DrawFn, family: int | None) -> str:
    specs: list[str] = []
    for version, make in ((4, v4_spec), (6, v6_spec)):
        if family not in (None, version):
            continue
        count = draw(st.integers(0, 2))
        gateway_at = draw(st.integers(0, 2))  # at most one gateway per family
        specs += [draw(make(i == gateway_at)) for i in range(count)]
    assume(specs)
    return ",".join(draw(st.permutations(specs)))


DHCP = st.tuples(
    st.sampled_from(["dhcp", "udhcpc", "dhclient", "dhcpcd"]),
    st.one_of(
        st.none(),
        st.lists(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz-=:.0123456789", min_size=1), max_size=3
        ),
    ),
)


@st.composite
def pipework_argv(draw: st.DrawFn) -> tuple[list[str], AttachRequest]:
    direct = draw(st.booleans())
    by_mac = draw(st.one_of(st.none(), UNICAST_MAC))
    host_if = None if by_mac else draw(HOST_IF)
    guest_ifname = draw(st.one_of(st.none(), IFNAME))
    host_ifname = None if direct else draw(st.one_of(st.none(), IFNAME))
    family = draw(st.sampled_from([None, 4, 6]))
    options: list[list[str]] = []
    if guest_ifname is not None:
        options.append(["-i", guest_ifname])
    if host_ifname is not None:
        options.append(["-l", host_ifname])
    if family is not None:
        options.append(["-a", str(family)])
    guest = draw(GUEST)

    addresses: tuple[AddressSpec, ...] = ()
    dhcp = None
    if draw(st.booleans()):
        client, args = draw(DHCP)
        ip_text = client if args is None else f"{client}:{' '.join(args)}"
        dhcp = DhcpSpec(None if client == "dhcp" else client, tuple(args or ()))
    elif draw(st.booleans()):
        ip_text = "0/0"
        addresses = (AddressSpec(None),)
    else:
        ip_text = draw(address_list(family))
        addresses = tuple(parse_address_spec(t) for t in ip_text.split(","))

    mac = draw(
        st.one_of(
            st.none(),
            UNICAST_MAC,
            st.text(min_size=1, max_size=20).filter(lambda s: "@" not in s).map(lambda s: "U:" + s),
        )
    )
    vlan = None if direct else draw(st.one_of(st.none(), st.integers(1, 4094)))
    tail: list[str] = []
    if mac is not None or vlan is not None:
        tail = [("" if mac is None else str(mac)) + ("" if vlan is None else f"@{vlan}")]

    head = ["--direct-phys"] if direct else []
    head.append(f"mac:{by_mac}" if by_mac else str(host_if))
    argv = (
        head + [w for opt in draw(st.permutations(options)) for w in opt] + [guest, ip_text, *tail]
    )
    expected = AttachRequest(
        guest=guest,
        host_if=host_if,
        guest_ifname=guest_ifname or "eth1",
        host_ifname=host_ifname,
        host_if_mac=by_mac,
        addresses=addresses,
        dhcp=dhcp,
        mac=Mac.parse(mac) if isinstance(mac, str) else mac,
        vlan=vlan,
        direct_phys=direct,
    )
    return argv, expected


@given(pipework_argv())
def test_valid_argv_parses_to_matching_request(case: tuple[list[str], AttachRequest]) -> None:
    argv, expected = case
    req = parse(argv)
    assert isinstance(req, AttachRequest)
    assert req == expected
    assert [str(a) for a in req.addresses] == [str(a) for a in expected.addresses]


TOKENS = st.one_of(
    st.sampled_from(
        [
            "br1",
            "eth0",
            "web1",
            "-i",
            "-l",
            "-a",
            "4",
            "6",
            "--wait",
            "--timeout",
            "--direct-phys",
            "route",
            "rule",
            "tc",
            "dhcp",
            "dhcp:-f",
            "udhcpc:",
            "0/0",
            "10.0.0.2/24",
            "10.0.0.2/24@10.0.0.1",
            "fd00::2/64@fd00::1",
            "10.0.0.2",
            "U:web1",
            "@10",
            "26:2e:71:98:60:8f@4095",
            "mac:52:54:00:12:34:56",
            "",
            "@",
            "/",
            ",",
            ":",
            "\u00b2",
            "\udcff",
        ]
    ),
    st.text(max_size=20),
)


@given(st.lists(TOKENS, max_size=8))
def test_any_argv_fails_only_with_a_usage_error(argv: list[str]) -> None:
    try:
        req = parse(argv)
    except (UsageError, InvalidValue) as exc:
        assert exc.exit_code == 2
        assert str(exc).splitlines()[0]
        return
    assert isinstance(req, AttachRequest | GuestCommand | WaitRequest)

"""The pipework command-line grammar.

Every form pipework accepts parses into a request; errors name the offending argument in one
line (the CLI exits 2). The forms, from pipework's own usage text and README::

    pipework <hostif> [-i ctr_if] [-l host_if] [-a 4|6] <guest> <ip>/<prefix>[@gw] [mac][@vlan]
    pipework <hostif> [-i ctr_if] [-l host_if] <guest> dhcp[:client args] [mac][@vlan]
    pipework mac:<mac of host interface> ...
    pipework route|rule|tc <guest> <arguments...>
    pipework --wait [-i ctr_if] [--timeout SECONDS]
    pipework --direct-phys <hostif> [-i ctr_if] <guest> <ip>/<prefix>[@gw] [mac]

netplumb extends ``<ip>`` to a comma-separated list, so one call can give an interface several
addresses (IPv4 and IPv6 together).
"""

from __future__ import annotations

from netplumb.errors import UsageError
from netplumb.model.addresses import AddressSpec, parse_address_spec
from netplumb.model.attach import (
    DHCP_CLIENTS,
    AttachRequest,
    DhcpSpec,
    GuestCommand,
    WaitRequest,
)
from netplumb.model.mac import Mac
from netplumb.model.names import check_ifname

USAGE = """\
usage: pipework <hostinterface> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
       pipework <hostinterface> [-i containerinterface] [-l localinterfacename] <guest> dhcp[:client-args] [macaddr][@vlan]
       pipework mac:<mac of host interface> [-i containerinterface] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
       pipework route|rule|tc <guest> <arguments...>
       pipework --wait [-i containerinterface] [--timeout seconds]
       pipework --direct-phys <hostinterface> [-i containerinterface] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr]

<guest> is a netplumb host, an `ip netns` name, a PID, a namespace path or a Docker container.
<ipaddr> may be a comma-separated list; 0/0 creates the interface without an address.
<macaddr> U:<text> derives a stable locally administered MAC from <text>."""

PipeworkRequest = AttachRequest | GuestCommand | WaitRequest


def _usage(message: str) -> UsageError:
    return UsageError(f"pipework: {message}")


def _take_value(argv: list[str], i: int, flag: str) -> str:
    if i + 1 >= len(argv) or not argv[i + 1]:
        raise _usage(f"option {flag} needs a value")
    return argv[i + 1]


def _parse_wait(argv: list[str]) -> WaitRequest:
    ifname, timeout = "eth1", 60.0
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-i":
            ifname = check_ifname(_take_value(argv, i, "-i"), "container interface name (-i)")
        elif arg in ("--timeout", "-t"):
            value = _take_value(argv, i, arg)
            try:
                timeout = float(value)
            except ValueError:
                raise _usage(f"invalid --timeout: {value}") from None
            if not timeout > 0:
                raise _usage(f"invalid --timeout: {value}")
        else:
            raise _usage(f"unexpected argument for --wait: {arg}")
        i += 2
    return WaitRequest(ifname, timeout)


def _parse_mac_vlan(text: str) -> tuple[Mac | None, int | None]:
    mac_text, at, vlan_text = text.partition("@")
    mac = Mac.parse(mac_text) if mac_text else None
    vlan = None
    if at:
        if not (vlan_text.isascii() and vlan_text.isdigit()) or not 1 <= int(vlan_text) <= 4094:
            raise _usage(f"invalid VLAN id: {vlan_text or '<empty>'} (1-4094)")
        vlan = int(vlan_text)
    return mac, vlan


def _parse_ip(text: str, family: int | None) -> tuple[tuple[AddressSpec, ...], DhcpSpec | None]:
    head, colon, rest = text.partition(":")
    if head in ("dhcp", *DHCP_CLIENTS) and (colon or "." not in text):
        client = None if head == "dhcp" else head
        return (), DhcpSpec(client, tuple(rest.split()) if colon else ())
    specs = tuple(parse_address_spec(part, family) for part in text.split(","))
    gateways = {s.gateway.version for s in specs if s.gateway is not None}
    if len(gateways) != sum(1 for s in specs if s.gateway is not None):
        raise _usage(f"invalid address list {text}: more than one gateway per family")
    return specs, None


def parse(argv: list[str]) -> PipeworkRequest:
    """Parse pipework's arguments (without the program name)."""
    if not argv or argv[0] in ("-h", "--help"):
        raise _usage("missing arguments (see pipework --help)")
    first = argv[0]
    if first == "--wait":
        return _parse_wait(argv[1:])
    if first in ("route", "rule", "tc"):
        if len(argv) < 3:
            tool = "tc" if first == "tc" else f"ip {first}"
            raise _usage(f"{first} needs a guest and {tool} arguments")
        return GuestCommand(first, argv[1], tuple(argv[2:]))
    direct = first == "--direct-phys"
    if direct:
        argv = argv[1:]
        if not argv:
            raise _usage("--direct-phys needs a host interface")
        first = argv[0]
    if first.startswith("-"):
        raise _usage(f"unknown option: {first}")
    host_if: str | None = first
    host_if_mac: Mac | None = None
    if first.startswith("mac:"):
        host_if, host_if_mac = None, Mac.parse(first[4:])
    else:
        check_ifname(first, "host interface")

    guest_ifname: str | None = None
    host_ifname: str | None = None
    family: int | None = None
    rest: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-i":
            guest_ifname = check_ifname(_take_value(argv, i, "-i"), "container interface name (-i)")
        elif arg == "-l":
            host_ifname = check_ifname(_take_value(argv, i, "-l"), "local interface name (-l)")
        elif arg == "-a":
            value = _take_value(argv, i, "-a")
            if value not in ("4", "6"):
                raise _usage(f"invalid address family (-a): {value} (4 or 6)")
            family = int(value)
        elif arg.startswith("-") and not rest:
            raise _usage(f"unknown option: {arg}")
        else:
            rest.append(arg)
            i += 1
            continue
        i += 2

    if not rest:
        raise _usage("missing <guest> (see pipework --help)")
    if len(rest) < 2:
        raise _usage(f"missing <ipaddr>/<subnet> or dhcp after guest {rest[0]}")
    if len(rest) > 3:
        raise _usage(f"unexpected argument: {rest[3]}")
    guest = rest[0]
    addresses, dhcp = _parse_ip(rest[1], family)
    mac, vlan = _parse_mac_vlan(rest[2]) if len(rest) == 3 else (None, None)
    if direct and (vlan is not None or host_ifname):
        raise _usage("--direct-phys takes neither @vlan nor -l")
    return AttachRequest(
        guest=guest,
        host_if=host_if,
        guest_ifname=guest_ifname or "eth1",
        host_ifname=host_ifname,
        host_if_mac=host_if_mac,
        addresses=addresses,
        dhcp=dhcp,
        mac=mac,
        vlan=vlan,
        direct_phys=direct,
    )

"""What an attach asks for, after parsing and before anything looks at the kernel."""

from __future__ import annotations

from netplumb.model.addresses import AddressSpec
from netplumb.model.mac import Mac
from netplumb.model.value import Value

DHCP_CLIENTS = ("udhcpc", "dhclient", "dhcpcd")


class DhcpSpec(Value):
    """Run a DHCP client for the interface; ``client`` None means the first one installed."""

    __slots__ = ("args", "client")
    client: str | None
    args: tuple[str, ...]

    def __init__(self, client: str | None = None, args: tuple[str, ...] = ()) -> None:
        self.client = client
        self.args = args
        self._freeze()


class AttachRequest(Value):
    """Give ``guest`` an interface ``guest_ifname`` on ``host_if`` (a bridge or a parent).

    ``host_if_mac`` selects the host interface by its MAC (pipework's ``mac:`` form) when
    ``host_if`` is None. ``direct_phys`` moves the host interface itself into the guest.
    ``create_bridge`` creates a missing bridge whatever its name (pipework: only ``br*``).
    """

    __slots__ = (
        "addresses",
        "create_bridge",
        "dhcp",
        "direct_phys",
        "guest",
        "guest_ifname",
        "host_if",
        "host_if_mac",
        "host_ifname",
        "mac",
        "vlan",
    )
    guest: str
    host_if: str | None
    guest_ifname: str
    host_ifname: str | None
    host_if_mac: Mac | None
    addresses: tuple[AddressSpec, ...]
    dhcp: DhcpSpec | None
    mac: Mac | None
    vlan: int | None
    direct_phys: bool
    create_bridge: bool

    def __init__(
        self,
        guest: str,
        host_if: str | None,
        guest_ifname: str = "eth1",
        host_ifname: str | None = None,
        host_if_mac: Mac | None = None,
        addresses: tuple[AddressSpec, ...] = (),
        dhcp: DhcpSpec | None = None,
        mac: Mac | None = None,
        vlan: int | None = None,
        direct_phys: bool = False,
        create_bridge: bool = False,
    ) -> None:
        self.guest = guest
        self.host_if = host_if
        self.guest_ifname = guest_ifname
        self.host_ifname = host_ifname
        self.host_if_mac = host_if_mac
        self.addresses = addresses
        self.dhcp = dhcp
        self.mac = mac
        self.vlan = vlan
        self.direct_phys = direct_phys
        self.create_bridge = create_bridge
        self._freeze()

    def describe(self) -> str:
        parts = [self.host_if or f"mac:{self.host_if_mac}", self.guest, self.guest_ifname]
        parts += [str(a) for a in self.addresses]
        if self.dhcp:
            parts.append("dhcp")
        return " ".join(parts)

    def signature(self) -> dict[str, object]:
        """What makes two attaches the same, for the idempotency check (no guest, no names)."""
        return {
            "host_if": self.host_if,
            "host_if_mac": str(self.host_if_mac) if self.host_if_mac else None,
            "addresses": [str(a) for a in self.addresses],
            "dhcp": [self.dhcp.client, *self.dhcp.args] if self.dhcp else None,
            "mac": str(self.mac) if self.mac else None,
            "vlan": self.vlan,
            "direct_phys": self.direct_phys,
        }


class GuestCommand(Value):
    """pipework's ``route``/``rule``/``tc``: run ``ip route ...`` (etc.) inside the guest."""

    __slots__ = ("args", "guest", "tool")
    tool: str
    guest: str
    args: tuple[str, ...]

    def __init__(self, tool: str, guest: str, args: tuple[str, ...]) -> None:
        self.tool = tool
        self.guest = guest
        self.args = args
        self._freeze()


class WaitRequest(Value):
    """pipework ``--wait``: inside a guest, wait until the interface is up with carrier."""

    __slots__ = ("ifname", "timeout")
    ifname: str
    timeout: float

    def __init__(self, ifname: str = "eth1", timeout: float = 60.0) -> None:
        self.ifname = ifname
        self.timeout = timeout
        self._freeze()

"""The actions an attach or detach plan is made of.

Each action is a value: the engine applies it with the kernel and records how to undo it;
``str(action)`` is the line ``--dry-run`` prints (in ``ip(8)`` terms, so it reads familiar).
"""

from __future__ import annotations

from netplumb.model.ip import IP, Interface
from netplumb.model.value import Value


class Action(Value):
    __slots__ = ()


class CreateBridge(Action):
    """A bridge; ``mac`` fixes its address (a network's bridge: see ``model.mac.bridge_mac``)."""

    __slots__ = ("mac", "mtu", "name")
    name: str
    mtu: int | None
    mac: bytes | None

    def __init__(self, name: str, mtu: int | None = None, mac: bytes | None = None) -> None:
        self.name = name
        self.mtu = mtu
        self.mac = mac
        self._freeze()

    def __str__(self) -> str:
        mac = f" address {self.mac.hex(':')}" if self.mac is not None else ""
        mtu = f" mtu {self.mtu}" if self.mtu is not None else ""
        return f"ip link add {self.name}{mac}{mtu} type bridge && ip link set {self.name} up"


class CreateVeth(Action):
    """A veth pair: ``host_name`` enslaved to ``bridge`` and up, ``guest_name`` in the guest."""

    __slots__ = ("bridge", "guest_name", "host_name", "mac", "mtu", "owner")
    host_name: str
    guest_name: str
    bridge: str
    mtu: int
    mac: bytes | None
    owner: str

    def __init__(
        self, host_name: str, guest_name: str, bridge: str, mtu: int, mac: bytes | None, owner: str
    ) -> None:
        self.host_name = host_name
        self.guest_name = guest_name
        self.bridge = bridge
        self.mtu = mtu
        self.mac = mac
        self.owner = owner
        self._freeze()

    def __str__(self) -> str:
        mac = f" address {self.mac.hex(':')}" if self.mac else ""
        return (
            f"ip link add {self.host_name} mtu {self.mtu} master {self.bridge} up type veth "
            f"peer {self.guest_name} netns GUEST{mac}"
        )


class CreateMacvlan(Action):
    """A macvlan (mode bridge) on ``parent``, created directly in the guest."""

    __slots__ = ("guest_name", "mac", "mtu", "owner", "parent")
    parent: str
    guest_name: str
    mtu: int
    mac: bytes | None
    owner: str

    def __init__(
        self, parent: str, guest_name: str, mtu: int, mac: bytes | None, owner: str
    ) -> None:
        self.parent = parent
        self.guest_name = guest_name
        self.mtu = mtu
        self.mac = mac
        self.owner = owner
        self._freeze()

    def __str__(self) -> str:
        mac = f" address {self.mac.hex(':')}" if self.mac else ""
        return (
            f"ip link add link {self.parent} {self.guest_name} netns GUEST mtu {self.mtu}{mac} "
            "type macvlan mode bridge"
        )


class MoveIntoGuest(Action):
    """pipework ``--direct-phys``: the host interface itself moves into the guest."""

    __slots__ = ("guest_name", "host_name", "mac", "owner")
    host_name: str
    guest_name: str
    mac: bytes | None
    owner: str

    def __init__(self, host_name: str, guest_name: str, mac: bytes | None, owner: str) -> None:
        self.host_name = host_name
        self.guest_name = guest_name
        self.mac = mac
        self.owner = owner
        self._freeze()

    def __str__(self) -> str:
        mac = f" address {self.mac.hex(':')}" if self.mac else ""
        return f"ip link set {self.host_name} netns GUEST name {self.guest_name}{mac}"


class GuestLinkUp(Action):
    __slots__ = ("ifname",)
    ifname: str

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._freeze()

    def __str__(self) -> str:
        return f"GUEST: ip link set {self.ifname} up"


class AddAddress(Action):
    __slots__ = ("ifname", "interface")
    ifname: str
    interface: Interface

    def __init__(self, ifname: str, interface: Interface) -> None:
        self.ifname = ifname
        self.interface = interface
        self._freeze()

    def __str__(self) -> str:
        return f"GUEST: ip addr add {self.interface} dev {self.ifname}"


class AddHostRoute(Action):
    """A route to an off-subnet gateway through the interface, so the default can use it."""

    __slots__ = ("dest", "ifname")
    ifname: str
    dest: IP

    def __init__(self, ifname: str, dest: IP) -> None:
        self.ifname = ifname
        self.dest = dest
        self._freeze()

    def __str__(self) -> str:
        plen = 32 if self.dest.version == 4 else 128
        return f"GUEST: ip route add {self.dest}/{plen} dev {self.ifname}"


class ReplaceDefault(Action):
    __slots__ = ("gateway", "ifname")
    ifname: str
    gateway: IP

    def __init__(self, ifname: str, gateway: IP) -> None:
        self.ifname = ifname
        self.gateway = gateway
        self._freeze()

    def __str__(self) -> str:
        v6 = " -6" if self.gateway.version == 6 else ""
        return f"GUEST: ip{v6} route replace default via {self.gateway} dev {self.ifname}"


class Announce(Action):
    """One gratuitous ARP for the interface's IPv4 addresses when it comes up, without waiting."""

    __slots__ = ("ifname", "ip")
    ifname: str
    ip: IP

    def __init__(self, ifname: str, ip: IP) -> None:
        self.ifname = ifname
        self.ip = ip
        self._freeze()

    def __str__(self) -> str:
        sysctl = f"net.ipv4.conf.{self.ifname}.arp_notify=1"
        return f"GUEST: sysctl {sysctl}  # announce {self.ip} on link-up"


class StartDhcp(Action):
    """A DHCP client for the interface that stays to renew the lease while the guest lives."""

    __slots__ = ("args", "client", "hostname", "ifname")
    ifname: str
    client: str
    args: tuple[str, ...]
    hostname: str

    def __init__(self, ifname: str, client: str, args: tuple[str, ...], hostname: str) -> None:
        self.ifname = ifname
        self.client = client
        self.args = args
        self.hostname = hostname
        self._freeze()

    def __str__(self) -> str:
        # As each client takes it (kernel/dhcp.py): "-i" is udhcpc's; dhclient's "-i" asks for a
        # DUID and dhcpcd's sets the vendor class, both take the interface as the last word.
        if self.client == "udhcpc":
            argv = [self.client, "-i", self.ifname, *self.args]
        else:
            argv = [self.client, *self.args, self.ifname]
        return f"GUEST: {' '.join(argv)} (kept running to renew the lease)"


class RecordAttach(Action):
    """The attach record, written as an action when the attach is one part of a larger plan
    (CNI ADD, ``lan attach``): what comes after it reads the records (an isolated network's
    port set), and rolling back removes it."""

    __slots__ = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self._freeze()

    def __str__(self) -> str:
        return f"record attach/{self.name}"

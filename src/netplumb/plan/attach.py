"""Plan an attach: from a request and what the kernel holds now, the actions to take (pure)."""

from __future__ import annotations

from netplumb.errors import Conflict, InvalidValue, NotSupported
from netplumb.model.attach import AttachRequest
from netplumb.model.names import host_ifname, owner_mark
from netplumb.model.value import Value
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

DEFAULT_MTU = 1500


class HostLink(Value):
    """What the planner needs to know of the host interface."""

    __slots__ = ("is_bridge", "mtu", "name")
    name: str
    is_bridge: bool
    mtu: int

    def __init__(self, name: str, is_bridge: bool, mtu: int) -> None:
        self.name = name
        self.is_bridge = is_bridge
        self.mtu = mtu
        self._freeze()


class Observed(Value):
    """The state an attach plan depends on, read from the kernel just before planning."""

    __slots__ = (
        "dhcp_client",
        "guest_has_ifname",
        "host_link",
        "host_name_taken",
        "vlan_supported",
    )
    host_link: HostLink | None
    guest_has_ifname: bool
    host_name_taken: bool
    dhcp_client: str | None
    vlan_supported: bool

    def __init__(
        self,
        host_link: HostLink | None,
        guest_has_ifname: bool = False,
        host_name_taken: bool = False,
        dhcp_client: str | None = None,
        vlan_supported: bool = False,
    ) -> None:
        self.host_link = host_link
        self.guest_has_ifname = guest_has_ifname
        self.host_name_taken = host_name_taken
        self.dhcp_client = dhcp_client
        self.vlan_supported = vlan_supported
        self._freeze()


def veth_host_name(req: AttachRequest, guest_short: str) -> str:
    return req.host_ifname or host_ifname(req.guest_ifname, guest_short)


def plan_attach(
    req: AttachRequest,
    obs: Observed,
    *,
    owner: str,
    guest_short: str,
    guest_name: str,
    scope: str | None = None,
) -> list[Action]:
    """The ordered actions for ``req``; errors are raised before anything is created.
    ``scope``: the state directory's identity, carried by the marks (``owner_mark``)."""
    host = obs.host_link
    label = req.host_if or f"mac:{req.host_if_mac}"
    if obs.guest_has_ifname:
        raise Conflict(
            f'guest {guest_name} already has an interface "{req.guest_ifname}": '
            "choose another name with -i"
        )
    if req.vlan is not None:
        if host is not None and host.is_bridge:
            raise NotSupported("VLAN configuration is not supported for a Linux bridge")
        if not obs.vlan_supported:
            raise NotSupported(
                f"cannot use VLAN {req.vlan}: this kernel has no 802.1q support (module 8021q)"
            )
        raise NotSupported("VLAN subinterfaces are not implemented by netplumb yet")
    if req.dhcp is not None and obs.dhcp_client is None:
        wanted = req.dhcp.client or "udhcpc (busybox), dhclient or dhcpcd"
        raise NotSupported(f"DHCP asked for, but no DHCP client is installed: {wanted}")

    mark = owner_mark(owner, scope)
    mac = req.mac.octets if req.mac else None
    actions: list[Action] = []
    if req.direct_phys:
        if host is None:
            raise InvalidValue(f"host interface {label} does not exist")
        if host.is_bridge:
            raise InvalidValue(f"--direct-phys moves a physical interface, and {label} is a bridge")
        actions.append(MoveIntoGuest(host.name, req.guest_ifname, mac, mark))
    elif host is None or host.is_bridge:
        if host is None:
            name = req.host_if
            if name is None:
                raise InvalidValue(f"no host interface has the MAC address {req.host_if_mac}")
            if not (req.create_bridge or name.startswith("br")):
                raise InvalidValue(
                    f'host interface "{name}" does not exist (only missing names starting '
                    'with "br" are created as bridges)'
                )
            actions.append(CreateBridge(name))
            mtu = DEFAULT_MTU
        else:
            name, mtu = host.name, host.mtu
        host_name = veth_host_name(req, guest_short)
        if obs.host_name_taken:
            raise Conflict(f'host interface name "{host_name}" is taken: choose another with -l')
        actions.append(CreateVeth(host_name, req.guest_ifname, name, mtu, mac, mark))
    else:
        if req.host_ifname:
            raise InvalidValue("-l names the host end of a veth; a macvlan has no host end")
        actions.append(CreateMacvlan(host.name, req.guest_ifname, host.mtu, mac, mark))

    # Addresses go on while the interface is still down, so that the kernel's announcement
    # on link-up (arp_notify) carries them; routes through a gateway need the link up.
    for spec in req.addresses:
        if spec.interface is not None:
            actions.append(AddAddress(req.guest_ifname, spec.interface))
    v4 = [
        s.interface.ip
        for s in req.addresses
        if s.interface is not None and s.interface.version == 4
    ]
    if v4:
        actions.append(Announce(req.guest_ifname, v4[0]))
    actions.append(GuestLinkUp(req.guest_ifname))
    for spec in req.addresses:
        if spec.gateway is not None:
            if not spec.gateway_on_link:
                actions.append(AddHostRoute(req.guest_ifname, spec.gateway))
            actions.append(ReplaceDefault(req.guest_ifname, spec.gateway))
    if req.dhcp is not None:
        assert obs.dhcp_client is not None
        actions.append(StartDhcp(req.guest_ifname, obs.dhcp_client, req.dhcp.args, guest_name))
    return actions

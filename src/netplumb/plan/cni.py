"""The actions of a CNI ADD and DEL besides an attach's (``actions.py``), and DEL's planner.

An ADD is one plan executed by the one applier (``ops/apply.py``): claim the attachment's
record, make sure of the network, lease the addresses (or have the IPAM plugin give them),
then the attach actions of the one attach planner (``plan/attach.py``, planned once the
addresses are known), then the published ports and the isolated network's port set. Every
step keeps its undo, so an ADD that fails anywhere leaves nothing. A DEL is a plan built
from netplumb's records alone (``plan_del``); it only removes, so it has nothing to undo.

Values, not dataclasses (``model/value.py``): an ADD is run once per container start.
"""

from __future__ import annotations

from netplumb.model.ip import IP, Interface
from netplumb.plan.actions import Action, AddAddress


class ClaimAttachment(Action):
    """The attachment's record, created exclusively before anything is allocated."""

    __slots__ = ("network", "record")
    network: str
    record: str

    def __init__(self, network: str, record: str) -> None:
        self.network = network
        self.record = record
        self._freeze()

    def __str__(self) -> str:
        return f"record cni/{self.network}/{self.record} (a second ADD of it fails)"


class EnsureNetwork(Action):
    """A bridge-mode config's netplumb network: created on first use, its bridge put back."""

    __slots__ = ("bridge", "network")
    network: str
    bridge: str

    def __init__(self, network: str, bridge: str) -> None:
        self.network = network
        self.bridge = bridge
        self._freeze()

    def __str__(self) -> str:
        return f"network {self.network}: create it, or put its bridge {self.bridge} back"


class LeaseCniAddress(Action):
    """An address of a netplumb network (``pool`` False) or of a macvlan config's pool:
    ``ip`` if given, else the lowest free one of ``gateway``'s subnet."""

    __slots__ = ("gateway", "ip", "network", "owner", "pool")
    network: str
    owner: str
    ip: IP | None
    gateway: Interface
    pool: bool

    def __init__(
        self, network: str, owner: str, ip: IP | None, gateway: Interface, pool: bool
    ) -> None:
        self.network = network
        self.owner = owner
        self.ip = ip
        self.gateway = gateway
        self.pool = pool
        self._freeze()

    def __str__(self) -> str:
        what = str(self.ip) if self.ip is not None else "the lowest free address"
        where = f"the pool of {self.network}" if self.pool else f"network {self.network}"
        return f"lease {what} (subnet of {self.gateway}) in {where} for {self.owner}"


class DelegateIpam(Action):
    """The addresses and default routes from the config's IPAM plugin (its ADD)."""

    __slots__ = ("plugin",)
    plugin: str

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self._freeze()

    def __str__(self) -> str:
        return f"IPAM plugin {self.plugin}: ADD"


class PublishCniPorts(Action):
    __slots__ = ("count", "owner")
    owner: str
    count: int

    def __init__(self, owner: str, count: int) -> None:
        self.owner = owner
        self.count = count
        self._freeze()

    def __str__(self) -> str:
        return f"nft: publish the {self.count} port mapping(s) of {self.owner}"


class RefreshIsolation(Action):
    """An isolated network's bridge ports changed: refill its port set."""

    __slots__ = ("network",)
    network: str

    def __init__(self, network: str) -> None:
        self.network = network
        self._freeze()

    def __str__(self) -> str:
        return f"nft: refill isolated network {self.network}'s port set"


# -- DEL ----------------------------------------------------------------------------------------


class RemoveCniInterface(Action):
    """The guest interface as its attach record says (when the namespace is still there), and
    the veth's host end if it is still there and carries netplumb's mark."""

    __slots__ = ("attach_record", "ifname", "netns", "veth")
    ifname: str
    netns: str
    veth: str | None
    attach_record: str | None

    def __init__(
        self, ifname: str, netns: str, veth: str | None, attach_record: str | None
    ) -> None:
        self.ifname = ifname
        self.netns = netns
        self.veth = veth
        self.attach_record = attach_record
        self._freeze()

    def __str__(self) -> str:
        out = f"GUEST: ip link del {self.ifname}" if self.netns else ""
        if self.veth:
            host = f"ip link del {self.veth} (if it carries netplumb's mark)"
            out = f"{out}; {host}" if out else host
        return out or f"GUEST's {self.ifname}: nothing to remove in the kernel"


class UnpublishCniPorts(Action):
    __slots__ = ("owner",)
    owner: str

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._freeze()

    def __str__(self) -> str:
        return f"nft: unpublish the published ports of {self.owner}"


class ReleaseCniLeases(Action):
    __slots__ = ("network", "owner", "pool")
    network: str
    owner: str
    pool: bool

    def __init__(self, network: str, owner: str, pool: bool) -> None:
        self.network = network
        self.owner = owner
        self.pool = pool
        self._freeze()

    def __str__(self) -> str:
        where = f"the pool of {self.network}" if self.pool else f"network {self.network}"
        return f"release the addresses of {self.owner} in {where}"


class IpamDelete(Action):
    """The IPAM plugin's DEL, with the config the attachment was made with (``raw``)."""

    __slots__ = ("container_id", "ifname", "netns", "plugin", "raw")
    plugin: str
    container_id: str
    ifname: str
    netns: str
    raw: str | None

    def __init__(
        self, plugin: str, container_id: str, ifname: str, netns: str, raw: str | None
    ) -> None:
        self.plugin = plugin
        self.container_id = container_id
        self.ifname = ifname
        self.netns = netns
        self.raw = raw
        self._freeze()

    def __str__(self) -> str:
        return f"IPAM plugin {self.plugin}: DEL"


class ForgetAttachment(Action):
    __slots__ = ("network", "record")
    network: str
    record: str

    def __init__(self, network: str, record: str) -> None:
        self.network = network
        self.record = record
        self._freeze()

    def __str__(self) -> str:
        return f"forget record cni/{self.network}/{self.record}"


def plan_del(
    *,
    network: str,
    record: str,
    owner: str,
    ifname: str,
    netns: str,
    mode: str,
    veth: str | None,
    attach_record: str | None,
    has_ports: bool,
    network_recorded: bool,
    ipam: str | None,
    raw: str | None,
    container_id: str,
    isolated: bool,
) -> list[Action]:
    """Everything one attachment holds, from its record (or, without one, from the names the
    attachment alone gives), in the order that frees the kernel before the records."""
    out: list[Action] = [RemoveCniInterface(ifname, netns, veth, attach_record)]
    if has_ports:
        out.append(UnpublishCniPorts(owner))
    if mode != "bridge" or network_recorded:
        out.append(ReleaseCniLeases(network, owner, pool=mode != "bridge"))
    if ipam:
        out.append(IpamDelete(ipam, container_id, ifname, netns, raw))
    if isolated:
        out.append(RefreshIsolation(network))
    out.append(ForgetAttachment(network, record))
    return out


# -- CHECK --------------------------------------------------------------------------------------


class GuestInterface(Action):
    """The guest's interface ADD made, with the MAC ADD gave it (a veth's or a macvlan's)."""

    __slots__ = ("ifname", "mac")
    ifname: str
    mac: str | None

    def __init__(self, ifname: str, mac: str | None) -> None:
        self.ifname = ifname
        self.mac = mac
        self._freeze()

    def __str__(self) -> str:
        mac = f" address {self.mac}" if self.mac else ""
        return f"GUEST: ip link add {self.ifname}{mac}"


def plan_check(
    *,
    owner: str,
    ifname: str,
    mac: str | None,
    addresses: tuple[Interface, ...],
    leased_in: str | None,
    ports: int,
) -> list[Action]:
    """What an attachment's ADD made, from its record: CHECK compares it with what the kernel
    and netplumb's tables show, and changes nothing. ``leased_in``: the network whose table
    holds the addresses (bridge mode with netplumb's own IPAM); ``ports``: how many mappings
    were published (0: none)."""
    out: list[Action] = [GuestInterface(ifname, mac)]
    out += [AddAddress(ifname, a) for a in addresses]
    if leased_in is not None:
        out += [LeaseCniAddress(leased_in, owner, a.ip, a, pool=False) for a in addresses]
    if ports:
        out.append(PublishCniPorts(owner, ports))
    return out

"""Reconcile, pure part: what an attach record asks for, and what to do about the difference
between it and what a guest holds now.

An attach record (``attach/<owner>@<ifname>``, written by the engine) keeps the request's
``signature`` and what the attach made (``kind``, ``host_name``, ``bridge_created``, and since
issue 13 ``guest_mac``, the MAC the guest end was given). That is enough to build the request
again, so records written before issue 13 are restored too (with a new MAC where the kernel chose
one and the record does not say which).
"""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.addresses import parse_address_spec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.model.ip import IP, Interface
from netplumb.model.mac import Mac
from netplumb.model.names import mark_owner, mark_scope
from netplumb.model.value import Value
from netplumb.plan.actions import Action, AddAddress, GuestLinkUp, ReplaceDefault

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Record = dict[str, Any]


def request_from_record(record: Record, guest_ref: str) -> AttachRequest:
    """The attach request a record was made from, for the guest ``guest_ref`` (resolved again).

    The MAC is the one the interface had (``guest_mac``) when the request named none; the host
    end of a veth keeps its name; a bridge netplumb created is created again if missing."""
    sig = record.get("signature")
    if not isinstance(sig, dict) or not isinstance(record.get("ifname"), str):
        raise InvalidValue("attach record without a signature or an interface name")
    mac_text = sig.get("mac") or record.get("guest_mac")
    host_if_mac = sig.get("host_if_mac")
    dhcp = sig.get("dhcp")
    return AttachRequest(
        guest=guest_ref,
        host_if=sig.get("host_if"),
        guest_ifname=record["ifname"],
        host_ifname=record.get("host_name") if record.get("kind") == "veth" else None,
        host_if_mac=Mac.parse(host_if_mac) if host_if_mac else None,
        addresses=tuple(parse_address_spec(str(a)) for a in sig.get("addresses") or ()),
        dhcp=DhcpSpec(dhcp[0], tuple(dhcp[1:])) if isinstance(dhcp, list) and dhcp else None,
        mac=Mac.parse(mac_text) if mac_text and record.get("kind") != "phys" else None,
        vlan=sig.get("vlan"),
        direct_phys=bool(sig.get("direct_phys")),
        create_bridge=bool(record.get("bridge_created")),
    )


class GuestView(Value):
    """What reconcile reads of the guest end of one recorded interface (None: it is missing)."""

    __slots__ = ("addresses", "alias", "defaults", "up")
    alias: str | None
    up: bool
    addresses: frozenset[Interface]
    defaults: frozenset[IP]  # gateways of the default routes through this interface

    def __init__(
        self,
        alias: str | None,
        up: bool,
        addresses: frozenset[Interface] = frozenset(),
        defaults: frozenset[IP] = frozenset(),
    ) -> None:
        self.alias = alias
        self.up = up
        self.addresses = addresses
        self.defaults = defaults
        self._freeze()


def plan_repair(req: AttachRequest, view: GuestView) -> list[Action]:
    """Put back what is missing on an interface that is still there (and still the owner's):
    its addresses, its state up, its default routes. Nothing when it is in step."""
    actions: list[Action] = []
    ifname = req.guest_ifname
    for spec in req.addresses:
        if spec.interface is not None and spec.interface not in view.addresses:
            actions.append(AddAddress(ifname, spec.interface))
    if not view.up:
        actions.append(GuestLinkUp(ifname))
    for spec in req.addresses:
        if spec.gateway is not None and spec.gateway not in view.defaults:
            actions.append(ReplaceDefault(ifname, spec.gateway))
    return actions


def is_ours(alias: str | None, owner: str) -> bool:
    """Whether an interface carries the owner's mark (of any scope, or of none)."""
    return mark_owner(alias) == owner


def orphans(
    links: list[tuple[str, str | None]], recorded: set[tuple[str, str]], scope: str
) -> list[str]:
    """Of ``(ifname, alias)`` pairs, those marked by this scope whose ``(owner, ifname)`` no
    record names. Unscoped marks (made before scopes, or by another scope) are never orphans:
    no record of ours can vouch that nobody else's records name them."""
    out = []
    for name, alias in links:
        owner = mark_owner(alias)
        if owner is None or mark_scope(alias) != scope:
            continue
        if (owner, name) not in recorded:
            out.append(name)
    return out


def _first_addresses(text: str) -> dict[str, str]:
    """name -> the address of the first line naming it (what a lookup in the file finds)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        for name in fields[1:]:
            out.setdefault(name, fields[0])
    return out


def hosts_with_links(current: str, wanted: list[str], names: set[str]) -> str:
    """A guest's ``/etc/hosts`` text with its link lines as ``wanted`` says. In step (returned
    as it is) when each name of ``wanted`` is found at its address, however the lines are cut
    (Docker writes one line per name from ``extra_hosts``). Otherwise lines that name one of
    the links' ``names`` (aliases, target names) go and ``wanted`` is appended; the others
    (``localhost``, the guest's own name) stay as they are, in their order."""
    found = _first_addresses(current)
    want = _first_addresses("\n".join(wanted))
    if all(found.get(name) == address for name, address in want.items()):
        return current
    kept = []
    for line in current.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) > 1 and names.intersection(fields[1:]):
            continue
        kept.append(line)
    return "".join(f"{line}\n" for line in [*kept, *wanted])

"""The LAN path's entries (``model/lanlb.py``, loaded by ``kernel/lanlb.py``) kept equal to
netplumb's records: each published IPv4 TCP port, on each uplink address it is published on.

Where the programs work is the *lan* (``model.lanlb.Lan``): the machine's addresses with the
links holding them (the uplinks; not 127/8, not the networks' NAT sources, not netplumb's
bridges), the bridges of the networks that may be reached from outside (not ``internal``
ones, which nothing outside reaches) and the guests' veths on them (from the attach records:
a guest whose veth is known is delivered into its namespace straight away). It is kept in a
state record (``lanlb/paths``) so that a publication costs one read of it, and made again
from the kernel and the records on every whole ruleset, when a guest comes, by
``reconcile``, and each second under ``watch`` (an address added to the machine, an uplink
that came back, a guest's veth).

Every netplumb of a namespace shares that namespace's ports map (it is found through the
namespace's links): a whole rewrite (``refresh``) makes it equal to this state directory's
bindings.

The record also says whether the LAN path steps aside for a foreign firewall, and why
(``aside``): then no entry is written, and the DNAT serves these connections through that
firewall's rules. It is looked at again with the lan.
"""

from __future__ import annotations

from netplumb import state
from netplumb.model import lanlb as model
from netplumb.ops import ruleinputs
from netplumb.ops.sockredirect import bindings
from netplumb.state import portrecords

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

PATHS = ("lanlb", "paths")


def _fresh() -> tuple[model.Lan, str | None]:
    """The lan from the kernel (links, addresses) and the records (networks), and what
    foreign firewall makes the LAN path step aside here (``model.lanlb.foreign_filter``)."""
    from _socket import AF_INET, inet_ntoa

    from netplumb.kernel import lanlb
    from netplumb.kernel.netlink import Netlink

    nat: set[str] = set()
    subnets: dict[str, str] = {}  # bridge name: IPv4 subnet
    for name in ruleinputs.network_names():
        net = ruleinputs.network(name)
        if net is None:
            continue
        nat.update(str(ip) for ip in net.nat_sources)
        if net.gateway.version == 4 and not net.internal:
            subnets[net.bridge] = str(net.subnet)
    with Netlink() as nl:
        links = {link.index: link.name for link in nl.links()}
        addrs = [(inet_ntoa(a.address), a.index) for a in nl.addresses(AF_INET)]
    mine = {i for i, name in links.items() if name in subnets}
    uplinks = sorted(
        (ip, i)
        for ip, i in addrs
        if i in links and i not in mine and not ip.startswith("127.") and ip not in nat
    )
    bridges = sorted((subnets[name], i) for i, name in links.items() if name in subnets)
    index = {name: i for i, name in links.items()}
    guests = sorted(
        (ip, index[veth])
        for ip, veth, bridge in _guest_veths()
        if bridge in subnets and veth in index
    )
    lan = model.Lan(tuple(uplinks), tuple(bridges), tuple(guests))
    return lan, lanlb.foreign_filter()


def _guest_veths() -> list[tuple[str, str, str]]:
    """(IPv4 address, host end's name, bridge) of each veth netplumb attached to a bridge."""
    out = []
    for name in state.names("attach"):
        rec = state.read("attach", name)
        if not rec or rec.get("kind") != "veth" or not rec.get("host_name"):
            continue
        for cidr in (rec.get("signature") or {}).get("addresses", []):
            ip = str(cidr).split("/")[0]
            if ":" not in ip:
                out.append((ip, str(rec["host_name"]), str(rec.get("bridge"))))
    return out


def _stored() -> tuple[model.Lan, str | None] | None:
    rec = state.read(*PATHS)
    if rec is None:
        return None
    uplinks = tuple((str(a), int(i)) for a, i in rec["uplinks"])
    bridges = tuple((str(s), int(i)) for s, i in rec["bridges"])
    guests = tuple((str(g), int(i)) for g, i in rec.get("guests", []))
    lan = model.Lan(uplinks, bridges, guests)
    aside = rec.get("aside")
    return lan, None if aside is None else str(aside)


def aside() -> str | None:
    """Why the LAN path steps aside, as last seen (None: it serves, or nothing is published)."""
    stored = _stored()
    return stored[1] if stored else None


def _store(lan: model.Lan, aside: str | None) -> None:
    rec: Record = {
        "uplinks": [list(u) for u in lan.uplinks],
        "bridges": [list(b) for b in lan.bridges],
        "guests": [list(g) for g in lan.guests],
        "aside": aside,
    }
    if state.read(*PATHS) != rec:
        state.write(rec, *PATHS)


def _links(lan: model.Lan, entries: dict[bytes, bytes]) -> tuple[set[int], set[int]]:
    """The links the programs go to for these entries: ``np_lan_in`` to the uplinks,
    ``np_lan_out`` to each guest's veth (its host end: the replies are turned there, before
    the bridge), or to the bridge where the veth is not known."""
    return {i for _a, i in lan.uplinks}, {model.value_return(v) for v in entries.values()}


def redirect(add: list[Record], drop: list[Record]) -> bool:
    """The entries of bindings published (``add``) and unpublished (``drop``), with the lan of
    the record (made first if there is none). Returns whether the kernel changed."""
    adding, dropping = bindings(add), bindings(drop)
    if not (adding or dropping):
        return False
    from netplumb.kernel import lanlb

    if not lanlb.enabled():
        return False
    stored = _stored()
    if stored is None:
        stored = _fresh()
        _store(*stored)
    lan, aside = stored
    if aside is not None:
        return False
    new = model.entries(adding, lan)
    gone = [k for k in model.entries(dropping, lan) if k not in new]
    uplinks, bridges = _links(lan, new)
    return lanlb.update(new, gone, uplinks, bridges)


def refresh() -> bool:
    """Make the entries and the links the programs are attached to equal to the records, with
    the lan made again; returns whether the kernel changed. Without a published port, the
    programs and the record go."""
    from netplumb.kernel import lanlb

    published = bindings(portrecords.all_bindings())
    if not published or not lanlb.enabled():
        changed = lanlb.clear()
        if state.read(*PATHS) is not None:
            state.remove(*PATHS)
        return changed
    lan, aside = _fresh()
    _store(lan, aside)
    if aside is not None:
        return lanlb.clear()
    entries = model.entries(published, lan)
    uplinks, bridges = _links(lan, entries)
    return lanlb.update(entries, [], uplinks, bridges, whole=True)

"""The socket redirection's entries (``model/socklb.py``, loaded by ``kernel/socklb.py``) kept
equal to netplumb's records: the published ports, and who reaches them how.

Who reaches them is the *reach* (``model.socklb.Reach``): the machine's addresses and the open
networks' guests, by netns cookie (taken when a host starts, ``host_cookie``). It is kept in a
state record (``socklb/reach``) so that a publication costs no more than one read of it; it is
made again from the kernel and the records:

- when a guest comes (``refresh``, after ``run`` has published its ports);
- when the whole ruleset is applied (``portrules.sync``), by ``reconcile``, and each second
  under ``watch`` (the machine's addresses change without netplumb: a DHCP lease, an address
  added by hand; until then a new address keeps the DNAT, which serves it all the same).

A guest that goes takes its entries with it at once (``forget``): they are keyed by its
cookie. The record also lists every guest cookie whose entries this state directory may have
written, so a whole rewrite deletes the entries of a guest that went without netplumb (its
record removed by hand, a crash) and never another netplumb's.
"""

from __future__ import annotations

from netplumb import state
from netplumb.model import socklb as model
from netplumb.ops import ruleinputs
from netplumb.state import portrecords

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from netplumb.state import Record

REACH = ("socklb", "reach")


def _binding(b: Record) -> model.Binding | None:
    """The binding as the model takes it, or None when no connection to it is redirected."""
    if int(b["family"]) != 4 or str(b["proto"]) != "tcp":
        return None
    host_ip = b.get("host_ip")
    return model.Binding(
        None if host_ip is None else str(host_ip),
        int(b["host_port"]),
        str(b["container_ip"]),
        int(b["container_port"]),
    )


def bindings(records: Iterable[Record]) -> list[model.Binding]:
    return [m for b in records if (m := _binding(b)) is not None]


def host_cookie(netns_path: str) -> int | None:
    """The netns cookie of a starting host (for its record), or None where the kernel has none
    (``SO_NETNS_COOKIE`` is Linux 5.14) or the redirection is off."""
    from netplumb.kernel import socklb

    if socklb.cgroup_root() is None:
        return None
    try:
        return socklb.netns_cookie_of(netns_path)
    except OSError:
        return None


def _machine_addresses(nat_sources: set[str]) -> tuple[str, ...]:
    """This namespace's IPv4 addresses but 127/8 and the networks' NAT sources (addresses of
    netplumb's own translations, which no client is meant to connect to)."""
    from _socket import AF_INET, inet_ntoa

    from netplumb.kernel.netlink import Netlink

    with Netlink() as nl:
        found = {inet_ntoa(a.address) for a in nl.addresses(AF_INET) if len(a.address) == 4}
    return tuple(sorted(a for a in found if not a.startswith("127.") and a not in nat_sources))


def _fresh(machine: int) -> model.Reach:
    """The reach from the kernel (addresses) and the records (networks, hosts)."""
    guests: dict[str, list[int]] = {}
    for name in state.names("hosts"):
        rec = state.read("hosts", name)
        cookie = rec.get("netns_cookie") if rec else None
        if rec is None or not isinstance(cookie, int):
            continue  # started by a netplumb without the redirection: the DNAT serves it
        for n in rec.get("networks", []):
            guests.setdefault(str(n["network"]), []).append(cookie)
    nat: set[str] = set()
    open_nets = []
    for name in ruleinputs.network_names():
        net = ruleinputs.network(name)
        if net is None:
            continue
        nat.update(str(ip) for ip in net.nat_sources)
        if net.gateway.version == 4 and not net.isolation and not net.internal:
            cookies = tuple(sorted(set(guests.get(net.name, ()))))
            if cookies:
                open_nets.append((str(net.subnet), cookies))
    return model.Reach(machine, _machine_addresses(nat), tuple(open_nets))


def _stored(machine: int) -> tuple[model.Reach, set[int]] | None:
    """The reach of the record (with this namespace's cookie), and the cookies written."""
    rec = state.read(*REACH)
    if rec is None:
        return None
    nets = tuple((str(s), tuple(int(c) for c in cookies)) for s, cookies in rec["networks"])
    reach = model.Reach(machine, tuple(str(a) for a in rec["addresses"]), nets)
    return reach, {int(c) for c in rec["cookies"]}


def _store(reach: model.Reach, cookies: set[int]) -> None:
    rec: Record = {
        "addresses": list(reach.addresses),
        "networks": [[s, list(c)] for s, c in reach.networks],
        "cookies": sorted(cookies),
    }
    if state.read(*REACH) != rec:
        state.write(rec, *REACH)


def redirect(add: list[Record], drop: list[Record]) -> bool:
    """The entries of bindings published (``add``) and unpublished (``drop``), with the reach
    of the record (made first if there is none). Returns whether the kernel changed."""
    adding, dropping = bindings(add), bindings(drop)
    if not (adding or dropping):
        return False
    from netplumb.kernel import socklb

    if socklb.cgroup_root() is None:
        return False
    machine = socklb.netns_cookie()
    stored = _stored(machine)
    if stored is None:
        reach = _fresh(machine)
        _store(reach, reach.guests())
    else:
        reach = stored[0]
    new = model.entries(adding, reach)
    gone = [k for k in model.entries(dropping, reach) if k not in new]
    return socklb.update(new, gone)


def refresh() -> bool:
    """Make every entry of this namespace and of its guests equal to the records, with the
    reach made again; returns whether the kernel changed. Without a published port, the
    entries and the record go."""
    from netplumb.kernel import socklb

    if socklb.cgroup_root() is None:
        return False
    machine = socklb.netns_cookie()
    stored = _stored(machine)
    written = stored[1] if stored else set()
    published = bindings(portrecords.all_bindings())
    if not published:
        changed = socklb.update({}, [], {machine, *written})
        if stored is not None:
            state.remove(*REACH)
        return changed
    reach = _fresh(machine)
    guests = reach.guests()
    _store(reach, written | guests)  # before the kernel: a crash leaves no entry unlisted
    changed = socklb.update(model.entries(published, reach), [], {machine, *written, *guests})
    _store(reach, guests)
    return changed


def forget(cookies: Iterable[int]) -> bool:
    """Guests that went: every entry of theirs goes, and they leave the record. Returns
    whether the kernel changed."""
    gone = set(cookies)
    if not gone:
        return False
    from netplumb.kernel import socklb

    changed = socklb.update({}, [], gone)
    stored = _stored(0)
    if stored is not None:
        reach, written = stored
        nets = tuple(
            (s, kept) for s, c in reach.networks if (kept := tuple(x for x in c if x not in gone))
        )
        _store(model.Reach(0, reach.addresses, nets), written - gone)
    return changed

"""Removing what netplumb owns: every attachment of an owner, and ``gc`` of dead guests.

Only objects that carry netplumb's mark (an interface alias ``netplumb:<owner>``) or that
netplumb's own records name are ever removed; nothing is matched by name pattern.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.session import BRIDGE_MARK, Session
from netplumb.model.names import mark_owner, owner_mark
from netplumb.runtimes.guests import alive, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def _records_of(owner: str) -> list[tuple[str, Record]]:
    out = []
    for name in state.names("attach"):
        if name.rpartition("@")[0] == owner:
            record = state.read("attach", name)
            if record is not None:
                out.append((name, record))
    return out


def _release_dead(name: str, record: Record, host: Netlink) -> None:
    """The guest is gone: its namespace took the guest ends with it; clean the host side."""
    from netplumb.kernel import dhcp

    pf = record.get("dhcp_pidfile")
    if isinstance(pf, str):
        dhcp.stop(pf, str(record.get("ifname", "")))
    host_name = record.get("host_name")
    if record.get("kind") == "veth" and isinstance(host_name, str):
        link = host.get_link(host_name)
        if link is not None and link.alias == owner_mark(str(record.get("owner"))):
            host.delete_link(link.index, f'cannot delete veth "{host_name}"')
    state.remove("attach", name)


def release_owner(owner: str) -> int:
    """Detach every interface netplumb attached to ``owner``; returns how many."""
    from netplumb import networks, ports
    from netplumb.engine import _undo_from_results

    ports.release(owner)
    records = _records_of(owner)
    for net, _ip in networks.leases_of(owner):
        networks.release(net, owner)
    if not records:
        return 0
    kind, _, ref = owner.partition(":")
    guest = None
    if kind == "host" and alive(owner):
        try:
            guest = resolve(ref)
        except NetplumbError:
            guest = None
    with Netlink() as host:
        for name, record in records:
            if guest is None:
                _release_dead(name, record, host)
                continue
            session = Session(guest.fd)
            try:
                record["owner_mark"] = owner_mark(owner)
                _undo_from_results(session, str(record["ifname"]), record)
                state.remove("attach", name)
            finally:
                session.close()
    if guest is not None:
        guest.close()
    if ports.isolation_in_use():
        ports.sync()  # the guest's ports leave the isolated networks' port sets
    return len(records)


def gc() -> list[str]:
    """Remove what belongs to dead guests, and nothing else; returns what was removed."""
    from netplumb.hosts import runtime

    removed: list[str] = []
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is not None and runtime.status(record) == "lost":
            release_owner(f"host:{name}")
            state.remove("hosts", name)
            runtime._remove_files(name)
            removed.append(f"host {name}")
    from netplumb import networks, ports

    for owner in state.names("ports"):
        if not alive(owner):
            ports.release(owner)
            removed.append(f"published ports of {owner}")
    for net in networks.names():
        for ip, owner in networks._leases(net).items():
            if not alive(owner):
                networks.release(net, owner)
                removed.append(f"address {ip} of {owner}")
    with Netlink() as host:
        for name in state.names("attach"):
            record = state.read("attach", name)
            if record is None:
                continue
            owner = str(record.get("owner"))
            if not alive(owner):
                _release_dead(name, record, host)
                removed.append(f"attachment {name}")
        links = host.links()
        masters = {ln.master for ln in links if ln.master}
        for link in links:
            marked = mark_owner(link.alias)
            if marked is None:
                continue
            if link.alias == BRIDGE_MARK:
                if link.index not in masters:
                    from netplumb.kernel import dockeruser

                    host.delete_link(link.index, f'cannot delete bridge "{link.name}"')
                    dockeruser.forget_bridge(link.name)
                    removed.append(f"bridge {link.name}")
            elif not alive(marked):
                host.delete_link(link.index, f'cannot delete "{link.name}"')
                removed.append(f"link {link.name}")
    return removed

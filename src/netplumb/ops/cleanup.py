"""Removing what netplumb owns: every attachment of an owner (``gc`` of dead guests is
``ops/gc.py``, which uses this).

Only objects that carry netplumb's mark (an interface alias ``netplumb:<owner>``) or that
netplumb's own records name are ever removed; nothing is matched by name pattern.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.session import Session
from netplumb.model.names import mark_owner, owner_mark
from netplumb.runtimes.guest import Guest
from netplumb.runtimes.guests import alive, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def records_of(owner: str) -> list[tuple[str, Record]]:
    """The owner's attach records, through the state's per-owner index (not every record)."""
    out = []
    for name in state.group_names("attach", owner):
        record = state.read("attach", name)
        if record is not None:  # None: removed since (the list keeps names until the last)
            out.append((name, record))
    return out


def release_dead(name: str, record: Record, host: Netlink) -> None:
    """The guest is gone: its namespace took the guest ends with it; clean the host side."""
    from netplumb.kernel import dhcp

    pf = record.get("dhcp_pidfile")
    if isinstance(pf, str):
        dhcp.stop(pf, str(record.get("ifname", "")))
    host_name = record.get("host_name")
    if record.get("kind") == "veth" and isinstance(host_name, str):
        link = host.get_link(host_name)
        if link is not None and mark_owner(link.alias) == str(record.get("owner")):
            host.delete_link(link.index, f'cannot delete veth "{host_name}"')
    state.remove("attach", name)


def undo_in(guest: Guest, owner: str, name: str, record: Record) -> None:
    """Undo one attachment inside its living guest, then forget its record."""
    from netplumb.ops.engine import undo_from_results

    session = Session(guest.fd)
    try:
        record["owner_mark"] = owner_mark(owner)
        undo_from_results(session, str(record["ifname"]), record)
        state.remove("attach", name)
    finally:
        session.close()


def release_owner(owner: str) -> int:
    """Detach every interface netplumb attached to ``owner``; returns how many."""
    from netplumb.ops import ports
    from netplumb.state import leases

    kind, _, ref = owner.partition(":")
    held = state.read("hosts", ref) if kind == "host" else None
    ports.release(owner)
    if held is not None:
        ports.guests_went([held])  # its own connections: no more redirected
    records = records_of(owner)
    # every lease of the owner (network addresses, CNI pools) and of its interfaces (the LAN
    # pool's holders are attach records, ``<owner>@<ifname>``), in every table at once
    leases.release_owners([owner, *(name for name, _ in records)])
    if not records:
        return 0
    guest = None
    if kind == "host" and alive(owner):
        try:
            guest = resolve(ref)
        except NetplumbError:
            guest = None
    with Netlink() as host:
        for name, record in records:
            if guest is None:
                release_dead(name, record, host)
                continue
            undo_in(guest, owner, name, record)
    if guest is not None:
        guest.close()
    if ports.isolation_in_use():
        ports.isolation_changed()  # the guest's ports leave the isolated networks' port sets
    return len(records)


# Interfaces that go with the guest's network namespace when its last process exits: the
# kernel deletes them (and a veth's host end with its peer) for many namespaces in one batch.
# Deleting each veth by hand costs an RCU grace period (~37 ms here) per guest.
_DIE_WITH_NAMESPACE = ("veth", "macvlan")


def release_before_exit(owner: str, records: list[tuple[str, Record]]) -> list[tuple[str, Record]]:
    """The first half of removing a guest whose namespace is about to go: stop its DHCP
    clients (they hold the namespace) and undo, while it lives, what would outlive it (a
    physical interface would fall back to the machine's first namespace); returns the records
    left, whose interfaces die with the namespace."""
    from netplumb.kernel import dhcp

    left: list[tuple[str, Record]] = []
    undo: list[tuple[str, Record]] = []
    for name, record in records:
        pf = record.get("dhcp_pidfile")
        if isinstance(pf, str):
            dhcp.stop(pf, str(record.get("ifname", "")))
            record.pop("dhcp_pidfile")
        (left if record.get("kind") in _DIE_WITH_NAMESPACE else undo).append((name, record))
    if undo:
        kind, _, ref = owner.partition(":")
        try:
            guest = resolve(ref) if kind == "host" and alive(owner) else None
        except NetplumbError:
            guest = None
        if guest is None:
            return left + undo  # nothing to undo in: the host side is cleaned after exit
        with guest:
            for name, record in undo:
                undo_in(guest, owner, name, record)
    return left


def release_after_exit(records: list[tuple[str, Record]], timeout: float = 10.0) -> None:
    """The second half, once the guests' processes are gone: wait until the kernel has
    deleted the host ends of their veths with their namespaces, delete (by mark) any still
    there after ``timeout`` (a process that joined a namespace keeps it), remove the records."""
    import time

    wanted: dict[str, str] = {}
    for _name, record in records:
        host_name = record.get("host_name")
        if record.get("kind") == "veth" and isinstance(host_name, str):
            wanted[host_name] = str(record.get("owner"))
    deadline = time.monotonic() + timeout
    pause = 0.002
    with Netlink() as host:
        while wanted:
            present = {
                ln.name for ln in host.links() if wanted.get(ln.name) == mark_owner(ln.alias)
            }
            wanted = {n: m for n, m in wanted.items() if n in present}
            if not wanted or time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        for name, record in records:
            if record.get("host_name") in wanted or isinstance(record.get("dhcp_pidfile"), str):
                release_dead(name, record, host)  # deletes what is still there, by its mark
            else:
                state.remove("attach", name)

"""Bring the kernel back to the records: ``netplumb reconcile``, and each pass of ``watch``.

For every attach record whose guest is alive (resolved again: a restarted Docker container has
a new network namespace), a missing interface is made again by the attach engine, from the
request the record holds (same name, addresses, MAC, routes, host end, DHCP client); one that
is there but lost an address, its state up or its default route gets them back. Objects that
carry this state directory's mark (``state.scope_id``) but that no record names are removed,
in the guests and in netplumb's own namespace; objects with another scope's mark, or with a
mark made before scopes, are never removed here (``gc`` removes those of dead guests). Then
netplumb's nftables table (with the published ports' container addresses brought up to date)
and its DOCKER-USER rules.

An attach or detach in progress (``state.pending.busy_names``) is left alone: an attach between
marking its interface and writing its record is never taken for an orphan, nor a detach between
deleting its interface and removing its record for a loss. Interfaces are listed before the
records and the attachments in progress are read, so one that appears meanwhile is named by one
of them.
"""

from __future__ import annotations

import os
import time

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.kernel.session import Session
from netplumb.model.attach import AttachRequest
from netplumb.model.ip import IP, Interface
from netplumb.model.names import mark_owner, mark_scope
from netplumb.ops import engine
from netplumb.plan.reconcile import GuestView, is_ours, orphans, plan_repair, request_from_record
from netplumb.runtimes.guests import NETNS_RUN_DIR, Guest, from_host, from_pid, resolve
from netplumb.state import pending

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from netplumb.kernel.netlink import Link
    from netplumb.state import Record

    Log = Callable[[str], None]


def records() -> dict[str, list[tuple[str, Record]]]:
    """Every attach record, by owner."""
    out: dict[str, list[tuple[str, Record]]] = {}
    for name in state.names("attach"):
        rec = state.read("attach", name)
        if rec is not None and isinstance(rec.get("owner"), str):
            out.setdefault(rec["owner"], []).append((name, rec))
    return out


def find_guest(owner: str, guest_name: str) -> Guest | None:
    """The live guest a record's owner key names, or None (gone, stopped, or a namespace path,
    which cannot be found again). The key must match: a new netns of the same name, or a PID
    reused by another process, is another guest."""
    kind, _, rest = owner.partition(":")
    try:
        found: Guest | None = None
        if kind == "docker":
            from netplumb.runtimes import docker

            found = docker.guest(rest)  # NetplumbError when it is not running
        elif kind == "host":
            found = from_host(rest)
        elif kind == "netns":
            found = resolve(rest.rpartition(":")[0])
        elif kind == "pid":
            found = from_pid(int(rest.partition(":")[0]), guest_name)
    except (NetplumbError, OSError, ValueError):
        return None
    if found is not None and found.key != owner:
        found.close()
        return None
    return found


def _view(session: Session, link: Link, families: Iterable[int]) -> GuestView:
    addrs = frozenset(
        Interface(IP(a.address), a.prefixlen)
        for a in session.guest.addresses()
        if a.index == link.index and len(a.address) in (4, 16)
    )
    defaults = frozenset(
        IP(gw)
        for fam in families
        for gw, oif, _proto in session.guest.default_routes(fam)
        if gw is not None and oif == link.index
    )
    return GuestView(link.alias, link.up, addrs, defaults)


def _recreate(session: Session, guest: Guest, name: str, record: Record, log: Log) -> None:
    """Attach again as the record says, through the engine's observe, plan and apply."""
    req = request_from_record(record, guest.name)
    ifname = req.guest_ifname
    session.results = {}  # this attachment's alone (a session serves all of a guest's records)
    pf = record.get("dhcp_pidfile")
    if isinstance(pf, str):  # the old client holds the old namespace: stop it first
        from netplumb.kernel import dhcp

        dhcp.stop(pf, ifname)
    host_name = record.get("host_name")
    if record.get("kind") == "veth" and isinstance(host_name, str):
        # The old host end outlives its namespace for a moment (the kernel deletes dead
        # namespaces in a work queue); its guest end is not in this guest: it is stale.
        stale = session.host.get_link(host_name)
        if stale is not None and mark_owner(stale.alias) == guest.key:
            session.host.delete_link(stale.index, f'cannot delete stale veth "{host_name}"')
    actions = engine.plan_for(session, req, guest)

    def commit() -> None:
        if state.read("attach", name) is None:  # removed meanwhile (``rm``): undo, say nothing
            raise _Gone(name)
        new = {k: v for k, v in record.items() if k not in ("dhcp_pidfile", "previous_defaults")}
        new.update(session.results, restored=time.time())
        state.write(new, "attach", name)

    engine.apply(session, guest, actions, commit)
    _announce_again(guest, ifname, req)
    log(f"restored {ifname} of {guest.name} ({record.get('describe', req.describe())})")


class _Gone(NetplumbError):
    """The record a restore was made from was removed while it ran (an ``rm`` or ``detach``
    of the guest): the restore is rolled back, and it is no failure."""


def _announce_again(guest: Guest, ifname: str, req: AttachRequest) -> None:
    """One gratuitous ARP once the interface is back. The kernel's own (arp_notify, on link-up)
    can leave before the bridge forwards on the new port, and a neighbour that kept asking
    while the interface was gone then waits for its next ARP retry, a second later: that is
    what a quarter of the restarts in bench/restart.py showed (~1.03 s against ~7 ms)."""
    v4 = [s.interface.ip for s in req.addresses if s.interface and s.interface.version == 4]
    if not v4:
        return
    from netplumb.kernel import arp, netns
    from netplumb.lan.arp import Timing

    try:
        with netns.entered(guest.fd):
            arp.announce(ifname, v4[0], Timing(0, 0.0, 0.0, 1, 0.0))
    except (NetplumbError, OSError):
        pass  # the address is back in any case; the neighbour's own retry finds it


def _restore_guest(guest: Guest, recs: list[tuple[str, Record]], sweep: bool, log: Log) -> None:
    session = Session(guest.fd)
    try:
        busy = pending.busy_names()
        for name, record in recs:
            if name in busy:
                continue
            ifname = str(record.get("ifname"))
            try:
                link = session.guest.get_link(ifname)
                if link is None:
                    _recreate(session, guest, name, record, log)
                elif not is_ours(link.alias, guest.key):
                    log(f"cannot restore {ifname} of {guest.name}: the name is taken")
                else:
                    req = request_from_record(record, guest.name)
                    fams = {s.gateway.family for s in req.addresses if s.gateway is not None}
                    actions = plan_repair(req, _view(session, link, fams))
                    if actions:
                        session.results = {}
                        engine.apply(session, guest, actions, lambda: None)
                        what = ", ".join(type(a).__name__ for a in actions)
                        log(f"repaired {ifname} of {guest.name} ({what})")
            except _Gone:
                continue
            except NetplumbError as exc:
                log(f"cannot restore {ifname} of {guest.name}: {exc}")
        if sweep:
            _sweep(session, guest, log)
    finally:
        session.close()


def _named_now() -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str]]:
    """Read after the interfaces are listed: (owner, guest ifname) and (owner, host end) pairs
    the records name, and the owners with an attach or detach in progress."""
    guest_side: set[tuple[str, str]] = set()
    host_side: set[tuple[str, str]] = set()
    for owner, rs in records().items():
        for _, r in rs:
            guest_side.add((owner, str(r.get("ifname"))))
            if r.get("kind") == "veth":
                host_side.add((owner, str(r.get("host_name"))))
    busy_owners = set()
    for name in pending.busy_names():
        owner, _, ifname = name.rpartition("@")
        guest_side.add((owner, ifname))
        busy_owners.add(owner)
    return guest_side, host_side, busy_owners


def _sweep(session: Session, guest: Guest, log: Log) -> None:
    """Remove the guest's interfaces with this scope's mark that no record names."""
    links = session.guest.links()
    guest_side, host_side, _ = _named_now()
    recorded = guest_side | host_side  # a guest may be netplumb's own namespace seen by name
    by_name = {ln.name: ln for ln in links}
    for ifname in orphans([(ln.name, ln.alias) for ln in links], recorded, state.scope_id()):
        link = by_name[ifname]
        session.guest.delete_link(link.index, f'cannot delete "{ifname}" of {guest.name}')
        log(f"removed {ifname} of {guest.name} (netplumb's mark, no record)")


def _other_guests(seen: set[str]) -> list[Guest]:
    """Guests without records to sweep for orphans: ``ip netns`` names and running Docker
    containers (only when a Docker socket is there)."""
    out: list[Guest] = []
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        names = []
    mine = os.stat("/proc/self/ns/net")
    for ns in names:
        try:
            g = resolve(ns)
        except (NetplumbError, OSError):
            continue
        st = os.fstat(g.fd)
        if g.key in seen or (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            # netplumb's own namespace (``ip netns exec X netplumb``): swept as the host is
            g.close()
        else:
            out.append(g)
    if os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST"):
        try:
            from netplumb.runtimes import docker

            ids = [c["Id"] for c in docker.client().api.containers()]
        except (NetplumbError, OSError):
            ids = []
        except Exception:  # the SDK's own errors: a dockerd going away mid-call
            ids = []
        for cid in ids:
            if f"docker:{cid[:12]}" in seen:
                continue
            try:
                dg = docker.guest(cid[:12])
            except (NetplumbError, OSError):
                continue
            if dg is not None:
                out.append(dg)
    return out


def _sweep_host(log: Log) -> None:
    """Host ends of veths with this scope's mark that no record names."""
    from netplumb.kernel.session import host_socket

    host = host_socket()
    scope = state.scope_id()
    links = host.links()
    _, named, busy = _named_now()
    for link in links:
        owner = mark_owner(link.alias)
        if owner is None or mark_scope(link.alias) != scope or owner in busy:
            continue
        if (owner, link.name) in named:
            continue
        host.delete_link(link.index, f'cannot delete "{link.name}"')
        log(f"removed {link.name} (netplumb's mark, no record)")


def reconcile(
    log: Log, owners: set[str] | None = None, sweep: bool = True, rewrite_tables: bool = True
) -> None:
    """One pass over every owner's records (or only ``owners``'), logging each repair.

    ``sweep``: also remove this scope's marked objects that no record names (in every guest
    found, and in netplumb's namespace). ``rewrite_tables``: rewrite netplumb's nftables table
    from the records (``netplumb reconcile``); else only if it drifted (``watch``). The first
    full pass after a reboot or a wipe of ``/run`` first restores Docker guests' kept records."""
    if owners is None:
        from netplumb.ops import restore

        restore.restore(log)
    recs = records()
    seen: set[str] = set()
    for owner, rs in sorted(recs.items()):
        if owners is not None and owner not in owners:
            continue
        guest = find_guest(owner, str(rs[0][1].get("guest", "")))
        if guest is None:
            continue  # stopped or gone: a start brings it back; gc forgets the dead
        seen.add(owner)
        with guest:
            _restore_guest(guest, rs, sweep, log)
    if sweep and owners is None:
        for guest in _other_guests(seen):
            with guest:
                session = Session(guest.fd)
                try:
                    _sweep(session, guest, log)
                except NetplumbError as exc:
                    log(f"cannot sweep {guest.name}: {exc}")
                finally:
                    session.close()
        _sweep_host(log)
    from netplumb.ops import dockerhosts  # link lines of and to Docker guests

    if state.names("docker"):
        dockerhosts.restore(log)
    dockerhosts.follow(owners, log)
    _refresh_ports(log, owners, rewrite_tables)
    _names(recs, seen, log)


def _names(recs: dict[str, list[tuple[str, Record]]], seen: set[str], log: Log) -> None:
    """The name server runs while a network has a member (started again if it died), and
    the Docker guests found ask it (Docker writes their resolv.conf again on a restart)."""
    from netplumb.ops import dns

    on_nets = [
        (owner, str((rec.get("signature") or {}).get("host_if")))
        for owner in seen
        for _, rec in recs[owner]
        if (rec.get("signature") or {}).get("addresses")
        and dns.on_network(str((rec.get("signature") or {}).get("host_if")))
    ]
    if not on_nets:
        return
    if dns.running() is None and dns.ensure():
        log("started the name server")
    for owner, bridge in on_nets:
        if owner.startswith("docker:"):
            dns.docker_resolver(owner, bridge)


def _refresh_ports(log: Log, owners: set[str] | None, rewrite: bool) -> None:
    """A Docker container that restarted may have a new address on Docker's network: its
    published ports follow it. Then netplumb's table: rewritten on a full pass (as
    ``reconcile`` always did), re-applied only if it drifted on an event's pass."""
    from netplumb.ops import portrules, ports
    from netplumb.state import portrecords

    changed = False
    for owner in portrecords.owners():
        if not owner.startswith("docker:") or (owners is not None and owner not in owners):
            continue
        old = portrecords.bindings(owner)
        guest_name = str(old[0].get("guest", "")) if old else ""
        guest = find_guest(owner, guest_name) if old else None
        if guest is None:
            continue
        guest.close()
        try:
            addrs = ports.guest_addresses(owner.partition(":")[2])
        except (NetplumbError, OSError):
            continue
        with portrules.PortsLock():  # the records change under the lock publish holds
            old = portrecords.bindings(owner)
            new = [
                {**b, "container_ip": addrs[b["family"]]} if b.get("family") in addrs else b
                for b in old
            ]
            if old and new != old:
                portrecords.drop(owner, old)  # the last binding takes the file with it
                portrecords.add(owner, guest_name, new)
                changed = True
                shown = ", ".join(addrs[f] for f in sorted(addrs))
                log(f"published ports of {guest_name} now go to {shown}")
    # the socket redirection's entries first: the rewrite below makes them too, silently
    if portrules.redirect_if_drifted():
        log("restored the socket and LAN redirection of published ports")
    if rewrite or changed:
        ports.sync()  # the maps' elements rendered again from the records
    elif portrules.reconcile_if_drifted():
        log("restored netplumb's nftables table")

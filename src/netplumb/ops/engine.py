"""Apply plans with rollback: attach, detach, and the record of what netplumb owns.

attach = resolve the guest (hold its namespace descriptor) -> observe -> plan (pure) -> apply
each action, keeping its undo -> write the record. Any failure undoes, in reverse, everything
this command created, so a failed attach leaves no veth, address or route behind.
"""

from __future__ import annotations

import time

from netplumb import state
from netplumb.errors import Conflict, NetplumbError, NotSupported
from netplumb.kernel.session import Session
from netplumb.lightos import exists, isdir
from netplumb.model.attach import AttachRequest
from netplumb.model.names import mark_owner
from netplumb.ops import apply as applier
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
from netplumb.plan.attach import HostLink, Observed, plan_attach
from netplumb.runtimes.guest import Guest
from netplumb.runtimes.guests import resolve
from netplumb.state import pending

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.kernel.session import Undo
    from netplumb.state import Record


def record_name(owner: str, ifname: str) -> str:
    return f"{owner}@{ifname}"


def _vlan_supported() -> bool:
    return exists("/proc/net/vlan")


def _find_dhcp_client(wanted: str | None) -> str | None:
    from netplumb.kernel import dhcp  # only DHCP attaches pay for shutil/subprocess

    return dhcp.find_client(wanted)


def plan_for(
    session: Session, req: AttachRequest, guest: Guest, dry_run: bool = False
) -> list[Action]:
    """The attach plan of ``req`` for ``guest``, against what the kernel shows now. A dry run
    does not ask for the scope (made on first use: a dry run writes nothing; no line shows it)."""
    return plan_attach(
        req,
        observe(session, req, guest),
        owner=guest.key,
        guest_short=guest.short,
        guest_name=guest.name,
        scope=None if dry_run else state.scope_id(),
    )


def observe(session: Session, req: AttachRequest, guest: Guest) -> Observed:
    link = None
    if req.host_if is not None:
        link = session.host.get_link(req.host_if)
    elif req.host_if_mac is not None:
        wanted = req.host_if_mac.octets
        link = next((ln for ln in session.host.links() if ln.mac == wanted), None)
    if link is not None and link.kind == "openvswitch":
        raise NotSupported(
            f'host interface "{link.name}" is an Open vSwitch bridge: not supported by netplumb'
        )
    host_link = HostLink(link.name, link.kind == "bridge", link.mtu) if link else None
    if link is not None and link.kind == "bridge":
        session.bridge_index[link.name] = link.index
        if mark_owner(link.alias) is None:
            session.adopted_bridges.add(link.name)
    # Whether the host end's name is taken is not asked here (one request fewer on the hot
    # path): creating it then fails with EEXIST, which create_veth reports as such.
    return Observed(
        host_link=host_link,
        guest_has_ifname=session.guest.get_link(req.guest_ifname) is not None,
        host_name_taken=False,
        dhcp_client=_find_dhcp_client(req.dhcp.client) if req.dhcp else None,
        vlan_supported=_vlan_supported() if req.vlan is not None else False,
    )


def apply(
    session: Session, guest: Guest, actions: list[Action], commit: Callable[[], None]
) -> None:
    """Apply an attach plan with the one applier (``ops/apply.py``), then ``commit`` (write the
    record); on any error, including one in ``commit``, what was done is undone in reverse."""
    applier.apply(actions, executor(session, guest), commit=commit)


def executor(session: Session, guest: Guest) -> Callable[[Action], Undo]:
    """How the applier carries out an attach action in ``session`` (a plan that holds attach
    actions among its own, CNI ADD's, executes them with this)."""
    steps: dict[type, Callable[[Action], Undo]] = {
        CreateBridge: session.create_bridge,  # type: ignore[dict-item]
        CreateVeth: session.create_veth,  # type: ignore[dict-item]
        CreateMacvlan: session.create_macvlan,  # type: ignore[dict-item]
        MoveIntoGuest: session.move_into_guest,  # type: ignore[dict-item]
        GuestLinkUp: session.guest_link_up,  # type: ignore[dict-item]
        AddAddress: session.add_address,  # type: ignore[dict-item]
        AddHostRoute: session.add_host_route,  # type: ignore[dict-item]
        ReplaceDefault: session.replace_default,  # type: ignore[dict-item]
        Announce: session.announce,  # type: ignore[dict-item]
    }

    def execute(action: Action) -> Undo:
        if isinstance(action, StartDhcp):
            from netplumb.kernel import dhcp

            pf = dhcp.start(
                guest.fd,
                guest.key,
                action.ifname,
                action.client,
                action.args,
                action.hostname,
                state.ensure_dir("dhcp"),
            )
            session.results["dhcp_pidfile"] = pf
            return lambda: dhcp.stop(pf, action.ifname)
        return steps[type(action)](action)

    return execute


def attach(
    req: AttachRequest, *, dry_run: bool = False, leased: bool = False, lan_checked: bool = False
) -> list[Action]:
    """Attach as ``req`` asks; returns the actions taken (or that would be, with dry_run).

    Attaching again exactly as recorded is a no-op; differently, a clear error. A static
    address on the host's LAN (``netplumb lan``) is probed with ARP first, and leased when it
    lies in the LAN's pool, unless the caller did that already (``lan_checked``).
    """
    with resolve(req.guest) as guest:
        existing = state.read("attach", record_name(guest.key, req.guest_ifname))
        if existing is not None:
            if existing.get("signature") == req.signature():
                return []
            raise Conflict(
                f'guest {req.guest} already has interface "{req.guest_ifname}" from netplumb, '
                f"attached differently ({existing.get('describe')}); detach it first"
            )
        session = Session(guest.fd)
        try:
            actions = plan_for(session, req, guest, dry_run)
            if dry_run:
                return actions
            # ``leased``: the caller (netplumb run) leased the addresses from the network itself
            taken = [] if leased else _lease_static(req, guest.key)
            holder = record_name(guest.key, req.guest_ifname)
            try:
                lan = [] if lan_checked else claim_lan(req, holder)
            except BaseException:
                _release_static(taken, guest.key)
                raise
            busy = pending.mark(holder)
            try:
                apply(session, guest, actions, lambda: write_record(guest, req, session.results))
            except BaseException:
                _release_static(taken, guest.key)
                release_lan(lan, holder)
                raise
            finally:
                pending.clear(busy)
            names_served(req, guest)
            return actions
        finally:
            session.close()


def names_served(req: AttachRequest, guest: Guest) -> None:
    """A guest on one of netplumb's networks gets a name there: the name server must run
    (started once; a directory listing when there are no networks), and a Docker container
    asks it (its resolv.conf)."""
    if req.host_if is not None and req.addresses and state.names("networks"):
        from netplumb.ops import dns

        if dns.on_network(req.host_if):
            dns.ensure(req.host_if)  # not waited for: its sockets are bound first
            if guest.kind == "docker":
                dns.docker_resolver(guest.key, req.host_if)


def _lease_static(req: AttachRequest, owner: str) -> list[tuple[str, str]]:
    """Static addresses on a netplumb network's bridge are leased like automatic ones, so no
    other guest can be given them (pipework never checked). Bridges outside netplumb's
    networks have no address table, and cost no lookup beyond a directory listing."""
    if not req.addresses or req.host_if is None or not state.names("networks"):
        return []
    from netplumb.ops import networks

    net = networks.by_bridge(req.host_if)
    if net is None:
        return []
    leased: list[tuple[str, str]] = []
    try:
        for spec in req.addresses:
            if spec.interface is not None and any(
                g.contains(spec.interface.ip) for g in net.gateways
            ):
                networks.lease(net.name, owner, spec.interface.ip)
                leased.append((net.name, str(spec.interface.ip)))
    except BaseException:
        _release_static(leased, owner)
        raise
    return leased


def claim_lan(req: AttachRequest, holder: str) -> list[str]:
    """Static addresses on the LAN's bridge (or macvlan parent) are probed (RFC 5227): one that
    answers is refused; one in the LAN pool is leased. Returns the leased ones. Costs one
    ``stat`` when no LAN is set up."""
    if not req.addresses or req.host_if is None or not isdir(state.path("lan")):
        return []
    from netplumb.kernel import arp
    from netplumb.ops import lanpool

    try:
        host_if, dev = lanpool.lan_target()
    except NetplumbError:
        return []
    if req.host_if != host_if:
        return []
    pool = lanpool.get_pool()
    timing = arp.timing_from_env()
    leased: list[str] = []
    try:
        for spec in req.addresses:
            if spec.interface is None or spec.interface.version != 4:
                continue
            ip = spec.interface.ip
            if pool is not None and pool.in_range(ip):
                lanpool.claim(pool, holder, ip, dev, timing)
                leased.append(str(ip))
                continue
            mac = lanpool.probe_free(dev, ip, timing)
            if mac is not None:
                raise Conflict(
                    f"address {ip} is in use on the LAN: {mac} answered an ARP probe for it "
                    "(nothing was changed)"
                )
    except BaseException:
        release_lan(leased, holder)
        raise
    return leased


def release_lan(leased: list[str], holder: str) -> None:
    if leased:
        from netplumb.ops import lanpool

        for ip in leased:
            lanpool.release(ip, holder)


def _static_leases(record: Record) -> list[tuple[str, str]]:
    """The (network, address) pairs an attach record's static addresses may hold."""
    sig = record.get("signature") or {}
    host_if = sig.get("host_if")
    if not host_if or not state.names("networks"):
        return []
    from netplumb.ops import networks

    net = networks.by_bridge(str(host_if))
    if net is None:
        return []
    return [(net.name, str(a).split("/")[0]) for a in sig.get("addresses", [])]


def _release_static(leased: list[tuple[str, str]], owner: str) -> None:
    from netplumb.ops import networks

    for name, ip in leased:
        networks.release_address(name, ip, owner)


def write_record(guest: Guest, req: AttachRequest, results: dict[str, object]) -> None:
    record: Record = {
        "owner": guest.key,
        "guest": guest.name,
        "guest_kind": guest.kind,
        "ifname": req.guest_ifname,
        "signature": req.signature(),
        "describe": req.describe(),
        "created": time.time(),
        **results,
    }
    state.write(record, "attach", record_name(guest.key, req.guest_ifname))


def undo_from_results(session: Session, ifname: str, results: dict[str, object]) -> None:
    """Remove what an attach made, as its record says."""
    pf = results.get("dhcp_pidfile")
    if isinstance(pf, str):
        from netplumb.kernel import dhcp

        dhcp.stop(pf, ifname)
    link = session.guest.get_link(ifname)
    kind = results.get("kind")
    if kind == "phys":
        if link is not None:
            original = results.get("original_mac")
            mac = bytes.fromhex(original.replace(":", "")) if isinstance(original, str) else None
            session.move_back(link.index, str(results["host_name"]), mac)
    elif link is not None:
        session.guest.delete_link(link.index, f'cannot delete "{ifname}" in the guest')
    elif kind == "veth":
        host = session.host.get_link(str(results.get("host_name")))
        owner = mark_owner(str(results.get("owner_mark")))
        if host is not None and owner is not None and mark_owner(host.alias) == owner:
            session.host.delete_link(host.index, "cannot delete the host end of the veth")
    if kind == "veth" and isinstance(results.get("bridge"), str):
        bridge = session.host.get_link(str(results["bridge"]))
        if bridge is not None and mark_owner(bridge.alias) is None:
            from netplumb.kernel import dockeruser  # someone else's bridge: netplumb's last port?

            dockeruser.sync(session.host)
    previous = results.get("previous_defaults")
    if isinstance(previous, list) and previous:
        session.restore_defaults(previous)


def fail_after_for_tests(name: str) -> None:
    applier.fail_after_for_tests(name)

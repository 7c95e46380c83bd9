"""DEL, GC, CHECK and STATUS of the netplumb-cni plugin.

DEL works from netplumb's own records and from names derived from the attachment alone
(owner ``cni:<container>:<ifname>``, veth ``npc<hash>``), never from ``prevResult``: it is
complete when the namespace is gone, when ``CNI_NETNS`` is empty (containerd), when the
runtime lost the cached result, and after an ADD that failed halfway; and it succeeds when
there is nothing left to remove, so calling it twice is fine.
"""

from __future__ import annotations

from netplumb import state
from netplumb.cni import records
from netplumb.cni.types import (
    CHECK_FAILED,
    INVALID_NETWORK_CONFIG,
    NOT_AVAILABLE,
    CniError,
)
from netplumb.errors import GuestNotFound, NetplumbError
from netplumb.lightos import exists

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netplumb.cni.config import Env, NetConf
    from netplumb.plan.actions import Action
    from netplumb.plan.cni import RemoveCniInterface


def _remove_interface(action: RemoveCniInterface) -> None:
    """The guest interface (through the engine's record when the namespace is reachable), and
    the host end of the veth if it is still there and netplumb's."""
    from netplumb.kernel.session import Session, host_socket
    from netplumb.model.names import mark_owner, owner_mark
    from netplumb.ops import engine
    from netplumb.runtimes.guests import resolve

    netns, ifname, veth = action.netns, action.ifname, action.veth
    attach_name = action.attach_record
    attach = state.read("attach", str(attach_name)) if attach_name else None
    if netns and attach is not None:
        try:
            guest = resolve(netns)
        except (GuestNotFound, OSError):
            guest = None
        if guest is not None:
            session = Session(guest.fd)
            try:
                attach["owner_mark"] = owner_mark(str(attach.get("owner")))
                engine.undo_from_results(session, ifname, attach)
            finally:
                session.close()
                guest.close()
    if veth:
        host = host_socket()
        link = host.get_link(veth)
        mine = str(attach.get("owner")) if attach else None
        if link is not None and (
            mark_owner(link.alias) == mine
            or (mine is None and (link.alias or "").startswith("netplumb:"))
        ):
            host.delete_link(link.index, f'cannot delete veth "{veth}"')
    if attach_name:
        state.remove("attach", str(attach_name))


def delete(env: Env, conf: NetConf, environ: Mapping[str, str]) -> None:
    remove_attachment(conf, env.container_id, env.ifname, env.netns, environ, env)


def plan(
    conf: NetConf, container_id: str, ifname: str, netns: str, raw: str | None = None
) -> list[Action]:
    """DEL's plan for one attachment, from its record (or, without one, from the names the
    attachment alone gives: an ADD that failed halfway or was killed)."""
    from netplumb.plan.cni import plan_del

    rname = records.name(container_id, ifname)
    rec = records.read(conf.name, rname)
    owner = records.owner(container_id, ifname)
    mode = str(rec.get("mode")) if rec else conf.mode
    network_recorded = False
    if mode == "bridge":
        from netplumb.ops import networks

        network_recorded = networks.get(conf.name) is not None
    # IPAM DEL when the plugin gave addresses, or when no record says whether it did
    ipam_type = (rec.get("ipam") if rec.get("ipam_added") else None) if rec else conf.ipam_type
    attach = rec.get("attach_record") if rec else None
    return plan_del(
        network=conf.name,
        record=rname,
        owner=owner,
        ifname=ifname,
        netns=netns or (str(rec.get("netns") or "") if rec else ""),
        mode=mode,
        veth=records.veth_name(container_id, ifname) if mode == "bridge" else None,
        attach_record=str(attach) if attach else None,
        # ports' imports cost ~4 ms: only if its record says there are some
        has_ports=exists(state.path("ports", owner)),
        network_recorded=network_recorded,
        ipam=str(ipam_type) if ipam_type else None,
        raw=raw,
        container_id=container_id,
        isolated=bool(
            rec is not None
            and rec.get("bridge")
            and conf.network is not None
            and conf.network.isolation
        ),
    )


def remove_attachment(
    conf: NetConf,
    container_id: str,
    ifname: str,
    netns: str,
    environ: Mapping[str, str],
    env: Env,
    raw: str | None = None,
) -> None:
    """Everything one attachment holds, whatever state it was left in: its plan, executed by
    the one applier (removals only: nothing to undo; the first error stops it, and the
    record stays so that the next DEL finishes the work)."""
    from netplumb.ops import apply as applier

    def execute(action: Action) -> None:
        _execute(action, conf, environ, env)

    applier.apply(plan(conf, container_id, ifname, netns, raw), execute)


def _execute(action: Action, conf: NetConf, environ: Mapping[str, str], env: Env) -> None:
    from netplumb.plan import cni as steps

    if isinstance(action, steps.RemoveCniInterface):
        _remove_interface(action)
    elif isinstance(action, steps.UnpublishCniPorts):
        from netplumb.ops import ports

        ports.release(action.owner)
    elif isinstance(action, steps.ReleaseCniLeases):
        if action.pool:
            from netplumb.cni import ipam

            ipam.pool_release(action.network, action.owner)
        else:
            from netplumb.ops import networks

            networks.release(action.network, action.owner)
    elif isinstance(action, steps.IpamDelete):
        from netplumb.cni import ipam
        from netplumb.cni.config import Env as EnvType

        a = action
        child_env = EnvType("DEL", a.container_id, a.netns, a.ifname, env.args, env.path)
        child = {**environ, "CNI_CONTAINERID": a.container_id, "CNI_IFNAME": a.ifname}
        child["CNI_NETNS"] = a.netns
        # the plugin the attachment was made with (GC also passes the config it was made with)
        ipam.delegate("DEL", conf, child_env, child, raw=a.raw, plugin=a.plugin)
    elif isinstance(action, steps.RefreshIsolation):
        from netplumb.ops import ports

        ports.isolation_changed()  # the veth leaves the isolated network's port set
    elif isinstance(action, steps.ForgetAttachment):
        records.remove(action.network, action.record)
    else:  # pragma: no cover -- plan_del makes only the above
        raise AssertionError(f"not a DEL action: {action!r}")


def gc(env: Env, conf: NetConf, environ: Mapping[str, str]) -> None:
    """Remove every attachment of this network that is not in the valid list, and the leases
    of ``cni:`` owners that are not either (an interrupted DEL): one plan, DEL's for each
    attachment followed by the releases, executed by the applier."""
    from netplumb.ops import apply as applier
    from netplumb.plan.cni import ReleaseCniLeases

    assert conf.valid is not None
    valid = set(conf.valid)
    actions: list[Action] = []
    removed: set[str] = set()
    for rname in records.names(conf.name):
        cid, ifname = records.split(rname)
        if (cid, ifname) in valid:
            continue
        rec = records.read(conf.name, rname) or {}
        raw = str(rec["conf"]) if rec.get("conf") else None
        actions += plan(conf, cid, ifname, str(rec.get("netns") or ""), raw)
        removed.add(records.owner(cid, ifname))
    keep = {records.owner(c, i) for c, i in valid} | removed
    if conf.network is not None:
        from netplumb.ops import networks

        owners = set(networks.leases(conf.name).values()) if networks.get(conf.name) else set()
    else:
        from netplumb.cni import ipam

        owners = ipam.pool_owners(conf.name)
    for o in sorted(owners):
        if o.startswith("cni:") and o not in keep:
            actions.append(ReleaseCniLeases(conf.name, o, pool=conf.network is None))

    def execute(action: Action) -> None:
        _execute(action, conf, environ, env)

    applier.apply(actions, execute)


def check(env: Env, conf: NetConf) -> None:
    """The attachment is as ADD made it: its record, then the plan of what ADD made
    (``plan_check``: interface, MAC, addresses, leases, ports) against what the kernel and
    netplumb's tables show. Changes nothing."""
    from netplumb.kernel.netns import socket_in
    from netplumb.model.ip import IP, Interface
    from netplumb.ops import networks
    from netplumb.plan.actions import AddAddress
    from netplumb.runtimes.guests import resolve

    if conf.prev_result is None:
        raise CniError(INVALID_NETWORK_CONFIG, "invalid network config: CHECK needs prevResult")
    rname = records.name(env.container_id, env.ifname)
    rec = records.read(conf.name, rname)
    where = f'container {env.container_id} interface "{env.ifname}"'
    if rec is None or rec.get("phase") != "added":
        raise CniError(CHECK_FAILED, f"{where}: no attachment on network {conf.name}")
    prev_ifs = conf.prev_result.get("interfaces")
    if not isinstance(prev_ifs, list):
        prev_ifs = []
    if not any(isinstance(i, dict) and i.get("name") == env.ifname for i in prev_ifs):
        raise CniError(CHECK_FAILED, f"{where}: not in prevResult's interfaces")
    from netplumb.plan import cni as steps

    expected = steps.plan_check(
        owner=str(rec["owner"]),
        ifname=env.ifname,
        mac=str(rec["mac"]) if rec.get("mac") else None,
        addresses=tuple(Interface.parse(str(a)) for a in rec.get("addresses") or []),
        leased_in=conf.name if conf.network is not None and conf.ipam_type is None else None,
        ports=max(len(conf.port_maps), 1) if rec.get("ports") else 0,
    )
    with resolve(env.netns) as guest, socket_in(guest.fd) as nl:
        link = nl.get_link(env.ifname)
        have = (
            {Interface(IP(a.address), a.prefixlen) for a in nl.addresses() if a.index == link.index}
            if link is not None
            else set()
        )
    held: set[str] | None = None
    for action in expected:
        if isinstance(action, steps.GuestInterface):
            if link is None:
                raise CniError(CHECK_FAILED, f"{where}: the interface is gone")
            mac = link.mac.hex(":")
            if action.mac and mac != action.mac:
                raise CniError(CHECK_FAILED, f"{where}: MAC is {mac}, ADD set {action.mac}")
        elif isinstance(action, AddAddress):
            if action.interface not in have:
                raise CniError(CHECK_FAILED, f"{where}: address {action.interface} is missing")
        elif isinstance(action, steps.LeaseCniAddress):
            if held is None:
                held = {ip for _n, ip in networks.leases_of(action.owner)}
            if str(action.ip) not in held:
                raise CniError(CHECK_FAILED, f"{where}: the lease of {action.gateway} is gone")
        elif isinstance(action, steps.PublishCniPorts) and not exists(
            state.path("ports", action.owner)
        ):
            raise CniError(CHECK_FAILED, f"{where}: its published ports are gone")


def status(conf: NetConf) -> None:
    """Whether an ADD could be served now (code 50 if not)."""
    try:
        state.ensure_dir(records.DIR)
    except OSError as exc:
        raise CniError(NOT_AVAILABLE, f"netplumb's state directory: {exc.strerror}") from None
    from netplumb.kernel.session import host_socket

    if conf.mode == "macvlan" and host_socket().get_link(str(conf.master)) is None:
        raise CniError(NOT_AVAILABLE, f'master interface "{conf.master}" does not exist')
    if conf.network is not None:
        from netplumb.ops import networks

        try:
            existing = networks.get(conf.name)
        except NetplumbError as exc:
            raise CniError(NOT_AVAILABLE, str(exc)) from None
        if existing is not None and existing != conf.network:
            raise CniError(
                NOT_AVAILABLE,
                f"network {conf.name} exists in netplumb with another definition "
                f"({existing.subnet} on {existing.bridge})",
            )

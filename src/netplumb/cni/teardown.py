"""DEL, GC, CHECK and STATUS of the netplumb-cni plugin.

DEL works from netplumb's own records and from names derived from the attachment alone
(owner ``cni:<container>:<ifname>``, veth ``npc<hash>``), never from ``prevResult``: it is
complete when the namespace is gone, when ``CNI_NETNS`` is empty (containerd), when the
runtime lost the cached result, and after an ADD that failed halfway; and it succeeds when
there is nothing left to remove, so calling it twice is fine.
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.cni import records
from netplumb.cni.types import (
    CHECK_FAILED,
    INVALID_NETWORK_CONFIG,
    NOT_AVAILABLE,
    CniError,
)
from netplumb.errors import GuestNotFound, NetplumbError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netplumb.cni.config import Env, NetConf
    from netplumb.state import Record


def _remove_interface(rec: Record | None, netns: str, ifname: str, veth: str | None) -> None:
    """The guest interface (through the engine's record when the namespace is reachable), and
    the host end of the veth if it is still there and netplumb's."""
    from netplumb.kernel.session import Session, host_socket
    from netplumb.model.names import mark_owner, owner_mark
    from netplumb.ops import engine
    from netplumb.runtimes.guests import resolve

    attach_name = rec.get("attach_record") if rec else None
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


def _release(conf_name: str, mode: str, owner: str) -> None:
    from netplumb.ops import networks

    if os.path.exists(state.path("ports", owner)):  # ports' imports cost ~4 ms: only if needed
        from netplumb.ops import ports

        ports.release(owner)
    if mode == "bridge":
        if networks.get(conf_name) is not None:
            networks.release(conf_name, owner)
    else:
        from netplumb.cni import ipam

        ipam.pool_release(conf_name, owner)


def delete(env: Env, conf: NetConf, environ: Mapping[str, str]) -> None:
    remove_attachment(conf, env.container_id, env.ifname, env.netns, environ, env)


def remove_attachment(
    conf: NetConf,
    container_id: str,
    ifname: str,
    netns: str,
    environ: Mapping[str, str],
    env: Env,
    raw: str | None = None,
) -> None:
    """Everything one attachment holds, whatever state it was left in."""
    rname = records.name(container_id, ifname)
    rec = records.read(conf.name, rname)
    owner = records.owner(container_id, ifname)
    mode = str(rec.get("mode")) if rec else conf.mode
    veth = records.veth_name(container_id, ifname) if mode == "bridge" else None
    _remove_interface(rec, netns or (str(rec.get("netns") or "") if rec else ""), ifname, veth)
    _release(conf.name, mode, owner)
    # IPAM DEL when the plugin gave addresses, or when no record says whether it did
    ipam_type = (rec.get("ipam") if rec.get("ipam_added") else None) if rec else conf.ipam_type
    if ipam_type:
        from netplumb.cni import ipam
        from netplumb.cni.config import Env as EnvType

        child_env = EnvType("DEL", container_id, netns, ifname, env.args, env.path)
        child = {**environ, "CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname}
        child["CNI_NETNS"] = netns
        # the plugin the attachment was made with (GC also passes the config it was made with)
        ipam.delegate("DEL", conf, child_env, child, raw=raw, plugin=str(ipam_type))
    isolated = conf.network is not None and conf.network.isolation
    if rec is not None and rec.get("bridge") and isolated:
        from netplumb.ops import ports

        ports.isolation_changed()  # the veth leaves the isolated network's port set
    records.remove(conf.name, rname)


def gc(env: Env, conf: NetConf, environ: Mapping[str, str]) -> None:
    """Remove every attachment of this network that is not in the valid list."""
    assert conf.valid is not None
    valid = set(conf.valid)
    for rname in records.names(conf.name):
        cid, ifname = records.split(rname)
        if (cid, ifname) in valid:
            continue
        rec = records.read(conf.name, rname) or {}
        raw = str(rec["conf"]) if rec.get("conf") else None
        remove_attachment(conf, cid, ifname, str(rec.get("netns") or ""), environ, env, raw)
    # leases of attachments that have no record any more (an interrupted DEL)
    valid_owners = {records.owner(c, i) for c, i in valid}
    if conf.network is not None:
        from netplumb.ops import networks

        if networks.get(conf.name) is not None:
            for o in set(networks.leases(conf.name).values()):
                if o.startswith("cni:") and o not in valid_owners:
                    networks.release(conf.name, o)
    else:
        from netplumb.cni import ipam

        for o in ipam.pool_owners(conf.name):
            if o.startswith("cni:") and o not in valid_owners:
                ipam.pool_release(conf.name, o)


def check(env: Env, conf: NetConf) -> None:
    """The attachment is as ADD made it: record, interface, MAC, addresses, leases, ports."""
    from netplumb.kernel.netns import socket_in
    from netplumb.model.ip import IP
    from netplumb.ops import networks
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
    with resolve(env.netns) as guest, socket_in(guest.fd) as nl:
        link = nl.get_link(env.ifname)
        if link is None:
            raise CniError(CHECK_FAILED, f"{where}: the interface is gone")
        mac = link.mac.hex(":")
        if rec.get("mac") and mac != rec["mac"]:
            raise CniError(CHECK_FAILED, f"{where}: MAC is {mac}, ADD set {rec['mac']}")
        have = {f"{IP(a.address)}/{a.prefixlen}" for a in nl.addresses() if a.index == link.index}
    for addr in rec.get("addresses") or []:
        if addr not in have:
            raise CniError(CHECK_FAILED, f"{where}: address {addr} is missing")
    owner = str(rec["owner"])
    if conf.network is not None and conf.ipam_type is None:
        held = {ip for _n, ip in networks.leases_of(owner)}
        for addr in rec.get("addresses") or []:
            if str(addr).split("/")[0] not in held:
                raise CniError(CHECK_FAILED, f"{where}: the lease of {addr} is gone")
    if rec.get("ports") and not os.path.exists(state.path("ports", owner)):
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

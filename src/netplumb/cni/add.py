"""CNI ADD: one plan of typed actions (``plan/cni.py`` and the attach planner's), executed by
the one applier (``ops/apply.py``) with rollback.

The plan is staged because its later steps depend on what its earlier ones chose: claim the
attachment's record, make sure of the network, lease the addresses (or delegate to the IPAM
plugin); then, with the addresses known, the attach plan of ``plan/attach.py`` for the guest
as the kernel shows it now, the published ports and the isolated network's port set. The
applier takes the actions as they come (a generator) and keeps each one's undo: whatever
fails, a Ctrl-C included, undoes everything in reverse and the runtime sees the first error.
The attach record and the attachment's record are written last (the commit).
"""

from __future__ import annotations

import posix
import time

from netplumb.cni import records
from netplumb.cni.types import CONFLICT, INVALID_NETWORK_CONFIG, NOT_SUPPORTED, CniError, IPConfig
from netplumb.errors import NetplumbError
from netplumb.model.ip import IP, Interface
from netplumb.ops import apply as applier
from netplumb.plan.actions import Action
from netplumb.plan.cni import (
    ClaimAttachment,
    DelegateIpam,
    EnsureNetwork,
    LeaseCniAddress,
    PublishCniPorts,
    RefreshIsolation,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from netplumb.cni.config import Env, NetConf
    from netplumb.model.addresses import AddressSpec
    from netplumb.model.network import Network
    from netplumb.ops.attachpart import AttachPart
    from netplumb.runtimes.guest import Guest
    from netplumb.state import Record

    Undo = Callable[[], None]


def _random_mac() -> bytes:
    # chosen here rather than by the kernel so the result can name it without asking
    raw = bytearray(posix.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered
    return bytes(raw)


def _guarded(undo: Undo) -> Undo:
    """An undo whose failure (an IPAM plugin's DEL, a vanished file) does not stop the rest of
    the rollback, nor hide the ADD's own error: the applier passes over NetplumbError."""

    def run() -> None:
        try:
            undo()
        except (CniError, OSError) as exc:
            raise NetplumbError(f"undo: {exc}") from None

    return run


class _Add:
    """One ADD: its plan (``steps``), how each action is executed, and what they chose."""

    def __init__(
        self, env: Env, conf: NetConf, environ: Mapping[str, str], guest: Guest, rec: Record
    ) -> None:
        self.env, self.conf, self.environ, self.guest, self.rec = env, conf, environ, guest, rec
        self.owner = str(rec["owner"])
        self.rname = records.name(env.container_id, env.ifname)
        self.leased: list[tuple[IP, Interface]] = []  # (address, its subnet's gateway)
        self.delegated: list[tuple[Interface, IP | None]] = []
        self.routes: list[dict[str, object]] = []
        self.specs: list[AddressSpec] = []
        self.attach: AttachPart | None = None
        self.done: list[Undo] = []
        self.mac = b""

    # -- the plan --------------------------------------------------------------------------

    def steps(self) -> Iterator[Action]:
        conf, owner = self.conf, self.owner
        yield ClaimAttachment(conf.name, self.rname)
        net = conf.network
        if net is not None:
            yield EnsureNetwork(net.name, net.bridge)
        if conf.ipam_type is None:
            if net is not None:
                for ip in conf.ips:
                    gw = next((g for g in net.gateways if g.version == ip.version), net.gateway)
                    yield LeaseCniAddress(net.name, owner, ip, gw, pool=False)
                if not conf.ips:
                    for gw in net.gateways:
                        yield LeaseCniAddress(net.name, owner, None, gw, pool=False)
            else:
                pool = conf.pool
                if pool is None:  # macvlan without a subnet: no gateway known
                    raise CniError(
                        INVALID_NETWORK_CONFIG,
                        "invalid network config: subnet: missing (macvlan mode)",
                    )
                for wanted in conf.ips or (None,):
                    yield LeaseCniAddress(conf.name, owner, wanted, pool, pool=True)
            self._own_specs()
        else:
            yield DelegateIpam(conf.ipam_type)
            self._check_routes()
            if net is not None:  # leased in the network's table too: netplumb's leases avoid them
                for iface, _gw in self.delegated:
                    yield LeaseCniAddress(net.name, owner, iface.ip, iface, pool=False)
            self._delegated_specs()
        yield from self._attach_steps()
        if conf.port_maps:
            yield PublishCniPorts(owner, len(conf.port_maps))
        if net is not None and net.isolation:
            yield RefreshIsolation(net.name)  # the new veth joins the isolated port set

    def _own_specs(self) -> None:
        from netplumb.model.addresses import AddressSpec

        for ip, gw in self.leased:
            first = self.conf.default_route and not any(
                s.gateway is not None and s.gateway.version == ip.version for s in self.specs
            )
            self.specs.append(AddressSpec(Interface(ip, gw.prefixlen), gw.ip if first else None))
            if first:
                dst = "0.0.0.0/0" if ip.version == 4 else "::/0"
                self.routes.append({"dst": dst, "gw": str(gw.ip)})

    def _check_routes(self) -> None:
        for r in self.routes:
            dst = str(r.get("dst", ""))
            if dst not in ("0.0.0.0/0", "::/0"):
                raise CniError(
                    NOT_SUPPORTED,
                    f"IPAM plugin {self.conf.ipam_type} asks for a route to {dst}: "
                    "netplumb-cni installs default routes only",
                )

    def _delegated_specs(self) -> None:
        from netplumb.model.addresses import AddressSpec

        for iface, ipam_gw in self.delegated:
            default = next(
                (r for r in self.routes if (":" in str(r["dst"])) == (iface.version == 6)), None
            )
            via = default.get("gw") if default else None
            route_gw = IP.parse(str(via)) if via else ipam_gw if default else None
            if any(
                s.gateway is not None and s.gateway.version == iface.version for s in self.specs
            ):
                route_gw = None
            self.specs.append(AddressSpec(iface, route_gw))

    def _attach_steps(self) -> Iterator[Action]:
        """The attach planner's actions for the guest as the kernel shows it now."""
        from netplumb.model.attach import AttachRequest
        from netplumb.model.mac import Mac
        from netplumb.ops.attachpart import AttachPart

        conf, env = self.conf, self.env
        self.mac = conf.ifname_mac.octets if conf.ifname_mac else _random_mac()
        req = AttachRequest(
            guest=env.netns,
            host_if=conf.network.bridge if conf.network is not None else str(conf.master),
            guest_ifname=env.ifname,
            host_ifname=self.rec.get("host_ifname"),
            addresses=tuple(self.specs),
            mac=Mac(self.mac),
        )
        self.attach = AttachPart(self.guest, req)
        yield from self.attach.steps(self.done)

    # -- execution -------------------------------------------------------------------------

    def execute(self, action: Action) -> Undo | None:
        undo = self._execute(action)
        return None if undo is None else _guarded(undo)

    def _execute(self, action: Action) -> Undo | None:
        conf, owner = self.conf, self.owner
        if isinstance(action, ClaimAttachment):
            if not records.create(conf.name, self.rname, self.rec):
                raise CniError(
                    CONFLICT,
                    f"container {self.env.container_id} already has interface "
                    f'"{self.env.ifname}" on network {conf.name} (DEL it first)',
                )
            return lambda: records.remove(conf.name, self.rname)
        if isinstance(action, EnsureNetwork):
            assert conf.network is not None
            _ensure_network(conf.network)
            return None  # a network outlives its attachments
        if isinstance(action, LeaseCniAddress):
            return self._lease(action)
        if isinstance(action, DelegateIpam):
            return self._delegate()
        if isinstance(action, PublishCniPorts):
            from netplumb.ops import ports

            family: dict[int, str] = {}
            for s in self.specs:
                if s.interface is not None:
                    family.setdefault(s.interface.version, str(s.interface.ip))
            self.rec["ports"] = True
            records.write(conf.name, self.rname, self.rec)

            def undo() -> None:
                ports.release(owner)

            try:
                ports.publish(
                    owner,
                    f"cni:{self.env.container_id}",
                    [m.spec() for m in conf.port_maps],
                    addresses=family,
                )
            except BaseException:
                undo()  # a batch of several mappings may have published some
                raise
            return undo
        if isinstance(action, RefreshIsolation):
            from netplumb.ops import ports

            ports.isolation_changed()
            return None  # undone by the first undo, once the veth is gone (``run``)
        assert self.attach is not None
        return self.attach.execute(action)

    def _lease(self, a: LeaseCniAddress) -> Undo:
        if a.pool:
            from netplumb.cni import ipam

            ip = ipam.pool_lease(a.network, a.gateway, a.owner, a.ip)
            self.leased.append((ip, a.gateway))
            return lambda: ipam.pool_release(a.network, a.owner)
        from netplumb.ops import networks

        if a.ip is not None:
            ip = networks.lease(a.network, a.owner, a.ip)
        else:
            ip = networks.lease(a.network, a.owner, family=a.gateway.version)
        if self.conf.ipam_type is None:
            self.leased.append((ip, a.gateway))
        return lambda: networks.release_address(a.network, str(ip), a.owner)

    def _delegate(self) -> Undo:
        from netplumb.cni import ipam

        conf, env = self.conf, self.env
        result = ipam.delegate("ADD", conf, env, self.environ)
        assert result is not None
        self.rec["ipam_added"] = True  # from now on DEL must give the addresses back
        records.write(conf.name, self.rname, self.rec)

        def undo() -> None:
            from netplumb.cni.config import Env as EnvType

            child = EnvType("DEL", env.container_id, env.netns, env.ifname, env.args, env.path)
            ipam.delegate("DEL", conf, child, self.environ, plugin=str(conf.ipam_type))

        for entry in result["ips"]:
            gw = IP.parse(str(entry["gateway"])) if entry.get("gateway") else None
            self.delegated.append((Interface.parse(str(entry["address"])), gw))
        self.routes = [dict(r) for r in result.get("routes") or []]
        return undo

    def commit(self) -> None:
        self.rec.update(
            phase="added",
            mac=":".join(f"{b:02x}" for b in self.mac),
            addresses=[str(s.interface) for s in self.specs],
        )
        records.write(self.conf.name, self.rname, self.rec)

    def run(self) -> None:
        conf = self.conf
        refresh = conf.network is not None and conf.network.isolation

        def last() -> None:  # undone last: the isolated set loses the veth once it is gone
            if refresh and self.attach is not None and self.attach.session is not None:
                from netplumb.ops import ports

                ports.isolation_changed()

        self.done.append(_guarded(last))
        try:
            applier.apply(self.steps(), self.execute, commit=self.commit, undo=self.done)
        finally:
            if self.attach is not None:
                self.attach.close()


def add(env: Env, conf: NetConf, environ: Mapping[str, str]) -> dict[str, object]:
    from netplumb.runtimes.guests import resolve

    with resolve(env.netns) as guest:  # code 3 when the namespace is not there
        owner = records.owner(env.container_id, env.ifname)
        from netplumb.ops import engine

        rec: Record = {
            "network": conf.name,
            "container_id": env.container_id,
            "ifname": env.ifname,
            "netns": env.netns,
            "owner": owner,
            "mode": conf.mode,
            "ipam": conf.ipam_type,
            "conf": conf.raw,
            "phase": "adding",
            "created": time.time(),
            "attach_record": engine.record_name(guest.key, env.ifname),
        }
        if conf.network is not None:
            rec["bridge"] = conf.network.bridge
            rec["host_ifname"] = records.veth_name(env.container_id, env.ifname)
        run = _Add(env, conf, environ, guest, rec)
        run.run()
    return _result(run)


def _result(run: _Add) -> dict[str, object]:
    from netplumb.cni.types import result_json

    conf, env = run.conf, run.env
    mac_text = str(run.rec["mac"])
    container_if: dict[str, object] = {"name": env.ifname, "mac": mac_text, "sandbox": env.netns}
    if conf.network is not None:
        interfaces = [
            _host_if(conf.network.bridge),
            _host_if(str(run.rec["host_ifname"])),
            container_if,
        ]
        index = 2
    else:
        interfaces = [container_if]
        index = 0
    ips = [
        IPConfig(str(s.interface), _gateway_text(s, conf), index)
        for s in run.specs
        if s.interface is not None
    ]
    return result_json(conf.version, interfaces, ips, run.routes, conf.dns, conf.prev_result)


def _ensure_network(net: Network) -> None:
    """The netplumb network of a bridge-mode config: created on first use, its bridge put
    back if it went missing; a record with another definition is a config error."""
    from netplumb.ops import networks

    existing = networks.get(net.name)
    if existing is None:
        networks.create(net)  # with its masquerade and guard rules
        return
    if not existing.same_definition(net):  # a record made before NAT sources is the same
        raise CniError(
            INVALID_NETWORK_CONFIG,
            f"invalid network config: network {net.name} exists in netplumb as {existing.subnet} "
            f"on {existing.bridge} (mtu {existing.mtu}, isolation {existing.isolation}); the "
            f"config says {net.subnet} on {net.bridge} (mtu {net.mtu}, isolation {net.isolation})",
        )
    # netlink, not /sys/class/net: a runtime may call the plugin under nsenter, where /sys
    # still shows another namespace's interfaces
    from netplumb.kernel.session import host_socket

    if host_socket().get_link(net.bridge) is None:
        networks.ensure_kernel(existing)


def _host_if(name: str) -> dict[str, object]:
    from netplumb.kernel.session import host_socket

    link = host_socket().get_link(name)
    return {"name": name, "mac": link.mac.hex(":")} if link and link.mac else {"name": name}


def _gateway_text(spec: AddressSpec, conf: NetConf) -> str | None:
    if spec.gateway is not None:
        return str(spec.gateway)
    if spec.interface is None:
        return None
    gws = conf.network.gateways if conf.network is not None else (conf.pool,) if conf.pool else ()
    for gw in gws:
        if gw is not None and gw.contains(spec.interface.ip):
            return str(gw.ip)
    return None

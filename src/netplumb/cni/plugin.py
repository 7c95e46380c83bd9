"""The netplumb-cni plugin: read the call, run ADD/DEL/CHECK/VERSION/GC/STATUS, write the
answer (a result, or an error object on stdout and exit status 1).

ADD goes through netplumb's engine (``engine.attach``: plan, apply with rollback, record), its
address tables and its published ports: the CNI plugin is a front door to the same code as
``netplumb attach`` and ``pipework``, with no kernel code of its own. This path imports only
what an ADD needs (no json, subprocess or argparse): it is run once per container start.
"""

from __future__ import annotations

import os
import sys
import time

from netplumb.cni import records
from netplumb.cni.config import Env, NetConf, decode, parse_conf, parse_env
from netplumb.cni.types import (
    CONFLICT,
    INTERNAL,
    INVALID_NETWORK_CONFIG,
    IO_FAILURE,
    NOT_SUPPORTED,
    SPEC_VERSION,
    CniError,
    IPConfig,
    from_netplumb,
    result_json,
    version_info,
)
from netplumb.errors import NetplumbError
from netplumb.model.ip import IP, Interface

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netplumb.model.addresses import AddressSpec
    from netplumb.model.network import Network
    from netplumb.state import Record


def _random_mac() -> bytes:
    # chosen here rather than by the kernel so the result can name it without asking
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered
    return bytes(raw)


def _ensure_network(net: Network) -> None:
    """The netplumb network of a bridge-mode config: created on first use, its bridge put
    back if it went missing; a record with another definition is a config error."""
    from netplumb.ops import networks

    existing = networks.get(net.name)
    if existing is None:
        networks.create(net)  # with its masquerade and guard rules
        return
    if existing != net:
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


def _own_addresses(conf: NetConf, owner: str) -> list[tuple[IP, Interface]]:
    """Lease from netplumb's tables: (address, its subnet's gateway) pairs."""
    out: list[tuple[IP, Interface]] = []
    if conf.network is not None:
        from netplumb.ops import networks

        net = conf.network
        if conf.ips:
            for ip in conf.ips:
                gw = next((g for g in net.gateways if g.version == ip.version), net.gateway)
                out.append((networks.lease(net.name, owner, ip), gw))
        else:
            for gw in net.gateways:
                out.append((networks.lease(net.name, owner, family=gw.version), gw))
        return out
    from netplumb.cni import ipam

    pool = conf.pool
    if pool is None:  # macvlan without a subnet: static addresses only, no gateway known
        raise CniError(
            INVALID_NETWORK_CONFIG, "invalid network config: subnet: missing (macvlan mode)"
        )
    for wanted in conf.ips or (None,):
        out.append((ipam.pool_lease(conf.name, pool, owner, wanted), pool))
    return out


def _delegated_addresses(
    conf: NetConf, env: Env, environ: Mapping[str, str], rec: Record
) -> tuple[list[tuple[Interface, IP | None]], list[dict[str, object]]]:
    """Addresses and default routes from the delegated IPAM plugin; in bridge mode they are
    leased in the network's table too, so that netplumb's own leases avoid them."""
    from netplumb.cni import ipam

    result = ipam.delegate("ADD", conf, env, environ)
    assert result is not None
    rec["ipam_added"] = True  # from now on DEL must give the addresses back to the plugin
    records.write(conf.name, records.name(env.container_id, env.ifname), rec)
    owner = str(rec["owner"])
    addrs: list[tuple[Interface, IP | None]] = []
    for entry in result["ips"]:
        iface = Interface.parse(str(entry["address"]))
        gw = IP.parse(str(entry["gateway"])) if entry.get("gateway") else None
        addrs.append((iface, gw))
    routes = []
    for r in result.get("routes") or []:
        dst = str(r.get("dst", ""))
        if dst not in ("0.0.0.0/0", "::/0"):
            raise CniError(
                NOT_SUPPORTED,
                f"IPAM plugin {conf.ipam_type} asks for a route to {dst}: netplumb-cni "
                "installs default routes only",
            )
        routes.append(dict(r))
    if conf.network is not None:
        from netplumb.ops import networks

        for iface, _gw in addrs:
            networks.lease(conf.network.name, owner, iface.ip)
    return addrs, routes


def add(env: Env, conf: NetConf, environ: Mapping[str, str]) -> dict[str, object]:
    from netplumb.ops import engine
    from netplumb.runtimes.guests import resolve

    with resolve(env.netns) as guest:  # code 3 when the namespace is not there
        attach_record = engine.record_name(guest.key, env.ifname)
    rname = records.name(env.container_id, env.ifname)
    owner = records.owner(env.container_id, env.ifname)
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
        "attach_record": attach_record,
    }
    if conf.network is not None:
        rec["bridge"] = conf.network.bridge
        rec["host_ifname"] = records.veth_name(env.container_id, env.ifname)
    if not records.create(conf.name, rname, rec):
        raise CniError(
            CONFLICT,
            f'container {env.container_id} already has interface "{env.ifname}" on network '
            f"{conf.name} (DEL it first)",
        )
    try:
        return _add(env, conf, environ, rec)
    except BaseException:
        from netplumb.cni import teardown

        try:
            teardown.delete(env, conf, environ)
        except (CniError, NetplumbError, OSError):
            pass  # the ADD's own error is what the runtime must see; DEL can finish later
        raise


def _add(env: Env, conf: NetConf, environ: Mapping[str, str], rec: Record) -> dict[str, object]:
    from netplumb.model.addresses import AddressSpec
    from netplumb.model.attach import AttachRequest
    from netplumb.model.mac import Mac
    from netplumb.ops import engine

    owner = str(rec["owner"])
    if conf.network is not None:
        _ensure_network(conf.network)
    routes: list[dict[str, object]] = []
    specs: list[AddressSpec] = []
    if conf.ipam_type is None:
        for ip, gw in _own_addresses(conf, owner):
            first = conf.default_route and not any(
                s.gateway is not None and s.gateway.version == ip.version for s in specs
            )
            specs.append(AddressSpec(Interface(ip, gw.prefixlen), gw.ip if first else None))
            if first:
                dst = "0.0.0.0/0" if ip.version == 4 else "::/0"
                routes.append({"dst": dst, "gw": str(gw.ip)})
    else:
        addrs, routes = _delegated_addresses(conf, env, environ, rec)
        for iface, ipam_gw in addrs:
            default = next(
                (r for r in routes if (":" in str(r["dst"])) == (iface.version == 6)), None
            )
            via = default.get("gw") if default else None
            route_gw = IP.parse(str(via)) if via else ipam_gw if default else None
            if any(s.gateway is not None and s.gateway.version == iface.version for s in specs):
                route_gw = None
            specs.append(AddressSpec(iface, route_gw))
    mac = conf.ifname_mac.octets if conf.ifname_mac else _random_mac()
    host_if = conf.network.bridge if conf.network is not None else str(conf.master)
    req = AttachRequest(
        guest=env.netns,
        host_if=host_if,
        guest_ifname=env.ifname,
        host_ifname=rec.get("host_ifname"),
        addresses=tuple(specs),
        mac=Mac(mac),
    )
    engine.attach(req, leased=True)
    if conf.port_maps:
        from netplumb.ops import ports

        addrs_by_family: dict[int, str] = {}
        for s in specs:
            if s.interface is not None:
                addrs_by_family.setdefault(s.interface.version, str(s.interface.ip))
        rec["ports"] = True
        records.write(conf.name, records.name(env.container_id, env.ifname), rec)
        ports.publish(
            owner,
            f"cni:{env.container_id}",
            [m.spec() for m in conf.port_maps],
            addresses=addrs_by_family,
        )
    if conf.network is not None and conf.network.isolation:
        from netplumb.ops import ports

        ports.isolation_changed()  # the new veth joins the isolated network's port set
    mac_text = ":".join(f"{b:02x}" for b in mac)
    container_if: dict[str, object] = {"name": env.ifname, "mac": mac_text, "sandbox": env.netns}
    if conf.network is not None:
        bridge = conf.network.bridge
        veth = str(rec["host_ifname"])
        interfaces: list[dict[str, object]] = [
            _host_if(bridge),
            _host_if(veth),
            container_if,
        ]
        index = 2
    else:
        interfaces = [container_if]
        index = 0
    ips = [
        IPConfig(str(s.interface), _gateway_text(s, conf), index)
        for s in specs
        if s.interface is not None
    ]
    result = result_json(conf.version, interfaces, ips, routes, conf.dns, conf.prev_result)
    rec.update(phase="added", mac=mac_text, addresses=[str(s.interface) for s in specs])
    records.write(conf.name, records.name(env.container_id, env.ifname), rec)
    return result


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


# -- the entry point ----------------------------------------------------------------------------


def handle(environ: Mapping[str, str], stdin: str | None) -> tuple[int, str]:
    """One call: (exit status, what to write on stdout). ``stdin`` None: read it here."""
    version = SPEC_VERSION
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            from netplumb.cni import jsonlite

            return 0, jsonlite.dumps(version_info())
        if stdin is None:
            try:
                stdin = sys.stdin.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise CniError(IO_FAILURE, f"cannot read the network config: {exc}") from None
        version = _version_of(stdin)
        conf = parse_conf(stdin, env)
        return 0, _dispatch(env, conf, environ)
    except CniError as exc:
        err = exc
    except NetplumbError as exc:
        err = from_netplumb(exc)
    except OSError as exc:
        err = CniError(IO_FAILURE, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except Exception as exc:  # a bug: still an error object, never a traceback on stdout
        err = CniError(INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    from netplumb.cni import jsonlite

    return 1, jsonlite.dumps(err.to_json(version))


def _version_of(stdin: str) -> str:
    """The config's version, for an error about the rest of it; else the plugin's own."""
    from netplumb.cni.types import SUPPORTED_VERSIONS

    try:
        version = decode(stdin).get("cniVersion")
    except CniError:
        return SPEC_VERSION
    return version if version in SUPPORTED_VERSIONS else SPEC_VERSION


def _dispatch(env: Env, conf: NetConf, environ: Mapping[str, str]) -> str:
    from netplumb.cni import teardown

    if env.command == "ADD":
        from netplumb.cni import jsonlite

        return jsonlite.dumps(add(env, conf, environ))
    if env.command == "DEL":
        teardown.delete(env, conf, environ)
    elif env.command == "CHECK":
        teardown.check(env, conf)
    elif env.command == "GC":
        teardown.gc(env, conf, environ)
    else:
        teardown.status(conf)
    return ""


def main() -> int:
    rc, out = handle(os.environ, None)
    if out:
        sys.stdout.write(out + "\n")
    return rc


def launch() -> None:
    """Entry of the bin/netplumb-cni launcher: no interpreter teardown (~2 ms)."""
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import posix

    posix._exit(rc)

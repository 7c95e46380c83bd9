"""Published ports: choosing host ports, refusing conflicts, and keeping netplumb's nftables
tables equal to its records.

Publishing is done in the kernel (DNAT), with no userland proxy process per port. A host port is
refused before anything changes when netplumb already publishes it or a process on the machine
has it bound (Docker's ``Bind for 0.0.0.0:8080 failed: port is already allocated``).
"""

from __future__ import annotations

import errno
import os
import random
import socket

from netplumb import portindex, state
from netplumb.errors import Conflict, InvalidValue, NetplumbError
from netplumb.model.ip import IP
from netplumb.model.ports import PortMapping, parse_expose, parse_port_spec
from netplumb.nft.render import Allow, NetSpec, Publication, render, rule_count
from netplumb.ops import networks
from netplumb.state.lock import Lock as _Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record


# -- records ---------------------------------------------------------------------------------


def bindings(owner: str) -> list[Record]:
    rec = state.read("ports", owner)
    return list(rec.get("bindings", [])) if rec else []


_cache: dict[str, tuple[tuple[int, int, int], list[Record]]] = {}


def _all_bindings() -> list[Record]:
    """Every binding of every owner. Each owner's record is re-read only when its file changed
    (inode, mtime, size): a process publishing for many guests does not re-read them all."""
    out: list[Record] = []
    for owner in state.names("ports"):
        try:
            st = os.stat(state.path("ports", owner))
        except FileNotFoundError:
            continue
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _cache.get(owner)
        if hit is None or hit[0] != key:
            hit = (key, bindings(owner))
            _cache[owner] = hit
        out += hit[1]
    return out


# -- the ruleset -----------------------------------------------------------------------------


def _desired() -> str:
    nets = []
    for name in networks.names():
        net = networks.get(name)
        if net is not None:
            ports = _bridge_ports(net.bridge) if net.isolation else ()
            nets.append(
                NetSpec(
                    net.name,
                    net.bridge,
                    net.subnet,
                    net.gateway.version,
                    net.isolation,
                    ports,
                    net.subnet6,
                )
            )
    pubs = [
        Publication(
            str(b["owner"]),
            int(b["family"]),
            b.get("host_ip"),
            int(b["host_port"]),
            str(b["container_ip"]),
            int(b["container_port"]),
            str(b["proto"]),
        )
        for b in _all_bindings()
    ]
    return render(nets, pubs, _allows())


def _bridge_ports(bridge: str) -> tuple[str, ...]:
    """The host ends of the veths netplumb attached to ``bridge``, from its records."""
    out = []
    for name in state.names("attach"):
        rec = state.read("attach", name)
        if rec and rec.get("kind") == "veth" and rec.get("bridge") == bridge:
            out.append(str(rec["host_name"]))
    return tuple(sorted(out))


def isolation_in_use() -> bool:
    return any((n := networks.get(name)) is not None and n.isolation for name in networks.names())


def _allows() -> list[Allow]:
    """Link flows on isolated networks: the linking host may reach the target's exposed ports."""
    isolated = {}
    for name in networks.names():
        net = networks.get(name)
        if net is not None and net.isolation:
            isolated[name] = net
    if not isolated:
        return []
    hosts = {n: state.read("hosts", n) for n in state.names("hosts")}  # not hosts/: below it
    out = []
    for name, rec in hosts.items():
        if rec is None:
            continue
        for target_name, _alias in rec.get("links", []):
            target = hosts.get(str(target_name))
            if target is None:
                continue
            for mine in rec.get("networks", []):
                net = isolated.get(str(mine["network"]))
                theirs = [t for t in target.get("networks", []) if t["network"] == mine["network"]]
                if net is None or not theirs:
                    continue
                for spec in target.get("expose", []):
                    for port, proto in parse_expose(str(spec)):
                        out.append(
                            Allow(
                                net.bridge,
                                str(mine["ip"]),
                                str(theirs[0]["ip"]),
                                port,
                                proto,
                                f"link:{name}:{target_name}",
                            )
                        )
    return out


_batch_depth = 0
_batch_dirty = False
_at_batch_end: list[Callable[[], None]] = []


def in_batch() -> bool:
    return _batch_depth > 0


def at_batch_end(callback: Callable[[], None]) -> None:
    """Call ``callback`` once when the outermost batch ends (after its ruleset rewrite)."""
    if callback not in _at_batch_end:
        _at_batch_end.append(callback)


class batch:  # used like a function: ``with ports.batch():``
    """Within the block, syncs are deferred and done once at its end: bringing up or removing
    N guests then rewrites the ruleset once, not N times (which would cost O(N^2))."""

    def __enter__(self) -> None:
        global _batch_depth  # noqa: PLW0603 -- process-wide, nesting allowed
        _batch_depth += 1

    def __exit__(self, *exc: object) -> None:
        global _batch_depth, _batch_dirty  # noqa: PLW0603
        _batch_depth -= 1
        if _batch_depth:
            return
        try:
            if _batch_dirty:
                _batch_dirty = False
                sync()
        finally:
            while _at_batch_end:
                _at_batch_end.pop(0)()


def sync() -> None:
    """Make the kernel's netplumb tables equal to the records (one atomic transaction)."""
    global _batch_dirty  # noqa: PLW0603
    if _batch_depth:
        _batch_dirty = True
        return
    from netplumb.kernel import nft

    nft.apply_text(_desired())


def reconcile_if_drifted() -> bool:
    """Re-apply when the tables are missing or hold another number of rules (say after
    ``nft flush ruleset``); returns whether it did. Cheap when netplumb owns nothing."""
    if not networks.names() and not state.names("ports"):
        return False
    from netplumb.kernel import nft

    text = _desired()
    if nft.rules_in_kernel() == rule_count(text):
        return False
    nft.apply_text(text)
    return True


# -- choosing host ports -----------------------------------------------------------------------


def _families(m: PortMapping) -> list[int]:
    return [4, 6] if m.host_ip is None else [m.host_ip.version]


def _ip_text(host_ip: str | None, family: int) -> str:
    if host_ip:
        return f"[{host_ip}]" if family == 6 else host_ip
    return "0.0.0.0" if family == 4 else "[::]"


def _taken(proto: str, family: int, host_ip: str | None, port: int, extra: list[Record]) -> bool:
    held = portindex.holders(proto, port)
    for b in extra:
        if b["proto"] == proto and int(b["host_port"]) == port:
            held.append((int(b["family"]), b.get("host_ip")))
    return any(
        fam == family and (_any(host_ip) or _any(theirs) or theirs == host_ip)
        for fam, theirs in held
    )


def _any(host_ip: str | None) -> bool:
    """Every address of its family: no address at all, 0.0.0.0 or ::, which overlap any other."""
    return host_ip is None or host_ip in ("0.0.0.0", "::")


def _bindable(proto: str, family: int, host_ip: str | None, port: int) -> bool:
    """Whether a process on this machine could bind the port (so nobody else holds it)."""
    if proto == "sctp":
        return True
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    s = socket.socket(af, kind)
    try:
        if family == 6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host_ip or ("0.0.0.0" if family == 4 else "::"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidValue(
                f"cannot publish on {_ip_text(host_ip, family)}: not an address of this machine"
            ) from None
        return False
    finally:
        s.close()
    return True


def _free(m: PortMapping, fams: list[int], port: int, extra: list[Record]) -> bool:
    hip = str(m.host_ip) if m.host_ip else None
    return all(
        not _taken(m.proto, f, hip, port, extra) and _bindable(m.proto, f, hip, port) for f in fams
    )


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _choose_port(m: PortMapping, fams: list[int], extra: list[Record]) -> int:
    hip = str(m.host_ip) if m.host_ip else None
    if m.host_port and m.host_port == m.host_port_end:
        if not _free(m, fams, m.host_port, extra):
            raise Conflict(
                f"Bind for {_ip_text(hip, fams[0])}:{m.host_port} failed: port is already allocated"
            )
        return m.host_port
    if m.host_port:
        for port in range(m.host_port, m.host_port_end + 1):
            if _free(m, fams, port, extra):
                return port
        raise Conflict(
            f"Bind for {_ip_text(hip, fams[0])}:{m.host_port}-{m.host_port_end} failed: "
            "port is already allocated"
        )
    lo, hi = _ephemeral_range()
    rng = random.Random()
    for _ in range(256):
        port = rng.randint(lo, hi)
        if _free(m, fams, port, extra):
            return port
    raise Conflict(f"no free ephemeral host port in {lo}-{hi} for {m.private}")


# -- container addresses ----------------------------------------------------------------------


def guest_addresses(guest_ref: str) -> dict[int, str]:
    """The guest's address the machine reaches directly, per family (4 and/or 6).

    For a netplumb host, its network addresses; otherwise the first global address of the guest
    that lies in a subnet the machine itself has an address in.
    """
    rec = state.read("hosts", guest_ref)
    if rec is not None and rec.get("networks"):
        out: dict[int, str] = {}
        for n in rec["networks"]:
            for key in ("ip", "ip6"):
                if n.get(key):
                    ip = IP.parse(str(n[key]))
                    out.setdefault(ip.version, str(ip))
        return out
    from netplumb.kernel import netns
    from netplumb.kernel.netlink import Netlink
    from netplumb.model.ip import Interface
    from netplumb.runtimes.guests import resolve

    with Netlink() as nl:
        mine = [
            Interface(IP(a.address), a.prefixlen)
            for a in nl.addresses()
            if len(a.address) in (4, 16)
        ]
    found: dict[int, str] = {}
    with resolve(guest_ref) as guest, netns.socket_in(guest.fd) as gnl:
        for a in gnl.addresses():
            if len(a.address) not in (4, 16):
                continue
            ip = IP(a.address)
            if ip.is_loopback or a.address.startswith(b"\xfe\x80"):
                continue
            if any(m.contains(ip) and m.prefixlen == a.prefixlen for m in mine):
                found.setdefault(ip.version, str(ip))
    return found


# -- publish / unpublish / port ------------------------------------------------------------------


def publish(
    owner: str,
    guest_name: str,
    specs: list[str],
    publish_all_of: list[str] | None = None,
    addresses: dict[int, str] | None = None,
) -> list[Record]:
    """Publish ``specs`` (Docker -p values) and, for -P, every exposed port in
    ``publish_all_of`` without a binding; returns the new bindings. Atomic. ``addresses``
    (per family) when the caller knows the guest's addresses (the CNI plugin)."""
    mappings: list[PortMapping] = []
    for spec in specs:
        mappings += parse_port_spec(spec)
    if publish_all_of:
        bound = {(m.container_port, m.proto) for m in mappings}
        for spec in publish_all_of:
            for port, proto in parse_expose(spec):
                if (port, proto) not in bound:
                    mappings.append(PortMapping(None, 0, port, proto))
    if not mappings:
        return []
    for m in mappings:
        if m.host_ip is not None and m.host_ip.version == 6 and m.host_ip.is_loopback:
            # Docker reaches a [::1] binding through its userland proxy; in the kernel an IPv6
            # packet from ::1 can never be forwarded to another host (no route_localnet).
            raise InvalidValue(
                f"cannot publish {m}: IPv6 loopback cannot be forwarded by the kernel "
                "(publish on 127.0.0.1 or on an address of the machine)"
            )
    addrs = addresses if addresses is not None else guest_addresses(guest_name)
    if not addrs:
        raise NetplumbError(
            f"cannot publish ports of {guest_name}: it has no address the machine reaches"
        )
    with _Lock("ports.lock"):
        new: list[Record] = []
        for m in mappings:
            fams = [f for f in _families(m) if f in addrs]
            if not fams:
                raise InvalidValue(
                    f"cannot publish {m}: {guest_name} has no IPv{_families(m)[0]} address"
                )
            port = _choose_port(m, fams, new)
            for fam in fams:
                new.append(
                    {
                        "owner": owner,
                        "guest": guest_name,
                        "family": fam,
                        "host_ip": str(m.host_ip) if m.host_ip else None,
                        "host_port": port,
                        "container_ip": addrs[fam],
                        "container_port": m.container_port,
                        "proto": m.proto,
                    }
                )
        old = state.read("ports", owner)
        state.write(
            {"owner": owner, "guest": guest_name, "bindings": bindings(owner) + new}, "ports", owner
        )
        try:
            portindex.add(new)
            sync()
        except BaseException:
            portindex.drop(new)
            if old is None:
                state.remove("ports", owner)
            else:
                state.write(old, "ports", owner)
            raise
    return new


def unpublish(owner: str, specs: list[str]) -> int:
    """Remove the bindings the specs name (by container port/proto and, if given, host side)."""
    wanted: list[PortMapping] = []
    for spec in specs:
        wanted += parse_port_spec(spec)
    with _Lock("ports.lock"):
        current = bindings(owner)
        kept: list[Record] = []
        gone: list[Record] = []
        for b in current:
            hit = any(
                m.container_port == b["container_port"]
                and m.proto == b["proto"]
                and (not m.host_port or m.host_port <= int(b["host_port"]) <= m.host_port_end)
                and (m.host_ip is None or str(m.host_ip) == b.get("host_ip"))
                for m in wanted
            )
            (gone if hit else kept).append(b)
        removed = len(gone)
        if removed:
            if kept:
                rec = state.read("ports", owner) or {"owner": owner}
                rec["bindings"] = kept
                state.write(rec, "ports", owner)
            else:
                state.remove("ports", owner)
            portindex.drop(gone)
            sync()
    return removed


def release(owner: str) -> bool:
    """Remove every binding of ``owner`` (rm, detach, gc); True if there were any."""
    return bool(release_many([owner]))


def release_many(owners: list[str]) -> list[str]:
    """Remove every binding of each owner under one lock and one ruleset rewrite; returns the
    owners that had any."""
    mine = [o for o in owners if os.path.exists(state.path("ports", o))]
    if not mine:
        return []
    done = []
    with _Lock("ports.lock"):
        for owner in mine:
            rec = state.read("ports", owner)
            if rec is None:
                continue
            state.remove("ports", owner)
            portindex.drop(list(rec.get("bindings", [])))
            done.append(owner)
        if done:
            sync()
    return done


def drop_stale_index() -> int:
    """Remove port index entries no record backs (a crash between the two writes); ``gc``."""
    with _Lock("ports.lock"):
        return portindex.drop_stale(bindings)


def _natural(text: str) -> list[object]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def port_lines(owner: str, name: str, which: str | None) -> list[str]:
    """What ``docker port NAME [PORT[/PROTO]]`` prints, and its error when nothing matches."""
    rows = []
    for b in bindings(owner):
        host = f"{_ip_text(b.get('host_ip'), int(b['family']))}:{b['host_port']}"
        rows.append((f"{b['container_port']}/{b['proto']}", host))
    if which is None:
        return sorted((f"{p} -> {h}" for p, h in rows), key=_natural)
    port, _, proto = which.partition("/")
    key = f"{port}/{(proto or 'tcp').lower()}"
    hits = sorted((h for p, h in rows if p == key), key=_natural)
    if not hits:
        raise NetplumbError(f"Error: No public port '{which}' published for {name}")
    return hits

"""Names on netplumb's networks: the zone from netplumb's records, and the name server's life.

One name server per state directory (per network namespace netplumb runs in), started by the
first attachment to one of netplumb's networks (``ensure``) and gone by itself once no network
has a member (``ops/dnsserver.py``). It listens on every network's gateway addresses, on the
network's bridge only, and follows the records (inotify on their directories), so a name is
there as soon as the record that holds it is written. ``reconcile`` and ``watch`` start it
again if it died.
"""

from __future__ import annotations

import posix

from netplumb import state
from netplumb.lightos import environ, exists, join

TAG = "netplumb-dns"
PIDFILE = "dns.pid"
LOCKFILE = "dns.lock"
FOLDERS = ("networks", "attach", "hosts", "docker")  # the records the zone is made of

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from netplumb.model.zone import NetSpec, Zone
    from netplumb.state import Record


class Records:
    """The records the zone is made of, read once and kept until inotify says an entry
    changed (``forget``): a change costs the entries it touched, not every record."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], Record | None] = {}

    def read(self, folder: str, name: str) -> Record | None:
        key = (folder, name)
        if key not in self.kept:
            self.kept[key] = state.read(folder, name)
        return self.kept[key]

    def forget(self, folder: str, name: str | None = None) -> None:
        """An entry changed (or, ``name`` None, anything in ``folder``)."""
        if name is not None:
            self.kept.pop((folder, name), None)
        else:
            self.kept = {k: v for k, v in self.kept.items() if k[0] != folder}


def _networks(records: Records) -> list[tuple[NetSpec, Record]]:
    from netplumb.model.network import Network
    from netplumb.model.zone import NetSpec

    out = []
    for name in state.names("networks"):
        rec = records.read("networks", name)
        if rec is None:
            continue
        net = Network.from_record(rec)
        gateways = tuple(str(gw.ip) for gw in net.gateways)
        subnets = tuple(
            (subnet.partition("/")[0], int(subnet.partition("/")[2]))
            for subnet in (net.subnet, net.subnet6)
            if subnet
        )
        out.append((NetSpec(name, net.bridge, gateways, subnets, bool(rec.get("internal"))), rec))
    return out


def _names_of(
    record: Record | None, fallback: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """A guest's names (name, hostname, aliases, service) and link aliases from its record."""
    if record is None:
        return ((fallback,) if fallback else ()), ()
    names = [str(record.get("name", fallback))]
    for key in ("hostname", "service"):
        if record.get(key):
            names.append(str(record[key]))
    names += [str(a) for a in record.get("aliases") or ()]
    links = tuple((str(alias), str(target)) for target, alias in record.get("links") or ())
    return tuple(names), links


def zone(records: Records | None = None) -> Zone:
    """Every network's zone as the records stand now (``records``: as a cache has them)."""
    from netplumb.model.zone import MemberSpec, Zone

    records = records if records is not None else Records()
    nets = _networks(records)
    by_bridge = {spec.bridge: spec.name for spec, _ in nets}
    docker = {}
    for name in state.names("docker"):
        rec = records.read("docker", name)
        if rec is not None and rec.get("owner"):
            docker[str(rec["owner"])] = rec
    addresses: dict[str, list[tuple[str, str]]] = {}
    guests: dict[str, str] = {}
    for name in state.names("attach"):
        rec = records.read("attach", name)
        if rec is None:
            continue
        sig = rec.get("signature") or {}
        net = by_bridge.get(str(sig.get("host_if")))
        if net is None:
            continue
        owner = str(rec.get("owner"))
        guests.setdefault(owner, str(rec.get("guest", "")))
        for a in sig.get("addresses") or ():
            addresses.setdefault(owner, []).append((net, str(a).split("/")[0]))
    members = []
    for owner, held in addresses.items():
        kind, _, ref = owner.partition(":")
        record = records.read("hosts", ref) if kind == "host" else docker.get(owner)
        names, links = _names_of(record, guests.get(owner, ""))
        members.append(MemberSpec(owner, names, tuple(held), links))
    return Zone([spec for spec, _ in nets], members)


def running() -> int | None:
    """The name server's PID while it runs."""
    from netplumb.kernel.proc import alive

    try:
        with open(state.path(PIDFILE)) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, TAG) else None


def settle(timeout: float = 2.0) -> None:
    """After a removal: once no network has a member, the name server ends by itself (it
    follows the records); wait for it (its lock is free once it has exited), so ``rm``,
    ``down`` and ``gc`` return with nothing of it left. It stays while a member does."""
    path = state.path(LOCKFILE)
    if not exists(path) or (state.names("attach") and zone().members):
        return
    import fcntl
    import time

    fd = posix.open(path, posix.O_RDWR | posix.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return  # no server holds it
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
    finally:
        posix.close(fd)  # and the lock with it


def died() -> bool:
    """Whether the name server was killed (its PID file outlived it: it removes the file
    when it ends by itself)."""
    return exists(state.path(PIDFILE)) and running() is None


def ensure(bridge: str | None = None) -> bool:
    """Start the name server unless it runs; True once it serves (False: nothing to serve).
    ``bridge``: a member was just attached there; the server is started with that network's
    sockets bound and not waited for (``start_with_sockets``), when that can be done."""
    if running() is not None:
        return True
    if bridge is not None and start_with_sockets(bridge):
        return True
    from netplumb.kernel.daemon import spawn

    log = join(state.ensure_dir("logs"), "dns.log")
    return spawn(TAG, "netplumb.ops.dnsserver:main", [state.state_dir()], log)


def on_network(bridge: str) -> bool:
    """Whether ``bridge`` is one of netplumb's networks (whose members get names)."""
    if not state.names("networks"):
        return False
    from netplumb.ops import networks

    return networks.by_bridge(bridge) is not None


def resolver_lines(record: Record) -> list[str]:
    """The ``nameserver`` lines of a host on netplumb's networks: its first network's
    gateways, where the name server listens (none: not on any)."""
    nets = record.get("networks") or []
    if not nets:
        return []
    rec = state.read("networks", str(nets[0].get("network")))
    if rec is None:
        return []
    from netplumb.model.network import Network

    return [f"nameserver {gw.ip}" for gw in Network.from_record(rec).gateways]


NOTED = "dns.noted"  # Docker containers already told they keep Docker's name server
NOTES: list[str] = []  # for the user, once the command ends (``cli/main.py`` prints them)


def docker_resolver(key: str, bridge: str) -> None:
    """A Docker container netplumb attached to one of its networks asks netplumb's name
    server (its ``resolv.conf``, which Docker writes again when it restarts: ``watch``
    re-attaches it, and this runs again), unless Docker put it on a user-defined network of
    its own: then it keeps Docker's embedded server, and the log says so once."""
    from netplumb.errors import RuntimeUnavailable
    from netplumb.hosts.files import resolv_conf
    from netplumb.runtimes import docker

    try:
        attrs = docker.inspect(key.partition(":")[2])
    except RuntimeUnavailable:
        return
    if attrs is None:
        return
    theirs = [
        n
        for n in (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        if n not in ("bridge", "host", "none")
    ]
    if theirs:
        state.ensure_dir(NOTED)
        if not state.link("noted", NOTED, key):
            return
        NOTES.append(
            f"Docker container {attrs.get('Name', key).lstrip('/')} is on Docker network "
            f"{theirs[0]}: it keeps Docker's name server, netplumb's names are not in it"
        )
        return
    path = attrs.get("ResolvConfPath") or ""
    from netplumb.ops import networks

    net = networks.by_bridge(bridge)
    if not path or net is None:
        return
    text = resolv_conf([f"nameserver {gw.ip}" for gw in net.gateways])
    try:
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(text)
    except OSError:
        pass  # gone meanwhile


# -- starting without waiting ---------------------------------------------------------------
#
# The name server's start for a network's first member, without waiting for it to serve.
#
# Started the ordinary way (``dns.ensure``), the name server is waited for until it serves:
# ~35 ms of Python, asyncio and the records read, paid by every attach whose network had no
# member (``podman run`` on a network of its own: 169 ms against the reference CNI plugins'
# 121). Here the attaching command takes the name server's lock, binds the network's sockets
# itself (the server's own way: ``listening_socket``), starts the server with the lock and the
# sockets, and returns. A question asked meanwhile waits in its socket until the server reads
# it (a UDP socket's queue, a TCP listener's backlog), as with systemd's socket activation; the
# server adopts the sockets (``ops/dnsserver.py``) and binds the other networks' itself.
#
# When the lock is held (a server starting or ending) or a socket cannot be bound, nothing is
# done here and ``dns.ensure`` starts the server the ordinary way.

INHERIT = "NETPLUMB_DNS_INHERIT"  # "LOCKFD|network,ip,bridge,UDPFD,TCPFD|..."
SO_BINDTODEVICE = 25
IP_FREEBIND = 15
IPV6_FREEBIND = 78


def listening_socket(ip: str, bridge: str, kind: int) -> socket.socket:
    """Port 53 of ``ip`` on ``bridge`` only, UDP or TCP (listening), non-blocking."""
    import socket

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if kind == socket.SOCK_STREAM:  # a listener again over connections closing
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, bridge.encode())
        if family == socket.AF_INET6:
            # a new gateway address is "tentative" until DAD ends: bind it anyway
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        s.bind((ip, 53))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
    except OSError:
        s.close()
        raise
    return s


def start_with_sockets(bridge: str) -> bool:
    """Start the name server with the sockets of the network on ``bridge`` bound here; True
    once it runs them, False if it cannot be done this way (nothing changed then)."""
    import fcntl
    import socket  # here: the module costs ~5 ms (enum), and attach rarely starts the server

    from netplumb.kernel import daemon
    from netplumb.ops import networks

    net = networks.by_bridge(bridge)
    if net is None or not net.gateways:
        return False
    lock = posix.open(state.path(LOCKFILE), posix.O_RDWR | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
    socks: list[socket.socket] = []
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a server starting or ending: the ordinary way decides
        parts = [str(lock)]
        for ip in (str(gw.ip) for gw in net.gateways):
            udp = listening_socket(ip, bridge, socket.SOCK_DGRAM)
            socks.append(udp)
            tcp = listening_socket(ip, bridge, socket.SOCK_STREAM)
            socks.append(tcp)
            parts.append(f"{net.name},{ip},{bridge},{udp.fileno()},{tcp.fileno()}")
        log = join(state.ensure_dir("logs"), "dns.log")
        argv = daemon.python_argv(TAG, "netplumb.ops.dnsserver:main", [state.state_dir()])
        env = {**environ(), INHERIT: "|".join(parts)}
        keep = (lock, *(s.fileno() for s in socks))
        pid = daemon.detached(argv, env, log=log, keep=keep)
        # the server writes it too; written here, the next command finds it running at once
        state.write_file(state.path(PIDFILE), f"{pid}\n".encode())
        return True
    except (OSError, ValueError):
        # a socket that cannot be bound (its address not there yet), or a descriptor among
        # 0-2 (a caller started with its standard streams closed): the ordinary way
        return False
    finally:
        for s in socks:
            s.close()
        posix.close(lock)  # the server holds the lock now (the same open file), or nobody


def inherited(value: str) -> tuple[int, dict[tuple[str, str, str], tuple[int, int]]]:
    """``INHERIT``'s value in the server: the lock's descriptor and, per (network, address,
    bridge), the UDP and TCP sockets' descriptors."""
    lock, *specs = value.split("|")
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    for spec in specs:
        network, ip, bridge, udp, tcp = spec.split(",")
        out[(network, ip, bridge)] = (int(udp), int(tcp))
    return int(lock), out

"""Names on netplumb's networks: the zone from netplumb's records, and the name server's life.

One name server per state directory (per network namespace netplumb runs in), started by the
first attachment to one of netplumb's networks (``ensure``) and gone by itself once no network
has a member (``ops/dnsserver.py``). It listens on every network's gateway addresses, on the
network's bridge only, and follows the records (inotify on their directories), so a name is
there as soon as the record that holds it is written. ``reconcile`` and ``watch`` start it
again if it died.
"""

from __future__ import annotations

import os

from netplumb import state

TAG = "netplumb-dns"
PIDFILE = "dns.pid"
LOCKFILE = "dns.lock"
FOLDERS = ("networks", "attach", "hosts", "docker")  # the records the zone is made of

TYPE_CHECKING = False
if TYPE_CHECKING:
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
    if not os.path.exists(path) or (state.names("attach") and zone().members):
        return
    import fcntl
    import time

    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
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
        os.close(fd)  # and the lock with it


def died() -> bool:
    """Whether the name server was killed (its PID file outlived it: it removes the file
    when it ends by itself)."""
    return os.path.exists(state.path(PIDFILE)) and running() is None


def ensure() -> bool:
    """Start the name server unless it runs; True once it serves (False: nothing to serve)."""
    if running() is not None:
        return True
    from netplumb.kernel.daemon import spawn

    log = os.path.join(state.ensure_dir("logs"), "dns.log")
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

"""Docker links between guests: what a target offers, and the variables and hosts lines a
linking host gets. Targets are netplumb hosts or Docker containers.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import GuestNotFound, NetplumbError, RuntimeUnavailable
from netplumb.hosts import files as hostfiles
from netplumb.model.links import hosts_line, link_env
from netplumb.model.ports import parse_expose

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


class Target:
    """What a link needs of its target."""

    __slots__ = ("env", "hostname", "ip", "name", "ports", "running")

    def __init__(
        self,
        name: str,
        hostname: str,
        ip: str,
        ports: list[tuple[int, str]],
        env: list[str],
        running: bool,
    ) -> None:
        self.name = name
        self.hostname = hostname
        self.ip = ip
        self.ports = ports
        self.env = env
        self.running = running


def _host_target(record: Record) -> Target:
    from netplumb.hosts import runtime

    ports: list[tuple[int, str]] = []
    for spec in record.get("expose", []):
        ports += parse_expose(str(spec))
    nets = record.get("networks") or []
    ip = str(nets[0]["ip"]) if nets else ""
    return Target(
        str(record["name"]),
        str(record.get("hostname", record["name"])),
        ip,
        ports,
        [str(e) for e in record.get("user_env", [])],
        runtime.status(record) == "running",
    )


def _docker_target(ref: str) -> Target | None:
    from netplumb.runtimes import docker

    attrs = docker.inspect(ref)
    if attrs is None:
        return None
    config = attrs.get("Config") or {}
    settings = attrs.get("NetworkSettings") or {}
    ip = settings.get("IPAddress") or ""
    if not ip:
        for net in (settings.get("Networks") or {}).values():
            if net.get("IPAddress"):
                ip = net["IPAddress"]
                break
    if not ip:  # --network none, and netplumb gave it its interfaces (``up``, ``attach``)
        from netplumb.ops import networks

        mine = [a for _n, a in networks.leases_of(f"docker:{str(attrs['Id'])[:12]}")]
        ip = next((a for a in mine if ":" not in a), mine[0] if mine else "")
    ports: list[tuple[int, str]] = []
    for key in config.get("ExposedPorts") or {}:
        ports += parse_expose(str(key))
    return Target(
        str(attrs.get("Name", ref)).lstrip("/"),
        str(config.get("Hostname", "")),
        ip,
        ports,
        list(config.get("Env") or []),
        bool(attrs["State"].get("Running")),
    )


def find_target(name: str) -> Target:
    """The link target called ``name``: a netplumb host, else a Docker container."""
    record = state.read("hosts", name)
    if record is not None:
        return _host_target(record)
    try:
        target = _docker_target(name)
    except RuntimeUnavailable:
        target = None
    if target is None:
        raise GuestNotFound(f"could not get container for {name}: No such container: {name}")
    return target


def env_for(target_name: str, alias: str, linking_name: str) -> list[str]:
    """The link variables, after checking the target runs (Docker's errors)."""
    target = find_target(target_name)
    if not target.running:
        raise NetplumbError(
            f"Cannot link to a non running container: /{target.name} AS /{linking_name}/{alias}"
        )
    if not target.ip:
        raise NetplumbError(f"cannot link to {target.name}: it has no address on a network")
    return link_env(alias, linking_name, target.ip, target.ports, target.env)


def hosts_lines(links: list[tuple[str, str]]) -> list[str]:
    """One ``/etc/hosts`` line per link whose target has an address now."""
    out = []
    for target_name, alias in links:
        try:
            t = find_target(target_name)
        except NetplumbError:
            continue
        if t.ip:
            out.append(hosts_line(t.ip, alias, t.hostname, t.name))
    return out


def record_links(record: Record) -> list[tuple[str, str]]:
    return [(str(t), str(a)) for t, a in record.get("links", [])]


def refresh_hosts_files(changed: str | set[str]) -> None:
    """Rewrite the hosts file of every host linking to ``changed`` (its address changed).

    The file is rewritten in place: the host sees it through a bind mount of that very inode,
    which a rename would leave pointing at the old content.
    """
    from netplumb.hosts import runtime

    for name in runtime.names():
        record = state.read("hosts", name)
        if record is None:
            continue
        links = record_links(record)
        names = {changed} if isinstance(changed, str) else changed
        if any(t in names for t, _ in links):
            hostfiles.write_hosts_file(record, hosts_lines(links))

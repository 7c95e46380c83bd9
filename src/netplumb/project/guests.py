"""Starting, finding and removing a project's guests: netplumb hosts and Docker containers.

Both runtimes go through the same engine: a Docker container is created with Docker's
``--network none`` and netplumb gives it its interfaces, addresses, published ports and extra
interfaces, exactly as it does a host, so links, ports and pipework-style interfaces behave
the same whichever runtime a service uses. Every guest carries its project and the digest of
its resolved definition: a host in its record, a container in its labels.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.hosts import runtime
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest
from netplumb.model.ip import Interface
from netplumb.model.network import DEFAULT_NETWORK
from netplumb.ops import containers, engine, links, networks, ports
from netplumb.topofile.model import Condition, Replica

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from netplumb.state import Record

LABEL_PROJECT = "io.netplumb.project"
LABEL_DIGEST = "io.netplumb.digest"
# Docker is one for the whole machine, netplumb's records are per network namespace (state/):
# a container also names the state directory whose project it belongs to.
LABEL_STATE = "io.netplumb.state"

# A container's command waits (up to 10 s) for its first interface, which netplumb adds once
# the container runs, so that it never starts without its network.
_WAIT_FOR_NETWORK = (
    "i=0; while [ ! -e /sys/class/net/{ifname} ] && [ $i -lt 200 ]; "
    'do sleep 0.05; i=$((i+1)); done; exec "$@"'
)


# -- observing ------------------------------------------------------------------------------------


def docker_of_project(project: str) -> list[str]:
    """Names of the Docker containers labelled with the project (also those ``up`` created
    but had not yet recorded when it was killed)."""
    from netplumb.runtimes import docker

    labels = [f"{LABEL_PROJECT}={project}", f"{LABEL_STATE}={state.state_dir()}"]
    rows = docker.client().api.containers(all=True, filters={"label": labels})
    return [str(r["Names"][0]).lstrip("/") for r in rows if r.get("Names")]


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def docker_inspect(name: str) -> dict[str, Any] | None:
    from netplumb.errors import RuntimeUnavailable
    from netplumb.runtimes import docker

    try:
        return docker.inspect(name)
    except RuntimeUnavailable:
        return None


# -- starting -------------------------------------------------------------------------------------


def start(r: Replica, project: str, digest: str) -> None:
    if r.runtime == "docker":
        _start_docker(r, project, digest)
    else:
        _start_host(r, project, digest)


def _start_host(r: Replica, project: str, digest: str) -> None:
    containers.run(
        r.name,
        list(r.command),
        hostname=r.hostname,
        env=[f"PATH={containers.search_path()}", *r.environment],
        expose=[f"{p}/{proto}" for p, proto in r.expose],
        links_to=r.links,
        publish=r.ports,
        refresh_links=False,
        attachments=r.networks,
        interfaces=[i.attach_request(r.name) for i in r.interfaces],
        extra={"project": project, "digest": digest},
        restart=r.restart,
        aliases=r.aliases,
        service=r.service,
        link_env=r.link_env,
    )


def _start_docker(r: Replica, project: str, digest: str) -> None:
    """``docker create --network none``, then netplumb's interfaces, ports and extra
    interfaces; on any failure the container and everything given to it are removed."""
    import docker.errors

    from netplumb.runtimes import docker as rt

    api = rt.client().api
    assert r.image is not None
    env = list(r.environment)
    extra_hosts: dict[str, str] = {}
    for link in r.links:
        found = links.env_for(link.target, link.alias, r.name)  # the target runs, has an address
        env += found if r.link_env else []  # link_env false: Docker 29's links, no variables
        target = links.find_target(link.target)
        extra_hosts[link.alias] = target.ip
        if link.target != link.alias:
            extra_hosts[link.target] = target.ip
    command, entrypoint = _docker_argv(api, r)
    try:
        with rt.storage_calls() as slow:
            created = slow.create_container(
                r.image,
                command=command,
                entrypoint=entrypoint,
                name=r.name,
                hostname=r.hostname,
                environment=env,
                labels={
                    LABEL_PROJECT: project,
                    LABEL_DIGEST: digest,
                    LABEL_STATE: state.state_dir(),
                },
                ports=[(p, proto) for p, proto in r.expose],
                host_config=api.create_host_config(
                    network_mode="none",
                    extra_hosts=extra_hosts,
                    # Docker turns IPv6 off in a container it gives no IPv6 network; netplumb's
                    # networks are dual stack, so the container keeps it.
                    sysctls={"net.ipv6.conf.all.disable_ipv6": "0"},
                    restart_policy=r.restart.docker() if r.restart.name != "no" else None,
                ),
            )
    except docker.errors.APIError as exc:
        raise NetplumbError(f"cannot create container {r.name}: {exc.explanation or exc}") from None
    owner = f"docker:{created['Id'][:12]}"
    try:
        state.write(
            {
                "name": r.name,
                "owner": owner,
                "project": project,
                "image": r.image,
                "links": [[link.target, link.alias] for link in r.links],
                **containers.dns_fields(r.aliases, r.service, r.link_env),
            },
            "docker",
            r.name,
        )
        api.start(created["Id"])
        for i, att in enumerate(r.networks):
            _docker_network(r.name, owner, att.network, att.ifname, (att.ipv4, att.ipv6), i == 0)
        for iface in r.interfaces:
            engine.attach(iface.attach_request(r.name))
        if r.ports:
            ports.publish_mappings(owner, r.name, list(r.ports))
    except BaseException as exc:
        _remove_docker(r.name, project)
        if isinstance(exc, docker.errors.APIError):
            raise NetplumbError(
                f"cannot start container {r.name}: {exc.explanation or exc}"
            ) from None
        raise


def _docker_argv(api: Any, r: Replica) -> tuple[list[str], list[str]]:
    """The container's entrypoint and command, wrapped so it waits for its network."""
    config = api.inspect_image(r.image).get("Config") or {}
    entry = list(config.get("Entrypoint") or [])
    argv = list(r.command) or list(config.get("Cmd") or [])
    if not r.networks:
        return argv, entry
    script = _WAIT_FOR_NETWORK.format(ifname=shlex.quote(r.networks[0].ifname))
    return [script, "netplumb-wait", *entry, *argv], ["/bin/sh", "-c"]


def _docker_network(
    name: str, owner: str, net_name: str, ifname: str, wanted: tuple[Any, Any], first: bool
) -> None:
    net = networks.default() if net_name == DEFAULT_NETWORK else networks.get(net_name)
    if net is None:
        raise NetplumbError(f"network {net_name} not found")
    specs = []
    for gw in net.gateways:
        want = wanted[0] if gw.version == 4 else wanted[1]
        addr = networks.lease(net.name, owner, want, family=gw.version)
        specs.append(AddressSpec(Interface(addr, gw.prefixlen), gw.ip if first else None))
    engine.attach(
        AttachRequest(guest=name, host_if=net.bridge, guest_ifname=ifname, addresses=tuple(specs)),
        leased=True,
    )


# -- removing -------------------------------------------------------------------------------------


def remove(name: str, runtime_kind: str, project: str) -> None:
    """Remove the project's guest ``name`` and everything netplumb gave it; a guest already
    gone, or one under that name that is not the project's, is left alone."""
    if runtime_kind == "docker":
        _remove_docker(name, project)
        return
    record = state.read("hosts", name)
    if record is not None and record.get("project") == project:
        runtime.remove(name, force=False)


def _remove_docker(name: str, project: str) -> None:
    import docker.errors

    from netplumb.ops import cleanup
    from netplumb.runtimes import docker as rt

    attrs = docker_inspect(name)
    if attrs is None:
        return
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_STATE) != state.state_dir():
        return  # not this project's container: never touched
    owner = f"docker:{attrs['Id'][:12]}"
    cleanup.release_owner(owner)
    state.remove("docker", name)
    try:
        with rt.storage_calls() as slow:
            slow.remove_container(attrs["Id"], force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise NetplumbError(f"cannot remove container {name}: {exc.explanation or exc}") from None


# -- readiness ------------------------------------------------------------------------------------


def address_of(name: str) -> str:
    """The guest's first address on its first network (what a link to it would give)."""
    return links.find_target(name).ip


def wait_ready(name: str, runtime_kind: str, cond: Condition) -> None:
    """Wait until ``cond`` holds for guest ``name``, or fail after its timeout."""
    deadline = time.monotonic() + cond.timeout
    pause = 0.02
    while True:
        if _ready(name, runtime_kind, cond):
            return
        if time.monotonic() >= deadline:
            raise NetplumbError(f"{name} did not become ready ({cond}) in {cond.timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def _ready(name: str, runtime_kind: str, cond: Condition) -> bool:
    if cond.kind == "tcp":
        assert cond.port is not None
        ip = address_of(name)
        try:
            with socket.create_connection((ip, cond.port), timeout=1):
                return True
        except OSError:
            return False
    if cond.kind == "command":
        assert cond.command is not None
        if runtime_kind == "docker":
            argv = ["docker", "exec", name, "sh", "-c", cond.command]
        else:
            np = os.path.join(os.path.dirname(sys.executable), "netplumb")
            argv = [np, "exec", name, "--", "sh", "-c", cond.command]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0
    return True


def describe(name: str) -> str:
    """A short line for the progress output: the guest's addresses and published ports."""
    try:
        target = links.find_target(name)
    except NetplumbError:
        return ""
    return target.ip


def docker_names() -> list[str]:
    """The Docker services of every project, from netplumb's records (no Docker call)."""
    return state.names("docker")


def docker_rows() -> list[Record]:
    """``netplumb ps`` rows of the projects' Docker services (``netns_pid``: whose namespace
    to read the addresses from)."""
    rows: list[Record] = []
    for name in docker_names():
        attrs = docker_inspect(name)
        if attrs is None:
            continue
        st = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        pid = int(st.get("Pid") or 0)
        cmd = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        if cmd[:2] == ["/bin/sh", "-c"] and len(cmd) > 3 and cmd[3] == "netplumb-wait":
            cmd = cmd[4:]  # the wait-for-network wrapper netplumb added
        rows.append(
            {
                "name": name,
                "pid": pid or None,
                "state": str(st.get("Status", "")),
                "netns_pid": pid if st.get("Running") else 0,
                "command": f"[docker {config.get('Image', '')}] " + shlex.join(cmd),
            }
        )
    return rows

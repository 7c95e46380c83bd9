"""What a project's plan starts from: its guests as the records and Docker show them, and, for
a plan to print (``--dry-run``), what the fine-grained steps depend on. Reads only."""

from __future__ import annotations

from netplumb import state
from netplumb.hosts import runtime
from netplumb.model.network import DEFAULT_NETWORK, Network
from netplumb.ops import networks
from netplumb.ops.holdings import guest
from netplumb.plan.attach import HostLink
from netplumb.plan.observed import Guest
from netplumb.project.guests import LABEL_DIGEST, LABEL_PROJECT, LABEL_STATE, docker_inspect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.topofile.model import Topology


def guests(names: list[str], docker_wanted: bool, details: bool = False) -> dict[str, Guest]:
    """The guests that exist under these names: hosts from netplumb's records, containers
    from Docker (asked only when the project has Docker services or records). ``details``:
    also what each holds (leases, interfaces, ports), which only a printed plan shows."""
    found: dict[str, Guest] = {}
    for name in names:
        record = state.read("hosts", name)
        if record is not None:
            found[name] = guest(
                name,
                "host",
                _str_or_none(record.get("project")),
                _str_or_none(record.get("digest")),
                # a host waiting out its restart back-off is up, under its policy
                runtime.status(record) in ("running", "restarting"),
                f"host:{name}" if details else None,
            )
    if docker_wanted:
        for name in names:
            if name in found:
                continue
            attrs = docker_inspect(name)
            if attrs is not None:
                labels = (attrs.get("Config") or {}).get("Labels") or {}
                ours = labels.get(LABEL_STATE) == state.state_dir()
                owner = f"docker:{str(attrs['Id'])[:12]}"
                found[name] = guest(
                    name,
                    "docker",
                    labels.get(LABEL_PROJECT) if ours else None,
                    labels.get(LABEL_DIGEST),
                    bool(attrs["State"].get("Running")),
                    owner if details else None,
                )
    return found


def for_steps(topo: Topology, nets: dict[str, Network]) -> dict[str, object]:
    """The leases of the networks the file uses, the default network (as it is or would be
    made), the host interfaces its extra interfaces name, and the DHCP client they would use."""
    from netplumb.kernel.netlink import Netlink

    used = {a.network for r in topo.replicas for a in r.networks}
    leases = {n: frozenset(networks.leases(n)) for n in used | set(nets) if n in nets}
    default = nets.get(DEFAULT_NETWORK) or networks.default_definition()
    wanted = {i.host_if for r in topo.replicas for i in r.interfaces}
    links: dict[str, HostLink] = {}
    if wanted:
        with Netlink() as nl:
            for ln in nl.links():
                if ln.name in wanted:
                    links[ln.name] = HostLink(ln.name, ln.kind == "bridge", ln.mtu)
    dhcp = None
    if any(i.dhcp for r in topo.replicas for i in r.interfaces):
        from netplumb.kernel import dhcp as kdhcp

        dhcp = kdhcp.find_client(None)
    return {"leases": leases, "default_network": default, "host_links": links, "dhcp_client": dhcp}


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)

"""``netplumb run`` as Docker users know it: a lightweight host on a network, with links and
published ports, set up before its command starts and torn down as a whole on any failure."""

from __future__ import annotations

import os

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.hosts import files as hostfiles
from netplumb.hosts import runtime
from netplumb.model.addresses import AddressSpec
from netplumb.model.attach import AttachRequest
from netplumb.model.dnsnames import check_aliases
from netplumb.model.ip import IP, Interface
from netplumb.model.links import Link
from netplumb.model.network import DEFAULT_NETWORK
from netplumb.model.ports import PortMapping, parse_expose
from netplumb.model.restart import RestartPolicy
from netplumb.ops import engine, links, networks, ports
from netplumb.topofile.model import Attachment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from netplumb.state import Record


def run(
    name: str,
    argv: list[str],
    *,
    hostname: str | None = None,
    env: list[str] = [],  # noqa: B006 -- never mutated
    expose: list[str] = [],  # noqa: B006 -- never mutated
    network: str = DEFAULT_NETWORK,
    links_to: Sequence[Link] = (),
    publish: Sequence[PortMapping] = (),
    publish_all: bool = False,
    ip: str | None = None,
    refresh_links: bool = True,
    attachments: Sequence[Attachment] | None = None,
    interfaces: Sequence[AttachRequest] = (),
    extra: dict[str, object] | None = None,
    restart: RestartPolicy | None = None,
    aliases: Sequence[str] = (),
    service: str | None = None,
    link_env: bool = True,
) -> Record:
    """Start a host on a network with its links and ports, given as resolved values (the CLI
    parses ``--link`` and ``-p``, the topology file its own). ``refresh_links=False`` leaves
    the other hosts' /etc/hosts alone (``up`` starts targets before the hosts linking to them).

    ``attachments`` (``up``) replaces ``network``/``ip``: one interface per network, the first
    with the default route; ``interfaces`` are pipework-style extra interfaces, attached before
    the command starts; ``extra`` goes into the host's record (``up`` marks its project).

    ``aliases`` are more DNS names of the host on its networks (``--network-alias``),
    ``service`` the topology service it is a replica of; both go into its record, for the DNS
    server. ``link_env=False`` is Docker 29's links: no link variables, ``/etc/hosts`` lines
    (and names) only; the record keeps ``"link_env": False`` so ``exec`` gives none either.
    """
    # Everything that can be checked before anything exists is checked first.
    names = check_aliases(list(aliases))
    for spec in expose:
        parse_expose(spec)
    pairs = [(link.target, link.alias) for link in links_to]
    for target, alias in pairs:
        links.env_for(target, alias, name)  # missing or stopped targets: Docker's errors
    if attachments is None:
        wanted = IP.parse(ip) if ip else None
        v6 = wanted is not None and wanted.version == 6
        attachments = (
            []
            if network == "none"
            else [Attachment(network, "eth0", None if v6 else wanted, wanted if v6 else None)]
        )
    if (publish or publish_all) and not attachments:
        raise NetplumbError("cannot publish ports of a host with --network none")
    if names and not attachments:
        raise NetplumbError("cannot give network aliases to a host with --network none")

    def prepare(record: Record) -> tuple[dict[str, str], list[str]]:
        owner = f"host:{name}"
        if attachments:  # its own connections to published ports: see ops/sockredirect.py
            from netplumb.ops import sockredirect

            cookie = sockredirect.host_cookie(str(record["netns"]))
            if cookie is not None:
                record["netns_cookie"] = cookie
        entries = []
        for i, att in enumerate(attachments):
            entries.append(_attach_network(name, owner, att, default_route=i == 0))
            record["networks"] = entries
            state.write(record, "hosts", name)
        if entries:  # its network's name server
            from netplumb.ops import dns

            hostfiles.write_resolv_conf(name, dns.resolver_lines(record))
        for req in interfaces:
            engine.attach(req)
        record["links"] = [list(p) for p in pairs]
        state.write(record, "hosts", name)
        if publish or publish_all:
            ports.publish_mappings(
                owner, name, list(publish), list(expose) if publish_all else None
            )
        link_vars: list[str] = []
        for target, alias in pairs:  # each target checked again (running, with an address)
            found = links.env_for(target, alias, name)
            link_vars += found if link_env else []
        if any(net_is_isolated(n["network"]) for n in record.get("networks", [])):
            ports.isolation_changed()  # a new port of an isolated network, its link flows
        if "netns_cookie" in record:
            ports.guests_came()
        env_vars = dict(v.partition("=")[::2] for v in link_vars)
        return env_vars, links.hosts_lines(pairs)

    record = runtime.run(
        name,
        argv,
        hostname=hostname,
        env=env,
        expose=expose,
        extra={**(extra or {}), **dns_fields(names, service, link_env)},
        prepare=prepare,
        restart=restart,
    )
    if refresh_links:
        links.refresh_hosts_files(name)
    return record


def dns_fields(aliases: Sequence[str], service: str | None, link_env: bool) -> Record:
    """What a guest's record says for the DNS server: ``aliases`` (its more names), ``service``
    (the topology service it is a replica of), ``link_env`` (False: Docker 29's links); a field
    at its default is left out, so records stay as older netplumbs wrote them."""
    out: Record = {}
    if aliases:
        out["aliases"] = list(aliases)
    if service is not None:
        out["service"] = service
    if not link_env:
        out["link_env"] = False
    return out


def _attach_network(name: str, owner: str, att: Attachment, default_route: bool) -> Record:
    """Lease the attachment's addresses (the wanted ones, or free ones) and attach the host to
    the network's bridge; returns the record's entry for it."""
    net = networks.default() if att.network == DEFAULT_NETWORK else networks.get(att.network)
    if net is None:
        raise NetplumbError(f"network {att.network} not found")
    specs: list[AddressSpec] = []
    entry: Record = {"network": net.name, "ifname": att.ifname}
    for gw in net.gateways:
        wanted = att.ipv4 if gw.version == 4 else att.ipv6
        addr = networks.lease(net.name, owner, wanted, family=gw.version)
        specs.append(AddressSpec(Interface(addr, gw.prefixlen), gw.ip if default_route else None))
        entry["ip" if "ip" not in entry else "ip6"] = str(addr)
    engine.attach(
        AttachRequest(
            guest=name, host_if=net.bridge, guest_ifname=att.ifname, addresses=tuple(specs)
        ),
        leased=True,
    )
    return entry


def search_path() -> str:
    """The PATH a host's command gets: this installation's commands first, then the caller's
    (hosts share the machine's files, so ``birthdays`` or ``python3`` mean inside what they
    mean outside); ``-e PATH=...`` overrides it."""
    import sys

    mine = os.path.dirname(sys.executable)
    rest = os.environ.get("PATH") or hostfiles.DEFAULT_PATH
    return ":".join([mine, *(p for p in rest.split(":") if p and p != mine)])


def net_is_isolated(name: str) -> bool:
    net = networks.get(name)
    return bool(net and net.isolation)


def exec_env(record: Record) -> dict[str, str]:
    """The environment for ``netplumb exec``: fresh link variables (none for a host run with
    Docker 29's links), then the host's own."""
    link_vars: list[str] = []
    pairs = links.record_links(record) if record.get("link_env", True) is not False else []
    for target, alias in pairs:
        try:
            link_vars += links.env_for(target, alias, str(record["name"]))
        except NetplumbError:
            continue  # a target that is gone gives no variables, as after a Docker restart
    own = {k: v for k, v in record.get("env", {}).items() if k in _own_keys(record)}
    return {**dict(v.partition("=")[::2] for v in link_vars), **own}


def _own_keys(record: Record) -> set[str]:
    keys = {"PATH", "HOSTNAME", "HOME"}
    keys |= {str(e).partition("=")[0] for e in record.get("user_env", [])}
    return keys

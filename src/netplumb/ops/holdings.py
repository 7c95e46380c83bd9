"""What netplumb's records say a guest holds: its leases, attached interfaces and published
ports (what removing it undoes, as a plan prints it). Reads only."""

from __future__ import annotations

from netplumb.ops import networks
from netplumb.plan.observed import Guest


def guest(
    name: str, kind: str, project: str | None, digest: str | None, running: bool, owner: str | None
) -> Guest:
    """The guest; with ``owner``, what the records say it holds: leases, attached interfaces,
    published ports."""
    from netplumb.ops import cleanup
    from netplumb.state import portrecords

    if owner is None:
        return Guest(name, kind, project, digest, running)
    interfaces: list[tuple[str, str | None]] = []
    for key, rec in cleanup.records_of(owner):
        host = str(rec["host_name"]) if rec.get("kind") == "veth" else None
        interfaces.append((str(rec.get("ifname", key.partition("@")[2])), host))
    return Guest(
        name,
        kind,
        project,
        digest,
        running,
        owner,
        tuple(networks.leases_of(owner)),
        tuple(interfaces),
        len(portrecords.bindings(owner)) if portrecords.exists(owner) else 0,
    )

"""Names in a topology: services, their replicas, hostnames; and what a reference means."""

from __future__ import annotations

from dataclasses import dataclass

from netplumb.topofile.model import Path, TopologyError
from netplumb.topofile.raw import RawTopology


def check_name(name: str, at: Path, what: str = "host name") -> str:
    """Docker's container-name rule, as ``netplumb run --name`` applies it (same words)."""
    ok = name[:1].isascii() and name[:1].isalnum() and len(name) <= 63
    ok = ok and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    if not ok:
        raise TopologyError(
            at,
            f'invalid {what} "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (at most 63)',
        )
    return name


def check_hostname(name: str, at: Path) -> str:
    """RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens; the
    kernel keeps at most 64 bytes."""
    labels = name.split(".")
    ok = 0 < len(name) <= 64 and all(
        label
        and len(label) <= 63
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )
    if not ok:
        raise TopologyError(
            at, f'invalid hostname "{name}": labels of letters, digits and inner hyphens (64 bytes)'
        )
    return name


@dataclass(frozen=True)
class Names:
    """``replicas``: each service's replica names, in order. ``members``: what a reference (a
    service name or a replica name, in ``links`` or ``depends_on``) stands for."""

    replicas: dict[str, tuple[str, ...]]
    members: dict[str, tuple[str, ...]]


def name_services(raw: RawTopology) -> Names:
    """Name every replica: ``replica_names`` with ``{n}`` from 1, by default ``NAME{n}`` for a
    replicated service (webserver1..3 as in the article) and ``NAME`` for a single one.

    A name means one thing in the whole file: a service may not be called like another
    service's replica, since ``links`` and ``depends_on`` could not tell them apart.
    """
    replicas: dict[str, tuple[str, ...]] = {}
    claimed: dict[str, str] = {}
    for sname, rs in raw.services.items():
        here: Path = ("services", sname)
        check_name(sname, here)
        template = rs.replica_names
        if template is None and rs.replicas > 1:
            template = sname + "{n}"
        names = (
            (sname,)
            if template is None
            else tuple(template.replace("{n}", str(i)) for i in range(1, rs.replicas + 1))
        )
        if rs.replica_names is not None:
            for name in names:
                check_name(name, (*here, "replica_names"))
        for name in dict.fromkeys((sname, *names)):
            owner = claimed.get(name)
            if owner is not None:
                what = "service" if name == owner else "a replica of service"
                raise TopologyError(here, f"name {name} is already used by {what} {owner}")
            claimed[name] = sname
        replicas[sname] = names
    members: dict[str, tuple[str, ...]] = {n: (n,) for ns in replicas.values() for n in ns}
    members |= replicas
    return Names(replicas, members)

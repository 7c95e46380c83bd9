"""Docker links: the environment variables and ``/etc/hosts`` line a link gives (pure).

The rules are those of Docker Engine 28 (see shared/reference/docker-links-ports.md): ports
sorted tcp first, then sctp, then udp, each ascending; ``ALIAS_PORT`` for the first; four
variables per port; ``_START``/``_END`` variables for runs of consecutive ports; ``ALIAS_NAME``;
``ALIAS_ENV_*`` for the target's own environment without HOME and PATH.
"""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.value import Value

_PROTO_RANK = {"tcp": 0, "sctp": 1, "udp": 2}


class Link(Value):
    """A Docker link to guest ``target`` under ``alias`` (``--link mongodb:mongo``)."""

    __slots__ = ("alias", "target")
    target: str
    alias: str

    def __init__(self, target: str, alias: str) -> None:
        self.target = target
        self.alias = alias
        self._freeze()

    @classmethod
    def parse(cls, spec: str) -> Link:
        return cls(*parse_link(spec))

    def __str__(self) -> str:
        return self.target if self.alias == self.target else f"{self.target}:{self.alias}"


def parse_link(spec: str) -> tuple[str, str]:
    """``--link name:alias`` or ``--link name`` (alias = name); Docker's error text otherwise."""
    parts = spec.split(":")
    if len(parts) == 1 and parts[0]:
        return parts[0].lstrip("/"), parts[0].lstrip("/")
    if len(parts) == 2 and parts[0] and parts[1]:
        return parts[0].lstrip("/"), parts[1]
    raise InvalidValue(f"bad format for links: {spec}")


def env_prefix(alias: str) -> str:
    """The alias upper-cased with ``-`` made ``_`` (only ``-``: a ``.`` stays, as in Docker)."""
    return alias.upper().replace("-", "_")


def sort_ports(ports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted(set(ports), key=lambda p: (_PROTO_RANK.get(p[1], 3), p[1], p[0]))


def link_env(
    alias: str,
    linking_name: str,
    ip: str,
    ports: list[tuple[int, str]],
    target_env: list[str],
) -> list[str]:
    """The ``K=V`` lines one link puts in the linking container's environment, in order."""
    a = env_prefix(alias)
    out: list[str] = []
    ordered = sort_ports(ports)
    if ordered:
        port, proto = ordered[0]
        out.append(f"{a}_PORT={proto}://{ip}:{port}")
    i = 0
    while i < len(ordered):
        # a run of consecutive port numbers with the same protocol
        j = i
        while (
            j + 1 < len(ordered)
            and ordered[j + 1][1] == ordered[i][1]
            and ordered[j + 1][0] == ordered[j][0] + 1
        ):
            j += 1
        for port, proto in ordered[i : j + 1]:
            p = f"{a}_PORT_{port}_{proto.upper()}"
            out += [
                f"{p}={proto}://{ip}:{port}",
                f"{p}_ADDR={ip}",
                f"{p}_PORT={port}",
                f"{p}_PROTO={proto}",
            ]
        if j > i:
            first, proto = ordered[i]
            last = ordered[j][0]
            s = f"{a}_PORT_{first}_{proto.upper()}"
            out += [
                f"{s}_START={proto}://{ip}:{first}",
                f"{s}_PORT_START={first}",
                f"{s}_END={proto}://{ip}:{last}",
                f"{s}_PORT_END={last}",
            ]
        i = j + 1
    out.append(f"{a}_NAME=/{linking_name}/{alias}")
    for item in target_env:
        key, sep, value = item.partition("=")
        # an entry without '=' is no variable: Docker skips it too
        if key in ("HOME", "PATH") or not key or not sep:
            continue
        out.append(f"{a}_ENV_{key}={value}")
    return out


def hosts_line(ip: str, alias: str, target_hostname: str, target_name: str) -> str:
    """``<ip>\\t<alias> <hostname> <name>``, the name left out when it equals the alias."""
    names = [alias, target_hostname]
    if target_name != alias:
        names.append(target_name)
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return f"{ip}\t{' '.join(seen)}"


def merge_env(link_vars: list[str], own: dict[str, str]) -> dict[str, str]:
    """Link variables first, then the process's own: a variable it sets itself wins."""
    out: dict[str, str] = {}
    for item in link_vars:
        key, _, value = item.partition("=")
        out[key] = value
    out.update(own)
    return out

"""Publishing and unpublishing ports: the plan, from the mappings, the guest's addresses and
its port records (pure).

``publish``, ``unpublish``, their ``--dry-run``, ``run -p`` and ``up`` plan here, so what they
refuse is decided once, in Docker's words where Docker has some. The host port of a mapping
without one (or with a range) is chosen when the action runs (``ops/portchoice.py``: a trial
bind under the ports lock), so the plan says "(a free port)".

Value classes, not dataclasses: ``netplumb publish`` is a command scripts run once per port,
and importing ``dataclasses`` would cost it ~15 ms.
"""

from __future__ import annotations

from netplumb.errors import InvalidValue, NetplumbError
from netplumb.model.ip import IP
from netplumb.model.ports import PortMapping
from netplumb.plan.actions import Action

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


class PublishPort(Action):
    """One mapping published to the guest's address of each family it binds."""

    __slots__ = ("ips", "mapping")
    mapping: PortMapping
    ips: tuple[IP, ...]

    def __init__(self, mapping: PortMapping, ips: tuple[IP, ...]) -> None:
        self.mapping = mapping
        self.ips = ips
        self._freeze()

    def __str__(self) -> str:
        m = self.mapping
        to = " ".join(str(ip) if ip.version == 4 else f"[{ip}]" for ip in self.ips)
        host = m.host_text()
        if m.host_port == 0:
            host += "(a free port)"
        elif m.host_port_end != m.host_port:
            host += " (the first free)"
        return f"nft: publish {host} to {to} port {m.container_port}/{m.proto}"


class UnpublishPort(Action):
    """One binding (a port record: host_ip, host_port, container_ip/port, proto) removed."""

    __slots__ = ("binding",)
    binding: dict[str, object]

    def __init__(self, binding: dict[str, object]) -> None:
        self.binding = binding
        self._freeze()

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.binding.items())))

    def __str__(self) -> str:
        b = self.binding
        ip = b.get("host_ip") or ("0.0.0.0" if b.get("family") == 4 else "::")
        host = f"[{ip}]" if ":" in str(ip) else str(ip)
        cip = b.get("container_ip")
        to = f"[{cip}]" if ":" in str(cip) else str(cip)
        return f"nft: unpublish {host}:{b['host_port']} to {to}:{b['container_port']}/{b['proto']}"


def plan_publish(
    guest_name: str, mappings: Iterable[PortMapping], addresses: dict[int, str]
) -> list[PublishPort]:
    """One action per mapping; ``addresses``: the guest's address the machine reaches, per
    family. Refuses IPv6 loopback, a guest without an address, a family it lacks."""
    mappings = list(mappings)
    check_mappings(mappings)
    if not mappings:
        return []
    if not addresses:
        raise NetplumbError(
            f"cannot publish ports of {guest_name}: it has no address the machine reaches"
        )
    out = []
    for m in mappings:
        fams = [4, 6] if m.host_ip is None else [m.host_ip.version]
        ips = tuple(IP.parse(addresses[f]) for f in fams if f in addresses)
        if not ips:
            raise InvalidValue(f"cannot publish {m}: {guest_name} has no IPv{fams[0]} address")
        out.append(PublishPort(m, ips))
    return out


def check_mappings(mappings: Iterable[PortMapping]) -> None:
    """What ``plan_publish`` refuses before it needs the guest's addresses."""
    for m in mappings:
        if m.host_ip is not None and m.host_ip.version == 6 and m.host_ip.is_loopback:
            # Docker reaches a [::1] binding through its userland proxy; in the kernel an IPv6
            # packet from ::1 can never be forwarded to another host (no route_localnet).
            raise InvalidValue(
                f"cannot publish {m}: IPv6 loopback cannot be forwarded by the kernel "
                "(publish on 127.0.0.1 or on an address of the machine)"
            )


def matches(m: PortMapping, b: dict[str, object]) -> bool:
    """Whether ``unpublish``'s mapping names the binding: container port and protocol, and
    the host side if given."""
    return (
        m.container_port == b["container_port"]
        and m.proto == b["proto"]
        and (not m.host_port or m.host_port <= int(str(b["host_port"])) <= m.host_port_end)
        and (m.host_ip is None or str(m.host_ip) == b.get("host_ip"))
    )


def plan_unpublish(
    bindings: Iterable[dict[str, object]], wanted: list[PortMapping]
) -> list[UnpublishPort]:
    """The owner's bindings that a mapping of ``wanted`` names, one action each."""
    return [UnpublishPort(b) for b in bindings if any(matches(m, b) for m in wanted)]

"""Choosing host ports: refusing a port netplumb already publishes or a process holds.

A host port is refused before anything changes when netplumb already publishes it (its index,
``portindex.py``: one readlink(2) per port) or a process on the machine has it bound (a trial
bind(2)), with Docker's words: ``Bind for 0.0.0.0:8080 failed: port is already allocated``.
"""

from __future__ import annotations

# ``_socket``, not ``socket`` (its enums), and ``random`` only when it is needed: together ~3 ms
# of every ``netplumb publish``, a command scripts run once per port.
import _socket as socket
import errno

from netplumb.errors import Conflict, InvalidValue
from netplumb.state import portindex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.model.ports import PortMapping
    from netplumb.state import Record


def families(m: PortMapping) -> list[int]:
    return [4, 6] if m.host_ip is None else [m.host_ip.version]


def ip_text(host_ip: str | None, family: int) -> str:
    if host_ip:
        return f"[{host_ip}]" if family == 6 else host_ip
    return "0.0.0.0" if family == 4 else "[::]"


def _taken(proto: str, family: int, host_ip: str | None, port: int, extra: list[Record]) -> bool:
    held = portindex.holders(proto, port)
    for b in extra:
        if b["proto"] == proto and int(b["host_port"]) == port:
            held.append((int(b["family"]), b.get("host_ip")))
    return any(
        fam == family and (_any(host_ip) or _any(theirs) or theirs == host_ip)
        for fam, theirs in held
    )


def _any(host_ip: str | None) -> bool:
    """Every address of its family: no address at all, 0.0.0.0 or ::, which overlap any other."""
    return host_ip is None or host_ip in ("0.0.0.0", "::")


def _bindable(proto: str, family: int, host_ip: str | None, port: int) -> bool:
    """Whether a process on this machine could bind the port (so nobody else holds it)."""
    if proto == "sctp":
        return True
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    s = socket.socket(af, kind)
    try:
        if family == 6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host_ip or ("0.0.0.0" if family == 4 else "::"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidValue(
                f"cannot publish on {ip_text(host_ip, family)}: not an address of this machine"
            ) from None
        return False
    finally:
        s.close()
    return True


def _free(m: PortMapping, fams: list[int], port: int, extra: list[Record]) -> bool:
    hip = str(m.host_ip) if m.host_ip else None
    return all(
        not _taken(m.proto, f, hip, port, extra) and _bindable(m.proto, f, hip, port) for f in fams
    )


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def choose_port(m: PortMapping, fams: list[int], extra: list[Record]) -> int:
    hip = str(m.host_ip) if m.host_ip else None
    if m.host_port and m.host_port == m.host_port_end:
        if not _free(m, fams, m.host_port, extra):
            raise Conflict(
                f"Bind for {ip_text(hip, fams[0])}:{m.host_port} failed: port is already allocated"
            )
        return m.host_port
    if m.host_port:
        for port in range(m.host_port, m.host_port_end + 1):
            if _free(m, fams, port, extra):
                return port
        raise Conflict(
            f"Bind for {ip_text(hip, fams[0])}:{m.host_port}-{m.host_port_end} failed: "
            "port is already allocated"
        )
    import random

    lo, hi = _ephemeral_range()
    rng = random.Random()
    for _ in range(256):
        port = rng.randint(lo, hi)
        if _free(m, fams, port, extra):
            return port
    raise Conflict(f"no free ephemeral host port in {lo}-{hi} for {m.private}")

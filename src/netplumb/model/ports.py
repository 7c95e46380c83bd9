"""Docker's ``-p`` grammar and the bindings it means (pure).

``[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]``, split on ``:``: one part is the container port, two
are host:container, three are ip:host:container, more mean an unbracketed IPv6 address followed
by host and container. Error texts are Docker's, word for word, since users search for them.
"""

from __future__ import annotations

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP
from netplumb.model.value import Value

PROTOS = ("tcp", "udp", "sctp")


class PortMapping(Value):
    """One container port published on the host.

    ``host_ip`` None means every address (IPv4 and IPv6, same host port); ``0.0.0.0`` every IPv4
    address and ``::`` every IPv6 address, as in Docker. ``host_port`` 0 means
    an ephemeral port; ``host_port_end`` > ``host_port`` means "any free port in the range".
    """

    __slots__ = ("container_port", "host_ip", "host_port", "host_port_end", "proto")
    host_ip: IP | None
    host_port: int
    host_port_end: int
    container_port: int
    proto: str

    def __init__(
        self,
        host_ip: IP | None,
        host_port: int,
        container_port: int,
        proto: str = "tcp",
        host_port_end: int | None = None,
    ) -> None:
        self.host_ip = host_ip
        self.host_port = host_port
        self.host_port_end = host_port if host_port_end is None else host_port_end
        self.container_port = container_port
        self.proto = proto
        self._freeze()

    @property
    def private(self) -> str:
        """``80/tcp``: how Docker names the container side."""
        return f"{self.container_port}/{self.proto}"

    def host_text(self) -> str:
        ip = "" if self.host_ip is None else str(self.host_ip)
        if self.host_ip is not None and self.host_ip.version == 6:
            ip = f"[{ip}]"
        port = "" if self.host_port == 0 else str(self.host_port)
        if self.host_port_end != self.host_port:
            port = f"{self.host_port}-{self.host_port_end}"
        return f"{ip}:{port}"

    def __str__(self) -> str:
        return f"{self.host_text()}:{self.container_port}/{self.proto}"


def parse_port_range(text: str) -> tuple[int, int]:
    """``80`` or ``80-82``; Docker's ParsePortRange (raises ValueError with its wording)."""
    if text == "":
        raise ValueError("empty string specified for ports")
    start_text, dash, end_text = text.partition("-")
    start = _port_number(start_text)
    if not dash:
        return start, start
    end = _port_number(end_text)
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _port_number(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"invalid port: {text}")
    value = int(text)
    if value > 65535:
        raise ValueError(f"invalid port: {text}")
    return value


def split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def split_proto_port(raw: str) -> tuple[str, str]:
    parts = raw.split("/")
    if raw == "" or parts[0] == "":
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if parts[1] == "":
        return "tcp", parts[0]
    return parts[1], parts[0]


def parse_port_spec(raw: str) -> list[PortMapping]:
    """Every mapping one ``-p`` value means; Docker's errors for bad ones."""
    raw_ip, host_port, container = split_parts(raw)
    proto, container_port = split_proto_port(container)
    host_ip: IP | None = None
    if raw_ip:
        text = raw_ip[1:-1] if raw_ip.startswith("[") and raw_ip.endswith("]") else raw_ip
        try:
            host_ip = IP.parse(text)
        except InvalidValue:
            # Docker strips the brackets before it judges the address, and so names it bare
            raise InvalidValue(f"invalid IP address: {text}") from None
    if container_port == "":
        raise InvalidValue(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise InvalidValue(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise InvalidValue(f"invalid hostPort: {host_port}") from None
    proto = proto.lower()
    if host_port and (end - start) != (host_end - host_start) and end != start:
        raise InvalidValue(
            "invalid ranges specified for container and host Ports: "
            f"{container_port} and {host_port}"
        )
    if proto not in PROTOS:
        raise InvalidValue(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        if not host_port:
            out.append(PortMapping(host_ip, 0, start + i, proto))
        elif end == start and host_end != host_start:
            out.append(PortMapping(host_ip, host_start, start, proto, host_end))
        else:
            out.append(PortMapping(host_ip, host_start + i, start + i, proto))
    return out


def parse_expose(raw: str) -> list[tuple[int, str]]:
    """``--expose 8080``, ``8080/udp``, ``9000-9002``: the (port, proto) pairs."""
    proto, port = split_proto_port(raw)
    try:
        start, end = parse_port_range(port)
    except ValueError:
        raise InvalidValue(f"invalid range format for --expose: {raw}") from None
    # after the range: with no port at all, the protocol is empty too and not what is wrong
    proto = proto.lower()
    if proto not in PROTOS:
        raise InvalidValue(f"invalid proto: {proto}")
    return [(p, proto) for p in range(start, end + 1)]

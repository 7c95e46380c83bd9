"""Published ports as elements of netplumb's DNAT maps (pure): their text and their bytes.

A publication is one element of one of four maps, keyed by what the packet carries and mapping
to the guest's address and port::

    publish4       inet_proto . inet_service               : ipv4_addr . inet_service
    publish4_addr  ipv4_addr . inet_proto . inet_service   : ipv4_addr . inet_service
    publish6       inet_proto . inet_service               : ipv6_addr . inet_service
    publish6_addr  ipv6_addr . inet_proto . inet_service   : ipv6_addr . inet_service

(``publishN`` holds the ports published on every address of the family, ``0.0.0.0``/``::``
included; ``publishN_addr`` those on one address.) Publishing or unpublishing one port then adds
or deletes one element, whose cost does not depend on how many exist; the rules of the chain
``publish`` never change. Each element carries its owner as a comment, as every rule does.

``text`` is the element as ``nft -f`` reads it (the golden files pin it), ``key``/``data`` the
bytes the kernel keeps (``kernel/nftset.py`` sends them): each part of a concatenation takes a
whole number of 32-bit registers, an address in network order, a protocol number or a port
(big-endian) at the start of its register, zero-filled.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_pton

from netplumb.errors import InvalidValue

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
COMMENT_MAX = 128  # bytes nft keeps of a comment; it refuses the ruleset beyond

# IPv4 or IPv6 text, nothing nft reads as syntax. A set, not a regular expression: ``re``
# costs the hot commands (``netplumb publish``) ~5 ms to import.
ADDRESS_CHARS = frozenset("0123456789ABCDEFabcdef:.")

# (map, key type, data type), in the order the ruleset declares them
MAPS = (
    ("publish4", "inet_proto . inet_service", "ipv4_addr . inet_service"),
    ("publish4_addr", "ipv4_addr . inet_proto . inet_service", "ipv4_addr . inet_service"),
    ("publish6", "inet_proto . inet_service", "ipv6_addr . inet_service"),
    ("publish6_addr", "ipv6_addr . inet_proto . inet_service", "ipv6_addr . inet_service"),
)


def refuse(what: str, value: object, rule: str) -> InvalidValue:
    return InvalidValue(f"invalid {what} {value!r} in the nftables ruleset: {rule}")


def address(ip: str, what: str) -> str:
    if not (isinstance(ip, str) and ip and ADDRESS_CHARS.issuperset(ip)):
        raise refuse(what, ip, "not an IP address")
    return ip


def port(value: int, what: str) -> int:
    # bool is an int, and a str formats as itself: only a real port number is pasted
    if type(value) is not int or not 0 <= value <= 65535:
        raise refuse(what, value, "not a port number")
    return value


def proto(value: str) -> str:
    if value not in PROTO_NUMBERS:
        raise refuse("protocol", value, "not tcp, udp or sctp")
    return value


def comment_text(text: str) -> str:
    """TEXT made unable to end a quoted string: a comment matches no packet, so an owner id
    with an odd character (a ``netns`` guest's name is any file name) is shown altered rather
    than refused: '"' becomes "'", anything else outside printable ASCII but a backslash
    becomes '?', and it is cut to the 128 bytes nft keeps (which it would refuse)."""
    safe = "".join("'" if c == '"' else c if " " <= c <= "~" and c != "\\" else "?" for c in text)
    return safe[:COMMENT_MAX]


def comment(text: str) -> str:
    return 'comment "' + comment_text(text) + '"'


def is_any(host_ip: str | None) -> bool:
    """0.0.0.0 and :: mean every address of the family, as in Docker."""
    return not host_ip or host_ip in ("0.0.0.0", "::")


def _reg(raw: bytes) -> bytes:
    """``raw`` padded with zeros to whole 32-bit registers."""
    return raw + b"\0" * (-len(raw) % 4)


class Element:
    """One publication as a map element: its map, its text, its key and data bytes."""

    __slots__ = ("comment", "data", "key", "map", "sort_key", "text")

    def __init__(
        self,
        owner: str,
        family: int,
        host_ip: str | None,
        host_port: int,
        container_ip: str,
        container_port: int,
        proto_name: str,
    ) -> None:
        af = AF_INET if family == 4 else AF_INET6
        pname = proto(proto_name)
        hport = port(host_port, "host port")
        cport = port(container_port, "container port")
        cip = address(container_ip, "container address")
        try:
            cbytes = inet_pton(af, cip)
        except OSError:
            raise refuse("container address", container_ip, "not an IP address") from None
        key = _reg(bytes([PROTO_NUMBERS[pname]])) + _reg(hport.to_bytes(2, "big"))
        key_text = f"{pname} . {hport}"
        name = f"publish{family}"
        hip = None if is_any(host_ip) else host_ip
        if hip is not None:
            address(hip, "host address")
            try:
                key = inet_pton(af, hip) + key
            except OSError:
                raise refuse("host address", host_ip, "not an IP address") from None
            key_text = f"{hip} . {key_text}"
            name += "_addr"
        self.map = name
        self.key = key
        self.data = cbytes + _reg(cport.to_bytes(2, "big"))
        self.comment = comment_text("netplumb:" + owner)
        self.text = f'{key_text} comment "{self.comment}" : {cip} . {cport}'
        self.sort_key = (pname, hport, hip or "")

    def __repr__(self) -> str:
        return f"Element({self.map}: {self.text})"


IFNAMSIZ = 16


class SetElement:
    """An element of a set of the ``bridge netplumb`` table (isolated networks): a bridge port
    of the network (``ports_NET``) or a link flow (``links_NET``). Same shape as ``Element``,
    without data."""

    __slots__ = ("comment", "data", "key", "map", "text")

    def __init__(self, set_name: str, key: bytes, text: str, note: str) -> None:
        self.map = set_name
        self.key = key
        self.data: bytes | None = None
        self.comment = comment_text(note)
        self.text = f'{text} comment "{self.comment}"'

    def __repr__(self) -> str:
        return f"SetElement({self.map}: {self.text})"


def port_element(set_name: str, ifname: str, note: str) -> SetElement:
    """A bridge port, by name (``type ifname``: the name NUL-padded to 16 bytes); ``ifname`` was
    checked by the caller."""
    raw = ifname.encode()
    return SetElement(set_name, raw + b"\0" * (IFNAMSIZ - len(raw)), f'"{ifname}"', note)


def link_element(
    set_name: str, family: int, src: str, dst: str, port_: int, proto_: str, note: str
) -> SetElement:
    """A link flow: ``src`` may reach ``dst`` on ``port_``/``proto_``."""
    af = AF_INET if family == 4 else AF_INET6
    raw = b""
    for ip, what in ((src, "link source"), (dst, "link target")):
        address(ip, what)
        try:
            raw += inet_pton(af, ip)
        except OSError:
            raise refuse(what, ip, "not an IP address") from None
    pname, pnum = proto(proto_), port(port_, "link port")
    raw += _reg(bytes([PROTO_NUMBERS[pname]])) + _reg(pnum.to_bytes(2, "big"))
    return SetElement(set_name, raw, f"{src} . {dst} . {pname} . {pnum}", note)


# A guest reaching its own published port: after the DNAT, source and destination are both the
# guest. nft has no test of one field against another, so this set holds, for every guest with
# a published IPv4 port, its address twice; the postrouting rule looks the pair up.
SELF_SET = "publish4_self"
SELF_KEY = "ipv4_addr . ipv4_addr"


def self_element(guest_ip: str, note: str) -> SetElement:
    """``guest_ip . guest_ip`` in ``SELF_SET``."""
    address(guest_ip, "container address")
    try:
        raw = inet_pton(AF_INET, guest_ip)
    except OSError:
        raise refuse("container address", guest_ip, "not an IP address") from None
    return SetElement(SELF_SET, raw + raw, f"{guest_ip} . {guest_ip}", note)

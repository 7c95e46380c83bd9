"""The DNS wire format, as much of it as a container network's name server needs (pure).

RFC 1035 messages: a query's header and one question are read (``parse_query``); an answer is
built from the question's own bytes and resource records whose owner name is a pointer to it
(``answer``). EDNS(0) (RFC 6891): a query's OPT record gives the size of UDP answer the asker
takes, and the answer carries an OPT record back. An answer that does not fit is cut at a
whole record and marked truncated, so the asker retries over TCP.
"""

from __future__ import annotations

import struct

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_OPCODE = 0x7800

UDP_PLAIN = 512  # without EDNS
UDP_OURS = 1232  # what this server says it takes (the DNS flag day's size)
TTL = 600  # Docker's

_HEADER = struct.Struct("!HHHHHH")
_RR_HEAD = struct.Struct("!HHHIH")  # pointer, type, class, ttl, rdlength
_OPT_RR = b"\x00" + struct.pack("!HHIH", TYPE_OPT, UDP_OURS, 0, 0)


class Query:
    """One question of a query, with what its answer must echo."""

    __slots__ = ("edns", "flags", "id", "name", "qclass", "qtype", "question", "udp_size")

    def __init__(
        self,
        id: int,
        flags: int,
        name: str,
        qtype: int,
        qclass: int,
        question: bytes,
        udp_size: int,
        edns: bool,
    ) -> None:
        self.id = id
        self.flags = flags
        self.name = name  # lower case, no trailing dot ("" is the root)
        self.qtype = qtype
        self.qclass = qclass
        self.question = question  # the question section as sent
        self.udp_size = udp_size
        self.edns = edns


def parse_query(data: bytes) -> Query | None:
    """The query in ``data``; None for anything that is not a well-formed standard query with
    one question (answers, truncated or compressed questions, other opcodes)."""
    if len(data) < 12:
        return None
    id_, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & _QR or flags & _OPCODE or qd != 1:
        return None
    labels: list[str] = []
    at = 12
    end = len(data)
    while True:
        if at >= end:
            return None
        n = data[at]
        if n == 0:
            at += 1
            break
        if n > 63 or at + 1 + n > end:
            return None
        labels.append(data[at + 1 : at + 1 + n].decode("ascii", "replace").lower())
        at += 1 + n
    if at + 4 > end:
        return None
    qtype, qclass = struct.unpack_from("!HH", data, at)
    question = data[12 : at + 4]
    udp_size, edns = UDP_PLAIN, False
    if ar and not an and not ns:
        at += 4
        # the OPT record: root owner name (one zero byte), type 41, its class is the UDP size
        if at + 11 <= end and data[at] == 0:
            rtype, size = struct.unpack_from("!HH", data, at + 1)
            if rtype == TYPE_OPT:
                edns = True
                udp_size = max(UDP_PLAIN, min(size, UDP_OURS))
    return Query(id_, flags, ".".join(labels), qtype, qclass, question, udp_size, edns)


def encode_name(name: str) -> bytes:
    """A domain name in wire form (labels, then the root's zero byte)."""
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("ascii")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def answer(
    q: Query,
    rcode: int,
    records: list[tuple[int, bytes]] = [],  # noqa: B006 -- never mutated
    *,
    authoritative: bool = True,
    limit: int | None = None,
) -> bytes:
    """The answer to ``q``: ``records`` are (type, rdata) owned by the question's name.

    ``limit``: the largest message allowed (UDP: the asker's size; TCP: None)."""
    size = limit if limit is not None else 65535
    flags = _QR | (q.flags & (_OPCODE | _RD)) | _RA | (rcode & 0xF)
    if authoritative:
        flags |= _AA
    tail = _OPT_RR if q.edns else b""
    room = size - 12 - len(q.question) - len(tail)
    body = bytearray()
    count = 0
    for rtype, rdata in records:
        rr = _RR_HEAD.pack(0xC00C, rtype, CLASS_IN, TTL, len(rdata)) + rdata
        if len(body) + len(rr) > room:
            flags |= _TC
            break
        body += rr
        count += 1
    head = _HEADER.pack(q.id, flags, 1, count, 0, 1 if q.edns else 0)
    return head + q.question + bytes(body) + tail


def refuse(data: bytes, rcode: int) -> bytes | None:
    """An answer with ``rcode`` and no records to a message ``parse_query`` did not take,
    when it has a header to answer to (None: nothing sensible to answer)."""
    if len(data) < 12:
        return None
    id_, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None  # never answer an answer
    return _HEADER.pack(id_, _QR | (flags & (_OPCODE | _RD)) | _RA | rcode, 0, 0, 0, 0)


def reverse_name(packed: bytes) -> str:
    """The PTR name of an address: ``4.3.2.1.in-addr.arpa``, nibbles for IPv6."""
    if len(packed) == 4:
        return ".".join(str(b) for b in reversed(packed)) + ".in-addr.arpa"
    nibbles = packed.hex()
    return ".".join(reversed(nibbles)) + ".ip6.arpa"


def reverse_address(name: str) -> bytes | None:
    """The address a PTR name stands for, None when it names no whole address."""
    if name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
            return None
        return bytes(int(p) for p in reversed(parts))
    if name.endswith(".ip6.arpa"):
        parts = name[: -len(".ip6.arpa")].split(".")
        if len(parts) != 32 or not all(len(p) == 1 and p in "0123456789abcdef" for p in parts):
            return None
        return bytes.fromhex("".join(reversed(parts)))
    return None


def response_rcode(data: bytes) -> int | None:
    """The response code of an answer (None: not an answer)."""
    if len(data) < 12:
        return None
    flags = struct.unpack_from("!H", data, 2)[0]
    return flags & 0xF if flags & _QR else None


def with_id(data: bytes, id_: int) -> bytes:
    """The message with another ID (a forwarded query, its answer)."""
    return struct.pack("!H", id_) + data[2:]

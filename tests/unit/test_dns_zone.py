"""The name server's wire format and zone (pure), checked against dnspython's own reading and
writing of DNS messages (an independent implementation)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.model import dnswire as w
from netplumb.model.zone import MemberSpec, NetSpec, Zone, pack

LAB = NetSpec("lab", "np-lab", ("10.9.0.1", "fd09::1"), (("10.9.0.0", 24), ("fd09::", 64)))
DB = NetSpec("db", "np-db", ("10.8.0.1",), (("10.8.0.0", 24),))
INTERNAL = NetSpec("quiet", "np-quiet", ("10.7.0.1",), (("10.7.0.0", 24),), internal=True)


def zone() -> Zone:
    return Zone(
        [LAB, DB, INTERNAL],
        [
            MemberSpec(
                "host:web1", ("web1", "webserver"), (("lab", "10.9.0.2"), ("lab", "fd09::2"))
            ),
            MemberSpec("host:web2", ("web2", "webserver"), (("lab", "10.9.0.3"),)),
            MemberSpec(
                "host:app",
                ("app", "frontend"),
                (("lab", "10.9.0.4"), ("db", "10.8.0.4")),
                links=(("mongo", "mongodb"),),
            ),
            MemberSpec("host:mongodb", ("mongodb",), (("db", "10.8.0.2"),)),
            MemberSpec("host:q", ("q",), (("quiet", "10.7.0.2"),)),
        ],
    )


def ask(z: Zone, net: str, src: str, name: str, qtype: int = w.TYPE_A) -> tuple[int, list[str]]:
    found = z.lookup(net, pack(src), name, qtype)
    assert found is not None, f"{name} would be forwarded"
    rcode, records = found
    out = []
    for rtype, rdata in records:
        if rtype == w.TYPE_PTR:
            out.append(".".join(rdata[i + 1 : i + 1 + rdata[i]].decode() for i in _labels(rdata)))
        else:
            out.append(str(__import__("ipaddress").ip_address(rdata)))
    return rcode, sorted(out)


def _labels(raw: bytes) -> list[int]:
    at, out = 0, []
    while raw[at]:
        out.append(at)
        at += 1 + raw[at]
    return out


def test_names_addresses_replicas_and_families() -> None:
    z = zone()
    assert ask(z, "lab", "10.9.0.3", "web1") == (w.NOERROR, ["10.9.0.2"])
    assert ask(z, "lab", "10.9.0.3", "web1", w.TYPE_AAAA) == (w.NOERROR, ["fd09::2"])
    assert ask(z, "lab", "10.9.0.3", "webserver") == (w.NOERROR, ["10.9.0.2", "10.9.0.3"])
    assert ask(z, "lab", "10.9.0.3", "web2", w.TYPE_AAAA) == (w.NOERROR, [])  # no IPv6: NODATA
    # lookup takes names in lower case: the wire parser lowers them (Web1 is web1)
    assert z.lookup("lab", pack("10.9.0.3"), "WEB1", w.TYPE_A) is None
    assert z.lookup("lab", pack("10.9.0.3"), "example.org", w.TYPE_A) is None  # forwarded


def test_replicas_come_in_varying_order() -> None:
    z = zone()
    orders = {
        tuple(r for _, r in z.lookup("lab", pack("10.9.0.4"), "webserver", w.TYPE_A)[1])  # type: ignore[index]
        for _ in range(200)
    }
    assert len(orders) == 2


def test_scoped_to_the_askers_networks() -> None:
    z = zone()
    # web1 is on lab only: mongodb lives on db: NXDOMAIN, not forwarded
    assert ask(z, "lab", "10.9.0.2", "mongodb") == (w.NXDOMAIN, [])
    # app is on both: it resolves the members of both, whichever gateway it asks
    assert ask(z, "lab", "10.9.0.4", "mongodb") == (w.NOERROR, ["10.8.0.2"])
    assert ask(z, "db", "10.8.0.4", "web2") == (w.NOERROR, ["10.9.0.3"])
    # an address no record names sees the network it asked on
    assert ask(z, "lab", "10.9.0.200", "web2") == (w.NOERROR, ["10.9.0.3"])
    assert ask(z, "lab", "10.9.0.200", "mongodb") == (w.NXDOMAIN, [])


def test_link_aliases_are_the_linking_guests_own() -> None:
    z = zone()
    assert ask(z, "db", "10.8.0.4", "mongo") == (w.NOERROR, ["10.8.0.2"])
    assert z.lookup("db", pack("10.8.0.2"), "mongo", w.TYPE_A) is None  # others: not a name


def test_reverse_lookups() -> None:
    z = zone()
    assert ask(z, "lab", "10.9.0.3", "2.0.9.10.in-addr.arpa", w.TYPE_PTR) == (w.NOERROR, ["web1"])
    v6 = w.reverse_name(pack("fd09::2"))
    assert ask(z, "lab", "10.9.0.3", v6, w.TYPE_PTR) == (w.NOERROR, ["web1"])
    # inside the network but nobody's: NXDOMAIN; another network's: only for its members
    assert ask(z, "lab", "10.9.0.3", "99.0.9.10.in-addr.arpa", w.TYPE_PTR) == (w.NXDOMAIN, [])
    assert z.lookup("lab", pack("10.9.0.3"), "2.0.8.10.in-addr.arpa", w.TYPE_PTR) is None
    assert ask(z, "db", "10.8.0.4", "2.0.8.10.in-addr.arpa", w.TYPE_PTR)[1] == ["mongodb"]
    assert z.lookup("lab", pack("10.9.0.3"), "8.8.8.8.in-addr.arpa", w.TYPE_PTR) is None


def test_who_is_answered_and_what_is_forwarded() -> None:
    z = zone()
    assert z.answers_to("lab", pack("10.9.0.77")) and z.answers_to("lab", pack("fd09::9"))
    assert not z.answers_to("lab", pack("10.8.0.2"))  # another network's subnet
    assert not z.answers_to("lab", pack("192.168.1.5"))  # the LAN, the machine's others
    assert not z.answers_to("nope", pack("10.9.0.2"))
    assert z.forwards("lab") and not z.forwards("quiet") and not z.forwards("nope")
    assert z.members == 5


def test_wire_round_trip_with_dnspython() -> None:
    query = dns.message.make_query("Web1.", "A", use_edns=0, payload=4096)
    q = w.parse_query(query.to_wire())
    assert q is not None and q.name == "web1" and q.qtype == w.TYPE_A
    assert q.edns and q.udp_size == w.UDP_OURS  # what we take, not what was offered
    out = w.answer(q, w.NOERROR, [(w.TYPE_A, pack("10.9.0.2"))], limit=q.udp_size)
    msg = dns.message.from_wire(out)
    assert msg.id == query.id and msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.QR and msg.flags & dns.flags.AA and msg.flags & dns.flags.RA
    assert msg.flags & dns.flags.RD  # echoed
    assert [str(r) for rr in msg.answer for r in rr] == ["10.9.0.2"]
    assert msg.answer[0].ttl == w.TTL and msg.edns == 0


def test_wire_ptr_nxdomain_and_refusals() -> None:
    query = dns.message.make_query("2.0.9.10.in-addr.arpa.", "PTR")
    q = w.parse_query(query.to_wire())
    assert q is not None and not q.edns and q.udp_size == 512
    msg = dns.message.from_wire(w.answer(q, w.NOERROR, [(w.TYPE_PTR, w.encode_name("web1"))]))
    assert [str(r) for rr in msg.answer for r in rr] == ["web1."]
    nx = dns.message.from_wire(w.answer(q, w.NXDOMAIN))
    assert nx.rcode() == dns.rcode.NXDOMAIN and not nx.answer
    # an answer is never answered; a query with no whole question gets FORMERR
    assert w.parse_query(nx.to_wire()) is None and w.refuse(nx.to_wire(), w.FORMERR) is None
    broken = query.to_wire()[:15]
    assert w.parse_query(broken) is None
    formerr = dns.message.from_wire(w.refuse(broken, w.FORMERR) or b"", question_only=True)
    assert formerr.rcode() == dns.rcode.FORMERR and formerr.id == query.id


def test_an_answer_too_big_for_udp_is_truncated_at_a_record() -> None:
    query = dns.message.make_query("webserver.", "A")
    q = w.parse_query(query.to_wire())
    assert q is not None
    records = [(w.TYPE_A, bytes([10, 9, i // 256, i % 256])) for i in range(200)]
    udp = dns.message.from_wire(w.answer(q, w.NOERROR, records, limit=q.udp_size))
    assert udp.flags & dns.flags.TC and 0 < len(list(udp.answer[0])) < 200
    tcp = dns.message.from_wire(w.answer(q, w.NOERROR, records))
    assert not tcp.flags & dns.flags.TC and len(list(tcp.answer[0])) == 200


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused_without_raising(data: bytes) -> None:
    q = w.parse_query(data)
    if q is not None:
        w.answer(q, w.NOERROR, [(w.TYPE_A, b"\x01\x02\x03\x04")], limit=q.udp_size)
    w.refuse(data, w.FORMERR)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("1.2.3.4.in-addr.arpa", b"\x04\x03\x02\x01"), ("1.2.3.in-addr.arpa", None)],
)
def test_reverse_address(name: str, raw: bytes | None) -> None:
    assert w.reverse_address(name) == raw
    if raw is not None:
        assert w.reverse_name(raw) == name


def test_upstreams_of_a_resolv_conf() -> None:
    from netplumb.ops.dnsforward import upstreams

    text = "search lan\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n#x\nnameserver 1.1.1.1\n"
    assert upstreams(text + "nameserver 9.9.9.9\n") == ["127.0.0.53", "fe80::1", "1.1.1.1"]
    assert upstreams("") == []

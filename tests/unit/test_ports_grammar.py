"""Docker's ``-p`` and ``--expose`` grammar (``netplumb.model.ports``).

Every accepted form and every error text of shared/reference/docker-links-ports.md, word for
word, checked against what go-connections' ``nat.ParsePortSpec`` gives for the same spec; then
properties: a rendered spec parses back to the mappings it was made from, ranges expand to one
mapping per container port, and no input escapes as anything but ``InvalidValue``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.errors import InvalidValue
from netplumb.model.ip import IP
from netplumb.model.ports import (
    PROTOS,
    PortMapping,
    parse_expose,
    parse_port_range,
    parse_port_spec,
    split_parts,
    split_proto_port,
)


def ip(text: str) -> IP:
    return IP.parse(text)


# ------------------------------------------------------------------------------ split_parts


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("80", ("", "", "80")),
        ("8080:80", ("", "8080", "80")),
        ("127.0.0.1:8081:80", ("127.0.0.1", "8081", "80")),
        ("127.0.0.1::81", ("127.0.0.1", "", "81")),
        ("[::1]:8090:80", ("[::1]", "8090", "80")),
        # four parts or more: everything before the last two is an unbracketed IPv6 address
        ("::1:8091:80", ("::1", "8091", "80")),
        ("::1::80", ("::1", "", "80")),
        ("2001:4860:0:2001::68::333", ("2001:4860:0:2001::68", "", "333")),
        ("::::80", ("::", "", "80")),
        ("", ("", "", "")),
        ("80:", ("", "80", "")),
    ],
)
def test_split_parts(raw: str, parts: tuple[str, str, str]) -> None:
    assert split_parts(raw) == parts


@pytest.mark.parametrize(
    ("raw", "proto_port"),
    [
        ("80", ("tcp", "80")),
        ("80/udp", ("udp", "80")),
        ("80/", ("tcp", "80")),  # an empty proto means tcp
        ("80/TCP", ("TCP", "80")),  # not normalised here: parse_port_spec lowers it
        ("9000-9002/sctp", ("sctp", "9000-9002")),
        ("", ("", "")),
        ("/udp", ("", "")),  # no port: both empty, as go-connections' SplitProtoPort
        ("abc", ("tcp", "abc")),  # not validated here either
    ],
)
def test_split_proto_port(raw: str, proto_port: tuple[str, str]) -> None:
    assert split_proto_port(raw) == proto_port


# ------------------------------------------------------------------------- parse_port_range


@pytest.mark.parametrize(
    ("text", "port_range"),
    [
        ("80", (80, 80)),
        ("0", (0, 0)),
        ("65535", (65535, 65535)),
        ("0080", (80, 80)),  # strconv.ParseUint(s, 10, 16) takes leading zeros too
        ("80-82", (80, 82)),
        ("80-80", (80, 80)),
        ("0-65535", (0, 65535)),
    ],
)
def test_parse_port_range(text: str, port_range: tuple[int, int]) -> None:
    assert parse_port_range(text) == port_range


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty string specified for ports"),
        ("65536", "invalid port: 65536"),
        ("abc", "invalid port: abc"),
        ("+80", "invalid port: +80"),
        (" 80", "invalid port:  80"),
        ("-80", "invalid port: "),
        ("80-", "invalid port: "),
        ("80-82-84", "invalid port: 82-84"),  # newest go-connections: "invalid port range format"
        ("\u0668\u0660", "invalid port: \u0668\u0660"),  # str.isdigit() says yes, ParseUint no
        ("82-80", "invalid range specified for port: 82-80"),
    ],
)
def test_parse_port_range_refuses(text: str, message: str) -> None:
    # ValueError, not InvalidValue: parse_port_spec words the error for the side it parses.
    with pytest.raises(ValueError) as exc:
        parse_port_range(text)
    assert type(exc.value) is ValueError
    assert str(exc.value) == message


# -------------------------------------------------------------------------- parse_port_spec

ANY = None
LOOP4 = ip("127.0.0.1")
LOOP6 = ip("::1")

# (spec, the mappings it means); go-connections gives the same ports and bindings (HostIP None
# here is its "", HostPort 0 its "").
ACCEPTED: list[tuple[str, list[PortMapping]]] = [
    ("8080:8080", [PortMapping(ANY, 8080, 8080, "tcp")]),
    ("127.0.0.1:8081:80", [PortMapping(LOOP4, 8081, 80, "tcp")]),
    ("127.0.0.1::81", [PortMapping(LOOP4, 0, 81, "tcp")]),
    ("8082:80/udp", [PortMapping(ANY, 8082, 80, "udp")]),
    (
        "9000-9002:9000-9002",
        [PortMapping(ANY, 9000 + i, 9000 + i, "tcp") for i in range(3)],
    ),
    ("9100-9105:83", [PortMapping(ANY, 9100, 83, "tcp", 9105)]),
    ("[::1]:8090:80", [PortMapping(LOOP6, 8090, 80, "tcp")]),
    ("::1:8091:80", [PortMapping(LOOP6, 8091, 80, "tcp")]),
    ("80", [PortMapping(ANY, 0, 80, "tcp")]),
    ("80/TCP", [PortMapping(ANY, 0, 80, "tcp")]),
    ("80/Udp", [PortMapping(ANY, 0, 80, "udp")]),
    ("80/", [PortMapping(ANY, 0, 80, "tcp")]),
    ("0.0.0.0:80:80", [PortMapping(ip("0.0.0.0"), 80, 80, "tcp")]),
    ("[::]:80:80", [PortMapping(ip("::"), 80, 80, "tcp")]),
    ("::::80", [PortMapping(ip("::"), 0, 80, "tcp")]),
    ("5000:5000/sctp", [PortMapping(ANY, 5000, 5000, "sctp")]),
    ("127.0.0.1:5001:5000/SCTP", [PortMapping(LOOP4, 5001, 5000, "sctp")]),
    ("7000-7001/udp", [PortMapping(ANY, 0, 7000, "udp"), PortMapping(ANY, 0, 7001, "udp")]),
    (
        "[2001:4860:0:2001::68]::333",
        [PortMapping(ip("2001:4860:0:2001::68"), 0, 333, "tcp")],
    ),
    ("[127.0.0.1]:8081:80", [PortMapping(LOOP4, 8081, 80, "tcp")]),  # net.SplitHostPort too
    ("0:80", [PortMapping(ANY, 0, 80, "tcp")]),  # host port 0: ephemeral, as Docker's "0"
    ("8000-8001:80", [PortMapping(ANY, 8000, 80, "tcp", 8001)]),
    ("65535:0", [PortMapping(ANY, 65535, 0, "tcp")]),
    (
        "1.2.3.4:65534-65535:0-1",
        [PortMapping(ip("1.2.3.4"), 65534, 0, "tcp"), PortMapping(ip("1.2.3.4"), 65535, 1, "tcp")],
    ),
]


@pytest.mark.parametrize(("spec", "mappings"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_parse_port_spec(spec: str, mappings: list[PortMapping]) -> None:
    assert parse_port_spec(spec) == mappings


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("8080:8080", [":8080:8080/tcp"]),
        ("127.0.0.1::81", ["127.0.0.1::81/tcp"]),
        ("9100-9105:83", [":9100-9105:83/tcp"]),
        ("[::1]:8090:80/udp", ["[::1]:8090:80/udp"]),
        ("::1:8091:80", ["[::1]:8091:80/tcp"]),
        ("80", ["::80/tcp"]),
    ],
)
def test_port_mapping_text(spec: str, shown: list[str]) -> None:
    mappings = parse_port_spec(spec)
    assert [str(m) for m in mappings] == shown
    assert all(m.private == f"{m.container_port}/{m.proto}" for m in mappings)
    # what str() shows is itself a spec that means the same binding
    assert [n for s in shown for n in parse_port_spec(s)] == mappings


def test_port_mapping_is_an_immutable_value() -> None:
    m = PortMapping(LOOP4, 8081, 80)
    assert m == PortMapping(LOOP4, 8081, 80, "tcp", 8081)
    assert hash(m) == hash(PortMapping(LOOP4, 8081, 80, "tcp"))
    assert m != PortMapping(LOOP4, 8081, 80, "udp")
    with pytest.raises(AttributeError, match="immutable"):
        m.host_port = 1


# (spec, go-connections' error text for it)
REFUSED: list[tuple[str, str]] = [
    # the reference's list, word for word
    ("70000", "invalid containerPort: 70000"),
    ("8080:70000", "invalid containerPort: 70000"),
    ("abc:80", "invalid hostPort: abc"),
    (
        "8000-8005:80-82",
        "invalid ranges specified for container and host Ports: 80-82 and 8000-8005",
    ),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("80/xyz", "invalid proto: xyz"),
    ("8080:80/xyz", "invalid proto: xyz"),
    ("80:", "no port specified: 80:<empty>"),
    # and their neighbours
    ("", "no port specified: <empty>"),
    ("/udp", "no port specified: /udp<empty>"),
    ("127.0.0.1:80:", "no port specified: 127.0.0.1:80:<empty>"),
    ("80:/udp", "no port specified: 80:/udp<empty>"),
    ("65536", "invalid containerPort: 65536"),
    ("82-80", "invalid containerPort: 82-80"),
    ("-1", "invalid containerPort: -1"),
    ("80-82-84", "invalid containerPort: 80-82-84"),
    ("65536:80", "invalid hostPort: 65536"),
    ("8005-8000:80", "invalid hostPort: 8005-8000"),
    ("192.168.1.100:-1:-1", "invalid containerPort: -1"),
    ("8000:80-82", "invalid ranges specified for container and host Ports: 80-82 and 8000"),
    (
        "8000-8001:80-82",
        "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
    ),
    ("localhost:1234:1234", "invalid IP address: localhost"),
    ("192.168.1.100", "invalid containerPort: 192.168.1.100"),
    ("::1]:80:80", "invalid IP address: ::1]"),
    # brackets are stripped before the address is judged, so the message shows it without them
    ("[1.2.3]:80:80", "invalid IP address: 1.2.3"),
    ("[fd00::zz]:80:80", "invalid IP address: fd00::zz"),
    ("fe80::1%eth0:80:80", "invalid IP address: fe80::1%eth0"),
    ("80/tcp6", "invalid proto: tcp6"),
    ("80/icmp", "invalid proto: icmp"),
    ("80/XYZ", "invalid proto: xyz"),  # engine 28's go-connections lowers it first
]


@pytest.mark.parametrize(("spec", "message"), REFUSED, ids=[r[0] or "<empty>" for r in REFUSED])
def test_parse_port_spec_refuses(spec: str, message: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        parse_port_spec(spec)
    assert str(exc.value) == message


def test_the_ranges_error_names_the_container_side_first() -> None:
    # Docker's wording puts the container range before the host range, whatever the order in
    # the spec (host first): the reference's example is the spec 8000-8005:80-82.
    with pytest.raises(InvalidValue) as exc:
        parse_port_spec("8000-8005:80-82")
    assert str(exc.value).endswith(": 80-82 and 8000-8005")
    with pytest.raises(InvalidValue) as exc:
        parse_port_spec("80-82:8000-8005")
    assert str(exc.value).endswith(": 8000-8005 and 80-82")


# ------------------------------------------------------------------------------ parse_expose


@pytest.mark.parametrize(
    ("raw", "ports"),
    [
        ("8080", [(8080, "tcp")]),
        ("8080/tcp", [(8080, "tcp")]),
        ("53/udp", [(53, "udp")]),
        ("53/UDP", [(53, "udp")]),
        ("5000/sctp", [(5000, "sctp")]),
        ("9000-9002", [(9000, "tcp"), (9001, "tcp"), (9002, "tcp")]),
        ("7000-7001/udp", [(7000, "udp"), (7001, "udp")]),
        ("80/", [(80, "tcp")]),
    ],
)
def test_parse_expose(raw: str, ports: list[tuple[int, str]]) -> None:
    assert parse_expose(raw) == ports


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("80/xyz", "invalid proto: xyz"),
        ("abc", "invalid range format for --expose: abc"),
        ("70000", "invalid range format for --expose: 70000"),
        ("82-80", "invalid range format for --expose: 82-80"),
        ("80:90", "invalid range format for --expose: 80:90"),
        # no port at all: the range is what is wrong, not the protocol (used to say
        # "invalid proto: ")
        ("", "invalid range format for --expose: "),
        ("/udp", "invalid range format for --expose: /udp"),
    ],
)
def test_parse_expose_refuses(raw: str, message: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        parse_expose(raw)
    assert str(exc.value) == message


# ------------------------------------------------------------------------------ properties

PORT = st.integers(0, 65535)
PROTO_TEXT = st.sampled_from(PROTOS).flatmap(
    lambda p: st.sampled_from([p, p.upper(), p.capitalize()])
)
V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
V6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@st.composite
def port_ranges(draw: st.DrawFn, max_len: int = 20) -> tuple[int, int]:
    start = draw(st.integers(0, 65535))
    return start, draw(st.integers(start, min(65535, start + max_len - 1)))


def range_text(r: tuple[int, int], as_range: bool) -> str:
    return f"{r[0]}-{r[1]}" if as_range or r[0] != r[1] else str(r[0])


@st.composite
def specs(draw: st.DrawFn) -> tuple[str, list[PortMapping]]:
    """A spec written as users write it, and the mappings Docker's rules give for it."""
    addr = draw(st.one_of(st.none(), V4, V6))
    container = draw(port_ranges())
    count = container[1] - container[0] + 1
    host_kind = draw(st.sampled_from(["none", "same", "pool"] if count == 1 else ["none", "same"]))
    host: tuple[int, int] | None = None
    if host_kind == "same":
        start = draw(st.integers(0, 65536 - count))
        host = (start, start + count - 1)
    elif host_kind == "pool":  # a host range for one container port: any free port of it
        host = draw(port_ranges())
    proto_text = draw(st.one_of(st.none(), st.just(""), PROTO_TEXT))
    proto = (proto_text or "tcp").lower()

    text = range_text(container, draw(st.booleans()))
    if proto_text is not None:
        text += f"/{proto_text}"
    host_text = "" if host is None else range_text(host, draw(st.booleans()))
    if addr is not None:
        # brackets are optional for both families; an unbracketed IPv6 address is everything
        # before the last two ':'-separated parts
        forms = [str(addr), f"[{addr}]"] + ([addr.exploded] if addr.version == 6 else [])
        text = f"{draw(st.sampled_from(forms))}:{host_text}:{text}"
    elif host is not None or draw(st.booleans()):
        text = f"{host_text}:{text}"

    host_ip = None if addr is None else IP(addr.packed)
    expected = []
    for i in range(count):
        if host is None:
            expected.append(PortMapping(host_ip, 0, container[0] + i, proto))
        elif count == 1:
            expected.append(PortMapping(host_ip, host[0], container[0], proto, host[1]))
        else:
            expected.append(PortMapping(host_ip, host[0] + i, container[0] + i, proto))
    return text, expected


@given(specs())
def test_rendered_specs_parse_back(case: tuple[str, list[PortMapping]]) -> None:
    spec, expected = case
    got = parse_port_spec(spec)
    assert got == expected
    assert len(got) == len({m.container_port for m in got})  # one mapping per container port
    for m in got:
        assert parse_port_spec(str(m)) == [m]


@given(port_ranges(max_len=300), st.booleans())
def test_ranges_expand_to_one_mapping_per_port(container: tuple[int, int], with_host: bool) -> None:
    count = container[1] - container[0] + 1
    host = (10000, 10000 + count - 1)
    spec = f"{container[0]}-{container[1]}"
    if with_host:
        spec = f"{host[0]}-{host[1]}:{spec}"
    got = parse_port_spec(spec)
    assert len(got) == count
    assert [m.container_port for m in got] == list(range(container[0], container[1] + 1))
    if with_host:
        assert [m.host_port for m in got] == list(range(host[0], host[1] + 1))
        assert all(m.host_port_end == m.host_port for m in got)
    else:
        assert {(m.host_port, m.host_port_end) for m in got} == {(0, 0)}


@given(port_ranges(), port_ranges())
def test_unequal_ranges_are_refused_unless_one_container_port(
    container: tuple[int, int], host: tuple[int, int]
) -> None:
    spec = f"{host[0]}-{host[1]}:{container[0]}-{container[1]}"
    c_len, h_len = container[1] - container[0], host[1] - host[0]
    if c_len in (h_len, 0):
        assert len(parse_port_spec(spec)) == c_len + 1
    else:
        with pytest.raises(InvalidValue, match=r"^invalid ranges specified for container and host"):
            parse_port_spec(spec)


SPECISH = st.text(alphabet="0123456789:-/[].abcdefxtcpudsTCPUDS% \0", max_size=30)


@given(st.one_of(SPECISH, st.text(max_size=30)))
def test_parse_port_spec_raises_only_invalid_value(text: str) -> None:
    try:
        mappings = parse_port_spec(text)
    except InvalidValue:
        return
    assert mappings
    for m in mappings:
        assert m.proto in PROTOS
        assert 0 <= m.container_port <= 65535
        assert 0 <= m.host_port <= m.host_port_end <= 65535


@given(st.one_of(SPECISH, st.text(max_size=30)))
def test_parse_expose_raises_only_invalid_value(text: str) -> None:
    try:
        ports = parse_expose(text)
    except InvalidValue:
        return
    assert ports
    assert all(0 <= p <= 65535 and proto in PROTOS for p, proto in ports)

"""Mutated raw requests against the real server and database (issue 15): bytes inserted,
deleted and replaced, header lines duplicated, framing mixed, versions changed. h11 reads every
answer as a client would: each is well-formed HTTP with a status below 500 (or 501, 505), or the
connection closes cleanly with no answer; the server stays up; the documents acknowledged with
201 are the documents stored and listed."""

from __future__ import annotations

import json
import socket

import pymongo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.birthdayslab import Doc, Service
from service.test_http import answers

pytestmark = pytest.mark.usefixtures("clean")

DOC = b'{"n": 1}'
SEEDS = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
    b"GET /?limit=2&after=000000000000000000000000 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"GET /0123456789abcdef01234567 HTTP/1.0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"
    + DOC,
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n4\r\n" + DOC[:4] + b"\r\n4;x=y\r\n" + DOC[4:]
    + b"\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n" + DOC,
]  # fmt: skip
FRAGMENTS = [
    b"\r\n", b"\n", b"\r", b"\0", b" ", b"\t", b":", b"0", b"9", b"\xb9", b"-", b"+", b"x",
    b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Host: u\r\n",
    b"Connection: close\r\n", b"Expect: 100-continue\r\n", b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0",
    b"0\r\n\r\n", b"ff\r\n", b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"\xc2\xb2",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if draw(st.booleans()):  # a second request pipelined behind the first
        data += draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "version"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            piece = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=4))
            data[at:at] = piece
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "duplicate":  # a header line repeated
            start = data.rfind(b"\r\n", 0, at) + 2
            end = data.find(b"\r\n", at)
            if start >= 2 and end > start:
                line = bytes(data[start : end + 2])
                data[start:start] = line
        elif op == "version":
            old = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
            new = draw(st.sampled_from([b"HTTP/1.0", b"HTTP/1.1", b"HTTP/0.9", b"HTTP/1.2"]))
            data = bytearray(bytes(data).replace(old, new, 1))
    return bytes(data)


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before all was sent: read the answer
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=mutated())
def test_mutated_requests_get_well_formed_answers(
    service: Service, oracle: pymongo.collection.Collection[Doc], request: bytes
) -> None:
    before = oracle.count_documents({})
    data = exchange(service.port, request)
    got = answers(data, b"POST") if data else []  # no answer: a clean close
    for status, _fields, _body in got:
        assert status < 500 or status in (501, 505), (request, data)
    acknowledged = sum(1 for status, _f, _b in got if status == 201)
    assert oracle.count_documents({}) == before + acknowledged, (request, data)
    reply = service.request("GET", "/", headers={"Accept": "application/x-ndjson"})
    listed = [json.loads(line)["id"] for line in reply.body.splitlines()]
    assert listed == [str(d["_id"]) for d in oracle.find().sort("_id", 1)]

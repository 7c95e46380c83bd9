"""HTTP framing as RFC 9110/9112 want it, found wrong by probing the hand-written parser (issue
15): each finding as a request on a raw socket (or through curl), the answer read back by h11
as a client would, so an answer that is not well-formed HTTP fails the test."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import h11
import pymongo
import pytest

from service.birthdayslab import Doc, Service

pytestmark = pytest.mark.usefixtures("clean")

Answer = tuple[int, dict[str, str], bytes]


def answers(data: bytes, method: bytes = b"GET") -> list[Answer]:
    """The responses in ``data`` (what a server sent until it closed), read by h11 as the
    client of one ``method`` request per response; a malformed one fails the test."""
    out: list[Answer] = []
    conn = h11.Connection(h11.CLIENT)
    while True:
        if out:  # the next response, if the server sent one before closing
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return out
            if not conn.trailing_data[0]:
                return out
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        conn.send(h11.EndOfMessage())
        if not out:
            conn.receive_data(data)
            conn.receive_data(b"")  # then the server closed
        status, fields, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
                fields = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, fields, body))
                break
            elif isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA:
                return out


def exchange(service: Service, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data`` (then end the sending side) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def one(service: Service, data: bytes, method: bytes = b"GET") -> Answer:
    got = answers(exchange(service, data), method)
    assert len(got) == 1, got
    return got[0]


POSTED = b'{"name": "Albert Einstein", "birthday": "14.03.1879"}'
TEXT = b"name = Albert Einstein, birthday = 14.03.1879\n"


@pytest.fixture
def stored(service: Service, clean: None) -> None:
    assert service.request("POST", "/", POSTED, {"Content-Type": "application/json"}).status == 201


# Finding 1: HTTP/1.0 GET / said Content-Length: 0 and then streamed the body.
@pytest.mark.usefixtures("stored")
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http10_gets_the_list(service: Service) -> None:
    url = f"http://127.0.0.1:{service.port}/"
    got = subprocess.run(["curl", "--http1.0", "-sS", url], capture_output=True, timeout=30)
    assert (got.returncode, got.stdout) == (0, TEXT), got.stderr
    head = subprocess.run(["curl", "--http1.0", "-sS", "-I", url], capture_output=True, timeout=30)
    assert head.returncode == 0, head.stderr
    assert head.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 0" not in head.stdout.lower()


@pytest.mark.usefixtures("stored")
def test_http10_list_is_close_delimited_without_a_content_length(service: Service) -> None:
    got = answers(exchange(service, b"GET / HTTP/1.0\r\n\r\n"))
    assert len(got) == 1
    status, fields, body = got[0]
    assert (status, body) == (200, TEXT)
    assert "content-length" not in fields and "transfer-encoding" not in fields
    data = exchange(service, b"HEAD / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n")
    assert b"content-length" not in data.lower()


# Findings 2 and 3: each of these is 400 and a close, and stores nothing.
REFUSED = [
    (b"Content-Length: \xb9\r\n\r\n{}", "malformed request: Invalid character in Content-Length"),
    (b"Content-Length: +2\r\n\r\n{}", "malformed request: Invalid character in Content-Length"),
    (b"Content-Length: 2\r\nX: a\nY: b\r\n\r\n{}",
     "malformed request: Missing expected CR after header value"),
    (b"Content-Length: 2\r\nX: a\rY: b\r\n\r\n{}",
     "malformed request: Missing expected LF after header value"),
    (b"Content-Length: 2\r\nX: a\0b\r\n\r\n{}", "malformed request: Invalid header value char"),
    (b"Content-Length: 2\r\nX(y): b\r\n\r\n{}", "malformed request: Invalid header token"),
    (b"Content-Length: 2\r\nX y: b\r\n\r\n{}", "malformed request: Invalid header token"),
    (b"Content-Length: 2\r\nX: a\r\n b\r\n\r\n{}",
     "malformed request: Unexpected whitespace after header value"),
]  # fmt: skip
CHUNK_SIZES = [b"0x26", b"2_6", b"+26", b"-0", b"2 6", b"\xb9"]


def refused(service: Service, oracle: pymongo.collection.Collection[Doc], data: bytes) -> str:
    status, fields, body = one(service, data, b"POST")
    assert (status, fields["connection"]) == (400, "close")
    assert oracle.count_documents({}) == 0
    assert service.request("GET", "/healthz").status == 200
    detail: str = json.loads(body)["detail"]
    return detail


@pytest.mark.parametrize(("fields", "detail"), REFUSED, ids=[d for _f, d in REFUSED])
def test_malformed_fields_get_400_and_close(
    service: Service, oracle: pymongo.collection.Collection[Doc], fields: bytes, detail: str
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    assert refused(service, oracle, head + fields) == detail


@pytest.mark.parametrize("size", CHUNK_SIZES, ids=[s.decode("latin-1") for s in CHUNK_SIZES])
def test_chunk_sizes_that_are_not_hex_digits_get_400_and_close(
    service: Service, oracle: pymongo.collection.Collection[Doc], size: bytes
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    body = size + b"\r\n" + b"{}".ljust(38) + b"\r\n0\r\n\r\n"
    detail = refused(service, oracle, head + body)
    assert detail == "malformed request: Invalid character in chunk size"


@pytest.mark.parametrize("limit", ["%C2%B2", "%B9", "%D9%A3", "+3", "3%00"])
def test_query_numbers_that_are_not_ascii_digits_get_400(service: Service, limit: str) -> None:
    reply = service.request("GET", f"/?limit={limit}")
    assert reply.status == 400
    assert reply.problem()["detail"].startswith("limit: expected an integer from 1 to")


def test_http11_without_host_gets_400(service: Service) -> None:
    status, _fields, body = one(service, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert (status, json.loads(body)["detail"]) == (400, "HTTP/1.1 request without Host")


def test_http10_chunked_is_processed_then_closed(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    request = b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
    request += b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    # Not half-closed: the server ends the connection itself after the answer.
    data = exchange(service, request + b"GET /healthz HTTP/1.0\r\n\r\n", half_close=False)
    got = answers(data, b"POST")
    assert [(s, f.get("connection")) for s, f, _b in got] == [(201, "close")]
    assert oracle.count_documents({}) == 1


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /healthz HTTP/1.1\nHost: t\n\n", b"GET /healthz HTTP/1.1\r\nHost: t\n\r\n"],
    ids=["all bare LF", "one bare LF"],
)
def test_bare_lf_line_endings_are_answered(service: Service, request_bytes: bytes) -> None:
    # Without the half-close: the answer must come without the client ending anything.
    data = exchange(service, request_bytes, half_close=False)
    status, fields, _body = answers(data)[0]
    assert status in (200, 400), data
    if status == 400:
        assert fields["connection"] == "close"


@pytest.mark.parametrize("target", ["http://t/healthz", "http://other:8080/healthz?x=1"])
def test_absolute_form_is_served_as_its_path(service: Service, target: str) -> None:
    request = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % target.encode()
    status, _fields, body = one(service, request)
    assert (status, body) == (200, b'{"status":"alive"}')


@pytest.mark.parametrize("method", [b"FOO", b"PROPFIND", b"BREW", b"get"])
def test_unknown_method_gets_501(service: Service, method: bytes) -> None:
    status, fields, _body = one(service, method + b" / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (status, fields["connection"]) == (501, "close")


def test_a_request_then_a_half_close_is_answered(service: Service) -> None:
    # nc -N: the request whole, then the client's FIN at once; the server answers all of it.
    get = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    got = answers(exchange(service, get + get))
    assert [s for s, _f, _b in got] == [200, 200]


def test_a_connection_without_a_whole_first_head_is_closed_after_the_head_timeout(
    service: Service,
) -> None:
    """A client that connects and says nothing, or stops in the middle of its first request
    head, holds a connection only for the head timeout (10 s; the sweeper looks every 5 s),
    not the idle timeout of a kept-alive one (60 s): each socket's own timeout, halfway
    between, fails the test if the server waits for the longer one."""
    from birthdays.server import HEAD_TIMEOUT, IDLE_TIMEOUT

    between = (HEAD_TIMEOUT + IDLE_TIMEOUT) / 2
    silent = socket.create_connection(("127.0.0.1", service.port), timeout=between)
    partial = socket.create_connection(("127.0.0.1", service.port), timeout=between)
    with silent, partial:
        partial.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no empty line: the head goes on
        for s in (silent, partial):
            while s.recv(4096):  # an answer or nothing, then the close
                pass

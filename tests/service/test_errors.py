"""Bad input: each answered with its status and an RFC 9457 problem body, word for word; the
database is left untouched (checked with pymongo directly) and the server keeps serving."""

from __future__ import annotations

import json
import socket

import pymongo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.birthdayslab import Doc, Service

pytestmark = pytest.mark.usefixtures("clean")

JSON = {"Content-Type": "application/json"}


def deep(levels: int) -> str:
    """An object nested ``levels`` deep, the top-level object counting as one."""
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


UNPROCESSABLE = [
    ("[1, 2]", "$: the document must be a JSON object, not an array"),
    ('"text"', "$: the document must be a JSON object, not a string"),
    ("42", "$: the document must be a JSON object, not a number"),
    ("null", "$: the document must be a JSON object, not null"),
    ("true", "$: the document must be a JSON object, not a boolean"),
    ('{"a": 1, "a": 2}', '$: duplicate key "a"'),
    ('{"x": {"a": 1, "b": 2, "a": 3}}', '$.x: duplicate key "a"'),
    ('{"a": NaN}', "$: NaN is not a JSON number; NaN and Infinity are refused"),
    ('{"a": Infinity}', "$: Infinity is not a JSON number; NaN and Infinity are refused"),
    ('{"a": [-Infinity]}', "$: -Infinity is not a JSON number; NaN and Infinity are refused"),
    ('{"$set": 1}', '$: key "$set" must not start with "$"'),
    ('{"a": [{"$where": 1}]}', '$.a[0]: key "$where" must not start with "$"'),
    ('{"a.b": 1}', '$: key "a.b" must not contain "."'),
    ('{"x": {"y": {"1.5": 1}}}', '$.x.y: key "1.5" must not contain "."'),
    ('{"a\\u0000b": 1}', '$: key "a\\u0000b" must not contain NUL'),
    ('{"_id": 1}', '$: key "_id" is reserved: the server assigns document ids'),
    ('{"n": 9223372036854775808}', "$.n: integer out of range (MongoDB stores 64 bits)"),
    ('{"n": [-9223372036854775809]}', "$.n[0]: integer out of range (MongoDB stores 64 bits)"),
    ('{"n": 1' + "0" * 5000 + "}", "$.n: integer out of range (MongoDB stores 64 bits)"),
    ('{"n": 1e400}', "$.n: number out of range of a 64-bit float"),
    ('{"s": "\\ud800"}', "$.s: string is not valid Unicode (a lone surrogate)"),
    ('{"\\udfff": 1}', '$: key "\\udfff" is not valid Unicode (a lone surrogate)'),
    ('{"my key": {"$x": 1}}', '$["my key"]: key "$x" must not start with "$"'),
    (deep(101), "$" + ".a" * 19 + "." + "..." + ".a" * 15 + ": nesting deeper than 100 levels"),
    ("[" * 100_000 + "]" * 100_000, "$: nesting deeper than 100 levels"),
]


@pytest.mark.parametrize(("body", "detail"), UNPROCESSABLE, ids=[d for _b, d in UNPROCESSABLE])
def test_unprocessable_documents_get_422(
    service: Service, oracle: pymongo.collection.Collection[Doc], body: str, detail: str
) -> None:
    reply = service.request("POST", "/", body, JSON)
    assert reply.status == 422
    assert reply.problem() == {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": detail,
    }
    assert oracle.count_documents({}) == 0


def test_nesting_of_exactly_100_levels_is_stored(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    assert service.request("POST", "/", deep(100), JSON).status == 201
    assert service.request("POST", "/", '{"a":' + "[" * 99 + "]" * 99 + "}", JSON).status == 201
    assert oracle.count_documents({}) == 2


def test_boundary_numbers_are_stored(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    body = '{"max": 9223372036854775807, "min": -9223372036854775808, "f": 1.7976931348623157e308}'
    assert service.request("POST", "/", body, JSON).status == 201
    (doc,) = oracle.find({}, {"_id": 0})
    assert doc == {"max": 2**63 - 1, "min": -(2**63), "f": 1.7976931348623157e308}


MALFORMED = [
    ('{"name": ', "malformed JSON: Expecting value at line 1 column 10"),
    (
        "{'a': 1}",
        "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2",
    ),
    ('{"a": 1} x', "malformed JSON: Extra data at line 1 column 10"),
    ("", "malformed JSON: Expecting value at line 1 column 1"),
    ('\ufeff{"a": 1}', "malformed JSON: starts with a byte order mark (RFC 8259 forbids it)"),
]


@pytest.mark.parametrize(("body", "detail"), MALFORMED, ids=[d for _b, d in MALFORMED])
def test_malformed_json_gets_400(service: Service, body: str, detail: str) -> None:
    reply = service.request("POST", "/", body, JSON)
    assert reply.status == 400
    assert reply.problem()["detail"] == detail


def test_invalid_utf8_gets_400(service: Service) -> None:
    reply = service.request("POST", "/", b'{"a": "\xff"}', JSON)
    assert reply.status == 400
    assert reply.problem()["detail"] == "malformed JSON: not UTF-8 (byte 7)"


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("application/json; charset=latin-1", "application/json; charset=latin-1"),
        ("application/jsonx", "application/jsonx"),
        (None, "none"),
    ],
)
def test_wrong_content_type_gets_415(
    service: Service,
    oracle: pymongo.collection.Collection[Doc],
    content_type: str | None,
    shown: str,
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    reply = service.request("POST", "/", '{"a": 1}', headers)
    assert reply.status == 415
    assert reply.problem()["detail"] == f"Content-Type must be application/json, not {shown}"
    assert reply.headers["accept-post"] == "application/json"
    assert oracle.count_documents({}) == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON", "application/json; charset=UTF-8"]
)
def test_json_content_types_accepted(service: Service, content_type: str) -> None:
    assert service.request("POST", "/", '{"a": 1}', {"Content-Type": content_type}).status == 201


def test_body_over_the_limit_is_refused_before_it_is_read(service: Service) -> None:
    # Only the head is sent: the answer comes without the body, and the connection closes.
    head = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1048577\r\n\r\n"
    )
    answer = service.raw(head)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Connection: close\r\n" in rest
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["detail"] == "body of 1048577 bytes is over the limit of 1048576"


def test_body_at_the_limit_is_read(service: Service) -> None:
    body = '{"pad": "' + "x" * (1048576 - 11) + '"}'
    assert len(body) == 1048576
    assert service.request("POST", "/", body, JSON).status == 201


def test_expect_100_continue_is_answered_only_within_the_limit(service: Service) -> None:
    big = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
    )
    assert service.raw(big).startswith(b"HTTP/1.1 413 ")
    small = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b'Content-Length: 8\r\nExpect: 100-continue\r\n\r\n{"a": 1}'
    )
    answer = service.raw(small)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")


def test_chunked_body_over_the_limit_gets_413(service: Service) -> None:
    chunk = b"x" * 65536
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
    answer = service.raw(head + body)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"body is over the limit of 1048576 bytes" in answer


# Larger than what loopback's socket buffers hold on both sides (at most ~4.5 MiB measured), so
# that the server certainly has request bytes unread when it answers and closes.
HUGE = 16 * 1024 * 1024
POST_JSON = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
EARLY_ANSWERS = [
    pytest.param(
        POST_JSON + b"Content-Length: %d\r\n\r\n" % HUGE,
        413,
        f"body of {HUGE} bytes is over the limit of 1048576",
        id="content-length over the limit",
    ),
    pytest.param(
        POST_JSON + CHUNKED + b"\r\n",
        413,
        "body is over the limit of 1048576 bytes",
        id="chunked over the limit",
    ),
    pytest.param(
        POST_JSON + b"Content-Length: 5\r\n" + CHUNKED + b"\r\n",
        400,
        "malformed request: Transfer-Encoding can't be present with Content-Length",
        id="unframeable body",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        % HUGE,
        415,
        "Content-Type must be application/json, not text/plain",
        id="wrong content type",
    ),
    pytest.param(
        b"PUT /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % HUGE,
        405,
        "method not allowed; allowed: GET, HEAD",
        id="body of a refused method",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: t\r\nX: ",  # the "body" continues this header field
        431,
        "request head over 16384 bytes",
        id="head over the limit",
    ),
]


@pytest.mark.parametrize(("head", "status", "detail"), EARLY_ANSWERS)
def test_an_answer_before_the_body_is_read_reaches_the_client_whole(
    service: Service, head: bytes, status: int, detail: str
) -> None:
    # The server answers with most of the request unread and closes. A plain close() with
    # unread bytes makes Linux send an RST, which can destroy the answer at the client before
    # it is read (a clean `make test` once lost a 413 so): the server must half-close and
    # read on until the client has its answer. Repeated, because one lucky run proves little;
    # against a plain close every round ends in "reset".
    if CHUNKED in head:
        chunk = b"x" * 65536
        body = b"%x\r\n%s\r\n" % (len(chunk), chunk) * (HUGE // len(chunk)) + b"0\r\n\r\n"
    else:
        body = b"x" * HUGE
    request = head + body
    for round_ in range(50):
        got = service.upload(request)
        assert got.ended == "eof", (round_, got.ended, got.sent, got.answer[:100])
        status_line, fields, answer = got.response()
        assert status_line.startswith(b"HTTP/1.1 %d " % status), status_line
        assert fields["connection"] == "close"
        assert json.loads(answer)["detail"] == detail
    assert service.request("GET", "/healthz").status == 200


def test_chunked_body_is_stored(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    body = b'5\r\n{"a":\r\n4;ext=1\r\n "b"\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\n'
    assert service.raw(head + body).startswith(b"HTTP/1.1 201 Created\r\n")
    assert [d["a"] for d in oracle.find()] == ["b"]


POST_HEAD = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
FRAMING = [
    (b"GARBAGE\r\n\r\n", 501, "request method not implemented"),
    (b"get / HTTP/1.1\r\n\r\n", 501, "request method not implemented"),
    (b"GET / HTTP/2.0\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"),
    (b"GET / HTTP/1.2\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"),
    (b"GET / FTP/1.0\r\n\r\n", 400, "malformed request: Expected HTTP/, RTSP/ or ICE/"),
    (b"GET x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request: Invalid characters in url"),
    (b"GET ftp://x/ HTTP/1.1\r\nHost: t\r\n\r\n", 400,
     "request target must be a path or an absolute URI"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without Host"),
    (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "malformed request: Invalid header token"),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "malformed request: Invalid header token"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "repeated header field host"),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 17000 + b"\r\n\r\n", 431, "request head over 16384 bytes"),
    (POST_HEAD + b"Content-Length: -1\r\n\r\n", 400,
     "malformed request: Invalid character in Content-Length"),
    (POST_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "malformed request: Transfer-Encoding can't be present with Content-Length"),
    (POST_HEAD + b"Transfer-Encoding: gzip\r\n\r\n", 501,
     "only chunked transfer coding is supported"),
    (POST_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "only chunked transfer coding is supported"),
    (POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "malformed request: Invalid character in chunk size"),
    (POST_HEAD + b"Content-Length: 10\r\n\r\n{}", 400, "body ended early"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: y", 400, "incomplete request head"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_bytes", "status", "detail"), FRAMING, ids=[f[2] for f in FRAMING]
)
def test_malformed_http_gets_an_error_and_close(
    service: Service, request_bytes: bytes, status: int, detail: str
) -> None:
    # A half-sent body: the client ends its side, the server answers and closes.
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
        s.sendall(request_bytes)
        s.shutdown(1)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close" in head
    assert json.loads(body)["detail"] == detail


@pytest.mark.parametrize(
    ("method", "path", "status", "detail", "allow"),
    [
        ("DELETE", "/", 405, "method not allowed; allowed: GET, HEAD, POST", "GET, HEAD, POST"),
        ("PUT", "/healthz", 405, "method not allowed; allowed: GET, HEAD", "GET, HEAD"),
        ("POST", "/0123456789abcdef01234567", 405, "method not allowed; allowed: GET, HEAD",
         "GET, HEAD"),
        ("GET", "/nothing", 404, "no resource at /nothing", None),
        ("GET", "/0123456789abcdef01234567", 404, "no document 0123456789abcdef01234567", None),
        ("GET", "/0123456789abcdef0123456z", 400,
         "path: not a document id (24 hex digits): '0123456789abcdef0123456z'", None),
        ("GET", "/?limit=0", 400, "limit: expected an integer from 1 to 2147483647, not '0'", None),
        ("GET", "/?limit=x", 400, "limit: expected an integer from 1 to 2147483647, not 'x'", None),
        ("GET", "/?limit=2147483648", 400,
         "limit: expected an integer from 1 to 2147483647, not '2147483648'", None),
        ("GET", "/?after=abc", 400, "after: not a document id (24 hex digits): 'abc'", None),
    ],
)  # fmt: skip
def test_routes_and_query_errors(
    service: Service, method: str, path: str, status: int, detail: str, allow: str | None
) -> None:
    reply = service.request(method, path)
    assert reply.status == status
    assert reply.problem()["detail"] == detail
    assert reply.headers.get("allow") == allow


@pytest.mark.parametrize(
    ("accept", "status", "content_type"),
    [
        (None, 200, "text/plain; charset=utf-8"),
        ("*/*", 200, "text/plain; charset=utf-8"),
        ("text/*", 200, "text/plain; charset=utf-8"),
        ("application/*", 200, "application/json"),
        ("application/json", 200, "application/json"),
        ("application/x-ndjson", 200, "application/x-ndjson"),
        ("text/plain;q=0.5, application/json", 200, "application/json"),
        ("application/json;q=0.1, application/x-ndjson;q=0.9", 200, "application/x-ndjson"),
        ("image/png", 406, "application/problem+json"),
        ("application/json;q=0", 406, "application/problem+json"),
    ],
)
def test_content_negotiation(
    service: Service, accept: str | None, status: int, content_type: str
) -> None:
    reply = service.request("GET", "/", headers={} if accept is None else {"Accept": accept})
    assert (reply.status, reply.headers["content-type"]) == (status, content_type)
    if status == 406:
        assert reply.problem()["detail"] == (
            f"cannot produce any of: {accept}; "
            "offered: text/plain, application/json, application/x-ndjson"
        )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_no_body_makes_the_server_answer_500_or_die(service: Service, body: bytes) -> None:
    reply = service.request("POST", "/", body, JSON)
    assert reply.status in (201, 400, 422), reply
    if reply.status != 201:
        reply.problem()
    assert service.request("GET", "/healthz").status == 200

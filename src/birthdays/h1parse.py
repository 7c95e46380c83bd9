"""The incoming side of a connection: bytes from the socket through llhttp (httptools) into
request heads and body pieces, in order.

llhttp does the framing (request line, field syntax, Content-Length, chunked coding) as RFC 9112
says, strictly: bare CR or LF, NUL, obsolete line folding, bad field-name characters and chunk
sizes that are not plain hex digits are errors. What it leaves to the application is checked
here: the HTTP version (1.0 and 1.1), Host on HTTP/1.1, a single Host and Content-Type, the
transfer codings (only ``chunked``), the size of a head (``MAX_HEAD``) and the request target
(origin-form, or absolute-form served as its path).

The parser is fed only when the server wants the next event, so an unread body is not read
ahead; pipelined requests already received are parsed into the queue in order, and an error in
one of them is raised when the server gets to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final
from urllib.parse import parse_qsl, unquote

import httptools

from birthdays.errors import HTTPError

MAX_HEAD = 16 * 1024
READ_SIZE = 64 * 1024

# Methods of RFC 9110 and 5789, and QUERY (the safe method with a body, which clients and
# schemathesis probe): answered 405 where a resource does not allow them. Any other method
# (llhttp knows many WebDAV and other ones; it refuses unknown tokens) is not implemented: 501.
KNOWN_METHODS: Final = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
)

_HEAD, _BODY, _END, _ERROR = range(4)


class Request:
    """One request head. (A plain class with slots: built once per request, on the hot path.)"""

    __slots__ = ("headers", "keep_alive", "method", "path", "query", "version")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        version: str,
        headers: dict[str, str],
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive


def _parser_error(exc: Exception) -> HTTPError:
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return HTTPError(501, "request method not implemented", close=True)
    text = str(exc)
    if text == "Invalid HTTP version":
        return HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported", close=True)
    if text == "Request has invalid `Transfer-Encoding`":
        return HTTPError(501, "only chunked transfer coding is supported", close=True)
    return HTTPError(400, f"malformed request: {text}", close=True)


def _target(url: bytes) -> tuple[str, dict[str, str]]:
    """The path and query of a request target: origin-form, or absolute-form (its path)."""
    if not url.startswith(b"/"):
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise HTTPError(400, "malformed request target", close=True) from None
        if parsed.schema not in (b"http", b"https") or parsed.host is None:
            raise HTTPError(400, "request target must be a path or an absolute URI", close=True)
        path_b = parsed.path or b"/"
        query_b = parsed.query or b""
    else:
        path_b, _, query_b = url.partition(b"?")
    path = unquote(path_b.decode("latin-1"))
    if not query_b:
        return path, {}
    try:
        query = dict(parse_qsl(query_b.decode("latin-1"), keep_blank_values=True))
    except ValueError:
        raise HTTPError(400, "malformed query string") from None
    return path, query


class Incoming:
    """Request heads and bodies of one connection, parsed by llhttp as they are needed."""

    __slots__ = (
        "_begun_now",
        "_eof",
        "_events",
        "_failed",
        "_head_fed",
        "_headers",
        "_in_head",
        "_parser",
        "_reader",
        "_url",
        "head_since",
        "in_message",
    )

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[tuple[int, object]] = deque()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_fed = 0  # bytes of the head being received (a lower bound)
        self._in_head = False
        self._begun_now = False
        self._failed = False  # no more parsing: an error, or the connection changes protocol
        self._eof = False
        self.in_message = False  # a request has begun and not ended
        self.head_since = 0.0  # when the last request began to arrive

    # llhttp's callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._in_head = self._begun_now = self.in_message = True
        self._head_fed = 0
        self.head_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._failed:
            return
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers = self._headers
        if key in headers:
            if key in ("host", "transfer-encoding", "content-type"):
                self._fail(HTTPError(400, f"repeated header field {key}", close=True))
                return
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text
        self._head_fed += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._failed:
            return
        try:
            self._events.append((_HEAD, self._request()))
        except HTTPError as exc:
            self._fail(exc)

    def on_body(self, data: bytes) -> None:
        if not self._failed:
            self._events.append((_BODY, data))

    def on_message_complete(self) -> None:
        self.in_message = False
        if not self._failed:
            self._events.append((_END, None))

    def _fail(self, exc: HTTPError) -> None:
        self._events.append((_ERROR, exc))
        self._failed = True

    def _request(self) -> Request:
        parser, headers = self._parser, self._headers
        if self._head_fed + len(self._url) > MAX_HEAD:
            raise HTTPError(431, f"request head over {MAX_HEAD} bytes", close=True)
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported", close=True)
        method = parser.get_method().decode("ascii")
        if method not in KNOWN_METHODS:
            raise HTTPError(501, f"method {method} not implemented", close=True)
        if version == "1.1" and "host" not in headers:
            raise HTTPError(400, "HTTP/1.1 request without Host", close=True)
        coding = headers.get("transfer-encoding")
        if coding is not None and coding.lower() != "chunked":
            raise HTTPError(501, "only chunked transfer coding is supported", close=True)
        path, query = _target(self._url)
        conn = headers.get("connection", "").lower()
        if version == "1.1":
            keep_alive = "close" not in conn
        else:  # chunked over HTTP/1.0: processed, then closed (RFC 9112, 6.1)
            keep_alive = "keep-alive" in conn and coding is None
        if "upgrade" in conn or method == "CONNECT":
            keep_alive = False  # llhttp stops parsing after such a request
        return Request(method, path, query, "HTTP/" + version, headers, keep_alive)

    async def _feed(self) -> None:
        """Read once and parse what came; at the end of the stream set ``_eof``."""
        data = await self._reader.read(READ_SIZE)
        if not data:
            self._eof = True
            return
        self._begun_now = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._failed = True  # the request was whole; nothing after it is parsed
        except httptools.HttpParserError as exc:
            if not self._failed:
                self._fail(_parser_error(exc))
        if self._in_head and not self._failed:
            if not self._begun_now:
                self._head_fed += len(data)
            if self._head_fed > MAX_HEAD:
                self._fail(HTTPError(431, f"request head over {MAX_HEAD} bytes", close=True))

    def receiving_head(self) -> bool:
        """Whether part of a request head has arrived."""
        return self._in_head

    async def next_head(self) -> Request | None:
        """The next request head, or ``None`` at a clean end of the connection."""
        events = self._events
        while True:
            while events:
                kind, item = events.popleft()
                if kind == _HEAD:
                    return item  # type: ignore[return-value]
                if kind == _ERROR:
                    raise item  # type: ignore[misc]
                # _BODY, _END: what is left of a request whose body was not read
            if self._failed:
                return None
            if self._eof:
                if self.in_message:
                    raise HTTPError(400, "incomplete request head", close=True)
                return None
            await self._feed()

    async def next_body(self) -> bytes | None:
        """The next piece of the current request's body; ``None`` at its end."""
        events = self._events
        while True:
            if events:
                kind, item = events[0]
                if kind == _HEAD:  # cannot happen before the body's end; kept for safety
                    return None
                events.popleft()
                if kind == _BODY:
                    return item  # type: ignore[return-value]
                if kind == _END:
                    return None
                raise item  # type: ignore[misc]
            if self._failed or self._eof:
                raise HTTPError(400, "body ended early", close=True)
            await self._feed()

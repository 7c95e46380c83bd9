"""HTTP/1.1 on asyncio streams: request heads in, responses out. Only what the service needs.

A request head is read whole (up to ``MAX_HEAD`` bytes) and parsed into a frozen ``Request``;
the body is read only when a handler asks for it, so a body over the limit is refused with 413
before any of it is read (and ``Expect: 100-continue`` is answered only when it will be).
Framing errors are ``HTTPError`` with ``close=True``: after them the connection cannot be reused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

from birthdays.errors import HTTPError

MAX_HEAD = 16 * 1024

# What a connection is doing, for the server's sweeper (one task enforcing every timeout).
IDLE, READ, WORK, WRITE = range(4)


@dataclass(slots=True, eq=False)
class Activity:
    state: int = IDLE
    since: float = 0.0

    def enter(self, state: int) -> None:
        self.state = state
        self.since = time.monotonic()


_METHOD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    keep_alive: bool


def parse_head(head: bytes) -> Request:
    """A request line and header fields, ending in CRLF CRLF, as a ``Request``."""
    lines = head[:-4].split(b"\r\n")
    try:
        method_b, target_b, version_b = lines[0].split(b" ")
    except ValueError:
        raise HTTPError(400, "malformed request line", close=True) from None
    if not method_b or not _METHOD_CHARS.issuperset(method_b):
        raise HTTPError(400, "malformed request method", close=True)
    if version_b not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version_b.startswith(b"HTTP/"):
            raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are supported", close=True)
        raise HTTPError(400, "malformed request line", close=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise HTTPError(400, "malformed header field", close=True)
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "host", "transfer-encoding", "content-type"):
                raise HTTPError(400, f"repeated header field {key}", close=True)
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text
    target = target_b.decode("latin-1")
    if not target.startswith("/"):
        raise HTTPError(400, "request target must be a path", close=True)
    path, _, query_text = target.partition("?")
    try:
        query = dict(parse_qsl(query_text, keep_blank_values=True, strict_parsing=False))
    except ValueError:
        raise HTTPError(400, "malformed query string") from None
    version = version_b.decode()
    conn = headers.get("connection", "").lower()
    keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return Request(method_b.decode(), unquote(path), query, version, headers, keep_alive)


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next request head, or ``None`` at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HTTPError(400, "incomplete request head", close=True) from None
        return None
    except asyncio.LimitOverrunError:
        raise HTTPError(431, f"request head over {MAX_HEAD} bytes", close=True) from None
    # Tolerate the empty lines RFC 9112 allows before a request line.
    return head.lstrip(b"\r\n") if head.startswith(b"\r\n") else head


@dataclass(slots=True)
class Body:
    """The body of one request, read on demand."""

    request: Request
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    activity: Activity
    consumed: bool = False

    def framing(self) -> int | None:
        """The Content-Length, ``None`` for chunked; 0 when there is no body."""
        headers = self.request.headers
        if "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower() != "chunked":
                raise HTTPError(501, "only chunked transfer coding is supported", close=True)
            if "content-length" in headers:
                raise HTTPError(400, "both Content-Length and Transfer-Encoding", close=True)
            return None
        text = headers.get("content-length")
        if text is None:
            return 0
        if not text.isdigit() or len(text) > 18:
            raise HTTPError(400, f"invalid Content-Length: {text[:30]}", close=True)
        return int(text)

    def present(self) -> bool:
        return self.framing() != 0

    async def read(self, limit: int) -> bytes:
        """The whole body, refused with 413 (before reading it, when its length is declared)."""
        length = self.framing()
        if length is not None and length > limit:
            raise HTTPError(413, f"body of {length} bytes is over the limit of {limit}", close=True)
        if self.request.headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.activity.enter(READ)
        try:
            data = await self._read_framed(length, limit)
        except asyncio.IncompleteReadError:
            raise HTTPError(400, "body ended early", close=True) from None
        except asyncio.LimitOverrunError:
            raise HTTPError(400, "malformed chunk", close=True) from None
        self.activity.enter(WORK)
        self.consumed = True
        return data

    async def _read_framed(self, length: int | None, limit: int) -> bytes:
        if length is not None:
            return await self.reader.readexactly(length) if length else b""
        parts: list[bytes] = []
        size = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            text = line[:-2].split(b";", 1)[0].strip()
            try:
                chunk = int(text, 16)
            except ValueError:
                raise HTTPError(400, "malformed chunk size", close=True) from None
            if chunk < 0:
                raise HTTPError(400, "malformed chunk size", close=True)
            if chunk == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailer fields: ignored
                return b"".join(parts)
            size += chunk
            if size > limit:
                raise HTTPError(413, f"body is over the limit of {limit} bytes", close=True)
            parts.append(await self.reader.readexactly(chunk))
            if await self.reader.readexactly(2) != b"\r\n":
                raise HTTPError(400, "malformed chunk", close=True)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None
    close: bool = False


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date_cache: list[tuple[int, bytes]] = [(0, b"")]


def _date() -> bytes:
    """The Date field, formatted once a second."""
    now = int(time.time())
    if _date_cache[0][0] != now:
        _date_cache[0] = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[0][1]


def head_bytes(resp: Response, *, keep_alive: bool, chunked: bool) -> bytes:
    parts = [
        b"HTTP/1.1 %d %s\r\nServer: birthdays\r\nDate: %s\r\n"
        % (resp.status, _REASONS.get(resp.status, "Unknown").encode(), _date())
    ]
    for name, value in resp.headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    else:
        parts.append(b"Content-Length: %d\r\n" % len(resp.body))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


async def write_response(
    writer: asyncio.StreamWriter,
    resp: Response,
    *,
    keep_alive: bool,
    head_only: bool,
    http10: bool,
    activity: Activity | None = None,
) -> None:
    """Send ``resp``; a stream goes out chunked (HTTP/1.1) or close-delimited (HTTP/1.0)."""
    if activity is not None:
        activity.enter(WRITE)
    if resp.stream is None:
        head = head_bytes(resp, keep_alive=keep_alive, chunked=False)
        writer.write(head if head_only else head + resp.body)
        await writer.drain()
        return
    chunked = not http10
    head = head_bytes(resp, keep_alive=keep_alive and chunked, chunked=chunked)
    try:
        if head_only:
            writer.write(head)
            await writer.drain()
            return
        # One write per chunk, the head going out with the first and the terminator with the
        # last: a response of one database batch is one segment.
        pending = head
        async for data in resp.stream:
            if data:
                if writer.transport.is_closing():
                    raise ConnectionResetError("the client closed the connection")
                writer.write(pending)
                await writer.drain()
                if activity is not None:
                    activity.since = time.monotonic()
                pending = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
        writer.write(pending + b"0\r\n\r\n" if chunked else pending)
        await writer.drain()
    finally:
        await resp.stream.aclose()  # the database cursor, when the client left early

"""HTTP/1.1 on asyncio streams: request bodies read on demand, responses out.

Requests are parsed by llhttp (``h1parse``); the body is read only when a handler asks for it,
so a body over the limit is refused with 413 before any of it is read (and ``Expect:
100-continue`` is answered only when it will be). Framing errors are ``HTTPError`` with
``close=True``: after them the connection cannot be reused.

A response with a body of known length carries its Content-Length; a streamed one goes out
chunked on HTTP/1.1 and close-delimited (no Content-Length, then the close) on HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from birthdays.errors import HTTPError
from birthdays.h1parse import Incoming, Request

__all__ = ["Activity", "Body", "Request", "Response", "write_response"]

# What a connection is doing, for the server's sweeper (one task enforcing every timeout):
# waiting for a request, receiving a head, reading a body, working, writing.
IDLE, HEAD, READ, WORK, WRITE = range(5)


@dataclass(slots=True, eq=False)
class Activity:
    state: int = IDLE
    since: float = 0.0

    served: int = 0  # requests answered on the connection

    def enter(self, state: int) -> None:
        self.state = state
        self.since = time.monotonic()


@dataclass(slots=True)
class Body:
    """The body of one request, read on demand (llhttp has checked its framing)."""

    request: Request
    incoming: Incoming
    writer: asyncio.StreamWriter
    activity: Activity
    consumed: bool = False

    def length(self) -> int | None:
        """The Content-Length, ``None`` for chunked; 0 when there is no body."""
        headers = self.request.headers
        if "transfer-encoding" in headers:
            return None
        text = headers.get("content-length")
        return 0 if text is None else int(text)  # ASCII digits: llhttp refuses anything else

    def present(self) -> bool:
        return self.length() != 0

    async def read(self, limit: int) -> bytes:
        """The whole body, refused with 413 (before reading it, when its length is declared)."""
        length = self.length()
        if length is not None and length > limit:
            raise HTTPError(413, f"body of {length} bytes is over the limit of {limit}", close=True)
        if self.request.headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.activity.enter(READ)
        parts: list[bytes] = []
        size = 0
        while (data := await self.incoming.next_body()) is not None:
            size += len(data)
            if size > limit:
                raise HTTPError(413, f"body is over the limit of {limit} bytes", close=True)
            parts.append(data)
        self.activity.enter(WORK)
        self.consumed = True
        return parts[0] if len(parts) == 1 else b"".join(parts)


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


def head_bytes(
    resp: Response, *, keep_alive: bool, chunked: bool, delimited: bool = False
) -> bytes:
    """The status line and fields; ``delimited``: the body ends with the connection."""
    parts = [
        b"HTTP/1.1 %d %s\r\nServer: birthdays\r\nDate: %s\r\n"
        % (resp.status, _REASONS.get(resp.status, "Unknown").encode(), _date())
    ]
    for name, value in resp.headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif not delimited:
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
    head = head_bytes(
        resp, keep_alive=keep_alive and chunked, chunked=chunked, delimited=not chunked
    )
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

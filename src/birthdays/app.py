"""Routes: what each request means, independent of how HTTP is framed on the socket.

::

    POST /              store a JSON object; 201, Location: /<id>, empty body
    GET  /              every document in arrival order: text/plain (the article's lines),
                        application/json (an array) or application/x-ndjson; ?limit=N&after=ID
    GET  /<id>          one document as {"id": ..., "document": {...}}
    GET  /healthz       the process is alive          GET /readyz   the database answers
    GET  /openapi.json  this API in OpenAPI 3.1
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from bson import ObjectId

from birthdays import documents
from birthdays.config import ServeConfig
from birthdays.documents import Document
from birthdays.errors import HTTPError, StoreError, StoreUnavailable
from birthdays.httpwire import Body, Request, Response
from birthdays.openapi import spec_bytes
from birthdays.store import DocumentStore

log = logging.getLogger("birthdays")

TEXT = "text/plain"
JSON = "application/json"
NDJSON = "application/x-ndjson"
PROBLEM = "application/problem+json"
RETRY_AFTER = "1"
MAX_LIMIT = 2**31 - 1
_WILDCARDS = {"*/*": TEXT, "text/*": TEXT, "application/*": JSON}
_CONTENT_TYPES = {TEXT: "text/plain; charset=utf-8", JSON: JSON, NDJSON: NDJSON}


def problem(
    status: int, title: str, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return Response(status, (("Content-Type", PROBLEM), *headers), body.encode())


def error_response(exc: Exception) -> Response:
    if isinstance(exc, HTTPError):
        resp = problem(exc.status, exc.title, exc.detail, exc.headers)
        return Response(resp.status, resp.headers, resp.body, close=exc.close)
    if isinstance(exc, StoreUnavailable):
        return problem(503, "Service Unavailable", str(exc), (("Retry-After", RETRY_AFTER),))
    if isinstance(exc, StoreError):
        log.error("%s", exc)
        return problem(500, "Internal Server Error", str(exc))
    log.exception("unexpected error")
    return problem(500, "Internal Server Error", "unexpected error; see the server log")


def negotiate(accept: str | None) -> str:
    """The media type for GET / by the ``Accept`` header (highest q, first on ties)."""
    if not accept:
        return TEXT
    best, best_q = "", 0.0
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        chosen = media if media in _CONTENT_TYPES else _WILDCARDS.get(media, "")
        if chosen and q > best_q:
            best, best_q = chosen, q
    if not best:
        raise HTTPError(
            406, f"cannot produce any of: {accept[:200]}; offered: {', '.join(_CONTENT_TYPES)}"
        )
    return best


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media, *params = content_type.split(";")
    if media.strip().lower() != JSON:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _limit(query: dict[str, str]) -> int | None:
    text = query.get("limit")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise HTTPError(400, f"limit: expected an integer from 1 to {MAX_LIMIT}, not {text[:40]!r}")
    return int(text)


class App:
    def __init__(self, store: DocumentStore, config: ServeConfig) -> None:
        self._store = store
        self._config = config
        self._spec = spec_bytes()

    async def handle(self, req: Request, body: Body) -> Response:
        try:
            return await self._route(req, body)
        except Exception as exc:
            return error_response(exc)

    async def _route(self, req: Request, body: Body) -> Response:
        path, method = req.path, req.method
        read = method in ("GET", "HEAD")
        if path == "/":
            if method == "POST":
                return await self._create(req, body)
            if read:
                return await self._list(req)
            raise _not_allowed("GET, HEAD, POST")
        handler: Callable[[], Awaitable[Response]] | None = None
        if path == "/healthz":
            handler = self._alive
        elif path == "/readyz":
            handler = self._ready
        elif path == "/openapi.json":
            handler = self._openapi
        elif len(path) == 25 and path[1:].isalnum():
            oid = documents.parse_id(path[1:], "path")
            if not read:
                raise _not_allowed("GET, HEAD")
            return await self._one(oid)
        if handler is None:
            raise HTTPError(404, f"no resource at {path[:100]}")
        if not read:
            raise _not_allowed("GET, HEAD")
        return await handler()

    async def _create(self, req: Request, body: Body) -> Response:
        if not _is_json(req.headers.get("content-type")):
            given = req.headers.get("content-type", "none")[:100]
            raise HTTPError(
                415,
                f"Content-Type must be application/json, not {given}",
                headers=(("Accept-Post", JSON),),
                close=body.present(),
            )
        data = await body.read(self._config.max_body)
        doc = documents.parse_document(data)
        oid = await self._store.insert(doc, len(data))
        return Response(201, (("Location", f"/{oid}"),))

    async def _list(self, req: Request) -> Response:
        media = negotiate(req.headers.get("accept"))
        limit = _limit(req.query)
        after_text = req.query.get("after")
        after = None if after_text is None else documents.parse_id(after_text, "after")
        batches = self._store.scan(after, limit)
        try:
            first: list[Document] = await anext(batches, [])
        except BaseException:
            await _aclose(batches)
            raise
        headers = (("Content-Type", _CONTENT_TYPES[media]),)
        return Response(200, headers, stream=_render(media, first, batches))

    async def _one(self, oid: ObjectId) -> Response:
        doc = await self._store.get(oid)
        if doc is None:
            raise HTTPError(404, f"no document {oid}")
        return Response(200, (("Content-Type", JSON),), documents.json_item(doc).encode())

    async def _alive(self) -> Response:
        return Response(200, (("Content-Type", JSON),), b'{"status":"alive"}')

    async def _ready(self) -> Response:
        try:
            await self._store.ping(timeout=1.0)
        except StoreError as exc:
            body = json.dumps({"status": "unavailable", "detail": str(exc)}).encode()
            return Response(503, (("Content-Type", JSON), ("Retry-After", RETRY_AFTER)), body)
        return Response(200, (("Content-Type", JSON),), b'{"status":"ready"}')

    async def _openapi(self) -> Response:
        return Response(200, (("Content-Type", JSON),), self._spec)


def _not_allowed(allow: str) -> HTTPError:
    return HTTPError(405, f"method not allowed; allowed: {allow}", headers=(("Allow", allow),))


async def _aclose(it: AsyncIterator[list[Document]]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


async def _render(
    media: str, first: list[Document], rest: AsyncIterator[list[Document]]
) -> AsyncGenerator[bytes, None]:
    try:
        if media == TEXT:
            yield documents.text_chunk(first)
            async for batch in rest:
                yield documents.text_chunk(batch)
        elif media == NDJSON:
            yield documents.ndjson_chunk(first)
            async for batch in rest:
                yield documents.ndjson_chunk(batch)
        else:
            started = bool(first)
            yield b"[\n" + documents.json_chunk(first, True)
            async for batch in rest:
                yield documents.json_chunk(batch, not started)
                started = started or bool(batch)
            yield b"\n]\n"
    finally:
        await _aclose(rest)

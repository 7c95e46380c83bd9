"""Documents in MongoDB: the store seam, group commit, and pymongo's errors translated.

Group commit: every POST waiting at the same moment goes into one ``insert_many`` with a
journaled write concern, and each is answered when that batch is durable. A journaled write
costs the database a log fsync and ~0.7 ms of fixed CPU per command (measured against
secantusdb), so one command for many documents is what makes the service faster than the
database's ``insert_one`` rate. One batch is in flight per process; what arrives meanwhile
forms the next.

Retries: the client runs with ``retryWrites=false`` (see docs/service.md: secantusdb 0.7's
retryable-write table makes every write slower as it grows) and retries here instead, with the
same guarantee: a batch whose outcome is unknown (the connection broke after sending) is sent
again with the same ``_id`` values, unordered, and a duplicate ``_id`` on that second attempt
means the first one had stored the document.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import bson
import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from birthdays.config import ServeConfig
from birthdays.documents import Document, IdFactory
from birthdays.errors import HTTPError, StoreError, StoreUnavailable
from birthdays.groupcommit import GroupCommit

log = logging.getLogger("birthdays")

DUPLICATE_KEY = 11000
READ_TIMEOUT_MS = 120_000
_REFUSED = re.compile(
    r"\[Errno 111\] Connect call failed \([^)]*\)|\[Errno 111\] Connection refused"
)
# Shutting down, stepping down, not primary, interrupted, maxTimeMS expired: try again later.
UNAVAILABLE_CODES = frozenset((50, 91, 189, 10107, 11600, 11602, 13435))
# The JSON bodies of one batch: at most 2 MiB of JSON is at most ~12 MiB of BSON, so a batch
# always fits one 48 MB wire message (a single larger body still goes alone).
BATCH_BYTES = 2 * 1024 * 1024


class DocumentStore(Protocol):
    """What the HTTP layer needs from a database."""

    async def insert(self, doc: Document, size: int) -> ObjectId: ...

    def scan(self, after: ObjectId | None, limit: int | None) -> AsyncIterator[list[Document]]: ...

    async def get(self, oid: ObjectId) -> Document | None: ...

    async def ping(self, timeout: float) -> None: ...

    async def close(self) -> None: ...


def _unavailable(op: str, exc: BaseException) -> StoreUnavailable:
    text = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
    text = _REFUSED.sub("connection refused", text)
    return StoreUnavailable(f"cannot {op}: database unavailable: {text[:200]}")


def _retryable(exc: PyMongoError) -> bool:
    """The write may or may not have happened, and trying again may work."""
    if isinstance(exc, ServerSelectionTimeoutError):
        return False  # nothing was sent
    if isinstance(exc, ConnectionFailure):
        return True
    return exc.has_error_label("RetryableWriteError")


class MongoStore:
    """``DocumentStore`` on pymongo's async client, with group commit."""

    def __init__(self, config: ServeConfig) -> None:
        self._config = config
        # Two clients, for two socket timeouts: a write must fail soon when the database stops
        # answering (a journaled batch of 1000 documents takes ~0.1 s), a read may wait its
        # turn behind other scans on a loaded secantusdb (measured: 50 concurrent GETs of
        # 10,000 documents, ~20 s each). pymongo's per-operation timeout (CSOT) is no help
        # here: under it, server selection waits the whole operation timeout, not
        # serverSelectionTimeoutMS, so a POST to a stopped database took 10 s to get its 503.
        write_ms = int(max(10.0, 5 * config.db_timeout) * 1000)
        self._writer = self._client(config, socket_timeout_ms=write_ms)
        self._reader = self._client(config, socket_timeout_ms=READ_TIMEOUT_MS)
        self._coll: AsyncCollection[Document] = self._writer.get_database(
            config.database
        ).get_collection(
            config.collection, write_concern=WriteConcern(w=config.write_concern, j=True)
        )
        self._read_coll = self._reader.get_database(config.database).get_collection(
            config.collection
        )
        self._name = f"{config.database}.{config.collection}"
        # At most this many reads in flight at the database per process (--db-reads, 1):
        # secantusdb streams ~48,000 documents/s to 3 concurrent cursors but ~36,000 to 10, so
        # GETs take turns per batch instead of all asking at once. A slow client holds no
        # turn: it is held only while a batch is fetched. Measured through three instances
        # with 10 streaming clients: 1 read each 43,000-55,000 documents/s, 2 reads
        # 42,000-46,000, 6 reads 40,000-42,000.
        self._read_gate = asyncio.Semaphore(config.db_reads)
        self._ids = IdFactory()
        self._group = GroupCommit(self._commit, max_items=config.batch_docs, max_bytes=BATCH_BYTES)
        self._closing = False

    @staticmethod
    def _client(config: ServeConfig, *, socket_timeout_ms: int) -> AsyncMongoClient[Document]:
        timeout_ms = int(config.db_timeout * 1000)
        return AsyncMongoClient(
            config.mongo.uri,
            directConnection=config.mongo.direct,
            retryWrites=False,  # retried here instead: see the module docstring
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=socket_timeout_ms,
            appname="birthdays",
        )

    # -- writes --------------------------------------------------------------------------------

    async def insert(self, doc: Document, size: int) -> ObjectId:
        if self._closing:
            raise StoreUnavailable("cannot insert: the server is shutting down")
        oid = self._ids.next()
        doc["_id"] = oid
        await self._group.submit(doc, size)
        return oid

    async def _commit(self, docs: list[Document]) -> list[BaseException | None]:
        """Insert ``docs`` with the journaled write concern: one outcome per document."""
        op = f"insert {len(docs)} documents into {self._name}"
        try:
            await self._coll.insert_many(docs, ordered=False)
            return [None] * len(docs)
        except BulkWriteError as exc:
            return _outcomes(exc.details, len(docs), op, retry=False)
        except PyMongoError as exc:
            if not _retryable(exc):
                return [_translate(op, exc)] * len(docs)
        try:
            await self._coll.insert_many(docs, ordered=False)
            return [None] * len(docs)
        except BulkWriteError as again:
            return _outcomes(again.details, len(docs), op, retry=True)
        except PyMongoError as again:
            return [_translate(op, again)] * len(docs)

    # -- reads ---------------------------------------------------------------------------------

    async def scan(
        self, after: ObjectId | None, limit: int | None
    ) -> AsyncIterator[list[Document]]:
        """Batches of documents in ``_id`` order, decoded once from raw BSON."""
        query: dict[str, Any] = {} if after is None else {"_id": {"$gt": after}}
        # The hint matters to secantusdb, whose planner sorts a collection scan in memory
        # (2x slower, and the whole collection in its RAM) unless told to walk the _id index.
        cursor = self._read_coll.find_raw_batches(
            query,
            sort=[("_id", 1)],
            hint=[("_id", 1)],
            limit=limit or 0,
            batch_size=self._config.stream_batch,
        )
        try:
            while True:
                try:
                    async with self._read_gate:
                        raw = await cursor.next()
                except StopAsyncIteration:
                    return
                except PyMongoError as exc:
                    raise _translate(f"read {self._name}", exc) from None
                yield bson.decode_all(raw)  # type: ignore[call-overload]
        finally:
            await cursor.close()

    async def get(self, oid: ObjectId) -> Document | None:
        try:
            async with self._read_gate:
                return await self._read_coll.find_one({"_id": oid})
        except PyMongoError as exc:
            raise _translate(f"read {self._name}", exc) from None

    async def ping(self, timeout: float) -> None:
        try:
            with pymongo.timeout(timeout):  # server selection included
                await self._writer.admin.command("ping")
        except PyMongoError as exc:
            raise _translate("ping the database", exc) from None

    async def close(self) -> None:
        """Commit what is queued, then disconnect."""
        self._closing = True
        await self._group.close()
        if self._group.batches:
            log.info(
                "committed %d documents in %d batches (%.1f per batch)",
                self._group.items,
                self._group.batches,
                self._group.items / self._group.batches,
            )
        await self._writer.close()
        await self._reader.close()


def _translate(op: str, exc: PyMongoError) -> StoreError:
    if isinstance(exc, ConnectionFailure) or exc.has_error_label("RetryableWriteError"):
        return _unavailable(op, exc)
    if isinstance(exc, OperationFailure) and exc.code in UNAVAILABLE_CODES:
        return _unavailable(op, exc)
    return StoreError(f"cannot {op}: {str(exc)[:300]}")


def _outcomes(
    details: Mapping[str, Any], n: int, op: str, *, retry: bool
) -> list[BaseException | None]:
    """Per-document outcomes of an unordered insert of ``n`` documents."""
    outcomes: list[BaseException | None] = [None] * n
    for err in details.get("writeErrors", ()):
        index, code = int(err["index"]), int(err.get("code", 0))
        message = str(err.get("errmsg", ""))[:300]
        if code == DUPLICATE_KEY and retry and err.get("keyPattern", {"_id": 1}) == {"_id": 1}:
            continue  # the first attempt stored it
        status = 409 if code == DUPLICATE_KEY else 422
        outcomes[index] = HTTPError(status, f"the database refused the document: {message}")
    concern = details.get("writeConcernErrors") or ()
    if concern:
        # Stored, but not known to be durable: not acknowledged as created.
        error = StoreUnavailable(f"cannot {op}: write concern: {concern[0].get('errmsg', '')}")
        outcomes = [outcome or error for outcome in outcomes]
    return outcomes

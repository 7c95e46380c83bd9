"""An acknowledged POST is durable: POSTs from several clients, then ``kill -9`` of the web
server and the database while writes are in flight; after the database restarts, pymongo finds
every document whose POST got 201."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo.errors import BulkWriteError

from birthdays.store import _outcomes
from service.birthdayslab import Mongo, Service, kill_quietly, wait_for


def writer(port: int, name: str, acked: list[str], stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set():
        body = json.dumps({"writer": name, "i": i})
        try:
            conn.request("POST", "/", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
        except (OSError, http.client.HTTPException):
            return  # the server is gone: this POST was not acknowledged
        if reply.status == 201:
            acked.append(reply.getheader("Location", "")[1:])
        i += 1


@pytest.mark.parametrize("first", ["server", "database"])
def test_acknowledged_posts_survive_kill_9(tmp_path: Path, first: str) -> None:
    mongo = Mongo(tmp_path / "db").start()
    svc = Service(mongo, tmp_path).start()
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=writer, args=(svc.port, f"w{n}", acked, stop)) for n in range(8)
    ]
    try:
        for t in threads:
            t.start()
        wait_for("400 acknowledged POSTs", lambda: len(acked) >= 400)
        victims = [svc.proc, mongo.proc] if first == "server" else [mongo.proc, svc.proc]
        for proc in victims:
            os.kill(proc.pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for proc in victims:
            proc.wait()
        survivors = list(acked)

        mongo = Mongo(mongo.data, mongo.port).start()
        with mongo.client() as client:
            ids = [ObjectId(i) for i in survivors]
            found = client.demo.birthdays.count_documents({"_id": {"$in": ids}})
        assert found == len(survivors) >= 400
    finally:
        stop.set()
        kill_quietly(svc, mongo)


def test_a_retried_batch_counts_documents_already_stored_as_stored(mongo: Mongo) -> None:
    # What MongoStore does when a batch's outcome is unknown: send it again, unordered, with
    # the same ids; a duplicate _id then means "the first attempt stored it". Checked against
    # the real server's error shape.
    docs = [{"_id": ObjectId(), "i": i} for i in range(4)]
    with mongo.client() as client:
        coll = client.demo.retried
        coll.drop()
        coll.insert_many(docs[:2])  # the lost first attempt stored the first two
        with pytest.raises(BulkWriteError) as err:
            coll.insert_many(docs, ordered=False)
        assert _outcomes(err.value.details, 4, "insert", retry=True) == [None] * 4
        assert coll.count_documents({}) == 4
        first = _outcomes(err.value.details, 4, "insert", retry=False)  # not a retry: a conflict
        assert [type(o).__name__ for o in first] == [
            "HTTPError",
            "HTTPError",
            "NoneType",
            "NoneType",
        ]

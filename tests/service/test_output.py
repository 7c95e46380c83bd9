"""GET: the three forms, arrival order across instances, paging, streaming over many database
batches, HEAD, HTTP/1.0 and keep-alive."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from service.birthdayslab import Doc, Mongo, Service, recv_exactly

pytestmark = pytest.mark.usefixtures("clean")

DOCS: list[Doc] = [
    {"name": "Albert Einstein", "birthday": "14.03.1879"},
    {"z": 1, "a": [1, 2.5, True, None], "nested": {"k": "v", "n": {"deep": []}}},
    {"text": "two\nlines", "tab": "a\tb", "unicode": "Schrödinger ψ", "empty": ""},
    {},
    {"id": "mine", "flag": False, "f": 1.0, "big": 2**62},
]
TEXT = (
    "name = Albert Einstein, birthday = 14.03.1879\n"
    'z = 1, a = [1,2.5,true,null], nested = {"k":"v","n":{"deep":[]}}\n'
    'text = "two\\nlines", tab = "a\\tb", unicode = Schrödinger ψ, empty = \n'
    "\n"
    "id = mine, flag = false, f = 1.0, big = 4611686018427387904\n"
)


@pytest.fixture
def posted(service: Service) -> list[str]:
    ids = []
    for doc in DOCS:
        reply = service.post(doc)
        assert reply.status == 201
        ids.append(reply.headers["location"][1:])
    return ids


def test_text_lines(service: Service, posted: list[str]) -> None:
    reply = service.request("GET", "/")
    assert reply.body.decode() == TEXT


def test_json_array(
    service: Service, posted: list[str], oracle: pymongo.collection.Collection[Doc]
) -> None:
    reply = service.request("GET", "/", headers={"Accept": "application/json"})
    assert reply.headers["content-type"] == "application/json"
    items = json.loads(reply.body)
    assert items == [{"id": i, "document": d} for i, d in zip(posted, DOCS, strict=True)]
    assert [str(d["_id"]) for d in oracle.find().sort("_id", 1)] == posted


def test_ndjson(service: Service, posted: list[str]) -> None:
    reply = service.request("GET", "/", headers={"Accept": "application/x-ndjson"})
    lines = reply.body.decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": i, "document": d} for i, d in zip(posted, DOCS, strict=True)
    ]


def test_one_document(service: Service, posted: list[str]) -> None:
    reply = service.request("GET", f"/{posted[1]}")
    assert reply.json() == {"id": posted[1], "document": DOCS[1]}


def test_empty_json_forms(service: Service) -> None:
    assert (
        json.loads(service.request("GET", "/", headers={"Accept": "application/json"}).body) == []
    )
    assert service.request("GET", "/", headers={"Accept": "application/x-ndjson"}).body == b""


def test_paging(service: Service, posted: list[str]) -> None:
    def page(query: str) -> list[str]:
        reply = service.request("GET", f"/?{query}", headers={"Accept": "application/x-ndjson"})
        assert reply.status == 200
        return [json.loads(line)["id"] for line in reply.body.decode().splitlines()]

    assert page("limit=2") == posted[:2]
    assert page(f"limit=2&after={posted[1]}") == posted[2:4]
    assert page(f"after={posted[3]}") == posted[4:]
    assert page(f"after={posted[4]}") == []
    assert page("limit=100") == posted
    assert page("after=000000000000000000000000") == posted


def test_head_sends_no_body(service: Service, posted: list[str]) -> None:
    answer = service.raw(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; charset=utf-8" in head
    assert body == b""


def test_http10_stream_is_close_delimited(service: Service, posted: list[str]) -> None:
    answer = service.raw(b"GET / HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert b"Connection: close" in head
    assert body.decode() == TEXT


def test_keep_alive_and_pipelining(service: Service) -> None:
    post = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 8\r\n\r\n{"n": 1}'
    )
    get = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    answer = service.raw(post + post + get)  # three requests in one segment, one connection
    assert answer.count(b"HTTP/1.1 201 Created\r\n") == 2
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 1
    assert answer.endswith(b"\r\n0\r\n\r\n")
    assert b"n = 1\nn = 1\n" in answer


def test_stream_spans_many_database_batches(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    n = 2500  # the service reads 1000 per batch
    oracle.insert_many([{"i": i} for i in range(n)])
    reply = service.request("GET", "/")
    assert reply.body.decode().splitlines() == [f"i = {i}" for i in range(n)]
    reply = service.request("GET", "/", headers={"Accept": "application/json"})
    assert [item["document"]["i"] for item in json.loads(reply.body)] == list(range(n))


def test_client_leaving_mid_stream_does_not_hurt_the_server(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    oracle.insert_many([{"i": i, "pad": "x" * 200} for i in range(5000)])
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", service.port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert recv_exactly(s, 15) == b"HTTP/1.1 200 OK"  # then leave, most of it unread
    assert service.request("GET", "/?limit=1").body == b"i = 0, pad = " + b"x" * 200 + b"\n"


@pytest.fixture
def second_instance(mongo: Mongo, service: Service, workdir: Path) -> Iterator[Service]:
    other = Service(mongo, workdir, collection=service.collection).start()
    yield other
    assert other.stop() == 0


def test_arrival_order_across_instances(service: Service, second_instance: Service) -> None:
    # Two processes, as the article's webserver1..3: ids sort in the order the POSTs arrived,
    # though each process draws its own random id part.
    for i in range(40):
        target = service if i % 2 == 0 else second_instance
        assert target.post({"i": i}).status == 201
    lines = second_instance.request("GET", "/").body.decode().splitlines()
    assert lines == [f"i = {i}" for i in range(40)]

"""The article's three POSTs and its GET, through curl, byte for byte."""

from __future__ import annotations

import re
import subprocess

import pymongo
import pytest

from service.birthdayslab import Doc, Service

pytestmark = pytest.mark.usefixtures("clean")

POSTS = [
    '{"name":"James Clerk Maxwell", "birthday":"13.06.1831"}',
    '{"name":"Albert Einstein", "birthday":"14.03.1879"}',
    '{"name":"Werner Heisenberg", "birthday":"05.12.1901"}',
]
EXPECTED = (
    "name = James Clerk Maxwell, birthday = 13.06.1831\n"
    "name = Albert Einstein, birthday = 14.03.1879\n"
    "name = Werner Heisenberg, birthday = 05.12.1901\n"
)


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30)


def test_the_articles_curl_commands(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    for body in POSTS:
        out = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", body, service.url)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    out = curl(service.url)
    assert out.returncode == 0
    assert out.stdout.decode() == EXPECTED
    # The oracle: the documents as stored, in their own key order, with nothing added but _id.
    stored = [{k: v for k, v in d.items() if k != "_id"} for d in oracle.find().sort("_id", 1)]
    assert stored == [
        {"name": "James Clerk Maxwell", "birthday": "13.06.1831"},
        {"name": "Albert Einstein", "birthday": "14.03.1879"},
        {"name": "Werner Heisenberg", "birthday": "05.12.1901"},
    ]


def test_post_answers_201_with_location_of_the_stored_document(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    reply = service.post({"name": "Albert Einstein", "birthday": "14.03.1879"})
    assert reply.status == 201
    assert reply.body == b""
    location = reply.headers["location"]
    assert re.fullmatch(r"/[0-9a-f]{24}", location)
    (stored,) = oracle.find()
    assert str(stored["_id"]) == location[1:]
    got = service.request("GET", location)
    assert got.status == 200
    assert got.json() == {
        "id": location[1:],
        "document": {"name": "Albert Einstein", "birthday": "14.03.1879"},
    }


def test_get_with_no_documents_is_empty_text(service: Service) -> None:
    reply = service.request("GET", "/")
    assert (reply.status, reply.body) == (200, b"")
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"

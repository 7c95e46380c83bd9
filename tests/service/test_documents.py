"""The pure parts, in process: strict parsing against ``json``, rendering, ids."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from birthdays.documents import (
    IdFactory,
    json_item,
    parse_document,
    text_line,
)
from birthdays.errors import HTTPError

keys = st.text(max_size=8).filter(
    lambda k: not k.startswith("$") and "." not in k and "\x00" not in k and k != "_id"
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=150)
@given(documents)
def test_valid_documents_parse_to_what_json_reads(doc: dict[str, Any]) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    assert parse_document(body) == json.loads(body)
    assert list(parse_document(body)) == list(doc)  # key order kept


@settings(max_examples=100)
@given(documents)
def test_json_item_carries_the_document_unchanged(doc: dict[str, Any]) -> None:
    oid = ObjectId()
    item = json.loads(json_item({"_id": oid, **doc}))
    assert item == {"id": str(oid), "document": json.loads(json.dumps(doc))}


@settings(max_examples=100)
@given(documents)
def test_a_text_line_is_one_line(doc: dict[str, Any]) -> None:
    assert len(text_line(doc).splitlines()) <= 1


def test_text_line_forms() -> None:
    doc = {"_id": ObjectId(), "s": "plain", "n": 1, "x": 1.5, "b": True, "z": None, "l": [1, "a"]}
    assert text_line(doc) == 's = plain, n = 1, x = 1.5, b = true, z = null, l = [1,"a"]'


def test_ids_increase_within_a_process_and_keep_the_time() -> None:
    factory = IdFactory()
    # Bracketed by the clock, not compared with an id made after the 10,000: on a loaded
    # machine making them may take longer than the 1 s that comparison allowed.
    before = time.time()
    ids = [factory.next() for _ in range(10_000)]
    after = time.time()
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert int(before) <= ids[0].generation_time.timestamp() <= after


def test_ids_of_two_processes_interleave_by_time() -> None:
    """Ids made at different microseconds sort by time whichever process made them (two made
    within the same microsecond tie on time and fall back to the processes' random tags)."""
    a, b = IdFactory(), IdFactory()
    ids = []
    for factory in (a, b, a, b):
        ids.append(factory.next())
        time.sleep(0.001)
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{}", None), (b'{"a":{}}', None), (b"{", 400), (b"[]", 422), (b'{"a":NaN}', 422)],
)
def test_statuses(body: bytes, status: int | None) -> None:
    if status is None:
        parse_document(body)
    else:
        with pytest.raises(HTTPError) as err:
            parse_document(body)
        assert err.value.status == status

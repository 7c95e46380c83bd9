"""JSON documents in and out: strict parsing of a POSTed body, and the three output forms.

Parsing is two-stage, as everywhere in netplumb: ``json`` reads the text into raw pairs
(``object_pairs_hook`` keeps duplicate keys visible), then one walk from the top resolves them
into dicts and checks what MongoDB and this API refuse, with the place of the error as a JSON
path: ``$.a[2]: duplicate key "b"``.

Output works on documents decoded from a raw BSON batch, once, straight into the wire format;
nothing is re-encoded on the way (``bson`` decodes a whole batch in C).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from bson import ObjectId

from birthdays.errors import HTTPError

MAX_DEPTH = 100
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters that end a line somewhere (str.splitlines, terminals): a text line must not hold one.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

Document = dict[str, Any]


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as ``json`` read it: its pairs in order, duplicates kept."""


class _Constant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Constant(name)


def _parse_int(text: str) -> int:
    """A JSON integer; one of more digits than any 64-bit one has stands for "out of range"
    (reported with its path), not converted: int() refuses over 4,300 digits (a 500 before)."""
    return int(text) if len(text) <= 21 else INT64_MAX + 1


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Pairs, parse_constant=_refuse_constant, parse_int=_parse_int
)


def unprocessable(path: str, message: str) -> HTTPError:
    if len(path) > 80:  # 100 levels of nesting make a 300-character path
        path = f"{path[:40]}...{path[-30:]}"
    return HTTPError(422, f"{path}: {message}")


def parse_document(body: bytes) -> Document:
    """The JSON object in ``body``, checked; ``HTTPError`` 400 or 422 otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(400, f"malformed JSON: not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise HTTPError(400, "malformed JSON: starts with a byte order mark (RFC 8259 forbids it)")
    try:
        raw = _DECODER.decode(text)
    except _Constant as exc:
        raise HTTPError(
            422, f"$: {exc} is not a JSON number; NaN and Infinity are refused"
        ) from None
    except RecursionError:
        raise HTTPError(422, f"$: nesting deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise HTTPError(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(raw, _Pairs):
        raise HTTPError(422, f"$: the document must be a JSON object, not {_kind(raw)}")
    doc = _resolve_object(raw, "$", 1)
    if "_id" in doc:
        raise unprocessable("$", 'key "_id" is reserved: the server assigns document ids')
    return doc


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key)}]"


def _check_string(path: str, text: str, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise unprocessable(path, f"{what} is not valid Unicode (a lone surrogate)") from None


def _resolve_object(pairs: _Pairs, path: str, depth: int) -> Document:
    if depth > MAX_DEPTH:
        raise unprocessable(path, f"nesting deeper than {MAX_DEPTH} levels")
    out: Document = {}
    for key, value in pairs:
        _check_string(path, key, f"key {json.dumps(key)}")
        if key in out:
            raise unprocessable(path, f"duplicate key {json.dumps(key)}")
        if key.startswith("$"):
            raise unprocessable(path, f'key {json.dumps(key)} must not start with "$"')
        if "." in key:
            raise unprocessable(path, f'key {json.dumps(key)} must not contain "."')
        if "\x00" in key:
            raise unprocessable(path, f"key {json.dumps(key)} must not contain NUL")
        out[key] = _resolve(value, path, key, depth)
    return out


def _resolve(value: Any, parent: str, key: str | int, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_string(_at(parent, key), value, "string")
        return value
    if kind is _Pairs:
        return _resolve_object(value, _at(parent, key), depth + 1)
    if kind is list:
        path = _at(parent, key)
        if depth + 1 > MAX_DEPTH:
            raise unprocessable(path, f"nesting deeper than {MAX_DEPTH} levels")
        return [_resolve(item, path, i, depth + 1) for i, item in enumerate(value)]
    if kind is int and not INT64_MIN <= value <= INT64_MAX:
        raise unprocessable(_at(parent, key), "integer out of range (MongoDB stores 64 bits)")
    if kind is float and not math.isfinite(value):
        raise unprocessable(_at(parent, key), "number out of range of a 64-bit float")
    return value


def _at(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else _member(parent, key)


# -- ids ---------------------------------------------------------------------------------------


class IdFactory:
    """ObjectIds that sort in arrival order across processes on one clock.

    A standard ObjectId orders by second only, then by a per-process random value, so three
    instances receiving POSTs within the same second would list them out of order. These keep
    the ObjectId shape (4 bytes of seconds, so ``generation_time`` is right) and put the
    microseconds in the next 3 bytes, then 5 random bytes chosen per process. Within a process
    ids strictly increase even if the clock steps back.
    """

    def __init__(self) -> None:
        self._tag = os.urandom(5)
        self._last = 0

    def next(self) -> ObjectId:
        now = time.time_ns() // 1000
        if now <= self._last:
            now = self._last + 1
        self._last = now
        seconds, micros = divmod(now, 1_000_000)
        return ObjectId(seconds.to_bytes(4, "big") + micros.to_bytes(3, "big") + self._tag)


def parse_id(text: str, where: str) -> ObjectId:
    if len(text) != 24 or not ObjectId.is_valid(text):
        raise HTTPError(400, f"{where}: not a document id (24 hex digits): {text[:40]!r}")
    return ObjectId(text)


# -- output ------------------------------------------------------------------------------------


def _foreign(value: Any) -> Any:
    """Values only other writers can store (dates, ObjectIds, binary): shown as text."""
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_foreign)


def _escaped(value: Any) -> str:
    """Compact JSON that stays on one line: json escapes U+0000-U+001F, this the rest."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", compact(value))


def _plain(text: str) -> str:
    return _escaped(text) if _CONTROL.search(text) else text


def text_line(doc: Document) -> str:
    """``key = value, ...`` without ``_id``: the article's line. Strings appear as they are,
    except ones with control characters (a newline would break one-line-per-document), which
    appear as JSON strings like every other value; keys likewise."""
    line = ", ".join(
        f"{key} = {value if type(value) is str else compact(value)}"
        for key, value in doc.items()
        if key != "_id"
    )
    if _CONTROL.search(line) is None:  # one search per document on the common path
        return line
    return ", ".join(
        f"{_plain(key)} = {_plain(value) if type(value) is str else _escaped(value)}"
        for key, value in doc.items()
        if key != "_id"
    )


def json_item(doc: Document) -> str:
    """``{"id": ..., "document": {...}}``: the id beside the document, never inside it, so a
    document with its own ``id`` key reads back unchanged."""
    oid = doc.pop("_id", None)
    return f'{{"id":{compact(str(oid))},"document":{compact(doc)}}}'


def text_chunk(docs: Iterable[Document]) -> bytes:
    return "".join(text_line(doc) + "\n" for doc in docs).encode()


def ndjson_chunk(docs: Iterable[Document]) -> bytes:
    return "".join(json_item(doc) + "\n" for doc in docs).encode()


def json_chunk(docs: Iterable[Document], first: bool) -> bytes:
    items = ",\n".join(json_item(doc) for doc in docs)
    if not items:
        return b""
    return (items if first else ",\n" + items).encode()

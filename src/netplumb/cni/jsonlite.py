"""JSON without ``import json``: the plugin's hot path cannot afford it.

``import json`` costs ~13 ms here (its decoder compiles regular expressions with ``re``), as much
as Python's own start-up. The C accelerator ``_json`` that ``json`` uses underneath imports in
0.4 ms: its scanner parses, and a few lines below write the small documents CNI results are.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DecodeError(ValueError):
    """The text is not one JSON document."""


def _constant(name: str) -> object:
    raise DecodeError(f"{name} is not valid JSON")


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 -- the scanner's key cache, as in json


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed, as in json
_SPACE = " \t\n\r"


def loads(text: str) -> Any:
    """Parse one JSON document; ``DecodeError`` says where it went wrong."""
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        where = exc.value if isinstance(exc.value, int) else start
        if where >= len(text):
            raise DecodeError("unexpected end of input") from None
        raise DecodeError(f"expected a value at character {where}") from None
    except ValueError as exc:  # json.JSONDecodeError, raised by the scanner itself
        raise DecodeError(str(exc)) from None
    except SystemError:
        # The scanner reports a syntax error with json.decoder's exception class, which it
        # looks up among the loaded modules only: load it (the error path may be slow), and
        # scan again for the message.
        import json.decoder  # noqa: F401 -- loaded for the scanner, not used here

        try:
            _scan(text, start)
        except ValueError as exc:
            raise DecodeError(str(exc)) from None
        raise DecodeError("invalid JSON") from None
    finally:
        _Context.memo.clear()
    rest = text[end:].lstrip(_SPACE)
    if rest:
        raise DecodeError(f"extra data at character {len(text) - len(rest)}")
    return value


def dumps(value: object) -> str:
    """Compact JSON text (strings ASCII-escaped); keys in the order given."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _write(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124 -- NaN
            raise ValueError(f"cannot write {value} as JSON")
        out.append(repr(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys are strings, not {type(k).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_json.encode_basestring_ascii(k))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

"""Read a topology file: YAML -> raw (``raw.py``) -> resolved ``Topology`` (``resolve.py``).

The YAML is composed (``yaml.compose``), not loaded, so that every value keeps its line: an
error is one line, ``FILE:LINE: services.webserver.ports[1]: invalid hostPort: abc``.

Scalars follow YAML 1.2's core schema, not PyYAML's YAML 1.1 defaults: ``yes``, ``no``,
``on`` and ``off`` are strings (a network called ``no`` stays one), ``22:22`` is a string
rather than the sexagesimal number 1342 (the classic trap of Compose files' ``ports``), and
dates are strings. Anchors, aliases and merge keys (``<<: *base``) work as in YAML; top-level
keys starting with ``x-`` are ignored, a place to define anchors.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netplumb.model.network import Network
from netplumb.topofile.model import Path, Topology, TopologyError
from netplumb.topofile.raw import RawTopology
from netplumb.topofile.resolve import resolve
from netplumb.topofile.values import expected

MAX_NODES = 200_000  # aliases can make a small file huge ("billion laughs")

_TAG = "tag:yaml.org,2002:"
_CORE_RESOLVERS = [
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+.0123456789",
    ),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
]


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 -- own table, not the parent's


class _Dumper(yaml.SafeDumper):
    """Quotes exactly the strings that ``_Loader`` would read as something else."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 -- own table, not the parent's


for _cls in (_Loader, _Dumper):
    for _kind, _regexp, _first in _CORE_RESOLVERS:
        _cls.add_implicit_resolver(_TAG + _kind, re.compile(f"^(?:{_regexp})$"), list(_first))


def _scalar(node: ScalarNode) -> object:
    """A scalar's value by its tag (resolved by the core schema, or explicit: ``!!str 8080``).

    Raises ValueError for a value its explicit tag does not allow, or a tag not supported."""
    text, kind = node.value, node.tag.removeprefix(_TAG)
    if kind == "str":
        return text
    if kind == "null" and text in ("~", "null", "Null", "NULL", ""):
        return None
    if kind == "bool" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "int":
        sign, digits = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
        base = {"0o": 8, "0x": 16}.get(digits[:2].lower(), 10)
        return int(sign + (digits[2:] if base != 10 else digits), base)
    if kind == "float":
        special = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
        return special[text.lower()] if text.lower() in special else float(text)
    raise ValueError(text)


class Document:
    """The plain data of a YAML file, and the line of every value in it by path."""

    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path, int] = {(): 1}
        self._count = 0
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = exc.problem or exc.context or "invalid YAML"
            raise TopologyError((), problem, filename, line) from None
        except yaml.YAMLError as exc:  # the reader: a character YAML does not allow
            position = getattr(exc, "position", 0)
            line = text[:position].count("\n") + 1
            raise TopologyError((), str(exc).splitlines()[0], filename, line) from None
        if root is None:
            raise TopologyError((), "the file is empty", filename, 1)
        self.data = self._value(root, (), set())
        if not isinstance(self.data, dict):
            raise TopologyError((), "expected a mapping at the top level", filename, 1)

    def error(self, path: Path, detail: str, node: Node) -> TopologyError:
        return TopologyError(path, detail, self.filename, node.start_mark.line + 1)

    def _value(self, node: Node, path: Path, stack: set[int]) -> object:
        self._count += 1
        if self._count > MAX_NODES:
            raise self.error(path, f"more than {MAX_NODES} values (aliases?)", node)
        if isinstance(node, ScalarNode):
            try:
                return _scalar(node)
            except ValueError:
                tag = node.tag.replace(_TAG, "!!")
                known = tag.removeprefix("!!") in ("str", "null", "bool", "int", "float")
                detail = (
                    f"invalid {tag} value: {node.value!r}" if known else f"unsupported tag {tag}"
                )
                raise self.error(path, detail, node) from None
        if id(node) in stack:
            raise self.error(path, "an alias refers to a value containing it", node)
        inner = stack | {id(node)}
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self._value(item, (*path, i), inner))
            return items
        assert isinstance(node, MappingNode)
        out: dict[str, object] = {}
        for key, (key_node, value_node) in self._pairs(node, path).items():
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self._value(value_node, (*path, key), inner)
        return out

    def _pairs(self, node: MappingNode, path: Path) -> dict[str, tuple[Node, Node]]:
        """A mapping's entries by key: merged ones (``<<``) first, overridden by its own."""
        merged: dict[str, tuple[Node, Node]] = {}
        own: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in reversed(sources):  # the first source wins, as YAML says
                    if not isinstance(source, MappingNode):
                        raise self.error(path, "<< needs a mapping or a list of them", source)
                    merged |= self._pairs(source, path)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self.error(path, "a key must be a string", key_node)
            key = key_node.value
            if key in own:
                first = own[key][0].start_mark.line + 1
                raise self.error((*path, key), f"duplicate key (first on line {first})", key_node)
            own[key] = (key_node, value_node)
        return merged | own

    def locate(self, loc: tuple[str | int, ...]) -> tuple[Path, int]:
        """The path as the user wrote it, and its line, for a path in the long form.

        Short forms make the two differ: ``networks: [demo]`` is ``networks.demo`` in the long
        form and ``networks[0]`` in the file; ``subnet: 10.2.0.0/16`` is ``subnet[0]``.
        """
        data: object = self.data
        path: Path = ()
        for i, part in enumerate(loc):
            if isinstance(data, dict) and part in data:
                step: str | int = part
            elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
                step = part
            elif isinstance(data, list) and isinstance(part, str) and (k := _item(data, part)) >= 0:
                step = k
            elif isinstance(data, dict | list):  # not written: a missing key, a default
                path = (*path, *loc[i:])
                break
            else:  # a scalar standing for a list of one
                break
            data = data[step]  # type: ignore[index]
            path = (*path, step)
        line = next(
            self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines
        )
        return path, line


def _item(items: list[object], name: str) -> int:
    """The index of ``name`` (or ``name=...``) in a short-form list of names, or -1."""
    for k, item in enumerate(items):
        if item == name or (isinstance(item, str) and item.startswith(name + "=")):
            return k
    return -1


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least"),
    "greater_than": ("gt", "must be more than"),
    "less_than_equal": ("le", "must be at most"),
    "less_than": ("lt", "must be less than"),
    "too_short": ("min_length", "needs at least this many items:"),
    "too_long": ("max_length", "takes at most this many items:"),
}


def _detail(error: Any) -> str:
    """pydantic's error as a short sentence; netplumb's own messages word for word."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("netplumb", "unknown_key"):
        return str(error["msg"])
    if kind == "missing":
        return "required"
    if kind in _EXPECTED:
        return str(expected(_EXPECTED[kind], error["input"]))
    if kind == "literal_error":
        return str(expected(ctx["expected"], error["input"]))
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"{words} {ctx[key]:g}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def validate(doc: Document) -> RawTopology:
    """The raw stage; the first error in the file (by line) if it does not validate."""
    try:
        return RawTopology.model_validate(doc.data)
    except ValidationError as exc:
        found = []
        for order, error in enumerate(exc.errors()):
            loc = tuple(error["loc"])
            if error["type"] == "unknown_key":
                loc = (*loc, error["ctx"]["key"])
            path, line = doc.locate(loc)
            found.append((line, order, path, _detail(error)))
        line, _, path, detail = min(found)
        raise TopologyError(path, detail, doc.filename, line) from None


def project_of(filename: str) -> str:
    """The project name when the file gives none: the file's name without its extension."""
    if filename.startswith("<"):
        return "default"
    base = os.path.basename(filename)
    return base.split(".")[0] if not base.startswith(".") else base


def loads(
    text: str,
    filename: str = "<string>",
    project: str | None = None,
    default: Network | None = None,
) -> Topology:
    """The resolved topology of a YAML text; ``filename`` is what errors name."""
    doc = Document(text, filename)
    raw = validate(doc)
    try:
        return resolve(raw, project or project_of(filename), default)
    except TopologyError as exc:
        path, line = doc.locate(exc.path)
        raise TopologyError(path, exc.detail, filename, line) from None


def load(path: str | os.PathLike[str], default: Network | None = None) -> Topology:
    """The resolved topology of a file (``netplumb up -f FILE``)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TopologyError((), f"cannot read {name}: {reason}") from None
    return loads(text, name, default=default)


def parse(text: str, filename: str = "<string>") -> RawTopology:
    """Only the raw stage (what the user wrote, short forms expanded)."""
    return validate(Document(text, filename))


def dumps(doc: RawTopology | dict[str, Any]) -> str:
    """YAML that ``loads`` reads back to the same: plain data as it is, a raw topology in
    its long form (every short form expanded, defaults left out)."""
    data = (
        doc.model_dump(mode="json", exclude_defaults=True) if isinstance(doc, RawTopology) else doc
    )
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)

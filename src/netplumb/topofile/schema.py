"""The JSON Schema of topology files, for editors (``docs/topology.schema.json``).

Regenerate the published copy with::

    python -m netplumb.topofile.schema > docs/topology.schema.json

An editor with the YAML language server picks it up from a first line such as
``# yaml-language-server: $schema=../docs/topology.schema.json``. The schema describes what
the raw models accept, short forms included; some checks live only in netplumb (a port
spec's grammar, names that must exist, addresses inside subnets): the schema catches typos
and wrong types as you type, ``netplumb.topofile.load`` the rest, with the line.
"""

from __future__ import annotations

import json
from typing import Any

from netplumb.topofile.raw import RawTopology


def json_schema() -> dict[str, Any]:
    schema = _tidy(RawTopology.model_json_schema(mode="validation"))
    assert isinstance(schema, dict)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "netplumb topology",
    }


def _tidy(node: object) -> object:
    """Without pydantic's generated titles ("Host If") and the Raw prefix of class names:
    editors show titles, and these say nothing the key does not."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace("/Raw", "/")
        elif key in ("properties", "$defs") and isinstance(value, dict):
            # keys here are names (a field called "title" stays), values are schemas
            rename = key == "$defs"
            out[key] = {(k[3:] if rename else k): _tidy(v) for k, v in value.items()}
        else:
            out[key] = _tidy(value)
    return out


def main() -> None:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()

"""The API in OpenAPI 3.1, served at ``/openapi.json`` and checked by schemathesis in the tests.

A Python literal rather than a data file so it travels with the package whatever builds it.
"""

from __future__ import annotations

import json
from typing import Any

_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$", "example": "6564c0ffee0123456789abcd"}
_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
        }
    }
}
_RETRY = {"Retry-After": {"schema": {"type": "string"}, "required": True}}
_ITEM = {
    "type": "object",
    "required": ["id", "document"],
    "properties": {"id": _ID, "document": {"type": "object"}},
    "additionalProperties": False,
}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM, **extra}


_STATUS_JSON = {"application/json": {"schema": {"type": "object"}}}
_UNAVAILABLE = _error("The database is unreachable; try again later", headers=_RETRY)
_BAD_QUERY = _error("Invalid query parameter or id")

_KEY = {"type": "string", "pattern": "^([^$.\\u0000][^.\\u0000]*)?$"}
_COMPONENTS = {
    "schemas": {
        "Document": {
            "description": "Any JSON object whose keys at every level neither start with $ nor "
            "contain . or NUL, without a key _id, nested at most 100 levels",
            "type": "object",
            "propertyNames": _KEY,
            "additionalProperties": {"$ref": "#/components/schemas/Value"},
            "not": {"required": ["_id"]},
        },
        # Values are left open here and checked by the service (422): a precise anyOf of
        # the value kinds made schemathesis's negative cases mutate one branch into another,
        # still valid one, and JSON Schema cannot tell 1e30 (a double) from 10**30 (refused).
        "Value": {
            "description": "Any JSON value; objects within follow the key rules of Document "
            "and integers fit in 64 bits",
        },
    }
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "birthdays",
        "version": "1.0.0",
        "description": "JSON documents kept in MongoDB: the web service of the article "
        "'Docker Networking Made Simple'. Errors are RFC 9457 problem documents.",
    },
    "paths": {
        "/": {
            "post": {
                "operationId": "createDocument",
                "summary": "Store a JSON object",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Document"},
                            "example": {"name": "Albert Einstein", "birthday": "14.03.1879"},
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Stored durably (journaled write concern); empty body",
                        "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
                    },
                    "400": _error("Malformed JSON or HTTP framing"),
                    "409": _error("A unique index of the collection refused the document"),
                    "413": _error("Body over the size limit (1 MiB by default)"),
                    "415": _error("Content-Type is not application/json"),
                    "422": _error(
                        "Not a JSON object, duplicate keys, NaN/Infinity, keys starting with $ or "
                        "containing . or NUL, a key _id, nesting deeper than 100 levels, integers "
                        "beyond 64 bits"
                    ),
                    "503": _UNAVAILABLE,
                },
            },
            "get": {
                "operationId": "listDocuments",
                "summary": "All documents in arrival order, streamed",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
                    },
                    {"name": "after", "in": "query", "schema": _ID},
                ],
                "responses": {
                    "200": {
                        "description": "One line per document (text), an array, or NDJSON",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": _ITEM}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _BAD_QUERY,
                    "406": _error("None of the accepted media types can be produced"),
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/{id}": {
            "get": {
                "operationId": "getDocument",
                "summary": "One document by the id of its Location",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": _ID}],
                "responses": {
                    "200": {
                        "description": "The document",
                        "content": {"application/json": {"schema": _ITEM}},
                    },
                    "400": _BAD_QUERY,
                    "404": _error("No such document"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "alive",
                "summary": "The process is alive",
                "responses": {"200": {"description": "Alive", "content": _STATUS_JSON}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "summary": "The database answers a ping within a second",
                "responses": {
                    "200": {"description": "Ready", "content": _STATUS_JSON},
                    "503": {
                        "description": "Database unreachable",
                        "content": _STATUS_JSON,
                        "headers": _RETRY,
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": _STATUS_JSON}},
            }
        },
    },
    "components": _COMPONENTS,
}


def spec_bytes() -> bytes:
    return json.dumps(SPEC, indent=1).encode()

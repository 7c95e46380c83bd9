"""A hypothesis state machine: whatever mix of good and bad POSTs, every GET equals the
acknowledged POSTs, in order, in each of the three forms and in pages."""

from __future__ import annotations

import json
from typing import Any

import pymongo
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from service.birthdayslab import Doc, Service

# Printable text only, so the expected text form below stays independent and trivial.
text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=["Cc"]), max_size=10
)
keys = text.filter(lambda k: not k.startswith("$") and "." not in k and k != "_id")
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
documents = st.dictionaries(keys, values, max_size=4)
bad_bodies = st.sampled_from(
    ['{"$set": {}}', "[]", '{"a": 1, "a": 1}', '{"a": NaN}', "{", '{"a.b": 0}', '{"_id": 1}']
) | st.binary(max_size=20).map(lambda b: b.decode("latin-1"))


NDJSON = "application/x-ndjson"


def expected_line(doc: Doc) -> str:
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    return ", ".join(
        f"{k} = {v if isinstance(v, str) else json.dumps(v, **compact)}"  # type: ignore[arg-type]
        for k, v in doc.items()
    )


def test_get_equals_the_acknowledged_posts(
    service: Service, oracle: pymongo.collection.Collection[Doc]
) -> None:
    class Birthdays(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            oracle.delete_many({})
            self.docs: list[Doc] = []
            self.ids: list[str] = []

        @rule(doc=documents)
        def post(self, doc: Doc) -> None:
            reply = service.post(doc)
            assert reply.status == 201, reply
            self.docs.append(json.loads(json.dumps(doc)))
            self.ids.append(reply.headers["location"][1:])

        @rule(body=bad_bodies)
        def post_bad(self, body: str) -> None:
            reply = service.post(body)
            if reply.status == 201:  # random bytes can be a valid document: "{}"
                self.docs.append(json.loads(body))
                self.ids.append(reply.headers["location"][1:])
            else:
                assert reply.status in (400, 422), reply

        @rule()
        def get_text(self) -> None:
            body = service.request("GET", "/").body.decode()
            assert body == "".join(expected_line(d) + "\n" for d in self.docs)

        @rule(form=st.sampled_from(["application/json", "application/x-ndjson"]))
        def get_json(self, form: str) -> None:
            body = service.request("GET", "/", headers={"Accept": form}).body
            items: list[Any] = (
                json.loads(body) if form == "application/json"
                else [json.loads(line) for line in body.splitlines()]
            )  # fmt: skip
            assert items == [
                {"id": i, "document": d} for i, d in zip(self.ids, self.docs, strict=True)
            ]

        @rule(data=st.data())
        def get_page(self, data: st.DataObject) -> None:
            start = data.draw(st.integers(0, len(self.ids)))
            limit = data.draw(st.integers(1, 4))
            query = f"limit={limit}" + (f"&after={self.ids[start - 1]}" if start else "")
            body = service.request("GET", f"/?{query}", headers={"Accept": NDJSON}).body
            got = [json.loads(line)["id"] for line in body.splitlines()]
            assert got == self.ids[start : start + limit]

        @invariant()
        def stored_count(self) -> None:
            assert oracle.count_documents({}) == len(self.docs)

    run_state_machine_as_test(
        Birthdays,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )

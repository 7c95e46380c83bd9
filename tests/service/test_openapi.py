"""The OpenAPI description at /openapi.json, checked against the running service with
schemathesis: every documented operation, positive and negative data, every default check (no
5xx; status codes, content types, headers and bodies as documented; invalid data refused;
unsupported methods answered 405 with Allow) but one.

Not ``positive_data_acceptance``: JSON Schema cannot say everything the service refuses with a
documented 422. It calls 1e30 and 10**30 both integers (the service stores the first as a
double and refuses the second: MongoDB has no integer that wide), and it cannot bound the
nesting depth."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from birthdays.openapi import SPEC
from service.birthdayslab import Service

schema = schemathesis.openapi.from_dict(json.loads(json.dumps(SPEC)))


def test_the_service_serves_this_description(service: Service) -> None:
    assert service.request("GET", "/openapi.json").json() == SPEC


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case[Any], service: Service) -> None:
    case.call_and_validate(
        base_url=service.url.rstrip("/"), excluded_checks=[positive_data_acceptance]
    )

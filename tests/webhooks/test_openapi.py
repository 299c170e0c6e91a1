"""The OpenAPI document is generated from the routes' own pydantic models, is valid OpenAPI 3.0
(what Salesforce External Services imports), and agrees with what the routes accept and refuse."""

from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from connectors.salesforce.flow import FlowAction
from core.tasks.kinds import ACTION_KINDS, TONES
from webhooks.openapi import document, to_openapi_30
from webhooks.tasks import TaskRequest


def _validator(doc: dict[str, Any], name: str) -> OAS30Validator:
    return OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_the_served_document_is_valid_openapi_30(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    validate(doc)  # openapi-spec-validator: the 3.0 schema, refs resolved, formats checked
    assert doc["openapi"] == "3.0.3" and doc == document()
    schemas = doc["components"]["schemas"]
    assert set(schemas["TaskRequest"]["properties"]) == set(TaskRequest.model_fields)
    assert set(schemas["FlowAction"]["properties"]) == set(FlowAction.model_fields)
    assert schemas["FlowAction"]["properties"]["tone"]["enum"] == [*TONES, None]
    action = doc["paths"]["/salesforce/actions/{action}"]["post"]["parameters"][0]
    assert action["schema"]["enum"] == sorted(ACTION_KINDS)


@pytest.mark.parametrize(("body", "accepted"), [
    ({"recordId": "003000000000001AAA", "brief": "Say hello", "tone": "formal"}, True),
    ({"recordId": "003000000000001AAA", "fields": {"FirstName": "Ann", "NumberOfEmployees": 5}}, True),
    ({"recordId": "003000000000001AAA", "tone": "sarcastic"}, False),
    ({"recordId": "short"}, False),
    ({"recordId": "003000000000001AAA", "extra": 1}, False),
    ({"brief": "no record"}, False),
    ({"recordId": "003000000000001AAA", "catalog": [{"name": "no sku"}]}, False),
])
def test_the_flow_action_schema_accepts_what_the_model_accepts(body: dict[str, Any],
                                                               accepted: bool) -> None:
    schema_ok = _validator(document(), "FlowAction").is_valid(body)
    try:
        FlowAction.model_validate(body)
        model_ok = True
    except ValueError:
        model_ok = False
    assert schema_ok == model_ok == accepted


def test_json_schema_is_brought_down_to_openapi_30() -> None:
    assert to_openapi_30({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "T",
                          "examples": ["a", "b"]}) == {"type": "string", "nullable": True,
                                                        "example": "a"}
    assert to_openapi_30({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}) == {
        "allOf": [{"$ref": "#/x"}], "nullable": True}
    assert to_openapi_30({"const": "done"}) == {"enum": ["done"]}

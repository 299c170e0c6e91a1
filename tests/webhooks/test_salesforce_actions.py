"""Salesforce Flow actions: a bearer key, the record's fields in, the outputs back in the same
call when the job is quick, else 202 and a poll URL; bad input is a 400 with the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.credentials.apikeys import ApiKeys
from tests.webhooks.conftest import with_salesforce
from webhooks.app import create_app
from webhooks.services import Services

RECORD = "003000000000001AAA"


def post(client: FlaskClient, key: str, body: Any, action: str = "email") -> Any:
    return client.post(f"/salesforce/actions/{action}", data=json.dumps(body),
                       content_type="application/json", headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def key(services: Services) -> str:
    return ApiKeys(services.store).create("salesforce", "acme")[1]


def test_flow_action_returns_the_email_for_the_record(client: FlaskClient, services: Services,
                                                      key: str) -> None:
    body = {"recordId": RECORD, "fields": {"FirstName": "Ann", "Email": "ann@example.com",
                                           "AccountName": "Acme"},
            "brief": "Thank her for the order", "tone": "friendly", "requestId": "r-1"}
    r = post(client, key, body)
    assert r.status_code == 200, r.json
    assert r.json["state"] == "done" and r.json["recordId"] == RECORD
    assert r.json["body"] == "Hi Ann, hello." and r.json["route"] == "local"
    assert post(client, key, body).json["job_id"] == r.json["job_id"]  # a retried callout: same job
    task = client.get(f"/v1/tasks/{r.json['job_id']}", headers={"Authorization": f"Bearer {key}"})
    assert task.json["result"]["subject"] == "s" and task.json["result"]["state"] == "done"
    job = services.jobs.get(r.json["job_id"])
    assert job is not None and job.tenant == "acme"
    assert job.payload["context"] == {"first_name": "Ann", "email": "ann@example.com", "company": "Acme"}
    assert job.payload["brief"] == "Thank her for the order Tone: friendly."


def test_a_slow_job_answers_202_with_the_poll_url(client: FlaskClient, services: Services,
                                                  key: str) -> None:
    services = with_salesforce(services, sync_budget=0.0)
    client = create_app(services).test_client()
    services.dispatcher = type("Later", (), {"dispatch": lambda self, ids, mark=True: None})()
    services.inbox.dispatcher = services.dispatcher
    r = post(client, key, {"recordId": RECORD, "fields": {"FirstName": "Ann"}, "brief": "b"})
    assert r.status_code == 202 and r.json["poll_url"] == f"/v1/tasks/{r.json['job_id']}"


@pytest.mark.parametrize(("body", "action", "status", "reason"), [
    ({"recordId": RECORD, "brief": "b"}, "poem", 404, "unknown action 'poem'"),
    ({"recordId": "x", "brief": "b"}, "email", 400, "recordId"),
    ({"recordId": RECORD}, "email", 400, "brief: required"),
    ({"recordId": RECORD, "brief": "b", "tier": "urgent"}, "email", 400, "tier"),
    ({"recordId": RECORD, "brief": "b", "tone": "angry"}, "email", 400, "tone"),
    ({"recordId": RECORD, "brief": "b", "fields": {"A": {"nested": 1}}}, "email", 400, "fields"),
    ({"recordId": RECORD, "brief": "b", "extra": 1}, "email", 400, "extra"),
])
def test_bad_flow_requests_are_400_with_the_field(client: FlaskClient, key: str, body: Any,
                                                  action: str, status: int, reason: str) -> None:
    r = post(client, key, body, action)
    assert r.status_code == status and reason in r.json["reason"], r.json


def test_without_a_key_it_is_401(client: FlaskClient) -> None:
    r = client.post("/salesforce/actions/email", json={"recordId": RECORD, "brief": "b"})
    assert r.status_code == 401 and "Bearer" in r.json["reason"]


def test_the_action_is_in_the_openapi_document_for_external_services(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    op = doc["paths"]["/salesforce/actions/{action}"]["post"]
    assert op["parameters"][0]["schema"]["enum"] == ["email", "recommend", "reply"]
    assert "recordId" in doc["components"]["schemas"]["FlowAction"]["required"]


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    _nested, max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JSONISH, st.fixed_dictionaries(
    {"recordId": st.one_of(st.just(RECORD), JSONISH)},
    optional={"fields": JSONISH, "brief": JSONISH, "catalog": JSONISH, "purchases": JSONISH,
              "tier": JSONISH, "requestId": JSONISH})))
@example(body={"recordId": RECORD, "brief": "nul \x00 inside", "fields": {"FirstName": "A\x00"},
               "requestId": "r\x00"})  # PostgreSQL text cannot hold NUL: a 400
@example(body={"recordId": RECORD, "brief": "nul \x00 inside", "fields": {"FirstName": "A\x00"}})
def test_fuzzed_flow_bodies_never_cause_a_5xx(client: FlaskClient, key: str, body: object) -> None:
    r = post(client, key, body)
    assert r.status_code in (200, 202, 400, 422), r.json


def test_a_contact_who_opted_out_gets_a_422_opted_out_and_no_copy(client: FlaskClient,
                                                                  key: str) -> None:
    body = {"recordId": RECORD, "fields": {"FirstName": "Ann", "HasOptedOutOfEmail": True},
            "brief": "Invite her to the sale", "requestId": "r-optout"}
    r = post(client, key, body)
    assert r.status_code == 422 and r.json["error"] == "opted_out"
    assert "opted out of marketing email" in r.json["reason"] and "body" not in r.json


def test_record_fields_arrive_in_the_one_contact_vocabulary(client: FlaskClient, services: Services,
                                                            key: str) -> None:
    body = {"recordId": RECORD, "brief": "b", "fields": {
        "FirstName": "Ann", "MiddleName": "Q", "MailingPostalCode": "94107", "HomePhone": "+1 415 555 0142",
        "MailingStreet": "1 Main St", "Favourite_Trail__c": "GR20"}}
    r = post(client, key, body)
    job = services.jobs.get(r.json["job_id"])
    assert job is not None and job.subject == "record:003000000000001"
    assert job.payload["context"] == {"first_name": "Ann", "middle_name": "Q", "postal_code": "94107",
                                      "home_phone": "+1 415 555 0142", "address": "1 Main St",
                                      "Favourite_Trail__c": "GR20"}

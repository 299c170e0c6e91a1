"""The Flow action on the contract: a record id is enough when the key's tenant is a connected org;
with ``writeBack`` Baton writes the record's fields and a Task itself; answer now or later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from core.credentials.apikeys import ApiKeys
from core.delivery.replies import DONE as REPLY_DONE
from tests.connectors.salesforce.conftest import Org, make_org
from tests.fakes.salesforce import record_id

BRIEF = "A short, friendly note that suggests a next step based on their recent purchases."


@pytest.fixture
def flow_org(tmp_path: Path, database_url: str | None) -> Iterator[Org]:
    """Jobs run as they are recorded (Huey immediate): a Flow's call is answered at once."""
    yield from make_org(tmp_path, database_url, immediate=True, sync_budget=5.0)


def key_for(org: Org, tenant: str | None = None) -> str:
    return ApiKeys(org.services.store).create("salesforce", tenant or org.fake.org_id)[1]


def call(org: Org, key: str, body: dict[str, Any], action: str = "email") -> TestResponse:
    return org.client.post(f"/salesforce/actions/{action}", data=json.dumps(body),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {key}"})


def test_a_record_id_and_write_back_are_enough(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    lead = org.lead(1, FirstName="Zoë")
    r = call(org, key_for(org), {"recordId": lead, "brief": BRIEF, "writeBack": True, "requestId": "flow-1"})
    assert r.status_code == 200, r.json
    assert r.json["state"] == "done" and r.json["written"] is True and r.json["recordId"] == lead
    assert "Zoë" in r.json["body"]
    record = org.fake.get("Lead", lead)
    assert record["Baton_Email_Body__c"] == r.json["body"]
    assert record["Baton_Receipt__c"] == r.json["receipt_id"]
    [task] = org.fake.tasks()
    assert task["WhoId"] == lead and task["Subject"].startswith("Baton email draft: ")
    again = call(org, key_for(org), {"recordId": lead, "brief": BRIEF, "writeBack": True,
                                     "requestId": "flow-1"})
    assert again.json["job_id"] == r.json["job_id"] and len(org.fake.tasks()) == 1


def test_a_reply_is_written_to_baton_reply(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    contact = org.fake.add("Contact", FirstName="Kenji", LastName="Sato", Email="k@example.jp")
    org.local.outputs.clear()
    org.local.outputs.extend([json.dumps({
        "body": "Hi {first_name},\n\nA new buckle is on its way today; it clips onto the Summit "
                "belt without tools, and the old one can go in the recycling."})] * 3)
    r = call(org, key_for(org), {"recordId": contact, "brief": "My hip belt buckle broke, can I "
                                 "get a new one?", "writeBack": True}, action="reply")
    assert r.status_code == 200, r.json
    assert org.fake.get("Contact", contact)["Baton_Reply__c"].startswith("Hi Kenji,")
    assert org.fake.tasks()[0]["Subject"] == "Baton reply draft: Hi Kenji,"


def test_without_write_back_nothing_is_written(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    lead = org.lead(1)
    r = call(org, key_for(org), {"recordId": lead, "brief": BRIEF})
    assert r.status_code == 200 and r.json["written"] is False
    assert "Baton_Email_Body__c" not in org.fake.get("Lead", lead) and org.fake.tasks() == []
    assert any("FROM Lead" in c.query for c in org.fake.calls)  # fetched: the Flow sent no fields


def test_a_missing_record_is_a_422_the_flow_can_route(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    gone = org.lead(1)
    org.fake.delete("Lead", gone)
    r = call(org, key_for(org), {"recordId": gone, "brief": "b", "writeBack": True})
    assert r.status_code == 422 and r.json["error"] == "record_not_found", r.json


def test_an_opted_out_contact_is_a_422_and_nothing_is_written(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com",
                           HasOptedOutOfEmail=True)
    r = call(org, key_for(org), {"recordId": contact, "brief": "Invite her to the sale",
                                 "writeBack": True})
    assert r.status_code == 422 and r.json["error"] == "opted_out"
    assert org.fake.tasks() == [] and "Baton_Email_Body__c" not in org.fake.get("Contact", contact)


@pytest.mark.parametrize(("tenant", "body", "reason"), [
    ("acme", {"recordId": record_id("00Q5g00000AbCdE"), "brief": "b"}, "not a connected org"),
    ("acme", {"recordId": record_id("00Q5g00000AbCdE"), "brief": "b",
              "fields": {"FirstName": "A"}, "writeBack": True}, "writeBack"),
    (None, {"recordId": record_id("0065g00000AbCdE"), "brief": "b"}, "Baton reads and writes"),
    (None, {"recordId": "00Q5g00000AbCdEAAZ", "brief": "b"}, "not a Salesforce record id"),
])
def test_what_baton_cannot_read_or_write_is_a_400_at_once(flow_org: Org, tenant: str | None,
                                                          body: dict[str, Any], reason: str) -> None:
    org = flow_org
    org.connect()
    r = call(org, key_for(org, tenant), body)
    assert r.status_code == 400 and reason in r.json["reason"], r.json
    assert org.jobs() == [] and org.fake.calls[1:] == []  # only the connect's userinfo


def test_a_slow_answer_is_polled_and_its_reply_delivered(tmp_path: Path,
                                                        database_url: str | None) -> None:
    for org in make_org(tmp_path, database_url, sync_budget=0.0):
        org.connect()
        key = key_for(org)
        lead = org.lead(1)
        r = call(org, key, {"recordId": lead, "brief": BRIEF, "writeBack": True})
        assert r.status_code == 202 and r.json["poll_url"] == f"/v1/tasks/{r.json['job_id']}"
        org.drain()
        polled = org.client.get(r.json["poll_url"], headers={"Authorization": f"Bearer {key}"})
        assert polled.json["state"] == "done" and polled.json["result"]["written"] is True
        assert polled.json["result"]["body"] == org.fake.get("Lead", lead)["Baton_Email_Body__c"]
        [reply] = _replies(org)
        assert reply.state == REPLY_DONE  # nothing left READY for a sender to find
        other = key_for(org, "someone-else")
        assert org.client.get(r.json["poll_url"],
                              headers={"Authorization": f"Bearer {other}"}).status_code == 404


def _replies(org: Org) -> list[Any]:
    import sqlalchemy as sa

    from core.store import ReplyRow
    with org.services.store.session() as s:
        return list(s.scalars(sa.select(ReplyRow)))


def test_a_recommendation_takes_its_catalog_from_the_standard_price_book(flow_org: Org) -> None:
    org = flow_org
    org.connect()
    f = org.fake
    book = f.add("Pricebook2", Name="Standard Price Book", IsStandard=True)
    for name, code in (("Rain Cover", "RC-1"), ("Storm Tent", "ST-2")):
        product = f.add("Product2", Name=name, ProductCode=code, Description=f"The {name}")
        f.add("PricebookEntry", Product2Id=product, Pricebook2Id=book, UnitPrice=10, IsActive=True)
    lead = org.lead(1)
    org.local.outputs.clear()
    org.local.outputs.extend([json.dumps({
        "picks": [{"product": "Rain Cover", "reason": "Keeps a pack dry in any weather."}],
        "message": "Hi {first_name}, a rain cover for your next walk."})] * 3)
    r = call(org, key_for(org), {"recordId": lead, "writeBack": True}, action="recommend")
    assert r.status_code == 200, r.json
    assert "Rain Cover" in r.json["recommendations"]
    assert "Rain Cover" in f.get("Lead", lead)["Baton_Recommendations__c"]
    schema = org.local.schemas[-1]["properties"]["picks"]["items"]["properties"]["product"]
    assert set(schema["enum"]) == {"Rain Cover", "Storm Tent"}  # the price book's, no other

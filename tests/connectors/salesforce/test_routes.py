"""The outbound-message route: what Salesforce sends is acked once it is safe; what it must not
send is a SOAP fault with the reason, and nothing is stored."""

from __future__ import annotations

import time

import pytest

from connectors.salesforce.client import USAGE_STALE
from tests.connectors.salesforce.conftest import Org, notifications


def test_an_org_that_is_not_connected_is_asked_to_retry(org: Org) -> None:
    lead = org.lead(1)
    r = org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    assert r.status_code == 503 and b"baton salesforce connect" in r.data
    assert b"<soapenv:Fault>" in r.data and org.jobs() == []
    org.connect()  # within Salesforce's 24 hours of retries: the message is heard
    assert org.outbound([("04l5g0000001", "Lead", {"Id": lead})]).status_code == 200
    assert len(org.jobs()) == 1


@pytest.mark.parametrize(("items", "status", "reason"), [
    ([("04l5g0000001", "Opportunity", {"Id": "0065g00000AbCdEAAZ"})], 400,
     b"not set up for Opportunity records"),
    ([("04l5g0000001", "Account", {"Id": "0015g00000AbCdEAAZ"})], 400,
     b"not set up for Account records"),  # Person Accounts are off unless configured
    ([("04l5g0000001", "Lead", {"Email": "a@example.com"})], 400, b"has no record Id"),
    ([("04l5g0000001", "Lead", {"Id": "00Q' OR Id != '"})], 400, b"not a Salesforce record id"),
    ([("04l5g0000001", "Lead", {"Id": "00Q5g00000AbCdEAAZ"})], 400,
     b"not a Salesforce record id"),  # a wrong checksum: Salesforce would refuse the query
])
def test_records_baton_cannot_write_are_refused(org: Org, items: list, status: int,  # type: ignore[type-arg]
                                                reason: bytes) -> None:
    org.connect()
    r = org.outbound(items)
    assert r.status_code == status and reason in r.data and b"<faultstring>" in r.data
    assert org.jobs() == []


def test_another_org_is_refused(org: Org) -> None:
    org.connect()
    r = org.outbound([("04l5g0000001", "Lead", {"Id": org.lead(1)})], org="00D5g000009ZZZZEAA")
    assert r.status_code == 401 and b"not allowlisted" in r.data and org.jobs() == []


def test_a_hundred_namespaced_notifications_with_non_ascii_fields(org: Org) -> None:
    org.connect()
    items = [(f"04l5g{n:013d}", "Lead", {"Id": org.lead(n), "FirstName": "Çağrı & 美咲 <x>"})
             for n in range(100)]
    body = notifications(org.fake.org_id, items)
    assert body.count(b"<Notification>") == 100
    r = org.client.post("/salesforce/outbound", data=body, content_type="text/xml; charset=utf-8")
    assert r.status_code == 200
    jobs = org.jobs()
    assert len(jobs) == 100 and jobs[0].payload["fields"]["FirstName"] == "Çağrı & 美咲 <x>"
    assert jobs[0].payload["action_id"] == "04k5g000000XyZaAAK"


def test_entity_tricks_are_refused_unexpanded(org: Org) -> None:
    org.connect()
    body = notifications(org.fake.org_id, [("04l5g0000001", "Lead", {"Id": org.lead(1)})])
    evil = body.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>', 1)
    r = org.client.post("/salesforce/outbound", data=evil, content_type="text/xml")
    assert r.status_code == 400 and b"forbidden XML construct" in r.data
    assert b"root:" not in r.data and org.jobs() == []


def test_a_path_token_route_exists_only_when_a_token_is_set(org: Org) -> None:
    org.connect()
    r = org.outbound([("04l5g0000001", "Lead", {"Id": org.lead(1)})],
                     path="/salesforce/outbound/guess")
    assert r.status_code == 404 and b"<soapenv:Fault>" in r.data


def test_metrics_show_the_orgs_api_usage(org: Org) -> None:
    org.connect()
    lead = org.lead(1)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    text = org.client.get("/metrics").data.decode()
    account = org.fake.org_id[:15]
    used = [line for line in text.splitlines()
            if line.startswith("baton_platform_api_calls_used{") and account in line]
    assert used and float(used[0].rsplit(" ", 1)[1]) == org.fake.api_used
    assert f'baton_platform_api_calls_limit{{account="{account}",platform="salesforce"}} 15000.0' \
        in text


def test_near_the_daily_allocation_baton_stops_calling(org: Org) -> None:
    org.connect()
    org.fake.api_used = 14300  # 95.3% of 15,000 used by other integrations today
    lead = org.lead(1)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == "queued" and "BATON_SALESFORCE_STOP_SHARE" in job.error
    calls = len(org.fake.calls)
    org.retry_now()  # still over: no call at all
    assert len(org.fake.calls) == calls and org.jobs()[0].state == "queued"
    usage = org.connector.auth.usage
    usage.clock = lambda: time.monotonic() + USAGE_STALE + 1  # the reading grew old
    org.fake.api_used = 9000  # the rolling 24 hours moved on
    org.retry_now()
    assert org.jobs()[0].state == "done" and len(org.fake.tasks()) == 1

"""Salesforce outbound messages and Slack's request URL: authenticity first, then the inbox."""

import dataclasses
import json
import logging
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.signatures import slack_v0
from core.store import JobRow
from tests.connectors.salesforce.conftest import notifications
from tests.connectors.test_signatures import SLACK_BODY
from tests.fakes.salesforce import record_id
from tests.webhooks.conftest import ORG, SLACK_SECRET, with_salesforce
from webhooks.app import create_app
from webhooks.services import Services


def outbound(org: str = ORG, ids: tuple[str, ...] = ("04l000000000001AAA", "04l000000000002AAA")) -> bytes:
    """An outbound message of Leads, as Salesforce sends it."""
    return notifications(org, [(i, "Lead", {"Id": record_id(f"00Q000000000{n:03d}"),
                                            "Email": f"lead{n}@example.com", "FirstName": "Ann"})
                               for n, i in enumerate(ids)])


def jobs(services: Services, kind: str) -> list[JobRow]:
    with services.store.session() as s:
        return list(s.scalars(sa.select(JobRow).where(JobRow.kind == kind)))


def soap(client: FlaskClient, body: bytes, path: str = "/salesforce/outbound",
         content_type: str = "text/xml; charset=utf-8") -> object:
    return client.post(path, data=body, content_type=content_type)


def test_outbound_message_is_acked_and_deduped(client: FlaskClient, services: Services) -> None:
    r = soap(client, outbound())
    assert r.status_code == 200 and b"<Ack>true</Ack>" in r.data
    assert r.mimetype == "text/xml"
    found = jobs(services, "salesforce.notification")
    assert len(found) == 2 and found[0].tenant == f"salesforce:{ORG[:15]}"
    assert {j.payload["fields"]["Email"] for j in found} == {"lead0@example.com", "lead1@example.com"}
    assert found[0].payload["sobject_type"] == "Lead"
    assert soap(client, outbound()).status_code == 200  # Salesforce redelivers
    assert len(jobs(services, "salesforce.notification")) == 2


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), [
    (outbound(org="00D0000000000XXEAA"), "text/xml", 401, "not allowlisted"),
    (b"<not xml", "text/xml", 400, "malformed XML"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     b"<lolz>&lol2;</lolz>", "text/xml", 400, "forbidden XML construct"),
    (b"<a/>", "text/xml", 400, "not an outbound message"),
    (outbound(ids=tuple(f"04l{i:015d}" for i in range(101))), "text/xml", 400, "1 to 100"),
    (outbound(), "application/json", 415, "expected text/xml"),
])
def test_outbound_mistakes_are_soap_faults(client: FlaskClient, services: Services, body: bytes,
                                           content_type: str, status: int, reason: str) -> None:
    r = soap(client, body, content_type=content_type)
    assert r.status_code == status
    assert b"<faultstring>" in r.data and reason.encode() in r.data
    assert jobs(services, "salesforce.notification") == []


def test_path_token_and_source_networks(services: Services) -> None:
    locked = create_app(with_salesforce(services, path_token=SecretStr("t0ken"),
                                        source_cidrs="10.0.0.0/8")).test_client()
    assert soap(locked, outbound()).status_code == 401
    r = soap(locked, outbound(), path="/salesforce/outbound/t0ken")
    assert r.status_code == 401 and b"source address not allowed" in r.data
    allowed = create_app(with_salesforce(services, path_token=SecretStr("t0ken"),
                                         source_cidrs="127.0.0.0/8, 10.0.0.0/8")).test_client()
    assert soap(allowed, outbound(), path="/salesforce/outbound/wrong").status_code == 401
    assert soap(allowed, outbound(), path="/salesforce/outbound/t0ken").status_code == 200


def slack_post(client: FlaskClient, body: bytes, ts: str, content_type: str,
               secret: str = SLACK_SECRET) -> object:
    return client.post("/slack/events", data=body, content_type=content_type, headers={
        "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_v0(secret, ts, body)})


@pytest.fixture
def at_vector_time(services: Services) -> FlaskClient:
    return create_app(dataclasses.replace(services, clock=lambda: 1531420618.0)).test_client()


def test_official_slash_command_is_verified_and_answered(at_vector_time: FlaskClient,
                                                         services: Services) -> None:
    """Slack's own signing test vector passes Baton's verifier; its workspace has no Baton
    installed, so the user reads why (ephemeral), and nothing is stored."""
    form = "application/x-www-form-urlencoded"
    for _ in range(2):
        r = slack_post(at_vector_time, SLACK_BODY, "1531420618", form)
        assert r.status_code == 200 and r.json["response_type"] == "ephemeral"  # type: ignore[attr-defined]
        assert "not installed" in r.json["text"]  # type: ignore[attr-defined]
    assert jobs(services, "slack.command") == []


def test_url_verification_is_answered_and_events_of_other_workspaces_acked(
        client: FlaskClient, services: Services) -> None:
    ts = str(int(services.clock()))
    challenge = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    r = slack_post(client, challenge.encode(), ts, "application/json")
    assert r.status_code == 200 and r.json == {"challenge": "c-123"}  # type: ignore[attr-defined]
    event = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": "Ev1",
                        "event": {"type": "app_mention", "text": "<@U1> hi", "ts": "1.2",
                                  "channel": "C1"}}).encode()
    assert slack_post(client, event, ts, "application/json").status_code == 200  # type: ignore[attr-defined]
    assert jobs(services, "slack.mention") == []  # not installed there


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), [
    (b"{", "application/json", 400, "malformed JSON"),
    (b'{"type": "block_actions"}', "application/json", 400, "unsupported event envelope"),
    (b"team_id=T1", "application/x-www-form-urlencoded", 400, "needs command, team_id"),
    (b"payload=%7Bnot", "application/x-www-form-urlencoded", 400, "malformed JSON"),
    (b"x", "text/plain", 415, "expected JSON or a form"),
])
def test_slack_mistakes_are_4xx(client: FlaskClient, services: Services, body: bytes,
                                content_type: str, status: int, reason: str) -> None:
    r = slack_post(client, body, str(int(services.clock())), content_type)
    assert r.status_code == status and reason in r.json["reason"]


def test_bad_or_stale_slack_signatures_are_401(client: FlaskClient, services: Services) -> None:
    now = int(services.clock())
    body = urlencode({"command": "/x", "team_id": "T1", "trigger_id": "t1"}).encode()
    form = "application/x-www-form-urlencoded"
    assert slack_post(client, body, str(now), form, secret="wrong").status_code == 401
    assert slack_post(client, body, str(now - 301), form).status_code == 401
    r = client.post("/slack/events", data=body, content_type=form)
    assert r.status_code == 401 and "missing X-Slack-Signature" in r.json["reason"]
    assert jobs(services, "slack.command") == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=400),
    st.builds(lambda a, b: outbound()[:a] + b + outbound()[a:], st.integers(0, 900),
              st.binary(max_size=20)),
))
@example(body=outbound()[:31] + b"-" + outbound()[31:])  # encoding="U-TF-8": expat's LookupError
def test_fuzzed_soap_bodies_never_cause_a_5xx(client: FlaskClient, body: bytes) -> None:
    r = soap(client, body)
    assert r.status_code in (200, 400, 401, 415), r.data


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300),
                      st.dictionaries(st.sampled_from(["command", "team_id", "trigger_id",
                                                       "payload", "ssl_check", "text"]),
                                      st.text(max_size=30), max_size=5)
                      .map(lambda d: urlencode(d).encode())),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json"]))
def test_fuzzed_signed_slack_bodies_never_cause_a_5xx(client: FlaskClient, services: Services,
                                                      body: bytes, content_type: str) -> None:
    r = slack_post(client, body, str(int(services.clock())), content_type)
    assert r.status_code < 500, r.data


def test_logs_carry_no_bodies_or_secrets(client: FlaskClient, services: Services,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert soap(client, outbound()).status_code == 200
    ts = str(int(services.clock()))
    body = urlencode({"command": "/x", "team_id": "T1", "trigger_id": "t9",
                      "text": "call ann@example.com"}).encode()
    assert slack_post(client, body, ts, "application/x-www-form-urlencoded").status_code == 200
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "request" in text
    for secret in ("lead0@example.com", "ann@example.com", SLACK_SECRET, "hs-client-secret"):
        assert secret not in text

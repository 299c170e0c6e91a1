"""Client garbage is a 4xx with a reason, never a 500 (step 4b): each of these was a 500, or a
job retried until dead, before."""

from __future__ import annotations

import dataclasses
import json
import time

from flask.testing import FlaskClient

from connectors.signatures import hubspot_v1, hubspot_v3, slack_v0
from core.credentials.apikeys import ApiKeys
from core.jobs.lifecycle import FAILED
from tests.connectors.hubspot.conftest import hubspot_of
from tests.webhooks.conftest import SECRET, SLACK_SECRET
from webhooks.app import create_app
from webhooks.services import Services

HUGE = "9" * 400


def test_signature_timestamps_of_hundreds_of_digits_are_401(client: FlaskClient) -> None:
    body = b"[]"
    url = "http://localhost/hubspot/webhooks"
    r = client.post("/hubspot/webhooks", data=body, content_type="application/json", headers={
        "X-HubSpot-Signature-v3": hubspot_v3(SECRET, "POST", url, body, HUGE),
        "X-HubSpot-Request-Timestamp": HUGE})
    assert r.status_code == 401 and "Timestamp" in r.json["reason"]
    r = client.post("/slack/events", data=b"{}", content_type="application/json", headers={
        "X-Slack-Request-Timestamp": HUGE, "X-Slack-Signature": slack_v0(SLACK_SECRET, HUGE, b"{}")})
    assert r.status_code == 401 and "Timestamp" in r.json["reason"]


def test_an_oauth_state_with_non_ascii_is_400(client: FlaskClient, services: Services) -> None:
    auth = hubspot_of(services).auth
    auth.settings = auth.settings.model_copy(update={"client_id": "c",
                                                     "redirect_url": "https://b.example/cb"})
    r = client.get("/hubspot/oauth/callback?code=x&state=%C3%A9t%C3%A9.1.abc")
    assert r.status_code == 400 and "stale state" in r.json["reason"]


def test_json_with_a_5000_digit_integer_is_400(client: FlaskClient, services: Services) -> None:
    key = ApiKeys(services.store).create("t", "acme")[1]
    body = '{"kind": "email", "context": {"n": ' + "1" * 5000 + "}}"
    r = client.post("/v1/tasks", data=body, content_type="application/json",
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400 and "digits" in r.json["reason"]


def test_a_slack_interactivity_payload_nested_100000_deep_is_400(services: Services) -> None:
    roomy = services.settings.model_copy(update={"max_body_bytes": 1 << 20})  # the default
    client = create_app(dataclasses.replace(services, settings=roomy)).test_client()
    payload = "[" * 100_000 + "]" * 100_000
    body = ("payload=" + payload).encode()
    ts = str(int(time.time()))
    r = client.post("/slack/events", data=body, content_type="application/x-www-form-urlencoded",
                    headers={"X-Slack-Request-Timestamp": ts,
                             "X-Slack-Signature": slack_v0(SLACK_SECRET, ts, body)})
    assert r.status_code == 400 and "nested too deeply" in r.json["reason"]


def test_a_context_of_the_wrong_shape_fails_its_job_at_once(client: FlaskClient,
                                                              services: Services) -> None:
    key = ApiKeys(services.store).create("t", "acme")[1]
    body = {"kind": "recommendation", "context": {"first_name": "Ann", "purchases": 5,
                                                  "catalog": [{"sku": "T", "name": "Tent"}]}}
    r = client.post("/v1/tasks", data=json.dumps(body), content_type="application/json",
                    headers={"Authorization": f"Bearer {key}"})
    job = services.jobs.get(r.json["id"])
    assert job is not None and job.state == FAILED and job.attempts == 1  # not retried until dead
    assert job.error is not None and "context.purchases: expected a list or text, got int" in job.error


def test_a_413_on_the_soap_route_is_a_soap_fault(client: FlaskClient) -> None:
    r = client.post("/salesforce/outbound", data=b"<x>" + b" " * (70 * 1024) + b"</x>",
                    content_type="text/xml")
    assert r.status_code == 413 and r.mimetype == "text/xml"
    assert b"<soapenv:Fault>" in r.data and b"body larger than" in r.data


def test_an_over_long_id_is_400_and_fails_no_other_delivery(client: FlaskClient,
                                                            services: Services) -> None:
    events = [{"eventId": 1, "portalId": 7, "objectId": 5, "subscriptionId": "s" * 300,
               "subscriptionType": "contact.creation"}]
    body = json.dumps(events).encode()
    r = client.post("/hubspot/webhooks", data=body, content_type="application/json",
                    headers={"X-HubSpot-Signature": hubspot_v1(SECRET, body)})
    assert r.status_code == 400 and "longer than 255 characters" in r.json["reason"]
    good = json.dumps([{**events[0], "subscriptionId": 5}]).encode()
    r = client.post("/hubspot/webhooks", data=good, content_type="application/json",
                    headers={"X-HubSpot-Signature": hubspot_v1(SECRET, good)})
    assert r.status_code == 200 and r.json == {"accepted": 1, "duplicates": 0}


def test_nan_and_infinity_are_not_json(client: FlaskClient, services: Services) -> None:
    key = ApiKeys(services.store).create("t", "acme")[1]
    for constant in ("NaN", "-Infinity"):
        r = client.post("/v1/tasks", data='{"kind": "email", "context": {"n": ' + constant + "}}",
                        content_type="application/json", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 400 and "not a JSON value" in r.json["reason"]


def test_nul_in_any_identifier_is_400(client: FlaskClient, services: Services) -> None:
    key = ApiKeys(services.store).create("t", "acme")[1]
    body = {"kind": "email", "brief": "Say hello", "context": {"record_id": "a\u0000b", "first_name": "Ann"}}
    r = client.post("/v1/tasks", data=json.dumps(body), content_type="application/json",
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400 and "NUL" in r.json["reason"]


def test_a_salesforce_proxy_that_appends_ports_or_mapped_addresses(services: Services) -> None:
    from tests.webhooks.conftest import with_salesforce
    from tests.webhooks.test_platform_routes import outbound

    settings = services.settings.model_copy(update={"trusted_proxy": 1})
    client = create_app(dataclasses.replace(with_salesforce(services, source_cidrs="10.0.0.0/8"),
                                            settings=settings)).test_client()
    for seen in ("10.0.0.5:1234", "::ffff:10.0.0.5", "[::ffff:10.0.0.5]:443"):
        r = client.post("/salesforce/outbound", data=outbound(), content_type="text/xml",
                        headers={"X-Forwarded-For": seen})
        assert r.status_code == 200, (seen, r.data)


def test_a_source_network_that_is_not_one_is_a_setting_error() -> None:
    import pytest

    from connectors.salesforce.settings import load_salesforce_settings
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="BATON_SALESFORCE_SOURCE_CIDRS"):
        load_salesforce_settings(source_cidrs="10.0.0.0/33")

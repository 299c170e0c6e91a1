"""BATON_TRUSTED_PROXY: forwarded headers are read from the right, as many hops in as there are
proxies of ours; what stands further left, the client wrote, and it never decides."""

from __future__ import annotations

import dataclasses
import json

import pytest
from flask.testing import FlaskClient

from connectors.signatures import hubspot_v2
from core.settings import load_settings
from tests.webhooks.conftest import SECRET, with_salesforce
from tests.webhooks.test_platform_routes import outbound
from webhooks.app import create_app
from webhooks.services import Services


def behind(services: Services, proxies: int, cidrs: str = "") -> FlaskClient:
    settings = services.settings.model_copy(update={"trusted_proxy": proxies})
    return create_app(dataclasses.replace(with_salesforce(services, source_cidrs=cidrs),
                                          settings=settings)).test_client()


def soap_from(client: FlaskClient, forwarded_for: str) -> int:
    return client.post("/salesforce/outbound", data=outbound(), content_type="text/xml",
                       headers={"X-Forwarded-For": forwarded_for}).status_code


def test_the_client_address_is_the_hop_our_proxy_added(services: Services) -> None:
    one = behind(services, 1, "10.0.0.0/8")
    # the client writes an allowed address; our proxy appends the one it really saw
    assert soap_from(one, "10.0.0.5, 203.0.113.9") == 401
    assert soap_from(one, "203.0.113.9, 10.0.0.5") == 200
    two = behind(services, 2, "10.0.0.0/8")  # load balancer, then nginx: client, lb
    assert soap_from(two, "10.9.9.9, 203.0.113.9, 10.0.0.7") == 401
    assert soap_from(two, "203.0.113.9, 10.0.0.5, 10.0.0.7") == 200
    assert soap_from(two, "10.0.0.5") == 401  # fewer hops than proxies: the peer address decides


def test_without_trusted_proxies_forwarded_headers_are_ignored(services: Services) -> None:
    none = behind(services, 0, "10.0.0.0/8")
    assert soap_from(none, "10.0.0.5") == 401  # the peer (127.0.0.1 in tests) decides
    assert behind(services, 0, "127.0.0.0/8").post(
        "/salesforce/outbound", data=outbound(), content_type="text/xml",
        headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200


def test_the_signed_url_uses_the_host_our_proxy_forwarded(services: Services) -> None:
    client = behind(services, 1)
    body = json.dumps([{"eventId": 1, "portalId": 7, "objectId": 5, "subscriptionId": 1,
                        "subscriptionType": "contact.creation"}]).encode()
    real = hubspot_v2(SECRET, "POST", "https://baton.example/hubspot/webhooks", body)
    forged = hubspot_v2(SECRET, "POST", "https://evil.example/hubspot/webhooks", body)

    def post(signature: str, host: str) -> int:
        return client.post("/hubspot/webhooks", data=body, content_type="application/json",
                           headers={"X-HubSpot-Signature": signature,
                                    "X-HubSpot-Signature-Version": "v2",
                                    "X-Forwarded-Proto": "https",
                                    "X-Forwarded-Host": host}).status_code

    assert post(real, "evil.example, baton.example") == 200
    assert post(forged, "evil.example, baton.example") == 401


@pytest.mark.parametrize(("value", "count"), [("true", 1), ("false", 0), ("2", 2), ("0", 0)])
def test_the_setting_takes_a_count_or_the_old_boolean(monkeypatch: pytest.MonkeyPatch, value: str,
                                                      count: int) -> None:
    monkeypatch.setenv("BATON_TRUSTED_PROXY", value)
    assert load_settings().trusted_proxy == count

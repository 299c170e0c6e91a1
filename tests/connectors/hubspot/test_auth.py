"""OAuth portals: install, code exchange, one refresh for many jobs, tokens encrypted at rest,
one portal's event never touching another's data."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from core.credentials.tokens import Credentials
from core.store import TokenRow
from tests.connectors.hubspot.conftest import PORTAL, Hub, seed


def connect(hub: Hub, portal: int) -> None:
    """A portal admin installs the app: HubSpot redirects back with a code."""
    auth = hub.connector.auth
    r = hub.client.get("/hubspot/install")
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["client_id"] == ["client-1"] and "crm.objects.contacts.write" in query["scope"][0]
    code = hub.fake.authorization_code(portal)
    r = hub.client.get("/hubspot/oauth/callback", query_string={"code": code, "state": query["state"][0]})
    assert r.status_code == 200 and f"portal {portal} is connected" in r.text
    assert auth.installed(portal)


def expire_tokens(hub: Hub, portal: int) -> None:
    vault = hub.connector.auth.vault
    creds = vault.get("hubspot", str(portal))
    assert creds is not None
    hub.fake.expire(creds.access_token)
    vault.save("hubspot", str(portal), Credentials(creds.access_token, creds.refresh_token,
                                                   datetime.now(UTC) - timedelta(minutes=1), creds.scopes))


def test_install_flow_connects_a_portal_and_refuses_a_forged_state(hub: Hub) -> None:
    connect(hub, 61)
    props = hub.fake.portal(61).properties  # the callback created what Baton writes
    assert {"baton_email_subject", "baton_email_body", "baton_generate"} <= set(props)
    code = hub.fake.authorization_code(62)
    r = hub.client.get("/hubspot/oauth/callback", query_string={"code": code, "state": "x.1.forged"})
    assert r.status_code == 400 and "stale state" in r.json["reason"]
    assert not hub.connector.auth.installed(62)


def test_tokens_are_encrypted_at_rest(hub: Hub, tmp_path: Path) -> None:
    connect(hub, 61)
    creds = hub.connector.auth.vault.get("hubspot", "61")
    assert creds is not None and creds.access_token.startswith("at-")
    with hub.services.store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.select(TokenRow.__table__)) for v in row)
    assert creds.access_token not in dump and creds.refresh_token not in dump
    assert "61" in dump  # the row is there, only its secrets are unreadable


def test_twenty_jobs_on_an_expired_token_make_one_refresh(hub: Hub) -> None:
    connect(hub, 61)
    seed(hub.fake, portal=61)
    expire_tokens(hub, 61)
    auth = hub.connector.auth
    results: list[object] = []
    barrier = threading.Barrier(20)

    def job() -> None:
        client = auth.client(61)
        barrier.wait()
        results.append(client.contact("101", ["firstname"])[0]["firstname"])

    threads = [threading.Thread(target=job) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["Maya"] * 20
    assert hub.fake.refreshes == 1


def test_a_token_the_platform_rejects_is_refreshed_once_and_the_call_repeated(hub: Hub) -> None:
    connect(hub, 61)
    seed(hub.fake, portal=61)
    creds = hub.connector.auth.vault.get("hubspot", "61")
    assert creds is not None
    hub.fake.expire(creds.access_token)  # revoked early, though our clock says it is valid
    props, _ = hub.connector.auth.client(61).contact("101", ["firstname"])
    assert props == {"firstname": "Maya"} and hub.fake.refreshes == 1


def test_each_portal_reads_and_writes_only_its_own_records(hub: Hub) -> None:
    connect(hub, 61)
    connect(hub, 62)
    seed(hub.fake, portal=61, name="Sixtyone")
    seed(hub.fake, portal=62, name="Sixtytwo")  # the same contact id in another portal
    for portal in (61, 62):
        r = hub.webhook([{"eventId": portal, "subscriptionId": 1, "portalId": portal,
                          "objectId": 101, "subscriptionType": "contact.creation"}])
        assert r.status_code == 200
    for portal, name in ((61, "Sixtyone"), (62, "Sixtytwo")):
        contact = hub.fake.portal(portal).objects["contacts"]["101"]
        assert contact["baton_email_body"].startswith(f"Hi {name},")
        assert len(hub.fake.notes_of(portal, "101")) == 1
    assert "baton_email_body" not in hub.fake.portal(PORTAL).objects["contacts"]["101"]
    by_portal = {r.portal for r in hub.fake.requests if r.path.startswith("/crm/")}
    assert by_portal == {61, 62}  # every CRM call carried the token of the portal it was for


def test_every_hubspot_call_has_a_timeout(hub: Hub) -> None:
    """A hung HubSpot ends in a retryable error after the timeout, not a worker held forever."""
    from connectors.errors import PlatformUnavailable
    from connectors.hubspot.client import HubSpotClient

    auth = hub.connector.auth
    client = HubSpotClient(PORTAL, auth.tokens(PORTAL), auth.limiters.get(PORTAL),
                           base_url=hub.fake.url, max_attempts=2, max_wait=0.01, timeout=0.2)
    release = hub.fake.stall(2, path=r"/crm/v3/objects/contacts/\d+")
    try:
        with pytest.raises(PlatformUnavailable, match="connection failed"):
            client.contact("101", ["firstname"])
    finally:
        release.set()
    assert client.contact("101", ["firstname"])[0]["firstname"] == "Maya"  # and works after


def test_a_redirect_url_that_is_not_the_apps_is_refused_at_the_code_exchange(hub: Hub) -> None:
    """HubSpot refuses a code exchange whose redirect_uri differs from the one in the install."""
    hub.fake.redirect_uri = "https://elsewhere.example/cb"
    auth = hub.connector.auth
    r = hub.client.get("/hubspot/install")
    state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    code = hub.fake.authorization_code(63)
    r = hub.client.get("/hubspot/oauth/callback", query_string={"code": code, "state": state})
    assert r.status_code == 400 and not auth.installed(63)

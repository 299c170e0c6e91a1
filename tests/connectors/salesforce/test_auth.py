"""Logging in per org with simple-salesforce: JWT bearer and client credentials, sessions kept
encrypted, a refused session replaced once however many jobs hit it at once."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import sqlalchemy as sa

from connectors.errors import NotInstalled, PlatformRejected
from connectors.salesforce.auth import OrgLogin
from connectors.salesforce.settings import SalesforceSettings
from core.errors import InputError
from core.store import TokenRow
from tests.connectors.salesforce.conftest import APP, Org, make_org
from tests.fakes.salesforce import new_app


def test_jwt_bearer_learns_the_org_and_the_integration_user(org: Org) -> None:
    stored = org.connect("jwt")
    assert stored.user_id == org.fake.integration_user
    assert stored.instance_url == org.fake.instance
    assert stored.private_key == "" and stored.consumer_secret == ""  # what may be shown
    assert org.fake.logins == [org.fake.integration_user]
    assert org.connector.auth.installed(org.fake.org_id[:15])
    assert org.connector.auth.installed(org.fake.org_id)  # 18 characters: the same org


def test_client_credentials_log_in_at_my_domain(org: Org) -> None:
    stored = org.connect("client_credentials")
    assert stored.user_id == org.fake.integration_user and stored.method == "client_credentials"
    rows = org.connector.auth.client(org.fake.org_id).query("SELECT Id FROM User")
    assert len(rows) == 2


@pytest.mark.parametrize(("login", "reason"), [
    (OrgLogin("jwt", "key"), "username"),
    (OrgLogin("client_credentials", "key", domain="login", consumer_secret="s"), "My Domain"),
    (OrgLogin("client_credentials", "key", domain="x.my"), "consumer secret"),
    (OrgLogin("password", "key"), "unknown login method"),  # type: ignore[arg-type]
    (OrgLogin("jwt", "", username="u", private_key="-----BEGIN"), "consumer key"),
    (OrgLogin("jwt", "k", username="u", private_key="-----BEGIN", domain="evil.com/x?"),
     "login \\(production\\) or test"),
    (OrgLogin("jwt", "k", username="u", private_key="-----BEGIN", domain="yourco.my"),
     "login \\(production\\) or test"),  # a My Domain audience: invalid_grant at Salesforce
    (OrgLogin("client_credentials", "k", domain="evil.com/x?.my", consumer_secret="s"),
     "not a Salesforce login domain"),
])
def test_incomplete_logins_are_refused_before_any_call(org: Org, login: OrgLogin,
                                                       reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        org.connector.auth.connect(login)
    assert org.fake.logins == [] and org.fake.calls == []


def test_a_wrong_key_or_user_is_salesforces_reason_not_a_stack_trace(org: Org) -> None:
    other = new_app()
    with pytest.raises(PlatformRejected, match="invalid_grant"):
        org.connector.auth.connect(OrgLogin("jwt", APP.consumer_key, username="baton@integration.example",
                                            private_key=other.private_pem))
    with pytest.raises(PlatformRejected, match="invalid_grant"):
        org.connector.auth.connect(OrgLogin("jwt", APP.consumer_key, username="nobody@example.com",
                                            private_key=APP.private_pem))
    assert not org.connector.auth.installed(org.fake.org_id)


def test_an_org_that_is_not_connected_says_how_to_connect(org: Org) -> None:
    with pytest.raises(NotInstalled, match="baton salesforce connect"):
        org.connector.auth.client(org.fake.org_id)


def test_the_session_and_the_key_are_encrypted_at_rest(org: Org) -> None:
    org.connect("jwt")
    with org.services.store.session() as s:
        row = s.scalars(sa.select(TokenRow).where(TokenRow.platform == "salesforce")).one()
    raw = f"{row.access_token} {row.refresh_token}"
    assert row.account == org.fake.org_id[:15]
    assert "session" not in raw and "PRIVATE KEY" not in raw and "integration" not in raw


def test_an_expired_session_logs_in_once_for_many_concurrent_jobs(org: Org) -> None:
    org.connect("jwt")
    lead = org.lead(1)
    org.fake.expire()
    clients = [org.connector.auth.client(org.fake.org_id) for _ in range(12)]
    start, errors = threading.Barrier(12), []

    def work(i: int) -> None:
        start.wait()
        try:
            assert clients[i].query(f"SELECT Id FROM Lead WHERE Id = '{lead}'")[0]["Id"] == lead
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(org.fake.logins) == 2  # the connect, then one login for all twelve


def test_a_session_refused_right_after_a_new_login_fails_clearly(org: Org) -> None:
    org.connect("jwt")
    # the connected app's certificate was replaced in Salesforce
    org.fake.app = dataclasses.replace(APP, public_key=new_app().public_key)
    org.fake.expire()
    with pytest.raises(PlatformRejected, match="login failed"):
        org.connector.auth.client(org.fake.org_id).query("SELECT Id FROM Lead")


def test_a_sandbox_logs_in_at_test_salesforce_com(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    for sandbox in make_org(tmp_path, database_url):
        sandbox.fake.sandbox = True
        with pytest.raises(PlatformRejected):  # a sandbox user is unknown at login.salesforce.com
            sandbox.connect("jwt")
        stored = sandbox.connector.auth.connect(OrgLogin(
            "jwt", APP.consumer_key, domain="test", username="baton@integration.example",
            private_key=APP.private_pem))
        assert stored.domain == "test" and stored.user_id == sandbox.fake.integration_user


def test_settings_refuse_what_cannot_work() -> None:
    from connectors.salesforce.settings import load_salesforce_settings
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="BATON_SALESFORCE_API_VERSION"):
        load_salesforce_settings(api_version="v59.0")
    with pytest.raises(ConfigError, match="BATON_SALESFORCE_SOBJECTS"):
        load_salesforce_settings(sobjects="Lead,Opportunity")
    assert SalesforceSettings(org_ids="00D5g000004ABCDEAA, 00D000000000001").orgs() == {
        "00D5g000004ABCD", "00D000000000001"}

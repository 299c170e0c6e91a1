"""Salesforce connector fixtures: the real simple-salesforce client against a fake org intercepted
with ``responses`` (tests/fakes/salesforce.py), outbound messages as Salesforce sends them into
create_app, the real inbox and Huey on SQLite and PostgreSQL. The engine is real; its backends
are scripted (the local model has its own tests, and bench/salesforce_batch.py runs it here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from baton.wiring import App, build_app, build_services
from connectors.hubspot.settings import HubSpotSettings
from connectors.salesforce.auth import OrgLogin
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings
from core.policy import parse_policy
from core.settings import Settings
from core.store import JobRow
from tests.fakes.backends import ScriptedBackend
from tests.fakes.queue import drain, retry_now
from tests.fakes.salesforce import FakeSalesforce, new_app
from webhooks.app import create_app
from webhooks.services import Services

EMAIL = json.dumps({"subject": "Your next step", "preheader": "A short note",
                    "body": "Hi {first_name}, a short, friendly note to suggest a next step."})
APP = new_app()  # one connected app (an RSA key) for the whole session


def notifications(org: str, items: list[tuple[str, str, dict[str, str]]]) -> bytes:
    """An outbound message as Salesforce sends it: ``items`` are (notification id, sObject type,
    fields incl. Id)."""
    notes = "".join(
        f"<Notification><Id>{nid}</Id><sObject xsi:type=\"sf:{sobject}\" "
        "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">"
        + "".join(f"<sf:{k}>{_xml(v)}</sf:{k}>" for k, v in fields.items())
        + "</sObject></Notification>" for nid, sobject, fields in items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g000000XyZaAAK</ActionId>"
        "<SessionId xsi:nil=\"true\"/>"
        "<EnterpriseUrl>https://baton-dev.my.salesforce.com/services/Soap/c/59.0/00D5g</EnterpriseUrl>"
        "<PartnerUrl>https://baton-dev.my.salesforce.com/services/Soap/u/59.0/00D5g</PartnerUrl>"
        f"{notes}</notifications></soapenv:Body></soapenv:Envelope>").encode()


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Org:
    fake: FakeSalesforce
    services: Services
    client: FlaskClient
    local: ScriptedBackend

    @property
    def connector(self) -> SalesforceConnector:
        return cast(SalesforceConnector, self.services.connectors.get("salesforce"))

    def connect(self, method: str = "jwt") -> OrgLogin:
        if method == "jwt":
            login = OrgLogin("jwt", APP.consumer_key, username="baton@integration.example",
                             private_key=APP.private_pem)
        else:
            login = OrgLogin("client_credentials", APP.consumer_key, domain=self.fake.my_domain,
                             consumer_secret=APP.consumer_secret)
        return self.connector.auth.connect(login)

    def outbound(self, items: list[tuple[str, str, dict[str, str]]], org: str | None = None,
                 path: str = "/salesforce/outbound") -> TestResponse:
        return self.client.post(path, data=notifications(org or self.fake.org_id, items),
                                content_type="text/xml; charset=utf-8")

    def lead(self, n: int, **fields: Any) -> str:
        return self.fake.add("Lead", FirstName=fields.pop("FirstName", f"Ann{n}"), LastName="Lee",
                             Email=f"ann{n}@example.com", Company="Fjord & Field", **fields)

    def drain(self) -> int:
        """Run what is queued, as a worker would (:func:`tests.fakes.queue.drain`)."""
        return drain(self.services)

    def retry_now(self) -> int:
        """Run every job waiting for a retry now."""
        return retry_now(self.services)

    def jobs(self) -> list[JobRow]:
        with self.services.store.session() as s:
            return list(s.scalars(sa.select(JobRow).where(JobRow.kind == "salesforce.notification")
                                  .order_by(JobRow.created_at)))


def make_org(tmp_path: Path, database_url: str | None, *, immediate: bool = False,
             config: Path | None = None, slack: Any = None, **own: Any) -> Iterator[Org]:
    """``config``: a policy file for the services (approvals); ``slack``: Slack's settings."""
    fake = FakeSalesforce(app=APP)
    with fake.mock():
        cfg = Settings(data_dir=tmp_path, database_url=database_url, config=config)
        salesforce = SalesforceSettings(org_ids=fake.org_id, max_retry_wait=0.0, **own)
        local = ScriptedBackend("llama", local=True, model="gemma", outputs=[EMAIL] * 1000,
                                max_batch=8)
        cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
        cloud.healthy = (False, "not configured")
        policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n')
        engine_app: App = build_app(cfg, policy, backends={"local": local, "cloud": cloud})
        services = build_services(cfg, immediate=immediate, engine_app=lambda: engine_app,
                                  connector_settings={"hubspot": HubSpotSettings(),
                                                      "salesforce": salesforce,
                                                      **({"slack": slack} if slack else {})})
        try:
            yield Org(fake, services, create_app(services).test_client(), local)
        finally:
            services.store.close()
            engine_app.close()


@pytest.fixture
def org(tmp_path: Path, database_url: str | None) -> Iterator[Org]:
    """An org with the Baton fields deployed and the permission set assigned; not yet connected."""
    yield from make_org(tmp_path, database_url)

"""Gateway fixtures: real signed requests into create_app, the real inbox on SQLite and
PostgreSQL, Huey in immediate mode; the engine behind the task API uses scripted backends."""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from flask.testing import FlaskClient

from baton.wiring import build_app, build_services
from connectors.base import Connector
from connectors.hubspot.settings import HubSpotSettings
from connectors.salesforce.auth import OrgLogin
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings
from connectors.slack.settings import SlackSettings
from core.policy import parse_policy
from core.registry import Registry
from core.settings import Settings
from tests.fakes.backends import ScriptedBackend
from tests.fakes.salesforce import FakeSalesforce, new_app
from webhooks.app import create_app
from webhooks.services import Services

SECRET = "hs-client-secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ORG = "00D000000000062EAA"
APP = new_app()  # the Salesforce connected app's key pair, made once
GOOD = json.dumps({"subject": "s", "preheader": "p", "body": "Hi {first_name}, hello."})


def with_salesforce(services: Services, **own: Any) -> Services:
    """The services with the Salesforce connector's settings changed (``source_cidrs``, ...)."""
    current = cast(SalesforceConnector, services.connectors.get("salesforce"))
    changed = SalesforceConnector(current.settings.model_copy(update=own), current.auth,
                                  current.outbox, current.keys, current.replies)
    connectors: Registry[Connector] = Registry("connector")
    for name in services.connectors:
        connectors.register(name, changed if name == "salesforce" else services.connectors.get(name))
    return dataclasses.replace(services, connectors=connectors)


@pytest.fixture
def salesforce_org() -> Iterator[FakeSalesforce]:
    """The org whose outbound messages the gateway hears (its API intercepted)."""
    fake = FakeSalesforce(org_id=ORG, app=APP)
    with fake.mock():
        yield fake


@pytest.fixture
def services(database_url: str | None, tmp_path: Path,
             salesforce_org: FakeSalesforce) -> Iterator[Services]:
    cfg = Settings(data_dir=tmp_path, database_url=database_url,  # type: ignore[arg-type]
                   max_body_bytes=64 * 1024)
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 50)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    cloud.healthy = (False, "not configured")
    policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n')
    engine_app = build_app(cfg, policy, backends={"local": local, "cloud": cloud})
    svc = build_services(cfg, immediate=True, engine_app=lambda: engine_app, connector_settings={
        "hubspot": HubSpotSettings(client_secret=SECRET),  # type: ignore[arg-type]
        "salesforce": SalesforceSettings(org_ids=ORG, max_retry_wait=0.0),  # type: ignore[arg-type]
        "slack": SlackSettings(signing_secret=SLACK_SECRET)})  # type: ignore[arg-type]
    cast(SalesforceConnector, svc.connectors.get("salesforce")).auth.connect(OrgLogin(
        "jwt", APP.consumer_key, username="baton@integration.example", private_key=APP.private_pem))
    yield svc
    svc.store.close()
    engine_app.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services).test_client()



"""Gateway fixtures: real signed requests into create_app, the real inbox on SQLite and
PostgreSQL, Huey in immediate mode; the engine behind the task API uses scripted backends."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from baton.wiring import build_app, build_services
from connectors.hubspot.settings import HubSpotSettings
from core.policy import parse_policy
from core.settings import Settings
from tests.fakes.backends import ScriptedBackend
from webhooks.app import create_app
from webhooks.services import Services

SECRET = "hs-client-secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ORG = "00D000000000062EAA"
GOOD = json.dumps({"subject": "s", "preheader": "p", "body": "Hi {first_name}, hello."})


@pytest.fixture
def services(database_url: str | None, tmp_path: Path) -> Iterator[Services]:
    cfg = Settings(data_dir=tmp_path, database_url=database_url,  # type: ignore[arg-type]
                   slack_signing_secret=SLACK_SECRET, salesforce_org_ids=ORG,  # type: ignore[arg-type]
                   max_body_bytes=64 * 1024)
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 50)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    cloud.healthy = (False, "not configured")
    policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n')
    engine_app = build_app(cfg, policy, backends={"local": local, "cloud": cloud})
    svc = build_services(cfg, immediate=True, engine_app=lambda: engine_app, connector_settings={
        "hubspot": HubSpotSettings(client_secret=SECRET)})  # type: ignore[arg-type]
    yield svc
    svc.store.close()
    engine_app.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services).test_client()



"""HubSpot connector fixtures: the real hubspot-api-client against a loopback fake HubSpot, really
signed requests into create_app, the real inbox and Huey on SQLite and PostgreSQL. The engine
is real; its backends are scripted (the local model has its own tests and one end-to-end here)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from baton.wiring import App, build_app, build_services
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings
from connectors.signatures import hubspot_v1, hubspot_v2, hubspot_v3
from core.policy import parse_policy
from core.settings import Settings
from core.store import JobRow
from tests.fakes.backends import ScriptedBackend
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.queue import drain, retry_now
from webhooks.app import create_app
from webhooks.services import Services

SECRET = "app-secret"
PORTAL = 7
TOKEN = "pat-na1-private"
EMAIL = json.dumps({"subject": "Your next trail", "preheader": "Picked for you",
                    "body": "Hi {first_name}, your Summit pack is ready for the next trail."})


def seed(fake: FakeHubSpot, portal: int = PORTAL, contact: str = "101", name: str = "Maya") -> None:
    p = fake.portal(portal)
    p.add("contacts", contact, firstname=name, lastname="Lindqvist", email=f"{name.lower()}@example.net",
          hs_language="en")
    p.add("companies", "201", name="Fjord & Field", industry="Retail")
    p.add("deals", "301", dealname="Spring order")
    p.add("line_items", "401", name="Summit 40L backpack", quantity="1", createdate="2026-03-02T10:00:00Z")
    p.add("line_items", "402", name="Trail socks", quantity="3", createdate="2026-01-15T10:00:00Z")
    p.link("contacts", contact, "companies", "201")
    p.link("contacts", contact, "deals", "301")
    p.link("deals", "301", "line_items", "401")
    p.link("deals", "301", "line_items", "402")


def hubspot_of(services: Services) -> HubSpotConnector:
    """The services' HubSpot connector, as its own type."""
    return cast(HubSpotConnector, services.connectors.get("hubspot"))


@dataclass
class Hub:
    fake: FakeHubSpot
    services: Services
    client: FlaskClient
    local: ScriptedBackend

    def action(self, action: str, body: dict[str, Any] | bytes, version: str = "v3",
               secret: str = SECRET) -> TestResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        uri = f"http://localhost/hubspot/actions/{action}"
        if version == "v3":
            ts = str(int(time.time() * 1000))
            headers = {"X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", uri, raw, ts),
                       "X-HubSpot-Request-Timestamp": ts}
        else:
            headers = {"X-HubSpot-Signature": hubspot_v2(secret, "POST", uri, raw),
                       "X-HubSpot-Signature-Version": "v2"}
        return self.client.post(f"/hubspot/actions/{action}", data=raw, headers=headers,
                                content_type="application/json")

    def webhook(self, events: list[dict[str, Any]]) -> TestResponse:
        raw = json.dumps(events).encode()
        return self.client.post("/hubspot/webhooks", data=raw, content_type="application/json",
                                headers={"X-HubSpot-Signature": hubspot_v1(SECRET, raw),
                                         "X-HubSpot-Signature-Version": "v1"})

    @property
    def connector(self) -> HubSpotConnector:
        return hubspot_of(self.services)

    def drain(self) -> int:
        """Run what is queued, as a worker would (:func:`tests.fakes.queue.drain`)."""
        return drain(self.services)

    def retry_now(self) -> int:
        """Run every job waiting for a retry now."""
        return retry_now(self.services)

    def jobs(self, kind: str) -> list[JobRow]:
        with self.services.store.session() as s:
            return list(s.scalars(sa.select(JobRow).where(JobRow.kind == kind)
                                  .order_by(JobRow.created_at)))


def call(callback: str, contact: str = "101", portal: int = PORTAL, **inputs: str) -> dict[str, Any]:
    return {"callbackId": callback,
            "origin": {"portalId": portal, "actionDefinitionId": 10646377, "actionDefinitionVersion": 1},
            "context": {"source": "WORKFLOWS", "workflowId": 192814114},
            "object": {"objectId": int(contact), "properties": {"email": "x"}, "objectType": "CONTACT"},
            "inputFields": {"brief": "Suggest what to take on the next trail", "tier": "routine", **inputs}}


def make_hub(tmp_path: Path, database_url: str | None, *, immediate: bool, **overrides: Any) -> Iterator[Hub]:
    with FakeHubSpot(client_secret=SECRET) as fake:
        fake.private_app(PORTAL, TOKEN)
        fake.create_baton_properties(PORTAL)  # as `baton hubspot setup` leaves the portal
        seed(fake)
        own = {k.removeprefix("hubspot_"): v for k, v in overrides.items() if k.startswith("hubspot_")}
        cfg = Settings(data_dir=tmp_path, database_url=database_url,  # type: ignore[arg-type]
                       **{k: v for k, v in overrides.items() if not k.startswith("hubspot_")})
        hubspot = HubSpotSettings(client_secret=SECRET, api_base=fake.url,  # type: ignore[arg-type]
                                  portal_id=PORTAL, access_token=TOKEN,  # type: ignore[arg-type]
                                  client_id="client-1",
                                  redirect_url="https://b.example/hubspot/oauth/callback", **own)
        local = ScriptedBackend("llama", local=True, model="gemma", outputs=[EMAIL] * 400,
                                max_batch=8)
        cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
        cloud.healthy = (False, "not configured")
        policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n')
        engine_app: App = build_app(cfg, policy, backends={"local": local, "cloud": cloud})
        services = build_services(cfg, immediate=immediate, engine_app=lambda: engine_app,
                                  connector_settings={"hubspot": hubspot})
        try:
            yield Hub(fake, services, create_app(services).test_client(), local)
        finally:
            services.store.close()
            engine_app.close()


@pytest.fixture
def hub(tmp_path: Path, database_url: str | None) -> Iterator[Hub]:
    """Jobs run inline (Huey immediate): a workflow action is answered synchronously."""
    yield from make_hub(tmp_path, database_url, immediate=True)


@pytest.fixture
def queued_hub(tmp_path: Path, database_url: str | None) -> Iterator[Hub]:
    """Jobs wait in the real queue until ``drain``; no sync budget: actions answer BLOCK."""
    yield from make_hub(tmp_path, database_url, immediate=False, hubspot_sync_budget=0.0,
                        hubspot_max_attempts=2, hubspot_max_retry_wait=2.0,
                        hubspot_requests_per_10s=1000)

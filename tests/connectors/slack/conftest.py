"""Slack connector fixtures: the real slack-bolt App and slack_sdk clients against a loopback
fake Slack (tests/fakes/slack.py), requests signed exactly as Slack signs them into create_app,
contacts looked up in the real HubSpot connector against its loopback fake, the real inbox and
Huey on SQLite and PostgreSQL. The engine is real; its backends are scripted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from baton.wiring import App, build_app, build_services
from connectors.hubspot.settings import HubSpotSettings
from connectors.signatures import slack_v0
from connectors.slack.connector import SlackConnector
from connectors.slack.settings import SlackSettings
from core.policy import load_policy
from core.settings import Settings
from core.store import JobRow
from tests.connectors.hubspot.conftest import PORTAL, SECRET, TOKEN, seed
from tests.fakes.backends import ScriptedBackend
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.queue import drain
from tests.fakes.slack import FakeSlack
from webhooks.app import create_app
from webhooks.services import Services

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0BATON01"
EMAIL = json.dumps({"subject": "Your next trail", "preheader": "Picked for you",
                    "body": "Hi {first_name}, your Summit pack is ready for the next trail."})
POLICY = f"""
[[routes]]
name = "local"
action = "local"

[slack.workspaces.{TEAM}]
tenants = ["hubspot:{PORTAL}"]
"""


def signed(body: bytes, secret: str = SIGNING, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": slack_v0(secret, stamp, body)}


@dataclass
class Desk:
    """A Slack workspace with Baton installed, mapped to a HubSpot portal."""

    slack: FakeSlack
    hubspot: FakeHubSpot
    services: Services
    client: FlaskClient
    local: ScriptedBackend

    @property
    def connector(self) -> SlackConnector:
        return cast(SlackConnector, self.services.connectors.get("slack"))

    def command(self, text: str, *, channel: str = "C1", user: str = "U1", team: str = TEAM,
                trigger: str | None = None, retry: int | None = None) -> TestResponse:
        body = urlencode({
            "token": "deprecated-verification-token", "team_id": team, "team_domain": "acme",
            "channel_id": channel, "channel_name": "marketing", "user_id": user,
            "user_name": "ann", "command": "/baton", "text": text, "api_app_id": "A0BATON",
            "is_enterprise_install": "false", "response_url": self.slack.response_url(team),
            "trigger_id": trigger or self.slack.trigger()}).encode()
        return self.post(body, "application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any], *, event_id: str = "Ev01", team: str = TEAM,
              retry: int | None = None) -> TestResponse:
        body = json.dumps({"token": "x", "team_id": team, "api_app_id": "A0BATON", "event": event,
                           "type": "event_callback", "event_id": event_id,
                           "event_time": int(time.time()),
                           "authorizations": [{"team_id": team, "user_id": "UBATON",
                                               "is_bot": True}]}).encode()
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} \
            if retry else {}
        return self.post(body, "application/json", headers)

    def post(self, body: bytes, content_type: str, headers: dict[str, str] | None = None,
             secret: str = SIGNING) -> TestResponse:
        return self.client.post("/slack/events", data=body, content_type=content_type,
                                headers={**signed(body, secret), **(headers or {})})

    def drain(self) -> int:
        return drain(self.services)

    def die_after_first_post(self) -> None:
        """The worker dies between its first post and recording it (the outbox row stays
        pending); later posts are recorded as usual."""
        real, calls = self.connector.outbox.done, {"n": 0}

        def crash_once(key: str, response: dict[str, Any]) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("worker died after posting")
            real(key, response)

        self.connector.outbox.done = crash_once  # type: ignore[method-assign]

    def jobs(self, kind: str | None = None) -> list[JobRow]:
        with self.services.store.session() as s:
            q = sa.select(JobRow).order_by(JobRow.created_at)
            return list(s.scalars(q.where(JobRow.kind == kind) if kind else q))


def make_desk(tmp_path: Path, database_url: str | None, policy: str = POLICY,
              hubspot_settings: dict[str, Any] | None = None, **slack: Any) -> Iterator[Desk]:
    with FakeSlack() as fake_slack, FakeHubSpot(client_secret=SECRET) as fake_hub:
        fake_hub.private_app(PORTAL, TOKEN)
        fake_hub.create_baton_properties(PORTAL)
        seed(fake_hub)
        fake_slack.add_workspace(TEAM)
        fake_slack.add_channel(TEAM, "C1")
        config = tmp_path / "baton.toml"
        config.write_text(policy, encoding="utf-8")
        cfg = Settings(data_dir=tmp_path, database_url=database_url,  # type: ignore[arg-type]
                       config=config)
        hubspot = HubSpotSettings(client_secret=SECRET, api_base=fake_hub.url,  # type: ignore[arg-type]
                                  portal_id=PORTAL, access_token=TOKEN,  # type: ignore[arg-type]
                                  **(hubspot_settings or {}))
        own = SlackSettings(signing_secret=SIGNING, api_url=fake_slack.api_url,  # type: ignore[arg-type]
                            response_hosts="127.0.0.1", **slack)
        local = ScriptedBackend("llama", local=True, model="gemma", outputs=[EMAIL] * 100)
        cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
        cloud.healthy = (False, "not configured")
        engine_app: App = build_app(cfg, load_policy(config),
                                    backends={"local": local, "cloud": cloud})
        services = build_services(cfg, immediate=False, engine_app=lambda: engine_app,
                                  connector_settings={"hubspot": hubspot, "slack": own})
        desk = Desk(fake_slack, fake_hub, services, create_app(services).test_client(), local)
        desk.connector.connect(fake_slack.workspaces[TEAM].token)
        try:
            yield desk
        finally:
            services.store.close()
            engine_app.close()


desk_with = contextmanager(make_desk)  # a desk with its own policy or settings, in a test


@pytest.fixture
def desk(tmp_path: Path, database_url: str | None) -> Iterator[Desk]:
    yield from make_desk(tmp_path, database_url)

"""The rendered Slack manifest says what Bolt listens for: its command, events and interactivity
reach a registered listener, and every listener is reachable from the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from click.testing import CliRunner
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from baton.cli import cli
from connectors.slack.review import BUTTONS
from connectors.slack.settings import BOT_SCOPES
from tests.connectors.slack.conftest import TEAM, Desk


def rendered(tmp_path: Path) -> dict[str, Any]:
    r = CliRunner().invoke(cli, ["manifests", "render", "--base-url", "https://baton.example.com",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    return dict(yaml.safe_load((tmp_path / "out" / "slack" / "manifest.yml").read_text()))


def requests_for(m: dict[str, Any]) -> list[BoltRequest]:
    """One request of each kind the manifest makes Slack send."""
    out = [BoltRequest(body=urlencode({"command": c["command"], "text": "help", "team_id": TEAM,
                                       "trigger_id": "1.2.3", "user_id": "U1", "channel_id": "C1"}),
                       headers={"content-type": "application/x-www-form-urlencoded"})
           for c in m["features"]["slash_commands"]]
    for event in m["settings"]["event_subscriptions"]["bot_events"]:
        out.append(BoltRequest(body=json.dumps({
            "type": "event_callback", "team_id": TEAM, "event_id": f"Ev{event}",
            "event": {"type": event, "user": "U1", "text": "hi", "channel": "C1", "ts": "1.1",
                      "tokens": {"bot": ["UBATON"]}}}),
            headers={"content-type": "application/json"}))
    if m["settings"]["interactivity"]["is_enabled"]:
        clicks = [{"type": "block_actions", "team": {"id": TEAM}, "user": {"id": "U1"},
                   "actions": [{"action_id": f"baton_{verb}", "type": "button"}]}
                  for verb, *_ in BUTTONS]  # every button of a review message
        for payload in (*clicks, {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U1"},
                                  "view": {"callback_id": "baton_edit", "id": "V1", "type": "modal"}}):
            out.append(BoltRequest(body=urlencode({"payload": json.dumps(payload)}),
                                   headers={"content-type": "application/x-www-form-urlencoded"}))
    return out


def test_the_manifest_and_the_listeners_match(tmp_path: Path, desk: Desk) -> None:
    m = rendered(tmp_path)
    assert m["settings"]["event_subscriptions"]["request_url"] == "https://baton.example.com/slack/events"
    assert m["settings"]["interactivity"]["request_url"] == "https://baton.example.com/slack/events"
    assert m["features"]["slash_commands"][0]["url"] == "https://baton.example.com/slack/events"
    assert m["oauth_config"]["redirect_urls"] == ["https://baton.example.com/slack/oauth_redirect"]
    assert m["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    bolt = desk.connector.bolt
    listeners = bolt._listeners  # what Bolt has registered
    reqs = requests_for(m)
    for req in reqs:  # everything Slack will send reaches a listener
        assert any(listener.matches(req=req, resp=BoltResponse(status=200)) for listener in listeners), \
            req.body
    for listener in listeners:  # and every listener hears something Slack will send
        assert any(listener.matches(req=req, resp=BoltResponse(status=200)) for req in reqs), listener


def test_the_manifest_is_what_slack_accepts(tmp_path: Path) -> None:
    m = rendered(tmp_path)
    assert m["_metadata"]["major_version"] == 1
    info = m["display_information"]
    assert 1 <= len(info["name"]) <= 35 and len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000  # Slack's bounds when it is given
    command = m["features"]["slash_commands"][0]
    assert command["command"].startswith("/") and len(command["description"]) <= 100
    assert len(command["usage_hint"]) <= 1000
    assert m["features"]["bot_user"]["display_name"] and not m["settings"]["socket_mode_enabled"]

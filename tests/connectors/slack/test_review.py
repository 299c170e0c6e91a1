"""What two reviews of the Slack connector found (an attacker's and a Slack admin's), each with the
test that failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

from slack_sdk.oauth.installation_store import Bot

from connectors.slack.commands import Usage, parse
from connectors.slack.messages import slack_text
from core.tasks.kinds import Task
from tests.connectors.slack.conftest import TEAM, Desk, desk_with
from tests.fakes.queue import retry_now

ANSWER = json.dumps({"text": "The Summit pack ships on Monday; tell the customer it is on its way."})


def _text(message: dict) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section") \
        + "\n" + message["text"]


def test_a_crm_name_can_not_ping_the_channel(desk: Desk) -> None:
    contact = desk.hubspot.portal(7).objects["contacts"]["101"]
    contact["firstname"], contact["lastname"] = "<!channel>", "<https://evil.example|Click>"
    desk.command("email 101 suggest the next trail")
    desk.drain()
    [post] = desk.slack.posts("C1")
    text = _text(post)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_masking_keeps_a_hidden_value_that_holds_an_allowed_one(tmp_path: Path,
                                                                database_url: str | None) -> None:
    policy = (f'[[routes]]\nname = "l"\naction = "local"\n[slack.workspaces.{TEAM}]\n'
              'tenants = ["hubspot:7"]\nchannel_fields = ["first_name", "company"]\n')
    with desk_with(tmp_path, database_url, policy=policy) as desk:
        shown = desk.connector._shown
        task = Task(kind="email", context={"first_name": "Maya", "last_name": "Outdoor Gear",
                                           "email": "maya@example.net", "company": "ann@corp.example"})
        out = shown(TEAM, task, "Hi Maya, from Maya Outdoor Gear; maya@example.net; ann@corp.example")
        assert out.startswith("Hi Maya, from ")
        assert "Outdoor Gear" not in out and "maya@example.net" not in out
        assert "ann@corp.example" not in out  # an allowed field holding an address: still masked


def test_a_workspace_uninstalling_leaves_its_organizations_install(desk: Desk) -> None:
    store = desk.connector.installations
    token = desk.slack.workspaces[TEAM].token
    store.save_bot(Bot(enterprise_id="E0ORG", team_id=None, bot_token=token, bot_id="B1",
                       bot_user_id="UBATON", is_enterprise_install=True, installed_at=1.0))
    store.save_bot(Bot(enterprise_id="E0ORG", team_id="T0WS02", bot_token=token, bot_id="B1",
                       bot_user_id="UBATON", installed_at=1.0))
    body = json.dumps({"type": "event_callback", "team_id": "T0WS02", "enterprise_id": "E0ORG",
                       "event_id": "EvU", "event": {"type": "app_uninstalled"},
                       "authorizations": [{"enterprise_id": "E0ORG", "team_id": "T0WS02",
                                           "is_enterprise_install": False}]}).encode()
    assert desk.post(body, "application/json").status_code == 200
    assert sorted(store.teams()) == ["E0ORG", TEAM]


def test_a_post_retried_where_the_bot_cannot_read_still_reaches_the_user(desk: Desk) -> None:
    """The worker died after answering through response_url; on the retry Baton can't read the
    private channel to look for its post, so it answers again rather than fail in silence."""
    desk.slack.add_channel(TEAM, "G1", private=True, bot_member=False)
    desk.command("email maya@example.net suggest the next trail", channel="G1")
    desk.die_after_first_post()
    desk.drain()
    retry_now(desk.services)
    assert desk.jobs("slack.command")[0].state == "done"
    assert all("Hi Maya" in json.dumps(r) for r in desk.slack.responses)
    assert desk.slack.posts() == []


def test_a_public_channel_without_the_bot_gets_the_draft_privately(desk: Desk) -> None:
    """No chat:write.public: CRM-derived copy goes only where Baton was invited."""
    desk.slack.add_channel(TEAM, "C2", bot_member=False)
    desk.command("email maya@example.net suggest the next trail", channel="C2")
    desk.drain()
    assert desk.slack.posts() == []
    [told] = desk.slack.responses
    assert told["response_type"] == "ephemeral" and "/invite @Baton" in json.dumps(told)


def test_a_retry_in_a_long_thread_finds_its_earlier_answer(desk: Desk) -> None:
    desk.local.outputs.clear()
    desk.local.outputs.extend([ANSWER] * 5)
    desk.slack.replies_per_minute = 100
    parent = desk.slack.add_message("C1", "a long thread")
    for i in range(20):
        desk.slack.add_message("C1", f"reply {i}", thread_ts=parent)
    asked = desk.slack.add_message("C1", "<@UBATON> and now?", thread_ts=parent)
    desk.event({"type": "app_mention", "user": "U1", "text": "<@UBATON> and now?", "ts": asked,
                "channel": "C1", "thread_ts": parent})
    desk.die_after_first_post()
    desk.drain()
    retry_now(desk.services)
    assert len(desk.slack.posts("C1")) == 1


def test_thread_context_is_bounded_and_keeps_the_newest(desk: Desk) -> None:
    desk.local.outputs.clear()
    desk.local.outputs.extend([ANSWER] * 5)
    parent = desk.slack.add_message("C1", "start " + "x" * 9000)
    for i in range(12):
        desk.slack.add_message("C1", f"message {i} " + "y" * 5000, thread_ts=parent)
    asked = desk.slack.add_message("C1", "<@UBATON> summary?", thread_ts=parent)
    desk.event({"type": "app_mention", "user": "U1", "text": "<@UBATON> summary?", "ts": asked,
                "channel": "C1", "thread_ts": parent})
    desk.drain()
    prompt = desk.local.prompts[0].text
    assert len(prompt) < 12_000 and "message 11" in prompt and "start" not in prompt


def test_month_and_slack_markup_in_commands() -> None:
    for bad in ("roi 0000-01", "roi 2026-13", "roi next"):
        try:
            parse(bad)
        except Usage:
            continue
        raise AssertionError(bad)
    asked = parse("email ann@example.com tell &lt;them&gt; about <https://example.com/sale|the sale>")
    assert asked.text == "tell <them> about the sale (https://example.com/sale)"
    assert slack_text("<@U123|ann> and <#C1|general>") == "@ann and #general"


def test_slacks_rate_limit_notice_is_acknowledged(desk: Desk) -> None:
    body = json.dumps({"token": "x", "type": "app_rate_limited", "team_id": TEAM,
                       "minute_rate_limited": 1518467820, "api_app_id": "A0BATON"}).encode()
    r = desk.post(body, "application/json")
    assert r.status_code == 200 and desk.jobs() == []


def test_an_event_is_for_the_installation_its_authorizations_name(desk: Desk) -> None:
    """A Slack Connect channel: the envelope's team is the other organization's; the event is
    delivered for the installed workspace that ``authorizations`` names."""
    desk.local.outputs.clear()
    desk.local.outputs.extend([ANSWER] * 5)
    asked = desk.slack.add_message("C1", "<@UBATON> hi")
    body = json.dumps({"type": "event_callback", "team_id": "T0EXTERNAL", "event_id": "EvX",
                       "event": {"type": "app_mention", "user": "U1", "text": "<@UBATON> hi",
                                 "ts": asked, "channel": "C1"},
                       "authorizations": [{"team_id": TEAM, "user_id": "UBATON", "is_bot": True,
                                           "is_enterprise_install": False}]}).encode()
    assert desk.post(body, "application/json").status_code == 200
    [job] = desk.jobs("slack.mention")
    assert job.payload["team"] == TEAM
    desk.drain()
    assert len(desk.slack.posts("C1")) == 1

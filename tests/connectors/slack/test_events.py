"""Mentions answered in their thread, with the thread as context when Slack's rate tier allows;
Slack's retries and bots change nothing; uninstalling removes the workspace's token."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from tests.connectors.slack.conftest import TEAM, Desk

ANSWER = json.dumps({"text": "The Summit pack ships on Monday; tell the customer it is on its way."})


def mention(desk: Desk, text: str, ts: str, thread_ts: str | None = None, **extra: object) -> dict:
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBATON> {text}", "ts": ts,
             "channel": "C1", "event_ts": ts, **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def answers(desk: Desk) -> None:
    desk.local.outputs.clear()
    desk.local.outputs.extend([ANSWER] * 10)


def test_a_mention_in_a_thread_is_answered_there_with_the_thread_as_context(desk: Desk) -> None:
    answers(desk)
    parent = desk.slack.add_message("C1", "Customer asks when the Summit pack ships")
    desk.slack.add_message("C1", "Order 4471 was placed on Friday", thread_ts=parent)
    asked = desk.slack.add_message("C1", "<@UBATON> what should we answer?", thread_ts=parent)
    r = desk.event(mention(desk, "what should we answer?", asked, parent))
    assert r.status_code == 200 and desk.slack.posts() == []
    desk.drain()
    [post] = desk.slack.posts("C1")
    assert post["thread_ts"] == parent and "ships on Monday" in post["blocks"][0]["text"]["text"]
    prompt = desk.local.prompts[0].text
    assert "Customer asks when the Summit pack ships" in prompt
    assert "Order 4471 was placed on Friday" in prompt
    assert "UBATON" not in prompt.split("Brief:")[-1].split("\n")[0]  # the mention is stripped
    [call] = desk.slack.called("conversations.replies")
    assert call.params["ts"] == parent and int(call.params["limit"]) == 15


def test_a_mention_outside_a_thread_starts_one(desk: Desk) -> None:
    answers(desk)
    asked = desk.slack.add_message("C1", "<@UBATON> draft a line about the spring sale")
    desk.event(mention(desk, "draft a line about the spring sale", asked))
    desk.drain()
    [post] = desk.slack.posts("C1")
    assert post["thread_ts"] == asked
    assert desk.slack.called("conversations.replies") == []  # nothing earlier to read


def test_over_the_thread_rate_tier_the_answer_uses_what_the_event_carries(desk: Desk) -> None:
    """Non-Marketplace apps get about one conversations.replies call a minute: the second
    mention within the minute does not call it (nor does one Slack answers with 429)."""
    answers(desk)
    first = desk.slack.add_message("C1", "thread one")
    second = desk.slack.add_message("C1", "thread two")
    desk.slack.add_message("C1", "an earlier reply in thread two", thread_ts=second)
    a = desk.slack.add_message("C1", "<@UBATON> one?", thread_ts=first)
    b = desk.slack.add_message("C1", "<@UBATON> two?", thread_ts=second)
    desk.event(mention(desk, "one?", a, first), event_id="Ev1")
    desk.drain()
    desk.event(mention(desk, "two?", b, second), event_id="Ev2")
    desk.drain()
    assert len(desk.slack.called("conversations.replies")) == 1
    assert "an earlier reply in thread two" not in desk.local.prompts[-1].text
    assert "two?" in desk.local.prompts[-1].text
    assert len(desk.slack.posts("C1")) == 2


def test_slack_answering_429_to_the_thread_read_degrades_too(desk: Desk) -> None:
    answers(desk)
    parent = desk.slack.add_message("C1", "a thread")
    asked = desk.slack.add_message("C1", "<@UBATON> help?", thread_ts=parent)
    desk.slack.fail_next["conversations.replies"] = 1
    desk.event(mention(desk, "help?", asked, parent))
    desk.drain()
    assert len(desk.slack.called("conversations.replies")) == 1  # one try, no waiting a minute
    assert len(desk.slack.posts("C1")) == 1


def test_a_retried_event_is_answered_once(desk: Desk) -> None:
    answers(desk)
    asked = desk.slack.add_message("C1", "<@UBATON> hello")
    event = mention(desk, "hello", asked)
    assert desk.event(event, event_id="EvRetry").status_code == 200
    for n in (1, 2, 3):  # Slack's retries: the same event_id, X-Slack-Retry-Num 1..3
        assert desk.event(event, event_id="EvRetry", retry=n).status_code == 200
    assert len(desk.jobs("slack.mention")) == 1
    desk.drain()
    assert len(desk.slack.posts("C1")) == 1


def test_bot_messages_never_start_anything(desk: Desk) -> None:
    asked = desk.slack.add_message("C1", "<@UBATON> from another bot")
    desk.event(mention(desk, "from another bot", asked, bot_id="B0OTHER"), event_id="EvBot")
    desk.event(mention(desk, "edited", asked, subtype="message_changed"), event_id="EvEdit")
    assert desk.jobs() == []


def test_uninstalling_removes_the_token(desk: Desk) -> None:
    r = desk.event({"type": "app_uninstalled"}, event_id="EvGone")
    assert r.status_code == 200
    assert desk.connector.installations.find_bot(enterprise_id=None, team_id=TEAM) is None
    r = desk.command("email maya@example.net")
    assert r.status_code == 200 and "not installed" in r.json["text"]
    assert desk.jobs() == []


def test_revoked_bot_tokens_remove_the_installation(desk: Desk) -> None:
    desk.event({"type": "tokens_revoked", "tokens": {"oauth": ["U1"]}}, event_id="EvUser")
    assert desk.connector.installations.find_bot(enterprise_id=None, team_id=TEAM) is not None
    desk.event({"type": "tokens_revoked", "tokens": {"bot": ["UBATON"]}}, event_id="EvBotGone")
    assert desk.connector.installations.find_bot(enterprise_id=None, team_id=TEAM) is None


def test_url_verification_is_answered_by_bolt(desk: Desk) -> None:
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    r = desk.post(body, "application/json")
    assert r.status_code == 200
    assert r.json == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_a_rotated_signing_secret_is_accepted_and_a_wrong_one_is_not(desk: Desk) -> None:
    desk.services.connectors.get("slack").settings = desk.connector.settings.model_copy(  # type: ignore[attr-defined]
        update={"signing_secret": desk.connector.settings.signing_secret.__class__(
            "new-secret," + desk.connector.settings.signing_secret.get_secret_value())})
    body = b"command=%2Fbaton&text=help&team_id=" + TEAM.encode() + b"&trigger_id=1.2.3"
    form = "application/x-www-form-urlencoded"
    assert desk.post(body, form, secret="new-secret").status_code == 200
    r = desk.post(body, form, secret="not-the-secret")
    assert r.status_code == 401 and r.headers["X-Slack-No-Retry"] == "1"


def test_an_interaction_of_an_unexpected_shape_is_400_not_500(desk: Desk) -> None:
    payload = {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U1"},
               "view": {"callback_id": "baton_edit", "id": "V1"}}  # no view type
    body = urlencode({"payload": json.dumps(payload)}).encode()
    r = desk.post(body, "application/x-www-form-urlencoded")
    assert r.status_code == 400 and "unexpected shape" in r.json["reason"]

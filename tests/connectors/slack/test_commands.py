"""``/baton``: acknowledged at once, answered in the channel by a worker, never silence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import sqlalchemy as sa

from connectors.slack.commands import Usage, parse
from core.backends.base import Generation, Limits
from core.store import TokenRow
from core.tasks.kinds import Prompt
from tests.connectors.slack.conftest import TEAM, Desk, desk_with


def _blocks_text(message: dict) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")


def test_email_is_acked_then_posted_in_the_channel(desk: Desk) -> None:
    r = desk.command("email maya@example.net suggest the next trail")
    assert r.status_code == 200
    assert r.json == {"response_type": "ephemeral",
                      "text": "Working on it: the email draft will appear in this channel."}
    assert desk.slack.posts() == []  # the request did not generate anything
    [job] = desk.jobs("slack.command")
    assert job.tenant == f"slack:{TEAM}" and "token" not in job.payload  # the verification token
    desk.drain()
    [post] = desk.slack.posts("C1")
    text = _blocks_text(post)
    assert "Email draft for Maya Lindqvist" in text
    assert "Hi Maya, your Summit pack is ready for the next trail." in text
    assert desk.jobs("slack.command")[0].state == "done"
    # the contact came from the mapped HubSpot portal, with its purchases
    assert "Summit 40L backpack" in desk.local.prompts[0].text


def test_the_ack_does_not_wait_for_the_model(tmp_path: Path, database_url: str | None) -> None:
    """A model that blocks until the test has its acknowledgement: the ack comes first."""
    with desk_with(tmp_path, database_url) as desk:
        release, generating = threading.Event(), threading.Event()
        real = desk.local.generate

        def blocked(prompt: Prompt, schema: dict, limits: Limits) -> Generation:
            generating.set()
            assert release.wait(60), "the test never released the model"
            return real(prompt, schema, limits)

        desk.local.generate = blocked  # type: ignore[method-assign]
        first = desk.command("email maya@example.net suggest the next trail")
        assert first.status_code == 200 and first.json["response_type"] == "ephemeral"
        worker = threading.Thread(target=desk.drain)
        worker.start()
        assert generating.wait(60)  # the worker is inside the model now
        second = desk.command("email maya@example.net suggest the next trail")  # acked meanwhile
        assert second.status_code == 200 and "Working on it" in second.json["text"]
        assert desk.slack.posts() == []
        release.set()
        worker.join(60)
        desk.drain()
        assert len(desk.slack.posts("C1")) == 2


def test_a_retried_post_finds_the_first_and_posts_nothing_more(desk: Desk) -> None:
    """The worker died after chat.postMessage and before recording it: the retry finds its
    message by metadata and does not post twice."""
    desk.command("email maya@example.net suggest the next trail")
    desk.die_after_first_post()
    desk.drain()
    assert len(desk.slack.posts("C1")) == 1
    from tests.fakes.queue import retry_now

    retry_now(desk.services)
    assert len(desk.slack.posts("C1")) == 1
    assert desk.jobs("slack.command")[0].state == "done"
    assert desk.slack.called("conversations.history")  # how it found the earlier post


def test_usage_mistakes_are_answered_at_once_with_the_usage(desk: Desk) -> None:
    for text, expect in [("frobnicate", "I don't know `frobnicate`"),
                         ("email", "needs a contact"),
                         ("reply", "needs the customer's question"),
                         ("roi 2026-13", "takes a month"),
                         ("", "*Baton* drafts copy"),
                         ("help", "`/baton roi [month]`")]:
        r = desk.command(text)
        assert r.status_code == 200 and r.json["response_type"] == "ephemeral", text
        assert expect in r.json["text"], (text, r.json["text"])
    assert desk.jobs() == []


def test_a_contact_not_found_is_told_only_to_the_user(desk: Desk) -> None:
    desk.command("email nobody@example.org")
    desk.drain()
    assert desk.slack.posts() == []
    [told] = desk.slack.responses
    assert "No contact nobody@example.org in hubspot:7" in told["blocks"][0]["text"]["text"]
    assert told["response_type"] == "ephemeral"


def test_an_opted_out_contact_gets_no_draft(desk: Desk) -> None:
    desk.hubspot.portal(7).objects["contacts"]["101"]["hs_email_optout"] = "true"
    desk.command("email 101 suggest the next trail")
    desk.drain()
    assert desk.slack.posts() == [] and desk.local.prompts == []
    assert "opted out" in desk.slack.responses[0]["blocks"][0]["text"]["text"]


def test_a_workspace_the_policy_does_not_list_gets_nothing_but_help(
        tmp_path: Path, database_url: str | None) -> None:
    """Installed is not enough (anyone may install through /slack/install): no inference, no
    CRM, until the policy lists the workspace."""
    with desk_with(tmp_path, database_url, policy='[[routes]]\nname = "l"\naction = "local"\n') as desk:
        for text in ("email maya@example.net", "reply where is my order?", "roi"):
            r = desk.command(text)
            assert "not enabled for this workspace" in r.json["text"], text
            assert f"[slack.workspaces.{TEAM}]" in r.json["text"]
        assert "`/baton help`" in desk.command("help").json["text"]
        asked = desk.slack.add_message("C1", "<@UBATON> hello")
        desk.event({"type": "app_mention", "user": "U1", "text": "<@UBATON> hello", "ts": asked,
                    "channel": "C1"})
        assert desk.jobs() == [] and desk.hubspot.requests == []


def test_a_workspace_without_a_crm_mapping_is_told_so(tmp_path: Path, database_url: str | None) -> None:
    policy = f'[[routes]]\nname = "l"\naction = "local"\n[slack.workspaces.{TEAM}]\n'
    with desk_with(tmp_path, database_url, policy=policy) as desk:
        r = desk.command("email maya@example.net")
        assert "No CRM is mapped to this workspace" in r.json["text"]
        assert desk.jobs() == [] and desk.hubspot.requests == []


def test_a_workspace_never_sees_a_tenant_it_is_not_mapped_to(tmp_path: Path,
                                                            database_url: str | None) -> None:
    """Workspace T0OTHER02 is mapped to portal 8 (not connected to Baton): asking it for portal
    7's contact reaches neither portal 7 nor a draft, and the user reads why."""
    policy = (f'[[routes]]\nname = "l"\naction = "local"\n[slack.workspaces.{TEAM}]\n'
              'tenants = ["hubspot:7"]\n[slack.workspaces.T0OTHER02]\ntenants = ["hubspot:8"]\n')
    with desk_with(tmp_path, database_url, policy=policy) as desk:
        other = desk.slack.add_workspace("T0OTHER02")
        desk.slack.add_channel("T0OTHER02", "C9")
        desk.connector.connect(other.token)
        desk.command("email maya@example.net", channel="C9", team="T0OTHER02")
        desk.drain()
        assert desk.slack.posts() == [] and desk.local.prompts == []
        assert [r.portal for r in desk.hubspot.requests if r.portal == 7] == []
        assert "8" in desk.slack.responses[0]["blocks"][0]["text"]["text"]


def test_fields_a_channel_may_not_read_are_masked(tmp_path: Path, database_url: str | None) -> None:
    """The city may go into the email, not into the channel (channel_fields: names, company,
    title by default)."""
    city = json.dumps({"subject": "Your next trail", "preheader": "p",
                       "body": "Hi {first_name}, the next trail near Göteborg is ready for you."})
    with desk_with(tmp_path, database_url) as desk:
        desk.hubspot.portal(7).objects["contacts"]["101"]["city"] = "Göteborg"
        desk.local.outputs.clear()
        desk.local.outputs.extend([city] * 4)
        desk.command("email maya@example.net suggest the next trail")
        desk.drain()
        text = _blocks_text(desk.slack.posts("C1")[0])
        assert "Göteborg" not in text and "near {city} is ready" in text
        assert "Hi Maya," in text  # the first name is a channel field
        assert "city={city}" in desk.local.prompts[0].suffix  # the record had it


def test_japanese_users_get_japanese(tmp_path: Path, database_url: str | None) -> None:
    with desk_with(tmp_path, database_url) as desk:
        desk.slack.workspaces[TEAM].users["U1"]["locale"] = "ja-JP"
        desk.command("frobnicate")  # the ack is English (a command carries no locale)
        desk.command("email nobody@example.org")
        desk.drain()
        assert "連絡先 nobody@example.org が見つかりません" in \
            desk.slack.responses[0]["blocks"][0]["text"]["text"]


def test_long_output_is_split_within_block_kit_limits(tmp_path: Path, database_url: str | None) -> None:
    """Slack refuses a section over 3,000 characters and a message over 50 blocks (the fake
    too): a long draft goes out in pieces, the rest in the first message's thread."""
    paragraph = "The trail " + "goes on and on, " * 180 + "\n"  # about 2,900 characters
    with desk_with(tmp_path, database_url) as desk:
        from connectors.slack.messages import messages

        parts = messages("*Title*", paragraph * 60, "footer")
        assert len(parts) == 2 and all(len(p) <= 50 for p in parts)
        assert all(len(b["text"]["text"]) <= 3000 for p in parts for b in p if b["type"] == "section")
        client = desk.connector.api.client(TEAM)
        posted = desk.connector.api.post(client, "C1", parts)
        first, second = desk.slack.posts("C1")
        assert first["ts"] == posted["ts"] and second["thread_ts"] == posted["ts"]


def test_a_channel_the_bot_is_not_in_gets_a_hint_and_the_draft(desk: Desk) -> None:
    desk.slack.add_channel(TEAM, "G1", private=True, bot_member=False)
    desk.command("email maya@example.net suggest the next trail", channel="G1")
    desk.drain()
    assert desk.slack.posts() == []
    [told] = desk.slack.responses
    text = "\n".join(b["text"]["text"] for b in told["blocks"] if b["type"] == "section")
    assert "/invite @Baton" in text and "Hi Maya, your Summit pack" in text
    assert desk.jobs("slack.command")[0].state == "done"


def test_a_429_is_retried_after_its_retry_after(desk: Desk) -> None:
    desk.slack.fail_next["chat.postMessage"] = 1
    desk.command("email maya@example.net suggest the next trail")
    desk.drain()
    assert len(desk.slack.called("chat.postMessage")) == 2
    assert len(desk.slack.posts("C1")) == 1


def test_roi_reports_the_mapped_tenants(desk: Desk) -> None:
    desk.command("email maya@example.net suggest the next trail")
    desk.drain()
    desk.command("roi")
    desk.drain()
    posts = desk.slack.posts("C1")
    roi = _blocks_text(posts[-1])
    assert "Inference ROI since" in roi and "hubspot:7: 1 calls, 100% local" in roi


def test_bot_tokens_are_not_stored_in_plain_text(desk: Desk) -> None:
    token = desk.slack.workspaces[TEAM].token
    with desk.services.store.session() as s:
        rows = list(s.scalars(sa.select(TokenRow).where(TokenRow.platform == "slack")))
        dump = repr([(r.account, r.access_token, r.refresh_token, r.scopes) for r in rows])
    assert rows and token not in dump and token.split("-")[-1] not in dump
    assert desk.connector.installations.find_bot(enterprise_id=None, team_id=TEAM).bot_token == token


def test_parse_reads_slack_escaped_email_links() -> None:
    assert parse("email <mailto:ann@example.com|ann@example.com> hi").target == "ann@example.com"
    assert parse("recommend 101").target == "101"
    try:
        parse("nope")
    except Usage as usage:
        assert "I don't know `nope`" in str(usage)
    else:
        raise AssertionError("no usage")

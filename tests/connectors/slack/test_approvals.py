"""Step 8b: a HubSpot workflow action's draft waits for a reviewer in Slack before anything is
written. The real slack-bolt App and slack_sdk against the loopback fake Slack, the real HubSpot
connector against the loopback fake HubSpot (which refuses a callback completed twice), the real
inbox, queue and store on SQLite and PostgreSQL; the engine's backends are scripted."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.test import TestResponse

from connectors.errors import PlatformUnavailable
from connectors.review import Reviews
from connectors.signatures import hubspot_v3
from core.jobs.lifecycle import Jobs
from core.retention import forget
from core.review import Drafts
from core.store import ApprovedCopyRow, DraftRow, JobRow, ReceiptRow
from tests.connectors.hubspot.conftest import PORTAL, SECRET, call
from tests.connectors.slack.conftest import POLICY, TEAM, Desk, desk_with
from tests.fakes.queue import retry_now

REVIEW = "C0REVIEW"
ANN, BO, EVE = "U0ANN", "U0BO", "U0EVE"  # two reviewers, and someone who is not one
APPROVALS = POLICY + f"""
[[approvals]]
sources = ["hubspot.action"]
kinds = ["email"]
workspace = "{TEAM}"
channel = "{REVIEW}"
reviewers = ["{ANN}", "{BO}"]
"""


@pytest.fixture
def review(tmp_path: Path, database_url: str | None) -> Iterator[Desk]:
    with desk_with(tmp_path, database_url, APPROVALS,
                   hubspot_settings={"sync_budget": 0.0}) as desk:
        desk.slack.add_channel(TEAM, REVIEW)
        yield desk


def action(desk: Desk, body: dict[str, Any], name: str = "email") -> TestResponse:
    raw = json.dumps(body).encode()
    ts = str(int(time.time() * 1000))
    uri = f"http://localhost/hubspot/actions/{name}"
    return desk.client.post(f"/hubspot/actions/{name}", data=raw, content_type="application/json",
                            headers={"X-HubSpot-Signature-v3": hubspot_v3(SECRET, "POST", uri, raw, ts),
                                     "X-HubSpot-Request-Timestamp": ts})


def held(desk: Desk, callback: str = "cb-1") -> dict[str, Any]:
    """A workflow action run and held: the review message Baton posted."""
    got = action(desk, call(callback))
    assert got.status_code == 200 and got.json["outputFields"]["hs_execution_state"] == "BLOCK"
    desk.drain()
    [message] = [m for m in desk.slack.posts(REVIEW) if callback_of(desk, m) == callback]
    return copy.deepcopy(message)  # as the reviewer's Slack shows it, before any update


def callback_of(desk: Desk, message: dict[str, Any]) -> str | None:
    draft = draft_of(desk, message)
    job = desk.services.jobs.get(draft.job_id) if draft else None
    return str(job.payload["reply_key"]).rsplit(":", 1)[1] if job else None


def button(message: dict[str, Any], verb: str) -> dict[str, Any]:
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    return next(e for e in actions["elements"] if e["action_id"] == f"baton_{verb}")


def draft_of(desk: Desk, message: dict[str, Any]) -> DraftRow | None:
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"] or [None]
    if actions is None:
        return None
    return Drafts(desk.services.store).get(actions["elements"][0]["value"].split(":")[0])


def click(desk: Desk, message: dict[str, Any], verb: str, user: str) -> TestResponse:
    """A reviewer clicks a button of the message, as Slack sends it (block_actions)."""
    b = button(message, verb)
    payload = {"type": "block_actions", "team": {"id": TEAM, "domain": "acme"},
               "user": {"id": user, "team_id": TEAM}, "api_app_id": "A0BATON", "token": "x",
               "trigger_id": desk.slack.trigger(),
               "container": {"type": "message", "message_ts": message["ts"], "channel_id": REVIEW},
               "channel": {"id": REVIEW, "name": "review"}, "message": {"ts": message["ts"]},
               "response_url": desk.slack.response_url(TEAM),
               "actions": [{"action_id": b["action_id"], "block_id": "b", "value": b["value"],
                            "type": "button", "action_ts": f"{time.time():.6f}"}]}
    return desk.post(urlencode({"payload": json.dumps(payload)}).encode(),
                     "application/x-www-form-urlencoded")


def submit(desk: Desk, view: dict[str, Any], user: str, **values: str) -> TestResponse:
    """The edit modal submitted (view_submission) with the fields' new values."""
    state = {"values": {block["block_id"]: {"value": {"type": "plain_text_input",
                                                      "value": values.get(block["block_id"],
                                                                          block["element"]["initial_value"])}}
                        for block in view["blocks"] if block["type"] == "input"}}
    payload = {"type": "view_submission", "team": {"id": TEAM, "domain": "acme"},
               "user": {"id": user, "team_id": TEAM}, "api_app_id": "A0BATON", "token": "x",
               "trigger_id": desk.slack.trigger(),
               "view": {**view, "id": "V0EDIT1", "team_id": TEAM, "state": state}}
    return desk.post(urlencode({"payload": json.dumps(payload)}).encode(),
                     "application/x-www-form-urlencoded")


def written(desk: Desk, contact: str = "101") -> dict[str, Any]:
    return dict(desk.hubspot.portal(PORTAL).objects["contacts"].get(contact, {}))


def updated(desk: Desk, message: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in desk.slack.posts(REVIEW) if m["ts"] == message["ts"])


def ended(message: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in message["blocks"] if b["type"] == "context"
                    for e in b["elements"])


def ephemerals(desk: Desk, user: str) -> list[str]:
    return [str(c.params.get("text")) for c in desk.slack.called("chat.postEphemeral")
            if c.params.get("user") == user]


# -- holding ---------------------------------------------------------------------------------


def test_a_held_draft_blocks_the_workflow_and_writes_nothing_until_approved(review: Desk) -> None:
    message = held(review)
    assert "baton_email_subject" not in written(review)  # nothing reached HubSpot
    assert not review.hubspot.completions  # the workflow waits, blocked
    text = json.dumps(message["blocks"])
    assert "Your next trail" in text and "HubSpot workflow action" in text
    assert "maya@example.net" not in text  # the review channel reads what any channel may
    assert [e["action_id"] for e in
            next(b for b in message["blocks"] if b["type"] == "actions")["elements"]] == \
        ["baton_approve", "baton_edit", "baton_regenerate", "baton_discard"]
    review.drain()  # a second run of the worker posts nothing new
    assert len(review.slack.posts(REVIEW)) == 1


def test_a_draft_not_covered_by_the_rule_is_written_at_once(review: Desk) -> None:
    got = action(review, call("cb-rec"), "reply")  # only emails are held
    assert got.status_code == 200
    review.drain()
    assert not review.slack.posts(REVIEW)
    assert review.hubspot.completions["cb-rec"] == 1


# -- approving -------------------------------------------------------------------------------


def test_approve_clicked_twice_writes_once_and_completes_the_action_once(review: Desk) -> None:
    message = held(review)
    assert click(review, message, "approve", ANN).status_code == 200
    assert click(review, message, "approve", ANN).status_code == 200  # the impatient double click
    review.drain()
    assert written(review)["baton_email_subject"] == "Your next trail"
    assert review.hubspot.completions["cb-1"] == 1
    assert review.hubspot.completed["cb-1"]["hs_execution_state"] == "SUCCESS"
    assert f"Approved by <@{ANN}>" in ended(updated(review, message))
    assert not any(b["type"] == "actions" for b in updated(review, message)["blocks"])
    patches = review.hubspot.calls("PATCH", r"/crm/v3/objects/contacts/101$")
    batch = review.hubspot.calls("POST", r"/crm/v3/objects/contacts/batch/update$")
    assert len(patches) + len(batch) == 1


def test_two_reviewers_approving_at_once_write_once(review: Desk) -> None:
    message = held(review)
    assert click(review, message, "approve", ANN).status_code == 200
    assert click(review, message, "approve", BO).status_code == 200
    decisions = review.jobs("review.decide")
    assert len(decisions) == 2
    barrier = threading.Barrier(2)
    outcomes: list[dict[str, Any]] = []

    def decide(job_id: str) -> None:
        job = review.services.jobs.get(job_id)
        assert job is not None
        barrier.wait()
        outcomes.append(reviews_of(review).decide(job))

    threads = [threading.Thread(target=decide, args=(j.id,)) for j in decisions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum("approved" in o for o in outcomes) == 1
    assert review.hubspot.completions["cb-1"] == 1
    loser = next(o for o in outcomes if "approved" not in o)
    assert "decided first" in loser["said"] or "already" in loser["said"]


def test_a_click_by_someone_who_is_not_a_reviewer_is_refused_with_a_message(review: Desk) -> None:
    message = held(review)
    click(review, message, "approve", EVE)
    review.drain()
    assert any("Only this draft's reviewers" in t for t in ephemerals(review, EVE))
    assert "baton_email_subject" not in written(review) and not review.hubspot.completions
    draft = draft_of(review, updated(review, message))
    assert draft is not None and draft.state == "pending"


def test_an_approval_for_a_record_deleted_since_writes_nothing(review: Desk) -> None:
    message = held(review)
    del review.hubspot.portal(PORTAL).objects["contacts"]["101"]
    click(review, message, "approve", ANN)
    review.drain()
    assert "baton_email_subject" not in written(review)
    assert not review.hubspot.notes_of(PORTAL, "101")
    out = review.hubspot.completed["cb-1"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["errorCode"] == "stale"
    assert "Not written" in ended(updated(review, message))


def test_an_approval_after_the_contact_opted_out_writes_nothing(review: Desk) -> None:
    message = held(review)
    review.hubspot.portal(PORTAL).objects["contacts"]["101"]["hs_email_optout"] = "true"
    click(review, message, "approve", ANN)
    review.drain()
    assert "baton_email_subject" not in written(review)
    assert review.hubspot.completed["cb-1"]["errorCode"] == "stale"
    assert "opted out" in ended(updated(review, message))


def test_a_record_changed_in_the_fields_used_asks_for_a_new_draft(review: Desk) -> None:
    message = held(review)
    review.hubspot.portal(PORTAL).objects["contacts"]["101"]["firstname"] = "Maja"
    click(review, message, "approve", ANN)
    review.drain()
    assert "baton_email_subject" not in written(review) and not review.hubspot.completions
    assert any("changed since this draft" in t and "first_name" in t
               for t in ephemerals(review, ANN))
    draft = draft_of(review, updated(review, message))
    assert draft is not None and draft.state == "pending"  # regenerate or discard it


# -- discarding, expiring --------------------------------------------------------------------


def test_discard_completes_the_action_with_fail_continue(review: Desk) -> None:
    message = held(review)
    click(review, message, "discard", BO)
    review.drain()
    out = review.hubspot.completed["cb-1"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["errorCode"] == "discarded"
    assert "baton_email_subject" not in written(review)
    assert f"Discarded by <@{BO}>" in ended(updated(review, message))
    click(review, message, "approve", ANN)  # a late approve finds it decided
    review.drain()
    assert any("discarded" in t for t in ephemerals(review, ANN))
    assert review.hubspot.completions["cb-1"] == 1


def test_an_expired_draft_ends_the_action_and_a_late_approve_says_so(review: Desk) -> None:
    message = held(review)
    with review.services.store.session.begin() as s:
        s.execute(sa.update(DraftRow).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    click(review, message, "approve", ANN)
    review.drain()
    assert "Expired" in ended(updated(review, message))
    assert review.hubspot.completed["cb-1"]["errorCode"] == "expired"
    assert "baton_email_subject" not in written(review)


def test_the_reconciler_expires_drafts_nobody_decided(review: Desk) -> None:
    held(review)
    with review.services.store.session.begin() as s:
        s.execute(sa.update(DraftRow).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    review.services.dispatcher.reconcile()
    review.services.dispatcher.reconcile()  # a second round makes no second job
    assert len(review.jobs("review.decide")) == 1
    review.drain()
    assert review.hubspot.completed["cb-1"]["errorCode"] == "expired"


# -- editing, regenerating -------------------------------------------------------------------


def test_edit_opens_a_modal_and_the_edited_draft_is_written_and_recorded(review: Desk) -> None:
    message = held(review)
    assert click(review, message, "edit", ANN).status_code == 200
    [opened] = review.slack.called("views.open")  # in the request itself (trigger_id, 3 s)
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "baton_edit"
    body = next(b for b in view["blocks"] if b["block_id"] == "body")
    assert "Summit pack" in body["element"]["initial_value"]
    got = submit(review, view, ANN, body="Hi Maya, the Summit pack is packed and ready for your "
                                        "next trail. Reply and we will hold it for you.")
    assert got.status_code == 200 and not got.data  # the modal closes
    review.drain()
    contact = written(review)
    assert contact["baton_email_body"].startswith("Hi Maya, the Summit pack is packed")
    [copy] = _rows(review, ApprovedCopyRow)
    assert copy.edited and copy.approved_by == ANN and copy.edit_distance > 5
    assert copy.original["body"] != copy.approved["body"]
    [receipt] = [r for r in _rows(review, ReceiptRow) if r.id == copy.receipt_id]
    assert receipt.approved_by == ANN and receipt.edit_distance == copy.edit_distance
    assert review.hubspot.completions["cb-1"] == 1


def test_an_empty_edit_is_answered_in_the_response_and_nothing_is_decided(review: Desk) -> None:
    message = held(review)
    click(review, message, "edit", ANN)
    view = review.slack.called("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    got = submit(review, view, ANN, body="   ")
    assert got.status_code == 200 and got.json["response_action"] == "errors"
    assert "body" in got.json["errors"]
    assert not review.jobs("review.decide")


def test_edit_by_someone_who_is_not_a_reviewer_opens_only_a_refusal(review: Desk) -> None:
    message = held(review)
    click(review, message, "edit", EVE)
    view = review.slack.called("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "callback_id" not in view and "Only this draft's reviewers" in json.dumps(view)


def test_regenerate_replaces_the_draft_and_a_click_on_the_old_one_is_refused(review: Desk) -> None:
    message = held(review)
    review.local.outputs = deque([json.dumps({"subject": "A new trail awaits", "preheader": "For you",
                                        "body": "Hi {first_name}, a new trail awaits your "
                                                "Summit pack."})] * 10)
    click(review, message, "regenerate", BO)
    review.drain()
    now = copy.deepcopy(updated(review, message))
    assert "A new trail awaits" in json.dumps(now["blocks"])
    assert button(now, "approve")["value"].endswith(":2")
    click(review, message, "approve", ANN)  # the old message's button: version 1
    review.drain()
    assert any("replaced by a newer one" in t for t in ephemerals(review, ANN))
    click(review, now, "approve", ANN)
    review.drain()
    assert written(review)["baton_email_subject"] == "A new trail awaits"
    assert review.hubspot.completions["cb-1"] == 1


# -- what is kept ----------------------------------------------------------------------------


def test_approved_copy_outlives_the_retention_but_not_an_erasure(review: Desk) -> None:
    message = held(review)
    click(review, message, "approve", ANN)
    review.drain()
    jobs = Jobs(review.services.store, clock=lambda: datetime.now(UTC) + timedelta(days=400))
    jobs.cleanup()
    [copy] = _rows(review, ApprovedCopyRow)  # the brand's record stays
    assert not _rows(review, DraftRow)  # the decided draft goes with the jobs
    assert copy.subject == "contact:101"
    done = forget(review.services.store, f"hubspot:{PORTAL}", "contact:101")
    assert done["approved_copy"] == 1 and not _rows(review, ApprovedCopyRow)


def reviews_of(desk: Desk) -> Reviews:
    assert desk.services.reviews is not None
    return desk.services.reviews


def _rows(desk: Desk, row: type) -> list[Any]:
    with desk.services.store.session() as s:
        return list(s.scalars(sa.select(row)))


def test_a_slash_command_draft_is_posted_where_it_was_asked_only_once_approved(
        tmp_path: Path, database_url: str | None) -> None:
    rule = APPROVALS.replace('sources = ["hubspot.action"]', 'sources = ["slack.command"]')
    with desk_with(tmp_path, database_url, rule) as desk:
        desk.slack.add_channel(TEAM, REVIEW)
        assert desk.command("email maya@example.net").status_code == 200
        desk.drain()
        assert not desk.slack.posts("C1")  # held: nothing in the asking channel yet
        [message] = copy.deepcopy(desk.slack.posts(REVIEW))
        assert "/baton command" in message["text"]
        click(desk, message, "approve", BO)
        desk.drain()
        [posted] = desk.slack.posts("C1")
        assert "Your next trail" in json.dumps(posted["blocks"])


def test_a_review_channel_baton_cannot_reach_fails_the_action_at_once(
        tmp_path: Path, database_url: str | None) -> None:
    rule = APPROVALS.replace(f'workspace = "{TEAM}"', 'workspace = "T0ELSEWHERE"')
    with desk_with(tmp_path, database_url, rule, hubspot_settings={"sync_budget": 0.0}) as desk:
        assert action(desk, call("cb-x")).status_code == 200
        desk.drain()
        out = desk.hubspot.completed["cb-x"]  # never a BLOCK left to expire
        assert out["hs_execution_state"] == "FAIL_CONTINUE" and "T0ELSEWHERE" in out["error"]
        assert "baton_email_subject" not in written(desk)


# -- what a review must survive (an adversarial read of step 8b) -------------------------------


def test_a_write_hubspot_refuses_is_not_recorded_as_approved(review: Desk) -> None:
    message = held(review)
    del review.hubspot.portal(PORTAL).properties["baton_email_subject"]  # HubSpot answers 400
    click(review, message, "approve", ANN)
    review.drain()
    draft = Drafts(review.services.store).get(button(message, "approve")["value"].split(":")[0])
    assert draft is not None and draft.state == "failed"
    assert not _rows(review, ApprovedCopyRow)  # no approved copy of what was never written
    assert not any(r.approved_by for r in _rows(review, ReceiptRow))
    assert "the write failed" in ended(updated(review, message))
    out = review.hubspot.completed["cb-1"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["errorCode"] == "crm_refused"
    [job] = review.jobs("hubspot.action")
    assert job.state == "failed"


def test_an_erasure_during_the_decision_keeps_nothing_and_writes_nothing(review: Desk) -> None:
    message = held(review)
    hubspot = review.services.connectors.get("hubspot")
    prepare = hubspot.prepare

    def erased_first(jobs: list[Any]) -> list[Any]:  # the contact is erased as the record is read
        forget(review.services.store, f"hubspot:{PORTAL}", "contact:101")
        return prepare(jobs)

    hubspot.prepare = erased_first  # type: ignore[method-assign]
    click(review, message, "approve", ANN)
    review.drain()
    assert "baton_email_subject" not in written(review)
    assert not _rows(review, ApprovedCopyRow) and not _rows(review, DraftRow)


def test_a_decision_that_died_gives_its_claim_back(review: Desk) -> None:
    message = held(review)
    review.hubspot.inject(503, 100, path=r"/crm/v3/objects/contacts/101")  # the record can't be read
    click(review, message, "approve", ANN)
    review.drain()
    review.hubspot.failures.clear()
    [decision] = review.jobs("review.decide")
    draft = draft_of(review, updated(review, message))
    assert draft is not None and draft.state == "approving"  # its job waits for a retry
    with review.services.store.session.begin() as s:  # ... which never comes: the job is dead
        s.execute(sa.update(JobRow).where(JobRow.id == decision.id).values(state="dead"))
    review.services.dispatcher.reconcile()
    draft = draft_of(review, updated(review, message))
    assert draft is not None and draft.state == "pending"
    click(review, message, "discard", BO)
    review.drain()
    assert review.hubspot.completed["cb-1"]["errorCode"] == "discarded"


def test_an_expiry_whose_answer_failed_once_finishes_on_its_retry(review: Desk) -> None:
    message = held(review)
    with review.services.store.session.begin() as s:
        s.execute(sa.update(DraftRow).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    review.hubspot.inject(503, 8, path="/automation/.*")
    click(review, message, "approve", ANN)  # too late: it expires the draft, and HubSpot is down
    review.drain()
    assert not review.hubspot.completions
    review.hubspot.failures.clear()
    retry_now(review.services)
    assert review.hubspot.completed["cb-1"]["errorCode"] == "expired"
    assert "Expired" in ended(updated(review, message))


def test_a_regenerated_draft_whose_message_was_not_updated_is_shown_on_the_next_click(
        review: Desk) -> None:
    message = held(review)
    slack = review.services.connectors.get("slack")
    show = slack.show
    calls = {"n": 0}

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise PlatformUnavailable("Slack chat.update: ratelimited")
        return show(*args, **kwargs)

    slack.show = fails_once  # type: ignore[attr-defined]
    click(review, message, "regenerate", BO)
    review.drain()
    assert button(updated(review, message), "approve")["value"].endswith(":1")  # not updated
    click(review, message, "approve", ANN)
    review.drain()
    assert any("replaced by a newer one" in t for t in ephemerals(review, ANN))
    assert button(updated(review, message), "approve")["value"].endswith(":2")  # shown now


def test_the_edit_modal_is_masked_for_the_review_channel_and_only_for_its_workspace(
        review: Desk) -> None:
    message = held(review)
    click(review, message, "edit", ANN)
    view = review.slack.called("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "maya@example.net" not in json.dumps(view)
    review.slack.add_workspace("T0OTHER")  # Baton is installed in another workspace too
    review.connector.connect(review.slack.workspaces["T0OTHER"].token)
    payload_team = {"type": "block_actions", "team": {"id": "T0OTHER"}, "user": {"id": ANN},
                    "trigger_id": review.slack.trigger(), "channel": {"id": REVIEW},
                    "actions": [{**button(message, "edit"), "type": "button",
                                 "block_id": "b", "action_ts": "1.2"}]}
    review.post(urlencode({"payload": json.dumps(payload_team)}).encode(),
                "application/x-www-form-urlencoded")
    assert len(review.slack.called("views.open")) == 2
    other = review.slack.called("views.open")[-1].params["view"]
    other = json.loads(other) if isinstance(other, str) else other
    assert "callback_id" not in other and "Only this draft's reviewers" in json.dumps(other)


def test_an_edit_is_filed_under_the_contact_so_an_erasure_finds_it(review: Desk) -> None:
    message = held(review)
    click(review, message, "edit", ANN)
    view = review.slack.called("views.open")[0].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    submit(review, view, ANN, body="Hi Maya, a private note for maya@example.net only.")
    [decision] = review.jobs("review.decide")
    assert decision.tenant == f"hubspot:{PORTAL}" and decision.subject == "contact:101"
    forget(review.services.store, f"hubspot:{PORTAL}", "contact:101")
    [decision] = review.jobs("review.decide")
    assert decision.payload == {"erased": True}


def test_two_values_of_one_field_keep_their_own_placeholders(review: Desk) -> None:
    from tests.core.test_review import result
    slack = review.services.connectors.get("slack")
    res = result(body="x", phones=["+47 22 33 44 55", "+47 55 66 77 88"])
    text = "Oslo +47 22 33 44 55, Bergen +47 55 66 77 88"
    shown, restore = slack._masked(TEAM, res.task, text)  # type: ignore[attr-defined]
    assert "+47" not in shown
    back = re.sub(r"\{[a-z0-9_]+\}", lambda m: restore.get(m.group(0), m.group(0)), shown)
    assert back == text

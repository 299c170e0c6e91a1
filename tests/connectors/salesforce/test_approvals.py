"""Step 8b with Salesforce: an outbound message's draft and a Flow call's (answered 202) reach the
record, its fields and its Task, only once a reviewer approves them in Slack. The real
simple-salesforce against the fake org (``responses``), the real slack-bolt and slack_sdk against
the loopback fake Slack, the real inbox, queue and store on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from connectors.signatures import slack_v0
from connectors.slack.connector import SlackConnector
from connectors.slack.settings import SlackSettings
from core.credentials.apikeys import ApiKeys
from tests.connectors.salesforce.conftest import Org, make_org
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.slack import FakeSlack

TEAM, REVIEW, ANN = "T0BATON01", "C0REVIEW", "U0ANN"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Reviewed:
    org: Org
    slack: FakeSlack

    def click(self, verb: str, user: str = ANN, message: dict[str, Any] | None = None) -> None:
        """A click on the review message (``message``: as the reviewer's Slack showed it)."""
        message = message or self.slack.posts(REVIEW)[-1]
        [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
        b = next(e for e in actions["elements"] if e["action_id"] == f"baton_{verb}")
        payload = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": user},
                   "trigger_id": self.slack.trigger(), "channel": {"id": REVIEW},
                   "container": {"type": "message", "message_ts": message["ts"]},
                   "actions": [{"action_id": b["action_id"], "value": b["value"], "type": "button",
                                "block_id": "b", "action_ts": f"{time.time():.6f}"}]}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()))
        got = self.org.client.post("/slack/events", data=body,
                                   content_type="application/x-www-form-urlencoded",
                                   headers={"X-Slack-Request-Timestamp": stamp,
                                            "X-Slack-Signature": slack_v0(SIGNING, stamp, body)})
        assert got.status_code == 200


def policy(org_id: str, sources: str) -> str:
    return f"""
[[routes]]
name = "local"
action = "local"

[slack.workspaces.{TEAM}]
tenants = ["salesforce:{org_id[:15]}"]

[[approvals]]
sources = [{sources}]
workspace = "{TEAM}"
channel = "{REVIEW}"
reviewers = ["{ANN}"]
"""


@pytest.fixture
def reviewed(tmp_path: Path, database_url: str | None) -> Iterator[Reviewed]:
    with FakeSlack() as slack:
        slack.add_workspace(TEAM)
        slack.add_channel(TEAM, REVIEW)
        config = tmp_path / "baton.toml"
        own = SlackSettings(signing_secret=SIGNING, api_url=slack.api_url,  # type: ignore[arg-type]
                            response_hosts="127.0.0.1")
        config.write_text(policy(FakeSalesforce.org_id,
                                 '"salesforce.notification", "salesforce.action"'), encoding="utf-8")
        for org in make_org(tmp_path, database_url, config=config, slack=own, sync_budget=0.0):
            slack_of(org).connect(slack.workspaces[TEAM].token)
            org.connect()
            yield Reviewed(org, slack)


def slack_of(org: Org) -> SlackConnector:
    return org.services.connectors.get("slack")  # type: ignore[return-value]


def test_an_outbound_message_is_written_with_its_task_only_after_approval(reviewed: Reviewed) -> None:
    org = reviewed.org
    lead = org.lead(1, FirstName="Zoë")
    assert org.outbound([("04l5g0000001", "Lead", {"Id": lead})]).status_code == 200
    org.drain()
    record = org.fake.get("Lead", lead) or {}
    assert not record.get("Baton_Email_Body__c") and not org.fake.tasks()  # held
    [message] = copy.deepcopy(reviewed.slack.posts(REVIEW))
    assert "Salesforce outbound message" in message["text"]
    reviewed.click("approve")
    org.drain()
    record = org.fake.get("Lead", lead) or {}
    assert "Zoë" in record["Baton_Email_Body__c"]
    [task] = org.fake.tasks()
    assert task["WhoId"] == lead and task["Status"] == "Completed"
    reviewed.click("approve", message=message)  # clicked again: nothing more
    org.drain()
    assert len(org.fake.tasks()) == 1


def test_a_flow_call_answered_202_is_written_by_baton_on_approval(reviewed: Reviewed) -> None:
    org = reviewed.org
    lead = org.lead(2, FirstName="Kenji")
    key = ApiKeys(org.services.store).create("salesforce", org.fake.org_id)[1]
    r = org.client.post("/salesforce/actions/email", content_type="application/json",
                        data=json.dumps({"recordId": lead, "writeBack": True, "requestId": "f-1",
                                         "brief": "A short note that suggests a next step."}),
                        headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.json
    org.drain()
    polled = org.client.get(r.json["poll_url"], headers={"Authorization": f"Bearer {key}"})
    assert polled.json["state"] == "held"
    assert not (org.fake.get("Lead", lead) or {}).get("Baton_Email_Body__c")
    reviewed.click("approve")
    org.drain()
    polled = org.client.get(r.json["poll_url"], headers={"Authorization": f"Bearer {key}"})
    assert polled.json["state"] == "done" and polled.json["result"]["written"] is True
    assert "Kenji" in (org.fake.get("Lead", lead) or {})["Baton_Email_Body__c"]
    assert len(org.fake.tasks()) == 1


def test_a_discarded_flow_call_ends_failed_and_writes_nothing(reviewed: Reviewed) -> None:
    org = reviewed.org
    lead = org.lead(3)
    key = ApiKeys(org.services.store).create("salesforce", org.fake.org_id)[1]
    r = org.client.post("/salesforce/actions/email", content_type="application/json",
                        data=json.dumps({"recordId": lead, "writeBack": True, "requestId": "f-2",
                                         "brief": "A short note that suggests a next step."}),
                        headers={"Authorization": f"Bearer {key}"})
    org.drain()
    reviewed.click("discard")
    org.drain()
    polled: Any = org.client.get(r.json["poll_url"], headers={"Authorization": f"Bearer {key}"}).json
    assert polled["state"] == "failed" and "discarded" in polled["error"]
    assert not (org.fake.get("Lead", lead) or {}).get("Baton_Email_Body__c") and not org.fake.tasks()

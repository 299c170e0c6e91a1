"""Custom workflow actions: answered in the response within the sync budget, else BLOCK and a
callback completion; one job and one completion per callbackId; clear 4xx for client mistakes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.delivery.replies import Replies
from core.errors import ConfigError, GenerationError, QuotaExhaustedError, TransientBackendError
from core.store import JobRow, ReplyRow
from tests.connectors.hubspot.conftest import PORTAL, Hub, call, hubspot_of


def test_action_is_answered_synchronously_with_the_outputs(hub: Hub) -> None:
    r = hub.action("email", call("ap-1-1"))
    assert r.status_code == 200, r.json
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "SUCCESS"
    assert out["subject"] == "Your next trail"
    assert out["body"].startswith("Hi Maya,")  # the placeholder restored with the real name
    assert out["route"] == "local" and len(out["receipt_id"]) == 32
    assert set(out) <= set(hub.connector.specs["email"].outputs) | {"hs_execution_state"}
    contact = hub.fake.portal(PORTAL).objects["contacts"]["101"]
    assert contact["baton_email_subject"] == "Your next trail"
    assert contact["baton_last_receipt"] == out["receipt_id"]
    [note] = hub.fake.notes_of(PORTAL, "101")
    assert out["receipt_id"] in note["hs_note_body"]
    assert not hub.fake.completions  # answered in the response: no callback as well
    prompt = hub.local.prompts[-1].text
    assert "Summit 40L backpack" in prompt and "Trail socks x3" in prompt  # purchase history
    assert "last_purchase=Summit 40L backpack" in prompt  # the newest line item
    assert "Fjord & Field" in prompt  # the associated company
    assert "Maya" not in prompt  # the name is masked, even for the local model's prompt


def test_v2_signatures_are_accepted_and_bad_ones_refused(hub: Hub) -> None:
    assert hub.action("email", call("ap-1-2"), version="v2").status_code == 200
    r = hub.action("email", call("ap-1-3"), secret="wrong")
    assert r.status_code == 401 and not hub.jobs("hubspot.action")[1:]


def test_slow_job_blocks_then_completes_through_the_callback(queued_hub: Hub) -> None:
    hub = queued_hub
    r = hub.action("email", call("ap-2-1"))
    assert r.status_code == 200
    assert r.json["outputFields"] == {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P1D"}
    assert hub.drain() >= 1
    assert hub.fake.completions["ap-2-1"] == 1
    done = hub.fake.completed["ap-2-1"]
    assert done["hs_execution_state"] == "SUCCESS" and done["subject"] == "Your next trail"
    assert done["receipt_id"] == hub.jobs("hubspot.action")[0].result["outputs"]["receipt_id"]


def test_the_same_callback_twice_makes_one_job_and_one_completion(queued_hub: Hub) -> None:
    hub = queued_hub
    first, second = hub.action("email", call("ap-3-1")), hub.action("email", call("ap-3-1"))
    assert first.json == second.json and first.json["outputFields"]["hs_execution_state"] == "BLOCK"
    hub.drain()
    assert len(hub.jobs("hubspot.action")) == 1
    assert hub.fake.completions["ap-3-1"] == 1
    assert len(hub.fake.notes_of(PORTAL, "101")) == 1
    third = hub.action("email", call("ap-3-1"))  # a late redelivery: same answer, nothing new
    hub.drain()
    assert third.json == first.json and hub.fake.completions["ap-3-1"] == 1


def test_ready_callbacks_are_completed_in_one_batch(queued_hub: Hub) -> None:
    hub = queued_hub
    for i in range(3):
        assert hub.action("email", call(f"ap-4-{i}")).status_code == 200
    # the callbacks API is down while the three jobs finish (each tries twice to complete)
    hub.fake.inject(503, 6, path="/automation/.*")
    hub.drain()
    assert not hub.fake.completions
    assert {j.state for j in hub.jobs("hubspot.action")} == {"queued"}  # to be retried, not lost
    flushed = hub.connector.complete(str(PORTAL))  # the API is back: the next flush sends them all
    assert flushed == 3 and hub.fake.completion_calls[-1] == ["ap-4-0", "ap-4-1", "ap-4-2"]
    assert hub.fake.calls("POST", "/automation/v4/actions/callbacks/complete")
    generated = len(hub.local.prompts)
    hub.retry_now()  # the retries find the outputs and the callbacks done: no second generation
    assert {j.state for j in hub.jobs("hubspot.action")} == {"done"}
    assert len(hub.local.prompts) == generated and sum(hub.fake.completions.values()) == 3


def test_generation_that_finally_fails_continues_the_workflow_with_the_reason(hub: Hub) -> None:
    r = hub.action("email", call("ap-5-1", contact="999"))  # no such contact
    assert r.status_code == 200
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and "not found" in out["error"]


@pytest.mark.parametrize(("body", "code", "reason"), [
    ({**call("x-2"), "inputFields": {"tier": "routine"}}, "missing_input",
     "missing required input field(s): brief"),
    (call("x-2b", brief="   "), "missing_input", "missing required input field(s): brief"),
    ({**call("x-3"), "object": {"objectId": 1, "objectType": "COMPANY"}}, "unsupported_object",
     "not COMPANY"),
    (call("x-4", tier="urgent"), "invalid_input", "input field tier: expected one of critical, routine"),
    (call("x-7", language="de-DE"), "unsupported_language", "no brand voice for the language 'de-DE'"),
    (call("x-5", portal=8), "not_connected", "portal 8 is not connected"),
])
def test_content_baton_cannot_run_is_fail_continue_with_its_code(hub: Hub, body: object, code: str,
                                                                 reason: str) -> None:
    """HubSpot shows no reason for a 4xx: the workflow history shows the errorCode's rule."""
    r = hub.action("email", body)  # type: ignore[arg-type]
    assert r.status_code == 200, r.json
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["errorCode"] == code
    assert reason in out["error"]
    assert not hub.jobs("hubspot.action") and not hub.fake.requests


def test_languages_reduce_to_their_base_and_tones_match_in_any_case(hub: Hub) -> None:
    r = hub.action("email", call("x-8", language="EN_us", tone="FRIENDLY"))
    assert r.json["outputFields"]["hs_execution_state"] == "SUCCESS", r.json
    [job] = hub.jobs("hubspot.action")
    assert job.payload["inputs"]["language"] == "en" and job.payload["inputs"]["tone"] == "friendly"


@pytest.mark.parametrize(("action", "body", "status", "reason"), [
    ("send", call("x-1"), 404, "unknown action 'send'"),
    ("email", {"callbackId": "x-6"}, 400, "origin.portalId must be an integer"),
    ("email", call("x-\x00"), 400, "no NUL"),  # PostgreSQL text cannot hold it
    ("email", b"{not json", 400, "malformed JSON"),
    ("email", [1, 2], 400, "expected a JSON object"),
])
def test_client_mistakes_are_clear_4xx_and_make_no_job(hub: Hub, action: str, body: object,
                                                       status: int, reason: str) -> None:
    r = hub.action(action, body)  # type: ignore[arg-type]
    assert r.status_code == status and reason in r.json["reason"], r.json
    assert not hub.jobs("hubspot.action") and not hub.fake.requests


def test_the_reply_race_has_exactly_one_winner(hub: Hub) -> None:
    replies = Replies(hub.services.store)
    replies.open("k1", platform="hubspot", account="7")
    row = replies.give_up("k1")
    assert row is not None and row.reply == "later"
    assert replies.answer("k1", {"a": "1"}) is False  # lost: the outputs wait for the callback
    assert replies.get("k1").state == "ready"
    replies.open("k2", platform="hubspot", account="7")
    assert replies.answer("k2", {"a": "2"}) is True
    row = replies.give_up("k2")
    assert row is not None and row.reply == "sync" and row.outputs == {"a": "2"}
    claimed = replies.claim("hubspot", "7", lease=timedelta(minutes=5))
    assert [r.key for r in claimed] == ["k1"]
    assert replies.claim("hubspot", "7", lease=timedelta(minutes=5)) == []


def add_products(hub: Hub) -> None:
    products = hub.fake.portal(PORTAL)
    products.add("products", "801", name="Rain cover 40L", hs_sku="RC-40", description="Fits 35-45L packs")
    products.add("products", "802", name="Summit 40L backpack", hs_sku="SB-40")
    products.add("products", "803", name="Ridge trekking poles", hs_sku="TP-200")


def test_recommend_picks_from_the_product_library(hub: Hub) -> None:
    add_products(hub)
    hub.local.outputs.appendleft(json.dumps({
        "picks": [{"product": "Rain cover 40L", "reason": "Keeps the Summit pack dry."}],
        "message": "Hi {first_name}, a rain cover for your Summit pack."}))
    r = hub.action("recommend", call("ap-6-1", brief=""))
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "SUCCESS", out
    assert out["recommendations"] == "Rain cover 40L (RC-40): Keeps the Summit pack dry."
    assert out["body"] == "Hi Maya, a rain cover for your Summit pack."
    contact = hub.fake.portal(PORTAL).objects["contacts"]["101"]
    assert contact["baton_recommendations"] == out["recommendations"]
    schema = hub.local.schemas[-1]["properties"]["picks"]["items"]["properties"]["product"]
    assert schema["enum"] == ["Rain cover 40L", "Ridge trekking poles"]  # the backpack is owned


def test_recommend_without_products_fails_continue_with_the_fix(hub: Hub) -> None:
    out = hub.action("recommend", call("ap-6-2")).json["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and "add products" in out["error"]


def test_reply_answers_the_question_in_the_brief(hub: Hub) -> None:
    hub.local.outputs.appendleft(json.dumps({
        "body": "Hi {first_name},\n\nA new buckle is on its way today; it clips onto the Summit "
                "belt without tools, and the old one can go in the recycling."}))
    r = hub.action("reply", call("ap-7-1", brief="My hip belt buckle broke, can I get a new one?"))
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "SUCCESS" and out["body"].startswith("Hi Maya,")
    assert hub.fake.portal(PORTAL).objects["contacts"]["101"]["baton_reply"] == out["body"]
    assert "hip belt buckle broke" in hub.local.prompts[-1].text


def test_an_action_whose_retries_run_out_completes_with_fail_continue(queued_hub: Hub) -> None:
    hub = queued_hub
    hub.action("email", call("ap-8-1"))
    hub.fake.inject(503, 1000, path=r"/crm/v3/objects/contacts/\d+")  # HubSpot keeps failing
    hub.drain()
    for _ in range(10):
        [job] = hub.jobs("hubspot.action")
        if job.state != "queued":
            break
        hub.retry_now()
    assert job.state == "done" and job.attempts == job.max_attempts
    done = hub.fake.completed["ap-8-1"]  # the workflow is told, not left waiting for a day
    assert done["hs_execution_state"] == "FAIL_CONTINUE" and "gave up after 5 attempts" in done["error"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    JSONISH,
    st.fixed_dictionaries({"callbackId": JSONISH, "origin": st.one_of(JSONISH, st.fixed_dictionaries(
        {"portalId": st.one_of(st.just(PORTAL), JSONISH)})), "object": JSONISH, "inputFields": JSONISH}),
))
def test_fuzzed_signed_action_bodies_never_cause_a_5xx(hub: Hub, body: object) -> None:
    r = hub.action("email", json.dumps(body).encode())
    assert r.status_code in (200, 400, 403), r.json


@pytest.mark.parametrize("refusal", [400, 404])
def test_a_refused_batch_is_completed_one_by_one_and_the_refused_set_aside(queued_hub: Hub,
                                                                          refusal: int) -> None:
    hub = queued_hub
    for i in range(3):
        assert hub.action("email", call(f"ap-9-{i}")).status_code == 200
    hub.fake.inject(503, 6, path="/automation/.*")  # callbacks pile up while the API is down
    hub.drain()
    hub.fake.refused_callbacks.add("ap-9-1")  # HubSpot no longer knows this one
    hub.fake.refusal_status = refusal  # 400, or 404 for an id it does not know
    assert hub.connector.complete(str(PORTAL)) == 2
    assert set(hub.fake.completed) == {"ap-9-0", "ap-9-2"}
    assert hub.fake.completion_calls[0] == ["ap-9-0", "ap-9-1", "ap-9-2"]  # the batch, refused
    replies = {k: Replies(hub.services.store).get(f"hubspot:{PORTAL}:ap-9-{k}") for k in range(3)}
    assert replies[1] is not None and replies[1].state == "refused"
    calls = len(hub.fake.completion_calls)
    assert hub.connector.complete(str(PORTAL)) == 0  # never resent
    assert len(hub.fake.completion_calls) == calls


def test_a_callback_past_its_block_expiry_is_dropped_with_a_log_line(
        queued_hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub = queued_hub
    assert hub.action("email", call("ap-10-1")).status_code == 200
    with hub.services.store.session.begin() as s:  # it has waited two days (BLOCK expires: P1D)
        s.execute(sa.update(ReplyRow).values(created_at=datetime.now(UTC) - timedelta(days=2)))
    with caplog.at_level(logging.WARNING, logger="baton.hubspot"):
        hub.drain()
    assert not hub.fake.completion_calls and not hub.fake.completed
    row = Replies(hub.services.store).get(f"hubspot:{PORTAL}:ap-10-1")
    assert row is not None and row.state == "expired"
    assert any("expired" in r.getMessage() for r in caplog.records)


def test_waiting_actions_never_take_every_web_thread(tmp_path: Path, database_url: str | None) -> None:
    """With two web threads, one action may wait for its job; a second answers BLOCK at once
    rather than take the thread a webhook needs. The job is held (the queue is not drained) until
    the test releases it: no clock decides the outcome."""
    from tests.connectors.hubspot.conftest import make_hub

    with contextmanager(make_hub)(tmp_path, database_url, immediate=False, web_threads=2,
                                  hubspot_sync_budget=20.0) as hub:
        answers: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: answers.__setitem__(
            "first", hub.action("email", call("ap-11-1")).json))
        waiter.start()
        waits = hub.services.sync_waits
        for _ in range(2000):  # until the first request holds the only slot
            if waits.busy == 1:
                break
            threading.Event().wait(0.005)
        assert waits.busy == 1 and waits.slots == 1
        second = hub.action("email", call("ap-11-2"))
        assert second.json["outputFields"]["hs_execution_state"] == "BLOCK"  # at once
        webhook = hub.webhook([{"eventId": 77, "subscriptionId": 1, "portalId": PORTAL,
                                "objectId": 101, "subscriptionType": "contact.deletion"}])
        assert webhook.status_code == 200
        hub.drain()  # the jobs run: the waiting request answers with its outputs
        waiter.join(30)
        assert answers["first"]["outputFields"]["hs_execution_state"] == "SUCCESS"
        assert waits.busy == 0


def test_a_403_on_completion_keeps_the_callbacks_for_later(queued_hub: Hub) -> None:
    """A 401/403 is about the app's access, not the callbacks: they are never set aside for it."""
    hub = queued_hub
    for i in range(2):
        assert hub.action("email", call(f"ap-12-{i}")).status_code == 200
    hub.fake.inject(503, 4, path="/automation/.*")
    hub.drain()
    hub.fake.inject(403, 1, path="/automation/.*")
    with pytest.raises(Exception, match="403"):
        hub.connector.complete(str(PORTAL))
    states = {Replies(hub.services.store).get(f"hubspot:{PORTAL}:ap-12-{i}").state
              for i in range(2)}
    assert states == {"ready"}
    assert hub.connector.complete(str(PORTAL)) == 2  # access mended: both completed


def test_a_portal_without_batons_properties_gets_crm_refused(hub: Hub) -> None:
    """HubSpot refuses a PATCH of properties that do not exist (setup was never run)."""
    hub.fake.portal(PORTAL).properties.clear()
    r = hub.action("email", call("ap-13-1"))
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["errorCode"] == "crm_refused"
    assert "PROPERTY_DOESNT_EXIST" in out["error"] or "400" in out["error"]
    assert "baton_email_body" not in hub.fake.portal(PORTAL).objects["contacts"]["101"]


def test_a_token_without_a_scope_is_refused_as_hubspot_refuses_it(hub: Hub) -> None:
    from tests.connectors.hubspot.conftest import TOKEN
    from tests.fakes.hubspot import ALL_SCOPES

    hub.fake.scopes[TOKEN] = ALL_SCOPES - {"e-commerce"}  # no product library
    r = hub.action("recommend", call("ap-14-1"))
    out = r.json["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and "403" in out["error"]
    hub.fake.scopes[TOKEN] = ALL_SCOPES - {"crm.objects.contacts.write"}
    out = hub.action("email", call("ap-14-2")).json["outputFields"]
    assert out["errorCode"] == "crm_refused" and "403" in out["error"]


def test_concurrent_flushes_complete_each_callback_once(queued_hub: Hub) -> None:
    """Several worker threads flush the same portal at once: each ready callback is claimed by
    one of them and completed exactly once (the fake refuses a second completion)."""
    hub = queued_hub
    for i in range(12):
        assert hub.action("email", call(f"ap-15-{i}")).status_code == 200
    hub.fake.inject(503, 24, path="/automation/.*")  # they pile up ready while the API is down
    hub.drain()
    hub.fake.failures.clear()
    barrier = threading.Barrier(4)
    sent: list[int] = []

    def flush() -> None:
        barrier.wait()
        for _ in range(3):
            sent.append(hub.connector.complete(str(PORTAL)))

    threads = [threading.Thread(target=flush) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(sent) == 12
    assert sorted(hub.fake.completions) == sorted(f"ap-15-{i}" for i in range(12))
    assert set(hub.fake.completions.values()) == {1}


def _flush_elsewhere(settings: Any, hubspot: Any, ready: Any, go: Any, sent: Any) -> None:
    """A second worker process: its own interpreter, engine, connections and HTTP pool, with the
    same HubSpot settings (passed, not read from an environment the test never set)."""
    from baton.wiring import build_services

    services = build_services(settings, immediate=True, connector_settings={"hubspot": hubspot})
    ready.set()
    go.wait(30)
    sent.put(sum(hubspot_of(services).complete(str(PORTAL)) for _ in range(3)))
    services.store.close()


def test_two_processes_flushing_at_once_complete_each_callback_once(queued_hub: Hub) -> None:
    """Two worker processes flush the same portal at the same moment (SQLite and PostgreSQL):
    the claim is in the database, so each callback is completed once, by one of them."""
    hub = queued_hub
    for i in range(16):
        assert hub.action("email", call(f"ap-16-{i}")).status_code == 200
    hub.fake.inject(503, 32, path="/automation/.*")
    hub.drain()
    hub.fake.failures.clear()
    assert not hub.fake.completions  # all sixteen wait, ready, for a flush
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    other = ctx.Process(target=_flush_elsewhere,
                        args=(hub.services.settings, hub.connector.settings, ready, go, out))
    other.start()
    try:
        assert ready.wait(60)
        go.set()
        here = sum(hub.connector.complete(str(PORTAL)) for _ in range(3))
        there = out.get(timeout=60)
    finally:
        other.join(60)
    assert other.exitcode == 0
    assert here + there == 16
    assert sorted(hub.fake.completions) == sorted(f"ap-16-{i}" for i in range(16))
    assert set(hub.fake.completions.values()) == {1}


@pytest.mark.parametrize(("error", "code"), [
    (ConfigError("BATON_MODEL_PATH: no such file"), "unavailable"),
    (QuotaExhaustedError("the cloud budget of this month is spent"), "unavailable"),
    (GenerationError("every candidate failed its checks"), "generation_failed"),
])
def test_what_the_runner_will_not_retry_is_answered_at_once(hub: Hub, error: Exception,
                                                            code: str) -> None:
    """The workflow gets FAIL_CONTINUE with the reason on the first attempt; a job that fails
    for good never leaves the action waiting in BLOCK until it expires."""
    job = JobRow(id="j", kind="hubspot.action", tenant=f"hubspot:{PORTAL}", attempts=1,
                 max_attempts=5, payload={"reply_key": f"hubspot:{PORTAL}:cb"})
    out = hub.connector.answer(job, error)
    assert out is not None and out["hs_execution_state"] == "FAIL_CONTINUE"
    assert out["errorCode"] == code and str(error) in out["error"]
    assert hub.connector.answer(job, TransientBackendError("503")) is None  # retried first

"""Webhook events become personalized emails written back once; rate limits are respected."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.store import JobRow, WriteBackRow
from tests.connectors.hubspot.conftest import PORTAL, Hub, seed


def event(i: int, kind: str = "contact.creation", contact: str | None = None,
          portal: int = PORTAL, **extra: Any) -> dict[str, Any]:
    return {"eventId": 1000 + i, "subscriptionId": 55, "portalId": portal, "appId": 42,
            "occurredAt": 1795880000000 + i, "subscriptionType": kind, "attemptNumber": 0,
            "objectId": int(contact or 500 + i), "changeSource": "CRM", **extra}


def seed_many(hub: Hub, n: int) -> None:
    for i in range(n):
        seed(hub.fake, contact=str(500 + i), name=f"Ann{i}")


def test_a_batch_of_100_events_makes_100_write_backs_exactly_once(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 100)
    batch = [event(i) for i in range(100)]
    r = hub.webhook(batch)
    assert r.status_code == 200 and r.json == {"accepted": 100, "duplicates": 0}
    hub.drain()
    assert {j.state for j in hub.jobs("hubspot.event")} == {"done"}
    # Each queue message (10 job ids) ran as one engine.run_many: one batched first attempt each.
    assert hub.local.batches == [10] * 10
    assert len(hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+")) == 100
    assert len(hub.fake.calls("POST", "/crm/v3/objects/notes")) == 100
    for i in range(100):
        contact = hub.fake.portal(PORTAL).objects["contacts"][str(500 + i)]
        assert contact["baton_email_body"].startswith(f"Hi Ann{i},")
        assert len(hub.fake.notes_of(PORTAL, str(500 + i))) == 1
    again = hub.webhook(batch)  # HubSpot delivers the batch again
    assert again.json == {"accepted": 0, "duplicates": 100}
    hub.drain()
    assert len(hub.fake.calls("POST", "/crm/v3/objects/notes")) == 100


def test_a_job_rerun_after_a_crash_finds_its_note_instead_of_writing_another(queued_hub: Hub) -> None:
    hub = queued_hub
    hub.fake.search_lag = 0.6  # as HubSpot: a new note is found by search only after a while
    seed_many(hub, 1)
    hub.webhook([event(0)])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    # The worker died after HubSpot created the note but before the outbox recorded it, and
    # before the job was marked done: the reconciler runs it again.
    with hub.services.store.session.begin() as s:
        s.execute(sa.update(WriteBackRow).where(WriteBackRow.job_id == job.id)
                  .values(state="pending", response=None))
        s.execute(sa.update(JobRow).where(JobRow.id == job.id).values(state="queued"))
    hub.retry_now()  # at once: the note is not searchable yet, the retry keeps looking
    assert len(hub.fake.notes_of(PORTAL, "500")) == 1
    assert len(hub.fake.calls("POST", "/crm/v3/objects/notes/search")) >= 2


def test_a_note_that_never_landed_is_written_once_the_search_has_settled(queued_hub: Hub) -> None:
    """The worker died before HubSpot created the note: after the settle time the retry writes
    it (time is the outbox's clock, advanced by its own waits: no test waits for real)."""
    hub = queued_hub
    seed_many(hub, 1)
    outbox = hub.connector.outbox
    now = [datetime.now(UTC)]
    outbox.clock = lambda: now[0]
    outbox.sleep = lambda seconds: now.__setitem__(0, now[0] + timedelta(seconds=seconds))
    hub.webhook([event(0)])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    hub.fake.portal(PORTAL).objects["notes"].clear()  # the create never reached HubSpot
    hub.fake.portal(PORTAL).note_links.clear()
    with hub.services.store.session.begin() as s:
        s.execute(sa.update(WriteBackRow).where(WriteBackRow.job_id == job.id)
                  .values(state="pending", response=None, tried_at=now[0]))
        s.execute(sa.update(JobRow).where(JobRow.id == job.id).values(state="queued"))
    hub.retry_now()
    assert len(hub.fake.notes_of(PORTAL, "500")) == 1
    searches = hub.fake.calls("POST", "/crm/v3/objects/notes/search")
    assert len(searches) >= 60  # it looked for 30 s of its clock, every 0.5 s, before writing


def test_only_creations_and_trigger_properties_start_work(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 4)
    hub.webhook([
        event(0, "contact.propertyChange", propertyName="baton_generate", propertyValue="true"),
        event(1, "contact.propertyChange", propertyName="baton_generate", propertyValue="false"),
        event(2, "contact.propertyChange", propertyName="lastname", propertyValue="X"),
        {**event(3), "eventType": "contact.deletion", "subscriptionType": None},
    ])
    hub.drain()
    results = {j.payload["objectId"]: j.result for j in hub.jobs("hubspot.event")}
    assert results[500]["trigger"] == "baton_generate set"
    assert results[501] == {"skipped": "contact.propertyChange baton_generate"}
    assert results[502] == {"skipped": "contact.propertyChange lastname"}
    assert results[503] == {"skipped": "contact.deletion"}
    assert len(hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+")) == 1
    contact = hub.fake.portal(PORTAL).objects["contacts"]["500"]
    assert contact["baton_generate"] == "false" and contact["baton_email_body"]  # ready to tick again


def test_an_event_for_a_portal_that_is_not_connected_fails_without_touching_hubspot(
        queued_hub: Hub) -> None:
    hub = queued_hub
    hub.webhook([event(0, portal=8, contact="101")])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    assert job.state == "failed" and "portal 8 is not connected" in (job.error or "")
    assert not hub.fake.requests


def test_a_429_storm_is_ridden_out_without_early_requests_or_lost_jobs(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 12)
    hub.webhook([event(i) for i in range(12)])
    hub.fake.inject(429, 5, retry_after=1)
    ids = [j.id for j in hub.jobs("hubspot.event")]
    huey = hub.services.dispatcher.huey  # type: ignore[attr-defined]
    hub.services.dispatcher.pump()
    tasks = []
    while (task := huey.dequeue()) is not None:
        tasks.append(task)
    threads = [threading.Thread(target=huey.execute, args=(t,)) for t in tasks]
    for t in threads:  # the jobs run concurrently, like worker threads
        t.start()
    for t in threads:
        t.join()
    for _ in range(5):  # what ran out of attempts was rescheduled; a worker runs it again
        if {j.state for j in hub.jobs("hubspot.event")} == {"done"}:
            break
        hub.retry_now()
    assert {j.state for j in hub.jobs("hubspot.event")} == {"done"} and len(ids) == 12
    assert hub.fake.early == 0  # nothing was sent to HubSpot before Retry-After had passed
    assert len(hub.fake.calls("POST", "/crm/v3/objects/notes")) == 12


def test_a_note_is_html_with_the_model_text_escaped_and_its_lines_kept(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 1)
    hub.local.outputs.clear()
    hub.local.outputs.extend([json.dumps({
        "subject": "s", "preheader": "p",
        "body": "Hi {first_name},\nsee 'this' & x < y > z <<script"})] * 4)  # tags are refused
    hub.webhook([event(0)])
    hub.drain()
    [note] = hub.fake.notes_of(PORTAL, "500")
    body = note["hs_note_body"]
    assert "<script" not in body and "&lt;&lt;script" in body and "&amp;" in body
    assert "Hi Ann0,<br>see &#x27;this&#x27; &amp; x &lt; y &gt; z" in body


def test_generic_object_events_of_contacts_count_as_contact_events(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 2)
    hub.webhook([{**event(0, "object.creation"), "objectTypeId": "0-1"},
                 {**event(1, "object.propertyChange"), "objectTypeId": "0-1",
                  "propertyName": "baton_generate", "propertyValue": "true"}])
    hub.drain()
    results = {j.payload["objectId"]: j.result for j in hub.jobs("hubspot.event")}
    assert results[500]["trigger"] == "contact created"
    assert results[501]["trigger"] == "baton_generate set"
    assert {j.subject for j in hub.jobs("hubspot.event")} == {"contact:500", "contact:501"}


def test_contacts_created_by_an_import_are_left_alone(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 1)
    hub.webhook([event(0, changeSource="IMPORT")])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    assert "skipped" in job.result and hub.local.prompts == []


def test_batons_own_write_coming_back_never_starts_baton_again(queued_hub: Hub) -> None:
    """A sync or a workflow that re-ticks the trigger after Baton wrote would loop forever."""
    hub = queued_hub
    seed_many(hub, 1)
    hub.webhook([event(0)])
    hub.drain()
    echo = event(1, "contact.propertyChange", contact="500", propertyName="baton_generate",
                 propertyValue="true", changeSource="INTEGRATION", occurredAt=int(time.time() * 1000))
    person = {**echo, "eventId": 2002, "changeSource": "CRM_UI"}
    by_user = {**echo, "eventId": 2003, "changeSource": "SOMETHING_NEW", "sourceId": "userId:98"}
    hub.webhook([echo])
    hub.drain()
    results = {j.payload["eventId"]: j.result for j in hub.jobs("hubspot.event")}
    assert "loop guard" in results[1001]["skipped"]
    hub.webhook([person])  # a person ticking it again does ask again
    hub.drain()
    hub.webhook([by_user])  # known as a person by the sourceId, whatever the source
    hub.drain()
    results = {j.payload["eventId"]: j.result for j in hub.jobs("hubspot.event")}
    assert results[2002]["trigger"] == "baton_generate set"
    assert results[2003]["trigger"] == "baton_generate set"
    assert len(hub.local.prompts) == 3


def test_associations_listed_once_per_label_are_read_once_and_a_207_is_no_failure(
        queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 1)
    p = hub.fake.portal(PORTAL)
    p.link("deals", "301", "line_items", "499")  # a line item that no longer exists: 207
    p.link("contacts", "500", "companies", "201")
    p.link("contacts", "500", "deals", "301")
    hub.webhook([event(0)])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    assert job.state == "done", job.error
    reads = [r for r in hub.fake.requests if r.path == "/crm/v3/objects/line_items/batch/read"]
    ids = [i["id"] for i in reads[0].body["inputs"]]
    assert len(ids) == len(set(ids)) == 3  # 401, 402 and the missing 499, each once
    contact = p.objects["contacts"]["500"]
    assert contact["baton_generated_at"].endswith("Z") and contact["baton_email_body"]


def test_a_rerun_of_a_job_whose_writes_are_all_done_writes_nothing_again(queued_hub: Hub) -> None:
    hub = queued_hub
    seed_many(hub, 1)
    hub.webhook([event(0)])
    hub.drain()
    [job] = hub.jobs("hubspot.event")
    patches = len(hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+"))
    notes = len(hub.fake.calls("POST", "/crm/v3/objects/notes"))
    # The worker died after both writes were recorded done, before the job was: it runs again.
    with hub.services.store.session.begin() as s:
        s.execute(sa.update(JobRow).where(JobRow.id == job.id).values(state="queued"))
    hub.retry_now()
    assert len(hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+")) == patches == 1
    assert len(hub.fake.calls("POST", "/crm/v3/objects/notes")) == notes == 1
    assert hub.fake.calls("POST", "/crm/v3/objects/notes/search") == []  # nothing to look for
    assert hub.jobs("hubspot.event")[0].state == "done"

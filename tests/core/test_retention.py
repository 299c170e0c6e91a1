"""Erasure of one contact's data, purging after the retention period, and SQL parameters kept out
of errors and logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.delivery.outbox import Outbox
from core.delivery.replies import Replies
from core.engine.ledger import Ledger, Receipt
from core.errors import ConfigError, ConsentError
from core.jobs.lifecycle import DONE, FAILED, Jobs, NewJob, purge
from core.retention import (
    ERASED,
    forget,
    subject_for,
)
from core.settings import iso_duration_days, load_settings
from core.store import InboxKey, JobRow, ReplyRow, Store, WriteBackRow

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def receipt(task_id: str, error: str | None) -> Receipt:
    return Receipt(task_id=task_id, tenant="hubspot:1", kind="email", tier="routine", language="en",
                   action="local", role="local", backend="llama", model="g", rule=None,
                   reasons=("local failed (Maya) -> fallback",), status="ok", attempt=1,
                   prompt_tokens=100, completion_tokens=20, cached_tokens=0, latency_ms=5.0,
                   cost_usd=0.001, baseline_cost_usd=0.01, egress=False, error=error)


def test_forget_erases_one_contacts_payloads_drafts_and_writebacks(store: Store) -> None:
    jobs, outbox, replies = Jobs(store), Outbox(store), Replies(store)
    mine = jobs.accept("hubspot", [
        NewJob("e1", "hubspot.event", "hubspot:1", {"objectId": 7}, subject="contact:7"),
        NewJob("a1", "hubspot.action", "hubspot:1", {"reply_key": "hubspot:1:cb1",
                                                     "inputs": {"brief": "Maya's boots"}},
               subject="contact:7"),
        NewJob("e2", "hubspot.event", "hubspot:1", {"objectId": 8}, subject="contact:8"),
        NewJob("e3", "hubspot.event", "hubspot:2", {"objectId": 7}, subject="contact:7"),
    ]).job_ids
    done_job, queued_job, other_contact, other_portal = mine
    jobs.claim(done_job, timedelta(seconds=30))
    outbox.once("hubspot:1:x:note", job_id=done_job, target="t", perform=lambda: {"note_id": "1"},
                find=lambda: None)
    jobs.succeed(done_job, {"output": {"body": "Hi Maya"}})
    replies.open("hubspot:1:cb1", platform="hubspot", account="1")
    Ledger(store).record(receipt(done_job, "lead: must start with 'Hi Maya,'"))

    assert forget(store, "hubspot:1", "contact:7") == {"jobs": 2, "writebacks": 1, "replies": 1,
                                                       "receipts": 1, "drafts": 0,
                                                       "approved_copy": 0}
    done, queued = jobs.get(done_job), jobs.get(queued_job)
    assert done is not None and done.payload == {"erased": True} and done.result is None
    assert done.state == DONE and done.subject is None
    assert queued is not None and queued.state == FAILED and queued.payload == {"erased": True}
    assert _written(outbox.store, "hubspot:1:x:note") is None
    reply = replies.get("hubspot:1:cb1")
    assert reply is not None and reply.outputs is None and reply.state == "done"
    kept = Ledger(store).receipts(task_id=done_job)[0]
    assert kept.error is None and kept.reasons == [] and kept.prompt_tokens == 100
    for untouched in (other_contact, other_portal):  # another contact, another portal's contact 7
        job = jobs.get(untouched)
        assert job is not None and job.payload != {"erased": True}


def test_forget_by_email_finds_every_job_that_mentions_it(store: Store) -> None:
    jobs = Jobs(store)
    ids = jobs.accept("api:acme", [
        NewJob("1", "task", "acme", {"context": {"Email": "Zoë.Ørsted@Example.dk"}}),
        NewJob("2", "task", "acme", {"context": {"notes": "cc zoë.ørsted@example.dk"}},
               subject="record:003000000000001"),
        NewJob("3", "task", "acme", {"context": {"email": "bo@example.dk"}}),
        NewJob("4", "task", "other", {"context": {"email": "zoë.ørsted@example.dk"}}),
    ]).job_ids
    done = forget(store, "acme", subject_for("zoë.ørsted@example.dk"),
                  mentions=["ZOË.ØRSTED@example.dk"])
    assert done["jobs"] == 2
    assert [jobs.get(i).payload == {"erased": True} for i in ids] == [  # type: ignore[union-attr]
        True, True, False, False]


def test_a_running_job_writes_nothing_once_its_contact_is_erased(store: Store) -> None:
    jobs, outbox = Jobs(store), Outbox(store)
    job_id = jobs.accept("h", [NewJob("1", "hubspot.event", "hubspot:1", {}, subject="contact:9")]
                         ).job_ids[0]
    jobs.claim(job_id, timedelta(seconds=30))
    forget(store, "hubspot:1", "contact:9")
    written: list[str] = []
    with pytest.raises(ConsentError, match="nothing more is written"):
        outbox.once("k", job_id=job_id, target="t", perform=lambda: written.append("x") or {},
                    find=lambda: None)
    assert written == [] and _written(outbox.store, "k") is None


def test_purge_deletes_what_outlived_the_retention_and_nothing_newer(store: Store) -> None:
    now = [T0]
    jobs = Jobs(store, clock=lambda: now[0], retention=timedelta(days=30))
    old = jobs.accept("s", [NewJob("1", "k", "t", {"email": "ann@x.com"})]).job_ids[0]
    jobs.claim(old, timedelta(seconds=30))
    Outbox(store, clock=lambda: now[0]).once("w1", job_id=old, target="t",
                                             perform=lambda: {}, find=lambda: None)
    jobs.succeed(old, {"output": "Hi Ann"})
    Replies(store, clock=lambda: now[0]).open("r1", platform="hubspot", account="1")
    now[0] = T0 + timedelta(days=29)
    running = jobs.accept("s", [NewJob("2", "k", "t", {})]).job_ids[0]
    jobs.claim(running, timedelta(days=5))
    fresh = jobs.accept("s", [NewJob("3", "k", "t", {})]).job_ids[0]
    assert jobs.cleanup() == 0
    now[0] = T0 + timedelta(days=31)
    assert purge(store, now[0] - jobs.retention) == {"inbox_keys": 1, "jobs": 1, "writebacks": 1,
                                                     "replies": 1, "drafts": 0}
    assert jobs.get(old) is None
    assert jobs.get(fresh) is not None and jobs.get(running) is not None
    now[0] = T0 + timedelta(days=90)  # a job still running is never purged
    jobs.cleanup()
    assert jobs.get(running) is not None and jobs.get(fresh) is not None
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(WriteBackRow)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(ReplyRow)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxKey)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(JobRow)) == 2


def test_retention_is_never_shorter_than_dedupe_keys_live() -> None:
    assert iso_duration_days("P1D") == 1 and iso_duration_days("PT12H") == 0.5
    assert iso_duration_days("P1W2D") == 9
    assert load_settings(retention_days=7).retention_days == 7
    with pytest.raises(ConfigError, match="BATON_RETENTION_DAYS: at least 7 days"):
        load_settings(retention_days=3)


@pytest.mark.parametrize(("contact", "subject"), [
    ("123", "contact:123"), ("contact:123", "contact:123"),
    ("003000000000001AAA", "record:003000000000001"), ("0035g00000ABCDe", "record:0035g00000ABCDe"),
    ("record:003000000000001AAA", "record:003000000000001"),
])
def test_subjects_of_crm_ids(contact: str, subject: str) -> None:
    assert subject_for(contact) == subject


def test_an_email_subject_is_a_hash_of_the_folded_address() -> None:
    subject = subject_for("Ann.Lee@Example.com")
    assert subject.startswith("email:") and "ann" not in subject
    assert subject_for("ann.lee@example.com") == subject == subject_for("email:ANN.LEE@EXAMPLE.COM")


def test_sql_parameters_stay_out_of_errors_and_logs(store: Store,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    Jobs(store).accept("s", [NewJob(None, "k", "t", {})])
    with store.session() as s:
        job_id = s.scalar(sa.select(JobRow.id))
    row = {"id": job_id, "source": "maya@example.net", "kind": "k", "tenant": "Maya Lindqvist",
           "payload": {}, "state": "queued", "attempts": 0, "max_attempts": 1, "run_after": T0,
           "created_at": T0, "updated_at": T0}
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(sa.exc.IntegrityError) as caught, \
                store.session.begin() as s:
            s.execute(sa.insert(JobRow), [row])  # a duplicate primary key
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    text = str(caught.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert "INSERT INTO jobs" in text
    assert "maya@example.net" not in text and "Lindqvist" not in text


def test_forget_spares_the_erasing_job_finds_results_and_ends_claims(store: Store) -> None:
    """The job doing the erasing is not erased though it mentions the address; a job whose
    only mention is in its result is found; an erased queued job holds no lease and says why;
    a reply whose request never answered is answered ``later``, one answered keeps ``sync``."""
    jobs, replies = Jobs(store), Replies(store)
    eraser, by_result, queued, answered = jobs.accept("s", [
        NewJob("0", "hubspot.event", "acme", {"email": "ann@x.com"}),
        NewJob("1", "task", "acme", {"reply_key": "r1"}),
        NewJob("2", "task", "acme", {"reply_key": "r2", "note": "ann@x.com"}),
        NewJob("3", "task", "acme", {"reply_key": "r3", "note": "ANN@x.com"}),
    ]).job_ids
    jobs.claim(by_result, timedelta(seconds=30))
    jobs.succeed(by_result, {"output": {"body": "sent to ann@x.com"}})
    jobs.claim(answered, timedelta(seconds=30))
    jobs.succeed(answered, {"output": {}})
    for key in ("r1", "r2", "r3"):
        replies.open(key, platform="hubspot", account="1")
    replies.answer("r3", {"x": 1})
    done = forget(store, "acme", "contact:99", mentions=["ann@x.com"], keep_job=eraser)
    assert done == {"jobs": 3, "writebacks": 0, "replies": 3, "receipts": 0, "drafts": 0,
                                                  "approved_copy": 0}
    assert jobs.get(eraser).payload == {"email": "ann@x.com"}  # type: ignore[union-attr]
    assert jobs.get(by_result).payload == {"erased": True}  # type: ignore[union-attr]
    q = jobs.get(queued)
    assert q is not None and q.state == FAILED and q.lease_until is None and q.error == ERASED
    assert jobs.get(by_result).error is None  # type: ignore[union-attr]  # done: no failure
    assert [replies.get(k).reply for k in ("r1", "r2", "r3")] == [  # type: ignore[union-attr]
        "later", "later", "sync"]


def test_forget_with_nothing_to_erase_changes_nothing(store: Store) -> None:
    jobs = Jobs(store)
    kept = jobs.accept("s", [NewJob("1", "k", "acme", {"reply_key": "r"}, subject="contact:1")]
                       ).job_ids[0]
    assert forget(store, "acme", "contact:2") == {"jobs": 0, "writebacks": 0, "replies": 0,
                                                  "receipts": 0, "drafts": 0,
                                                  "approved_copy": 0}
    assert forget(store, "acme", "contact:1") == {"jobs": 1, "writebacks": 0, "replies": 0,
                                                  "receipts": 0, "drafts": 0,
                                                  "approved_copy": 0}  # no reply row was opened
    assert jobs.get(kept).payload == {"erased": True}  # type: ignore[union-attr]
    running = jobs.accept("s", [NewJob("2", "k", "acme", {"n": 1}, subject="contact:3")]).job_ids[0]
    jobs.claim(running, timedelta(seconds=300))
    assert forget(store, "acme", "contact:3") == {"jobs": 1, "writebacks": 0, "replies": 0,
                                                  "receipts": 0, "drafts": 0,
                                                  "approved_copy": 0}  # no reply key at all
    ended = jobs.get(running)
    assert ended is not None and ended.state == FAILED and ended.lease_until is None


def test_purge_keeps_what_is_exactly_as_old_as_the_cutoff(store: Store) -> None:
    now = [T0]
    jobs = Jobs(store, clock=lambda: now[0])
    job = jobs.accept("s", [NewJob("1", "k", "t", {})]).job_ids[0]
    jobs.claim(job, timedelta(seconds=30))
    Outbox(store, clock=lambda: now[0]).once("w", job_id=job, target="t", perform=lambda: {},
                                             find=lambda: None)
    jobs.succeed(job, {})
    Replies(store, clock=lambda: now[0]).open("r", platform="hubspot", account="1")
    assert purge(store, T0) == {"inbox_keys": 0, "jobs": 0, "writebacks": 0, "replies": 0,
                                "drafts": 0}
    assert purge(store, T0 + timedelta(microseconds=1)) == {"inbox_keys": 1, "jobs": 1,
                                                            "writebacks": 1, "replies": 1,
                                                            "drafts": 0}


def test_purge_keeps_a_held_job_and_the_approved_copy_and_drops_decided_drafts(store: Store) -> None:
    from core.review import Drafts, NewDraft
    from tests.core.test_review import result

    jobs = Jobs(store, clock=lambda: T0)
    held, decided = jobs.accept("s", [NewJob("1", "k", "t", {}), NewJob("2", "k", "t", {})]).job_ids
    for job in (held, decided):
        jobs.claim(job, timedelta(seconds=30))
        jobs.hold(job, {"held": "x"})
    drafts = Drafts(store, clock=lambda: T0)
    for job in (held, decided):
        drafts.hold(NewDraft(job_id=job, job_kind="k", tenant="t", subject="contact:1",
                             result=result(), review={"reviewers": ["U1"]}, expires_at=T0))
    done = drafts.of_job(decided)
    assert done is not None and drafts.claim(done.id, "approve", version=1, job_id="d", user="U1")
    drafts.keep_approved(done, {"subject": "Ready", "body": "Hi Zoë, ready."}, by="U1",
                         receipt_id="r")
    drafts.settle(done.id, "approved", "approved by U1", job_id="d")
    assert jobs.settle_held(decided, {"approved": done.id}, None)
    later = T0 + timedelta(days=400)
    assert purge(store, later)["drafts"] == 1  # the decided draft; the waiting one stays
    assert jobs.get(held) is not None and jobs.get(held).state == "held"  # type: ignore[union-attr]
    assert drafts.of_job(held) is not None and drafts.of_job(decided) is None
    assert len(drafts.approved()) == 1  # the brand's record outlives the retention


def test_subjects_of_prefixed_and_unusual_forms() -> None:
    assert subject_for("email:a:b@x.com") == subject_for("a:b@x.com")  # only the first prefix
    assert subject_for("contact:ann@x.com") == "contact:ann@x.com"  # prefixed: passes through
    assert subject_for("note:ann@x.com") != subject_for("ann@x.com")  # not an email prefix
    assert len(subject_for("ann@x.com")) == len("email:") + 40


def _written(store: Store, key: str) -> WriteBackRow | None:
    """The outbox's record of a write-back, as the database holds it."""
    with store.session() as session:
        return session.get(WriteBackRow, key)

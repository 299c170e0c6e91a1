"""Held drafts (core.review): the engine result kept and read back whole, one claim per draft
whoever asks, the reviewer's edit measured in words, and the approval rules of the policy."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.engine.engine import Result
from core.engine.ledger import Receipt
from core.engine.routing import Decision, Step
from core.errors import ConfigError
from core.policy import parse_policy
from core.review import (
    APPROVING,
    PENDING,
    REGENERATING,
    Drafts,
    NewDraft,
    changed_fields,
    copy_text,
    fingerprint,
    result_from_json,
    result_to_json,
    word_distance,
)
from core.store import JobRow, Store
from core.tasks.kinds import Task


def result(body: str = "Hi Zoë, your Summit pack is ready.", **context: object) -> Result:
    task = Task(kind="email", context={"first_name": "Zoë", "city": "İstanbul", **context,
                                       "catalog": [{"name": "Summit 40L"}]},
                brief="A note", tenant="hubspot:7", tier="critical", language="tr", id="j1",
                regeneration=2)
    receipt = Receipt(task_id="j1", tenant="hubspot:7", kind="email", tier="critical",
                      language="tr", action="cloud-masked", role="cloud", backend="openai",
                      model="gpt-4o-mini", rule="critical", reasons=("tier is critical",),
                      status="ok", attempt=1, prompt_tokens=10, completion_tokens=5,
                      cached_tokens=0, latency_ms=12.5, cost_usd=0.001, baseline_cost_usd=0.002,
                      egress=True, egress_entities=("PERSON",), masked_entities=("PERSON",),
                      masked={"PERSON": 1}, created_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    decision = Decision(action="cloud-masked", steps=(Step("cloud", True),),
                        reasons=("tier is critical",), rule="critical", fallback=False)
    return Result(task=task, output={"subject": "Ready", "body": body}, decision=decision,
                  receipts=(receipt,))


def test_a_result_is_kept_and_read_back_whole() -> None:
    original = result()
    back = result_from_json(result_to_json(original))
    assert back == original  # every field: task, output, decision, receipts with their times


def test_the_fingerprint_follows_the_record_not_the_catalog() -> None:
    a = result().task.context
    assert fingerprint(a) == fingerprint({**a, "catalog": []})
    assert fingerprint(a) != fingerprint({**a, "city": "Izmir"})
    assert changed_fields(a, {**a, "city": "Izmir", "catalog": []}) == ["city"]


def test_word_distance_counts_words_changed() -> None:
    assert word_distance("Hi Zoë, your pack is ready.", "Hi Zoë, your pack is ready.") == 0
    assert word_distance("Hi Zoë, your pack is ready.", "Hi Zoë, your new pack is ready.") == 1
    assert word_distance("a b c", "x y") == 3
    assert word_distance("", "one two") == 2
    assert copy_text({"subject": "S", "picks": [{"product": "P", "reason": "R"}]}) == "S\nP\nR"


def draft(store: Store, job: str = "j1") -> NewDraft:
    return NewDraft(job_id=job, job_kind="hubspot.action", tenant="hubspot:7",
                    subject="contact:1", result=result(),
                    review={"workspace": "T1", "channel": "C1", "reviewers": ["U1"]},
                    expires_at=datetime.now(UTC) + timedelta(hours=1))


def test_a_job_holds_one_draft_however_often_it_runs(store: Store) -> None:
    drafts = Drafts(store)
    first = drafts.hold(draft(store))
    again = drafts.hold(draft(store))
    assert again.id == first.id and first.state == PENDING and first.version == 1


def test_one_claim_wins_among_many_and_its_job_may_take_it_again(store: Store) -> None:
    drafts = Drafts(store)
    held = drafts.hold(draft(store))
    barrier, won = threading.Barrier(8), []

    def claim(i: int) -> None:
        barrier.wait()
        if drafts.claim(held.id, "approve", version=1, job_id=f"d{i}", user=f"U{i}"):
            won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    mine = f"d{won[0]}"
    again = drafts.claim(held.id, "approve", version=1, job_id=mine, user="U9")
    assert again is not None and again.state == APPROVING  # a retry of the winner goes on
    assert drafts.claim(held.id, "discard", version=1, job_id="other", user="U2") is None


def test_a_claim_on_an_old_version_is_refused_and_a_regeneration_bumps_it(store: Store) -> None:
    drafts = Drafts(store)
    held = drafts.hold(draft(store))
    assert drafts.claim(held.id, "regenerate", version=1, job_id="r", user="U1") is not None
    assert drafts.get(held.id).state == REGENERATING  # type: ignore[union-attr]
    new = drafts.replace(held.id, result("Hi Zoë, a new trail awaits."), job_id="r")
    assert new is not None and new.version == 2 and new.state == PENDING
    assert new.original["body"] == "Hi Zoë, a new trail awaits."  # what an edit is measured on
    assert drafts.claim(held.id, "approve", version=1, job_id="a", user="U1") is None
    assert drafts.claim(held.id, "approve", version=2, job_id="a", user="U1") is not None


def test_only_expired_pending_drafts_are_due(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    drafts = Drafts(store, clock=lambda: later)
    held = drafts.hold(draft(store))
    drafts.hold(draft(store, "j2"))
    drafts.claim(held.id, "approve", version=1, job_id="a", user="U1")
    assert [d.job_id for d in drafts.due()] == ["j2"]


APPROVAL = """
[[approvals]]
sources = ["hubspot.action", "salesforce.action"]
kinds = ["email"]
tenants = ["hubspot:7"]
workspace = "T0ACME"
channel = "C0REVIEW"
reviewers = ["U0ANN"]
"""


def test_an_approval_rule_holds_what_it_names() -> None:
    policy = parse_policy(APPROVAL)
    assert policy.approval_for("hubspot.action", "email", "hubspot:7") is not None
    assert policy.approval_for("hubspot.action", "recommendation", "hubspot:7") is None
    assert policy.approval_for("hubspot.action", "email", "hubspot:8") is None
    assert policy.approval_for("hubspot.event", "email", "hubspot:7") is None
    assert parse_policy("").approval_for("hubspot.action", "email", "hubspot:7") is None


@pytest.mark.parametrize(("change", "message"), [
    (("hubspot.action", "hubspot.workflow"), r"approvals\[0\]\.sources.*unknown source 'hubspot.workflow'"),
    (('"U0ANN"', '"ann@example.com"'), r"approvals\[0\]\.reviewers.*Slack user id"),
    (('channel = "C0REVIEW"', 'channel = "#review"'), r"approvals\[0\]\.channel"),
    (('reviewers = ["U0ANN"]', "reviewers = []"), r"approvals\[0\]\.reviewers"),
])
def test_a_wrong_approval_rule_names_its_path(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy(APPROVAL.replace(*change))


def test_a_decision_ends_the_draft_and_its_held_job_together(store: Store) -> None:
    from core.jobs.lifecycle import Jobs, NewJob

    jobs = Jobs(store)
    [job] = jobs.accept("s", [NewJob("1", "hubspot.action", "hubspot:7", {})]).job_ids
    jobs.claim(job, timedelta(seconds=30))
    assert jobs.hold(job, {"held": "x"})
    decided_at = datetime.now(UTC) + timedelta(days=20)  # a draft decided long after it was held
    drafts = Drafts(store, clock=lambda: decided_at)
    held = drafts.hold(draft(store, job))
    drafts.claim(held.id, "discard", version=1, job_id="d", user="U1")
    assert not drafts.settle(held.id, "discarded", "no", job_id="someone-else",
                             held=(job, None, "no"))  # not its claim: nothing changes
    assert jobs.get(job).state == "held"  # type: ignore[union-attr]
    assert drafts.settle(held.id, "discarded", "discarded by U1", job_id="d",
                         held=(job, None, "discarded by U1"))
    ended = jobs.get(job)
    assert ended is not None and ended.state == "failed" and ended.error == "discarded by U1"
    assert ended.updated_at == decided_at  # the retention of the ended job runs from here


def test_a_claim_whose_decision_job_ended_is_given_back(store: Store) -> None:
    from core.jobs.lifecycle import Jobs, NewJob

    jobs = Jobs(store)
    drafts = Drafts(store)
    held = drafts.hold(draft(store))
    [decision, running] = jobs.accept("s", [NewJob("d1", "review.decide", "t", {}),
                                            NewJob("d2", "review.decide", "t", {})]).job_ids
    drafts.claim(held.id, "approve", version=1, job_id=decision, user="U1")
    jobs.claim(decision, timedelta(seconds=30))
    assert drafts.unstick() == 0  # its job still runs
    jobs.fail(decision, "boom", permanent=True)
    assert drafts.unstick() == 1
    again = drafts.get(held.id)
    assert again is not None and again.state == PENDING and again.decision_job is None
    drafts.claim(held.id, "approve", version=1, job_id=running, user="U1")
    jobs.claim(running, timedelta(seconds=30))
    assert drafts.unstick() == 0


def test_a_regenerated_draft_gets_its_own_fingerprint_and_only_its_claim_replaces(
        store: Store) -> None:
    drafts = Drafts(store)
    one, two = drafts.hold(draft(store, "j1")), drafts.hold(draft(store, "j2"))
    assert drafts.replace(one.id, result("x"), job_id="r") is None  # not claimed: no replace
    for held in (one, two):
        drafts.claim(held.id, "regenerate", version=1, job_id="r", user="U1")
    new = drafts.replace(one.id, result("Hi Zoë, new.", city="Ankara"), job_id="r")
    assert new is not None and new.fingerprint == fingerprint(result(city="Ankara").task.context)
    other = drafts.get(two.id)
    assert other is not None and other.version == 1 and other.state == REGENERATING


def test_the_approved_copy_records_the_words_changed_exactly(store: Store) -> None:
    drafts = Drafts(store)
    held = drafts.hold(draft(store))
    assert drafts.keep_approved(held, held.original, by="U1", receipt_id="r1") == 0
    [kept] = drafts.approved()
    assert kept.edit_distance == 0 and not kept.edited and kept.approved_by == "U1"
    other = drafts.hold(draft(store, "j2"))
    edited = {**other.original, "body": "Hi Zoë, your new Summit pack is ready now."}
    assert drafts.keep_approved(other, edited, by="U2", receipt_id="r2") == 3  # new, ready now.
    assert sorted(c.edit_distance for c in drafts.approved(tenant="hubspot:7")) == [0, 3]
    assert len(drafts.approved(limit=1)) == 1 and not drafts.approved(tenant="hubspot:8")
    later = datetime.now(UTC) + timedelta(days=1)
    assert not drafts.approved(since=later)


def test_due_takes_at_most_its_limit(store: Store) -> None:
    drafts = Drafts(store, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    for job in ("j1", "j2", "j3"):
        drafts.hold(draft(store, job))
    assert len(drafts.due(limit=2)) == 2 and len(drafts.due()) == 3


def test_a_claim_whose_decision_job_is_done_or_gone_is_given_back_with_a_reason(
        store: Store) -> None:
    from core.jobs.lifecycle import Jobs, NewJob

    jobs = Jobs(store)
    drafts = Drafts(store)
    done_one, gone_one = drafts.hold(draft(store, "j1")), drafts.hold(draft(store, "j2"))
    [decision] = jobs.accept("s", [NewJob("d1", "review.decide", "t", {})]).job_ids
    jobs.claim(decision, timedelta(seconds=30))
    jobs.succeed(decision, {})
    drafts.claim(done_one.id, "approve", version=1, job_id=decision, user="U1")
    drafts.claim(gone_one.id, "discard", version=1, job_id="no-such-job", user="U1")
    assert drafts.unstick() == 2
    for held in (done_one, gone_one):
        again = drafts.get(held.id)
        assert again is not None and again.state == PENDING
        assert again.outcome == "a decision did not finish; decide again"


def test_edges_of_the_review_arithmetic(store: Store) -> None:
    assert word_distance("", "") == 0
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    drafts = Drafts(store, clock=lambda: at)
    held = drafts.hold(NewDraft(job_id="j1", job_kind="k", tenant="t", subject=None,
                                result=result(), review={}, expires_at=at))
    assert [d.id for d in drafts.due()] == [held.id]  # due at its expiry, not a moment later
    drafts.claim(held.id, "regenerate", version=1, job_id="r", user="U1")
    new = drafts.replace(held.id, result("Hi."), job_id="r")
    assert new is not None and new.decision_job is None and new.decided_by is None
    drafts.claim(held.id, "approve", version=2, job_id="gone", user="U1")
    assert drafts.unstick() == 1
    again = drafts.get(held.id)
    assert again is not None and again.decided_by is None and again.decision_job is None


def test_more_edges_a_mutation_run_found(store: Store) -> None:
    from core.jobs.lifecycle import Jobs, NewJob

    assert word_distance("a b c", "b c d") == 2  # one deleted, one inserted: not three changed
    assert changed_fields({"city": "Oslo"}, {"city": "Oslo", "phone": "1"}) == ["phone"]
    assert changed_fields({"phone": "1"}, {}) == ["phone"]
    now = [datetime(2026, 12, 2, 12, 0, tzinfo=UTC)]
    drafts = Drafts(store, clock=lambda: now[0])
    one, two = drafts.hold(draft(store, "j1")), drafts.hold(draft(store, "j2"))
    drafts.claim(one.id, "approve", version=1, job_id="r", user="U1")
    assert drafts.replace(one.id, result("x"), job_id="r") is None  # an approval is no regeneration
    jobs = Jobs(store)
    [decision] = jobs.accept("s", [NewJob("d", "review.decide", "t", {})]).job_ids
    jobs.claim(decision, timedelta(seconds=30))
    drafts.claim(two.id, "approve", version=1, job_id=decision, user="U1")
    drafts.settle(two.id, "approved", "approved by U1", job_id=decision)
    jobs.succeed(decision, {})
    now[0] += timedelta(minutes=5)
    assert drafts.unstick() == 1  # the approving one whose job "r" is unknown; never the approved
    after = drafts.get(two.id)
    assert after is not None and after.state == "approved"
    back = drafts.get(one.id)
    assert back is not None and back.updated_at == now[0]
    drafts.keep_approved(one, one.original, by="U1", receipt_id="r1")
    now[0] += timedelta(minutes=5)
    drafts.keep_approved(two, two.original, by="U2", receipt_id="r2")
    assert [c.approved_by for c in drafts.approved()] == ["U2", "U1"]  # newest first


def test_settle_and_replace_keep_their_bookkeeping(store: Store) -> None:
    now = [datetime(2026, 12, 2, 12, 0, tzinfo=UTC)]
    drafts = Drafts(store, clock=lambda: now[0])
    held = drafts.hold(draft(store))
    drafts.claim(held.id, "regenerate", version=1, job_id="r", user="U1")
    assert drafts.replace(held.id, result("x"), job_id="someone-else") is None
    now[0] += timedelta(minutes=1)
    new = drafts.replace(held.id, result("x"), job_id="r")
    assert new is not None and new.updated_at == now[0]
    drafts.claim(held.id, "discard", version=2, job_id="d", user="U2")
    now[0] += timedelta(minutes=1)
    assert drafts.settle(held.id, "discarded", "x" * 3000, job_id="d")
    ended = drafts.get(held.id)
    assert ended is not None and ended.decided_at == now[0] and ended.decided_by == "U2"
    assert ended.decision_job == "d" and len(ended.outcome or "") == 2000


def test_a_decided_draft_is_never_claimed_again_even_by_its_own_job(store: Store) -> None:
    now = [datetime(2026, 12, 2, 12, 0, tzinfo=UTC)]
    drafts = Drafts(store, clock=lambda: now[0])
    held = drafts.hold(draft(store))
    now[0] += timedelta(minutes=1)
    taken = drafts.claim(held.id, "approve", version=1, job_id="d", user="U1")
    assert taken is not None and taken.updated_at == now[0] and taken.decided_by == "U1"
    drafts.settle(held.id, "approved", "approved by U1", job_id="d")
    assert drafts.claim(held.id, "approve", version=1, job_id="d", user="U1") is None
    assert drafts.claim(held.id, "discard", version=1, job_id="d", user="U1") is None


def test_a_decision_ends_only_its_own_held_job_and_never_an_erased_one(store: Store) -> None:
    from core.jobs.lifecycle import Jobs, NewJob

    jobs = Jobs(store)
    ids = jobs.accept("s", [NewJob(str(i), "hubspot.action", "hubspot:7", {})
                            for i in range(3)]).job_ids
    for job in ids:
        jobs.claim(job, timedelta(seconds=30))
        jobs.hold(job, {"held": "x"})
    drafts = Drafts(store)
    mine, erased = drafts.hold(draft(store, ids[0])), drafts.hold(draft(store, ids[2]))
    drafts.claim(mine.id, "approve", version=1, job_id="d", user="U1")
    assert drafts.settle(mine.id, "approved", "ok", job_id="d", held=(ids[0], {"ok": 1}, None))
    assert [jobs.get(j).state for j in ids] == ["done", "held", "held"]  # type: ignore[union-attr]
    with store.session.begin() as s:  # the third one's contact was erased meanwhile
        s.execute(sa.update(JobRow).where(JobRow.id == ids[2]).values(state="failed"))
    drafts.claim(erased.id, "approve", version=1, job_id="e", user="U1")
    drafts.settle(erased.id, "approved", "ok", job_id="e", held=(ids[2], {"ok": 1}, None))
    assert jobs.get(ids[2]).state == "failed"  # type: ignore[union-attr]

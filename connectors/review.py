"""Human approval before anything reaches the CRM: hold a draft, then decide on it (step 8b).

Where the policy asks for it (``[[approvals]]``: by source, task kind and tenant), a job's draft
stops between the engine and :meth:`Connector.write_back`::

    worker: prepare ──► engine ──► Reviews.hold: the draft kept (core.review.Drafts), the review
            message posted once (Desk.show), a waiting request answered "later" (HubSpot's BLOCK,
            a Flow's 202)
    reviewer: Approve / Edit / Regenerate / Discard in Slack ──► a ``review.decide`` job
    worker: Reviews.decide ──► one claim wins ──► the record read again ──► ConnectorJobs.release:
            write back, answer, complete (exactly what an unheld job does) ──► the message updated

Approve writes once, however often and by whom it is clicked: the claim is one conditional
UPDATE and the write-back goes through the outbox under the held job's keys. The record is read
again first; deleted or opted out since the draft: nothing is written and the waiting workflow
ends with the reason; changed in the fields the draft used: the reviewer is told to regenerate
or discard. Discard and expiry end a waiting workflow with ``FAIL_CONTINUE``
(``errorCode`` ``discarded`` / ``expired``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.base import Connector, ConnectorJobs, Finished, Outcome, connector_of
from core.contacts import opted_out
from core.delivery.replies import Replies
from core.engine.engine import Result as EngineResult
from core.errors import BatonError, NotApproved
from core.jobs.lifecycle import HELD, Jobs, NewJob
from core.jobs.runner import PERMANENT
from core.policy import Policy
from core.registry import Registry
from core.retention import subject_for
from core.review import (
    APPROVED,
    CLAIMED,
    DISCARDED,
    EXPIRED,
    FAILED,
    FINAL,
    PENDING,
    STALE,
    Drafts,
    NewDraft,
    changed_fields,
    expiry,
    result_from_json,
)
from core.store import DraftRow, JobRow
from core.tasks.kinds import Task

log = logging.getLogger("baton.review")
DECIDE = "review.decide"  # the job kind of a reviewer's decision (and of an expiry)
ACTIONS = ("approve", "discard", "regenerate", "expire")
MARKETING = ("email", "recommendation")


class Desk(Protocol):
    """Where reviewers see drafts and decide (Slack)."""

    def show(self, draft: DraftRow, result: EngineResult, *, ended: str | None = None,
             note: str | None = None) -> dict[str, Any]:
        """Post the review message of the draft's version (once), or update it in place: with
        the buttons while pending, with ``ended`` (who decided what) once decided; ``note``
        tells the reviewers why a decision did not go through. Returns where it is."""

    def tell(self, draft: DraftRow | None, decision: Mapping[str, Any], text: str) -> None:
        """A line only the clicking reviewer sees."""


class Reviews:
    def __init__(self, policy: Policy, drafts: Drafts, connectors: Registry[Connector],
                 jobs: ConnectorJobs, table: Jobs, desk: Callable[[], Desk], replies: Replies, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.drafts, self.connectors, self.jobs = policy, drafts, connectors, jobs
        self.table, self.desk, self.replies, self.clock = table, desk, replies, clock

    # -- holding (the connector's job, after generation) -----------------------------------------

    def hold(self, connector: Connector, job: JobRow, result: EngineResult) -> Outcome | None:
        """Hold the draft if a rule says so (None: it is written as usual)."""
        rule = self.policy.approval_for(job.kind, result.task.kind, job.tenant)
        if rule is None:
            return None
        limit = getattr(connector, "hold_limit", lambda job: None)(job)
        draft = self.drafts.hold(NewDraft(
            job_id=job.id, job_kind=job.kind, tenant=job.tenant,
            subject=job.subject or _subject(result.task), result=result,
            review={"workspace": rule.workspace, "channel": rule.channel,
                    "reviewers": list(rule.reviewers)},
            expires_at=expiry(job.created_at, rule.expires_hours, limit)))
        return self.show(job, draft)

    def held(self, job: JobRow) -> Outcome | None:
        """The outcome of a job whose draft is held already (a retry of the job): its message
        shown, nothing generated again."""
        draft = self.drafts.of_job(job.id)
        return None if draft is None else self.show(job, draft)

    def show(self, job: JobRow, draft: DraftRow) -> Outcome:
        key = job.payload.get("reply_key")
        if key:  # the waiting request answers "later": BLOCK, or a Flow's 202
            self.replies.give_up(key)
        try:
            where = self.desk().show(draft, result_from_json(draft.result))
        except BatonError as exc:
            if isinstance(exc, PERMANENT):  # no review channel: the draft can't be seen
                log.warning("review: the draft could not be posted for review",
                            extra={"draft": draft.id, "error": type(exc).__name__})
            return exc
        return {"held": draft.id, "review": {k: where.get(k) for k in ("channel", "ts")}}

    # -- deciding (a review.decide job) ------------------------------------------------------

    def decide(self, job: JobRow) -> dict[str, Any]:
        p = job.payload
        action, user = str(p.get("action")), str(p.get("user") or "")
        if action not in ACTIONS:
            return {"refused": f"unknown decision {action[:20]!r}"}
        draft = self.drafts.get(str(p.get("draft")))
        if draft is None:
            return self._tell(None, p, "This draft is no longer kept (it expired or was erased).")
        mine = draft.decision_job == job.id and draft.state in CLAIMED
        if mine:  # a retry of this decision after a crash: go on with what it claimed
            action = CLAIMED[draft.state]
        if action != "expire" and (user not in draft.review.get("reviewers", [])
                                   or str(p.get("team") or "") != draft.review.get("workspace")):
            return self._tell(draft, p, "Only this draft's reviewers can decide on it: "
                              + ", ".join(f"<@{r}>" for r in draft.review.get("reviewers", [])))
        if draft.state in FINAL:
            who = f" by <@{draft.decided_by}>" if draft.decided_by else ""
            return self._tell(draft, p, f"This draft was {draft.state}{who} already.")
        if not mine and action != "expire" and int(p.get("version") or 0) != draft.version:
            self._show(draft)  # the newer version, in case its message did not get updated
            return self._tell(draft, p, "This draft was replaced by a newer one: decide on that.")
        if not mine and action != "expire" and draft.expires_at <= self.clock() \
                and draft.state == PENDING:
            action = "expire"  # an Approve after the platform's expiry says so, and ends it
        claimed = self.drafts.claim(draft.id, action, version=draft.version, job_id=job.id,
                                    user=user or "baton")
        if claimed is None:
            now = self.drafts.get(draft.id)
            if now is not None and now.decided_by == user:
                return self._tell(draft, p, f"You decided on this draft already ({now.state}).")
            who = f" by <@{now.decided_by}>" if now is not None and now.decided_by else ""
            state = now.state if now is not None else "gone"
            return self._tell(draft, p, f"Someone else decided first ({state}{who}).")
        held = self.table.get(claimed.job_id)
        connector = connector_of(self.connectors, claimed.job_kind)
        if held is None or held.state != HELD:  # erased meanwhile, or purged
            self.drafts.settle(claimed.id, EXPIRED, "the held job is no longer kept", job_id=job.id)
            return self._ended(claimed, "Ended: the held job is no longer kept. Nothing was written.")
        if action == "approve":
            return self._approve(job, claimed, held, connector)
        if action == "regenerate":
            return self._regenerate(job, claimed, held, connector)
        if action == "discard":
            return self._end(job, claimed, held, connector, DISCARDED, NotApproved(
                "discarded", f"a reviewer discarded the draft ({user})"),
                f"Discarded by <@{user}>. Nothing was written.")
        return self._end(job, claimed, held, connector, EXPIRED, NotApproved(
            "expired", f"nobody approved the draft before {claimed.expires_at:%Y-%m-%d %H:%M} UTC"),
            f"Expired at {claimed.expires_at:%Y-%m-%d %H:%M} UTC before anyone approved it. "
            "Nothing was written.")

    def _approve(self, job: JobRow, draft: DraftRow, held: JobRow,
                 connector: Connector) -> dict[str, Any]:
        p, result = job.payload, result_from_json(draft.result)
        user = str(draft.decided_by or p.get("user") or "")
        fresh = self._reread(job, draft, held, connector, result)
        if not isinstance(fresh, Task):
            return fresh  # the record is gone: ended unwritten
        changed = changed_fields(result.task.context, fresh.context)
        if changed:
            note = ("The record changed since this draft was written (" + ", ".join(changed[:8])
                    + "): regenerate it or discard it.")
            self.drafts.settle(draft.id, PENDING, note, job_id=job.id)
            now = self.drafts.get(draft.id)
            if now is not None:
                self._show(now, note=note)
            return self._tell(now, p, note)
        edited = p.get("edited")
        if isinstance(edited, dict) and edited:
            result = dataclasses.replace(result, output={**result.output, **edited})
        [(written, outcome)] = self.jobs.release(connector, [(held, result)])
        for trouble in (written, outcome):
            if isinstance(trouble, BaseException) and not isinstance(trouble, PERMANENT):
                raise trouble  # retried: this job's claim is its own to take again
        if isinstance(written, BaseException):  # refused for good: nothing was written
            reason = str(written)[:300]
            self.drafts.settle(draft.id, FAILED, reason, job_id=job.id,
                               held=(held.id, None, reason))
            return self._ended(draft, f"Approved by <@{user}>, but the write failed: "
                               f"{_plain(reason)}", result)
        distance = self.drafts.keep_approved(draft, result.output, by=user,
                                             receipt_id=result.receipt.id)
        where = {"hubspot": "HubSpot", "salesforce": "Salesforce"}.get(connector.name, "Slack")
        final = outcome if isinstance(outcome, dict) else {}
        self.drafts.settle(draft.id, APPROVED, f"approved by {user}", job_id=job.id,
                           held=(held.id, {**final, "approved": draft.id, "by": user}, None))
        edits = f", {distance} words edited" if distance else ""
        self._ended(draft, f"Approved by <@{user}>{edits}: written to {where}.", result)
        return {"approved": draft.id, "by": user, "edit_distance": distance,
                "outcome": _brief(outcome)}

    def _regenerate(self, job: JobRow, draft: DraftRow, held: JobRow,
                    connector: Connector) -> dict[str, Any]:
        p, before = job.payload, result_from_json(draft.result)
        fresh = self._reread(job, draft, held, connector, before)
        if not isinstance(fresh, Task):
            return fresh
        task = dataclasses.replace(fresh, regeneration=before.task.regeneration + draft.version)
        [result] = self.jobs.generate([task])
        if isinstance(result, BaseException):
            if not isinstance(result, PERMANENT):
                raise result
            note = f"A new draft failed its checks ({_plain(str(result)[:200])}): this one stays."
            self.drafts.settle(draft.id, PENDING, note, job_id=job.id)
            return self._tell(draft, p, note)
        now = self.drafts.replace(draft.id, result, job_id=job.id)
        if now is not None:
            self._show(now)  # if this fails, the next click on the old buttons shows it
        return {"regenerated": draft.id, "version": now.version if now else draft.version}

    def _end(self, job: JobRow, draft: DraftRow, held: JobRow, connector: Connector, state: str,
             why: NotApproved, text: str) -> dict[str, Any]:
        """End a draft unwritten: the waiting workflow answered with the reason (HubSpot's
        ``FAIL_CONTINUE``), the requester told (Slack), the message updated."""
        [(_, outcome)] = self.jobs.release(connector, [(held, why)])
        if isinstance(outcome, BaseException) and not isinstance(outcome, PERMANENT):
            raise outcome  # the platform could not take the answer now: retried
        self.drafts.settle(draft.id, state, str(why), job_id=job.id,
                           held=(held.id, None, str(why)))
        return self._ended(draft, text)

    def _reread(self, job: JobRow, draft: DraftRow, held: JobRow, connector: Connector,
                result: EngineResult) -> Task | dict[str, Any]:
        """The held job's task from the record as it is now, or, when the record can't take
        the draft any more (deleted, refused, opted out), the draft ended ``stale``. A bug or
        an outage of the whole call is raised: the decision is retried."""
        [fresh] = connector.prepare([held])
        if isinstance(fresh, BaseException) and not isinstance(fresh, PERMANENT):
            raise fresh  # the CRM is unreachable: decide again later
        stale = _gone(fresh, result)
        if stale is not None:
            return self._end(job, draft, held, connector, STALE, NotApproved("stale", stale),
                             f"Not written: {_plain(stale)}.")
        assert isinstance(fresh, Task)
        return fresh

    def _show(self, draft: DraftRow, *, ended: str | None = None,
              note: str | None = None, result: EngineResult | None = None) -> None:
        try:
            self.desk().show(draft, result or result_from_json(draft.result), ended=ended,
                             note=note)
        except BatonError as exc:  # the decision stands; the message stays as it was
            log.warning("review: could not update the review message",
                        extra={"draft": draft.id, "error": type(exc).__name__})

    def _ended(self, draft: DraftRow, text: str,
               result: EngineResult | None = None) -> dict[str, Any]:
        now = self.drafts.get(draft.id) or draft
        self._show(now, ended=text, result=result)
        return {"draft": draft.id, "state": now.state, "said": text}

    def _tell(self, draft: DraftRow | None, p: Mapping[str, Any], text: str) -> dict[str, Any]:
        if p.get("user") and p.get("action") != "expire":
            try:
                self.desk().tell(draft, p, text)
            except BatonError as exc:
                log.info("review: could not tell the reviewer", extra={"error": type(exc).__name__})
        return {"draft": draft.id if draft else None, "said": text}

    # -- the reconciler's sweep ----------------------------------------------------------------

    def expire_due(self, jobs: Jobs) -> int:
        """Give back claims whose decision job ended without deciding, then a decision job
        for each pending draft past its expiry (the workers' pump dispatches them). Returns
        how many expiries were new."""
        self.drafts.unstick()
        due = self.drafts.due()
        if not due:
            return 0
        accepted = jobs.accept("review", [NewJob(
            external_id=f"expire:{d.id}:{d.version}", kind=DECIDE, tenant=d.tenant,
            subject=d.subject, payload={"draft": d.id, "version": d.version, "action": "expire",
                                        "user": ""}) for d in due])
        return sum(not duplicate for duplicate in accepted.duplicate)


def _gone(fresh: Task | Finished | BaseException, result: EngineResult) -> str | None:
    """Why the draft can't be written any more, or None: the record deleted or refused, or
    opted out of marketing email since the draft was written."""
    if isinstance(fresh, BaseException):
        return f"the record can't be read any more ({str(fresh)[:200]})"
    if isinstance(fresh, Finished):
        return "the record no longer calls for this draft"
    if result.task.kind in MARKETING and opted_out(fresh.context):
        return "the contact opted out of marketing email since the draft was written"
    return None


def _subject(task: Task) -> str | None:
    email = task.context.get("email")
    return subject_for(email) if isinstance(email, str) and email else None


def _plain(text: str) -> str:
    """An error's text where Slack reads markup: it can't mention or link anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _brief(outcome: Outcome) -> Any:
    return {k: v for k, v in outcome.items() if k != "outputs"} if isinstance(outcome, dict) else None


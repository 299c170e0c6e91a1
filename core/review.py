"""Drafts held for a person's approval, and the approved copy Baton keeps (step 8b).

A draft is held between the engine and the write-back when an approval rule of the policy
(``[[approvals]]``) covers its source, task kind and tenant. The held job's engine result is kept
here (:func:`result_to_json`) with a fingerprint of the context it was written from; a decision
(approve, discard, regenerate, expiry) moves the draft out of ``pending`` with one conditional
UPDATE, so of two reviewers who click at once, or one who clicks twice, exactly one decides::

    pending ──approve──► approving ──► approved | stale | failed
            ──discard──► discarding ─► discarded
            ──regenerate► regenerating ─► pending (version + 1)
            ──expiry───► expiring ──► expired

A decision job that crashed half-way takes its own claim again (``decision_job``), so a retry
finishes what it started; anyone else's click finds the draft taken. Approved copy (the draft as
generated and as approved, the reviewer, the words changed) is kept past the retention period as
the brand's record; a contact's erasure still removes it (:func:`core.retention.forget`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.engine.engine import Result
from core.engine.ledger import Receipt
from core.engine.routing import Decision, Step
from core.store import ApprovedCopyRow, DraftRow, JobRow, ReceiptRow, Store, rows_changed
from core.tasks.kinds import Task

PENDING, APPROVING, APPROVED = "pending", "approving", "approved"
DISCARDING, DISCARDED, REGENERATING = "discarding", "discarded", "regenerating"
EXPIRING, EXPIRED, STALE, FAILED = "expiring", "expired", "stale", "failed"
CLAIMS = {"approve": APPROVING, "discard": DISCARDING, "regenerate": REGENERATING,
          "expire": EXPIRING}
CLAIMED = {state: action for action, state in CLAIMS.items()}  # a claim's state -> its action
FINAL = (APPROVED, DISCARDED, EXPIRED, STALE, FAILED)  # the purge's DRAFTS_ENDED
# Context keys that are not the record (they change with the catalog, not with the contact)
_NOT_THE_RECORD = ("catalog",)


# -- the engine result, kept ------------------------------------------------------------------


def result_to_json(result: Result) -> dict[str, Any]:
    """The engine result as JSON (the held draft's; :func:`result_from_json` reads it back)."""
    t, d = result.task, result.decision
    return {
        "task": {"kind": t.kind, "context": _plain(t.context), "brief": t.brief,
                 "tenant": t.tenant, "tier": t.tier, "language": t.language, "id": t.id,
                 "regeneration": t.regeneration},
        "output": _plain(result.output),
        "decision": {"action": d.action, "steps": [[s.role, s.masked] for s in d.steps],
                     "reasons": list(d.reasons), "rule": d.rule, "fallback": d.fallback},
        "receipts": [_receipt_json(r) for r in result.receipts],
    }


def result_from_json(data: Mapping[str, Any]) -> Result:
    t, d = data["task"], data["decision"]
    task = Task(kind=t["kind"], context=t["context"], brief=t["brief"], tenant=t["tenant"],
                tier=t["tier"], language=t["language"], id=t["id"],
                regeneration=int(t["regeneration"]))
    decision = Decision(action=d["action"], steps=tuple(Step(role=r, masked=bool(m))
                                                        for r, m in d["steps"]),
                        reasons=tuple(d["reasons"]), rule=d["rule"], fallback=bool(d["fallback"]))
    return Result(task=task, output=dict(data["output"]), decision=decision,
                  receipts=tuple(_receipt_from(r) for r in data["receipts"]))


def _receipt_json(r: Receipt) -> dict[str, Any]:
    out = {k: getattr(r, k) for k in r.__dataclass_fields__}
    out["created_at"] = r.created_at.isoformat()
    for k in ("reasons", "egress_entities", "masked_entities"):
        out[k] = list(out[k])
    out["masked"] = dict(r.masked)
    return out


def _receipt_from(data: Mapping[str, Any]) -> Receipt:
    values = dict(data)
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    for k in ("reasons", "egress_entities", "masked_entities"):
        values[k] = tuple(values[k])
    return Receipt(**values)


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value, default=str))


def fingerprint(context: Mapping[str, Any]) -> str:
    """What the draft was written from: the record's fields (not the catalog), hashed."""
    record = {k: v for k, v in context.items() if k not in _NOT_THE_RECORD}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str,
                                     ensure_ascii=False).encode()).hexdigest()


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The record's fields whose values differ (names only: never the values)."""
    keys = (set(before) | set(after)) - set(_NOT_THE_RECORD)
    return sorted(k for k in keys if _plain(before.get(k)) != _plain(after.get(k)))


def word_distance(before: str, after: str) -> int:
    """Words inserted, deleted or replaced to turn ``before`` into ``after`` (Levenshtein over
    words; a reviewer's edit, for the minutes it saved)."""
    a, b = before.split(), after.split()
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


def copy_text(output: Mapping[str, Any]) -> str:
    """A draft's words, for the edit distance: every string of the output, in order."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(output)
    return "\n".join(parts)


# -- the drafts table -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDraft:
    job_id: str
    job_kind: str
    tenant: str
    subject: str | None
    result: Result
    review: dict[str, Any]  # workspace, channel, reviewers (the rule's)
    expires_at: datetime


class Drafts:
    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store, self.clock = store, clock

    def hold(self, new: NewDraft) -> DraftRow:
        """Keep a held job's draft (once per job: a retried job gets the draft it made)."""
        now = self.clock()
        data = result_to_json(new.result)
        insert = postgresql.insert if self.store.engine.dialect.name == "postgresql" else sqlite.insert
        with self.store.session.begin() as s:
            s.execute(insert(DraftRow).values(
                id=uuid.uuid4().hex, job_id=new.job_id, job_kind=new.job_kind, tenant=new.tenant,
                subject=new.subject, kind=new.result.task.kind, state=PENDING, version=1,
                result=data, original=data["output"],
                fingerprint=fingerprint(new.result.task.context), review=new.review,
                decision_job=None, decided_by=None, decided_at=None, outcome=None,
                expires_at=new.expires_at, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["job_id"]))
        found = self.of_job(new.job_id)
        assert found is not None
        return found

    def get(self, draft_id: str) -> DraftRow | None:
        with self.store.session() as s:
            return s.get(DraftRow, draft_id)

    def of_job(self, job_id: str) -> DraftRow | None:
        with self.store.session() as s:
            return s.scalars(sa.select(DraftRow).where(DraftRow.job_id == job_id)).first()

    def claim(self, draft_id: str, action: str, *, version: int, job_id: str,
              user: str) -> DraftRow | None:
        """Take a pending draft for ``action`` (one claim wins), or take again the claim this
        decision job made before it crashed. None: someone else decided, or the draft changed."""
        state = CLAIMS[action]
        mine = sa.and_(DraftRow.state == state, DraftRow.decision_job == job_id)
        with self.store.session.begin() as s:
            won = rows_changed(s, sa.update(DraftRow).where(
                DraftRow.id == draft_id, DraftRow.version == version,
                sa.or_(DraftRow.state == PENDING, mine),
            ).values(state=state, decision_job=job_id, decided_by=user, updated_at=self.clock()))
        return self.get(draft_id) if won else None

    def settle(self, draft_id: str, state: str, outcome: str, *, job_id: str,
               held: tuple[str, dict[str, Any] | None, str | None] | None = None) -> bool:
        """End the decision ``job_id`` holds: a final state (or ``pending`` again). ``held``:
        the held job's end in the same transaction (its id, its result or its error), so a
        crash leaves neither a decided draft with its job still held nor the other way round.
        False if the claim was not this job's (nothing changed)."""
        now = self.clock()
        values: dict[str, Any] = {"state": state, "outcome": outcome[:2000], "updated_at": now}
        if state in FINAL:
            values["decided_at"] = now
        else:
            values |= {"decision_job": None, "decided_by": None}
        with self.store.session.begin() as s:
            won = rows_changed(s, sa.update(DraftRow).where(
                DraftRow.id == draft_id, DraftRow.decision_job == job_id).values(**values))
            if won and held is not None:
                job, result, error = held
                s.execute(sa.update(JobRow).where(JobRow.id == job, JobRow.state == "held").values(
                    state="done" if error is None else "failed", result=result,
                    error=error, lease_until=None, updated_at=now))
        return bool(won)

    def replace(self, draft_id: str, result: Result, *, job_id: str) -> DraftRow | None:
        """A regenerated draft: the next version, pending again (its output is the original a
        reviewer's edit is measured against)."""
        data = result_to_json(result)
        with self.store.session.begin() as s:
            won = rows_changed(s, sa.update(DraftRow).where(
                DraftRow.id == draft_id, DraftRow.state == REGENERATING,
                DraftRow.decision_job == job_id,
            ).values(state=PENDING, version=DraftRow.version + 1, result=data,
                     original=data["output"], fingerprint=fingerprint(result.task.context), decision_job=None,
                     decided_by=None, updated_at=self.clock()))
        return self.get(draft_id) if won else None

    def place(self, draft_id: str, **where: Any) -> None:
        """Where the review message is (channel, ts), once it is posted."""
        with self.store.session.begin() as s:
            row = s.get(DraftRow, draft_id, with_for_update=True)
            if row is not None:
                row.review = {**row.review, **where}

    def unstick(self) -> int:
        """Give claims back whose decision job ended without deciding (failed, dead, purged):
        the draft is pending again, for a reviewer or its expiry. Returns how many."""
        ended = sa.select(JobRow.id).where(JobRow.state.in_(("failed", "dead", "done")))
        with self.store.session.begin() as s:
            return rows_changed(s, sa.update(DraftRow).where(
                DraftRow.state.in_(tuple(CLAIMS.values())),
                sa.or_(DraftRow.decision_job.in_(ended),
                       ~sa.exists().where(JobRow.id == DraftRow.decision_job)),
            ).values(state=PENDING, decision_job=None, decided_by=None, updated_at=self.clock(),
                     outcome="a decision did not finish; decide again"))

    def due(self, limit: int = 100) -> list[DraftRow]:
        """Pending drafts past their expiry."""
        with self.store.session() as s:
            return list(s.scalars(sa.select(DraftRow).where(
                DraftRow.state == PENDING, DraftRow.expires_at <= self.clock()).limit(limit)))

    def keep_approved(self, draft: DraftRow, approved: Mapping[str, Any], *, by: str,
                      receipt_id: str) -> int:
        """Record the approved copy (once) and the approval on the receipt; returns the words
        the reviewer changed."""
        distance = word_distance(copy_text(draft.original), copy_text(approved))
        insert = postgresql.insert if self.store.engine.dialect.name == "postgresql" else sqlite.insert
        with self.store.session.begin() as s:
            if s.get(DraftRow, draft.id, with_for_update=True) is None:
                return distance  # erased meanwhile (core.retention.forget): nothing is kept
            s.execute(insert(ApprovedCopyRow).values(
                id=draft.id, tenant=draft.tenant, subject=draft.subject, kind=draft.kind,
                original=draft.original, approved=_plain(approved),
                edited=_plain(approved) != draft.original,
                edit_distance=distance, approved_by=by, approved_at=self.clock(),
                receipt_id=receipt_id,
            ).on_conflict_do_nothing(index_elements=["id"]))
            s.execute(sa.update(ReceiptRow).where(ReceiptRow.id == receipt_id)
                      .values(approved_by=by, edit_distance=distance))
        return distance

    def approved(self, *, tenant: str | None = None, since: datetime | None = None,
                 limit: int = 1000) -> list[ApprovedCopyRow]:
        query = sa.select(ApprovedCopyRow).order_by(ApprovedCopyRow.approved_at.desc()).limit(limit)
        if tenant is not None:
            query = query.where(ApprovedCopyRow.tenant == tenant)
        if since is not None:
            query = query.where(ApprovedCopyRow.approved_at >= since)
        with self.store.session() as s:
            return list(s.scalars(query))


def expiry(now: datetime, hours: float, platform_limit: timedelta | None) -> datetime:
    """When a held draft expires: the rule's hours, or the platform's own limit if sooner."""
    limit = timedelta(hours=hours)
    return now + (min(limit, platform_limit) if platform_limit is not None else limit)

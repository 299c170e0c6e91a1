"""What Baton keeps of a contact's data, for how long, and how it is erased.

Jobs carry customer data (a task's context, a generated draft in the result); write-back records
and reply rows carry drafts too. Each job names whose data it carries (its ``subject``, see
:func:`subject_for`), so a privacy deletion (HubSpot ``contact.privacyDeletion``, ``baton forget``)
finds them all. Receipts are the ledger: they keep their counts (tokens, cost, latency, what was
masked), never values, and lose their error text and reasons on erasure.

Everything else goes after the retention period (:func:`purge`), which is never shorter than the
longest platform horizon (:func:`core.settings.retention_floor_days`): HubSpot retries a workflow action for
3 days, a ``BLOCK`` waits for its expiry, and dedupe keys must outlive every redelivery.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

import sqlalchemy as sa

from core.jobs.lifecycle import FAILED, HELD, QUEUED, RUNNING
from core.privacy import folded
from core.store import (
    ApprovedCopyRow,
    DraftRow,
    JobRow,
    ReceiptRow,
    ReplyRow,
    Store,
    WriteBackRow,
    rows_changed,
)

ERASED = "erased at the contact's request"


def subject_for(contact: str) -> str:
    """The subject under which jobs about ``contact`` are filed: ``contact:123`` for a HubSpot
    object id, ``record:<15-character id>`` for a Salesforce id (15 or 18 characters), and a hash
    for an email address (the column itself holds no address). Prefixed forms pass through."""
    text = contact.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind == "contact":
        return text
    if sep and kind == "record":
        return f"record:{rest[:15]}"
    if sep and kind == "email":
        text = rest
    if "@" in text:
        return "email:" + hashlib.sha256(folded(text).encode()).hexdigest()[:40]
    if text.isdigit():
        return f"contact:{text}"
    if re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", text):
        return f"record:{text[:15]}"
    return text


def forget(store: Store, tenant: str, subject: str, *, mentions: Sequence[str] = (),
           keep_job: str | None = None) -> dict[str, int]:
    """Erase what Baton stored about one contact of ``tenant``: job payloads, results and errors
    (a job not yet run ends ``failed``, and a running one writes nothing more), write-back
    records and reply drafts; receipts keep only their counts. Jobs are found by their
    ``subject`` and, for each of ``mentions`` (an email address), by any payload or result that
    contains it in any case or Unicode form, whoever the job was about (a scan of the tenant's
    jobs: databases compare non-ASCII case poorly). ``keep_job``: the job doing the erasing.
    Returns what changed."""
    needles = [folded(m.strip()) for m in mentions if m.strip()]
    with store.session.begin() as session:
        found = session.execute(
            sa.select(JobRow.id, JobRow.payload).where(JobRow.tenant == tenant,
                                                        JobRow.subject == subject))
        rows = [(job_id, payload) for job_id, payload in found if job_id != keep_job]
        if needles:
            known = {job_id for job_id, _ in rows} | {keep_job}
            scan = session.execute(sa.select(JobRow.id, JobRow.payload, JobRow.result)
                                   .where(JobRow.tenant == tenant)).yield_per(500)
            for job_id, payload, result in scan:
                text = folded(json.dumps([payload, result], ensure_ascii=False))
                if job_id not in known and any(n in text for n in needles):
                    rows.append((job_id, payload))
        ids = [job_id for job_id, _ in rows]
        replies = [str(p["reply_key"]) for _, p in rows if isinstance(p, dict) and p.get("reply_key")]
        # held drafts and the approved copy kept past the retention: the contact's go too
        held = sa.or_(sa.and_(DraftRow.tenant == tenant, DraftRow.subject == subject),
                      DraftRow.job_id.in_(ids))
        drafts = list(session.scalars(sa.select(DraftRow.id).where(held)))
        copies = rows_changed(session, sa.delete(ApprovedCopyRow).where(sa.or_(
            sa.and_(ApprovedCopyRow.tenant == tenant, ApprovedCopyRow.subject == subject),
            ApprovedCopyRow.id.in_(drafts))))
        if drafts:
            session.execute(sa.delete(DraftRow).where(DraftRow.id.in_(drafts)))
        if not ids:
            return {"jobs": 0, "writebacks": 0, "replies": 0, "receipts": 0,
                    "drafts": len(drafts), "approved_copy": copies}
        session.execute(sa.update(JobRow).where(JobRow.id.in_(ids), JobRow.state.in_([QUEUED, RUNNING, HELD]))
                        .values(state=FAILED, lease_until=None))
        jobs = rows_changed(session, sa.update(JobRow).where(JobRow.id.in_(ids)).values(
            payload={"erased": True}, result=None, subject=None,
            error=sa.case((JobRow.state == FAILED, ERASED), else_=None)))
        writebacks = rows_changed(session, sa.delete(WriteBackRow).where(WriteBackRow.job_id.in_(ids)))
        answered = rows_changed(session, sa.update(ReplyRow).where(ReplyRow.key.in_(replies)).values(
            outputs=None, state="done", reply=sa.func.coalesce(ReplyRow.reply, "later"))) \
            if replies else 0
        receipts = rows_changed(session, sa.update(ReceiptRow).where(ReceiptRow.task_id.in_(ids))
                                .values(error=None, reasons=[]))
    return {"jobs": jobs, "writebacks": writebacks, "replies": answered, "receipts": receipts,
            "drafts": len(drafts), "approved_copy": copies}

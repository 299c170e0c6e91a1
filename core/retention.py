"""What Baton keeps of a contact's data, for how long, and how it is erased.

Jobs carry customer data (a task's context, a generated draft in the result); write-back records
and reply rows carry drafts too. Each job names whose data it carries (its ``subject``, see
:func:`subject_for`), so a privacy deletion (HubSpot ``contact.privacyDeletion``, ``baton forget``)
finds them all. Receipts are the ledger: they keep their counts (tokens, cost, latency, what was
masked), never values, and lose their error text and reasons on erasure.

Everything else goes after the retention period (:func:`purge`), which is never shorter than the
longest platform horizon (:func:`retention_floor_days`): HubSpot retries a workflow action for
3 days, a ``BLOCK`` waits for its expiry, and dedupe keys must outlive every redelivery.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.jobs import FAILED, QUEUED, RUNNING, TERMINAL
from core.privacy import folded
from core.store import InboxKey, JobRow, ReceiptRow, ReplyRow, Store, WriteBackRow, rows_changed

MIN_RETENTION_DAYS = 7.0  # dedupe keys outlive every platform's retries (reliability.md)
HUBSPOT_RETRY_DAYS = 3.0  # HubSpot retries a failed workflow action for up to 3 days
ERASED = "erased at the contact's request"
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def iso_duration_days(text: str) -> float:
    """An ISO 8601 duration (``P1D``, ``PT12H``, ``P1W2D``) in days; ValueError if it is not one."""
    m = _DURATION.fullmatch(text.strip().upper())
    if m is None or not any(m.groups()) or text.strip().upper().endswith("T"):
        raise ValueError(f"not an ISO 8601 duration such as P1D or PT12H: {text!r}")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return weeks * 7 + days + hours / 24 + minutes / 1440 + seconds / 86400


def retention_floor_days(block_expiration: str) -> float:
    """The shortest allowed retention: dedupe keys' 7 days, HubSpot's 3 days of action retries,
    and a day past the longest a HubSpot action may wait in ``BLOCK`` for its callback."""
    return max(MIN_RETENTION_DAYS, HUBSPOT_RETRY_DAYS, iso_duration_days(block_expiration) + 1)


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
        if not ids:
            return {"jobs": 0, "writebacks": 0, "replies": 0, "receipts": 0}
        session.execute(sa.update(JobRow).where(JobRow.id.in_(ids), JobRow.state.in_([QUEUED, RUNNING]))
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
    return {"jobs": jobs, "writebacks": writebacks, "replies": answered, "receipts": receipts}


def purge(store: Store, cutoff: datetime) -> dict[str, int]:
    """Delete what is older than ``cutoff``: dedupe keys, ended jobs (their payloads and drafts
    with them), write-back records and reply rows. Receipts stay: they hold no customer data."""
    done: dict[str, int] = {}
    statements: dict[str, Any] = {
        "inbox_keys": sa.delete(InboxKey).where(InboxKey.created_at < cutoff),
        "jobs": sa.delete(JobRow).where(JobRow.updated_at < cutoff, JobRow.state.in_(TERMINAL)),
        "writebacks": sa.delete(WriteBackRow).where(WriteBackRow.created_at < cutoff),
        "replies": sa.delete(ReplyRow).where(ReplyRow.created_at < cutoff),
    }
    with store.session.begin() as session:
        for name, statement in statements.items():
            done[name] = rows_changed(session, statement)
    return done

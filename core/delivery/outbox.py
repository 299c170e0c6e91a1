"""Write-backs that take effect once, though jobs run at least once.

Before a connector calls the platform, :meth:`Outbox.once` records the write under its
idempotency key (``pending``). After the call it marks it ``done`` with the response; a retried job
that finds ``done`` skips the call and returns the recorded response. A retried job that finds
``pending`` cannot know whether the earlier call landed (the worker may have died right after it),
so it first asks the platform through the connector's ``find`` (e.g. search for the note carrying
this key) and only calls again if the write is not there.

A platform's search can be eventually consistent (HubSpot finds a new note seconds after it was
created): ``settle`` is how long after the previous attempt a write may still be invisible, so a
retry keeps asking ``find`` until then before it writes again.

A write is made only while its job runs (or is held for a reviewer, whose approval makes it): a
job that ended meanwhile (its contact erased, see :func:`core.retention.forget`) writes nothing
more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.errors import ConsentError
from core.store import JobRow, Store, WriteBackRow

Response = dict[str, Any]


def write_key(job: JobRow, what: str) -> str:
    """The outbox key of one write a job makes (``what``: ``properties``, ``note``, ``task``):
    the same however often the job runs, so the write happens once."""
    return f"{job.tenant}:{job.id}:{what}"


def target_key(tenant: str, kind: str, record_id: str) -> str:
    """What a write touches (a tenant's record), for :meth:`Outbox.written_since`."""
    return f"{tenant}:{kind}:{record_id}"


class Outbox:
    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep, poll: float = 0.5):
        self.store, self.clock, self.sleep, self.poll = store, clock, sleep, poll

    def once(self, key: str, *, job_id: str, target: str, perform: Callable[[], Response],
             find: Callable[[], Response | None],
             settle: timedelta = timedelta(0)) -> Response:
        """Perform the write for ``key`` unless it already happened; return its response."""
        previous = self.reserve(key, job_id=job_id, target=target)
        if previous is not None and previous.state == "done":
            return previous.response or {}
        if previous is not None:  # pending: an earlier attempt may have written already
            found = find()
            visible_by = (previous.tried_at or previous.created_at) + settle
            while found is None and self.clock() < visible_by:
                self.sleep(self.poll)  # the earlier write may not be searchable yet
                found = find()
            if found is not None:
                self.done(key, found)
                return found
        response = perform()
        self.done(key, response)
        return response

    def reserve(self, key: str, *, job_id: str, target: str) -> WriteBackRow | None:
        """Insert the pending row; return the row that was already there, if any (``done``: the
        write happened, skip it; ``pending``: it may have). For connectors that write many
        records in one call: reserve each, call once, then :meth:`done` each that landed."""
        now = self.clock()
        values = {"key": key, "job_id": job_id, "target": target, "state": "pending",
                  "attempts": 1, "response": None, "created_at": now, "tried_at": now,
                  "done_at": None}
        dialect = self.store.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        with self.store.session.begin() as session:
            job = session.get(JobRow, job_id)
            if job is not None and job.state not in ("running", "held"):
                raise ConsentError(f"consent: job {job_id} ended while it ran (its contact was "
                                   f"erased?); nothing more is written")
            created = session.execute(insert(WriteBackRow).values(**values)
                                      .on_conflict_do_nothing().returning(WriteBackRow.key)).first()
            if created is not None:
                return None
            row = session.get(WriteBackRow, key)
            if row is not None and row.state != "done":
                previous = WriteBackRow(**{c: getattr(row, c) for c in
                                           ("key", "job_id", "target", "state", "attempts",
                                            "response", "created_at", "tried_at", "done_at")})
                row.attempts += 1
                row.tried_at = now
                return previous
            return row

    def done(self, key: str, response: Response) -> None:
        with self.store.session.begin() as session:
            session.execute(sa.update(WriteBackRow).where(WriteBackRow.key == key)
                            .values(state="done", response=response, done_at=self.clock()))

    def written_since(self, target: str, since: datetime, until: datetime) -> bool:
        """Whether a write to ``target`` landed (or was begun) between ``since`` and ``until``."""
        when = sa.func.coalesce(WriteBackRow.done_at, WriteBackRow.created_at)
        with self.store.session() as session:
            return session.execute(sa.select(WriteBackRow.key).where(
                WriteBackRow.target == target, when >= since, when <= until).limit(1)
            ).first() is not None

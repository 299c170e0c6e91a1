"""The worker's side of the real queue, run by a test when it says so."""

from __future__ import annotations

import sqlalchemy as sa

from core.jobs.lifecycle import utcnow
from core.store import JobRow
from webhooks.services import Services


def drain(services: Services) -> int:
    """Run what is queued, the way a worker would (the real Huey queue, one message at a time).
    The jobs' clock stands still meanwhile: a retry's backoff never comes due during a drain,
    however slow the database (that made a test fail 1 run in 15 on PostgreSQL); ``retry_now``
    runs retries when the test says so."""
    huey = services.dispatcher.huey  # type: ignore[attr-defined]
    jobs = services.jobs
    frozen, clock = utcnow(), jobs.clock
    jobs.clock = lambda: frozen
    n = 0
    try:
        while True:
            services.dispatcher.pump()  # what the web recorded, as a worker's pump sends it
            task = huey.dequeue()
            if task is None:
                return n
            huey.execute(task)
            n += 1
    finally:
        jobs.clock = clock


def retry_now(services: Services) -> int:
    """Make every job waiting for a retry due now, send them and run them."""
    with services.store.session.begin() as s:
        ids = list(s.scalars(sa.select(JobRow.id).where(JobRow.state == "queued")))
        s.execute(sa.update(JobRow).where(JobRow.id.in_(ids)).values(run_after=utcnow()))
    services.dispatcher.dispatch(ids)
    return drain(services)

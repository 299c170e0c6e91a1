"""Dispatch with Huey: SqliteHuey by default, RedisHuey when ``BATON_QUEUE_URL=redis://...``.

The queue only carries job ids; the jobs table is the truth. Huey loses a task that was running
when its worker got ``kill -9``, so the worker's reconciler (every ``BATON_RECONCILE_SECONDS``)
re-dispatches whatever :meth:`core.jobs.lifecycle.Jobs.due` finds (lost dispatches, expired leases) and
purges what outlived the retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from core.errors import ConfigError
from core.jobs.lifecycle import Jobs
from core.settings import Settings

log = logging.getLogger("baton.queue")

def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    url = settings.queue_url
    if url is None:
        path = Path(settings.data_dir) / "queue.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("baton", filename=str(path), immediate=immediate)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("baton", url=url, immediate=immediate)
    raise ConfigError(f"BATON_QUEUE_URL: expected redis://host:port/db (got {url!r})")


CHUNK = 10  # job ids per queue message, unless the job kind asks for more (``batch_sizes``)
PURGE_EVERY = 600.0  # seconds between two purges of one reconciler


class Dispatcher:
    """Sends job ids to the workers and reconciles what the queue lost."""

    def __init__(self, huey: Huey, jobs: Jobs, run_job: Callable[[str], Any], *,
                 redispatch_after: timedelta = timedelta(seconds=60),
                 run_jobs: Callable[[list[str]], Any] | None = None,
                 batch_sizes: Mapping[str, int] | None = None) -> None:
        self.huey, self.jobs, self.redispatch_after = huey, jobs, redispatch_after
        # job kind -> ids per message, for kinds whose jobs are cheaper together (Salesforce
        # writes 200 records in one call: a 100-notification message is one batch)
        self.batch_sizes = {k: n for k, n in (batch_sizes or {}).items() if n != CHUNK}
        self._purged_at: float | None = None
        # more work the reconciler does each round (held drafts past their expiry)
        self.sweeps: list[Callable[[], Any]] = []

        def run(job_ids: list[str]) -> Any:  # the ids of one message run together if they can
            if run_jobs is not None:
                return run_jobs(job_ids)
            return [run_job(job_id) for job_id in job_ids]

        # Huey names a task after its function's module: a closure defined here gives every
        # process (web, worker, tests) the same name, whatever ``run_job`` is.
        self._task = huey.task(name="baton.run_job")(run)

    def dispatch(self, job_ids: Sequence[str], *, mark: bool = True) -> None:
        """Send the ids, up to ``CHUNK`` per message (one message for a typical delivery, yet
        a large batch still spreads over the worker threads)."""
        ids = list(job_ids)
        for group, size in self._groups(ids):
            for start in range(0, len(group), size):
                self._task(group[start : start + size])
        if mark:
            self.jobs.mark_dispatched(ids)

    def _groups(self, ids: list[str]) -> list[tuple[list[str], int]]:
        """The ids by batch size, in their order (one group unless a kind has its own size)."""
        if not self.batch_sizes or len(ids) <= CHUNK:
            return [(ids, CHUNK)]
        kinds = self.jobs.kinds(ids)
        groups: dict[int, list[str]] = {}
        for job_id in ids:
            groups.setdefault(self.batch_sizes.get(kinds.get(job_id, ""), CHUNK), []).append(job_id)
        return [(group, size) for size, group in groups.items()]

    def pump(self, limit: int = 100) -> int:
        """Dispatch the jobs the web processes recorded since the last pump; return how many.
        Workers call this every ``BATON_DISPATCH_POLL_SECONDS``, which keeps the queue's write
        off the webhook's ack path."""
        taken = self.jobs.take_undispatched(limit)
        if taken:
            self.dispatch(taken, mark=False)
        return len(taken)

    def dispatch_later(self, job_id: str, delay: float) -> None:
        """Send one job id after ``delay`` seconds (a retry after its backoff)."""
        self._task.schedule(args=([job_id],), delay=delay)
        self.jobs.mark_dispatched([job_id])

    def reconcile(self) -> int:
        """Dispatch every job that needs it again; purge what outlived the retention (at most
        every ``PURGE_EVERY`` seconds: it scans several tables)."""
        due = self.jobs.due(redispatch_after=self.redispatch_after)
        self.dispatch(due)
        for sweep in self.sweeps:
            try:
                sweep()
            except Exception as exc:  # the next round tries again
                log.warning("reconcile: a sweep failed", extra={"error": type(exc).__name__})
        now = time.monotonic()
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            self.jobs.cleanup()
        return len(due)

    def ping(self) -> bool:
        """Whether the queue storage answers (for /readyz)."""
        try:
            self.huey.pending_count()
        except Exception:
            return False
        return True

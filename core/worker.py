"""Running jobs: claim with a lease, hand the payload to the handler for its kind, record the end.

A handler raises :class:`core.errors.BatonError` subclasses: input and configuration problems
(``InputError``, ``UnknownNameError``, ``GenerationError``, ``ConfigError``) end the job as
``failed`` (retrying cannot help); anything else (``BackendError``, ``RoutingError`` while a
backend cools down or a budget resets, unexpected exceptions) is retried with backoff until the
attempts run out and the job is ``dead`` (``baton jobs retry-dead`` sends it round again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from core.errors import (
    BatonError,
    ConfigError,
    GenerationError,
    InputError,
    QuotaExhaustedError,
    UnknownNameError,
)
from core.jobs import QUEUED, Jobs
from core.registry import Registry
from core.store import JobRow

Handler = Callable[[JobRow], dict[str, Any]]
log = logging.getLogger("baton.worker")

PERMANENT = (InputError, UnknownNameError, GenerationError, ConfigError, QuotaExhaustedError)


class JobRunner:
    """Runs one job id at a time; safe to call for an id that is done or held elsewhere."""

    def __init__(self, jobs: Jobs, handlers: Registry[Handler], lease: timedelta, *,
                 retry_later: Callable[[str, float], None] | None = None) -> None:
        self.jobs, self.handlers, self.lease = jobs, handlers, lease
        # Sends a job id again after a delay (the queue's scheduler); without it, a retry waits
        # for the reconciler's next tick.
        self.retry_later = retry_later

    def run(self, job_id: str) -> str:
        """Run ``job_id`` if it can be claimed; return the state it ends in (or why not run)."""
        job = self.jobs.claim(job_id, self.lease)
        if job is None:
            return "not-claimed"
        try:
            result = self.handlers.get(job.kind)(job)
        except PERMANENT as exc:
            log.info("job failed permanently", extra={"job_id": job_id, "kind": job.kind,
                                                     "error": type(exc).__name__})
            return self.jobs.fail(job_id, str(exc), permanent=True)
        except BatonError as exc:
            return self._retry(job_id, str(exc))
        except Exception as exc:  # a bug or an outage nobody translated: retry, then dead
            log.exception("job raised", extra={"job_id": job_id, "kind": job.kind})
            return self._retry(job_id, f"{type(exc).__name__}: {exc}")
        self.jobs.succeed(job_id, result)
        return "done"

    def _retry(self, job_id: str, error: str) -> str:
        state = self.jobs.fail(job_id, error)
        job = self.jobs.get(job_id)
        if state == QUEUED and job is not None and self.retry_later is not None:
            delay = (job.run_after - self.jobs.clock()).total_seconds()
            try:
                self.retry_later(job_id, max(delay, 0.0))
            except Exception:  # the reconciler sends it instead
                log.exception("could not schedule the retry", extra={"job_id": job_id})
        return state

"""Running jobs: claim with a lease, hand the payload to the handler for its kind, record the end.

A handler raises :class:`core.errors.BatonError` subclasses: input and configuration problems
(``InputError``, ``UnknownNameError``, ``GenerationError``, ``ConfigError``) end the job as
``failed`` (retrying cannot help); anything else (``BackendError``, ``RoutingError`` while a
backend cools down or a budget resets, unexpected exceptions) is retried with backoff until the
attempts run out and the job is ``dead`` (``baton jobs retry-dead`` sends it round again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from core.errors import (
    BatonError,
    ConfigError,
    GenerationError,
    InputError,
    QuotaExhaustedError,
    UnknownNameError,
    describe_unexpected,
)
from core.jobs.lifecycle import QUEUED, Jobs
from core.jobs.queue import CHUNK as BATCH
from core.registry import Registry
from core.store import JobRow

Handler = Callable[[JobRow], dict[str, Any]]
# Runs several jobs of one kind together (e.g. one engine.run_many for a webhook batch, so their
# shared prompt prefix is evaluated once and the local model decodes them as one batch); returns
# each job's result or the error it ended with, in order.
BatchHandler = Callable[[list[JobRow]], list[dict[str, Any] | BaseException]]
log = logging.getLogger("baton.worker")

PERMANENT = (InputError, UnknownNameError, GenerationError, ConfigError, QuotaExhaustedError)


class JobRunner:
    """Runs one job id at a time; safe to call for an id that is done or held elsewhere."""

    def __init__(self, jobs: Jobs, handlers: Registry[Handler], lease: timedelta, *,
                 retry_later: Callable[[str, float], None] | None = None,
                 batch_handlers: dict[str, BatchHandler] | None = None) -> None:
        self.jobs, self.handlers, self.lease = jobs, handlers, lease
        self.batch_handlers = batch_handlers or {}
        # Sends a job id again after a delay (the queue's scheduler); without it, a retry waits
        # for the reconciler's next tick.
        self.retry_later = retry_later

    def run(self, job_id: str) -> str:
        """Run ``job_id`` if it can be claimed; return the state it ends in (or why not run)."""
        job = self.jobs.claim(job_id, self.lease)
        if job is None:
            return "not-claimed"
        try:
            with self._heartbeat([job], self.lease):
                result = self.handlers.get(job.kind)(job)
        except Exception as exc:
            return self._end(job, exc)
        return self._end(job, result)

    @contextlib.contextmanager
    def _heartbeat(self, jobs: list[JobRow], lease: timedelta) -> Iterator[None]:
        """Renew the claims every third of ``lease`` while the handler runs: a job that takes
        longer than its lease (a slow model, a long batch) is not claimed by another worker
        while this one still works on it; a worker that dies stops renewing, and its jobs come
        due when the last lease ends."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(lease.total_seconds() / 3):
                try:
                    self.jobs.extend(jobs, lease)
                except Exception:  # the database is away: the next beat tries again
                    log.warning("could not renew the job leases", exc_info=True)

        thread = threading.Thread(target=beat, name="baton-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def run_many(self, job_ids: list[str]) -> list[str]:
        """Run the jobs that can be claimed; jobs of a kind with a batch handler run together."""
        states = {job_id: "not-claimed" for job_id in job_ids}
        # jobs that run together end together: a message larger than the queue's default holds
        # its claims proportionally longer (a 100-notification Salesforce batch is ten messages'
        # work), so that no lease runs out while the batch is still generating
        lease = self.lease * max(1.0, len(job_ids) / BATCH)
        claimed = [job for job_id in job_ids if (job := self.jobs.claim(job_id, lease))]
        by_kind: dict[str, list[JobRow]] = {}
        for job in claimed:
            by_kind.setdefault(job.kind, []).append(job)
        with self._heartbeat(claimed, lease):
            self._run_kinds(by_kind, states)
        return [states[job_id] for job_id in job_ids]

    def _run_kinds(self, by_kind: dict[str, list[JobRow]], states: dict[str, str]) -> None:
        for kind, group in by_kind.items():
            batch = self.batch_handlers.get(kind)
            if batch is None or len(group) < 2:
                for job in group:
                    try:
                        outcome: dict[str, Any] | BaseException = self.handlers.get(kind)(job)
                    except Exception as exc:
                        outcome = exc
                    states[job.id] = self._end(job, outcome)
                continue
            try:
                outcomes = batch(group)
            except Exception as exc:  # the whole batch failed: each job is judged by that error
                outcomes = [exc] * len(group)
            for job, outcome in zip(group, outcomes, strict=True):
                states[job.id] = self._end(job, outcome)

    def _end(self, job: JobRow, outcome: dict[str, Any] | BaseException) -> str:
        """Record how a claimed job ended: done, failed for good, or retried later."""
        if not isinstance(outcome, BaseException):
            if outcome.get("held"):  # its draft waits for a reviewer (connectors.review)
                self.jobs.hold(job.id, outcome)
                return "held"
            self.jobs.succeed(job.id, outcome)
            return "done"
        if isinstance(outcome, PERMANENT):
            log.info("job failed permanently", extra={"job_id": job.id, "kind": job.kind,
                                                     "error": type(outcome).__name__})
            return self.jobs.fail(job.id, str(outcome), permanent=True)
        if isinstance(outcome, BatonError):
            return self._retry(job.id, str(outcome))
        # A bug or an outage nobody translated: retry, then dead. Its message may quote customer
        # data (KeyError('İstanbul')), so the log and the job keep its type, place and stack only.
        where = describe_unexpected(outcome)
        stack = "".join(traceback.format_tb(outcome.__traceback__))
        log.error("job raised %s (message withheld: it may hold customer data)\n%s", where,
                  stack.rstrip(), extra={"job_id": job.id, "kind": job.kind})
        return self._retry(job.id, f"internal error ({where})")

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

"""The job runner: claim, hand to the handler of the job's kind (alone or in a batch), record the
end: done, failed for good (retrying cannot help), retried with backoff, then dead."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import GenerationError, InputError, TransientBackendError
from core.jobs.lifecycle import Jobs, NewJob
from core.jobs.runner import Handler, JobRunner
from core.registry import Registry
from core.store import JobRow, Store


def _runner(jobs: Jobs, handler: Handler, **kwargs: Any) -> JobRunner:
    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("k", handler)
    return JobRunner(jobs, handlers, timedelta(seconds=30), **kwargs)


def test_jobs_of_one_message_run_as_a_batch_and_end_one_by_one(sqlite_store: Store) -> None:
    jobs = Jobs(sqlite_store)
    seen: list[list[str]] = []

    def batch(group: list[Any]) -> list[Any]:
        seen.append([j.payload["n"] for j in group])
        return [{"n": j.payload["n"]} if j.payload["n"] == "ok" else
                InputError("bad contact") if j.payload["n"] == "bad" else
                TransientBackendError("503") for j in group]

    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("e", lambda job: {"alone": job.payload["n"]})
    runner = JobRunner(jobs, handlers, timedelta(seconds=30), batch_handlers={"e": batch})
    ids = jobs.accept("hubspot", [NewJob(None, "e", "t", {"n": n}) for n in ("ok", "bad", "flaky")]).job_ids
    done_elsewhere = jobs.accept("hubspot", [NewJob(None, "e", "t", {"n": "x"})]).job_ids[0]
    jobs.claim(done_elsewhere, timedelta(seconds=30))  # another worker holds it
    assert runner.run_many([*ids, done_elsewhere]) == ["done", "failed", "queued", "not-claimed"]
    assert seen == [["ok", "bad", "flaky"]]
    single = jobs.accept("hubspot", [NewJob(None, "e", "t", {"n": "one"})]).job_ids
    assert runner.run_many(single) == ["done"]  # a batch of one takes the plain handler
    assert jobs.get(single[0]).result == {"alone": "one"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("error", "state"), [
    (InputError("no such contact"), "failed"),  # permanent: retrying cannot help
    (GenerationError("every candidate failed its checks"), "failed"),
    (TransientBackendError("503 from the model server"), "queued"),  # retried after a backoff
])
def test_how_a_job_ends_depends_on_what_it_raised(sqlite_store: Store, error: Exception,
                                                  state: str) -> None:
    jobs = Jobs(sqlite_store)

    def handler(job: JobRow) -> dict[str, Any]:
        raise error

    job_id = jobs.accept("api", [NewJob(None, "k", "t", {})]).job_ids[0]
    assert _runner(jobs, handler).run(job_id) == state
    job = jobs.get(job_id)
    assert job is not None and job.state == state and job.error == str(error)


def test_a_bug_is_retried_until_dead_and_its_message_never_logged(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    jobs = Jobs(sqlite_store, max_attempts=2, backoff_base=0.0)

    def handler(job: JobRow) -> dict[str, Any]:
        raise KeyError(job.payload["city"])  # a message that quotes customer data

    job_id = jobs.accept("api", [NewJob(None, "k", "t", {"city": "İstanbul"})]).job_ids[0]
    runner = _runner(jobs, handler)
    with caplog.at_level(logging.ERROR, logger="baton.worker"):
        assert runner.run(job_id) == "queued"
        assert runner.run(job_id) == "dead"
    job = jobs.get(job_id)
    assert job is not None and job.error is not None and job.error.startswith("internal error (KeyError")
    assert "İstanbul" not in job.error and "İstanbul" not in caplog.text
    assert "KeyError" in caplog.text  # the type and place are logged, for the operator


def test_a_job_held_elsewhere_or_ended_is_not_run_again(sqlite_store: Store) -> None:
    jobs = Jobs(sqlite_store)
    ran: list[str] = []
    runner = _runner(jobs, lambda job: ran.append(job.id) or {})  # type: ignore[func-returns-value]
    job_id = jobs.accept("api", [NewJob(None, "k", "t", {})]).job_ids[0]
    assert runner.run(job_id) == "done"
    assert runner.run(job_id) == "not-claimed" and ran == [job_id]


@pytest.mark.parametrize("batch", [False, True])
def test_a_job_longer_than_its_lease_is_renewed_not_claimed_by_another_worker(
        store: Store, batch: bool) -> None:
    """The lease is renewed while the handler runs: a second worker (its own Jobs on the same
    database) cannot claim the job, however long it takes; when the worker stops renewing (it
    died), the job comes due again."""
    now = [datetime.now(UTC)]
    jobs = Jobs(store, clock=lambda: now[0])
    other = Jobs(store, clock=lambda: now[0])
    lease = timedelta(seconds=0.3)
    renewed = threading.Event()
    taken: list[JobRow | None] = []
    real_extend = jobs.extend

    def extend(claimed: Any, lease_: timedelta) -> int:
        n = real_extend(claimed, lease_)
        renewed.set()
        return n

    jobs.extend = extend  # type: ignore[method-assign]

    def handler(job: JobRow) -> dict[str, Any]:
        now[0] += lease * 10  # the claim's own lease is long over
        renewed.clear()
        assert renewed.wait(10), "the lease was never renewed"
        taken.append(other.claim(job.id, lease))
        return {"ok": True}

    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("k", handler)
    runner = JobRunner(jobs, handlers, lease,
                       batch_handlers={"k": lambda group: [handler(j) for j in group]})
    ids = jobs.accept("api", [NewJob(None, "k", "t", {"n": i}) for i in range(2 if batch else 1)]
                      ).job_ids
    states = runner.run_many(ids) if batch else [runner.run(ids[0])]
    assert states == ["done"] * len(ids)
    assert taken == [None] * len(ids)  # renewed: nobody else took it
    assert all(jobs.get(i).attempts == 1 for i in ids)  # type: ignore[union-attr]

    # a worker that stops renewing (killed) leaves a lease that runs out: the job comes due,
    # and the first claim's renewal no longer holds it
    dead = jobs.accept("api", [NewJob(None, "k", "t", {"n": "dead"})]).job_ids[0]
    first = jobs.claim(dead, lease)
    assert first is not None and jobs.extend([first], lease) == 1
    now[0] += lease * 2
    second = other.claim(dead, lease)
    assert second is not None and second.attempts == first.attempts + 1
    assert real_extend([first], lease) == 0 and other.extend([second], lease) == 1

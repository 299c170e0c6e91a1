"""The job runner: claim, hand to the handler of the job's kind (alone or in a batch), record the
end: done, failed for good (retrying cannot help), retried with backoff, then dead."""

from __future__ import annotations

import logging
from datetime import timedelta
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

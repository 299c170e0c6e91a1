"""Dispatch through real Huey storages: SQLite (embedded default) and Redis (scale-out)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError, TransientBackendError
from core.jobs.lifecycle import Jobs, NewJob
from core.jobs.queue import Dispatcher, make_huey
from core.jobs.runner import Handler, JobRunner
from core.registry import Registry
from core.settings import Settings
from core.store import Store


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_dispatch_then_a_consumer_runs_the_job(queue: str, tmp_path: Path, sqlite_store: Store) -> None:
    url = "redis://127.0.0.1:6379/15" if queue == "redis" else None
    huey = make_huey(Settings(data_dir=tmp_path, queue_url=url))
    huey.flush()
    jobs = Jobs(sqlite_store)
    ran: list[str] = []
    dispatcher = Dispatcher(huey, jobs, ran.append)
    assert dispatcher.ping()
    ids = jobs.accept("api", [NewJob(None, "task", "t", {}) for _ in range(13)]).job_ids
    dispatcher.dispatch(ids)
    assert huey.pending_count() == 2  # ten ids per message
    assert jobs.due() == []  # dispatched just now
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    assert sorted(ran) == sorted(ids)
    huey.flush()


def test_reconcile_redispatches_what_was_never_sent(tmp_path: Path, sqlite_store: Store) -> None:
    huey = make_huey(Settings(data_dir=tmp_path))
    jobs = Jobs(sqlite_store)
    dispatcher = Dispatcher(huey, jobs, lambda job_id: None)
    jobs.accept("api", [NewJob(None, "task", "t", {}) for _ in range(2)])
    assert dispatcher.reconcile() == 2  # e.g. the web process died between commit and dispatch
    assert huey.pending_count() == 1
    assert dispatcher.reconcile() == 0


def test_unknown_queue_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BATON_QUEUE_URL: expected redis://"):
        make_huey(Settings(data_dir=tmp_path, queue_url="amqp://x"))


def test_a_transient_failure_is_rescheduled_after_its_backoff(tmp_path: Path,
                                                             sqlite_store: Store) -> None:
    huey = make_huey(Settings(data_dir=tmp_path))
    jobs = Jobs(sqlite_store, rand=lambda: 1.0, backoff_base=30.0)
    calls: list[str] = []

    def flaky(job: object) -> dict[str, object]:
        calls.append("x")
        if len(calls) == 1:
            raise TransientBackendError("503 from the CRM")
        return {"ok": True}

    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("task", flaky)  # type: ignore[arg-type]
    runner = JobRunner(jobs, handlers, timedelta(seconds=30))
    dispatcher = Dispatcher(huey, jobs, runner.run)
    runner.retry_later = dispatcher.dispatch_later
    job_id = jobs.accept("api", [NewJob(None, "task", "t", {})]).job_ids[0]
    assert runner.run(job_id) == "queued"
    assert huey.pending_count() == 1  # the consumer moves it to its schedule on sight
    task = huey.dequeue()
    assert task is not None and task.args == ([job_id],)
    now = datetime.now(UTC).replace(tzinfo=None)
    assert 29 <= (task.eta - now).total_seconds() <= 31
    assert jobs.due() == []  # the reconciler leaves it to the scheduled retry


def test_a_kind_with_its_own_batch_size_goes_in_messages_of_that_size(store: Store,
                                                                     tmp_path: Path) -> None:
    from core.jobs.queue import CHUNK

    jobs = Jobs(store)
    sent: list[list[str]] = []
    dispatcher = Dispatcher(make_huey(Settings(data_dir=tmp_path), immediate=True),
                            jobs, lambda job_id: None, run_jobs=lambda ids: sent.append(ids),
                            batch_sizes={"big.kind": 100, "small.kind": CHUNK})
    big = jobs.accept("s", [NewJob(external_id=f"b{i}", kind="big.kind", tenant="t", payload={})
                            for i in range(100)]).job_ids
    small = jobs.accept("s", [NewJob(external_id=f"s{i}", kind="small.kind", tenant="t",
                                     payload={}) for i in range(25)]).job_ids
    dispatcher.dispatch(small[:5] + big + small[5:])
    assert sorted(len(ids) for ids in sent) == [5, 10, 10, 100]
    assert [ids for ids in sent if len(ids) == 100] == [big]


def test_a_large_batch_holds_its_claims_longer(store: Store) -> None:
    jobs = Jobs(store)
    ids = jobs.accept("s", [NewJob(external_id=f"b{i}", kind="big", tenant="t", payload={})
                            for i in range(40)]).job_ids
    leases: list[timedelta] = []
    claim = jobs.claim

    def watched(job_id: str, lease: timedelta) -> object:
        leases.append(lease)
        return claim(job_id, lease)

    jobs.claim = watched  # type: ignore[method-assign]
    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("big", lambda job: {})
    runner = JobRunner(jobs, handlers, timedelta(seconds=300),
                       batch_handlers={"big": lambda group: [{} for _ in group]})
    assert runner.run_many(ids) == ["done"] * 40
    assert set(leases) == {timedelta(seconds=1200)}  # four default messages' worth
    runner.run_many(jobs.accept("s", [NewJob(external_id="one", kind="big", tenant="t",
                                             payload={})]).job_ids)
    assert leases[-1] == timedelta(seconds=300)

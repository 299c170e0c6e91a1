"""Dispatch through real Huey storages: SQLite (embedded default) and Redis (scale-out)."""

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.jobs import Jobs, NewJob
from core.queue import Dispatcher, make_huey
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

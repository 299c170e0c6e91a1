"""Guarantees 2 and 12: kill -9 workers at random points, restart the queue's Redis mid-run; every
job still ends done and the platform sees exactly one effective write per job."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.jobs.lifecycle import DONE, RUNNING, Jobs, NewJob
from core.jobs.queue import Dispatcher, make_huey
from core.settings import Settings
from core.store import JobRow, open_store
from tests.conftest import pg_schema as fresh_pg_schema
from tests.fakes.platform import FakePlatform

ROOT = Path(__file__).resolve().parents[2]
Enqueue = Callable[[dict[str, str], int], tuple[Jobs, list[str]]]


def start_worker(env: dict[str, str], platform: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.fakes.writeback_worker", platform],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT)


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{k[6:].lower(): v for k, v in env.items()  # type: ignore[arg-type]
                       if k.startswith("BATON_") and k != "BATON_TEST_PG_URL"})


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with fresh_pg_schema() as (_, url):
        yield url


def base_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "BATON_DATA_DIR": str(tmp_path), "BATON_JOB_LEASE_SECONDS": "2",
            "BATON_RECONCILE_SECONDS": "0.5", "BATON_REDISPATCH_SECONDS": "3",
            "BATON_WORKER_THREADS": "2"}


@pytest.fixture
def enqueue() -> Iterator[Callable[[dict[str, str], int], tuple[Jobs, list[str]]]]:
    stores = []

    def make(env: dict[str, str], n: int) -> tuple[Jobs, list[str]]:
        settings = settings_of(env)
        store = open_store(settings.resolved_database_url)
        stores.append(store)
        jobs = Jobs(store)
        ids = jobs.accept("test", [NewJob(None, "test.writeback", "t", {})
                                   for _ in range(n)]).job_ids
        Dispatcher(make_huey(settings), jobs, lambda job_id: None).dispatch(ids)
        return jobs, ids

    yield make
    for store in stores:
        store.close()


def wait_all_done(jobs: Jobs, ids: list[str], seconds: float) -> list[JobRow]:
    deadline = time.monotonic() + seconds
    while True:
        rows = [r for i in ids if (r := jobs.get(i)) is not None]
        if all(r.state == DONE for r in rows) or time.monotonic() > deadline:
            return rows


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=20)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kill_9_mid_job_loses_nothing_and_writes_once(tmp_path: Path, backend: str,
                                                      request: pytest.FixtureRequest,
                                                      enqueue: Enqueue) -> None:
    env = base_env(tmp_path)
    if backend == "postgresql":
        env["BATON_DATABASE_URL"] = request.getfixturevalue("pg_schema")
        env["BATON_QUEUE_URL"] = "redis://127.0.0.1:6379/14"
        make_huey(settings_of(env)).flush()
    jobs, ids = enqueue(env, 30)
    rng = random.Random(7)
    with FakePlatform() as platform:
        for _ in range(4):
            worker = start_worker(env, platform.url)
            busy_by = time.monotonic() + 30
            while not any((r := jobs.get(i)) is not None and r.state == RUNNING for i in ids):
                assert time.monotonic() < busy_by, "the worker never started a job"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))  # before, during or after a write-back
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        worker = start_worker(env, platform.url)
        try:
            rows = wait_all_done(jobs, ids, 90)
        finally:
            stop([worker])
    assert [r.state for r in rows] == [DONE] * len(ids)
    assert sorted(platform.writes) == sorted(f"wb:{i}" for i in ids)
    assert set(platform.writes.values()) == {1}
    assert any(r.attempts > 1 for r in rows), "no kill landed mid-job; the test proved nothing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


@pytest.mark.postgres
def test_scale_out_survives_a_redis_restart(tmp_path: Path, pg_schema: str,
                                            enqueue: Enqueue) -> None:
    """PostgreSQL + Redis, two worker processes, 200 jobs; Redis (which keeps nothing on disk)
    restarts mid-run and loses its queue: 0 lost, 0 duplicate write-backs."""
    port = _free_port()
    redis = _redis(port)
    env = {**base_env(tmp_path), "BATON_DATABASE_URL": pg_schema,
           "BATON_QUEUE_URL": f"redis://127.0.0.1:{port}/0"}
    jobs, ids = enqueue(env, 200)
    with FakePlatform() as platform:
        workers = [start_worker(env, platform.url) for _ in range(2)]
        try:
            started_by = time.monotonic() + 30
            while (done_before := sum(1 for i in ids if (r := jobs.get(i)) and r.state == DONE)) < 10:
                assert time.monotonic() < started_by, "the workers never got going"
                time.sleep(0.1)
            redis.send_signal(signal.SIGKILL)
            redis.wait()
            time.sleep(1)
            redis = _redis(port)
            rows = wait_all_done(jobs, ids, 150)
        finally:
            stop(workers)
            redis.terminate()
            redis.wait()
    assert 0 < done_before < len(ids), "the restart did not happen mid-run"
    assert [r.state for r in rows] == [DONE] * len(ids)
    assert sorted(platform.writes) == sorted(f"wb:{i}" for i in ids)
    assert set(platform.writes.values()) == {1}

"""Guarantee 2: kill -9 the worker at random points while jobs write back to a platform; after a
restart every job ends done and the platform saw exactly one effective write per job."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.jobs import DONE, Jobs, NewJob
from core.queue import Dispatcher, make_huey
from core.settings import Settings
from core.store import open_store
from tests.fakes.platform import FakePlatform

JOBS = 30


def start_worker(env: dict[str, str], platform: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.fakes.writeback_worker", platform],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql+redis", marks=pytest.mark.postgres)])
def test_kill_9_mid_job_loses_nothing_and_writes_once(tmp_path: Path, backend: str) -> None:
    env = {**os.environ, "BATON_DATA_DIR": str(tmp_path), "BATON_JOB_LEASE_SECONDS": "2",
           "BATON_RECONCILE_SECONDS": "0.5", "BATON_WORKER_THREADS": "2"}
    schema = None
    if backend != "sqlite":
        import uuid

        import sqlalchemy as sa

        from tests.conftest import PG_URL
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        env["BATON_DATABASE_URL"] = PG_URL + f"?options=-csearch_path%3D{schema}"
        env["BATON_QUEUE_URL"] = "redis://127.0.0.1:6379/14"
    settings = Settings(**{k[6:].lower(): v for k, v in env.items()  # type: ignore[arg-type]
                           if k.startswith("BATON_") and k != "BATON_TEST_PG_URL"})
    store = open_store(settings.resolved_database_url)
    jobs = Jobs(store)
    huey = make_huey(settings)
    huey.flush()
    ids = jobs.accept("test", [NewJob(None, "test.writeback", "t", {}) for _ in range(JOBS)]).job_ids
    Dispatcher(huey, jobs, lambda job_id: None).dispatch(ids)
    rng = random.Random(7)
    with FakePlatform() as platform:
        for _ in range(4):
            worker = start_worker(env, platform.url)
            time.sleep(rng.uniform(0.8, 2.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        worker = start_worker(env, platform.url)
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline:
                if all((j := jobs.get(i)) is not None and j.state == DONE for i in ids):
                    break
                time.sleep(0.5)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        states = [j.state for i in ids if (j := jobs.get(i)) is not None]
        assert states == [DONE] * JOBS
        assert sorted(platform.writes) == sorted(f"wb:{i}" for i in ids)
        assert set(platform.writes.values()) == {1}
    assert any(j.attempts > 1 for i in ids if (j := jobs.get(i)) is not None), \
        "no kill landed mid-job; the test proved nothing"
    huey.flush()
    store.close()
    if schema is not None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

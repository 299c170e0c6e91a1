"""The durable inbox and job life cycle, on SQLite and PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.jobs.lifecycle import DEAD, DONE, FAILED, QUEUED, RUNNING, Jobs, NewJob
from core.store import InboxKey, JobRow, Store, open_store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def items(ids: list[str]) -> list[NewJob]:
    return [NewJob(external_id=i, kind="test", tenant="t", payload={"n": i}) for i in ids]


def count(store: Store, table: type) -> int:
    with store.session() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_duplicates_are_absorbed_within_and_across_deliveries(store: Store) -> None:
    jobs = Jobs(store)
    first = jobs.accept("hubspot", items(["a", "b", "a"]))
    assert first.duplicate == [False, False, True]
    assert first.job_ids[2] == first.job_ids[0]
    again = jobs.accept("hubspot", items(["b", "c"]))
    assert again.duplicate == [True, False]
    assert again.job_ids[0] == first.job_ids[1]
    other_source = jobs.accept("slack", items(["a"]))
    assert other_source.duplicate == [False]
    assert count(store, JobRow) == 4
    third = jobs.accept("salesforce", items(["a"]))  # the newest row with that external id
    repeat = jobs.accept("slack", items(["a"]))
    assert repeat.duplicate == [True] and repeat.job_ids == other_source.job_ids
    assert third.job_ids[0] not in repeat.job_ids


def test_concurrent_deliveries_of_the_same_events_make_one_job_each(store: Store) -> None:
    jobs = Jobs(store)
    batch = items([f"evt-{i}" for i in range(20)])
    barrier = threading.Barrier(3)
    results = []

    def deliver() -> None:
        barrier.wait()
        results.append(jobs.accept("hubspot", batch))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(store, JobRow) == 20 and count(store, InboxKey) == 20
    assert sum(len(r.new) for r in results) == 20
    assert all(r.job_ids == results[0].job_ids for r in results)


def test_one_claim_wins_and_an_expired_lease_can_be_taken_over(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    job_id = jobs.accept("api", [NewJob(None, "test", "t", {})]).job_ids[0]
    assert jobs.claim(job_id, timedelta(seconds=30)) is not None
    assert jobs.claim(job_id, timedelta(seconds=30)) is None
    assert jobs.due() == []
    clock.advance(seconds=31)
    assert jobs.due() == [job_id]  # the worker died: its lease ran out
    taken = jobs.claim(job_id, timedelta(seconds=30))
    assert taken is not None and taken.attempts == 2
    assert jobs.succeed(job_id, {"ok": True})
    assert not jobs.succeed(job_id, {"ok": "twice"})
    job = jobs.get(job_id)
    assert job is not None and job.state == DONE and job.result == {"ok": True}


def test_failures_back_off_then_die_and_can_be_retried(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock, rand=lambda: 1.0, max_attempts=3, backoff_base=2.0)
    job_id = jobs.accept("api", [NewJob(None, "test", "t", {})]).job_ids[0]
    jobs.claim(job_id, timedelta(seconds=30))
    assert jobs.fail(job_id, "503 from HubSpot") == QUEUED
    job = jobs.get(job_id)
    assert job is not None and job.run_after == clock.now + timedelta(seconds=2)
    assert jobs.claim(job_id, timedelta(seconds=30)) is None  # not due yet
    clock.advance(seconds=2)
    jobs.claim(job_id, timedelta(seconds=30))
    assert jobs.fail(job_id, "503") == QUEUED
    job = jobs.get(job_id)
    assert job is not None and job.run_after == clock.now + timedelta(seconds=4)
    clock.advance(seconds=4)
    jobs.claim(job_id, timedelta(seconds=30))
    assert jobs.fail(job_id, "503") == DEAD
    assert [j.id for j in jobs.list(state=DEAD)] == [job_id]
    assert jobs.retry(job_id)
    job = jobs.get(job_id)
    assert job is not None and job.state == QUEUED and job.attempts == 0


def test_permanent_failure_is_not_retried(store: Store) -> None:
    jobs = Jobs(store)
    job_id = jobs.accept("api", [NewJob(None, "test", "t", {})]).job_ids[0]
    jobs.claim(job_id, timedelta(seconds=30))
    assert jobs.fail(job_id, "contact not found", permanent=True) == FAILED
    assert jobs.due() == []


def test_lost_dispatches_are_found_again(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    ids = jobs.accept("api", items(["x", "y"])).job_ids
    assert sorted(jobs.due()) == sorted(ids)
    jobs.mark_dispatched(ids)
    assert jobs.due() == []
    clock.advance(seconds=61)
    assert sorted(jobs.due()) == sorted(ids)
    jobs.claim(ids[0], timedelta(seconds=300))
    assert jobs.due() == [ids[1]]
    job = jobs.get(ids[0])
    assert job is not None and job.state == RUNNING


def test_due_lists_the_longest_waiting_first_and_leaves_a_backoff_alone(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock, rand=lambda: 1.0, backoff_base=10.0)
    retried = jobs.accept("api", items(["first in"])).job_ids[0]
    jobs.claim(retried, timedelta(seconds=30))
    assert jobs.fail(retried, "503") == QUEUED  # due again in 10 s
    clock.advance(seconds=1)
    fresh = jobs.accept("api", items(["second in"])).job_ids[0]
    assert jobs.due() == [fresh]  # the retry waits for its backoff
    clock.advance(seconds=9)
    assert jobs.due() == [fresh, retried]  # by when they became due, not by arrival
    assert jobs.due(limit=1) == [fresh]
    jobs.mark_dispatched([fresh, retried])
    clock.advance(seconds=60)
    assert jobs.due(redispatch_after=timedelta(seconds=60)) == []  # exactly a minute: not lost
    clock.advance(seconds=1)
    assert jobs.due(redispatch_after=timedelta(seconds=60)) == [fresh, retried]


def test_a_lease_runs_out_after_its_last_instant_and_only_a_running_job_has_one(
        store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    running, ended = jobs.accept("api", items(["running", "ended"])).job_ids
    jobs.mark_dispatched([running, ended])
    jobs.claim(running, timedelta(seconds=30))
    jobs.claim(ended, timedelta(seconds=30))
    jobs.succeed(ended, {"ok": True})
    with store.session.begin() as s:  # a lease left on an ended row (an older version's)
        s.execute(sa.update(JobRow).where(JobRow.id == ended).values(lease_until=clock.now))
    clock.advance(seconds=30)
    assert jobs.due() == []  # the lease's last instant
    clock.advance(microseconds=1)
    assert jobs.due() == [running]


def test_one_reconciler_pass_and_one_listing_are_bounded(store: Store) -> None:
    jobs = Jobs(store)
    jobs.accept("api", items([f"j{i}" for i in range(501)]))
    assert len(jobs.due()) == 500  # the rest on the next pass
    assert len(jobs.list()) == 50


def test_dedupe_keys_are_kept_seven_days(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    jobs.accept("hubspot", items(["old"]))
    clock.advance(days=6, hours=23)
    jobs.accept("hubspot", items(["new"]))
    assert jobs.cleanup() == 0
    assert jobs.accept("hubspot", items(["old"])).duplicate == [True]
    clock.advance(hours=2)
    assert jobs.cleanup() == 1
    assert jobs.accept("hubspot", items(["new"])).duplicate == [True]


@pytest.mark.parametrize("n", [100])
def test_a_full_batch_commits_in_one_transaction(store: Store, n: int) -> None:
    accepted = Jobs(store).accept("hubspot", items([str(i) for i in range(n)]))
    assert len(accepted.new) == n == count(store, JobRow)


def test_undispatched_jobs_are_taken_once_by_concurrent_pumps(store: Store) -> None:
    jobs = Jobs(store)
    made = jobs.accept("hubspot", items([f"e{i}" for i in range(60)])).job_ids  # as `baton serve` records
    jobs.accept("hubspot", items(["sent"]), dispatched=True)  # already sent by its recorder
    taken: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def pump() -> None:
        barrier.wait()
        while got := jobs.take_undispatched(limit=7):
            with lock:
                taken.extend(got)

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(made)  # every recorded job once, none twice, not the sent one
    assert jobs.take_undispatched() == []


def test_deliveries_of_one_group_commit_dedupe_in_order(store: Store) -> None:
    jobs = Jobs(store)
    jobs.accept("hubspot", items(["old"]))
    first, second, other = jobs.accept_many([("hubspot", items(["a", "b", "old"])),
                                             ("hubspot", items(["b", "c"])),
                                             ("slack", items(["a"]))])
    assert first.duplicate == [False, False, True] and second.duplicate == [True, False]
    assert second.job_ids[0] == first.job_ids[1]  # the same platform id: the same job
    assert other.duplicate == [False] and other.job_ids[0] != first.job_ids[0]
    assert count(store, JobRow) == 5  # old, a, b, c, slack:a


def test_the_sqlite_fast_path_stores_what_the_orm_path_stores(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's inbox writes on the DBAPI connection (Jobs._write_sqlite); the rows must be
    byte-for-byte what SQLAlchemy's own path writes, or the ORM would misread them later."""
    clock = Clock()
    payload = {"name": "山田 花子", "nested": {"n": [1, 2.5, None, True]}, "quote": 'a"b\\c'}
    tables = {}
    for path in ("fast", "orm"):
        store = open_store(f"sqlite:///{tmp_path / path}.db")
        jobs = Jobs(store, clock=clock)
        if path == "orm":
            monkeypatch.setattr(jobs, "_write_sqlite", jobs._write)
        jobs.accept("hubspot", [NewJob("e1", "hubspot.event", "hubspot:1", payload),
                                NewJob(None, "task", "t", {})])
        first = jobs.accept("hubspot", [NewJob("e1", "hubspot.event", "hubspot:1", payload)],
                            dispatched=True)
        assert first.duplicate == [True]
        job = jobs.get(first.job_ids[0])
        assert job is not None and job.payload == payload and job.run_after == clock.now
        with store.engine.connect() as conn:  # the stored text, not what the ORM makes of it
            tables[path] = (
                conn.exec_driver_sql("SELECT source, kind, tenant, payload, state, attempts, "
                                     "max_attempts, run_after, lease_until, dispatched_at, result, "
                                     "error, created_at, updated_at FROM jobs ORDER BY kind").all(),
                conn.exec_driver_sql("SELECT source, external_id, created_at FROM inbox_keys").all())
        store.close()
    assert tables["fast"] == tables["orm"]
    assert len(tables["fast"][0]) == 2 and len(tables["fast"][1]) == 1


def test_inbox_commits_on_sqlite_are_synced_to_disk(tmp_path: Path) -> None:
    """Acked means on disk: the inbox's connections commit with synchronous=FULL (NORMAL loses
    the last commits of a WAL database to a power cut)."""
    store = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
    Jobs(store).accept("hubspot", [NewJob("1", "k", "t", {})])
    raw = store.engine.raw_connection()  # the one connection of this thread's pool, reused
    try:
        assert raw.info.get("baton_inbox")
        assert raw.cursor().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        raw.close()
        store.close()


def test_a_retried_job_is_due_now_undispatched_and_alone(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    failed, other, done = jobs.accept("s", items(["f", "o", "d"])).job_ids
    for job_id in (failed, other, done):
        jobs.claim(job_id, timedelta(minutes=5))
    jobs.fail(failed, "broken", permanent=True)
    jobs.fail(other, "broken", permanent=True)
    jobs.succeed(done, {})
    with store.session.begin() as s:  # a stale dispatch, lease and due time from earlier runs
        s.execute(sa.update(JobRow).where(JobRow.id == failed).values(
            run_after=clock.now + timedelta(hours=1), dispatched_at=clock.now,
            lease_until=clock.now + timedelta(minutes=5)))
    clock.advance(minutes=10)
    assert jobs.retry(failed) and not jobs.retry(done)
    row = jobs.get(failed)
    assert row is not None
    assert (row.state, row.attempts, row.run_after, row.dispatched_at, row.lease_until,
            row.updated_at) == (QUEUED, 0, clock.now, None, None, clock.now)
    assert jobs.get(other).state == FAILED  # type: ignore[union-attr]  # only the one asked for
    assert jobs.get(done).state == DONE  # type: ignore[union-attr]


def test_an_ended_job_holds_no_lease_and_says_when_it_ended(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    job_id = jobs.accept("s", items(["a"])).job_ids[0]
    jobs.claim(job_id, timedelta(minutes=5))
    clock.advance(seconds=7)
    assert jobs.succeed(job_id, {"ok": True})
    row = jobs.get(job_id)
    assert row is not None and (row.lease_until, row.updated_at) == (None, clock.now)


def test_list_is_newest_first_filtered_and_limited(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    ids = []
    for name in "abcd":
        ids += jobs.accept("s", items([name])).job_ids
        clock.advance(seconds=1)
    jobs.claim(ids[1], timedelta(minutes=5))
    jobs.succeed(ids[1], {})
    assert [j.id for j in jobs.list(limit=2)] == [ids[3], ids[2]]
    assert [j.id for j in jobs.list(state=DONE)] == [ids[1]]
    assert [j.id for j in jobs.list(state=QUEUED)] == [ids[3], ids[2], ids[0]]


def test_the_pump_takes_due_queued_jobs_oldest_first_each_once(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock, rand=lambda: 1.0, backoff_base=10.0)
    clock.advance(seconds=30)
    late = jobs.accept("api", [NewJob("late", "test", "t", {})]).job_ids[0]
    clock.advance(seconds=-20)  # recorded after `late` but dated earlier (two web processes)
    early, middle = jobs.accept("api", items(["early", "middle"])).job_ids
    clock.advance(seconds=20)
    ended = jobs.accept("api", items(["ended"])).job_ids[0]
    jobs.claim(ended, timedelta(seconds=30))
    jobs.succeed(ended, {})  # never dispatched, but over: never taken
    retried = jobs.accept("api", items(["retried"])).job_ids[0]
    assert set(jobs.take_undispatched()) == {late, early, middle, retried}  # everything due, once
    assert jobs.take_undispatched() == []
    with store.session.begin() as s:  # as recorded by a web process that does not dispatch
        s.execute(sa.update(JobRow).where(JobRow.id.in_([late, early, middle]))
                  .values(dispatched_at=None))
    jobs.claim(retried, timedelta(seconds=30))
    assert jobs.fail(retried, "503") == QUEUED  # its retry is due in 10 s
    assert set(jobs.take_undispatched(limit=2)) == {early, middle}  # the oldest, up to the limit
    assert jobs.take_undispatched(limit=2) == [late]  # the rest, once; the retry is not due
    clock.advance(seconds=10)
    assert jobs.take_undispatched() == [retried]  # due at its instant
    assert jobs.take_undispatched() == []


def test_a_failure_touches_only_its_own_running_job(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock, rand=lambda: 0.0, backoff_base=8.0, max_attempts=2)
    mine, other, done = jobs.accept("api", items(["mine", "other", "done"])).job_ids
    for job_id in (mine, other, done):
        jobs.claim(job_id, timedelta(seconds=30))
    jobs.succeed(done, {"ok": True})
    clock.advance(seconds=5)
    assert jobs.fail(mine, "503") == QUEUED
    job = jobs.get(mine)
    assert job is not None and job.lease_until is None and job.error == "503"
    assert job.updated_at == clock.now and job.dispatched_at is None
    assert job.run_after == clock.now + timedelta(seconds=4)  # 8 s with full jitter at its low end
    assert jobs.get(other).state == RUNNING  # type: ignore[union-attr]
    assert jobs.fail(done, "late failure") == DONE  # another worker ended it: left as it is
    assert jobs.get(done).result == {"ok": True}  # type: ignore[union-attr]
    clock.advance(seconds=4)
    jobs.claim(mine, timedelta(seconds=30))
    assert jobs.fail(mine, "503 again") == DEAD
    assert jobs.get(mine).error == "503 again"  # type: ignore[union-attr]
    assert jobs.fail(mine, "once more", permanent=True) == DEAD  # ended: nothing changes


def test_a_claim_takes_a_lease_after_its_last_instant_and_stamps_the_job(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    job_id = jobs.accept("api", items(["x"])).job_ids[0]
    first = jobs.claim(job_id, timedelta(seconds=30))
    assert first is not None and first.updated_at == clock.now
    clock.advance(seconds=30)
    assert jobs.claim(job_id, timedelta(seconds=30)) is None  # the lease's last instant: still held
    clock.advance(microseconds=1)
    taken = jobs.claim(job_id, timedelta(seconds=30))
    assert taken is not None and taken.attempts == 2 and taken.updated_at == clock.now


def test_the_default_backoff_doubles_from_two_seconds_up_to_five_minutes(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock, rand=lambda: 1.0, max_attempts=20)
    job_id = jobs.accept("api", items(["x"])).job_ids[0]
    waits = []
    for _ in range(10):
        jobs.claim(job_id, timedelta(seconds=30))
        jobs.fail(job_id, "503")
        job = jobs.get(job_id)
        assert job is not None
        waits.append((job.run_after - clock.now).total_seconds())
        clock.now = job.run_after
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    [accepted] = jobs.accept_many([("api", items(["y"]))])  # recorded undispatched by default
    assert accepted.job_ids[0] in jobs.take_undispatched()

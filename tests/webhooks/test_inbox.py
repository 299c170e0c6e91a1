"""The group-commit inbox on its own: many request threads, shared commits, failures that reach
every waiting request and leave the inbox working, and a wait that gives up cleanly."""

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from core.jobs.lifecycle import Accepted, Jobs, NewJob
from core.store import Store, open_store
from webhooks.inbox import GroupCommitInbox


class NoQueue:
    def dispatch(self, job_ids: Sequence[str], *, mark: bool = True) -> None:
        raise AssertionError("the web inbox of `baton serve` does not dispatch")

    def pump(self, limit: int = 100) -> int:
        return 0

    def ping(self) -> bool:
        return True


class SlowJobs(Jobs):
    """Real jobs whose commits take a while and can be made to fail."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None

    def accept_many(self, deliveries: Sequence[tuple[str, Sequence[NewJob]]], *,
                    dispatched: bool = False) -> list[Accepted]:
        self.entered.set()
        self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return super().accept_many(deliveries, dispatched=dispatched)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[SlowJobs]:
    store = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
    yield SlowJobs(store)
    store.close()


def event(n: int) -> list[NewJob]:
    return [NewJob(f"e{n}", "hubspot.event", "hubspot:1", {"n": n})]


def run_threads(count: int, target: "object") -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    return threads


def test_concurrent_deliveries_share_commits_and_each_gets_its_own_result(jobs: SlowJobs) -> None:
    inbox = GroupCommitInbox(jobs, NoQueue(), dispatch_new=False)
    results: dict[int, Accepted] = {}
    jobs.gate.clear()  # hold the first commit so the others pile up behind it
    first = run_threads(1, lambda i: results.__setitem__(100, inbox.submit("hubspot", event(100))))
    assert jobs.entered.wait(5)
    rest = run_threads(24, lambda i: results.__setitem__(i, inbox.submit("hubspot", event(i % 12))))
    while len(inbox._waiting) < 24:  # all 24 queued behind the held commit
        threading.Event().wait(0.01)
    jobs.gate.set()
    for t in first + rest:
        t.join(10)
    assert len(results) == 25
    assert inbox.commits == 2  # the first delivery alone, then all 24 together
    for n in range(12):  # each platform id twice: one new job, one duplicate of it
        pair = [results[i] for i in (n, n + 12)]
        assert sorted(r.duplicate[0] for r in pair) == [False, True]
        assert pair[0].job_ids == pair[1].job_ids
    assert results[100].duplicate == [False]


def test_a_failed_commit_reaches_every_waiting_request_and_the_next_one_works(jobs: SlowJobs) -> None:
    inbox = GroupCommitInbox(jobs, NoQueue(), dispatch_new=False)
    errors: list[BaseException] = []

    def deliver(i: int) -> None:
        try:
            inbox.submit("hubspot", event(i))
        except RuntimeError as exc:
            errors.append(exc)

    jobs.fail = RuntimeError("database is down")
    jobs.gate.clear()
    threads = run_threads(6, deliver)
    while len(inbox._waiting) < 6 and not jobs.entered.is_set():
        threading.Event().wait(0.01)
    jobs.gate.set()
    for t in threads:
        t.join(10)
    assert len(errors) == 6 and all(str(e) == "database is down" for e in errors)
    jobs.fail = None
    assert inbox.submit("hubspot", event(1)).duplicate == [False]  # nothing was half-written
    assert not inbox._committing and not inbox._waiting


def test_a_wait_that_runs_out_withdraws_its_delivery(jobs: SlowJobs) -> None:
    inbox = GroupCommitInbox(jobs, NoQueue(), dispatch_new=False, timeout=0.2)
    jobs.gate.clear()
    leader = run_threads(1, lambda i: inbox.submit("hubspot", event(1)))
    assert jobs.entered.wait(5)
    with pytest.raises(TimeoutError):
        inbox.submit("hubspot", event(2))
    assert inbox._waiting == []  # withdrawn: the next commit will not write it
    jobs.gate.set()
    leader[0].join(10)
    assert inbox.submit("hubspot", event(2)).duplicate == [False]  # recorded now, once


def test_the_write_ahead_log_is_checkpointed_off_the_commit(jobs: SlowJobs, tmp_path: Path) -> None:
    """The inbox's connections do not checkpoint inside a commit (SQLite would, holding the
    write lock through two fsyncs); the inbox does it once a batch is answered."""
    wal = tmp_path / "baton.db-wal"
    for n in range(300):  # one commit each, no checkpoint: the log only grows
        jobs.accept("hubspot", event(n))
    unchecked = wal.stat().st_size
    assert unchecked > 1000 * 4096  # past SQLite's own limit: its automatic checkpoint is off
    assert jobs.checkpoint()  # folds it back; the next commit starts the log over
    inbox = GroupCommitInbox(jobs, NoQueue(), dispatch_new=False)
    for n in range(300, 900):
        inbox.submit("hubspot", event(n))
    assert jobs._commits == 900 and jobs._checkpointed > 800  # the inbox kept checkpointing
    with jobs.store.engine.connect() as conn:  # and the log never refilled past its start
        busy, log_pages, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and log_pages < 100 * 8
    assert wal.stat().st_size <= unchecked


class HeldJobs(Jobs):
    """Real jobs whose n-th commit starts, then waits for ``go[n]``."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.started = [threading.Event() for _ in range(3)]
        self.go = [threading.Event() for _ in range(3)]
        self.n = 0

    def accept_many(self, deliveries: Sequence[tuple[str, Sequence[NewJob]]], *,
                    dispatched: bool = False) -> list[Accepted]:
        n, self.n = self.n, self.n + 1
        self.started[n].set()
        self.go[n].wait(10)
        return super().accept_many(deliveries, dispatched=dispatched)


def test_a_wait_that_runs_out_inside_a_running_commit_is_a_timeout(jobs: SlowJobs) -> None:
    held = HeldJobs(jobs.store)
    inbox = GroupCommitInbox(held, NoQueue(), dispatch_new=False, timeout=1.0)
    outcome: dict[int, BaseException | Accepted] = {}

    def deliver(i: int) -> None:
        try:
            outcome[i] = inbox.submit("hubspot", event(i))
        except BaseException as exc:
            outcome[i] = exc

    first = threading.Thread(target=deliver, args=(0,))
    first.start()
    assert held.started[0].wait(5)
    later = [threading.Thread(target=deliver, args=(i,)) for i in (1, 2)]
    for t in later:
        t.start()
    while len(inbox._waiting) < 2:
        threading.Event().wait(0.01)
    held.go[0].set()  # the first commit ends and hands the next (deliveries 1 and 2) to 1
    assert held.started[1].wait(5)
    later[1].join(5)  # 2's wait runs out while the commit holding it is still running
    assert isinstance(outcome[2], TimeoutError)
    held.go[1].set()
    first.join(5)
    later[0].join(5)
    assert isinstance(outcome[0], Accepted) and isinstance(outcome[1], Accepted)
    assert jobs.accept("hubspot", event(2)).duplicate == [True]  # that commit landed: a retry dedupes


class PickyJobs(SlowJobs):
    """Real jobs that refuse any commit holding a delivery from the source "bad" (as PostgreSQL
    refused an over-long id and, with it, every delivery of the same group commit)."""

    def accept_many(self, deliveries: Sequence[tuple[str, Sequence[NewJob]]], *,
                    dispatched: bool = False) -> list[Accepted]:
        if any(source == "bad" for source, _ in deliveries):
            self.entered.set()
            raise ValueError("value too long for type character varying(255)")
        return super().accept_many(deliveries, dispatched=dispatched)


def test_one_bad_delivery_fails_alone_not_with_its_group(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
    jobs = PickyJobs(store)
    inbox = GroupCommitInbox(jobs, NoQueue(), dispatch_new=False)
    outcomes: dict[int, object] = {}

    def deliver(i: int) -> None:
        try:
            outcomes[i] = inbox.submit("bad" if i == 3 else "hubspot", event(i))
        except ValueError as exc:
            outcomes[i] = exc

    jobs.gate.clear()  # hold the first commit so the next six share one
    first = run_threads(1, lambda i: deliver(100))
    assert jobs.entered.wait(5)
    jobs.entered.clear()
    rest = run_threads(6, deliver)
    while len(inbox._waiting) < 6:
        threading.Event().wait(0.01)
    jobs.gate.set()
    for t in first + rest:
        t.join(10)
    assert isinstance(outcomes[3], ValueError)
    assert all(isinstance(outcomes[i], Accepted) for i in (0, 1, 2, 4, 5, 100))
    store.close()

"""The outbox one write at a time, on a clock the test moves: a write happens once, a pending
one is looked for before it is made again (for as long as the platform's search may lag), and
the loop guard's question "did Baton write to this record lately?" has exact edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.delivery.outbox import Outbox
from core.errors import ConsentError
from core.jobs.lifecycle import Jobs, NewJob
from core.store import Store, WriteBackRow

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def running_job(store: Store, clock: Clock) -> str:
    jobs = Jobs(store, clock=clock)
    job_id = jobs.accept("s", [NewJob(None, "k", "t", {})]).job_ids[0]
    jobs.claim(job_id, timedelta(minutes=5))
    return job_id


def test_a_write_is_made_once_and_its_response_kept(store: Store) -> None:
    clock = Clock()
    outbox = Outbox(store, clock=clock, sleep=clock.sleep)
    job = running_job(store, clock)
    calls: list[str] = []
    first = outbox.once("k1", job_id=job, target="contact:1",
                        perform=lambda: calls.append("w") or {"id": "n1"}, find=lambda: None)
    again = outbox.once("k1", job_id=job, target="contact:1",
                        perform=lambda: calls.append("w") or {"id": "n2"}, find=lambda: None)
    assert first == again == {"id": "n1"} and calls == ["w"]
    row = _written(outbox.store, "k1")
    assert row is not None and (row.state, row.attempts, row.done_at) == ("done", 1, T0)


def test_a_pending_write_is_found_after_the_search_settles_instead_of_made_again(
        store: Store) -> None:
    clock = Clock()
    outbox = Outbox(store, clock=clock, sleep=clock.sleep, poll=1.0)
    job = running_job(store, clock)

    def crash() -> dict[str, str]:
        raise RuntimeError("worker died after the call")

    with pytest.raises(RuntimeError):
        outbox.once("k1", job_id=job, target="c", perform=crash, find=lambda: None)
    visible_at = T0 + timedelta(seconds=3)  # the platform's search shows the write 3 s later
    looks: list[datetime] = []

    def find() -> dict[str, str] | None:
        looks.append(clock.now)
        return {"id": "n1"} if clock.now >= visible_at else None

    made: list[str] = []
    got = outbox.once("k1", job_id=job, target="c", settle=timedelta(seconds=10),
                      perform=lambda: made.append("w") or {"id": "n2"}, find=find)
    assert got == {"id": "n1"} and made == []
    assert looks[0] == T0 and looks[-1] == visible_at
    row = _written(outbox.store, "k1")
    assert row is not None and (row.state, row.attempts, row.response) == ("done", 2, {"id": "n1"})


def test_a_pending_write_not_found_once_settled_is_made_again(store: Store) -> None:
    clock = Clock()
    outbox = Outbox(store, clock=clock, sleep=clock.sleep, poll=1.0)
    job = running_job(store, clock)
    with pytest.raises(ZeroDivisionError):
        outbox.once("k1", job_id=job, target="c", perform=lambda: 1 / 0 or {}, find=lambda: None)
    clock.now = T0 + timedelta(seconds=4)  # the retry comes 4 s after the first try
    looks: list[datetime] = []
    got = outbox.once("k1", job_id=job, target="c", settle=timedelta(seconds=6),
                      perform=lambda: {"id": "n2"}, find=lambda: looks.append(clock.now))
    assert got == {"id": "n2"}
    assert looks[-1] == T0 + timedelta(seconds=6)  # asked until the first try's settle time


def test_nothing_is_written_for_a_job_that_is_not_running(store: Store) -> None:
    clock = Clock()
    jobs = Jobs(store, clock=clock)
    job = jobs.accept("s", [NewJob(None, "k", "t", {})]).job_ids[0]  # queued, never claimed
    with pytest.raises(ConsentError, match="nothing more is written"):
        Outbox(store, clock=clock).once("k1", job_id=job, target="c", perform=lambda: {},
                                        find=lambda: None)


def test_written_since_has_exact_edges_and_reads_the_landing_time(store: Store) -> None:
    clock = Clock()
    outbox = Outbox(store, clock=clock, sleep=clock.sleep)
    job = running_job(store, clock)
    outbox.once("k1", job_id=job, target="contact:1", perform=lambda: {}, find=lambda: None)
    clock.now = T0 + timedelta(minutes=10)  # begun at T0, never landed: its start counts
    with pytest.raises(ZeroDivisionError):
        outbox.once("k2", job_id=job, target="contact:2", perform=lambda: 1 / 0 or {},
                    find=lambda: None)
    clock.now = T0 + timedelta(minutes=20)
    outbox.once("k2", job_id=job, target="contact:2", perform=lambda: {}, find=lambda: None)
    minute = timedelta(minutes=1)
    assert outbox.written_since("contact:1", T0, T0)  # both edges included
    assert not outbox.written_since("contact:1", T0 + minute, T0 + 5 * minute)
    assert not outbox.written_since("contact:1", T0 - 5 * minute, T0 - minute)
    assert not outbox.written_since("contact:3", T0 - minute, T0 + 30 * minute)  # other record
    # contact:2 landed at T0+20m (done_at), though it was first begun at T0+10m
    assert outbox.written_since("contact:2", T0 + 20 * minute, T0 + 20 * minute)
    assert not outbox.written_since("contact:2", T0 + 9 * minute, T0 + 11 * minute)
    clock.now = T0 + 30 * minute  # begun and never landed (the worker died): its start counts
    with pytest.raises(ZeroDivisionError):
        outbox.once("k4", job_id=job, target="contact:4", perform=lambda: 1 / 0 or {},
                    find=lambda: None)
    assert outbox.written_since("contact:4", T0 + 30 * minute, T0 + 30 * minute)


def _written(store: Store, key: str) -> WriteBackRow | None:
    """The outbox's record of a write-back, as the database holds it."""
    with store.session() as session:
        return session.get(WriteBackRow, key)


def test_a_write_tried_again_waits_for_the_search_from_its_latest_try(store: Store) -> None:
    """The earlier write that might have landed is the latest attempt's, not the first's."""
    clock = Clock()
    outbox = Outbox(store, clock=clock, sleep=clock.sleep, poll=1.0)
    job = running_job(store, clock)
    with pytest.raises(ZeroDivisionError):  # first try at T0
        outbox.once("k1", job_id=job, target="c", perform=lambda: 1 / 0 or {}, find=lambda: None)
    pending = _written(outbox.store, "k1")
    assert pending is not None and (pending.state, pending.tried_at) == ("pending", T0)
    clock.now = T0 + timedelta(minutes=1)  # second try, a minute later, dies too
    with pytest.raises(ZeroDivisionError):
        outbox.once("k1", job_id=job, target="c", perform=lambda: 1 / 0 or {}, find=lambda: None)
    clock.now = T0 + timedelta(minutes=1, seconds=2)
    looks: list[datetime] = []
    got = outbox.once("k1", job_id=job, target="c", settle=timedelta(seconds=6),
                      perform=lambda: {"id": "n3"}, find=lambda: looks.append(clock.now))
    assert got == {"id": "n3"}
    assert looks[-1] == T0 + timedelta(minutes=1, seconds=6)  # the second try's settle time
    row = _written(outbox.store, "k1")
    assert row is not None and row.attempts == 3 and row.tried_at == T0 + timedelta(minutes=1, seconds=2)

"""The reply rows one call at a time, on a clock the test moves: who may claim a ready callback,
when a crashed sender's lease expires, what each step records. (The race under real
concurrency is tests/core/delivery/test_replies_race.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.delivery.replies import DONE, LATER, READY, SENDING, SYNC, WAITING, Replies
from core.store import Store

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def ready(replies: Replies, clock: Clock, key: str, platform: str = "hubspot",
          account: str = "7") -> None:
    """A call whose request gave up and whose outputs then arrived: ready for a callback."""
    replies.open(key, platform=platform, account=account)
    replies.give_up(key)
    assert not replies.answer(key, {"k": key})
    clock.tick(seconds=1)


def test_opening_twice_keeps_the_first_row(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    replies.open("a", platform="hubspot", account="7")
    clock.tick(seconds=5)
    replies.open("a", platform="salesforce", account="9")  # a redelivery: nothing changes
    row = replies.get("a")
    assert row is not None
    assert (row.platform, row.account, row.reply, row.state) == ("hubspot", "7", None, WAITING)
    assert row.outputs is None and row.claimed_at is None and row.completed_at is None
    assert row.created_at == T0


def test_the_worker_that_wins_completes_the_row_at_its_time(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    replies.open("a", platform="hubspot", account="7")
    clock.tick(seconds=3)
    assert replies.answer("a", {"x": 1})
    row = replies.get("a")
    assert row is not None
    assert (row.reply, row.state, row.outputs, row.completed_at) == (SYNC, DONE, {"x": 1}, clock.now)
    after = replies.give_up("a")  # the request's budget ends after the answer: it answers sync
    assert after is not None and (after.reply, after.state) == (SYNC, DONE)


def test_a_late_answer_readies_only_a_waiting_row(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    replies.open("a", platform="hubspot", account="7")
    gave_up = replies.give_up("a")
    assert gave_up is not None and (gave_up.reply, gave_up.state) == (LATER, WAITING)
    assert not replies.answer("a", {"x": 1})
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE)] == ["a"]
    assert not replies.answer("a", {"x": 2})  # a re-run's answer: the row is being sent
    row = replies.get("a")
    assert row is not None and (row.state, row.outputs) == (SENDING, {"x": 1})


def test_claim_takes_only_the_accounts_ready_rows_oldest_first(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    for key in ("c", "b", "a"):  # created in this order: c oldest
        ready(replies, clock, key)
    ready(replies, clock, "other-platform", platform="salesforce")
    ready(replies, clock, "other-account", account="8")
    replies.open("waiting", platform="hubspot", account="7")
    first = replies.claim("hubspot", "7", lease=LEASE, limit=2)
    assert [r.key for r in first] == ["c", "b"]
    assert all(r.state == SENDING and r.claimed_at == clock.now for r in first)
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE)] == ["a"]
    assert replies.claim("hubspot", "7", lease=LEASE) == []  # all taken; none is waiting
    assert [r.key for r in replies.claim("salesforce", "7", lease=LEASE)] == ["other-platform"]
    assert [r.key for r in replies.claim("hubspot", "8", lease=LEASE)] == ["other-account"]


def test_a_crashed_senders_claim_expires_after_its_lease_and_not_before(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    ready(replies, clock, "a")
    taken_at = clock.now
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE)] == ["a"]
    clock.now = taken_at + LEASE - timedelta(seconds=1)
    assert replies.claim("hubspot", "7", lease=LEASE) == []
    clock.now = taken_at + LEASE  # exactly the lease: still the first sender's
    assert replies.claim("hubspot", "7", lease=LEASE) == []
    clock.now = taken_at + LEASE + timedelta(seconds=1)
    again = replies.claim("hubspot", "7", lease=LEASE)
    assert [r.key for r in again] == ["a"] and again[0].claimed_at == clock.now


def test_sent_released_and_set_aside_rows(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    for key in ("a", "b", "c", "d"):
        ready(replies, clock, key)
    replies.claim("hubspot", "7", lease=LEASE)
    clock.tick(seconds=2)
    replies.sent(["a"])
    replies.release(["a", "b"])  # a is done already: only b goes back
    d = replies.get("d")
    assert d is not None and d.state == SENDING  # another sender's row is not touched
    replies.set_aside(["c"], "expired")
    replies.set_aside([], "refused")  # nothing to do
    a, b, c = (replies.get(k) for k in "abc")
    assert a is not None and (a.state, a.completed_at) == (DONE, clock.now)
    assert b is not None and (b.state, b.claimed_at, b.completed_at) == (READY, None, None)
    assert c is not None and (c.state, c.completed_at) == ("expired", clock.now)
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE)] == ["b"]


def test_one_claim_takes_at_most_a_hundred_rows(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    for i in range(101):
        ready(replies, clock, f"k{i:03d}")
    taken = replies.claim("hubspot", "7", lease=LEASE)
    assert len(taken) == 100 and taken[0].key == "k000"  # the oldest first; one waits
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE)] == ["k100"]


def test_the_longest_waiting_row_is_claimed_first_whatever_its_insert_order(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    clock.now = T0 + timedelta(minutes=10)
    ready(replies, clock, "opened later")
    clock.now = T0
    ready(replies, clock, "opened first")  # inserted second, opened earlier
    assert [r.key for r in replies.claim("hubspot", "7", lease=LEASE, limit=1)] == ["opened first"]


def test_a_sent_or_set_aside_callback_is_never_claimed_again_however_old(store: Store) -> None:
    clock = Clock()
    replies = Replies(store, clock)
    for key in ("sent", "refused"):
        ready(replies, clock, key)
    claimed = replies.claim("hubspot", "7", lease=LEASE)
    assert [r.key for r in claimed] == ["sent", "refused"]
    replies.sent(["sent"])
    replies.set_aside(["refused"], "refused")
    clock.tick(hours=2)  # long past the lease a sender had on them
    assert replies.claim("hubspot", "7", lease=LEASE) == []

"""The rate limiters every connector shares: the rolling window, in one process and through
Redis across processes, and the pause after a 429."""

from __future__ import annotations

import threading
import uuid

from connectors.ratelimit import Limiters, RateLimiter, RedisRateLimiter


def test_the_limiter_never_allows_more_than_the_limit_in_any_ten_seconds() -> None:
    now = [0.0]
    sent: list[float] = []

    def sleep(s: float) -> None:
        now[0] += s

    limiter = RateLimiter(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(450):
        limiter.acquire()
        sent.append(now[0])
        now[0] += 0.01
    assert max(sum(1 for t in sent if start <= t < start + 10) for start in sent) == 100
    assert sent[-1] < 41  # and it does not hold back more than it must
    limiter.pause(5)
    before = now[0]
    limiter.acquire()
    assert now[0] >= before + 5


def test_the_redis_window_holds_across_processes_and_so_does_a_pause() -> None:
    import time

    import redis


    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    name = f"test:{uuid.uuid4().hex}"
    # Two limiters on one key: what two worker processes hold.
    limiters = [RedisRateLimiter(client, name, 5, window=1.0) for _ in range(2)]
    sent: list[float] = []
    lock = threading.Lock()

    def worker(limiter: RedisRateLimiter) -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(limiters[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.sort()
    assert len(sent) == 16
    assert max(sum(1 for t in sent if s <= t < s + 0.98) for s in sent) <= 5
    limiters[0].pause(0.6)  # one process got a 429 with Retry-After
    before = time.monotonic()
    limiters[1].acquire()
    assert time.monotonic() - before >= 0.55
    client.delete(*limiters[0].keys)
    client.close()


def test_limiters_keep_one_window_per_account_of_a_platform() -> None:
    limiters = Limiters("hubspot", 3, window=60.0)
    assert limiters.get(7) is limiters.get("7")  # a portal id or its text: one account
    assert limiters.get(7) is not limiters.get(8)
    for _ in range(3):
        limiters.get(7).acquire()
    limiters.get(8).acquire()  # another account's window is its own
    seven, eight = limiters.get(7), limiters.get(8)
    assert isinstance(seven, RateLimiter) and isinstance(eight, RateLimiter)
    assert (len(seven._sent), len(eight._sent)) == (3, 1) and seven.window == 60.0

"""Client-side rate limits per platform account: a rolling window like the platforms' own (a
burst can never exceed the limit, unlike a token bucket refilled by the second), and a pause that
holds every thread back after a 429. In one process, or shared through Redis by every worker
process on every machine (Redis's clock decides, so machines with skewed clocks still agree)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class RateLimiter:
    """At most ``limit`` requests in any rolling ``window`` seconds, and none before a pause ends."""

    def __init__(self, limit: int, *, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit, self.window, self.clock, self.sleep = limit, window, clock, sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._sent) >= self.limit:
                    wait = self._sent[0] + self.window - now
                if wait <= 0:
                    self._sent.append(now)
                    return
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)


class Limiter(Protocol):
    def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...


# The same rolling window in Redis, for every worker process on every machine at once. Redis's own
# clock decides, so machines with skewed clocks still agree. Returns the seconds to wait (0: go).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return tostring(paused - now) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""
_PAUSE = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisRateLimiter:
    """:class:`RateLimiter` shared through Redis by all processes (``BATON_QUEUE_URL=redis://``)."""

    def __init__(self, client: Any, name: str, limit: int, *, window: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.keys = [f"baton:ratelimit:{name}", f"baton:ratelimit:{name}:paused"]
        self.limit, self.window, self.sleep = limit, window, sleep
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)

    def acquire(self) -> None:
        while (wait := float(self._acquire(keys=self.keys,
                                           args=[self.window, self.limit, uuid.uuid4().hex]))) > 0:
            self.sleep(min(wait, self.window))

    def pause(self, seconds: float) -> None:
        self._pause(keys=self.keys[1:], args=[seconds])


class Limiters:
    """One limiter per account of a platform (``name``: ``hubspot``): shared by the threads of
    this process, or, given a Redis URL (the scale-out queue's), by every worker process."""

    def __init__(self, name: str, limit: int, redis_url: str | None = None, *,
                 window: float = 10.0) -> None:
        self.name, self.limit, self.window = name, limit, window
        self._redis: Any = None
        if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            self._redis = redis.Redis.from_url(redis_url)
        self._by_account: dict[str, Limiter] = {}
        self._lock = threading.Lock()

    def get(self, account: str | int) -> Limiter:
        key = str(account)
        with self._lock:
            if key not in self._by_account:
                self._by_account[key] = (
                    RedisRateLimiter(self._redis, f"{self.name}:{key}", self.limit, window=self.window)
                    if self._redis is not None else RateLimiter(self.limit, window=self.window))
            return self._by_account[key]

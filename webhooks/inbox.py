"""Group commit for the ack path.

Every platform request must be durable before its 2xx, and a commit is the expensive part of a
request. The first request thread that finds no commit running commits every delivery waiting at
that moment, its own included, in one transaction, then wakes the threads whose deliveries it
committed; if more arrived meanwhile, it hands the next commit to the first of them. Under load many
requests share a commit; a request alone commits at once (nothing waits on a timer). There is no
writer thread: handing each delivery to one and waiting for it to wake cost more thread switches
per request than the commit saved (``bench/ack_path.py``).

In ``baton serve`` the new jobs are left undispatched: the workers' pump (see
:meth:`core.jobs.queue.Dispatcher.pump`) sends them, so no queue write sits on the ack path. With
``dispatch_new`` (a web process that is also its own worker, as in the tests' immediate mode) the
committing thread dispatches them right after the commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from core.jobs.lifecycle import Accepted, Jobs, NewJob

log = logging.getLogger("baton.web")

class Dispatch(Protocol):
    """What the web layer needs from the queue (see :class:`core.jobs.queue.Dispatcher`)."""

    def dispatch(self, job_ids: Sequence[str], *, mark: bool = True) -> None: ...

    def pump(self, limit: int = 100) -> int: ...

    def ping(self) -> bool: ...


class _Delivery:
    """One delivery waiting for its commit; ``ready`` is released when it is done or when its
    thread is handed the next commit."""

    __slots__ = ("done", "error", "items", "leads", "ready", "result", "source")

    def __init__(self, source: str, items: Sequence[NewJob]) -> None:
        self.source, self.items = source, items
        self.ready = threading.Lock()
        self.ready.acquire()
        self.done = False
        self.leads = False
        self.result: Accepted | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Accepted:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommitInbox:
    def __init__(self, jobs: Jobs, dispatcher: Dispatch, *, dispatch_new: bool = True,
                 max_batch: int = 256, timeout: float = 10.0) -> None:
        self.jobs, self.dispatcher, self.dispatch_new = jobs, dispatcher, dispatch_new
        self.max_batch, self.timeout = max_batch, timeout
        self._mutex = threading.Lock()
        self._waiting: list[_Delivery] = []
        self._committing = False  # False only while nobody waits: a new delivery leads at once
        self.commits = 0  # transactions so far (deliveries / commits = the batching achieved)

    def submit(self, source: str, items: Sequence[NewJob]) -> Accepted:
        """Record one delivery durably; returns after its transaction committed. Raises what the
        commit raised, or TimeoutError when no commit took it within ``timeout``."""
        me = _Delivery(source, items)
        with self._mutex:
            self._waiting.append(me)
            if not self._committing:
                self._committing = me.leads = True
        if not me.leads:
            woke = me.ready.acquire(timeout=self.timeout)
            with self._mutex:
                if not (woke or me.done or me.leads):  # give up with a 503; the platform retries
                    if me in self._waiting:  # not in a commit yet: withdraw it
                        self._waiting.remove(me)
                    # else a running commit holds it: if that lands, the retry is a duplicate
                    raise TimeoutError(f"no inbox commit within {self.timeout:g} s")
            if me.done:
                return me.outcome()
        self._commit()  # this thread leads; its delivery is first in line
        return me.outcome()

    def _alone(self, delivery: _Delivery) -> Accepted | BaseException:
        try:
            [accepted] = self.jobs.accept_many([(delivery.source, delivery.items)],
                                               dispatched=self.dispatch_new)
        except Exception as exc:
            return exc
        self.commits += 1
        return accepted

    def _commit(self) -> None:
        with self._mutex:
            batch = self._waiting[:self.max_batch]
            del self._waiting[:len(batch)]
        results: list[Accepted | BaseException] = []
        try:
            results = list(self.jobs.accept_many([(d.source, d.items) for d in batch],
                                                 dispatched=self.dispatch_new))
            self.commits += 1
        except BaseException as exc:
            # One bad delivery must not fail the others it shared the commit with: each is tried
            # alone. If the database is down, every one of them fails again and gets its 503.
            alone = isinstance(exc, Exception) and len(batch) > 1
            results = [self._alone(d) for d in batch] if alone else [exc] * len(batch)
        error = next((r for r in results if isinstance(r, BaseException)), None)
        new = [job_id for r in results if isinstance(r, Accepted) for job_id in r.new]
        if new and self.dispatch_new:
            try:
                self.dispatcher.dispatch(new, mark=False)
            except Exception:
                log.exception("dispatch failed; the reconciler will send the jobs",
                              extra={"jobs": len(new)})
        with self._mutex:
            for delivery, result in zip(batch, results, strict=True):
                delivery.done = True
                if isinstance(result, BaseException):
                    delivery.error = result
                else:
                    delivery.result = result
            following = self._waiting[0] if self._waiting else None
            if following is None:
                self._committing = False
            else:
                following.leads = True
        for delivery in batch[1:]:  # batch[0] is this thread's own
            delivery.ready.release()
        if following is not None:
            following.ready.release()
        if error is None:  # housekeeping once the batch's requests are on their way
            try:
                self.jobs.checkpoint()
            except Exception:  # the next checkpoint (or another process's) catches up
                log.exception("WAL checkpoint failed")

"""Group commit for the ack path.

Every platform request must be durable before its 2xx, and a commit is the expensive part of a
request. Request threads hand their delivery to one writer thread per process, which commits all
the deliveries waiting at that moment in a single transaction and then releases each request with
its own result. Under load many requests share a commit; with a single request in flight it commits
at once (nothing waits on a timer).

In ``baton serve`` the new jobs are left undispatched: the workers' pump (see
:meth:`core.queue.Dispatcher.pump`) sends them, so no queue write sits on the ack path. With
``dispatch_new`` (a web process that is also its own worker, as in the tests' immediate mode) the
writer dispatches them right after the commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from core.jobs import Accepted, Jobs, NewJob

log = logging.getLogger("baton.web")

_Item = tuple[str, Sequence[NewJob], "Future[Accepted]"]


class Dispatch(Protocol):
    """What the web layer needs from the queue (see :class:`core.queue.Dispatcher`)."""

    def dispatch(self, job_ids: Sequence[str], *, mark: bool = True) -> None: ...

    def pump(self, limit: int = 100) -> int: ...

    def ping(self) -> bool: ...


class GroupCommitInbox:
    def __init__(self, jobs: Jobs, dispatcher: Dispatch, *, dispatch_new: bool = True,
                 max_batch: int = 256, timeout: float = 10.0) -> None:
        self.jobs, self.dispatcher, self.dispatch_new = jobs, dispatcher, dispatch_new
        self.max_batch, self.timeout = max_batch, timeout
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, source: str, items: Sequence[NewJob]) -> Accepted:
        """Record one delivery durably; returns after its transaction committed."""
        self._ensure_thread()  # lazily: gunicorn forks after the app is built
        future: Future[Accepted] = Future()
        self._queue.put((source, items, future))
        return future.result(timeout=self.timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="baton-inbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self.jobs.accept_many([(s, items) for s, items, _ in batch],
                                                dispatched=self.dispatch_new)
            except Exception as exc:  # the database is down: every waiting request gets a 503
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            new = [job_id for r in results for job_id in r.new]
            if new and self.dispatch_new:
                try:
                    self.dispatcher.dispatch(new, mark=False)
                except Exception:
                    log.exception("dispatch failed; the reconciler will send the jobs",
                                  extra={"jobs": len(new)})
            for (_, _, future), result in zip(batch, results, strict=True):
                future.set_result(result)

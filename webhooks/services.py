"""What the routes of a web process use, built once by the composition root (:mod:`baton.wiring`)
and kept on the Flask app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask

from connectors.base import Connector
from connectors.review import Reviews
from core.delivery.replies import Replies
from core.jobs.lifecycle import Jobs
from core.registry import Registry
from core.settings import Settings
from core.store import Store
from webhooks.inbox import Dispatch, GroupCommitInbox
from webhooks.metrics import Metrics


@dataclass
class Services:
    """Everything the routes use, built once by the composition root."""

    settings: Settings
    store: Store
    jobs: Jobs
    dispatcher: Dispatch
    metrics: Metrics
    model_ready: Callable[[], tuple[bool, str]]
    clock: Callable[[], float] = time.time
    connectors: Registry[Connector] = field(default_factory=lambda: Registry("connector"))
    dispatch_new: bool = True  # False in `baton serve`: the workers' pump dispatches
    # Builds the engine and loads the local model (a worker calls it at start, so its first
    # job does not wait for the model to load)
    warm_up: Callable[[], None] = lambda: None
    reviews: Reviews | None = None  # drafts held for approval (step 8b)
    inbox: GroupCommitInbox = field(init=False)
    replies: Replies = field(init=False)  # the reply rows of requests that wait for their job
    sync_waits: SyncWaits = field(init=False)

    def __post_init__(self) -> None:
        self.replies = Replies(self.store)
        self.inbox = GroupCommitInbox(self.jobs, self.dispatcher, dispatch_new=self.dispatch_new)
        self.sync_waits = SyncWaits(self.settings.web_threads - 1)


class SyncWaits:
    """How many of a process's web threads may wait for a job's answer at once (a HubSpot
    workflow action waits up to 3 s, a Salesforce Flow action up to 8 s): one thread fewer than
    the process has, so a webhook always finds a thread and keeps its ack deadline. A request
    that finds every slot taken answers "later" at once (HubSpot ``BLOCK``, Salesforce 202).

    Task-API clients that ask to wait (``Prefer: wait``) may hold all but one of the slots: any
    key holder can open waiting requests, and a platform's workflow action must still find one."""

    def __init__(self, slots: int) -> None:
        self.slots = max(slots, 0)
        self.busy = 0
        self.busy_api = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, *, api: bool = False) -> Iterator[bool]:
        """Yields whether this request may wait; release on exit."""
        with self._lock:
            took = self.busy < self.slots and (not api or self.busy_api < self.slots - 1)
            self.busy += took
            self.busy_api += took and api
        try:
            yield took
        finally:
            if took:
                with self._lock:
                    self.busy -= 1
                    self.busy_api -= api


def services_of(app: Flask) -> Services:
    services: Services = app.extensions["baton"]
    return services

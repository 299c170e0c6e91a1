"""The contract every platform connector implements, and the one flow that drives them all.

A connector is what Baton knows of one platform (HubSpot today; Salesforce and Slack next): how its
requests are signed and shaped, how a record's context is read, where results are written. The rest
of Baton drives every connector the same way, so adding a platform is a folder under connectors/
with a class that implements :class:`Connector`, and one line in the registry
(:func:`baton.wiring.build_connectors`)::

    POST /<connector>/<route>                                    (webhooks/platforms.py)
      verify ──► parse ──► Delivery: jobs, and maybe a reply the request waits for
            ──► inbox (one commit; nothing is lost after it) ──► wait for the reply, or not ──► ack
    GET /<connector>/<page>  ──► pages()[page]                    (OAuth install and callback)

    worker: jobs of kind "<connector>.<what>", several at once     (ConnectorJobs below)
      prepare (context; one query for many records) ──► engine ──► write_back (through the outbox,
      many records in one call) ──► answer (outputs for the waiting request or its callback)
    complete(account): the account's deferred answers              (HubSpot callbacks, batched)

**Answer now or later.** A request that waits for its job (a HubSpot workflow action) names a reply
row in its :class:`Delivery`; the web layer opens the row before the jobs are committed, waits up
to ``ReplyWait.seconds`` (one thread fewer than the process has may wait at once) and hands the row
to :meth:`Connector.ack`: answered (``reply == "sync"``) or not (``"later"``: HubSpot's ``BLOCK``, a
Flow's 202). The worker's :meth:`ConnectorJobs.release` sets the answer; if the request gave up
first, :meth:`Connector.complete` delivers it (:mod:`core.delivery.replies` explains the race).

**Holding for approval** (a reviewer approves a draft before it reaches the CRM) sits between the
engine and :meth:`Connector.write_back`: a held job keeps its engine result, and approving it calls
:meth:`ConnectorJobs.release` with that result, which writes back, answers and completes, exactly
as an unheld job does; discarding it answers with the reason through :meth:`Connector.answer`.

Connectors import no web framework (requests arrive as :class:`connectors.http.Inbound`) and never
each other; each owns its settings, CLI group, manifests and tests folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.errors import PlatformUnavailable
from connectors.http import ApiError, Inbound, Outbound
from core.delivery.replies import READY, Replies
from core.engine.engine import Engine
from core.engine.engine import Result as EngineResult
from core.errors import BatonError, InternalError
from core.jobs.lifecycle import Accepted, NewJob
from core.registry import Registry
from core.store import JobRow, ReplyRow
from core.tasks.kinds import Task

Page = Callable[[Inbound], Outbound]
Outcome = dict[str, Any] | BaseException  # a job's result, or the error it ends with
COMPLETION_ROUNDS = 10  # completions of one account a batch makes at most to get its answers out


@dataclass(frozen=True)
class ReplyWait:
    """The request waits for its job's answer: the reply row's key (unique on the platform, e.g.
    ``hubspot:<portal>:<callbackId>``), the account whose deferred answers it joins, and how long
    the request may wait before it answers "later"."""

    key: str
    account: str
    seconds: float


@dataclass(frozen=True)
class Delivery:
    """What one request becomes: jobs for the inbox under ``source`` (its dedupe namespace)."""

    source: str
    jobs: list[NewJob]
    reply: ReplyWait | None = None


@dataclass(frozen=True)
class Finished:
    """A job that needs no generation (a skipped event, an erasure): its result as it is."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Contact:
    """A CRM record found by email or id, its fields in the canonical contact vocabulary
    (:mod:`core.contacts`)."""

    tenant: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    """One platform. ``name`` is its registry key, its URL prefix and the prefix of its job kinds."""

    name: str
    # Jobs a worker takes at once (one queue message): as many as the platform's batch calls
    # serve well (Salesforce: a whole 100-notification message), bounded by the job lease
    batch_size: int

    # -- requests (web processes) --------------------------------------------------------------

    def pages(self) -> Mapping[str, Page]:
        """GET routes outside the delivery flow, by route (the OAuth install and callback)."""

    def verify(self, req: Inbound) -> None:
        """Check the request's signature or credentials; fail closed with
        :class:`connectors.http.Unauthorized`."""

    def parse(self, req: Inbound) -> Delivery | Outbound:
        """The request as jobs, or an answer given at once without recording anything (content
        the platform sent that Baton cannot run, answered in the platform's own terms). A
        malformed request raises :class:`connectors.http.ApiError` (a 4xx with the reason)."""

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        """The answer once the delivery is committed; ``reply`` is the reply row after the wait
        when the delivery asked for one."""

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        """A refused request in the form the platform reads."""

    def label(self, route: str) -> str:
        """The route as metrics and logs name it: a secret in the path never appears
        (``outbound/<token>``)."""

    # -- jobs (workers) ------------------------------------------------------------------------

    def job_kinds(self) -> Sequence[str]:
        """The job kinds this connector's deliveries create (``hubspot.event``, ...)."""

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        """Each job's engine task with its context from the platform (for many records, in as
        few calls as the platform allows), or its result if it needs no generation."""

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        """Write each result where the user works, through the outbox (so a retried job never
        writes twice; many records in one call where the platform allows), and return each job's
        outcome. An engine error arrives as it is, for the connector to settle (a contact who
        opted out is a result, "skipped", not a failure)."""

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        """The outputs a waiting request (or its callback) answers with, or None to let the
        outcome stand (a transient error: the job is retried and answers later)."""

    def complete(self, account: str) -> int:
        """Deliver the account's ready deferred answers; return how many went out."""

    def find_contact(self, tenant: str, key: str) -> Contact | None:
        """The tenant's contact with this email address or record id, or None."""

    def task_context(self, contact: Contact, kind: str) -> dict[str, Any]:
        """The engine's context for a found contact and a task kind, as the connector's own jobs
        build it (consent always read; purchases; the catalog for a recommendation): what Slack
        asks of a CRM."""


class Holder(Protocol):
    """Holds drafts for a person's approval (:class:`connectors.review.Reviews`)."""

    def held(self, job: JobRow) -> Outcome | None:
        """The outcome of a job whose draft is held already, or None."""

    def hold(self, connector: Connector, job: JobRow, result: EngineResult) -> Outcome | None:
        """Hold the draft if the policy says so (its outcome), else None."""


def connector_of(connectors: Registry[Connector], kind: str) -> Connector:
    """The connector whose jobs are of ``kind`` (``hubspot.action`` -> hubspot)."""
    return connectors.get(kind.split(".", 1)[0])


class ConnectorJobs:
    """The one job handler of every connector: prepare, generate, write back, answer."""

    def __init__(self, connectors: Registry[Connector], engine: Callable[[], Engine],
                 replies: Replies, holder: Holder | None = None) -> None:
        self.connectors, self.engine, self.replies = connectors, engine, replies
        self.holder = holder  # approvals: set once the reviews are built (they release here)

    def handlers(self) -> dict[str, Callable[[JobRow], dict[str, Any]]]:
        """A handler per job kind of every registered connector (for the job runner)."""
        return {kind: self.run for name in self.connectors
                for kind in self.connectors.get(name).job_kinds()}

    def batch_handlers(self) -> dict[str, Callable[[list[JobRow]], list[Outcome]]]:
        return {kind: self.run_many for kind in self.handlers()}

    def batch_sizes(self) -> dict[str, int]:
        """How many jobs of each kind a worker takes at once (the queue's message size)."""
        return {kind: int(getattr(self.connectors.get(name), "batch_size", 10))
                for name in self.connectors for kind in self.connectors.get(name).job_kinds()}

    def run(self, job: JobRow) -> dict[str, Any]:
        [outcome] = self.run_many([job])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_many(self, jobs: list[JobRow]) -> list[Outcome]:
        """Jobs of one kind at once: the contexts fetched together, one ``engine.run_many`` (the
        brand's prompt prefix evaluated once), the write-backs together, the deferred answers
        of each account completed together. One job's failure is that job's alone. A job a
        request waits for runs on its own, so its answer never waits for the others'; a job
        whose answer was recorded before (a retry after its callback could not be sent) skips
        the model and only delivers it."""
        if not jobs:
            return []
        outcomes: dict[int, Outcome] = {}
        waited = [i for i, job in enumerate(jobs) if job.payload.get("reply_key")]
        rest = [i for i in range(len(jobs)) if i not in waited]
        for group in [[i] for i in waited] + ([rest] if rest else []):
            outcomes.update(zip(group, self._run_group([jobs[i] for i in group]), strict=True))
        return [outcomes[i] for i in range(len(jobs))]

    def _run_group(self, jobs: list[JobRow]) -> list[Outcome]:
        connector = connector_of(self.connectors, jobs[0].kind)
        outcomes: dict[int, Outcome] = {}
        fresh: list[int] = []
        for i, job in enumerate(jobs):
            key = job.payload.get("reply_key")
            row = self.replies.get(key) if key else None
            if row is not None and row.outputs is not None:
                outcomes[i] = {"answered": "callback"}
            elif self.holder is not None and (held := self.holder.held(job)) is not None:
                outcomes[i] = held  # a retry of a held job: its draft waits for its reviewer
            else:
                fresh.append(i)
        runs: list[tuple[int, Task]] = []
        for i, prepared in zip(fresh, _guarded(lambda: connector.prepare([jobs[i] for i in fresh]),
                                               len(fresh)), strict=True):
            if isinstance(prepared, Task):
                runs.append((i, prepared))
            elif isinstance(prepared, Finished):
                outcomes[i] = prepared.result
            else:  # failed before generation: a waiting request is answered all the same
                outcomes[i] = self._answer(connector, jobs[i], prepared)
        results = self.generate([task for _, task in runs])
        writes: list[tuple[int, EngineResult | BaseException]] = []
        for (i, _), result in zip(runs, results, strict=True):
            held = self._hold(connector, jobs[i], result)
            if held is None:
                writes.append((i, result))
            elif isinstance(held, BaseException):  # the review could not be posted: answered
                outcomes[i] = self._answer(connector, jobs[i], held)  # as any failure is
            else:
                outcomes[i] = held
        answered = self._write_and_answer(connector, [(jobs[i], r) for i, r in writes])
        outcomes.update(((i, o) for (i, _), o in zip(writes, answered, strict=True)))
        return self._complete(connector, jobs, [outcomes[i] for i in range(len(jobs))])

    def release(self, connector: Connector,
                done: list[tuple[JobRow, EngineResult | BaseException]]
                ) -> list[tuple[Outcome, Outcome]]:
        """Write back, answer and complete jobs whose engine results are in hand: what
        :meth:`run_many` does after generating, and what approving a held draft does. Returns,
        for each job, what the write-back did (its result, or the error: a job a request waits
        for answers a failed write too) and the job's outcome after answering."""
        written = _guarded(lambda: connector.write_back(done), len(done))
        answered = [self._answer(connector, job, outcome)
                    for (job, _), outcome in zip(done, written, strict=True)]
        return list(zip(written, self._complete(connector, [job for job, _ in done], answered),
                        strict=True))

    def _write_and_answer(self, connector: Connector,
                          done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        written = _guarded(lambda: connector.write_back(done), len(done))
        return [self._answer(connector, job, outcome)
                for (job, _), outcome in zip(done, written, strict=True)]

    def _hold(self, connector: Connector, job: JobRow,
              result: EngineResult | BaseException) -> Outcome | None:
        """The draft held for approval (its outcome), or None: written as usual."""
        if self.holder is None or isinstance(result, BaseException):
            return None
        try:
            return self.holder.hold(connector, job, result)
        except Exception as exc:  # the store: the job is retried, and generates again
            return exc

    def generate(self, tasks: list[Task]) -> list[EngineResult | BaseException]:
        """Each task's engine result, or the error it ended with."""
        if not tasks:
            return []
        if len(tasks) == 1:
            try:
                return [self.engine().run(tasks[0])]
            except Exception as exc:
                return [exc]
        try:
            return list(self.engine().run_many(tasks))
        except Exception as exc:  # the engine could not run at all: each job's error
            return [exc] * len(tasks)

    def _answer(self, connector: Connector, job: JobRow, outcome: Outcome) -> Outcome:
        """Answer a waiting request: ``answered: sync`` if it took the outputs, ``callback`` if
        they wait to be completed with the account's others."""
        if not job.payload.get("reply_key"):
            return outcome
        outputs = connector.answer(job, outcome)
        if outputs is None:
            return outcome
        took = self.replies.answer(job.payload["reply_key"], outputs)
        return {"answered": "sync" if took else "callback", "outputs": outputs}

    def _complete(self, connector: Connector, jobs: list[JobRow],
                  outcomes: list[Outcome]) -> list[Outcome]:
        """Complete the deferred answers of the accounts these jobs answered by callback. An
        account's oldest ready answers go first (a backlog after an outage), so it is completed
        until these jobs' answers are out; a job whose answer could not be sent is retried
        later, its answer kept (the retry only delivers it)."""
        later = {i: jobs[i].payload["reply_key"] for i, o in enumerate(outcomes)
                 if isinstance(o, dict) and o.get("answered") == "callback"}
        failed: dict[str, BaseException] = {}
        accounts = {key: row.account for key in later.values()
                    if (row := self.replies.get(key)) is not None}
        for account in dict.fromkeys(accounts.values()):
            mine = [key for key, acc in accounts.items() if acc == account]
            try:
                for _ in range(COMPLETION_ROUNDS):
                    if connector.complete(account) == 0 or not self._still_ready(mine):
                        break
            except BatonError as exc:  # the platform refused or failed: not the answer's fault
                failed[account] = PlatformUnavailable(f"the answer is kept; completing it "
                                                      f"failed: {exc}")
            except Exception as exc:  # a bug: the runner logs it and retries
                failed[account] = exc
        for i, key in later.items():
            owner = accounts.get(key, "")
            row = self.replies.get(key)
            if owner in failed:
                outcomes[i] = failed[owner]
            elif row is not None and row.state == READY:
                outcomes[i] = PlatformUnavailable("the answer is kept; older answers of the "
                                                  "account are completed first")
            else:
                outcomes[i] = {"answered": "callback", "state": row.state if row else "missing",
                               "outputs": row.outputs if row else None}
        return outcomes

    def _still_ready(self, keys: list[str]) -> bool:
        return any((row := self.replies.get(key)) is not None and row.state == READY
                   for key in keys)


def _guarded(call: Callable[[], Sequence[Any]], n: int) -> list[Any]:
    """Each item of ``call()``, or for all ``n`` the error it raised (a bug or an outage that
    hit the whole batch is each job's, judged by the runner: retried or failed)."""
    try:
        out = list(call())
    except Exception as exc:
        return [exc] * n
    if len(out) != n:
        return [InternalError(RuntimeError(f"{n} jobs, {len(out)} outcomes"))] * n
    return out

"""The connector contract (connectors/base.py) driven by the generic route and the generic job
flow, through a small platform written here the way a new connector would be: signed requests,
a batch route, a route that waits for its answer, a page. Real app, inbox, reply rows, outbox
and engine (scripted backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from baton.wiring import build_app, build_services
from connectors.base import (
    Connector,
    ConnectorJobs,
    Contact,
    Delivery,
    Finished,
    Outcome,
    Page,
    ReplyWait,
)
from connectors.errors import PlatformRejected, PlatformUnavailable
from connectors.http import ApiError, BadRequest, Inbound, NotFound, Outbound, Unauthorized
from core.delivery.outbox import Outbox
from core.delivery.replies import Replies
from core.engine.engine import Result as EngineResult
from core.errors import ConfigError, InputError
from core.jobs.lifecycle import Accepted, NewJob
from core.policy import parse_policy
from core.settings import Settings
from core.store import JobRow, ReplyRow
from core.tasks.kinds import Task
from tests.fakes.backends import ScriptedBackend
from webhooks.app import create_app
from webhooks.services import Services

GOOD = json.dumps({"subject": "s", "preheader": "p", "body": "Hi {first_name}, hello."})
KEY = "echo-key"


class Echo:
    """A platform that posts records and reads back what Baton wrote for them."""

    name = "echo"
    batch_size = 10

    def __init__(self, outbox: Outbox, replies: Replies) -> None:
        self.outbox, self.replies = outbox, replies
        self.records: dict[str, dict[str, Any]] = {}  # the platform's side: record id -> fields
        self.written: list[str] = []  # every write the platform received
        self.completed: list[list[str]] = []  # every completion call: the reply keys in it
        self.fail_prepare: set[str] = set()
        self.limit = 100  # answers one completion call carries at most

    def pages(self) -> Mapping[str, Page]:
        return {"hello": lambda req: Outbound.html(200, "<p>hello</p>")}

    def verify(self, req: Inbound) -> None:
        if req.headers.get("X-Echo-Key") != KEY:
            raise Unauthorized("wrong key")

    def parse(self, req: Inbound) -> Delivery | Outbound:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise BadRequest("expected {ids: [...]}")
        jobs = [NewJob(external_id=f"{req.route}:{i}", kind=f"echo.{req.route}", tenant="echo:acme",
                       payload={"id": str(i), **({"reply_key": f"echo:acme:{i}"}
                                                 if req.route == "ask" else {})})
                for i in body["ids"]]
        if req.route == "items":
            return Delivery("echo", jobs)
        if req.route == "ask":
            return Delivery("echo", jobs, reply=ReplyWait(f"echo:acme:{body['ids'][0]}", "acme",
                                                          float(body.get("wait", 0))))
        raise NotFound("no such route")

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        if reply is not None:
            return Outbound.json(answer=reply.outputs if reply.reply == "sync" else "later")
        return Outbound.json(accepted=len(accepted.new))

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        return Outbound(error.status, f"refused: {error.reason}", "text/plain")

    def label(self, route: str) -> str:
        return route

    def job_kinds(self) -> Sequence[str]:
        return ("echo.items", "echo.ask")

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        out: list[Task | Finished | BaseException] = []
        for job in jobs:
            record_id = job.payload["id"]
            if record_id in self.fail_prepare:
                out.append(InputError(f"record {record_id} is gone"))
            elif record_id == "skip":
                out.append(Finished({"skipped": "nothing to write"}))
            else:
                out.append(Task(kind="email", context={"first_name": f"N{record_id}"},
                                brief="Say hello", tenant=job.tenant, id=job.id))
        return out

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, result in done:
            if isinstance(result, BaseException):
                outcomes.append(result)
                continue
            record_id = job.payload["id"]

            def perform(record_id: str = record_id, result: EngineResult = result) -> dict[str, Any]:
                self.written.append(record_id)
                self.records[record_id] = {"body": result.output["body"]}
                return {"record": record_id}

            outcomes.append(self.outbox.once(f"w:{job.id}", job_id=job.id, target=f"echo:{record_id}",
                                             perform=perform, find=lambda: None))
        return outcomes

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        if isinstance(outcome, BaseException):
            return {"error": str(outcome)}
        return {"record": job.payload["id"], "body": self.records[job.payload["id"]]["body"]}

    def complete(self, account: str) -> int:
        rows = self.replies.claim("echo", account, lease=timedelta(seconds=30), limit=self.limit)
        if rows:
            self.completed.append([r.key for r in rows])
            self.replies.sent([r.key for r in rows])
        return len(rows)

    def find_contact(self, tenant: str, key: str) -> Contact | None:
        return Contact(tenant, key, {"first_name": "N"}) if key in self.records else None


@pytest.fixture
def setup(database_url: str | None, tmp_path: Path) -> Iterator[tuple[Services, Echo, ConnectorJobs,
                                                                        ScriptedBackend]]:
    cfg = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 50, max_batch=8)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    cloud.healthy = (False, "not configured")
    engine_app = build_app(cfg, parse_policy('[[routes]]\nname = "local"\naction = "local"\n'),
                           backends={"local": local, "cloud": cloud})
    services = build_services(cfg, engine_app=lambda: engine_app)  # queued: the test runs the jobs
    echo = Echo(Outbox(services.store), Replies(services.store))
    services.connectors.register("echo", echo)
    jobs = ConnectorJobs(services.connectors, lambda: engine_app.engine, Replies(services.store))
    yield services, echo, jobs, local
    services.store.close()
    engine_app.close()


def _post(client: FlaskClient, route: str, body: dict[str, Any], key: str = KEY) -> Any:
    return client.post(f"/echo/{route}", json=body, headers={"X-Echo-Key": key})


def _queued(services: Services) -> list[JobRow]:
    """The recorded jobs, claimed as a worker claims them."""
    rows = [services.jobs.claim(i, timedelta(seconds=60))
            for i in services.jobs.take_undispatched(100)]
    return [r for r in rows if r is not None]


def test_the_generic_route_verifies_parses_records_and_acks(setup: Any) -> None:
    services, _, _, _ = setup
    client = create_app(services).test_client()
    refused = _post(client, "items", {"ids": [1]}, key="wrong")
    assert refused.status_code == 401 and refused.text == "refused: wrong key"  # the platform's form
    garbage = client.post("/echo/items", data=b"{", content_type="application/json",
                          headers={"X-Echo-Key": KEY})
    assert garbage.status_code == 400 and garbage.text.startswith("refused: malformed JSON")
    assert _queued(services) == []  # nothing recorded for a refused request
    assert _post(client, "items", {"ids": [1, 2]}).json == {"accepted": 2}
    assert _post(client, "items", {"ids": [1, 2]}).json == {"accepted": 0}  # deduped
    assert client.get("/echo/hello").text == "<p>hello</p>"
    assert client.post("/echo/hello").status_code == 405
    assert client.get("/echo/items").status_code == 405
    assert client.post("/nope/items", json={}).json == {"error": "not_found", "reason": "no such route"}
    assert sorted(j.payload["id"] for j in _queued(services)) == ["1", "2"]


def test_one_batch_is_prepared_generated_and_written_together_and_only_once(setup: Any) -> None:
    services, echo, flow, local = setup
    services.jobs.accept("echo", [NewJob(f"i:{i}", "echo.items", "echo:acme", {"id": i})
                                  for i in ("1", "2", "skip", "3")])
    rows = _queued(services)
    echo.fail_prepare.add("3")
    outcomes = flow.run_many(rows)
    assert local.batches == [2]  # the two that need the model, decoded as one batch
    assert [o.get("record") if isinstance(o, dict) else type(o).__name__ for o in outcomes] == \
        ["1", "2", None, "InputError"]
    assert outcomes[2] == {"skipped": "nothing to write"}
    assert echo.records["1"]["body"] == "Hi N1, hello."
    flow.run_many(rows[:2])  # the same jobs run again (a worker died before it recorded the end)
    assert echo.written == ["1", "2"]  # written once each
    assert flow.run_many([]) == []


def test_answer_now_if_quick_else_later_by_completion(setup: Any) -> None:
    services, echo, flow, local = setup
    client = create_app(services).test_client()
    assert _post(client, "ask", {"ids": [7], "wait": 0}).json == {"answer": "later"}
    assert _post(client, "ask", {"ids": [8], "wait": 0}).json == {"answer": "later"}
    rows = _queued(services)
    outcomes = flow.run_many(rows)  # jobs a request waits for run one by one: none waits for another
    assert [o["answered"] for o in outcomes] == ["callback", "callback"]  # type: ignore[index]
    assert echo.completed == [["echo:acme:7"], ["echo:acme:8"]]
    prompts = len(local.prompts)
    again = flow.run_many(rows)  # answered already: the model is not asked again, nothing resent
    assert len(local.prompts) == prompts and len(echo.completed) == 2
    assert [o["state"] for o in again] == ["done", "done"]  # type: ignore[index]
    # the worker answered first: a redelivered request takes the outputs in its response
    services.replies.open("echo:acme:9", platform="echo", account="acme")  # a request waits
    services.jobs.accept("echo", [NewJob("ask:9", "echo.ask", "echo:acme",
                                         {"id": "9", "reply_key": "echo:acme:9"})])
    [sync] = flow.run_many(_queued(services))
    assert services.replies.get("echo:acme:9").reply == "sync"
    assert sync == {"answered": "sync", "outputs": {"record": "9", "body": "Hi N9, hello."}}


def test_a_backlog_of_older_answers_is_completed_until_the_jobs_own_is_out(setup: Any) -> None:
    services, echo, flow, _ = setup
    echo.limit = 2  # a platform that takes two answers a call (HubSpot: 100)
    for n in range(5):  # older answers, ready since an outage
        services.replies.open(f"echo:acme:old{n}", platform="echo", account="acme")
        services.replies.give_up(f"echo:acme:old{n}")
        services.replies.answer(f"echo:acme:old{n}", {"n": str(n)})
    services.replies.open("echo:acme:5", platform="echo", account="acme")
    services.replies.give_up("echo:acme:5")
    services.jobs.accept("echo", [NewJob("ask:5", "echo.ask", "echo:acme",
                                         {"id": "5", "reply_key": "echo:acme:5"})])
    [outcome] = flow.run_many(_queued(services))
    assert outcome["state"] == "done"  # type: ignore[index]
    assert echo.completed == [["echo:acme:old0", "echo:acme:old1"], ["echo:acme:old2", "echo:acme:old3"],
                              ["echo:acme:old4", "echo:acme:5"]]


def test_a_completion_that_fails_keeps_the_answer_and_retries_the_job(setup: Any) -> None:
    services, echo, flow, _ = setup
    client = create_app(services).test_client()
    _post(client, "ask", {"ids": [4], "wait": 0})
    rows = _queued(services)

    def down(account: str) -> int:
        raise PlatformRejected("403: the app lost its scope", status=403)

    echo.complete = down  # type: ignore[method-assign]
    [outcome] = flow.run_many(rows)
    assert isinstance(outcome, PlatformUnavailable) and "answer is kept" in str(outcome)
    assert services.replies.get("echo:acme:4").state == "ready"  # kept for the retry


def test_an_engine_that_cannot_run_fails_each_job_of_the_batch_and_nothing_else(setup: Any) -> None:
    services, echo, _, _ = setup

    def no_engine() -> Any:
        raise ConfigError("BATON_MODEL_PATH: no such file")

    flow = ConnectorJobs(services.connectors, no_engine, Replies(services.store))
    services.jobs.accept("echo", [NewJob(f"i:{i}", "echo.items", "echo:acme", {"id": i})
                                  for i in ("1", "2", "skip")])
    outcomes = flow.run_many(_queued(services))
    assert [type(o).__name__ for o in outcomes] == ["ConfigError", "ConfigError", "dict"]
    assert echo.written == []


def test_every_registered_connector_gets_the_one_handler(setup: Any) -> None:
    services, _, flow, _ = setup
    handlers = flow.handlers()
    assert {"hubspot.event", "hubspot.action", "echo.items", "echo.ask"} <= set(handlers)
    assert set(flow.batch_handlers()) == set(handlers)
    registry_types: Connector = services.connectors.get("echo")  # the registry's type
    assert registry_types.find_contact("echo:acme", "nobody") is None

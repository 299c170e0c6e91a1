"""``Prefer: wait=N`` on the task API: one round trip when the worker is quick, the state as it is
when it is not, and never every web thread held (fixtures in conftest.py)."""

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from baton.wiring import build_app, build_services, default_handlers
from core.credentials.apikeys import ApiKeys
from core.jobs.runner import JobRunner
from core.policy import parse_policy
from core.settings import Settings
from tests.fakes.backends import ScriptedBackend
from tests.webhooks.conftest import GOOD
from webhooks.app import create_app
from webhooks.services import Services

BODY = {"kind": "email", "context": {"first_name": "Maya", "company": "Fjord"},
        "brief": "Say hello"}


@pytest.fixture
def queued(database_url: str | None, tmp_path: Path) -> Iterator[tuple[Services, JobRunner]]:
    """A web app whose jobs wait in the queue until the test runs them with ``runner``."""
    cfg = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 10)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    cloud.healthy = (False, "not configured")
    engine_app = build_app(cfg, parse_policy('[[routes]]\nname = "l"\naction = "local"\n'),
                           backends={"local": local, "cloud": cloud})
    svc = build_services(cfg, engine_app=lambda: engine_app)
    runner = JobRunner(svc.jobs, default_handlers(lambda: engine_app), timedelta(minutes=5))
    yield svc, runner
    svc.store.close()
    engine_app.close()


def auth(svc: Services, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {ApiKeys(svc.store).create('zapier', tenant)[1]}"}


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


def run_when_recorded(svc: Services, runner: JobRunner) -> str:
    """Run the first job the web records, as a worker would; return its id."""
    while not (taken := svc.jobs.take_undispatched(1)):
        threading.Event().wait(0.01)
    assert runner.run(taken[0]) == "done"
    return taken[0]


def test_a_submit_that_prefers_to_wait_gets_the_result_in_one_round_trip(
        queued: tuple[Services, JobRunner]) -> None:
    svc, runner = queued
    client = create_app(svc).test_client()
    headers = {**auth(svc), "Prefer": "respond-async, wait=20"}
    thread, out = in_background(lambda: client.post("/v1/tasks", json=BODY, headers=headers))
    job_id = run_when_recorded(svc, runner)
    thread.join()
    (answer,) = out
    assert answer.status_code == 200 and answer.json["state"] == "done", answer.json
    assert answer.json["id"] == job_id and answer.headers["Location"] == f"/v1/tasks/{job_id}"
    assert answer.json["result"]["output"]["body"].startswith("Hi Maya,")


def test_a_poll_that_prefers_to_wait_returns_when_the_task_ends(
        queued: tuple[Services, JobRunner]) -> None:
    svc, runner = queued
    client = create_app(svc).test_client()
    headers = auth(svc)
    made = client.post("/v1/tasks", json=BODY, headers=headers)
    assert made.status_code == 202 and made.json["state"] == "queued"
    job_id = made.json["id"]
    thread, out = in_background(lambda: client.get(f"/v1/tasks/{job_id}",
                                                   headers={**headers, "Prefer": "wait=20"}))
    assert run_when_recorded(svc, runner) == job_id
    thread.join()
    assert out[0].status_code == 200 and out[0].json["state"] == "done"


def test_a_wait_that_runs_out_answers_with_the_state_as_it_is(
        queued: tuple[Services, JobRunner]) -> None:
    svc, _ = queued
    client = create_app(svc).test_client()
    made = client.post("/v1/tasks", json=BODY, headers={**auth(svc), "Prefer": "wait=1"})
    assert made.status_code == 202 and made.json["state"] == "queued"


def test_when_every_waiting_slot_is_taken_the_answer_comes_at_once(
        queued: tuple[Services, JobRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, _ = queued
    client = create_app(svc).test_client()
    svc.sync_waits.busy = svc.sync_waits.slots  # every other web thread waits already

    def no_sleep(seconds: float) -> None:
        raise AssertionError("a request waited although no slot was free")

    monkeypatch.setattr("webhooks.common.time.sleep", no_sleep)
    made = client.post("/v1/tasks", json=BODY, headers={**auth(svc), "Prefer": "wait=25"})
    assert made.status_code == 202 and made.json["state"] == "queued"


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=1.5", "wait=", "wait=٣",
                                    "handling=lenient", "wait=0"])
def test_a_preference_that_cannot_be_followed_is_ignored_and_not_applied(
        queued: tuple[Services, JobRunner], prefer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7240: a server MUST ignore a preference it cannot follow; Preference-Applied (absent
    here) tells the client whether it waited."""
    svc, _ = queued
    client = create_app(svc).test_client()

    def no_sleep(seconds: float) -> None:
        raise AssertionError("waited for an ignored preference")

    monkeypatch.setattr("webhooks.common.time.sleep", no_sleep)
    made = client.post("/v1/tasks", json=BODY, headers={**auth(svc), "Prefer": prefer})
    assert made.status_code == 202 and made.json["state"] == "queued", made.json
    assert "Preference-Applied" not in made.headers and made.headers["Vary"] == "Prefer"


def test_a_wait_is_capped_and_says_what_it_applied(
        queued: tuple[Services, JobRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, _ = queued
    client = create_app(svc).test_client()
    waited: list[float] = []
    monkeypatch.setattr("webhooks.tasks.wait_for_job",
                        lambda job_id, seconds, api: waited.append(seconds) or None)
    headers = auth(svc)
    for prefer, applied in (("wait=99999999999999999999", 25), ("respond-async; x=1, wait=007", 7),
                            ('wait="3", wait=9', 3)):
        made = client.post("/v1/tasks", json=BODY, headers={**headers, "Prefer": prefer})
        assert made.status_code == 202 and made.headers["Preference-Applied"] == f"wait={applied}"
    assert waited == [25, 7, 3]


def test_a_repeated_submit_that_waits_and_finds_the_task_unfinished_answers_202(
        queued: tuple[Services, JobRunner]) -> None:
    svc, runner = queued
    client = create_app(svc).test_client()
    headers = {**auth(svc), "Idempotency-Key": "k1", "Prefer": "wait=1"}
    first = client.post("/v1/tasks", json=BODY, headers=headers)
    again = client.post("/v1/tasks", json=BODY, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json == {"id": first.json["id"], "state": "queued"}
    run_when_recorded(svc, runner)
    done = client.post("/v1/tasks", json=BODY, headers=headers)
    assert done.status_code == 200 and done.json["state"] == "done" and done.json["result"]


def test_task_api_waits_leave_a_slot_for_platform_actions(
        queued: tuple[Services, JobRunner]) -> None:
    waits = queued[0].sync_waits
    assert waits.slots == 3  # four web threads
    with waits.slot(api=True) as a, waits.slot(api=True) as b, waits.slot(api=True) as c:
        assert (a, b, c) == (True, True, False)
        with waits.slot() as action, waits.slot() as another:
            assert (action, another) == (True, False)
    assert (waits.busy, waits.busy_api) == (0, 0)


def test_a_wait_never_shows_another_tenants_task(queued: tuple[Services, JobRunner]) -> None:
    svc, runner = queued
    client = create_app(svc).test_client()
    made = client.post("/v1/tasks", json=BODY, headers=auth(svc, "acme"))
    run_when_recorded(svc, runner)
    other = client.get(f"/v1/tasks/{made.json['id']}",
                       headers={**auth(svc, "globex"), "Prefer": "wait=5"})
    assert other.status_code == 404

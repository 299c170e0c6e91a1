"""The gateway's HubSpot webhook route, task API and ops routes (fixtures in conftest.py)."""

import json
import logging
import threading

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.signatures import hubspot_v1, hubspot_v3
from core.credentials.apikeys import ApiKeys
from core.store import JobRow
from tests.webhooks.conftest import SECRET
from webhooks.app import create_app
from webhooks.services import Services


def events(n: int, start: int = 0, portal: int = 62515) -> bytes:
    return json.dumps([{"eventId": start + i, "subscriptionId": 7, "portalId": portal,
                        "occurredAt": 1_700_000_000_000, "subscriptionType": "contact.creation",
                        "attemptNumber": 0, "objectId": 1000 + i} for i in range(n)]).encode()


def post_v1(client: FlaskClient, body: bytes, **kw: object) -> object:
    return client.post("/hubspot/webhooks", data=body, content_type="application/json",
                       headers={"X-HubSpot-Signature": hubspot_v1(SECRET, body),
                                "X-HubSpot-Signature-Version": "v1"}, **kw)


def jobs_in(services: Services) -> int:
    with services.store.session() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(JobRow)).scalar_one())


def test_signed_batch_is_recorded_once(client: FlaskClient, services: Services) -> None:
    body = events(100)
    first = post_v1(client, body)
    assert first.status_code == 200 and first.json == {"accepted": 100, "duplicates": 0}
    again = post_v1(client, body)
    assert again.status_code == 200 and again.json == {"accepted": 0, "duplicates": 100}
    assert jobs_in(services) == 100


def test_concurrent_redeliveries_make_one_job_per_event(services: Services) -> None:
    app = create_app(services)
    body = events(30)
    barrier = threading.Barrier(3)
    codes: list[int] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        codes.append(post_v1(client, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200, 200, 200]
    assert jobs_in(services) == 30


def test_v3_signature_over_the_full_url(client: FlaskClient, services: Services) -> None:
    body = events(1)
    url = "http://baton.example/hubspot/webhooks?portalId=62515&x=%40a"
    ts = str(int(services.clock() * 1000))
    headers = {"Host": "baton.example", "X-HubSpot-Request-Timestamp": ts,
               "X-HubSpot-Signature-v3": hubspot_v3(SECRET, "POST", url, body, ts)}
    ok = client.post("/hubspot/webhooks?portalId=62515&x=%40a", data=body, headers=headers,
                     content_type="application/json")
    assert ok.status_code == 200, ok.json
    stale = str(int((services.clock() - 301) * 1000))
    headers.update({"X-HubSpot-Request-Timestamp": stale,
                    "X-HubSpot-Signature-v3": hubspot_v3(SECRET, "POST", url, body, stale)})
    old = client.post("/hubspot/webhooks?portalId=62515&x=%40a", data=body, headers=headers,
                      content_type="application/json")
    assert old.status_code == 401 and "5-minute window" in old.json["reason"]


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing X-HubSpot-Signature"),
    ({"X-HubSpot-Signature": "0" * 64}, "v1 signature does not match"),
    ({"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "nope"}, "malformed"),
])
def test_bad_signatures_get_401_and_record_nothing(client: FlaskClient, services: Services,
                                                   headers: dict[str, str], reason: str) -> None:
    r = client.post("/hubspot/webhooks", data=events(2), headers=headers,
                    content_type="application/json")
    assert r.status_code == 401 and reason in r.json["reason"] and r.json["error"] == "unauthorized"
    assert jobs_in(services) == 0


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), [
    (b"[{", "application/json", 400, "malformed JSON"),
    (b'{"a": 1}', "application/json", 400, "expected a JSON array"),
    (b"[]", "application/json", 400, "expected 1 to 1000 events"),
    (b'[{"eventId": "1", "portalId": 1, "objectId": 1}]', "application/json", 400, "eventId"),
    (b"\xff\xfe[]", "application/json", 400, "not UTF-8"),
    (b'[{"eventId": 1, "portalId": 1, "objectId": 1, "subscriptionId": "s\\u0000",'
     b' "subscriptionType": "contact.creation"}]', "application/json", 400, "NUL"),
    (events(1), "text/plain", 415, "expected application/json"),
    (b"[" + b" " * 70_000 + b"]", "application/json", 413, "larger than 65536 bytes"),
])
def test_client_mistakes_are_4xx_with_a_reason(client: FlaskClient, services: Services,
                                               body: bytes, content_type: str, status: int,
                                               reason: str) -> None:
    r = client.post("/hubspot/webhooks", data=body, content_type=content_type,
                    headers={"X-HubSpot-Signature": hubspot_v1(SECRET, body)})
    assert r.status_code == status and reason in r.json["reason"]
    assert jobs_in(services) == 0


def test_unknown_routes_and_methods_are_json(client: FlaskClient) -> None:
    assert client.get("/nope").json == {"error": "not_found", "reason": "no such route"}
    r = client.get("/hubspot/webhooks")
    assert r.status_code == 405 and r.json["error"] == "method_not_allowed"
    for path in ("/v1/tasks", "/slack/events", "/salesforce/outbound"):  # posted, not read
        assert client.get(path).status_code == 405, path
    assert client.post("/hubspot/install").status_code == 405  # a page is read, not posted
    assert client.head("/hubspot/install").status_code == client.get("/hubspot/install").status_code
    assert client.post("/nohub/webhooks", json=[]).json == {"error": "not_found",
                                                             "reason": "no such route"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                   lambda c: st.lists(c, max_size=4)
                                   | st.dictionaries(st.text(max_size=8), c, max_size=4),
                                   max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_fuzzed_signed_bodies_never_cause_a_5xx(client: FlaskClient, body: bytes) -> None:
    r = post_v1(client, body)
    assert r.status_code < 500, r.json


def test_ops_endpoints(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {
        "database": "ok", "queue": "ok", "model": "ok"}
    post_v1(client, events(3))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'baton_http_requests_total{route="/hubspot/webhooks",status="200"} 1.0' in text
    assert 'baton_inbox_events_total{outcome="new",source="hubspot"} 3.0' in text
    assert "baton_jobs{" in text
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.") and "/v1/tasks" in spec["paths"]


def test_task_api_end_to_end(client: FlaskClient, services: Services) -> None:
    _, key = ApiKeys(services.store).create("zapier", "acme")
    _, other = ApiKeys(services.store).create("braze", "globex")
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/v1/tasks", json={"kind": "email", "context": {}}).status_code == 401
    bad = client.post("/v1/tasks", json={"kind": "email", "contxt": {}}, headers=auth)
    assert bad.status_code == 400 and "context: required key is missing" in bad.json["reason"]
    body = {"kind": "email", "context": {"first_name": "Maya", "company": "Fjord"},
            "brief": "Say hello"}
    made = client.post("/v1/tasks", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert made.status_code == 202
    job_id = made.json["id"]
    assert made.headers["Location"] == f"/v1/tasks/{job_id}"
    again = client.post("/v1/tasks", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json["id"] == job_id
    shown = client.get(f"/v1/tasks/{job_id}", headers=auth)
    assert shown.json["state"] == "done", shown.json
    assert shown.json["result"]["output"]["body"].startswith("Hi Maya,")
    assert client.get(f"/v1/tasks/{job_id}",
                      headers={"Authorization": f"Bearer {other}"}).status_code == 404
    wrong = client.post("/v1/tasks", json={"kind": "poem", "context": {"a": "b"}}, headers=auth)
    assert wrong.status_code == 202
    failed = client.get(f"/v1/tasks/{wrong.json['id']}", headers=auth).json
    assert failed["state"] == "failed" and "unknown task kind 'poem'" in failed["error"]
    for brief, reason in (("", "brief: empty; say what the email is about"),
                          (" \n", "brief: empty"), ("x" * 10_000, "at most 4000 characters")):
        refused = client.post("/v1/tasks", json={**body, "brief": brief}, headers=auth)
        assert refused.status_code == 400 and reason in refused.json["reason"], refused.json
    nameless = client.post("/v1/tasks", json={**body, "context": {"company": "Fjord"}},
                           headers=auth)
    failed = client.get(f"/v1/tasks/{nameless.json['id']}", headers=auth).json
    assert failed["state"] == "failed" and "no first_name to greet" in failed["error"]
    assert failed["result"] is None  # no made-up greeting


def test_api_keys_are_stored_hashed(services: Services) -> None:
    _, key = ApiKeys(services.store).create("zapier", "acme")
    with services.store.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(sa.text("SELECT * FROM api_keys"))],
                          default=str)
    assert key not in dump and key[3:] not in dump
    assert ApiKeys(services.store).tenant_for(key) == "acme"  # the hash still finds the key


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    return [(r.levelno, r.__dict__["status"]) for r in caplog.records
            if r.name == "baton.web" and r.getMessage() == "request"]


def test_access_log_at_info_holds_the_problems_by_default(client: FlaskClient, services: Services,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="baton.web")
    assert post_v1(client, events(1)).status_code == 200
    assert client.post("/hubspot/webhooks", data=b"[]", content_type="application/json").status_code == 401
    assert _request_lines(caplog) == [(logging.INFO, 401)]
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="baton.web")  # every request is there at DEBUG
    assert post_v1(client, events(1, start=50)).status_code == 200
    assert _request_lines(caplog) == [(logging.DEBUG, 200)]


def test_access_log_all_gives_every_request_a_line(services: Services,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    services.settings = services.settings.model_copy(update={"access_log": "all"})
    client = create_app(services).test_client()
    caplog.set_level(logging.INFO, logger="baton.web")
    assert post_v1(client, events(1)).status_code == 200
    assert client.get("/nope").status_code == 404
    assert _request_lines(caplog) == [(logging.INFO, 200), (logging.INFO, 404)]


def test_metrics_can_require_a_bearer_token(services: Services) -> None:
    import dataclasses

    from pydantic import SecretStr

    settings = services.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    client = create_app(dataclasses.replace(services, settings=settings)).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert r.status_code == 200 and "baton_" in r.get_data(as_text=True)

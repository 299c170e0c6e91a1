"""Webhook acks while workflow actions wait for their jobs, with and without the bound on waiting
threads, in one run.

A web process has a fixed pool of threads (gunicorn gthread: BATON_WEB_THREADS, 4). A HubSpot
workflow action waits up to BATON_HUBSPOT_SYNC_BUDGET for its job before answering BLOCK. Here the
jobs are never run (a model that never answers), so every action waits its whole budget. Eight
actions arrive, then forty signed webhook deliveries, all through the same 4-thread pool calling
the real Flask app (real inbox on SQLite, the real hubspot-api-client against the loopback fake
HubSpot for the portal check). Run twice: with Baton's bound (at most threads - 1 waiters; the
others answer BLOCK at once) and unbounded (every thread may wait: the behaviour before).

Last line: webhook_p99_ratio=<unbounded p99 / bounded p99> bounded_p99_ms=<...>.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from baton.wiring import build_app, build_services
from connectors.hubspot.settings import HubSpotSettings
from connectors.signatures import hubspot_v1, hubspot_v2
from core.policy import parse_policy
from core.settings import Settings
from tests.fakes.backends import ScriptedBackend
from tests.fakes.hubspot import FakeHubSpot
from webhooks.app import create_app

SECRET, TOKEN, PORTAL = "bench-secret", "pat-bench", 7
THREADS, ACTIONS, WEBHOOKS, BUDGET = 4, 8, 40, 1.0


def run(fake: FakeHubSpot, bounded: bool) -> list[float]:
    data = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    cfg = Settings(data_dir=data, web_threads=THREADS)
    hubspot = HubSpotSettings(client_secret=SECRET, api_base=fake.url,  # type: ignore[arg-type]
                              portal_id=PORTAL, access_token=TOKEN,  # type: ignore[arg-type]
                              sync_budget=BUDGET)
    local = ScriptedBackend("llama", local=True, model="gemma")
    policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n')
    engine_app = build_app(cfg, policy, backends={"local": local, "cloud": local})
    services = build_services(cfg, immediate=False, engine_app=lambda: engine_app,
                              connector_settings={"hubspot": hubspot})
    if not bounded:
        services.sync_waits.slots = 1_000  # as before: any number of threads may wait
    client = create_app(services).test_client()

    def action(i: int) -> float:
        body = json.dumps({"callbackId": f"cb-{bounded}-{i}", "origin": {"portalId": PORTAL},
                           "object": {"objectId": 101, "objectType": "CONTACT"},
                           "inputFields": {"brief": "Thank them"}}).encode()
        url = "http://localhost/hubspot/actions/email"
        started = time.perf_counter()
        client.post("/hubspot/actions/email", data=body, content_type="application/json",
                    headers={"X-HubSpot-Signature-Version": "v2",
                             "X-HubSpot-Signature": hubspot_v2(SECRET, "POST", url, body)})
        return time.perf_counter() - started

    def webhook(i: int, arrived: float) -> float:
        """Time from the delivery's arrival (queued for a thread, as in gunicorn) to its ack."""
        body = json.dumps([{"eventId": i, "subscriptionId": 1, "portalId": PORTAL,
                            "objectId": 101, "subscriptionType": "contact.deletion"}]).encode()
        r = client.post("/hubspot/webhooks", data=body, content_type="application/json",
                        headers={"X-HubSpot-Signature": hubspot_v1(SECRET, body)})
        assert r.status_code == 200, r.get_data(as_text=True)
        return time.perf_counter() - arrived

    with ThreadPoolExecutor(THREADS) as pool:  # the web process's threads
        waits = [pool.submit(action, i) for i in range(ACTIONS)]
        time.sleep(0.05)  # the actions arrive first
        acks = [pool.submit(webhook, i, time.perf_counter()) for i in range(WEBHOOKS)]
        latencies = [f.result() for f in acks]
        for f in waits:
            f.result()
    services.store.close()
    engine_app.close()
    return latencies


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.99 * len(values)) - 1)]


def main() -> None:
    with FakeHubSpot(client_secret=SECRET) as fake:
        fake.private_app(PORTAL, TOKEN)
        fake.create_baton_properties(PORTAL)
        fake.portal(PORTAL).add("contacts", "101", firstname="Maya")
        results: dict[str, Any] = {}
        for bounded in (True, False, True, False):  # alternating, the last of each kept
            results["bounded" if bounded else "unbounded"] = run(fake, bounded)
    for name, lat in results.items():
        print(f"{name}: webhook ack p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p99 {p99(lat) * 1000:.1f} ms ({WEBHOOKS} deliveries behind {ACTIONS} waiting "
              f"actions, {THREADS} threads, budget {BUDGET:g} s)")
    ratio = p99(results["unbounded"]) / p99(results["bounded"])
    print(f"webhook_p99_ratio={ratio:.1f} bounded_p99_ms={p99(results['bounded']) * 1000:.1f}")


if __name__ == "__main__":
    main()

"""A HubSpot webhook burst (40 new contacts) through the connector with the real embedded model:
one job at a time (the connectors' job handler, ``ConnectorJobs.run`` per job) against the
worker's batch path (``ConnectorJobs.run_many`` over the 10 job ids of each queue message: one
``engine.run_many`` per message). Same connector,
engine, model and loopback HubSpot (``tests/fakes/hubspot.py``, real hubspot-api-client), one run;
context fetch and write-back included.

Last line: speedup=<one-by-one seconds / batched seconds> emails_s=<batched emails per second>.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from baton.wiring import build_app, build_connectors
from bench._common import bench_settings
from connectors.base import ConnectorJobs
from connectors.hubspot.settings import HubSpotSettings
from core.delivery.replies import Replies
from core.errors import BatonError
from core.jobs.lifecycle import Jobs, NewJob
from core.policy import parse_policy
from core.store import JobRow
from tests.fakes.hubspot import FakeHubSpot

CONTACTS = 40
CHUNK = 10  # job ids per queue message (core.jobs.queue.CHUNK)
PORTAL, TOKEN = 7, "pat-bench"
NAMES = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo"]
BOUGHT = ["Trail Runner 2 shoes", "Rain Shell jacket", "Summit 40L backpack", "Ridge poles"]


def seed(fake: FakeHubSpot, offset: int) -> list[str]:
    portal = fake.portal(PORTAL)
    ids = []
    for i in range(CONTACTS):
        cid = str(offset + i)
        portal.add("contacts", cid, firstname=NAMES[i % 10], lastname=f"Tester{i}",
                   email=f"c{cid}@example.com", company=f"Company {i}")
        deal, item = str(100_000 + offset + i), str(200_000 + offset + i)  # HubSpot ids are numbers
        portal.add("deals", deal, dealname="order")
        portal.add("line_items", item, name=BOUGHT[i % 4], quantity="1")
        portal.link("contacts", cid, "deals", deal)
        portal.link("deals", deal, "line_items", item)
        ids.append(cid)
    return ids


def _attempt(handle: Callable[[JobRow], dict[str, Any]], row: JobRow) -> dict[str, Any] | BatonError:
    try:
        return handle(row)
    except BatonError as exc:  # counted as not written back, as the job runner would retry it
        return exc


def main() -> None:
    with FakeHubSpot() as fake:
        fake.private_app(PORTAL, TOKEN)
        fake.create_baton_properties(PORTAL)
        settings = bench_settings()
        hubspot = HubSpotSettings(api_base=fake.url, portal_id=PORTAL,
                                  access_token=TOKEN, requests_per_10s=1000)  # type: ignore[arg-type]
        policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n'
                              '[local]\nbackend = "llama"\nmax_tokens = 300\ntemperature = 0.6\n')
        app = build_app(settings, policy)
        hub = ConnectorJobs(build_connectors(settings, app.store, lambda: app, {"hubspot": hubspot}),
                            lambda: app.engine,
                            Replies(app.store))
        jobs = Jobs(app.store)

        def job_rows(contact_ids: list[str], tag: str) -> list[JobRow]:
            made = jobs.accept("hubspot", [NewJob(
                external_id=f"{tag}:{c}", kind="hubspot.event", tenant=f"hubspot:{PORTAL}",
                payload={"eventId": int(c), "portalId": PORTAL, "objectId": int(c),
                         "subscriptionType": "contact.creation"}) for c in contact_ids]).job_ids
            rows = [jobs.claim(i, timedelta(minutes=30)) for i in made]  # as a worker claims them
            return [r for r in rows if r is not None]

        hub.run(job_rows(seed(fake, 900), "warm")[0])  # load the model, warm the cache

        rows = job_rows(seed(fake, 1000), "single")
        start = time.perf_counter()
        single = [_attempt(hub.run, r) for r in rows]
        one_by_one = time.perf_counter() - start

        rows = job_rows(seed(fake, 2000), "batch")
        start = time.perf_counter()
        batched = [o for i in range(0, len(rows), CHUNK) for o in hub.run_many(rows[i:i + CHUNK])]
        in_batches = time.perf_counter() - start

        ok_single = sum(1 for o in single if isinstance(o, dict) and "receipt_id" in o)
        ok_batched = sum(1 for o in batched if isinstance(o, dict) and "receipt_id" in o)
        notes = sum(len(fake.notes_of(PORTAL, str(c))) for c in range(2000, 2000 + CONTACTS))
        app.close()
    print(f"{CONTACTS} new contacts, real hubspot-api-client against a loopback HubSpot, "
          f"embedded model, {settings.llama_threads} threads")
    print(f"one by one : {one_by_one:6.1f} s, {ok_single}/{CONTACTS} written back")
    print(f"batched x{CHUNK}: {in_batches:6.1f} s, {ok_batched}/{CONTACTS} written back, "
          f"{notes} notes")
    print(f"speedup={one_by_one / in_batches:.2f} emails_s={CONTACTS / in_batches:.2f}")


if __name__ == "__main__":
    main()

"""One 100-notification Salesforce outbound message end to end on the embedded model: the SOAP
request into the app, the inbox, the queue, the worker's batch (context by SOQL, one
``engine.run_many``, fields and Tasks written back) against a fake org behind the real
simple-salesforce client (``tests/fakes/salesforce.py``). Run twice side by side in one process:
the Salesforce connector's batch (the whole message, ``SalesforceConnector.batch_size``) and the
queue's default message size (10 jobs per message, as HubSpot's jobs go).

Last line: calls_per_record=<Salesforce API calls / records, whole-message batch>
emails_s=<emails written per second, whole-message batch>.
"""

from __future__ import annotations

import time
from typing import Any

from baton.wiring import build_app, build_services
from bench._common import bench_settings
from connectors.hubspot.settings import HubSpotSettings
from connectors.salesforce.auth import OrgLogin
from connectors.salesforce.settings import SalesforceSettings
from core.jobs.queue import CHUNK
from core.policy import parse_policy
from tests.connectors.salesforce.conftest import notifications
from tests.fakes.salesforce import FakeSalesforce, new_app
from webhooks.app import create_app

RECORDS = 100
NAMES = ["Zoë", "Ayşe", "健太", "José", "Łucja", "Nguyễn", "Ólafur", "İlkay", "Maya", "Bo"]
BOUGHT = ["Trail Runner 2 shoes", "Rain Shell jacket", "Summit 40L backpack", "Ridge poles"]


def seed(fake: FakeSalesforce) -> list[tuple[str, str, dict[str, str]]]:
    """100 Contacts, each with an Account and a Closed Won purchase (an outbound message is
    defined on one object)."""
    items = []
    for n in range(RECORDS):
        account = fake.add("Account", Name=f"Company {n}", Industry="Retail")
        contact = fake.add("Contact", FirstName=NAMES[n % 10], LastName=f"Tester{n}",
                           Email=f"c{n}@example.com", AccountId=account)
        product = fake.add("Product2", Name=BOUGHT[n % 4])
        won = fake.add("Opportunity", Name="order", AccountId=account, IsWon=True,
                       CloseDate="2026-10-01")
        fake.add("OpportunityLineItem", OpportunityId=won, Product2Id=product, Quantity=1.0)
        items.append((f"04l5g{n:013d}", "Contact", {"Id": contact}))
    return items


def run(batch: int) -> dict[str, Any]:
    settings = bench_settings()
    fake = FakeSalesforce(app=new_app())
    with fake.mock():
        policy = parse_policy('[[routes]]\nname = "local"\naction = "local"\n'
                              '[local]\nbackend = "llama"\nmax_tokens = 300\ntemperature = 0.6\n')
        engine_app = build_app(settings, policy)
        services = build_services(settings, immediate=False, engine_app=lambda: engine_app,
                                  connector_settings={
                                      "hubspot": HubSpotSettings(),
                                      "salesforce": SalesforceSettings(org_ids=fake.org_id)})
        services.dispatcher.batch_sizes["salesforce.notification"] = batch  # type: ignore[attr-defined]
        salesforce = services.connectors.get("salesforce")
        salesforce.auth.connect(OrgLogin(  # type: ignore[attr-defined]
            "jwt", fake.app.consumer_key, username="baton@integration.example",
            private_key=fake.app.private_pem))
        engine_app.engine.backends["local"].loaded()  # type: ignore[attr-defined]
        items = seed(fake)
        fake.calls.clear()
        web = create_app(services).test_client()
        start = time.perf_counter()
        answer = web.post("/salesforce/outbound", data=notifications(fake.org_id, items),
                             content_type="text/xml; charset=utf-8")
        assert answer.status_code == 200, answer.data
        huey = services.dispatcher.huey  # type: ignore[attr-defined]
        while True:  # the worker: its pump, then each queue message
            services.dispatcher.pump()
            task = huey.dequeue()
            if task is None:
                break
            huey.execute(task)
        seconds = time.perf_counter() - start
        written = sum(1 for r in fake.records["Contact"].values() if r.get("Baton_Email_Body__c"))
        result = {"seconds": seconds, "calls": len(fake.calls), "written": written,
                  "tasks": len(fake.tasks()), "logins": len(fake.logins)}
        services.store.close()
        engine_app.close()
    return result


def main() -> None:
    whole = run(RECORDS)
    default = run(CHUNK)
    print(f"{RECORDS} notifications (Contacts with Accounts and Closed Won purchases), real "
          f"simple-salesforce against a fake org, embedded model")
    for name, r in ((f"batch of {RECORDS}", whole), (f"batches of {CHUNK}", default)):
        print(f"{name:14}: {r['seconds']:6.1f} s, {r['written']}/{RECORDS} written, "
              f"{r['tasks']} Tasks, {r['calls']} API calls ({r['calls'] / RECORDS:.2f} per record)"
              f", {r['logins']} login(s)")
    print(f"time ratio batches-of-{CHUNK} / batch-of-{RECORDS} = "
          f"{default['seconds'] / whole['seconds']:.2f}")
    print(f"calls_per_record={whole['calls'] / RECORDS:.2f} "
          f"emails_s={whole['written'] / whole['seconds']:.2f}")


if __name__ == "__main__":
    main()

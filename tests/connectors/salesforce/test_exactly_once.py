"""100 notifications: 100 records written and 100 Tasks, exactly once, in a handful of calls —
also when Salesforce delivers the whole message again and when a worker dies between the field
update and the Task."""

from __future__ import annotations

from collections import Counter

from core.jobs.lifecycle import DONE, QUEUED
from tests.connectors.salesforce.conftest import Org


def _hundred(org: Org) -> list[tuple[str, str, dict[str, str]]]:
    names = ["Zoë", "Ayşe", "Ğülşen", "健太", "さくら", "José", "Łucja", "Nguyễn", "Ólafur", "İlkay"]
    items = []
    for n in range(100):
        if n % 2:
            record = org.lead(n, FirstName=names[n % 10])
            sobject = "Lead"
        else:
            record = org.fake.add("Contact", FirstName=names[n % 10], LastName="Lee",
                                  Email=f"c{n}@example.com")
            sobject = "Contact"
        items.append((f"04l5g{n:013d}", sobject, {"Id": record}))
    return items


def _written(org: Org) -> tuple[int, Counter[str]]:
    fields = sum(1 for table in ("Lead", "Contact") for r in org.fake.records[table].values()
                 if r.get("Baton_Email_Subject__c"))
    return fields, Counter(t["WhoId"] for t in org.fake.tasks())


def test_a_hundred_notifications_are_written_once_in_few_calls(org: Org) -> None:
    org.connect()
    items = _hundred(org)
    org.fake.calls.clear()
    assert org.outbound(items).status_code == 200
    assert org.outbound(items).status_code == 200  # Salesforce delivers the message again
    org.drain()
    assert [j.state for j in org.jobs()] == [DONE] * 100
    fields, tasks = _written(org)
    assert fields == 100 and len(tasks) == 100 and set(tasks.values()) == {1}
    bodies = [r["Baton_Email_Body__c"] for t in ("Lead", "Contact")
              for r in org.fake.records[t].values()]
    assert any("健太" in b for b in bodies) and any("İlkay" in b for b in bodies)
    # reads: one query per sObject type, roles, line items; writes: an update and an upsert
    # per 200 records (the queue hands the worker its jobs in batches)
    calls = len(org.fake.calls)
    assert calls / 100 <= 0.1, [(c.method, c.path) for c in org.fake.calls]
    org.drain()
    assert len(org.fake.calls) == calls  # nothing left to do: nothing called


def test_a_worker_killed_between_the_fields_and_the_task_makes_no_second_write(org: Org) -> None:
    org.connect()
    items = _hundred(org)
    # the Tasks land, and the connection drops before Salesforce's answer arrives
    org.fake.fail("PATCH", r"composite/sobjects/Task/", 0, times=org.connector.settings.max_attempts)
    org.outbound(items)
    org.drain()
    assert {j.state for j in org.jobs()} == {QUEUED}  # to be retried
    fields, tasks = _written(org)
    assert fields == 100 and len(tasks) == 100
    updates = [c for c in org.fake.calls if c.path.endswith("composite/sobjects")]
    org.retry_now()
    assert [j.state for j in org.jobs()] == [DONE] * 100
    fields, tasks = _written(org)
    assert fields == 100 and len(tasks) == 100 and set(tasks.values()) == {1}
    # the fields were not written again: the outbox knew they had landed
    assert [c for c in org.fake.calls if c.path.endswith("composite/sobjects")] == updates


def test_query_pages_are_followed(org: Org) -> None:
    org.connect()
    org.fake.page_size = 7  # Salesforce answers 2,000 rows a page; the fake, seven
    leads = [org.lead(n) for n in range(20)]
    org.outbound([(f"04l5g{n:013d}", "Lead", {"Id": lead}) for n, lead in enumerate(leads)])
    org.drain()
    assert [j.state for j in org.jobs()] == [DONE] * 20
    pages = [c for c in org.fake.calls if "/query/01g" in c.path]
    assert len(pages) == 2 and len(org.fake.tasks()) == 20  # 7 + 7 + 6 rows

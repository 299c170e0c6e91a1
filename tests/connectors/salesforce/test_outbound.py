"""Outbound messages end to end: SOAP in, SOQL context, one engine batch, fields and Tasks back."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce.crm import TASK_KEY
from core.jobs.lifecycle import DONE, FAILED, QUEUED
from tests.connectors.salesforce.conftest import Org


def test_a_lead_gets_its_fields_and_a_completed_task(org: Org) -> None:
    org.connect()
    lead = org.lead(1, FirstName="Zoë")
    r = org.outbound([("04l5g0000001", "Lead", {"Id": lead, "FirstName": "Zoë"})])
    assert r.status_code == 200 and b"<Ack>true</Ack>" in r.data
    assert r.mimetype == "text/xml"
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE, job.error
    record = org.fake.get("Lead", lead)
    assert record is not None
    assert record["Baton_Email_Subject__c"] == "Your next step"
    assert "Zoë" in record["Baton_Email_Body__c"]
    assert record["Baton_Receipt__c"] == job.result["receipt_id"]
    assert record["Baton_Generated_At__c"].endswith("+0000")
    [task] = org.fake.tasks()
    assert task["WhoId"] == lead and task["Status"] == "Completed"
    assert task["Subject"] == "Baton email draft: Your next step"
    assert "Zoë" in task["Description"] and job.result["receipt_id"] in task["Description"]
    assert task[TASK_KEY].endswith(":task") and job.id in task[TASK_KEY]
    assert job.result["task_id"] == task["Id"] and job.result["record_id"] == lead


def test_the_prompt_sees_only_configured_fields_and_never_fields_all(org: Org) -> None:
    org.connect()
    lead = org.lead(1, Phone="+44 20 7946 0000", Status="Open")
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    queries = [c for c in org.fake.calls if "/query" in c.path]
    assert queries and all("FIELDS(" not in str(c) for c in org.fake.calls)
    [prompt] = org.local.prompts
    assert "first_name={first_name}" in prompt.text and "company=Fjord & Field" in prompt.text
    assert "7946" not in prompt.text and "Open" not in prompt.text  # read by nobody: not asked for
    [records] = [c.query for c in queries if "FROM Lead" in c.query]
    assert "FirstName" in records and "Phone" not in records and "Status" not in records


def test_a_contacts_purchases_come_from_closed_won_opportunities(org: Org) -> None:
    org.connect()
    f = org.fake
    account = f.add("Account", Name="Fjord & Field", Industry="Retail")
    contact = f.add("Contact", FirstName="Ayşe", LastName="Yılmaz", Email="ayse@example.com.tr",
                    AccountId=account)
    other = f.add("Contact", FirstName="Kenji", LastName="Sato", Email="kenji@example.jp",
                  AccountId=account)
    pack = f.add("Product2", Name="Summit 40L backpack")
    socks = f.add("Product2", Name="Trail socks")
    tent = f.add("Product2", Name="Storm tent")
    won = f.add("Opportunity", Name="Spring", AccountId=account, IsWon=True, CloseDate="2026-03-02")
    lost = f.add("Opportunity", Name="Lost", AccountId=account, IsWon=False, CloseDate="2026-04-01")
    f.add("OpportunityContactRole", ContactId=contact, OpportunityId=won)
    f.add("OpportunityLineItem", OpportunityId=won, Product2Id=pack, Quantity=1.0)
    f.add("OpportunityLineItem", OpportunityId=won, Product2Id=socks, Quantity=3.0)
    f.add("OpportunityLineItem", OpportunityId=lost, Product2Id=tent, Quantity=1.0)
    org.outbound([("04l5g0000001", "Contact", {"Id": contact}),
                  ("04l5g0000002", "Contact", {"Id": other})])
    org.drain()
    assert all(j.state == DONE for j in org.jobs()), [j.error for j in org.jobs()]
    texts = " ".join(p.text for p in org.local.prompts)
    assert "Summit 40L backpack" in texts and "Trail socks x3" in texts
    assert "Storm tent" not in texts  # a lost opportunity is no purchase
    assert "company=Fjord & Field" in texts and "industry=Retail" in texts
    assert "Ayşe" in f.get("Contact", contact)["Baton_Email_Body__c"]
    assert "Kenji" in f.get("Contact", other)["Baton_Email_Body__c"]
    # the records, their roles, the line items by role and by account: not one per record
    assert len([c for c in f.calls if "/query" in c.path]) == 4


def test_a_contact_who_opted_out_gets_nothing(org: Org) -> None:
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com",
                           HasOptedOutOfEmail=True)
    org.outbound([("04l5g0000001", "Contact", {"Id": contact})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE and "opted out" in job.result["skipped"]
    assert org.fake.tasks() == [] and "Baton_Email_Body__c" not in org.fake.get("Contact", contact)
    assert org.local.prompts == []


def test_a_record_deleted_before_its_job_ran_fails_that_job_alone(org: Org) -> None:
    org.connect()
    keep, gone = org.lead(1), org.lead(2)
    org.outbound([("04l5g0000001", "Lead", {"Id": keep}), ("04l5g0000002", "Lead", {"Id": gone})])
    org.fake.delete("Lead", gone)
    org.drain()
    by_record = {j.payload["fields"]["Id"]: j for j in org.jobs()}
    assert by_record[keep].state == DONE
    assert by_record[gone].state == FAILED and "deleted before the job ran" in by_record[gone].error
    assert [t["WhoId"] for t in org.fake.tasks()] == [keep]


def test_bazons_own_write_coming_back_starts_nothing(org: Org) -> None:
    baton = org.connect().user_id
    assert baton == org.fake.integration_user
    echoed = org.lead(1, LastModifiedById=baton)  # the rule fired on Baton's own update
    said = org.lead(2)
    org.outbound([("04l5g0000001", "Lead", {"Id": echoed}),
                  ("04l5g0000002", "Lead", {"Id": said, "LastModifiedById": baton})])
    org.drain()
    assert {j.state for j in org.jobs()} == {DONE}
    assert all("loop guard" in j.result["skipped"] for j in org.jobs())
    assert org.fake.tasks() == [] and org.local.prompts == []


def test_a_converted_lead_is_written_on_its_contact(org: Org) -> None:
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com")
    lead = org.lead(1, IsConverted=True, ConvertedContactId=contact)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE, job.error
    assert org.fake.get("Contact", contact)["Baton_Email_Subject__c"] == "Your next step"
    assert "Baton_Email_Subject__c" not in org.fake.get("Lead", lead)
    assert [t["WhoId"] for t in org.fake.tasks()] == [contact]


def test_a_lead_converted_after_it_was_read_is_written_on_its_contact(org: Org) -> None:
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com")
    lead = org.lead(1)
    generate = org.local.generate

    def convert_then_generate(*args: Any) -> Any:  # a sales rep converts it meanwhile
        org.fake.records["Lead"][lead].update(IsConverted=True, ConvertedContactId=contact)
        return generate(*args)

    org.local.generate = convert_then_generate  # type: ignore[method-assign]
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE, job.error
    assert org.fake.get("Contact", contact)["Baton_Email_Subject__c"] == "Your next step"
    assert [t["WhoId"] for t in org.fake.tasks()] == [contact]
    refused = [c for c in org.fake.calls if c.path.endswith("composite/sobjects")]
    assert len(refused) == 2  # the Lead refused (CANNOT_UPDATE_CONVERTED_LEAD), then its Contact


def test_fields_without_the_permission_set_fail_with_salesforces_reason(org: Org) -> None:
    org.connect()
    org.fake.permission_set = False
    lead = org.lead(1)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == FAILED and "INVALID_FIELD" in job.error
    assert org.fake.tasks() == []


@pytest.mark.parametrize("status", [403, 503])
def test_request_limit_exceeded_and_5xx_are_retried(org: Org, status: int) -> None:
    org.connect()
    lead = org.lead(1)
    org.fake.fail("GET", r"/query", status, times=2)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE and len(org.fake.tasks()) == 1


def test_an_outage_longer_than_the_attempts_waits_for_a_retry(org: Org) -> None:
    org.connect()
    lead = org.lead(1)
    org.fake.fail("PATCH", r"composite/sobjects$", 503, times=4)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == QUEUED and "503" in job.error
    org.retry_now()
    [job] = org.jobs()
    assert job.state == DONE and len(org.fake.tasks()) == 1


def test_person_accounts_get_their_pc_fields_and_a_task_on_the_account(
        tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    from tests.connectors.salesforce.conftest import make_org

    for b2c in make_org(tmp_path, database_url, person_accounts=True,
                        sobjects="Lead,Contact,Account"):
        b2c.connect()
        account = b2c.fake.add("Account", Name="Ayşe Yılmaz", IsPersonAccount=True,
                               FirstName="Ayşe", LastName="Yılmaz", PersonEmail="ayse@example.com.tr")
        assert b2c.outbound([("04l5g0000001", "Account", {"Id": account})]).status_code == 200
        b2c.drain()
        [job] = b2c.jobs()
        assert job.state == DONE, job.error
        record = b2c.fake.get("Account", account)
        assert record["Baton_Email_Subject__pc"] == "Your next step"
        assert "Ayşe" in record["Baton_Email_Body__pc"]
        [task] = b2c.fake.tasks()
        assert task["WhatId"] == account and "WhoId" not in task

"""What a review of the connector found, each as a test that failed before its fix: deleted
records in a message, consent read whatever is configured (and a converted Lead's Contact's),
refusals isolated to their record, type runs in one write, a secret path kept out of /metrics,
encodings expat cannot read, a poisoned usage file, the userinfo scope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import PlatformRejected
from connectors.salesforce.crm import clip
from core.jobs.lifecycle import DONE, FAILED
from tests.connectors.salesforce.conftest import APP, Org, make_org, notifications
from tests.fakes.salesforce import SoqlError


def test_a_deleted_records_notification_is_skipped_and_the_rest_go_on(org: Org) -> None:
    org.connect()
    lead = org.lead(1)
    body = notifications(org.fake.org_id, [("04l5g0000001", "Lead", {"Id": lead}),
                                           ("04l5g0000002", "Lead", {})])  # deleted: no data
    assert org.client.post("/salesforce/outbound", data=body,
                           content_type="text/xml").status_code == 200
    org.drain()
    by_note = {j.payload["notification_id"]: j for j in org.jobs()}
    assert by_note["04l5g0000001"].state == DONE and len(org.fake.tasks()) == 1
    assert by_note["04l5g0000002"].state == DONE
    assert "deleted before Salesforce sent" in by_note["04l5g0000002"].result["skipped"]


def test_consent_is_read_even_when_not_configured(tmp_path: Path, database_url: str | None) -> None:
    for org in make_org(tmp_path, database_url, lead_fields="FirstName,LastName,Company"):
        org.connect()
        lead = org.lead(1, HasOptedOutOfEmail=True)
        org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
        org.drain()
        [job] = org.jobs()
        assert job.state == DONE and "opted out" in job.result["skipped"]
        assert org.fake.tasks() == []


def test_a_converted_leads_contact_who_opted_out_gets_nothing(org: Org) -> None:
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com",
                           HasOptedOutOfEmail=True)
    lead = org.lead(1, IsConverted=True, ConvertedContactId=contact, HasOptedOutOfEmail=False)
    org.outbound([("04l5g0000001", "Lead", {"Id": lead})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE and "opted out" in job.result["skipped"]
    assert "Baton_Email_Body__c" not in org.fake.get("Contact", contact)


def test_a_refused_batch_read_is_read_again_record_by_record(org: Org) -> None:
    org.connect()
    leads = [org.lead(n) for n in range(5)]
    original = org.fake.query

    def refuse_one(soql: str) -> list[dict[str, object]]:  # a record Salesforce will not read
        if leads[2] in soql:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", "invalid ID field")
        return original(soql)

    org.fake.query = refuse_one  # type: ignore[method-assign]
    org.outbound([(f"04l5g000000{n}", "Lead", {"Id": lead}) for n, lead in enumerate(leads)])
    org.drain()
    states = [j.state for j in org.jobs()]
    assert states.count(DONE) == 4 and states.count(FAILED) == 1  # the refusal is one job's
    assert len(org.fake.tasks()) == 4


def test_leads_and_contacts_interleaved_are_written_in_few_type_runs(org: Org) -> None:
    org.connect()
    items = []
    for n in range(30):  # 30 alternations: 30 runs of a type if sent in job order
        if n % 2:
            items.append((f"04l5g{n:013d}", "Lead", {"Id": org.lead(n)}))
        else:
            items.append((f"04l5g{n:013d}", "Contact", {"Id": org.fake.add(
                "Contact", FirstName=f"C{n}", LastName="Lee", Email=f"c{n}@example.com")}))
    # one outbound message is one object's; two messages arriving together share a batch
    org.outbound([i for i in items if i[1] == "Lead"])
    org.outbound([i for i in items if i[1] == "Contact"])
    org.drain()
    assert {j.state for j in org.jobs()} == {DONE}, {j.error for j in org.jobs()}
    assert len(org.fake.tasks()) == 30


def test_purchases_the_user_cannot_read_leave_the_email_without_them(org: Org) -> None:
    org.connect()
    contact = org.fake.add("Contact", FirstName="Ann", LastName="Lee", Email="a@example.com")
    original = org.fake.query

    def no_opportunities(soql: str) -> list[dict[str, object]]:  # no read access to them
        if "Opportunity" in soql:
            raise SoqlError("INSUFFICIENT_ACCESS", "sObject type 'OpportunityContactRole' is not "
                            "supported.")
        return original(soql)

    org.fake.query = no_opportunities  # type: ignore[method-assign]
    org.outbound([("04l5g0000001", "Contact", {"Id": contact})])
    org.drain()
    [job] = org.jobs()
    assert job.state == DONE and len(org.fake.tasks()) == 1


def test_the_secret_path_never_reaches_metrics(tmp_path: Path, database_url: str | None) -> None:
    from pydantic import SecretStr
    for org in make_org(tmp_path, database_url, path_token=SecretStr("s3cr3t-path")):
        org.connect()
        r = org.outbound([("04l5g0000001", "Lead", {"Id": org.lead(1)})],
                         path="/salesforce/outbound/s3cr3t-path")
        assert r.status_code == 200
        metrics = org.client.get("/metrics").data.decode()
        assert "s3cr3t" not in metrics and 'route="/salesforce/outbound/<token>"' in metrics


@pytest.mark.parametrize("encoding", ["EUC-JP", "shift_jis", "UTF-16"])
def test_encodings_expat_cannot_read_are_a_400(org: Org, encoding: str) -> None:
    org.connect()
    r = org.client.post("/salesforce/outbound", content_type="text/xml",
                        data=f'<?xml version="1.0" encoding="{encoding}"?><a/>'.encode())
    assert r.status_code == 400 and b"malformed XML" in r.data


def test_a_poisoned_usage_file_never_breaks_metrics(org: Org) -> None:
    org.connect()
    path = org.connector.auth.usage.path
    assert path is not None
    path.write_text(json.dumps({"00DX": ["x", 1, 0], "00DY": [None, 1, 0], "00DZ": [1e999, 1, 0],
                                "00DW": [[1], 2, 0], "00DV": [5, 10, 1]}))
    text = org.client.get("/metrics").data.decode()
    assert 'account="00DV",platform="salesforce"} 5.0' in text and "00DX" not in text
    assert 'account="?"' not in text  # connect's call (org not yet known) is nobody's usage


def test_the_newest_reading_wins_across_processes(tmp_path: Path) -> None:
    from connectors.salesforce.client import ApiUsage

    path = tmp_path / "usage.json"
    a, b = ApiUsage(path), ApiUsage(path)
    a.record("00DX", 100, 15000)
    b.record("00DX", 14900, 15000)  # later, in another process
    a._written = -10.0  # let its next write through the once-a-second throttle
    a.record("00DY", 1, 15000)
    assert ApiUsage(path).all()["00DX"] == (14900, 15000)


def test_userinfo_without_the_id_scope_says_which_scope(tmp_path: Path,
                                                         database_url: str | None) -> None:
    import dataclasses
    for org in make_org(tmp_path, database_url):
        org.fake.app = dataclasses.replace(APP, scopes="api")
        with pytest.raises(PlatformRejected, match="INSUFFICIENT_SCOPE"):
            org.connect()


def test_clip_counts_utf16_units_and_never_splits_a_pair() -> None:
    assert clip("abc", 255) == "abc"
    assert clip("😀" * 200, 255) == "😀" * 127  # 254 units; a 128th would make 256
    assert clip("a" + "😀" * 200, 256) == "a" + "😀" * 127
    assert len(clip("日本語" * 200, 255)) == 255  # BMP characters count one each


# -- the third review (the Flow action route, as an attacker would call it) -----------------------


def _flow(tmp_path: Path, database_url: str | None, **own: Any) -> Iterator[Org]:
    yield from make_org(tmp_path, database_url, immediate=True, sync_budget=5.0, **own)


def _action_jobs(org: Org) -> list[Any]:
    import sqlalchemy as sa

    from core.store import JobRow

    with org.services.store.session() as s:
        return list(s.scalars(sa.select(JobRow).where(JobRow.kind == "salesforce.action")))


def _call(org: Org, body: dict[str, Any] | str) -> Any:
    from core.credentials.apikeys import ApiKeys

    key = ApiKeys(org.services.store).create("salesforce", org.fake.org_id)[1]
    data = body if isinstance(body, str) else json.dumps(body)
    return org.client.post("/salesforce/actions/email", data=data, content_type="application/json",
                           headers={"Authorization": f"Bearer {key}"})


def test_a_flow_cannot_override_the_opt_out_salesforce_holds(tmp_path: Path,
                                                             database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url):
        org.connect()
        contact = org.fake.add("Contact", FirstName="Ines", LastName="Ruiz", Email="i@example.es",
                               HasOptedOutOfEmail=True)
        r = _call(org, {"recordId": contact, "brief": "A next step", "writeBack": True,
                        "fields": {"HasOptedOutOfEmail": False, "FirstName": "Ines"}})
        assert r.status_code == 422 and r.json["error"] == "opted_out"
        assert org.fake.tasks() == [] and not org.fake.get("Contact", contact).get("Baton_Email_Body__c")


def test_a_number_too_large_for_a_float_is_400_and_stores_nothing(tmp_path: Path,
                                                                  database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url):
        org.connect()
        lead = org.lead(1)
        r = _call(org, '{"recordId": "' + lead + '", "brief": "b", "fields": {"Score": 1e999}}')
        assert r.status_code == 400 and "too large" in r.json["reason"]
        assert _action_jobs(org) == []


def test_write_back_to_a_business_account_is_refused(tmp_path: Path, database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url, person_accounts=True, sobjects="Lead,Contact,Account"):
        org.connect()
        account = org.fake.add("Account", Name="Fjord & Field AB", IsPersonAccount=False)
        r = _call(org, {"recordId": account, "brief": "A next step", "writeBack": True})
        assert r.status_code == 422 and "business account" in r.json["reason"]
        assert org.fake.tasks() == []


def test_a_record_triggered_flow_cannot_loop_on_bazons_own_write(tmp_path: Path,
                                                                 database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url):
        baton = org.connect().user_id
        lead = org.lead(1, LastModifiedById=baton)  # Baton wrote it last: the Flow fired on that
        r = _call(org, {"recordId": lead, "brief": "A next step", "writeBack": True,
                        "requestId": "interview-2"})
        assert r.status_code == 422 and "Baton's own write coming back" in r.json["reason"]
        assert org.fake.tasks() == []
        # without writeBack nothing is written, so nothing can loop: the outputs are answered
        assert _call(org, {"recordId": lead, "brief": "A next step"}).status_code == 200


def test_a_refused_request_leaves_no_reply_row_waiting(tmp_path: Path, database_url: str | None) -> None:
    from core.store import ReplyRow

    for org in _flow(tmp_path, database_url):
        org.connect()
        lead = org.lead(1)
        r = _call(org, {"recordId": lead, "brief": "b", "requestId": "a\u0000b"})
        assert r.status_code == 400
        with org.services.store.session() as s:
            assert s.query(ReplyRow).count() == 0


def test_15_and_18_character_ids_of_one_record_are_one_request(tmp_path: Path,
                                                               database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url):
        org.connect()
        lead = org.lead(1)
        assert len(lead) == 18
        first = _call(org, {"recordId": lead, "brief": "A next step", "requestId": "r-1"})
        again = _call(org, {"recordId": lead[:15], "brief": "A next step", "requestId": "r-1"})
        assert again.status_code == 200 and first.json["job_id"] == again.json["job_id"]
        assert len(_action_jobs(org)) == 1


def test_an_unsupported_language_is_400_at_once(tmp_path: Path, database_url: str | None) -> None:
    for org in _flow(tmp_path, database_url):
        org.connect()
        r = _call(org, {"recordId": org.lead(1), "brief": "b", "language": "../../x"})
        assert r.status_code == 400 and r.json["reason"].startswith("language:")
        assert _action_jobs(org) == []

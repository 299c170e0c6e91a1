"""Context from Salesforce and results back into it, for many records in a few calls.

Context (SOQL, a statement per sObject type and 200 records, never ``FIELDS(ALL)``): the
record's configured fields (``BATON_SALESFORCE_LEAD_FIELDS`` / ``_CONTACT_FIELDS``: only what the
prompt uses reaches Baton), a Contact's Account, and purchase history: the products
(``Product2.Name``) of Closed Won Opportunities the contact has a role in, or of its Account's;
a Lead has none. For a batch of 100 notifications that is three or four queries.

Write-back: the Baton fields of the Lead or Contact (``Baton_Email_Subject__c``, ...) in one sObject
Collections update per 200 records, and a completed Task on each (``WhoId``, ``Subject``,
``Description``) in one upsert per 200 by ``Baton_Job_Key__c``, an external-id field holding the
job's write key: a retried job updates its Task, never creates a second one. Both go through the
outbox, so a write that landed is not made again. A converted Lead is written on its converted
Contact (Salesforce refuses updates to a converted Lead: ``CANNOT_UPDATE_CONVERTED_LEAD``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.errors import PlatformRejected, RecordNotFound
from connectors.salesforce.client import IN_CHUNK, SalesforceClient, Saved, chunks, id_list
from connectors.salesforce.settings import SalesforceSettings
from core.contacts import canonical
from core.delivery.outbox import Outbox, target_key, write_key
from core.store import JobRow

log = logging.getLogger("baton.salesforce")
MAX_PURCHASES = 10
LINE_ITEMS = ("SELECT OpportunityId, Opportunity.AccountId, Opportunity.CloseDate, Product2.Name, "
              "Quantity FROM OpportunityLineItem WHERE Opportunity.IsWon = true")
NEWEST = "ORDER BY Opportunity.CloseDate DESC LIMIT 2000"
TASK_KEY = "Baton_Job_Key__c"
SUBJECT_MAX, TEXT_MAX = 255, 32000
EXTRA = {  # fields read besides the configured ones: where to write, consent, the loop guard
    "Lead": ("Id", "LastModifiedById", "IsConverted", "ConvertedContactId", "Company",
             "HasOptedOutOfEmail", "ConvertedContact.HasOptedOutOfEmail"),
    "Contact": ("Id", "LastModifiedById", "AccountId", "Account.Name", "Account.Industry",
                "HasOptedOutOfEmail"),
    "Account": ("Id", "LastModifiedById", "PersonContactId", "Name", "Industry",
                "IsPersonAccount", "PersonHasOptedOutOfEmail"),
}
OPT_OUT = ("HasOptedOutOfEmail", "PersonHasOptedOutOfEmail")


@dataclass(frozen=True)
class Target:
    """Where a record's results go: the record to update and the Task's ``WhoId``."""

    sobject: str
    id: str
    who_id: str


@dataclass
class Record:
    """A record as read for its job: its fields, where results go, its purchase history."""

    sobject: str
    id: str
    fields: dict[str, Any]
    target: Target
    purchases: list[str] = field(default_factory=list)

    @property
    def last_modified_by(self) -> str:
        return str(self.fields.get("LastModifiedById") or "")

    def context(self, settings: SalesforceSettings) -> dict[str, Any]:
        """The record in the canonical contact vocabulary (only the configured fields)."""
        wanted = settings.fields_of(self.sobject)
        context: dict[str, Any] = canonical({k: v for k, v in self.fields.items()
                                             if k in wanted and k not in OPT_OUT
                                             and v not in (None, "")})
        # consent is read whatever the configuration, and for a converted Lead it is also its
        # Contact's, where the email is written
        converted = self.fields.get("ConvertedContact")
        if any(self.fields.get(f) is True for f in OPT_OUT) or \
                (isinstance(converted, dict) and converted.get("HasOptedOutOfEmail") is True):
            context["email_opt_out"] = True
        account = self.fields.get("Account")
        if isinstance(account, dict) and account.get("Name"):
            context["company"] = account["Name"]
            if account.get("Industry"):
                context.setdefault("industry", account["Industry"])
        elif self.sobject == "Lead" and self.fields.get("Company"):
            context.setdefault("company", self.fields["Company"])
        if self.purchases:
            context["purchases"] = self.purchases[:MAX_PURCHASES]
            context.setdefault("last_purchase", self.purchases[0])
        return context


def read_records(client: SalesforceClient, settings: SalesforceSettings,
                 wanted: dict[str, list[str]]) -> dict[str, Record]:
    """The records by id (a deleted one is missing), with purchase history for Contacts and
    Person Accounts."""
    found: dict[str, Record] = {}
    for sobject, ids in wanted.items():
        names = list(dict.fromkeys([*EXTRA[sobject], *settings.fields_of(sobject)]))
        for part in chunks(sorted(set(ids)), IN_CHUNK):
            for row in client.query(f"SELECT {', '.join(names)} FROM {sobject} "
                                    f"WHERE Id IN {id_list(part)}"):
                found[row["Id"]] = Record(sobject, row["Id"], row, _target(sobject, row))
    try:
        _add_purchases(client, [r for r in found.values() if r.sobject != "Lead"])
    except PlatformRejected as exc:  # optional context: an integration user that cannot read
        log.warning("purchase history unreadable; going on without it",  # opportunities
                    extra={"org": client.org, "error": str(exc)[:200]})
    return found


def _target(sobject: str, row: dict[str, Any]) -> Target:
    if sobject == "Lead" and row.get("IsConverted") and row.get("ConvertedContactId"):
        contact = str(row["ConvertedContactId"])
        return Target("Contact", contact, contact)
    if sobject == "Account":
        return Target("Account", row["Id"], "")  # a Person Account's Task: WhatId
    return Target(sobject, row["Id"], row["Id"])


def _add_purchases(client: SalesforceClient, records: list[Record]) -> None:
    """Products of Closed Won Opportunities, newest first: through the contact's roles, else
    its Account's (a Person Account's own)."""
    if not records:
        return
    contacts = {str(r.fields.get("PersonContactId") or "") if r.sobject == "Account"
                else r.target.who_id: r for r in records}
    contacts.pop("", None)
    accounts: dict[str, list[Record]] = {}
    for r in records:
        account = r.id if r.sobject == "Account" else r.fields.get("AccountId")
        if account:
            accounts.setdefault(str(account), []).append(r)
    roles: dict[str, set[str]] = {}  # opportunity -> contacts
    for part in chunks(sorted(contacts), IN_CHUNK):
        for row in client.query("SELECT ContactId, OpportunityId FROM OpportunityContactRole "
                                f"WHERE ContactId IN {id_list(part)} AND Opportunity.IsWon = true"):
            roles.setdefault(row["OpportunityId"], set()).add(row["ContactId"])
    by_role: dict[str, list[str]] = {}
    by_account: dict[str, list[str]] = {}
    opportunities, account_ids = sorted(roles), sorted(accounts)
    rows: list[dict[str, Any]] = []
    for part in chunks(opportunities, IN_CHUNK):
        rows += client.query(f"{LINE_ITEMS} AND OpportunityId IN {id_list(part)} {NEWEST}")
    for part in chunks(account_ids, IN_CHUNK):
        rows += client.query(f"{LINE_ITEMS} AND Opportunity.AccountId IN {id_list(part)} {NEWEST}")
    rows.sort(key=lambda r: str((r.get("Opportunity") or {}).get("CloseDate") or ""), reverse=True)
    for row in rows:
        name = _purchase(row)
        for contact in roles.get(row["OpportunityId"], ()):
            by_role.setdefault(contact, []).append(name)
        account = (row.get("Opportunity") or {}).get("AccountId")
        if account:
            by_account.setdefault(account, []).append(name)
    for contact, r in contacts.items():
        r.purchases = by_role.get(contact, [])
    for r in records:
        account = r.id if r.sobject == "Account" else str(r.fields.get("AccountId") or "")
        r.purchases = r.purchases or by_account.get(account, [])


def _purchase(row: dict[str, Any]) -> str:
    name = (row.get("Product2") or {}).get("Name") or "item"
    qty = row.get("Quantity")
    return f"{name} x{qty:g}" if isinstance(qty, int | float) and qty not in (0, 1) else name


# -- write-back ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One job's results: the Baton fields and the Task."""

    job: JobRow
    target: Target
    fields: dict[str, Any]
    task_subject: str
    task_body: str


def baton_fields(sobject: str, values: dict[str, Any]) -> dict[str, Any]:
    """``Baton_Email_Subject__c`` and its kin as the sObject names them (a Person Account's
    contact fields end in ``__pc``)."""
    suffix = "__pc" if sobject == "Account" else "__c"
    return {f"Baton_{name}{suffix}": value for name, value in values.items()}


def write_all(client: SalesforceClient, outbox: Outbox, writes: Sequence[Write]
              ) -> list[dict[str, Any] | BaseException]:
    """Every write's fields, then its Task, each once per job; a write's failure is its job's."""
    outcome: dict[str, dict[str, Any] | BaseException] = {w.job.id: {} for w in writes}
    _update_fields(client, outbox, writes, outcome)
    _upsert_tasks(client, outbox, [w for w in writes if not isinstance(outcome[w.job.id],
                                                                       BaseException)], outcome)
    return [outcome[w.job.id] for w in writes]


def _reserve(outbox: Outbox, write: Write, what: str, target: str,
             outcome: dict[str, dict[str, Any] | BaseException]) -> bool:
    """Whether the write is still to be made (its outbox row reserved); records a done one."""
    try:
        previous = outbox.reserve(write_key(write.job, what), job_id=write.job.id, target=target)
    except Exception as exc:  # the job ended meanwhile (its contact erased): nothing more
        outcome[write.job.id] = exc
        return False
    if previous is not None and previous.state == "done":
        result = outcome[write.job.id]
        if isinstance(result, dict):
            result.update(previous.response or {})
        return False
    return True


def _update_fields(client: SalesforceClient, outbox: Outbox, writes: Sequence[Write],
                   outcome: dict[str, dict[str, Any] | BaseException]) -> None:
    todo = [w for w in writes if _reserve(outbox, w, "fields", _key(w), outcome)]
    if not todo:
        return
    saved = client.update_many([{"attributes": {"type": w.target.sobject}, "Id": w.target.id,
                                 **w.fields} for w in todo])
    converted: list[Write] = []
    for w, s in zip(todo, saved, strict=True):
        if s.code == "CANNOT_UPDATE_CONVERTED_LEAD":
            converted.append(w)
        else:
            _settle(outbox, w, "fields", s, outcome)
    if converted:  # converted since it was read: its Contact gets the results
        rows = client.query("SELECT Id, ConvertedContactId FROM Lead WHERE Id IN "
                            f"{id_list([w.target.id for w in converted])}")
        contact = {r["Id"]: r.get("ConvertedContactId") for r in rows}
        moved = []
        for w in converted:
            if contact.get(w.target.id):
                c = str(contact[w.target.id])
                moved.append(Write(w.job, Target("Contact", c, c), w.fields, w.task_subject,
                                   w.task_body))
            else:
                outcome[w.job.id] = PlatformRejected("the Lead was converted and Salesforce "
                                                     "names no converted Contact")
        if moved:
            again = client.update_many([{"attributes": {"type": "Contact"}, "Id": w.target.id,
                                         **w.fields} for w in moved])
            for w, s in zip(moved, again, strict=True):
                _settle(outbox, w, "fields", s, outcome)
                result = outcome[w.job.id]
                if isinstance(result, dict):
                    result["who_id"] = w.target.id
    for w in writes:  # where the Task goes follows where the fields went
        result = outcome[w.job.id]
        if isinstance(result, dict) and result.get("who_id") is None and w.target.who_id:
            result["who_id"] = w.target.who_id


def _upsert_tasks(client: SalesforceClient, outbox: Outbox, writes: Sequence[Write],
                  outcome: dict[str, dict[str, Any] | BaseException]) -> None:
    status, priority = client.settings.task_status, client.settings.task_priority
    todo = [w for w in writes if _reserve(outbox, w, "task", _key(w, "task"), outcome)]
    if not todo:
        return
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    records = []
    for w in todo:
        result = outcome[w.job.id]
        who = result.get("who_id") if isinstance(result, dict) else None
        record = {TASK_KEY: write_key(w.job, "task"), "Subject": clip(w.task_subject, SUBJECT_MAX),
                  "Description": clip(w.task_body, TEXT_MAX), "Status": status,
                  "Priority": priority, "ActivityDate": today}
        if who:
            record["WhoId"] = who
        elif w.target.sobject == "Account":
            record["WhatId"] = w.target.id
        records.append(record)
    for w, s in zip(todo, client.upsert_many("Task", TASK_KEY, records), strict=True):
        _settle(outbox, w, "task", s, outcome, task=True)


def _settle(outbox: Outbox, write: Write, what: str, saved: Saved,
            outcome: dict[str, dict[str, Any] | BaseException], *, task: bool = False) -> None:
    if saved.ok:
        response = {"task_id": saved.id} if task else {"record_id": saved.id}
        outbox.done(write_key(write.job, what), response)
        result = outcome[write.job.id]
        if isinstance(result, dict):
            result.update(response)
        return
    reason = f"Salesforce refused the {'Task' if task else write.target.sobject} " \
             f"{write.target.id}: {saved.code}: {saved.message}"
    if saved.code in ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"):
        outcome[write.job.id] = RecordNotFound(f"the record was deleted before Baton wrote to it "
                                               f"({reason})")
    else:
        outcome[write.job.id] = PlatformRejected(reason, status=400)


def _key(write: Write, what: str = "record") -> str:
    if what == "task":
        return target_key(write.job.tenant, "task", write.target.who_id or write.target.id)
    return target_key(write.job.tenant, write.target.sobject.lower(), write.target.id)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units, as Salesforce counts a field's length (an
    emoji counts two), never inside a surrogate pair."""
    if len(text) <= limit // 2:
        return text
    units = 0
    for i, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text


def generated_at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

"""Salesforce on the connector contract (:mod:`connectors.base`).

Requests (``/salesforce/<route>``):

* ``POST outbound`` (or ``outbound/<token>``): a Workflow or Flow outbound message (SOAP
  ``notifications``, up to 100). Outbound messages carry no signature, so one is heard only from
  an allowlisted ``OrganizationId`` (``BATON_SALESFORCE_ORG_IDS``) that is connected, on the secret
  path when ``BATON_SALESFORCE_PATH_TOKEN`` is set and from ``BATON_SALESFORCE_SOURCE_CIDRS`` when
  that is set. Each notification is deduped on its ``Id`` and becomes a ``salesforce.notification``
  job; the answer is the SOAP ``<Ack>true</Ack>`` that ends Salesforce's retries. Anything refused
  is a SOAP fault with a 4xx (Salesforce retries for 24 hours and shows the fault's reason in its
  outbound-message queue). XML is parsed with defusedxml: no DTD, no entity expansion.

Jobs (``salesforce.notification``, many at once): the records are read with a few SOQL queries
(:mod:`connectors.salesforce.crm`), each gets a personalized email through the engine, and the
results are written to the Lead or Contact's Baton fields and a completed Task, for the whole batch
in one update and one upsert. A record last modified by Baton's own integration user is Baton's
write coming back (the outbound rule fired on it): it starts nothing. A contact who opted out
(``HasOptedOutOfEmail``) gets nothing; a record deleted before its job ran ends that job alone.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from connectors.base import Contact, Delivery, Finished, Outcome, Page
from connectors.errors import RecordNotFound
from connectors.http import (
    ApiError,
    BadRequest,
    Inbound,
    NotFound,
    Outbound,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from connectors.salesforce.auth import SalesforceAuth
from connectors.salesforce.client import is_id, soql_quote
from connectors.salesforce.crm import (
    Record,
    Target,
    Write,
    baton_fields,
    generated_at,
    read_records,
    write_all,
)
from connectors.salesforce.settings import SalesforceSettings, org15
from core.contacts import canonical
from core.delivery.outbox import Outbox
from core.engine.engine import Result as EngineResult
from core.errors import ConsentError, InputError
from core.jobs.lifecycle import Accepted, NewJob
from core.retention import subject_for
from core.store import JobRow, ReplyRow
from core.tasks.kinds import Task

log = logging.getLogger("baton.salesforce")

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OM = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
       f'<soapenv:Body><notificationsResponse xmlns="{OM}"><Ack>true</Ack>'
       "</notificationsResponse></soapenv:Body></soapenv:Envelope>")
MAX_NOTIFICATIONS = 100
NOTIFICATION = "salesforce.notification"


def soap_fault(error: ApiError) -> Outbound:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>"
            f"<faultstring>{escape(error.reason)}</faultstring></soapenv:Fault></soapenv:Body>"
            "</soapenv:Envelope>")
    return Outbound(error.status, body, "text/xml; charset=utf-8")


def parse_outbound(body: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """(OrganizationId, ActionId, notifications) of an outbound message."""
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BadRequest(f"forbidden XML construct ({type(exc).__name__})") from None
    except ElementTree.ParseError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    except LookupError as exc:  # expat on an XML declaration naming an unknown encoding
        raise BadRequest(f"malformed XML: {exc}") from None
    notifications = root.find(f"{{{SOAP}}}Body/{{{OM}}}notifications")
    if notifications is None:
        raise BadRequest("not an outbound message: no soapenv:Body/notifications")
    org, action = _text(notifications, "OrganizationId"), _text(notifications, "ActionId")
    if not org:
        raise BadRequest("OrganizationId is missing")
    items = []
    for n in notifications.findall(f"{{{OM}}}Notification"):
        notification_id = _text(n, "Id")
        sobject = n.find(f"{{{OM}}}sObject")
        if not notification_id or sobject is None:
            raise BadRequest("a Notification lacks its Id or sObject")
        fields = {child.tag.split("}")[-1]: (child.text or "") for child in sobject}
        sobject_type = sobject.get(f"{{{XSI}}}type", "").split(":")[-1]
        items.append({"notification_id": notification_id, "sobject_type": sobject_type,
                      "fields": fields})
    if not 1 <= len(items) <= MAX_NOTIFICATIONS:
        raise BadRequest(f"expected 1 to {MAX_NOTIFICATIONS} notifications, got {len(items)}")
    return org, action, items


def _text(element: Any, tag: str) -> str:
    found = element.find(f"{{{OM}}}{tag}")
    return (found.text or "").strip() if found is not None else ""


def without_port(addr: str) -> str:
    """``10.0.0.5:1234`` -> ``10.0.0.5``; ``[2001:db8::1]:443`` -> ``2001:db8::1``."""
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    return addr.split(":", 1)[0] if addr.count(":") == 1 else addr


class SalesforceConnector:
    """Salesforce on the connector contract: the route ``outbound`` (and ``outbound/<token>``)."""

    name = "salesforce"
    batch_size = MAX_NOTIFICATIONS  # one outbound message: one read per type, one write each

    def __init__(self, settings: SalesforceSettings, auth: SalesforceAuth, outbox: Outbox) -> None:
        self.settings, self.auth, self.outbox = settings, auth, outbox
        self._targets: dict[str, Target] = {}  # job id -> where it writes, from prepare
        self._lock = threading.Lock()

    # -- requests --------------------------------------------------------------------------------

    def pages(self) -> Mapping[str, Page]:
        return {}

    def verify(self, req: Inbound) -> None:
        if req.route != "outbound" and not req.route.startswith("outbound/"):
            raise NotFound("no such route")
        expected = self.settings.path_token.get_secret_value()
        token = req.route.partition("/")[2]
        if expected and not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("wrong or missing path token")
        if not expected and token:
            raise NotFound("no such route (no BATON_SALESFORCE_PATH_TOKEN is set)")
        networks = self.settings.networks()
        if networks:
            try:
                ip = ipaddress.ip_address(without_port(req.client))
            except ValueError:
                raise Unauthorized("source address not allowed") from None
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
            if not any(ip in net for net in networks):
                raise Unauthorized("source address not allowed")

    def parse(self, req: Inbound) -> Delivery:
        if req.mimetype not in ("text/xml", "application/soap+xml"):
            raise UnsupportedMediaType(f"expected text/xml, got {req.mimetype or 'none'}")
        org, action, items = parse_outbound(req.body)
        if org15(org) not in self.settings.orgs():
            raise Unauthorized("OrganizationId is not allowlisted (BATON_SALESFORCE_ORG_IDS)")
        allowed = self.settings.allowed_sobjects()
        for item in items:
            if item["sobject_type"] not in allowed:
                raise BadRequest(f"notification {item['notification_id']}: Baton is not set up for "
                                 f"{item['sobject_type'] or 'an untyped'} records (it writes to "
                                 f"{', '.join(sorted(allowed))}: BATON_SALESFORCE_SOBJECTS)")
            record_id = str(item["fields"].get("Id", ""))
            if not is_id(record_id):
                raise BadRequest(f"notification {item['notification_id']}: its sObject has no "
                                 "record Id (add Id to the outbound message's fields)")
        if not self.auth.installed(org):  # Salesforce keeps retrying for 24 hours: connect it
            raise ServiceUnavailable(f"org {org15(org)} is not connected to this Baton yet; run "
                                     "baton salesforce connect (Salesforce retries this message)")
        return Delivery("salesforce", [NewJob(
            external_id=f"{org15(org)}:{item['notification_id']}", kind=NOTIFICATION,
            tenant=f"salesforce:{org15(org)}", payload={**item, "action_id": action},
            subject=subject_for(str(item["fields"]["Id"]))) for item in items])

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        return Outbound(200, ACK, "text/xml; charset=utf-8")

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        return soap_fault(error)

    # -- jobs ------------------------------------------------------------------------------------

    def job_kinds(self) -> Sequence[str]:
        return (NOTIFICATION,)

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        """Each notification's email task, its record read with the org's others; Baton's own
        writes coming back are skipped."""
        out: dict[str, Task | Finished | BaseException] = {}
        for org, group in _by_org(jobs).items():
            try:
                baton_user = self.auth.org_login(org).user_id
                client = self.auth.client(org)
                live = []
                for job in group:
                    if baton_user and job.payload["fields"].get("LastModifiedById") == baton_user:
                        out[job.id] = Finished({"skipped": _echo(job)})
                    else:
                        live.append(job)
                wanted: dict[str, list[str]] = {}
                for job in live:
                    wanted.setdefault(job.payload["sobject_type"], []).append(_record_id(job))
                records = read_records(client, self.settings, wanted) if wanted else {}
            except Exception as exc:  # the org's trouble is each of its jobs'
                for job in group:
                    out.setdefault(job.id, exc)
                continue
            for job in live:
                record = records.get(_record_id(job))
                if record is None:
                    out[job.id] = RecordNotFound(f"{job.payload['sobject_type']} {_record_id(job)} "
                                                 "was deleted before the job ran")
                elif baton_user and record.last_modified_by == baton_user:
                    out[job.id] = Finished({"skipped": _echo(job)})
                else:
                    out[job.id] = self._task(job, record)
        return [out[job.id] for job in jobs]

    def _task(self, job: JobRow, record: Record) -> Task:
        with self._lock:
            self._targets[job.id] = record.target  # a converted Lead: its Contact
        return Task(kind="email", context=record.context(self.settings), brief=self.settings.brief,
                    tenant=job.tenant, language="en", id=job.id)

    def _target(self, job: JobRow) -> Target:
        """Where the job writes: as its record was read, else (a draft released later, by
        another process) the notification's record; a Lead converted meanwhile is found when
        Salesforce refuses the update."""
        with self._lock:
            known = self._targets.pop(job.id, None)
        if known is not None:
            return known
        sobject, record_id = job.payload["sobject_type"], _record_id(job)
        return Target(sobject, record_id, "" if sobject == "Account" else record_id)

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        """The Baton fields and a Task for every record, one call each per org and 200 records;
        a contact who opted out is skipped, not failed."""
        out: dict[str, Outcome] = {}
        writes: dict[str, list[Write]] = {}
        for job, result in done:
            if isinstance(result, ConsentError):
                out[job.id] = {"skipped": str(result)}
            elif isinstance(result, BaseException):
                out[job.id] = result
            else:
                writes.setdefault(job.tenant, []).append(self._write(job, result))
        for tenant, group in writes.items():
            try:
                client = self.auth.client(tenant.split(":", 1)[1])
                results = write_all(client, self.outbox, group)
            except Exception as exc:
                results = [exc] * len(group)
            for w, r in zip(group, results, strict=True):
                out[w.job.id] = r if isinstance(r, BaseException) else {
                    **r, "receipt_id": w.fields.get("Baton_Receipt__c") or
                    w.fields.get("Baton_Receipt__pc")}
        return [out[job.id] for job, _ in done]

    def _write(self, job: JobRow, result: EngineResult) -> Write:
        target = self._target(job)
        out = result.output
        subject, body = str(out.get("subject", "")), str(out.get("body", ""))
        values = {"Email_Subject": subject[:255], "Email_Body": body[:32000],
                  "Receipt": result.receipt.id,
                  "Generated_At": generated_at(result.receipt.created_at)}
        task_body = (f"Subject: {subject}\n\n{body}\n\nBaton receipt {result.receipt.id} "
                     f"({result.receipt.role}, {result.receipt.model})")
        return Write(job, target, baton_fields(target.sobject, values),
                     f"{self.settings.task_subject}: {subject}", task_body)

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        return None  # an outbound message was acknowledged when it arrived

    def complete(self, account: str) -> int:
        return 0

    def find_contact(self, tenant: str, key: str) -> Contact | None:
        """A Contact (else a Lead) of the org ``salesforce:<org>`` by email or record id."""
        platform, _, org = tenant.partition(":")
        if platform != self.name or not org:
            raise InputError(f"not a Salesforce org: {tenant!r} (expected salesforce:<org id>)")
        client = self.auth.client(org)
        by_email = "@" in key
        if not by_email and not is_id(key):
            raise InputError(f"expected an email address or a Salesforce record id, got {key[:60]!r}")
        for sobject in ("Contact", "Lead"):
            fields = ", ".join(dict.fromkeys(["Id", *self.settings.fields_of(sobject)]))
            where = f"Email = {soql_quote(key.strip())}" if by_email else f"Id = {soql_quote(key)}"
            rows = client.query(f"SELECT {fields} FROM {sobject} WHERE {where} LIMIT 2")
            if rows:
                return Contact(f"{self.name}:{org15(org)}", rows[0]["Id"],
                               canonical({k: v for k, v in rows[0].items()
                                          if k != "Id" and v not in (None, "")}))
        return None

    def api_usage(self) -> dict[str, tuple[int, int]]:
        """Each org's API calls used and allocated (``Sforce-Limit-Info``), for ``/metrics``."""
        return self.auth.usage.all()


def _by_org(jobs: list[JobRow]) -> dict[str, list[JobRow]]:
    groups: dict[str, list[JobRow]] = {}
    for job in jobs:
        groups.setdefault(job.tenant.split(":", 1)[1], []).append(job)
    return groups


def _record_id(job: JobRow) -> str:
    return str(job.payload["fields"]["Id"])


def _echo(job: JobRow) -> str:
    return (f"{job.payload['sobject_type']} {_record_id(job)} was last modified by Baton's "
            "integration user: its own write coming back (loop guard)")


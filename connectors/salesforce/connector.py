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

import hashlib
import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pydantic import ValidationError

from connectors.base import Contact, Delivery, Finished, Outcome, Page, ReplyWait
from connectors.errors import PlatformRejected, RecordNotFound, error_code
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
from connectors.salesforce.client import SalesforceClient, id18, is_id, soql_quote
from connectors.salesforce.crm import (
    Record,
    Target,
    Write,
    baton_fields,
    clip,
    generated_at,
    read_records,
    write_all,
)
from connectors.salesforce.flow import ACTION, PREFIXES, FlowAction, body_context, is_org
from connectors.salesforce.settings import SalesforceSettings, org15
from core.contacts import canonical, opted_out
from core.credentials.apikeys import ApiKeys
from core.delivery.outbox import Outbox
from core.delivery.replies import Replies
from core.engine.engine import Result as EngineResult
from core.errors import (
    BatonError,
    ConsentError,
    InputError,
    InternalError,
)
from core.ids import new_id
from core.jobs.lifecycle import Accepted, NewJob
from core.jobs.runner import PERMANENT
from core.policy import describe_validation_error
from core.retention import subject_for
from core.store import JobRow, ReplyRow
from core.tasks.kinds import ACTION_KINDS, Task, check_language, with_tone
from core.tasks.recommend import summary

log = logging.getLogger("baton.salesforce")

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OM = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
       f'<soapenv:Body><notificationsResponse xmlns="{OM}"><Ack>true</Ack>'
       "</notificationsResponse></soapenv:Body></soapenv:Envelope>")
MAX_NOTIFICATIONS = 100
CATALOG_TTL = 300.0
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
    except (LookupError, ValueError) as exc:  # expat: an unknown or multi-byte encoding
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
    """Salesforce on the connector contract: the routes ``outbound`` (and ``outbound/<token>``)
    and ``actions/<action>`` (:mod:`connectors.salesforce.flow`)."""

    name = "salesforce"
    batch_size = MAX_NOTIFICATIONS  # one outbound message: one read per type, one write each

    def __init__(self, settings: SalesforceSettings, auth: SalesforceAuth, outbox: Outbox,
                 keys: ApiKeys, replies: Replies, *,
                 lease: timedelta = timedelta(seconds=300)) -> None:
        self.settings, self.auth, self.outbox = settings, auth, outbox
        self.keys, self.replies, self.lease = keys, replies, lease
        self._targets: dict[str, Target] = {}  # job id -> where it writes, from prepare
        self._catalogs: dict[str, tuple[float, list[dict[str, str]]]] = {}
        self._lock = threading.Lock()
        if settings.org_ids and not settings.path_token.get_secret_value() and \
                not settings.source_cidrs:
            log.warning("outbound messages are accepted from anyone who knows an allowlisted "
                        "org id: set BATON_SALESFORCE_PATH_TOKEN or BATON_SALESFORCE_SOURCE_CIDRS")

    # -- requests --------------------------------------------------------------------------------

    def pages(self) -> Mapping[str, Page]:
        return {}

    def verify(self, req: Inbound) -> None:
        if req.route.startswith("actions/"):
            self._key_tenant(req)
            return
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

    def _key_tenant(self, req: Inbound) -> str:
        scheme, _, key = req.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send Authorization: Bearer <API key> (create one: baton keys "
                               "create --name salesforce --tenant <org id>)")
        found = self.keys.tenant_for(key.strip())
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        return found

    def parse(self, req: Inbound) -> Delivery:
        if req.route.startswith("actions/"):
            return self._parse_action(req, req.route.split("/", 1)[1])
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
            if not item["fields"]:  # the record was deleted before Salesforce sent it
                continue
            record_id = str(item["fields"].get("Id", ""))
            if not record_id:
                raise BadRequest(f"notification {item['notification_id']}: its sObject has no "
                                 "record Id (add Id to the outbound message's fields)")
            if not is_id(record_id):
                raise BadRequest(f"notification {item['notification_id']}: {record_id[:40]!r} "
                                 "is not a Salesforce record id")
        if not self.auth.installed(org):  # Salesforce keeps retrying for 24 hours: connect it
            raise ServiceUnavailable(f"org {org15(org)} is not connected to this Baton yet; run "
                                     "baton salesforce connect (Salesforce retries this message)")
        return Delivery("salesforce", [NewJob(
            # the record's id in the key too: a notification id alone, sent first by someone
            # who knows the org id, would shadow Salesforce's own notification of that id
            external_id=f"{org15(org)}:{item['notification_id']}:{item['fields'].get('Id', '-')}",
            kind=NOTIFICATION, tenant=f"salesforce:{org15(org)}",
            payload={**item, "action_id": action},
            subject=subject_for(str(item["fields"]["Id"])) if item["fields"] else None)
            for item in items])

    def _parse_action(self, req: Inbound, action: str) -> Delivery:
        kind = ACTION_KINDS.get(action)
        if kind is None:
            raise NotFound(f"unknown action {action!r}; known: {', '.join(sorted(ACTION_KINDS))}")
        owner = self._key_tenant(req)
        try:
            body = FlowAction.model_validate(req.json())
        except ValidationError as exc:
            raise BadRequest(describe_validation_error(exc)) from None
        if not body.brief.strip() and kind != "recommendation":
            raise BadRequest("brief: required for this action")
        try:
            check_language(body.language)
        except InputError as exc:
            raise BadRequest(f"language: {exc}") from None
        if not is_id(body.recordId):
            raise BadRequest(f"recordId: {body.recordId!r} is not a Salesforce record id (an "
                             "18-character id ends in the checksum of the first 15)")
        org = org15(owner) if is_org(owner) and self.auth.installed(owner) else None
        fetch = body.writeBack or not body.fields
        if fetch and org is None:
            raise BadRequest(f"{'writeBack' if body.writeBack else 'fields'}: Baton cannot "
                             f"{'write to' if body.writeBack else 'read'} the record: this API "
                             "key's tenant is not a connected org (create the key with --tenant "
                             "<org id>, run baton salesforce connect), so send the record's "
                             "fields and write the outputs with an Update Records element")
        sobject = PREFIXES.get(body.recordId[:3])
        if fetch and sobject not in self.settings.allowed_sobjects():
            raise BadRequest(f"recordId: Baton reads and writes "
                             f"{', '.join(sorted(self.settings.allowed_sobjects()))} records "
                             f"(BATON_SALESFORCE_SOBJECTS), not {body.recordId[:3]}...")
        # one record, whether the Flow sends its 15- or 18-character id
        external = f"{id18(body.recordId)}:{body.requestId}" if body.requestId else None
        # the owner and the request id are the caller's: digested, the key has a fixed length
        reply_key = "salesforce:" + hashlib.sha256(
            f"{owner}\x1f{external or new_id()}".encode()).hexdigest()[:40]
        payload = {"kind": kind, "record_id": body.recordId, "sobject_type": sobject, "org": org,
                   "context": body_context(body.fields, body.purchases,
                                           [c.model_dump(exclude_defaults=True)
                                            for c in body.catalog]),
                   "fetch": fetch, "write_back": body.writeBack,
                   "brief": with_tone(body.brief, body.tone).strip(), "tier": body.tier,
                   "language": body.language, "reply_key": reply_key}
        return Delivery(f"salesforce-flow:{owner}", [NewJob(
            external_id=external, kind=ACTION, tenant=owner, payload=payload,
            subject=subject_for(body.recordId))],
            reply=ReplyWait(reply_key, owner, self.settings.sync_budget))

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        if delivery.reply is None:
            return Outbound(200, ACK, "text/xml; charset=utf-8")
        job_id, record_id = accepted.job_ids[0], delivery.jobs[0].payload["record_id"]
        if reply is None:
            raise ServiceUnavailable("the action's reply row is missing; retry")
        if reply.reply == "sync" and reply.outputs is not None:
            failed = reply.outputs.get("state") != "done"
            return Outbound.json(422 if failed else 200,
                                 **{**reply.outputs, "job_id": job_id, "recordId": record_id})
        return Outbound.json(202, state="running", job_id=job_id, recordId=record_id,
                             poll_url=f"/v1/tasks/{job_id}")

    def label(self, route: str) -> str:
        return "outbound/<token>" if route.startswith("outbound/") else route

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        if req.route.startswith("actions/"):
            return Outbound.json(error.status, error=error.code, reason=error.reason)
        return soap_fault(error)

    # -- jobs ------------------------------------------------------------------------------------

    def job_kinds(self) -> Sequence[str]:
        return (NOTIFICATION, ACTION)

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        """Each notification's email task, its record read with the org's others; Baton's own
        writes coming back are skipped."""
        out: dict[str, Task | Finished | BaseException] = {}
        for job in jobs:
            if job.kind == ACTION:
                try:
                    out[job.id] = self._action_task(job)
                except Exception as exc:
                    out[job.id] = exc
        for org, group in _by_org([j for j in jobs if j.kind == NOTIFICATION]).items():
            try:
                baton_user = self.auth.org_login(org).user_id
                client = self.auth.client(org)
                live = []
                for job in group:
                    if not job.payload["fields"]:
                        out[job.id] = Finished({"skipped": "the record was deleted before "
                                                           "Salesforce sent the notification"})
                    elif baton_user and job.payload["fields"].get("LastModifiedById") == baton_user:
                        out[job.id] = Finished({"skipped": _echo(job)})
                    else:
                        live.append(job)
                wanted: dict[str, list[str]] = {}
                for job in live:
                    wanted.setdefault(job.payload["sobject_type"], []).append(_record_id(job))
                try:
                    records = read_records(client, self.settings, wanted) if wanted else {}
                except PlatformRejected:  # one record Salesforce refuses must not sink the rest
                    records = self._one_by_one(client, live, out)
            except Exception as exc:  # the org's trouble is each of its jobs'
                for job in group:
                    out.setdefault(job.id, exc)
                continue
            for job in live:
                if job.id in out:
                    continue
                record = records.get(id18(_record_id(job)))
                if record is None:
                    out[job.id] = RecordNotFound(f"{job.payload['sobject_type']} {_record_id(job)} "
                                                 "was deleted before the job ran")
                elif baton_user and record.last_modified_by == baton_user:
                    out[job.id] = Finished({"skipped": _echo(job)})
                elif record.sobject == "Account" and record.fields.get("IsPersonAccount") is False:
                    out[job.id] = Finished({"skipped": f"Account {record.id} is a business "
                                                       "account: Baton writes to people"})
                else:
                    out[job.id] = self._task(job, record)
        return [out[job.id] for job in jobs]

    def _one_by_one(self, client: SalesforceClient, jobs: list[JobRow],
                    out: dict[str, Task | Finished | BaseException]) -> dict[str, Record]:
        """The records read one at a time after Salesforce refused the batch's query: each
        refusal is its own job's."""
        records: dict[str, Record] = {}
        for job in jobs:
            try:
                records.update(read_records(client, self.settings,
                                            {job.payload["sobject_type"]: [_record_id(job)]}))
            except Exception as exc:
                out[job.id] = exc
        return records

    def _task(self, job: JobRow, record: Record) -> Task:
        with self._lock:
            self._targets[job.id] = record.target  # a converted Lead: its Contact
        return Task(kind="email", context=record.context(self.settings), brief=self.settings.brief,
                    tenant=job.tenant, language="en", id=job.id)

    def _action_task(self, job: JobRow) -> Task:
        """A Flow action's task: the fields it sent, or the record as Baton reads it."""
        p = job.payload
        context = dict(p["context"])
        client = self.auth.client(p["org"]) if p["org"] else None
        if p["fetch"] and client is not None:
            record = read_records(client, self.settings,
                                  {p["sobject_type"]: [p["record_id"]]}).get(id18(p["record_id"]))
            if record is None:
                raise RecordNotFound(f"{p['sobject_type']} {p['record_id']} does not exist (or "
                                     "was deleted)")
            if record.sobject == "Account" and record.fields.get("IsPersonAccount") is False:
                raise InputError(f"Account {record.id} is a business account: Baton writes to "
                                 "people (a Lead, a Contact or a Person Account)")
            baton_user = self.auth.org_login(p["org"]).user_id if p["write_back"] else None
            if baton_user and record.last_modified_by == baton_user:
                raise InputError(f"{record.sobject} {record.id} was last modified by Baton's "
                                 "integration user: this call looks like Baton's own write "
                                 "coming back (a record-triggered Flow on update), so Baton "
                                 "writes nothing again; exclude that user in the Flow's entry "
                                 "conditions")
            fetched = record.context(self.settings)
            context = {**fetched, **context}  # what the Flow sent wins, except consent:
            if opted_out(fetched):  # an opt-out Salesforce holds is never overridden
                context["email_opt_out"] = True
            with self._lock:
                self._targets[job.id] = record.target
        if p["kind"] == "recommendation" and not context.get("catalog") and client is not None:
            context["catalog"] = self.catalog(client)
        return Task(kind=p["kind"], context=context, brief=p["brief"], tenant=job.tenant,
                    tier=p["tier"], language=p["language"], id=job.id)

    def catalog(self, client: SalesforceClient) -> list[dict[str, str]]:
        """The org's active products in its standard price book, kept for a few minutes."""
        now = time.monotonic()
        with self._lock:
            cached = self._catalogs.get(client.org)
        if cached is None or now - cached[0] > CATALOG_TTL:
            rows = client.query("SELECT Product2.Name, Product2.ProductCode, Product2.Description "
                                "FROM PricebookEntry WHERE IsActive = true AND "
                                "Pricebook2.IsStandard = true LIMIT 200")
            items = [{"sku": str(p.get("ProductCode") or p.get("Name") or ""),
                      "name": str(p.get("Name") or ""),
                      "description": str(p.get("Description") or "")[:500]}
                     for r in rows if (p := r.get("Product2"))]
            cached = (now, [i for i in items if i["sku"]])
            with self._lock:
                self._catalogs[client.org] = cached
        return cached[1]

    def _target(self, job: JobRow) -> Target:
        """Where the job writes: as its record was read, else (a draft released later, by
        another process) the notification's record; a Lead converted meanwhile is found when
        Salesforce refuses the update."""
        with self._lock:
            known = self._targets.pop(job.id, None)
        if known is not None:
            return known
        sobject = job.payload["sobject_type"]
        record_id = _record_id(job)
        return Target(sobject, record_id, "" if sobject == "Account" else record_id)

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        """The Baton fields and a Task for every record, one call each per org and 200 records;
        a contact who opted out is skipped, not failed."""
        out: dict[str, Outcome] = {}
        writes: dict[str, list[tuple[Write, EngineResult]]] = {}
        targets = {job.id: self._target(job) for job, _ in done}  # taken for every job: none left
        for job, result in done:
            if isinstance(result, ConsentError) and job.kind == NOTIFICATION:
                out[job.id] = {"skipped": str(result)}
            elif isinstance(result, BaseException):
                out[job.id] = result
            elif job.kind == ACTION and not job.payload["write_back"]:
                out[job.id] = {"outputs": _outputs(job, result, written=False)}
            else:
                writes.setdefault(_org_of(job), []).append(
                    (self._write(job, result, targets[job.id]), result))
        for org, group in writes.items():
            try:
                results = write_all(self.auth.client(org), self.outbox, [w for w, _ in group])
            except Exception as exc:
                results = [exc] * len(group)
            for (w, result), r in zip(group, results, strict=True):
                if isinstance(r, BaseException):
                    out[w.job.id] = r
                elif w.job.kind == ACTION:
                    out[w.job.id] = {"outputs": _outputs(w.job, result, written=True), **r}
                else:
                    out[w.job.id] = {**r, "receipt_id": result.receipt.id}
        return [out[job.id] for job, _ in done]

    def _write(self, job: JobRow, result: EngineResult, target: Target) -> Write:
        kind = result.task.kind
        shown = _shown(kind, result)
        values = {**{name: text for name, text in shown.items() if name != "Subject"},
                  "Receipt": result.receipt.id,
                  "Generated_At": generated_at(result.receipt.created_at)}
        if kind == "email":
            values |= {"Email_Subject": clip(shown["Subject"], 255)}
        text = "\n\n".join(shown.values())
        task_body = (f"{text}\n\nBaton receipt {result.receipt.id} "
                     f"({result.receipt.role}, {result.receipt.model})")
        headline = shown.get("Subject") or next(iter(shown.values()), "").split("\n", 1)[0]
        label = {"email": self.settings.task_subject, "recommendation": "Baton recommendations",
                 "reply": "Baton reply draft"}.get(kind, "Baton")
        return Write(job, target, baton_fields(target.sobject, values),
                     clip(f"{label}: {headline}", 255), task_body)

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        """A Flow action's outputs: the results, or the reason it failed (at once for what
        retrying cannot mend, after the last attempt for the rest). An outbound message was
        acknowledged when it arrived: it has none."""
        if job.kind != ACTION:
            return None
        if not isinstance(outcome, BaseException):
            return dict(outcome["outputs"])
        if not isinstance(outcome, PERMANENT) and job.attempts < job.max_attempts:
            return None  # transient: retried first
        reason = outcome if isinstance(outcome, BatonError) else InternalError(outcome)
        code = error_code(outcome) if isinstance(outcome, PERMANENT) else "unavailable"
        return {"state": "failed", "error": code, "reason": str(reason)[:1000]}

    def complete(self, account: str) -> int:
        """A Flow that stopped waiting polls ``/v1/tasks/<id>`` for its answer: nothing to send,
        the ready answers are marked delivered."""
        rows = self.replies.claim(self.name, account, lease=self.lease)
        self.replies.sent([r.key for r in rows])
        return len(rows)

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

    def task_context(self, contact: Contact, kind: str) -> dict[str, Any]:
        """The record's configured fields (its opt-out among them), and the org's catalog for
        a recommendation."""
        context = dict(contact.fields)
        if kind == "recommendation":
            context["catalog"] = self.catalog(self.auth.client(contact.tenant.partition(":")[2]))
        return context

    def api_usage(self) -> dict[str, tuple[int, int]]:
        """Each org's API calls used and allocated (``Sforce-Limit-Info``), for ``/metrics``."""
        return self.auth.usage.all()


def _org_of(job: JobRow) -> str:
    return str(job.payload["org"]) if job.kind == ACTION else job.tenant.split(":", 1)[1]


def _shown(kind: str, result: EngineResult) -> dict[str, str]:
    """The result as the Baton fields name it (``Email_Body``, ``Recommendations``, ``Reply``)."""
    out = result.output
    if kind == "email":
        return {"Subject": str(out.get("subject", "")),
                "Email_Body": clip(str(out.get("body", "")), 32000)}
    if kind == "recommendation":
        return {"Recommendations": clip(summary(out, result.task.context), 32000)}
    return {"Reply": clip(str(out.get("body", "")), 32000)}


def _outputs(job: JobRow, result: EngineResult, *, written: bool) -> dict[str, Any]:
    out = result.output
    kind = result.task.kind
    return {"state": "done", "recordId": job.payload["record_id"],
            "subject": str(out.get("subject", "")) if kind == "email" else "",
            "body": str(out.get("body", out.get("message", ""))),
            "recommendations": summary(out, result.task.context) if kind == "recommendation" else "",
            "receipt_id": result.receipt.id, "route": result.receipt.role, "written": written}


def _by_org(jobs: list[JobRow]) -> dict[str, list[JobRow]]:
    groups: dict[str, list[JobRow]] = {}
    for job in jobs:
        groups.setdefault(job.tenant.split(":", 1)[1], []).append(job)
    return groups


def _record_id(job: JobRow) -> str:
    if job.kind == ACTION:
        return str(job.payload["record_id"])
    return str(job.payload["fields"].get("Id", ""))


def _echo(job: JobRow) -> str:
    return (f"{job.payload['sobject_type']} {_record_id(job)} was last modified by Baton's "
            "integration user: its own write coming back (loop guard)")


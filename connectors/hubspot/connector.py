"""HubSpot on the connector contract (:mod:`connectors.base`).

Requests (``/hubspot/<route>``):

* ``POST webhooks``: deliveries (batches of up to 100 events) are verified, deduped on (portalId,
  subscriptionId, eventId) and acked; ``hubspot.event`` jobs follow.
* ``POST actions/<action>``: a custom workflow action. Verified (v3 when its headers are there,
  else v2), checked against the installed definition, deduped on the callbackId; answered with the
  outputs if the job is done within ``BATON_HUBSPOT_SYNC_BUDGET``, else with ``BLOCK`` and its
  callback is completed later. Content Baton cannot run is answered ``FAIL_CONTINUE`` with the
  reason (HubSpot shows no reason for a 4xx); malformed requests are 4xx.
* ``GET install`` and ``GET oauth/callback``: the OAuth app flow.

Jobs:

* ``hubspot.event`` (a webhook event): a new contact, or a change of a trigger property such as
  the ``baton_generate`` checkbox, gets a personalized email written into its Baton properties and
  a note, unless the contact unsubscribed from all email (``hs_email_optout``): then nothing is
  generated or written and the job ends with that reason. ``contact.privacyDeletion`` erases what
  Baton stored about the contact (:func:`core.retention.forget`). Other events are skipped.
* ``hubspot.action`` (a workflow action): the enrolled contact's task runs through the engine; the
  outputs reach the workflow in the response or by completing the action's callback, batched with
  the portal's other ready callbacks. A generation that finally fails completes the action with
  ``FAIL_CONTINUE`` and the reason in the ``error`` output, so the workflow goes on and shows why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from connectors.base import Contact, Delivery, Finished, Outcome, Page, ReplyWait
from connectors.errors import ConnectorError, PlatformRejected, RecordNotFound, error_code
from connectors.http import (
    ApiError,
    BadRequest,
    Inbound,
    NotFound,
    Outbound,
    ServiceUnavailable,
    Unauthorized,
)
from connectors.hubspot.auth import HubSpotAuth
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.crm import Result, fetch_context, write_back
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.setup import create_properties
from connectors.signatures import SignatureError, verify_hubspot
from core.contacts import canonical
from core.delivery.outbox import Outbox, target_key
from core.delivery.replies import Replies
from core.engine.engine import Result as EngineResult
from core.errors import (
    BatonError,
    ConfigError,
    ConsentError,
    InputError,
    InternalError,
)
from core.jobs.lifecycle import Accepted, NewJob
from core.jobs.runner import PERMANENT
from core.retention import forget
from core.settings import Settings, iso_duration_days
from core.store import JobRow, ReplyRow
from core.tasks.kinds import ACTION_KINDS, Task, with_tone
from core.tasks.prompts import LANGUAGES, base_language
from core.tasks.recommend import summary
from manifests import load as load_manifest

log = logging.getLogger("baton.hubspot")

TRIGGER_OFF = {"", "false", "0", "no", "off"}
ERASURE = "contact.privacyDeletion"
# Where a person's own edits come from (HubSpot's UI, apps, extensions, inbox); a sourceId of
# "userId:..." says the same
HUMAN_SOURCES = {"CRM", "CRM_UI", "CRM_UI_BULK_ACTION", "MOBILE_IOS", "MOBILE_ANDROID",
                 "EXTENSION", "GMAIL_INTEGRATION", "HELP_DESK", "CONVERSATIONS", "SALES"}
HOLD_MARGIN = timedelta(minutes=10)  # a held draft ends this long before its BLOCK expires
CLOCK_SKEW = timedelta(seconds=60)  # HubSpot's clock and ours may disagree this much
CONTACT_TYPE_ID = "0-1"


def event_kind(event: Mapping[str, Any]) -> str:
    """The event's type, with the generic ``object.creation`` / ``object.propertyChange`` of a
    contact (``objectTypeId`` 0-1) as ``contact.creation`` / ``contact.propertyChange``."""
    kind = str(event.get("subscriptionType") or event.get("eventType") or "")
    if kind.startswith("object.") and str(event.get("objectTypeId", "")) == CONTACT_TYPE_ID:
        return "contact." + kind.split(".", 1)[1]
    return kind
CATALOG_TTL = 300.0
MAX_EVENTS = 1000  # HubSpot sends up to 100 a request; more is not HubSpot


def _event_job(i: int, event: Any) -> NewJob:
    if not isinstance(event, dict):
        raise BadRequest(f"event {i}: expected an object")
    for key in ("eventId", "portalId", "objectId"):
        if not isinstance(event.get(key), int) or isinstance(event.get(key), bool):
            raise BadRequest(f"event {i}: {key} must be an integer")
    kind = event.get("subscriptionType") or event.get("eventType")
    if not isinstance(kind, str) or not kind:
        raise BadRequest(f"event {i}: subscriptionType (or eventType) must be a string")
    sub = event.get("subscriptionId", "")
    subject = f"contact:{event['objectId']}" if event_kind(event).startswith("contact.") else None
    return NewJob(external_id=f"{event['portalId']}:{sub}:{event['eventId']}",
                  kind="hubspot.event", tenant=f"hubspot:{event['portalId']}", payload=event,
                  subject=subject)


@dataclass(frozen=True)
class ActionSpec:
    """A workflow action as installed in HubSpot (from ``manifests/hubspot/actions.json``)."""

    name: str
    kind: str
    object_types: frozenset[str]
    required: frozenset[str]
    options: Mapping[str, frozenset[str]]
    outputs: tuple[str, ...]


def action_specs() -> dict[str, ActionSpec]:
    specs = {}
    for d in load_manifest("hubspot", "actions")["actions"]:
        name = d["actionUrl"].rsplit("/", 1)[-1]
        fields = [f["typeDefinition"] for f in d["inputFields"]]
        specs[name] = ActionSpec(
            name=name, kind=ACTION_KINDS[name], object_types=frozenset(d["objectTypes"]),
            required=frozenset(f["typeDefinition"]["name"] for f in d["inputFields"]
                               if f["isRequired"]),
            options={f["name"]: frozenset(o["value"] for o in f["options"])
                     for f in fields if f.get("options")},
            outputs=tuple(f["typeDefinition"]["name"] for f in d["outputFields"]))
    return specs


@dataclass(frozen=True)
class ActionCall:
    callback_id: str
    portal: int
    object_type: str
    object_id: str
    inputs: dict[str, str]

    @property
    def reply_key(self) -> str:
        return f"hubspot:{self.portal}:{self.callback_id}"


class ActionRefused(InputError):
    """The action call is well formed but its content cannot be run: HubSpot gets 200 with
    ``FAIL_CONTINUE``, this ``code`` in the ``errorCode`` output and the reason in ``error`` (a
    4xx would fail the action with no reason shown in the workflow history)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(reason)

    def outputs(self) -> dict[str, str]:
        return {"hs_execution_state": "FAIL_CONTINUE", "errorCode": self.code,
                "error": str(self)[:1000]}


def parse_action(spec: ActionSpec, body: Any) -> ActionCall:
    """The request HubSpot sends to ``actionUrl``, checked for its form: a malformed request
    (not from HubSpot) is an :class:`InputError`, a 4xx. Its content is checked by
    :func:`check_content`."""
    if not isinstance(body, dict):
        raise InputError("expected a JSON object")
    callback_id, origin, obj = body.get("callbackId"), body.get("origin"), body.get("object")
    if not isinstance(callback_id, str) or not 0 < len(callback_id) <= 200 or "\x00" in callback_id:
        raise InputError("callbackId must be a string of 1 to 200 characters (no NUL)")
    if not isinstance(origin, dict) or not _is_int(origin.get("portalId")):
        raise InputError("origin.portalId must be an integer")
    if not isinstance(obj, dict) or not (_is_int(obj.get("objectId")) or
                                         isinstance(obj.get("objectId"), str)):
        raise InputError("object.objectId is required")
    raw_inputs = body.get("inputFields") or {}
    if not isinstance(raw_inputs, dict):
        raise InputError("inputFields must be an object")
    call = ActionCall(callback_id=callback_id, portal=int(origin["portalId"]),
                      object_type=str(obj.get("objectType", "")).upper(),
                      object_id=str(obj["objectId"]),
                      inputs={str(k): "" if v is None else str(v).strip()
                              for k, v in raw_inputs.items()})
    if len(call.object_id) > 100:
        raise InputError("object.objectId: at most 100 characters")
    return call


def check_content(spec: ActionSpec, call: ActionCall, languages: Collection[str]) -> ActionCall:
    """The call's content checked against the installed definition; returns it with its options
    in their canonical form. Options match case-insensitively and languages by their base
    (``en-US`` is ``en``); content Baton cannot run is an :class:`ActionRefused` with its code
    (a language without a brand voice: ``unsupported_language``)."""
    if call.object_type not in spec.object_types:
        raise ActionRefused("unsupported_object", f"action {spec.name!r} works on "
                            f"{', '.join(sorted(spec.object_types))} records, not "
                            f"{call.object_type or 'an unnamed object type'}")
    inputs = dict(call.inputs)
    if inputs.get("language"):
        inputs["language"] = base_language(inputs["language"])
        if inputs["language"] not in languages:
            raise ActionRefused("unsupported_language", f"no brand voice for the language "
                                f"{call.inputs['language']!r}; Baton writes "
                                f"{', '.join(sorted(languages))}")
    missing = sorted(f for f in spec.required if not inputs.get(f))
    if missing:
        raise ActionRefused("missing_input", f"missing required input field(s): {', '.join(missing)}")
    for name, allowed in spec.options.items():
        if name == "language" or not inputs.get(name):
            continue
        match = next((a for a in allowed if a.casefold() == inputs[name].casefold()), None)
        if match is None:
            raise ActionRefused("invalid_input", f"input field {name}: expected one of "
                                f"{', '.join(sorted(allowed))}, got {inputs[name][:40]!r}")
        inputs[name] = match
    if len(inputs.get("brief", "")) > 4000:
        raise ActionRefused("invalid_input", "input field brief: at most 4000 characters")
    return dataclasses.replace(call, inputs=inputs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class HubSpotConnector:
    """HubSpot on the connector contract (:mod:`connectors.base`): routes ``webhooks``,
    ``actions/<action>``, and the pages ``install`` and ``oauth/callback``."""

    name = "hubspot"
    batch_size = 10

    def __init__(self, settings: HubSpotSettings, auth: HubSpotAuth, outbox: Outbox,
                 replies: Replies, *,
                 lease: timedelta = timedelta(seconds=300)) -> None:
        self.settings, self.auth, self.outbox, self.replies = settings, auth, outbox, replies
        self.specs = action_specs()
        self.lease = lease  # a claim of callbacks to complete expires after this (a crashed sender)
        self._catalogs: dict[int, tuple[float, list[dict[str, str]]]] = {}
        self._pages: dict[str, Page] = {"install": self._install, "oauth/callback": self._oauth_callback}

    # -- requests --------------------------------------------------------------------------------

    def pages(self) -> Mapping[str, Page]:
        return self._pages

    def verify(self, req: Inbound) -> None:
        try:
            verify_hubspot(secrets=Settings.secrets_of(self.settings.client_secret),
                           method=req.method, uri=req.url, body=req.body, headers=req.headers,
                           now=req.received_at)
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None

    def parse(self, req: Inbound) -> Delivery | Outbound:
        if req.route == "webhooks":
            return self._parse_events(req)
        if req.route.startswith("actions/"):
            return self._parse_action(req, req.route.split("/", 1)[1])
        raise NotFound("no such route")

    def _parse_events(self, req: Inbound) -> Delivery:
        events = req.json()
        if not isinstance(events, list):
            raise BadRequest("expected a JSON array of events")
        if not events or len(events) > MAX_EVENTS:
            raise BadRequest(f"expected 1 to {MAX_EVENTS} events, got {len(events)}")
        return Delivery("hubspot", [_event_job(i, e) for i, e in enumerate(events)])

    def _parse_action(self, req: Inbound, action: str) -> Delivery | Outbound:
        spec = self.specs.get(action)
        if spec is None:
            raise NotFound(f"unknown action {action!r}; known: {', '.join(sorted(self.specs))}")
        try:
            call = parse_action(spec, req.json())
        except InputError as exc:
            raise BadRequest(str(exc)) from None
        if not self.auth.installed(call.portal):  # signed by HubSpot: say why in the workflow
            return Outbound.json(outputFields=ActionRefused(
                "not_connected", f"HubSpot portal {call.portal} is not connected to this Baton; "
                "reinstall the app (or set BATON_HUBSPOT_PORTAL_ID and its token)").outputs())
        try:  # HubSpot shows no reason for a 4xx: content it sent us is answered in the workflow
            call = check_content(spec, call, LANGUAGES)
        except ActionRefused as refused:
            return Outbound.json(outputFields=refused.outputs())
        return Delivery("hubspot", [NewJob(
            external_id=f"action:{call.portal}:{call.callback_id}", kind="hubspot.action",
            tenant=f"hubspot:{call.portal}",
            payload={"action": action, "portal": call.portal, "object_id": call.object_id,
                     "object_type": call.object_type, "inputs": call.inputs,
                     "callback_id": call.callback_id, "reply_key": call.reply_key},
            subject=f"{call.object_type.lower()}:{call.object_id}")],
            reply=ReplyWait(call.reply_key, str(call.portal), self.settings.sync_budget))

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        if delivery.reply is None:
            return Outbound.json(accepted=len(accepted.new), duplicates=sum(accepted.duplicate))
        if reply is None:
            raise ServiceUnavailable("the action's reply row is missing; retry")
        if reply.reply == "sync":
            return Outbound.json(outputFields=reply.outputs)
        return Outbound.json(outputFields={
            "hs_execution_state": "BLOCK",
            "hs_expiration_duration": self.settings.block_expiration})

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        return Outbound.json(error.status, error=error.code, reason=error.reason)

    def label(self, route: str) -> str:
        return route  # webhooks, actions/<action>: nothing secret in them

    def _install(self, req: Inbound) -> Outbound:
        try:
            return Outbound.redirect(self.auth.install_url())
        except ConfigError as exc:
            raise NotFound(str(exc)) from None

    def _oauth_callback(self, req: Inbound) -> Outbound:
        code, state = req.query.get("code", ""), req.query.get("state", "")
        if req.query.get("error"):
            raise BadRequest(f"HubSpot said: {req.query.get('error_description') or req.query['error']}")
        try:
            if not code or not self.auth.check_state(state):
                raise BadRequest("missing code or stale state; start again from /hubspot/install")
            portal = self.auth.connect(code)
        except ConfigError as exc:
            raise NotFound(str(exc)) from None
        except ConnectorError as exc:
            raise BadRequest(str(exc)) from None
        try:  # the properties Baton writes, in the portal that just installed it
            create_properties(self.auth.client(portal))
            ready = "Its Baton contact properties are in place."
        except ConnectorError as exc:
            log.warning("could not create the Baton properties",
                        extra={"portal": portal, "error": str(exc)[:200]})
            ready = (f"But its Baton contact properties could not be created ({escape(str(exc))}); "
                     "run <code>baton hubspot setup</code> for this portal.")
        return Outbound.html(200, f"<!doctype html><title>Baton connected</title><p>HubSpot portal "
                                  f"{escape(str(portal))} is connected to Baton. {ready} You can "
                                  "close this tab.</p>")

    # -- jobs --------------------------------------------------------------------------------------

    def job_kinds(self) -> Sequence[str]:
        return ("hubspot.event", "hubspot.action")

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        """A webhook event's email task (or why it is skipped, or the erasure it asks for), a
        workflow action's task with its inputs; each contact's context read from HubSpot."""
        client = self._clients()
        prepared: list[Task | Finished | BaseException] = []
        for job in jobs:
            try:
                prepared.append(self._prepare_event(job, client) if job.kind == "hubspot.event"
                                else self._prepare_action(job, client))
            except Exception as exc:
                prepared.append(exc)
        return prepared

    def _prepare_event(self, job: JobRow, client: Callable[[JobRow], HubSpotClient]
                       ) -> Task | Finished:
        event = job.payload
        kind = event_kind(event)
        if kind == ERASURE:
            erased = forget(self.outbox.store, job.tenant, f"contact:{event['objectId']}",
                            keep_job=job.id)
            log.info("contact erased", extra={"job_id": job.id, **erased})
            return Finished({"erased": erased})
        why = self.wants(event)
        if why is not None and self.echo_of_our_write(job):
            return Finished({"skipped": f"{kind} {event.get('propertyName', '')}: a change that "
                                        "followed Baton's own write to this contact (loop guard)"})
        if why is None:
            return Finished({"skipped": f"{kind} {event.get('propertyName', '')}".strip()})
        return self._task(client(job), job, str(event["objectId"]), "email", {})

    def _prepare_action(self, job: JobRow, client: Callable[[JobRow], HubSpotClient]) -> Task:
        p = job.payload
        return self._task(client(job), job, str(p["object_id"]), self.specs[p["action"]].kind,
                          p["inputs"])

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        """Each contact's Baton properties and a note (a webhook event also unticks its trigger);
        a contact who opted out is skipped, not failed."""
        client = self._clients()
        outcomes: list[Outcome] = []
        for job, result in done:
            if isinstance(result, ConsentError) and job.kind == "hubspot.event":
                outcomes.append({"skipped": str(result)})
                continue
            if isinstance(result, BaseException):
                outcomes.append(result)
                continue
            try:
                outcomes.append(self._write_event(job, result, client(job))
                                if job.kind == "hubspot.event"
                                else self._write_action(job, result, client(job)))
            except Exception as exc:  # one write-back's failure is that job's alone
                outcomes.append(exc)
        return outcomes

    def _write_event(self, job: JobRow, result: EngineResult,
                     client: HubSpotClient) -> dict[str, Any]:
        event = job.payload
        out = _result("email", result)
        if event.get("propertyName") in Settings.list_of(self.settings.trigger_properties):
            # Untick the trigger with the results, so ticking it again asks again (our own
            # change arrives as an event with a false value, which is skipped).
            out = Result({**out.properties, str(event["propertyName"]): "false"}, out.note,
                         out.receipt_id)
        written = write_back(client, self.outbox, job=job,
                             contact_id=str(event["objectId"]), result=out)
        return {"trigger": self.wants(event), "receipt_id": result.receipt.id,
                "route": result.receipt.role, **written}

    def _write_action(self, job: JobRow, result: EngineResult,
                      client: HubSpotClient) -> dict[str, Any]:
        p = job.payload
        kind = self.specs[p["action"]].kind
        write_back(client, self.outbox, job=job,
                   contact_id=str(p["object_id"]), result=_result(kind, result))
        outputs = {name: "" for name in self.specs[p["action"]].outputs}
        outputs.update({"hs_execution_state": "SUCCESS", "receipt_id": result.receipt.id,
                        "route": result.receipt.role})
        outputs.update(_outputs(kind, result))
        return {"outputs": outputs}

    def _clients(self) -> Callable[[JobRow], HubSpotClient]:
        """A job's portal client, built once per portal for a batch (building one reads the
        portal's credentials); a job's tenant is ``hubspot:<portal>``."""
        made: dict[int, HubSpotClient] = {}

        def client(job: JobRow) -> HubSpotClient:
            portal = int(job.tenant.split(":", 1)[1])
            if portal not in made:
                made[portal] = self.auth.client(portal)
            return made[portal]

        return client

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        """A workflow action's output fields: the results, or ``FAIL_CONTINUE`` with the reason
        (at once for what retrying cannot mend; after the last attempt for the rest)."""
        if job.kind != "hubspot.action":
            return None
        if not isinstance(outcome, BaseException):
            return dict(outcome["outputs"])
        if isinstance(outcome, PERMANENT):  # what the job runner will not retry
            log.info("workflow action failed", extra={"job_id": job.id,
                                                      "error": type(outcome).__name__})
            return ActionRefused(_error_code(outcome), str(outcome)).outputs()
        if job.attempts < job.max_attempts:  # transient: retried first
            return None
        log.info("workflow action gave up", extra={"job_id": job.id, "error": type(outcome).__name__})
        reason = outcome if isinstance(outcome, BatonError) else InternalError(outcome)
        return ActionRefused("unavailable", f"gave up after {job.attempts} attempts: {reason}").outputs()

    def hold_limit(self, job: JobRow) -> timedelta | None:
        """How long a held draft of this job may wait: a workflow action's BLOCK expires (then
        HubSpot continues without Baton's callback), less ten minutes for the reconciler's sweep
        and the worker to end it first (the workflow then takes its ``expired`` branch)."""
        if job.kind != "hubspot.action":
            return None
        limit = timedelta(days=iso_duration_days(self.settings.block_expiration))
        return max(limit - HOLD_MARGIN, limit / 2)

    def complete(self, account: str) -> int:
        """Complete the portal's ready callbacks, up to 100 in one call; return how many were
        completed. A callback past its ``BLOCK`` expiry is dropped with a log line (HubSpot moved
        on without it); a batch HubSpot refuses is sent again one callback at a time, and the
        callbacks it refuses alone are set aside, never resent."""
        portal = int(account)
        rows = self.replies.claim("hubspot", account, lease=self.lease)
        if not rows:
            return 0
        horizon = datetime.now(UTC) - timedelta(
            days=iso_duration_days(self.settings.block_expiration))
        expired = [r.key for r in rows if r.created_at < horizon]
        if expired:
            log.warning("workflow callbacks expired before they could be completed",
                        extra={"portal": portal, "callbacks": len(expired)})
            self.replies.set_aside(expired, "expired")
        live = [r for r in rows if r.key not in expired]
        if not live:
            return 0
        client = self.auth.client(portal)
        try:
            client.complete({_callback_id(r.key): dict(r.outputs or {}) for r in live})
        except (PlatformRejected, RecordNotFound) as exc:
            if not _refuses_callbacks(exc):  # a 401/403: nothing wrong with the callbacks
                self.replies.release([r.key for r in live])
                raise
            return self._complete_one_by_one(portal, client, live)
        except Exception:
            self.replies.release([r.key for r in live])
            raise
        self.replies.sent([r.key for r in live])
        return len(live)

    def find_contact(self, tenant: str, key: str) -> Contact | None:
        """A contact of the portal ``hubspot:<portal>`` by email (HubSpot's ``idProperty``) or
        record id, with the configured contact properties."""
        platform, _, account = tenant.partition(":")
        if platform != self.name or not (account.isascii() and account.isdigit()):
            raise InputError(f"not a HubSpot account: {tenant!r} (expected hubspot:<portal id>)")
        portal = int(account)
        client = self.auth.client(portal)
        by_email = "@" in key
        if not by_email and not (key.isascii() and key.isdigit()):
            raise InputError(f"expected an email address or a HubSpot record id, got {key[:60]!r}")
        props = Settings.list_of(self.settings.contact_properties)
        try:
            found_id, fields = client.find_contact(key.strip().lower() if by_email else key, props,
                                                   by="email" if by_email else None)
        except RecordNotFound:
            return None
        return Contact(f"{self.name}:{portal}", found_id, canonical(fields))

    def task_context(self, contact: Contact, kind: str) -> dict[str, Any]:
        """The contact as this connector's own jobs read it (consent, company, purchases), and
        the portal's product library for a recommendation."""
        client = self.auth.client(int(contact.tenant.partition(":")[2]))
        context, _ = fetch_context(client, contact.id, Settings.list_of(self.settings.contact_properties),
                                   tuple(Settings.list_of(self.settings.consent_properties)))
        if kind == "recommendation":
            context["catalog"] = self.catalog(client)
        return context

    def wants(self, event: Mapping[str, Any]) -> str | None:
        """Why this event starts a job, or None to skip it. The 2025.2 platform's generic
        ``object.*`` events for contacts (``objectTypeId`` 0-1) count as ``contact.*``."""
        kind = event_kind(event)
        source = str(event.get("changeSource") or "").upper()
        if source and source in {s.upper() for s in
                                 Settings.list_of(self.settings.skip_change_sources)}:
            return None
        if kind == "contact.creation":
            return "contact created"
        if kind == "contact.propertyChange":
            prop = event.get("propertyName")
            if prop in Settings.list_of(self.settings.trigger_properties) and \
                    str(event.get("propertyValue", "")).strip().lower() not in TRIGGER_OFF:
                return f"{prop} set"
        return None

    def echo_of_our_write(self, job: JobRow) -> bool:
        """Whether this event is Baton's own write coming back: a change made by an app, a
        workflow or a sync (anything but a person in HubSpot's UI) to a contact Baton wrote to
        within ``BATON_HUBSPOT_LOOP_SECONDS`` before it. Such an event never starts Baton again,
        so no workflow or HubSpot-Salesforce sync can loop through it."""
        event = job.payload
        source = str(event.get("changeSource") or "").upper()
        by_a_person = source in HUMAN_SOURCES or str(event.get("sourceId") or "").startswith("userId:")
        if by_a_person or event_kind(event) != "contact.propertyChange":
            return False
        window = timedelta(seconds=self.settings.loop_seconds)
        occurred = event.get("occurredAt")
        at = datetime.fromtimestamp(occurred / 1000, UTC) if isinstance(occurred, int | float) \
            and 0 < occurred < 1e14 else job.created_at
        return self.outbox.written_since(target_key(job.tenant, "contact", str(event["objectId"])),
                                         at - window, at + CLOCK_SKEW)

    def _complete_one_by_one(self, portal: int, client: HubSpotClient, rows: list[Any]) -> int:
        sent: list[str] = []
        refused: list[str] = []
        try:
            for row in rows:
                try:
                    client.complete({_callback_id(row.key): dict(row.outputs or {})})
                    sent.append(row.key)
                except (PlatformRejected, RecordNotFound) as exc:
                    if not _refuses_callbacks(exc):
                        raise
                    log.warning("HubSpot refused a workflow callback; set aside",
                                extra={"portal": portal, "error": type(exc).__name__})
                    refused.append(row.key)
        except Exception:  # transient trouble midway: the rest go round again
            self.replies.release([r.key for r in rows if r.key not in sent + refused])
            raise
        finally:
            self.replies.sent(sent)
            self.replies.set_aside(refused, "refused")
        return len(sent)

    def catalog(self, client: HubSpotClient) -> list[dict[str, str]]:
        """The portal's product library as a catalog, kept for a few minutes per portal."""
        now = time.monotonic()
        cached = self._catalogs.get(client.portal)
        if cached is None or now - cached[0] > CATALOG_TTL:
            items = [{"sku": p.get("hs_sku") or p["id"], "name": p.get("name", ""),
                      "description": p.get("description", "")} for p in client.products()]
            cached = self._catalogs[client.portal] = (now, items)
        return cached[1]

    # -- shared ------------------------------------------------------------------------------------

    def _task(self, client: HubSpotClient, job: JobRow, contact_id: str, kind: str,
              inputs: Mapping[str, str]) -> Task:
        """The engine task for a contact: its context from HubSpot, the action's inputs."""
        props = Settings.list_of(self.settings.contact_properties)
        consent = tuple(Settings.list_of(self.settings.consent_properties))
        context, language = fetch_context(client, contact_id, props, consent)
        if kind == "recommendation":
            context["catalog"] = self.catalog(client)
        brief = with_tone(inputs.get("brief") or self.settings.brief, inputs.get("tone"))
        tier = inputs.get("tier") if inputs.get("tier") in ("routine", "critical") else "routine"
        return Task(kind=kind, context=context, brief=brief, tenant=job.tenant,
                    tier=tier,  # type: ignore[arg-type]
                    language=inputs.get("language") or language or "en", id=job.id)


def _refuses_callbacks(exc: BatonError) -> bool:
    """A 400 or 404 names the callbacks (expired, unknown, completed); a 401 or 403 is about the
    app's access, and the callbacks wait for it to be mended."""
    return isinstance(exc, RecordNotFound) or getattr(exc, "status", None) == 400


def _callback_id(reply_key: str) -> str:
    return reply_key.split(":", 2)[2]  # hubspot:<portal>:<callbackId>


def _error_code(exc: BatonError) -> str:
    """The ``errorCode`` output of a failed action, for the definition's execution rules."""
    return exc.code if isinstance(exc, ActionRefused) else error_code(exc)


def _outputs(kind: str, result: EngineResult) -> dict[str, str]:
    out = result.output
    if kind == "email":
        return {"subject": str(out.get("subject", "")), "body": str(out.get("body", ""))}
    if kind == "recommendation":
        return {"recommendations": summary(out, result.task.context),
                "body": str(out.get("message", ""))}
    return {"body": str(out.get("body", ""))}


def _result(kind: str, result: EngineResult) -> Result:
    outputs = _outputs(kind, result)
    props = {"baton_last_receipt": result.receipt.id,
             "baton_generated_at": result.receipt.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    if kind == "email":
        props |= {"baton_email_subject": outputs["subject"], "baton_email_body": outputs["body"]}
        note = f"Baton email draft\nSubject: {outputs['subject']}\n\n{outputs['body']}"
    elif kind == "recommendation":
        props["baton_recommendations"] = outputs["recommendations"]
        note = f"Baton recommendations\n{outputs['recommendations']}"
    else:
        props["baton_reply"] = outputs["body"]
        note = f"Baton reply draft\n\n{outputs['body']}"
    return Result(properties=props, note=note, receipt_id=result.receipt.id)

"""The HubSpot connector's two jobs.

``hubspot.event`` (a webhook event): a new contact, or a change of a trigger property such as the
``baton_generate`` checkbox, gets a personalized email written into its Baton properties and a
note, unless the contact unsubscribed from all email (``hs_email_optout``): then nothing is
generated or written and the job ends with that reason. ``contact.privacyDeletion`` erases what
Baton stored about the contact (:func:`core.retention.forget`). Other events are acknowledged
and skipped.

``hubspot.action`` (a custom workflow action): the enrolled contact's task runs through the engine;
the outputs reach the workflow either in the response (the request is still waiting, see
:mod:`core.delivery.replies`) or by completing the action's callback, batched with the portal's other ready
callbacks. A generation that finally fails completes the action with ``FAIL_CONTINUE`` and the
reason in the ``error`` output, so the workflow goes on and shows why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.errors import PlatformRejected, RecordNotFound
from connectors.hubspot.auth import HubSpotAuth
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.crm import Result, fetch_context, write_back
from core.delivery.outbox import Outbox
from core.delivery.replies import Replies
from core.engine.engine import Engine
from core.engine.engine import Result as EngineResult
from core.errors import (
    BatonError,
    ConsentError,
    GenerationError,
    InputError,
    InternalError,
    LanguageError,
    UnknownNameError,
)
from core.retention import forget
from core.settings import Settings, iso_duration_days
from core.store import JobRow
from core.tasks.kinds import ACTION_KINDS, Task, with_tone
from core.tasks.prompts import base_language
from core.tasks.recommend import summary
from manifests import load as load_manifest

log = logging.getLogger("baton.hubspot")

TRIGGER_OFF = {"", "false", "0", "no", "off"}
ERASURE = "contact.privacyDeletion"
# Where a person's own edits come from (HubSpot's UI, apps, extensions, inbox); a sourceId of
# "userId:..." says the same
HUMAN_SOURCES = {"CRM", "CRM_UI", "CRM_UI_BULK_ACTION", "MOBILE_IOS", "MOBILE_ANDROID",
                 "EXTENSION", "GMAIL_INTEGRATION", "HELP_DESK", "CONVERSATIONS", "SALES"}
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
class _Event:
    """A webhook event ready for the engine."""

    client: HubSpotClient
    contact_id: str
    why: str
    task: Task


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
    def __init__(self, settings: Settings, auth: HubSpotAuth, outbox: Outbox, replies: Replies,
                 engine: Callable[[], Engine]) -> None:
        self.settings, self.auth, self.outbox, self.replies = settings, auth, outbox, replies
        self.engine = engine
        self.specs = action_specs()
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self._catalogs: dict[int, tuple[float, list[dict[str, str]]]] = {}

    def handlers(self) -> dict[str, Callable[[JobRow], dict[str, Any]]]:
        return {"hubspot.event": self.handle_event, "hubspot.action": self.handle_action}

    def batch_handlers(self) -> dict[str, Callable[[list[JobRow]], list[dict[str, Any] | BaseException]]]:
        return {"hubspot.event": self.handle_events}

    # -- webhooks ------------------------------------------------------------------------------

    def wants(self, event: Mapping[str, Any]) -> str | None:
        """Why this event starts a job, or None to skip it. The 2025.2 platform's generic
        ``object.*`` events for contacts (``objectTypeId`` 0-1) count as ``contact.*``."""
        kind = event_kind(event)
        source = str(event.get("changeSource") or "").upper()
        if source and source in {s.upper() for s in
                                 Settings.list_of(self.settings.hubspot_skip_change_sources)}:
            return None
        if kind == "contact.creation":
            return "contact created"
        if kind == "contact.propertyChange":
            prop = event.get("propertyName")
            if prop in Settings.list_of(self.settings.hubspot_trigger_properties) and \
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
        window = timedelta(seconds=self.settings.hubspot_loop_seconds)
        occurred = event.get("occurredAt")
        at = datetime.fromtimestamp(occurred / 1000, UTC) if isinstance(occurred, int | float) \
            and 0 < occurred < 1e14 else job.created_at
        return self.outbox.written_since(f"hubspot:{job.tenant.split(':', 1)[-1]}:contact:"
                                         f"{event['objectId']}", at - window, at + CLOCK_SKEW)

    def handle_event(self, job: JobRow) -> dict[str, Any]:
        prepared = self._prepare_event(job)
        if isinstance(prepared, dict):
            return prepared
        try:
            result = self.engine().run(prepared.task)
        except ConsentError as exc:
            return {"skipped": str(exc)}
        return self._finish_event(job, prepared, result)

    def handle_events(self, jobs: list[JobRow]) -> list[dict[str, Any] | BaseException]:
        """A webhook batch at once: contexts fetched per contact, then one ``engine.run_many``
        (the brand's prompt prefix evaluated once, contacts decoded together), then each
        write-back. One job's failure is that job's alone."""
        outcomes: list[dict[str, Any] | BaseException] = []
        runs: list[tuple[int, _Event]] = []
        for i, job in enumerate(jobs):
            try:
                prepared = self._prepare_event(job)
            except Exception as exc:
                outcomes.append(exc)
                continue
            outcomes.append(prepared if isinstance(prepared, dict) else {})
            if not isinstance(prepared, dict):
                runs.append((i, prepared))
        results = self.engine().run_many([p.task for _, p in runs])
        for (i, prepared), result in zip(runs, results, strict=True):
            if isinstance(result, ConsentError):
                outcomes[i] = {"skipped": str(result)}
                continue
            try:
                if isinstance(result, BaseException):
                    raise result
                outcomes[i] = self._finish_event(jobs[i], prepared, result)
            except BatonError as exc:
                outcomes[i] = exc
            except Exception as exc:  # a bug in one write-back ends that job alone
                outcomes[i] = InternalError(exc)
        return outcomes

    def _prepare_event(self, job: JobRow) -> _Event | dict[str, Any]:
        """What to generate for this event, or the reason it is skipped."""
        event = job.payload
        kind = event_kind(event)
        if kind == ERASURE:
            erased = forget(self.outbox.store, job.tenant, f"contact:{event['objectId']}",
                            keep_job=job.id)
            log.info("contact erased", extra={"job_id": job.id, **erased})
            return {"erased": erased}
        why = self.wants(event)
        if why is not None and self.echo_of_our_write(job):
            return {"skipped": f"{kind} {event.get('propertyName', '')}: a change that followed "
                               "Baton's own write to this contact (loop guard)"}
        if why is None:
            return {"skipped": f"{kind} {event.get('propertyName', '')}".strip()}
        client = self.auth.client(int(event["portalId"]))
        contact_id = str(event["objectId"])
        return _Event(client, contact_id, why, self._task(client, job, contact_id, "email", {}))

    def _finish_event(self, job: JobRow, prepared: _Event, result: EngineResult) -> dict[str, Any]:
        event = job.payload
        out = _result("email", result)
        if event.get("propertyName") in Settings.list_of(self.settings.hubspot_trigger_properties):
            # Untick the trigger with the results, so ticking it again asks again (our own
            # change arrives as an event with a false value, which is skipped).
            out = Result({**out.properties, str(event["propertyName"]): "false"}, out.note,
                         out.receipt_id)
        written = write_back(prepared.client, self.outbox, job_id=job.id,
                             contact_id=prepared.contact_id, result=out)
        return {"trigger": prepared.why, "receipt_id": result.receipt.id,
                "route": result.receipt.role, **written}

    # -- workflow actions ------------------------------------------------------------------------

    def handle_action(self, job: JobRow) -> dict[str, Any]:
        p = job.payload
        key, portal = p["reply_key"], int(p["portal"])
        row = self.replies.get(key)
        if row is None or row.outputs is None:  # not generated yet (a retry skips the model)
            outputs = self._run_action(job)
            if self.replies.answer(key, outputs):
                return {"answered": "sync", "outputs": outputs}
        self.flush(portal)
        row = self.replies.get(key)
        return {"answered": "callback", "state": row.state if row else "missing",
                "outputs": row.outputs if row else None}

    def _run_action(self, job: JobRow) -> dict[str, str]:
        p = job.payload
        client = self.auth.client(int(p["portal"]))
        kind, inputs = self.specs[p["action"]].kind, p["inputs"]
        try:
            result = self._generate(client, job, str(p["object_id"]), kind, inputs)
            written = _result(kind, result)
            write_back(client, self.outbox, job_id=job.id, contact_id=str(p["object_id"]),
                       result=written)
        except (GenerationError, InputError, UnknownNameError) as exc:
            log.info("workflow action failed", extra={"job_id": job.id, "error": type(exc).__name__})
            return ActionRefused(_error_code(exc), str(exc)).outputs()
        except BatonError as exc:  # transient: retried, but the last attempt answers the workflow
            if job.attempts < job.max_attempts:
                raise
            log.info("workflow action gave up", extra={"job_id": job.id, "error": type(exc).__name__})
            return ActionRefused("unavailable",
                                 f"gave up after {job.attempts} attempts: {exc}").outputs()
        outputs = {name: "" for name in self.specs[p["action"]].outputs}
        outputs.update({"hs_execution_state": "SUCCESS", "receipt_id": result.receipt.id,
                        "route": result.receipt.role})
        outputs.update(_outputs(kind, result))
        return outputs

    def flush(self, portal: int) -> int:
        """Complete the portal's ready callbacks, up to 100 in one call; return how many were
        completed. A callback past its ``BLOCK`` expiry is dropped with a log line (HubSpot moved
        on without it); a batch HubSpot refuses is sent again one callback at a time, and the
        callbacks it refuses alone are set aside, never resent."""
        rows = self.replies.claim("hubspot", str(portal), lease=self.lease)
        if not rows:
            return 0
        horizon = datetime.now(UTC) - timedelta(
            days=iso_duration_days(self.settings.hubspot_block_expiration))
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

    # -- shared --------------------------------------------------------------------------------

    def _generate(self, client: HubSpotClient, job: JobRow, contact_id: str, kind: str,
                  inputs: Mapping[str, str]) -> EngineResult:
        return self.engine().run(self._task(client, job, contact_id, kind, inputs))

    def _task(self, client: HubSpotClient, job: JobRow, contact_id: str, kind: str,
              inputs: Mapping[str, str]) -> Task:
        """The engine task for a contact: its context from HubSpot, the action's inputs."""
        props = Settings.list_of(self.settings.hubspot_contact_properties)
        consent = tuple(Settings.list_of(self.settings.hubspot_consent_properties))
        context, language = fetch_context(client, contact_id, props, consent)
        if kind == "recommendation":
            context["catalog"] = self.catalog(client)
        brief = with_tone(inputs.get("brief") or self.settings.hubspot_brief, inputs.get("tone"))
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
    if isinstance(exc, ActionRefused):
        return exc.code
    if isinstance(exc, ConsentError):
        return "opted_out"
    if isinstance(exc, LanguageError):
        return "unsupported_language"
    if isinstance(exc, GenerationError):
        return "generation_failed"
    if isinstance(exc, RecordNotFound):
        return "record_not_found"
    if isinstance(exc, PlatformRejected):
        return "crm_refused"
    return "invalid_input"


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

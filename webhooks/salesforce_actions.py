"""``POST /salesforce/actions/<action>``: a Salesforce Flow (HTTP Callout / External Services) or
Apex asks for an email, product recommendations or a support reply for one record.

Authentication: a Baton API key (``baton keys create --name salesforce --tenant <org>``) sent by
the Named Credential as ``Authorization: Bearer <key>``. The record's fields come in the body (the
Flow passes what it has); the job is a generic engine task, deduped on ``requestId``. If it is done
within ``BATON_SALESFORCE_SYNC_BUDGET`` seconds (default 8, under Apex's 10-second default callout
timeout) the answer carries the outputs, which the Flow writes to the record with an Update Records
element; otherwise 202 with the task's id and its poll URL (``GET /v1/tasks/<id>``, same key). A
generation that fails its checks is a 422 with the reason, so the Flow takes its fault path.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.http import BadRequest, NotFound
from core.contacts import canonical
from core.jobs.lifecycle import DEAD, DONE, FAILED, NewJob
from core.policy import describe_validation_error
from core.retention import subject_for
from core.tasks.kinds import ACTION_KINDS, TONES, with_tone
from core.tasks.recommend import summary
from webhooks.common import json_body, record, services, wait_for_job
from webhooks.tasks import tenant

blueprint = Blueprint("salesforce_actions", __name__)

Scalar = str | int | float | bool | None


class CatalogItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=500)


class FlowAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recordId: str = Field(min_length=15, max_length=18, pattern=r"^[A-Za-z0-9]+$")
    fields: dict[str, Scalar] = Field(default_factory=dict, max_length=100)
    brief: str = Field(default="", max_length=4000)
    tone: str | None = Field(default=None, json_schema_extra={"enum": [*TONES, None]})
    tier: Literal["routine", "critical"] = "routine"
    language: str = Field(default="en", max_length=8)
    requestId: str | None = Field(default=None, min_length=1, max_length=200)
    purchases: list[str] = Field(default_factory=list, max_length=100)
    catalog: list[CatalogItem] = Field(default_factory=list, max_length=200)


    @field_validator("tone")
    @classmethod
    def _known_tone(cls, tone: str | None) -> str | None:
        if tone is not None and tone not in TONES:
            raise ValueError(f"expected one of {', '.join(TONES)}")
        return tone


def context_of(body: FlowAction) -> dict[str, Any]:
    """The record's fields in the canonical vocabulary (``MailingPostalCode`` -> ``postal_code``,
    ``HasOptedOutOfEmail`` -> ``email_opt_out``); fields Baton does not know are kept."""
    context: dict[str, Any] = canonical({k: v for k, v in body.fields.items()
                                         if v not in (None, "")})
    if body.purchases:
        context["purchases"] = body.purchases
    if body.catalog:
        context["catalog"] = [c.model_dump(exclude_defaults=True) for c in body.catalog]
    return context


@blueprint.post("/salesforce/actions/<action>")
def action(action: str) -> tuple[Response, int]:
    owner = tenant()
    kind = ACTION_KINDS.get(action)
    if kind is None:
        raise NotFound(f"unknown action {action!r}; known: {', '.join(sorted(ACTION_KINDS))}")
    try:
        body = FlowAction.model_validate(json_body())
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc)) from None
    if not body.brief.strip() and kind != "recommendation":
        raise BadRequest("brief: required for this action")
    brief = with_tone(body.brief, body.tone)
    context = context_of(body)
    payload = {"kind": kind, "context": context, "brief": brief.strip(), "tier": body.tier,
               "language": body.language, "source": {"salesforce_record": body.recordId}}
    external = f"{body.recordId}:{body.requestId}" if body.requestId else None
    accepted = record(f"salesforce-flow:{owner}", [NewJob(
        external_id=external, kind="task", tenant=owner, payload=payload,
        subject=subject_for(body.recordId))])
    job_id = accepted.job_ids[0]
    job = wait_for_job(job_id, _sync_budget())
    if job is None or job.tenant != owner:
        raise NotFound("no such task for this key")
    if job.state == DONE and job.result:
        out = job.result["output"]
        return jsonify(state="done", job_id=job_id, recordId=body.recordId,
                       subject=str(out.get("subject", "")),
                       body=str(out.get("body", out.get("message", ""))),
                       recommendations=summary(out, context),
                       receipt_id=job.result["receipt_id"], route=job.result["route"]), 200
    if job.state in (FAILED, DEAD):
        code = "opted_out" if (job.error or "").startswith("consent:") else "generation_failed"
        return jsonify(state=job.state, job_id=job_id, recordId=body.recordId,
                       error=code, reason=job.error or "failed"), 422
    return jsonify(state=job.state, job_id=job_id, recordId=body.recordId,
                   poll_url=f"/v1/tasks/{job_id}"), 202


def _sync_budget() -> float:
    """``BATON_SALESFORCE_SYNC_BUDGET``, from the Salesforce connector's settings."""
    connector = services().connectors.get("salesforce")
    return float(connector.settings.sync_budget)  # type: ignore[attr-defined]

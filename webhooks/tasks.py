"""The generic task API, for marketing tools without a connector (Marketo, Braze, Mautic,
Zapier): submit any engine task with a bearer key, then poll for its state and result.

``Prefer: wait=N`` (RFC 7240) on either call holds the request until the task has ended or N
seconds (at most :data:`MAX_WAIT`) have passed: one round trip instead of a polling loop. The
answer says ``Preference-Applied: wait=N`` when it waited (a request finds no waiting slot when
other waits hold them, see :class:`webhooks.services.SyncWaits`)."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.http import BadRequest, NotFound, Unauthorized
from connectors.salesforce.flow import ACTION as FLOW_ACTION
from core.contacts import canonical
from core.credentials.apikeys import ApiKeys
from core.jobs.lifecycle import ENDED, NewJob
from core.policy import describe_validation_error
from core.retention import subject_for
from core.store import JobRow
from webhooks.common import json_body, record, services, wait_for_job

blueprint = Blueprint("tasks", __name__)
MAX_WAIT = 25  # seconds; under the 30 s read timeout many HTTP clients and proxies default to


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    context: dict[str, Any]
    brief: str = Field(default="", max_length=4000)
    tier: Literal["routine", "critical"] = "routine"
    language: str = Field(default="en", max_length=8)


def tenant() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <API key> (create one: baton keys create)")
    found = ApiKeys(services().store).tenant_for(key.strip())
    if found is None:
        raise Unauthorized("unknown or revoked API key")
    return found


@blueprint.post("/v1/tasks")
def submit() -> tuple[Response, int]:
    owner = tenant()
    wait = preferred_wait()
    try:
        body = TaskRequest.model_validate(json_body())
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc)) from None
    if body.kind in ("email", "text", "reply") and not body.brief.strip():
        raise BadRequest(f"brief: empty; say what the {body.kind} is about "
                         "(e.g. \"Introduce our new rain jacket\")")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 200:
        raise BadRequest("Idempotency-Key must be 1 to 200 characters")
    contact = canonical(body.context)
    email = contact.get("email")
    subject = subject_for(str(contact["record_id"])) if contact.get("record_id") else \
        subject_for(email) if isinstance(email, str) and "@" in email else None
    accepted = record(f"api:{owner}", [NewJob(external_id=key, kind="task", tenant=owner,
                                              payload=body.model_dump(), subject=subject)])
    job_id, duplicate = accepted.job_ids[0], accepted.duplicate[0]
    if wait:
        job = _waited(job_id, wait)
        if job is not None and job.tenant == owner and job.state in ENDED:
            response, code = _show(job), 200  # ended within the wait: as GET shows it
        else:  # not ended yet, a new task or a repeated one alike
            response, code = jsonify(id=job_id, state=_state(job_id, owner)), 202
        response.headers["Preference-Applied"] = f"wait={wait:.0f}"
    else:
        response = jsonify(id=job_id, state=_state(job_id, owner) if duplicate else "queued")
        code = 200 if duplicate else 202
    response.headers["Location"] = f"/v1/tasks/{job_id}"
    response.headers["Vary"] = "Prefer"
    return response, code


def _waited(job_id: str, wait: float) -> JobRow | None:
    return wait_for_job(job_id, wait, api=True)


def _state(job_id: str, owner: str) -> str:
    job = services().jobs.get(job_id)
    return job.state if job is not None and job.tenant == owner else "unknown"


# the jobs a key may poll: its tasks, and its Salesforce Flow actions that answered 202
POLLED = ("task", FLOW_ACTION)


@blueprint.get("/v1/tasks/<job_id>")
def show(job_id: str) -> Response:
    owner = tenant()
    wait = preferred_wait()
    job = services().jobs.get(job_id)
    if job is None or job.tenant != owner or job.kind not in POLLED:
        raise NotFound(f"no task {job_id} for this key")
    response = _show(_waited(job_id, wait) or job if wait else job)
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait:.0f}"
    response.headers["Vary"] = "Prefer"
    return response


def _show(job: JobRow) -> Response:
    result = job.result
    if job.kind == FLOW_ACTION and result is not None and "outputs" in result:
        result = result["outputs"]  # what the Flow would have been answered with
    return jsonify(id=job.id, state=job.state, attempts=job.attempts, result=result,
                   error=job.error, created_at=job.created_at.isoformat(),
                   updated_at=job.updated_at.isoformat())


def preferred_wait() -> float:
    """Seconds the client asks to wait (``Prefer: wait=N``, the first one that is whole
    seconds), capped at :data:`MAX_WAIT`; 0 when it does not ask. Preferences the server cannot
    follow (other names, a wait that is not whole seconds) are ignored, as RFC 7240 requires;
    the answer's ``Preference-Applied`` header tells the client whether it waited."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";")[0].strip().partition("=")
            value = value.strip().strip('"')
            if name.strip().lower() == "wait" and value.isascii() and value.isdigit():
                return float(MAX_WAIT if len(value) > 9 else min(int(value), MAX_WAIT))
    return 0.0

"""The generic task API, for marketing tools without a connector (Marketo, Braze, Mautic,
Zapier): submit any engine task with a bearer key, then poll for its state and result.

``Prefer: wait=N`` (RFC 7240) on either call holds the request until the task has ended or N
seconds (at most :data:`MAX_WAIT`) have passed: one round trip instead of a polling loop."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.apikeys import ApiKeys
from core.contacts import canonical
from core.jobs import DEAD, DONE, FAILED, NewJob
from core.policy import describe_validation_error
from core.retention import subject_for
from core.store import JobRow
from webhooks.common import json_body, record, services, wait_for_job
from webhooks.errors import BadRequest, NotFound, Unauthorized

blueprint = Blueprint("tasks", __name__)
ENDED = (DONE, FAILED, DEAD)
MAX_WAIT = 25  # seconds; under gunicorn's 30 s request timeout


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
    job = wait_for_job(job_id, wait) if wait else None
    if job is not None and job.tenant == owner and job.state in ENDED:
        response = _show(job)  # ended within the wait: the whole task, as GET shows it
        code = 200
    else:
        response = jsonify(id=job_id, state=_state(job_id, owner) if duplicate or wait else "queued")
        code = 200 if duplicate else 202
    response.headers["Location"] = f"/v1/tasks/{job_id}"
    return response, code


def _state(job_id: str, owner: str) -> str:
    job = services().jobs.get(job_id)
    return job.state if job is not None and job.tenant == owner else "unknown"


@blueprint.get("/v1/tasks/<job_id>")
def show(job_id: str) -> Response:
    owner = tenant()
    wait = preferred_wait()
    job = services().jobs.get(job_id)
    if job is None or job.tenant != owner or job.kind != "task":
        raise NotFound(f"no task {job_id} for this key")
    return _show(wait_for_job(job_id, wait) or job if wait else job)


def _show(job: JobRow) -> Response:
    return jsonify(id=job.id, state=job.state, attempts=job.attempts, result=job.result,
                   error=job.error, created_at=job.created_at.isoformat(),
                   updated_at=job.updated_at.isoformat())


def preferred_wait() -> float:
    """Seconds the client asks to wait (``Prefer: wait=N``), capped at :data:`MAX_WAIT`; 0 when
    it does not ask. Other preferences are ignored, as RFC 7240 says; a wait that is not a
    number of seconds is refused."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";")[0].strip().partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            if not value.isascii() or not value.isdigit() or len(value) > 6:
                raise BadRequest(f"Prefer: wait={value[:20]!r}: expected whole seconds, e.g. "
                                 f"Prefer: wait={MAX_WAIT}")
            return float(min(int(value), MAX_WAIT))
    return 0.0

"""Operations routes: liveness, readiness, metrics, and the OpenAPI document."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from connectors.http import Unauthorized
from core.store import JobRow, Store
from core.tasks.kinds import TONES
from webhooks.common import services

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    svc = services()
    checks: dict[str, str] = {}
    try:
        with svc.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["queue"] = "ok" if svc.dispatcher.ping() else "unavailable"
    ok, why = svc.model_ready()
    checks["model"] = "ok" if ok else why
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus text; behind ``BATON_METRICS_TOKEN`` when one is set."""
    svc = services()
    tokens = svc.settings.secrets_of(svc.settings.metrics_token)
    if tokens:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens):
            raise Unauthorized("send Authorization: Bearer <BATON_METRICS_TOKEN>")
    return Response(svc.metrics.render(), mimetype="text/plain; version=0.0.4")


def job_counts(store: Store) -> dict[str, int]:
    with store.session() as session:
        rows = session.execute(sa.select(JobRow.state, sa.func.count()).group_by(JobRow.state))
        return {state: int(n) for state, n in rows}


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(OPENAPI)


_ERROR = {"type": "object", "required": ["error", "reason"],
          "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}}
PREFER = {"name": "Prefer", "in": "header", "required": False,
          "description": "wait=N (RFC 7240): wait up to N seconds (at most 25) for the task to end",
          "schema": {"type": "string", "example": "wait=20"}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Baton task API", "version": "1",
             "description": "Import into Salesforce External Services to call Baton from Flow."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "TaskRequest": {
                "type": "object", "required": ["kind", "context"], "additionalProperties": False,
                "properties": {
                    "kind": {"type": "string", "example": "email"},
                    "context": {"type": "object", "description": "the contact or record"},
                    "brief": {"type": "string"},
                    "tier": {"type": "string", "enum": ["routine", "critical"]},
                    "language": {"type": "string", "example": "en"},
                },
            },
            "FlowAction": {
                "type": "object", "required": ["recordId"], "additionalProperties": False,
                "properties": {
                    "recordId": {"type": "string", "minLength": 15, "maxLength": 18},
                    "fields": {"type": "object", "description": "the record's fields by API name",
                               "additionalProperties": {"type": "string"}},
                    "brief": {"type": "string"},
                    "tone": {"type": "string", "enum": list(TONES)},
                    "tier": {"type": "string", "enum": ["routine", "critical"]},
                    "language": {"type": "string", "example": "en"},
                    "requestId": {"type": "string", "description": "dedupes retries"},
                    "purchases": {"type": "array", "items": {"type": "string"}},
                    "catalog": {"type": "array", "items": {"type": "object", "required": ["sku"],
                                                           "properties": {
                                                               "sku": {"type": "string"},
                                                               "name": {"type": "string"},
                                                               "description": {"type": "string"}}}},
                },
            },
            "FlowResult": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in (
                    "state", "job_id", "recordId", "subject", "body", "recommendations",
                    "receipt_id", "route", "poll_url", "error", "reason")},
            },
            "Task": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "state": {"type": "string",
                              "enum": ["queued", "running", "done", "failed", "dead"]},
                    "attempts": {"type": "integer"}, "result": {"type": "object", "nullable": True},
                    "error": {"type": "string", "nullable": True},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tasks": {"post": {
            "summary": "Submit a task",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 200}}, PREFER],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/TaskRequest"}}}},
            "responses": {
                "202": {"description": "accepted"},
                "200": {"description": "seen before; or, with Prefer: wait, ended in time",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Task"}}}},
                "400": {"description": "bad request", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "bad or missing key"},
                "415": {"description": "not JSON"},
            },
        }},
        "/salesforce/actions/{action}": {"post": {
            "summary": "Generate for one Salesforce record (Flow HTTP Callout / External Services)",
            "operationId": "generateForRecord",
            "parameters": [{"name": "action", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": ["email", "recommend", "reply"]}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/FlowAction"}}}},
            "responses": {
                "200": {"description": "done", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/FlowResult"}}}},
                "202": {"description": "still running: poll /v1/tasks/{job_id}",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/FlowResult"}}}},
                "400": {"description": "bad request", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "bad or missing key"},
                "422": {"description": "generation failed its checks", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/FlowResult"}}}},
            },
        }},
        "/v1/tasks/{id}": {"get": {
            "summary": "A task's state and result",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}, PREFER],
            "responses": {"200": {"description": "the task", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Task"}}}},
                          "404": {"description": "no such task for this key"}},
        }},
    },
}

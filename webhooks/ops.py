"""Operations routes: liveness, readiness, metrics, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from core.store import JobRow, Store
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
    return Response(services().metrics.render(), mimetype="text/plain; version=0.0.4")


def job_counts(store: Store) -> dict[str, int]:
    with store.session() as session:
        rows = session.execute(sa.select(JobRow.state, sa.func.count()).group_by(JobRow.state))
        return {state: int(n) for state, n in rows}


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(OPENAPI)


_ERROR = {"type": "object", "required": ["error", "reason"],
          "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Baton task API", "version": "1"},
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
                            "schema": {"type": "string", "maxLength": 200}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/TaskRequest"}}}},
            "responses": {
                "202": {"description": "accepted"}, "200": {"description": "seen before"},
                "400": {"description": "bad request", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "bad or missing key"},
                "415": {"description": "not JSON"},
            },
        }},
        "/v1/tasks/{id}": {"get": {
            "summary": "A task's state and result",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the task", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Task"}}}},
                          "404": {"description": "no such task for this key"}},
        }},
    },
}

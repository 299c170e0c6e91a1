"""The OpenAPI document of the task API and the Salesforce Flow action, generated from the pydantic
models the routes validate with (so the document cannot drift from what the routes accept).

OpenAPI 3.0.3, because Salesforce External Services reads 3.0 and not 3.1: pydantic's JSON Schema
(draft 2020-12) is brought down to 3.0's dialect (``nullable`` for a union with null, one
``example`` instead of ``examples``, no ``const``, no ``title``).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.salesforce.flow import FlowAction, FlowResult
from core.jobs.lifecycle import DEAD, DONE, FAILED, QUEUED, RUNNING
from core.tasks.kinds import ACTION_KINDS
from webhooks.tasks import TaskRequest


class Error(BaseModel):
    error: str = Field(description="a code: bad_request, unauthorized, not_found, ...")
    reason: str = Field(description="what was wrong, in a sentence")


class TaskView(BaseModel):
    id: str
    state: Literal[QUEUED, RUNNING, DONE, FAILED, DEAD]  # type: ignore[valid-type]
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    updated_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


MODELS: tuple[type[BaseModel], ...] = (Error, TaskRequest, TaskView, FlowAction, FlowResult)
PREFER = {"name": "Prefer", "in": "header", "required": False,
          "description": "wait=N (RFC 7240): wait up to N seconds (at most 25) for the task to end",
          "schema": {"type": "string", "example": "wait=20"}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def to_openapi_30(schema: Any) -> Any:
    """A JSON Schema (draft 2020-12, as pydantic writes it) in OpenAPI 3.0's dialect."""
    if isinstance(schema, list):
        return [to_openapi_30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_openapi_30(v) for k, v in schema.items() if k not in ("title", "examples")}
    if schema.get("examples"):
        out["example"] = schema["examples"][0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    variants = out.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out.update(rest[0])
        elif len(rest) == 1:
            out["allOf"] = rest
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    return out


def components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = to_openapi_30(definition)
        schemas[model.__name__] = to_openapi_30(schema)
    return schemas


@functools.cache
def document() -> dict[str, Any]:
    """The whole document, as served at ``/openapi.json`` (built once per process)."""
    bad_request = _json("Error", "bad request")
    return {
        "openapi": "3.0.3",
        "info": {"title": "Baton task API", "version": "1",
                 "description": "Import into Salesforce External Services to call Baton from Flow."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": components()},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/tasks": {"post": {
                "summary": "Submit a task",
                "operationId": "submitTask",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 200}}, PREFER],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("TaskRequest")}}},
                "responses": {
                    "202": _json("TaskView", "accepted"),
                    "200": _json("TaskView", "seen before; or, with Prefer: wait, ended in time"),
                    "400": bad_request,
                    "401": _json("Error", "bad or missing key"),
                    "415": _json("Error", "not JSON"),
                },
            }},
            "/v1/tasks/{id}": {"get": {
                "summary": "A task's state and result",
                "operationId": "getTask",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string"}}, PREFER],
                "responses": {"200": _json("TaskView", "the task"),
                              "404": _json("Error", "no such task for this key")},
            }},
            "/salesforce/actions/{action}": {"post": {
                "summary": "Generate for one Salesforce record (Flow HTTP Callout / External Services)",
                "operationId": "generateForRecord",
                "parameters": [{"name": "action", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": sorted(ACTION_KINDS)}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("FlowAction")}}},
                "responses": {
                    "200": _json("FlowResult", "done"),
                    "202": _json("FlowResult", "still running: poll /v1/tasks/{job_id}"),
                    "400": bad_request,
                    "401": _json("Error", "bad or missing key"),
                    "422": _json("FlowResult", "generation failed its checks"),
                },
            }},
        },
    }

"""Operations routes: liveness, readiness, metrics, and the OpenAPI document."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from connectors.http import Unauthorized
from core.store import JobRow, Store
from webhooks.common import services
from webhooks.openapi import document

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
    return jsonify(document())

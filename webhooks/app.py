"""The Flask app: ``create_app(settings)``.

Each platform route verifies its signature first and fails closed (401 with a JSON reason), then
parses, then records the delivery in the durable inbox in one transaction, and only then acks.
Dispatch to the workers happens after the commit; if it fails the reconciler sends the job later,
so an acked event is never lost. Every client mistake is a 4xx with a reason, never a 500.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from connectors.http import ApiError
from core.ids import new_id
from webhooks.services import Services

log = logging.getLogger("baton.web")
SLOW_SECONDS = 1.0  # a response this slow is logged whatever BATON_ACCESS_LOG says


def create_app(services: Services) -> Flask:
    """The WSGI app for one set of services (settings are read once, by the caller)."""
    from webhooks import ops, platforms, tasks

    app = Flask("baton")
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_body_bytes
    app.extensions["baton"] = services
    everything = services.settings.access_log == "all"
    app.register_blueprint(ops.blueprint)
    platforms.register(app, services.connectors.names())
    app.register_blueprint(tasks.blueprint)

    @app.before_request
    def _start() -> None:
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or new_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        # a connector's known route by its path (webhooks.platforms), others by their rule
        route = g.get("route_label") or (request.url_rule.rule if request.url_rule else "unmatched")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        services.metrics.observe_request(route, response.status_code, elapsed)
        response.headers["X-Request-Id"] = g.get("request_id", "")
        # A line per request costs a contended handler lock and a write on the ack path
        # (bench.ack_path measures it); by default only the requests someone has to look at get
        # one at INFO.
        problem = response.status_code >= 400 or elapsed >= SLOW_SECONDS
        level = logging.INFO if problem or everything else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "request", extra={"request_id": g.get("request_id"), "route": route,
                                             "status": response.status_code,
                                             "ms": round(elapsed * 1000, 2)})
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error=exc.code, reason=exc.reason), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        reasons = {404: "no such route", 405: "method not allowed on this route",
                   413: f"body larger than {services.settings.max_body_bytes} bytes"}
        return jsonify(error=exc.name.lower().replace(" ", "_"),
                       reason=reasons.get(status, exc.description or exc.name)), status

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> tuple[Response, int]:
        # the database is unreachable or locked: transient, the platform retries
        log.warning("database unavailable", extra={"request_id": g.get("request_id"),
                                                   "error": type(exc.orig).__name__})
        return jsonify(error="unavailable", reason="the database is unavailable; retry later",
                       request_id=g.get("request_id")), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return jsonify(error="internal_error", reason="unexpected server error",
                       request_id=g.get("request_id")), 500

    return app


def json_log_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message and the record's extras."""

    standard = set(vars(logging.makeLogRecord({})))

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                                   "logger": record.name, "msg": record.getMessage()}
            out.update({k: v for k, v in vars(record).items()
                        if k not in standard and not k.startswith("_")})
            if record.exc_info:
                out["exc"] = self.formatException(record.exc_info)
            return json.dumps(out, default=str)

    return JsonFormatter()

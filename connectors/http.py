"""A platform's HTTP request and Baton's answer, without a web framework.

The web layer (:mod:`webhooks.platforms`) builds an :class:`Inbound` from the request it received,
as slack-bolt's adapters build a ``BoltRequest``, and sends back the :class:`Outbound` a connector
returns. A request the connector refuses raises one of the :class:`ApiError` subclasses: each is
one HTTP status with a reason, and the connector decides how the platform wants to read it (JSON
for most, a SOAP fault for Salesforce's outbound messages).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Inbound:
    """One request to ``/<connector>/<route>``."""

    method: str
    route: str  # the path after the connector's name: "webhooks", "actions/email"
    url: str  # as the platform called it, query included: what a signature covers
    headers: Mapping[str, str]  # looked up case-insensitively
    body: bytes  # the exact bytes the platform signed
    query: Mapping[str, str] = field(default_factory=dict)
    client: str = ""  # the caller's address (behind trusted proxies, as the nearest one saw it)
    mimetype: str = ""  # the Content-Type without its parameters
    received_at: float = 0.0  # epoch seconds, the clock signatures are checked against

    def json(self) -> Any:
        """The body parsed as JSON (see :func:`parse_json`)."""
        return parse_json(self.body, self.mimetype)


def parse_json(body: bytes, mimetype: str) -> Any:
    """A request body parsed as JSON; :class:`UnsupportedMediaType` for another content type,
    :class:`BadRequest` with the reason if it is broken."""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"expected application/json, got {mimetype or 'no content type'}")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except RecursionError:
        raise BadRequest("JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BadRequest(f"unreadable JSON: {str(exc)[:120]}") from None


def _finite(text: str) -> float:
    """A number too large for a float (``1e999``) is not infinity: JSON has no infinity, and
    PostgreSQL refuses it."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (and PostgreSQL refuses them)."""
    raise ValueError(f"{name} is not a JSON value")


@dataclass(frozen=True)
class Outbound:
    """The answer to a request."""

    status: int
    body: str | bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int = 200, **fields: Any) -> Outbound:
        return cls(status, json.dumps(fields))

    @classmethod
    def html(cls, status: int, page: str) -> Outbound:
        return cls(status, page, "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> Outbound:
        return cls(302, "", "text/plain", {"Location": location})


class ApiError(Exception):
    """A request refused with a status and a reason (``{"error": code, "reason": ...}``)."""

    status = 400
    code = "bad_request"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ServiceUnavailable(ApiError):
    status, code = 503, "unavailable"

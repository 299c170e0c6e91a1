"""The web layer's errors: each maps to one HTTP status and a JSON reason."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class NotFound(ApiError):
    status, code = 404, "not_found"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class ServiceUnavailable(ApiError):
    status, code = 503, "unavailable"


class Forbidden(ApiError):
    status, code = 403, "forbidden"

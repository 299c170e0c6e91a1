"""The connectors' error tree. Vendor SDK exceptions are translated where the SDK is called.

    ConnectorError (core.errors.BatonError)
    ├── PlatformUnavailable   429 storm, 5xx, timeout, connection: the job is retried later
    ├── PlatformRejected      the platform refused the call for good (4xx): the job fails
    ├── RecordNotFound        the record the event names does not exist (any more)
    └── NotInstalled          no credentials for this portal / org / workspace
"""

from __future__ import annotations

from core.errors import (
    BatonError,
    ConsentError,
    GenerationError,
    InputError,
    LanguageError,
    NotApproved,
    UnknownNameError,
)


class ConnectorError(BatonError):
    """Base of the connector errors."""


class PlatformUnavailable(ConnectorError):
    """Transient platform trouble; retrying later can help."""


class PlatformRejected(ConnectorError, InputError):
    """A permanent refusal (bad request, missing scope, unknown property)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RecordNotFound(ConnectorError, InputError):
    """The record does not exist."""


class NotInstalled(ConnectorError, InputError):
    """No credentials for the account the event came from."""


def error_code(exc: BaseException) -> str:
    """A failed job's reason as a short code a platform's workflow can branch on (a HubSpot
    action's ``errorCode`` output, a Salesforce Flow's 422 ``error``)."""
    if isinstance(exc, ConsentError):
        return "opted_out"
    if isinstance(exc, NotApproved):
        return exc.code
    if isinstance(exc, LanguageError):
        return "unsupported_language"
    if isinstance(exc, GenerationError):
        return "generation_failed"
    if isinstance(exc, RecordNotFound):
        return "record_not_found"
    if isinstance(exc, PlatformRejected):
        return "crm_refused"
    if isinstance(exc, InputError | UnknownNameError) and not isinstance(exc, NotInstalled):
        return "invalid_input"
    return "unavailable"  # Baton cannot run it until mended (settings, budget, access, outage)

"""The connectors' error tree. Vendor SDK exceptions are translated where the SDK is called.

    ConnectorError (core.errors.BatonError)
    ├── PlatformUnavailable   429 storm, 5xx, timeout, connection: the job is retried later
    ├── PlatformRejected      the platform refused the call for good (4xx): the job fails
    ├── RecordNotFound        the record the event names does not exist (any more)
    └── NotInstalled          no credentials for this portal / org / workspace
"""

from __future__ import annotations

from core.errors import BatonError, InputError


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

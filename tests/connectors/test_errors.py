"""The one reading of a failed job as a code workflows branch on (HubSpot's errorCode output, a
Salesforce Flow's 422 error)."""

from __future__ import annotations

import pytest

from connectors.errors import NotInstalled, PlatformRejected, PlatformUnavailable, RecordNotFound, error_code
from core.errors import (
    ConfigError,
    ConsentError,
    GenerationError,
    InputError,
    LanguageError,
    QuotaExhaustedError,
    UnknownNameError,
)


@pytest.mark.parametrize(("error", "code"), [
    (ConsentError("consent: opted out"), "opted_out"),
    (LanguageError("no brand voice for xx"), "unsupported_language"),
    (GenerationError("every candidate failed its checks"), "generation_failed"),
    (RecordNotFound("gone"), "record_not_found"),
    (PlatformRejected("INVALID_FIELD", status=400), "crm_refused"),
    (InputError("brief: empty"), "invalid_input"),
    (UnknownNameError("task kind", "poem", ["email"]), "invalid_input"),
    (NotInstalled("org not connected"), "unavailable"),  # mended by connecting, not by the caller
    (ConfigError("BATON_MODEL_PATH: no such file"), "unavailable"),
    (QuotaExhaustedError("the budget is spent"), "unavailable"),
    (PlatformUnavailable("503"), "unavailable"),
    (RuntimeError("a bug"), "unavailable"),
])
def test_each_failure_has_its_code(error: BaseException, code: str) -> None:
    assert error_code(error) == code

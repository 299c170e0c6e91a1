"""The cloud backend: any OpenAI-compatible chat-completions endpoint through the openai client.

Retries are Baton's, not the SDK's (``max_retries=0``): a 429 ``insufficient_quota`` (or another
billing stop) must never be retried, and ``Retry-After`` is honoured however long it is, up to
``BATON_OPENAI_MAX_RETRY_WAIT``; past that the call fails fast as transient, so a worker is not
parked for hours and the job layer can reschedule it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import openai

from core.backends.base import Generation, Limits, api_schema
from core.errors import BackendError, InputError, QuotaExhaustedError, TransientBackendError
from core.policy import ModelRole
from core.settings import Settings
from core.tasks.kinds import Prompt, PromptStyle

_BILLING_CODES = {
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
}


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """``retry-after-ms``, else ``retry-after`` in seconds or as an HTTP date; None if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


def _error_code(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("code") or inner.get("type") or "")
    return ""


class OpenAIBackend:
    """Chat completions with ``response_format`` json_schema; usage and cached tokens recorded."""

    name = "openai"
    keeps_data_local = False
    prompt_style: PromptStyle = "chat"

    def __init__(self, settings: Settings, role: ModelRole, *,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.settings, self.role = settings, role
        self.model = role.model
        self.sleep, self.jitter = sleep, jitter
        self.client = openai.OpenAI(
            api_key=settings.openai_api_key.get_secret_value() or "unset",
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout,
            max_retries=0,
        )

    def generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        messages = [dict(m) for m in prompt.messages] or [{"role": "user", "content": prompt.text}]
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "response_format": self._response_format(api_schema(schema)),
            "max_tokens": limits.max_tokens,
            "temperature": limits.temperature,
        }
        seed = limits.seed if prompt.seed is None else prompt.seed
        if seed is not None:
            request["seed"] = seed
        attempts = self.settings.openai_max_retries + 1
        for attempt in range(attempts):
            try:
                response = self.client.chat.completions.create(**request)
            except openai.RateLimitError as exc:
                code = _error_code(exc)
                if code in _BILLING_CODES:
                    raise QuotaExhaustedError(
                        f"cloud account out of quota ({code}); not retried", backend=self.name,
                        status=429,
                    ) from None
                self._wait(attempt, attempts, exc.response.headers, f"rate limited (429 {code})")
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 or exc.status_code in (408, 409):
                    self._wait(attempt, attempts, exc.response.headers,
                               f"server error {exc.status_code}")
                    continue
                if exc.status_code == 401:
                    raise BackendError("cloud rejected the API key (401): check "
                                       "BATON_OPENAI_API_KEY", backend=self.name, status=401) \
                        from None
                if exc.status_code == 400 and "context" in str(exc.message).lower():
                    raise InputError(f"prompt does not fit the cloud model: {exc.message}") \
                        from None
                raise BackendError(f"cloud request refused ({exc.status_code}): {exc.message}",
                                   backend=self.name, status=exc.status_code) from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "unreachable"
                self._wait(attempt, attempts, None, f"cloud {kind}")
            else:
                return self._generation(response)
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.role.response_format == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True}}

    def _wait(self, attempt: int, attempts: int, headers: Mapping[str, str] | None,
              what: str) -> None:
        """Sleep before the next attempt, or raise when none is left or the wait is too long."""
        if attempt + 1 >= attempts:
            raise TransientBackendError(f"{what}; gave up after {attempts} attempts",
                                        backend=self.name)
        wait = retry_after_seconds(headers)
        if wait is None:
            wait = min(8.0, 0.5 * 2**attempt) * (0.5 + self.jitter())
        elif wait > self.settings.openai_max_retry_wait:
            raise TransientBackendError(
                f"{what}; Retry-After {wait:.0f}s exceeds BATON_OPENAI_MAX_RETRY_WAIT",
                backend=self.name,
            )
        self.sleep(wait)

    def _generation(self, response: Any) -> Generation:
        choice = response.choices[0]
        usage = response.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        cached = getattr(details, "cached_tokens", None) or 0
        return Generation(
            text=choice.message.content or "",
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            cached_tokens=int(cached),
            model=self.model,
            finish_reason=str(choice.finish_reason or "stop"),
            refusal=getattr(choice.message, "refusal", None) or None,
        )

    def health(self) -> tuple[bool, str]:
        if not self.settings.openai_api_key.get_secret_value() and not self.settings.openai_base_url:
            return False, "not configured (set BATON_OPENAI_API_KEY or BATON_OPENAI_BASE_URL)"
        return True, ""

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": self.model,
            "base url": str(self.client.base_url),
            "api key": "set" if self.settings.openai_api_key.get_secret_value() else "not set",
            "timeout": f"{self.settings.openai_timeout:g}s",
            "prompt style": self.prompt_style,
        }

    def verify(self) -> str:
        ok, why = self.health()
        if not ok:
            raise BackendError(why, backend=self.name)
        try:
            models = [m.id for m in self.client.models.list()]
        except openai.APIStatusError as exc:
            raise BackendError(f"{self.client.base_url}: {exc.status_code} {exc.message}",
                               backend=self.name, status=exc.status_code) from None
        except openai.APIConnectionError:
            raise BackendError(f"{self.client.base_url}: unreachable", backend=self.name) from None
        return f"{self.client.base_url}: reachable, {len(models)} model(s)"


def openai_factory(settings: Settings, role: ModelRole) -> OpenAIBackend:
    return OpenAIBackend(settings, role)

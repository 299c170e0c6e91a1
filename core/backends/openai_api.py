"""The API backend: any OpenAI-compatible chat-completions endpoint through the openai client,
external (OpenAI, Mistral, Gemini) or private (vLLM, llama.cpp server, Ollama in your network).

A model may be served by several replicas (base URLs): each call goes to the replica with the
fewest requests in flight that is up; a replica that fails to answer (unreachable, timed out,
5xx) is taken out for ``replica_cooldown_seconds`` and the call goes on at once on another one.

Retries are Baton's, not the SDK's (``max_retries=0``): a 429 ``insufficient_quota`` (or another
billing stop) must never be retried, and ``Retry-After`` is honoured however long it is, up to
``BATON_OPENAI_MAX_RETRY_WAIT``; past that the call fails fast as transient, so a worker is not
parked for hours and the job layer can reschedule it.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from core.backends.base import Generation, Limits, api_schema
from core.errors import (
    BackendError,
    DoesNotFitError,
    QuotaExhaustedError,
    TransientBackendError,
)
from core.policy import ModelConfig
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


def _shown(url: str) -> str:
    """A base URL as Baton shows and records it: without user, password or query (the built-in
    ``BATON_OPENAI_BASE_URL`` is not checked like the policy's URLs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Replica:
    """One base URL serving the model, its client, and what the backend knows of it."""

    url: str
    client: openai.OpenAI
    in_flight: int = 0
    calls: int = 0
    down_until: float = 0.0
    why: str = ""


class OpenAIBackend:
    """Chat completions with ``response_format`` json_schema; usage and cached tokens recorded."""

    name = "openai"
    prompt_style: PromptStyle = "chat"

    def __init__(self, settings: Settings, role: ModelConfig, *,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.role = settings, role
        self.model = role.model
        self.keeps_data_local = role.privacy_class == "private"
        self.sleep, self.jitter, self.clock = sleep, jitter, clock
        self.key_source = (role.key_env if role.key_env else
                           "BATON_OPENAI_API_KEY" if not role.endpoints else None)
        key = (os.environ.get(role.key_env, "") if role.key_env
               else settings.openai_api_key.get_secret_value() if not role.endpoints else "")
        self._key = key
        urls: list[str | None] = [*role.endpoints] or [settings.openai_base_url]
        self.replicas = [Replica(url or "", openai.OpenAI(
            api_key=key or "unset", base_url=url, timeout=settings.openai_timeout,
            max_retries=0)) for url in urls]
        for replica in self.replicas:  # as configured; the SDK's own form for the built-in one
            replica.url = _shown(replica.url or str(replica.client.base_url))
        self._lock = threading.Lock()

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    @property
    def client(self) -> openai.OpenAI:
        """The first replica's client (a model with one endpoint has only that one)."""
        return self.replicas[0].client

    def _take(self) -> Replica:
        """The replica with the fewest requests in flight among those up (ties: fewest calls);
        when every one is down, the one whose cooldown ends first."""
        with self._lock:
            now = self.clock()
            up = [r for r in self.replicas if r.down_until <= now]
            replica = (min(up, key=lambda r: (r.in_flight, r.calls)) if up
                       else min(self.replicas, key=lambda r: r.down_until))
            replica.in_flight += 1
            replica.calls += 1
            return replica

    def _done(self, replica: Replica, failed: str | None = None) -> bool:
        """Release ``replica``; when it ``failed``, take it out for its cooldown. Whether
        another replica is up to try at once."""
        with self._lock:
            replica.in_flight -= 1
            if failed is None:
                replica.down_until, replica.why = 0.0, ""
                return False
            if len(self.replicas) == 1:
                return False
            now = self.clock()
            replica.down_until = now + self.role.replica_cooldown_seconds
            replica.why = failed
            return any(r.down_until <= now for r in self.replicas)

    def generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        messages = [dict(m) for m in prompt.messages] or [{"role": "user", "content": prompt.text}]
        self._check_fits(messages, limits)
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
        # one more attempt per further replica: a replica that fails hands over at once
        attempts = self.settings.openai_max_retries + len(self.replicas)
        for attempt in range(attempts):
            replica = self._take()
            failed: str | None = None
            try:
                response = replica.client.chat.completions.create(**request)
            except openai.RateLimitError as exc:
                self._done(replica)
                code = _error_code(exc)
                if code in _BILLING_CODES:
                    raise QuotaExhaustedError(
                        f"{self.model} account out of quota ({code}); not retried",
                        backend=self.name, status=429,
                    ) from None
                self._wait(attempt, attempts, exc.response.headers, f"rate limited (429 {code})")
            except openai.APIStatusError as exc:
                if exc.status_code >= 500 or exc.status_code in (408, 409):
                    failed = f"server error {exc.status_code}"
                    if not self._done(replica, failed):
                        self._wait(attempt, attempts, exc.response.headers,
                                   self._where(replica, failed))
                    elif attempt + 1 >= attempts:
                        raise TransientBackendError(self._where(replica, failed),
                                                    backend=self.name) from None
                    continue
                self._done(replica)
                if exc.status_code == 401:
                    raise BackendError(f"{self._where(replica, 'the API key was rejected (401)')}"
                                       f": check {self.key_source or 'key_env'}",
                                       backend=self.name, status=401) from None
                message = self._scrub(str(exc.message))
                if exc.status_code == 400 and "context" in message.lower():
                    raise DoesNotFitError(f"prompt does not fit {self.model}: {message}",
                                          backend=self.name, status=400) from None
                raise BackendError(f"{self.model} refused the request ({exc.status_code}): "
                                   f"{message}", backend=self.name, status=exc.status_code) \
                    from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                failed = "timed out" if isinstance(exc, openai.APITimeoutError) else "unreachable"
                if not self._done(replica, failed):
                    self._wait(attempt, attempts, None, self._where(replica, failed))
                elif attempt + 1 >= attempts:
                    raise TransientBackendError(self._where(replica, failed),
                                                backend=self.name) from None
            except Exception as exc:  # not the API's answer: the request could not be made
                self._done(replica)
                hint = (f": {self.key_source or 'the key'} and the prompt must be valid text, "
                        "the key plain ASCII" if isinstance(exc, UnicodeError) else "")
                raise BackendError(f"{self.model}: the request could not be sent "
                                   f"({type(exc).__name__}{hint})", backend=self.name) from None
            except BaseException:
                self._done(replica)
                raise
            else:
                self._done(replica)
                try:
                    return self._generation(response, replica)
                except (AttributeError, IndexError, TypeError, ValueError) as exc:
                    raise TransientBackendError(
                        self._where(replica, f"answered without a usable completion "
                                             f"({type(exc).__name__})"), backend=self.name,
                    ) from None
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    def _scrub(self, text: str) -> str:
        """A server's message may quote the key it was sent: never pass that on."""
        return text.replace(self._key, "[key]") if len(self._key) >= 8 else text

    def _where(self, replica: Replica, what: str) -> str:
        if len(self.replicas) == 1:
            return f"cloud {what}" if what in ("timed out", "unreachable") else what
        return f"replica {replica.url} {what}"

    def _check_fits(self, messages: list[dict[str, Any]], limits: Limits) -> None:
        """A model with a ``context`` limit: a prompt that cannot fit with its answer is this
        model's failure (the route falls back), not the task's. Tokens are estimated at three
        ASCII characters each and one per other character (Japanese, Chinese, Korean take about
        one token a character; accented Latin text is overestimated, which is the safe side)."""
        if self.role.context is None:
            return
        text = "".join(str(m.get("content", "")) for m in messages)
        ascii_chars = sum(c < "\x80" for c in text)
        estimate = ascii_chars // 3 + (len(text) - ascii_chars)
        if estimate + limits.max_tokens > self.role.context:
            raise DoesNotFitError(f"{self.model}: a prompt of about {estimate} tokens and "
                                  f"{limits.max_tokens} to answer exceed its context of "
                                  f"{self.role.context}", backend=self.name)

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

    def _generation(self, response: Any, replica: Replica) -> Generation:
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
            replica=replica.url if len(self.replicas) > 1 else None,
        )

    def health(self) -> tuple[bool, str]:
        if not self.role.endpoints and not self.has_key and not self.settings.openai_base_url:
            return False, "not configured (set BATON_OPENAI_API_KEY or BATON_OPENAI_BASE_URL)"
        if self.role.key_env and not self.has_key:
            return False, f"{self.role.key_env} is not set"
        now = self.clock()
        down = [r for r in self.replicas if r.down_until > now]
        if len(down) == len(self.replicas) and len(self.replicas) > 1:
            return False, "every replica is down: " + "; ".join(
                f"{r.url} {r.why} ({r.down_until - now:.0f}s of cooldown left)" for r in down)
        return True, ""

    def describe(self) -> dict[str, str]:
        now = self.clock()
        return {
            "backend": self.name,
            "model": self.model,
            "base url" if len(self.replicas) == 1 else "replicas": ", ".join(
                r.url + (f" (down: {r.why})" if r.down_until > now else "")
                for r in self.replicas),
            "api key": (f"{'set' if self.has_key else 'not set'} ({self.key_source})"
                        if self.key_source else "none sent (no key_env)"),
            "timeout": f"{self.settings.openai_timeout:g}s",
            "prompt style": self.prompt_style,
        }

    def verify(self) -> str:
        ok, why = self.health()
        if not ok:
            raise BackendError(why, backend=self.name)
        seen: list[str] = []
        failed: list[str] = []
        for replica in self.replicas:
            try:
                models = [m.id for m in replica.client.models.list()]
            except openai.APIStatusError as exc:
                failed.append(f"{replica.url}: {exc.status_code} "
                              f"{self._scrub(str(exc.message))}")
            except openai.APIConnectionError:
                failed.append(f"{replica.url}: unreachable")
            else:
                # vLLM and Ollama answer 404 for a model id they do not serve; llama.cpp's
                # server takes any id
                served = ("serves " + repr(self.model) if self.model in models else
                          f"{self.model!r} not among them (served: {', '.join(models[:5])})")
                seen.append(f"{replica.url}: reachable, {len(models)} model(s), {served}")
        if failed:
            raise BackendError("; ".join(failed + seen), backend=self.name)
        return "; ".join(seen)


def openai_factory(settings: Settings, role: ModelConfig) -> OpenAIBackend:
    return OpenAIBackend(settings, role)

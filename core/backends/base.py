"""The one interface every model backend implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.policy import ModelConfig
from core.settings import Settings
from core.tasks.kinds import Prompt, PromptStyle


@dataclass(frozen=True)
class Generation:
    """Raw model output and its token usage (``cached_tokens`` are included in ``prompt_tokens``)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    model: str
    finish_reason: str = "stop"  # "length": cut off at max_tokens
    refusal: str | None = None  # the model declined (OpenAI structured outputs)
    replica: str | None = None  # the base URL that answered, for a model served by several


@dataclass(frozen=True)
class Limits:
    max_tokens: int
    temperature: float
    seed: int | None = None
    repeat_penalty: float = 1.0


class Backend(Protocol):
    """A model that turns a prompt into text constrained by a JSON schema."""

    name: str
    model: str
    prompt_style: PromptStyle
    keeps_data_local: bool

    def generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        """Generate once. Raises :class:`core.errors.BackendError` subclasses, or
        :class:`core.errors.InputError` when the prompt cannot fit."""

    def health(self) -> tuple[bool, str]:
        """Whether the backend can be called at all (configured, model present), and why not."""

    def describe(self) -> dict[str, str]:
        """Facts for ``baton models list``."""

    def verify(self) -> str:
        """Check the backend deeply (checksum, reachability); return a one-line summary or raise."""


BackendFactory = Callable[[Settings, ModelConfig], Backend]


_UNSUPPORTED_IN_STRICT = {"maxLength", "minLength", "x-lead", "x-no-digits", "x-one-line"}


def api_schema(schema: Any) -> Any:
    """``schema`` without the keywords OpenAI's strict structured outputs reject; the guards
    still enforce them on the answer."""
    if isinstance(schema, dict):
        return {k: api_schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_IN_STRICT}
    if isinstance(schema, list):
        return [api_schema(v) for v in schema]
    return schema

"""A scripted backend that implements the real Backend interface, for engine-logic tests that need
exact outputs (cascade, fallback, repair, cost arithmetic). The real backends have their own tests
against the real model and real servers."""

from __future__ import annotations

from collections import deque
from typing import Any

from core.backends.base import Generation, Limits
from core.errors import BackendError
from core.tasks.kinds import Prompt, PromptStyle


class ScriptedBackend:
    def __init__(self, name: str, *, local: bool, model: str, style: PromptStyle = "completion",
                 outputs: list[str | BackendError] | None = None, prompt_tokens: int = 1000,
                 completion_tokens: int = 100, cached_tokens: int = 0, max_batch: int = 1) -> None:
        self.name, self.keeps_data_local, self.model = name, local, model
        self.max_batch = max_batch  # > 1: offers generate_many, as the llama backend does
        self.batches: list[int] = []
        self.prompt_style: PromptStyle = style
        self.outputs: deque[str | BackendError] = deque(outputs or [])
        self.prompts: list[Prompt] = []
        self.schemas: list[dict[str, Any]] = []
        self.usage = (prompt_tokens, completion_tokens, cached_tokens)
        self.healthy = (True, "")

    def generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        self.prompts.append(prompt)
        self.schemas.append(schema)
        out = self.outputs.popleft()
        if isinstance(out, BackendError):
            raise out
        p, c, cached = self.usage
        return Generation(text=out, prompt_tokens=p, completion_tokens=c, cached_tokens=cached,
                          model=self.model)

    def generate_many(self, prompts: list[Prompt], schemas: list[dict[str, Any]],
                      limits: Limits) -> list[Generation]:
        self.batches.append(len(prompts))
        return [self.generate(p, s, limits) for p, s in zip(prompts, schemas, strict=True)]

    def health(self) -> tuple[bool, str]:
        return self.healthy

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model}

    def verify(self) -> str:
        return "scripted"

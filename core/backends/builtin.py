"""The built-in backends, registered the way a plugin would register its own."""

from __future__ import annotations

from core.backends.base import BackendFactory
from core.backends.llama import LlamaPool, llama_factory
from core.backends.openai_api import openai_factory
from core.registry import Registry


def default_backends(pool: LlamaPool | None = None) -> Registry[BackendFactory]:
    """``llama`` (in-process, sharing ``pool``'s loaded models) and ``openai`` (HTTP)."""
    registry: Registry[BackendFactory] = Registry("backend")
    registry.register("llama", llama_factory(pool or LlamaPool()))
    registry.register("openai", openai_factory)
    return registry

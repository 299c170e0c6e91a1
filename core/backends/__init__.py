"""Model backends behind one interface, looked up by name in a registry."""

from __future__ import annotations

from core.backends.base import Backend, BackendFactory, Generation, Limits
from core.backends.llama import LlamaPool, llama_factory
from core.backends.openai_api import openai_factory
from core.registry import Registry

__all__ = ["Backend", "BackendFactory", "Generation", "Limits", "LlamaPool", "default_backends"]


def default_backends(pool: LlamaPool | None = None) -> Registry[BackendFactory]:
    """The built-in backends, registered the way a plugin would register its own."""
    registry: Registry[BackendFactory] = Registry("backend")
    registry.register("llama", llama_factory(pool or LlamaPool()))
    registry.register("openai", openai_factory)
    return registry

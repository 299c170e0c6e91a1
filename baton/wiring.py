"""Composition root: settings + policy -> backends -> engine."""

from __future__ import annotations

from dataclasses import dataclass

from core.backends import BackendFactory, LlamaPool, default_backends
from core.backends.base import Backend
from core.engine import Engine
from core.ledger import Ledger
from core.policy import Policy, load_policy
from core.registry import Registry
from core.routing import Role
from core.settings import Settings, load_settings
from core.store import Store, open_store
from core.task import TaskKind, default_task_kinds


@dataclass
class App:
    """Everything a command needs, built once from settings."""

    settings: Settings
    policy: Policy
    store: Store
    engine: Engine

    def close(self) -> None:
        self.store.close()


def build_backends(settings: Settings, policy: Policy,
                   registry: Registry[BackendFactory] | None = None) -> dict[Role, Backend]:
    registry = registry or default_backends(LlamaPool())
    return {
        "local": registry.get(policy.local.backend)(settings, policy.local),
        "cloud": registry.get(policy.cloud.backend)(settings, policy.cloud),
    }


def build_app(settings: Settings | None = None, policy: Policy | None = None, *,
              backends: dict[Role, Backend] | None = None,
              kinds: Registry[TaskKind] | None = None) -> App:
    settings = settings or load_settings()
    policy = policy or load_policy(settings.config)
    store = open_store(settings.resolved_database_url)
    engine = Engine(policy, backends or build_backends(settings, policy),
                    kinds or default_task_kinds(), Ledger(store))
    return App(settings, policy, store, engine)

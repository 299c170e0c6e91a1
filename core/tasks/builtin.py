"""The built-in task kinds, registered the way a plugin would register its own."""

from __future__ import annotations

from core.registry import Registry
from core.tasks.kinds import EMAIL, REPLY, TEXT, TaskKind
from core.tasks.recommend import RECOMMENDATION


def default_task_kinds() -> Registry[TaskKind]:
    """A registry of ``email``, ``text``, ``reply`` and ``recommendation``."""
    registry: Registry[TaskKind] = Registry("task kind")
    for kind in (EMAIL, TEXT, REPLY, RECOMMENDATION):
        registry.register(kind.name, kind)
    return registry

"""Routing: which backend does a task, and why.

Rules from the policy are evaluated in order; the first whose conditions all hold picks the
action (else ``routing.default_action``). The chosen action is then checked against what is true
right now (budget left, backend health, how sensitive the data is) and adjusted, with a reason for
every step, where the rule allows a fallback. ``baton route explain`` prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from core.errors import RoutingError
from core.policy import Action, Breaker, Condition, Policy, Rule, Sensitivity, Tier

Role = Literal["local", "cloud"]


@dataclass(frozen=True)
class RouteInput:
    """What routing knows about a task and the moment it runs."""

    kind: str
    tier: Tier
    sensitivity: Sensitivity
    language: str
    budget_left_usd: float
    budget_usd: float
    healthy: dict[str, bool]
    unhealthy_why: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One inference the plan may make: which role, and whether the prompt is masked."""

    role: Role
    masked: bool


@dataclass(frozen=True)
class Decision:
    """The routed action, the inferences it may take in order, and the reasons."""

    action: Action
    steps: tuple[Step, ...]
    reasons: tuple[str, ...]
    rule: str | None
    fallback: bool

    @property
    def first(self) -> Step:
        return self.steps[0]


def _match(cond: Condition, inp: RouteInput) -> list[str] | None:
    """The reasons a condition holds, or None when it does not."""
    why: list[str] = []
    for name in ("kind", "tier", "sensitivity", "language"):
        allowed = getattr(cond, name)
        if allowed is not None:
            value = getattr(inp, name)
            if value not in allowed:
                return None
            why.append(f"{name}={value}")
    if cond.budget_left_below_usd is not None:
        if inp.budget_left_usd >= cond.budget_left_below_usd:
            return None
        why.append(f"budget left ${inp.budget_left_usd:.4f} < ${cond.budget_left_below_usd:.4f}")
    if cond.backend_unhealthy is not None:
        down = [r for r in cond.backend_unhealthy if not inp.healthy.get(r, False)]
        if not down:
            return None
        why.append(f"unhealthy: {', '.join(down)}")
    return why


def decide(policy: Policy, inp: RouteInput) -> Decision:
    """Route one task. Raises :class:`RoutingError` when the policy leaves no backend."""
    rule: Rule | None = None
    reasons: list[str] = []
    for candidate in policy.routes:
        why = _match(candidate.when, inp)
        if why is not None:
            rule = candidate
            cond = ", ".join(why) or "always"
            reasons.append(f"rule {candidate.name!r} matched ({cond}) -> {candidate.action}")
            break
    if rule is None:
        action: Action = policy.routing.default_action
        fallback = policy.routing.default_fallback
        reasons.append(f"no rule matched -> default action {action}")
    else:
        action, fallback = rule.action, rule.fallback

    if action == "cloud" and inp.sensitivity == "confidential":
        action = "cloud-masked"
        reasons.append("confidential fields present: cloud requires masking -> cloud-masked")

    cloud_ok, cloud_why = _cloud_available(inp)
    local_ok = inp.healthy.get("local", False)

    if action in ("cloud", "cloud-masked") and not cloud_ok:
        if not fallback:
            raise RoutingError(f"{cloud_why}, and the rule allows no fallback")
        if not local_ok:
            raise RoutingError(f"{cloud_why}, and local is unavailable: {_why(inp, 'local')}")
        reasons.append(f"{cloud_why} -> fallback to local")
        action = "local"
    elif action == "local" and not local_ok:
        if not fallback or not cloud_ok:
            raise RoutingError(f"local is unavailable: {_why(inp, 'local')}; no allowed fallback")
        reasons.append(f"local is unavailable ({_why(inp, 'local')}) -> fallback to cloud-masked")
        action = "cloud-masked"
    elif action == "cascade":
        if not local_ok and not cloud_ok:
            raise RoutingError(f"local is unavailable: {_why(inp, 'local')}; {cloud_why}")
        if not local_ok:
            reasons.append(f"local is unavailable ({_why(inp, 'local')}) -> cloud-masked only")
            action = "cloud-masked"
        elif not cloud_ok:
            reasons.append(f"{cloud_why} -> cascade without escalation")

    if action == "local":
        steps: tuple[Step, ...] = (Step("local", masked=True),)
        reasons.append("local: the data stays on this machine")
    elif action == "cloud":
        steps = (Step("cloud", masked=False),)
        reasons.append("cloud: the rule allows unmasked data to leave")
    elif action == "cloud-masked":
        steps = (Step("cloud", masked=True),)
        reasons.append("cloud-masked: personal data replaced by placeholders before it leaves")
    else:
        steps = (Step("local", masked=True),)
        if cloud_ok:
            steps += (Step("cloud", masked=policy.routing.escalate_masked),)
            reasons.append("cascade: local first, escalate to cloud if guards fail")
    return Decision(action=action, steps=steps, reasons=tuple(reasons),
                    rule=rule.name if rule else None, fallback=fallback)


def _cloud_available(inp: RouteInput) -> tuple[bool, str]:
    if not inp.healthy.get("cloud", False):
        return False, f"cloud is unavailable: {_why(inp, 'cloud')}"
    if inp.budget_left_usd <= 0:
        return False, (f"budget spent (${inp.budget_usd - inp.budget_left_usd:.4f} "
                       f"of ${inp.budget_usd:.2f} this month)")
    return True, ""


def _why(inp: RouteInput, role: str) -> str:
    return inp.unhealthy_why.get(role, "unhealthy")


class CircuitBreaker:
    """Consecutive-failure breaker: after ``failures`` in a row the backend cools down for
    ``cooldown_seconds``; then one trial call is let through (half-open)."""

    def __init__(self, config: Breaker, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.clock = config, clock
        self.failures = 0
        self.opened_at: float | None = None

    def available(self) -> bool:
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= self.config.cooldown_seconds

    def remaining(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.config.cooldown_seconds - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        self.failures, self.opened_at = 0, None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.config.failures:
            self.opened_at = self.clock()

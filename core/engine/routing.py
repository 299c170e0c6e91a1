"""Routing: which model does a task, and why.

Rules from the policy are evaluated in order; the first whose conditions all hold picks an
action (the built-in ``local``/``cloud`` pair), a model by name or a privacy class (else
``routing.default_action``). The choice is then checked against what is true right now (budget
left, each model's health and its own budget, how sensitive the data is) and adjusted, with a
reason for every step, where the rule allows a fallback. ``baton route explain`` prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import RoutingError
from core.policy import Breaker, Condition, Policy, Rule, Sensitivity, Tier

Role = str  # a model's name: local, cloud, or one of [models.<name>]


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
    # models whose own monthly_usd is spent -> why
    capped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One inference the plan may make: which model, and whether its prompt shows placeholders
    instead of personal values."""

    role: Role
    masked: bool


@dataclass(frozen=True)
class Decision:
    """The routed action (``local``, ``cloud``, ``cloud-masked``, ``cascade``, ``model:<name>``
    or ``class:<class>``), the inferences it may take in order, the reasons, and the models to
    fall back on, in order, when a step's model fails at run time."""

    action: str
    steps: tuple[Step, ...]
    reasons: tuple[str, ...]
    rule: str | None
    fallback: bool
    alternates: tuple[Step, ...] = ()

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
    """Route one task. Raises :class:`RoutingError` when the policy leaves no model."""
    rule: Rule | None = None
    reasons: list[str] = []
    for candidate in policy.routes:
        why = _match(candidate.when, inp)
        if why is not None:
            rule = candidate
            cond = ", ".join(why) or "always"
            chose = (candidate.action or (f"model {candidate.model}" if candidate.model
                                          else f"class {candidate.privacy_class}"))
            reasons.append(f"rule {candidate.name!r} matched ({cond}) -> {chose}")
            break
    if rule is not None and rule.action is None:
        return _by_model(policy, inp, rule, reasons)
    if rule is None:
        action: str = policy.routing.default_action
        fallback = policy.routing.default_fallback
        reasons.append(f"no rule matched -> default action {action}")
    else:
        action, fallback = str(rule.action), bool(rule.fallback)

    if action == "cloud" and inp.sensitivity == "confidential":
        action = "cloud-masked"
        reasons.append("confidential fields present: cloud requires masking -> cloud-masked")

    cloud_ok, cloud_why = available(policy, inp, "cloud")
    local_ok, local_why = available(policy, inp, "local")

    if action in ("cloud", "cloud-masked") and not cloud_ok:
        if not fallback:
            raise RoutingError(f"{cloud_why}, and the rule allows no fallback")
        if not local_ok:
            raise RoutingError(f"{cloud_why}, and {local_why}")
        reasons.append(f"{cloud_why} -> fallback to local")
        action = "local"
    elif action == "local" and not local_ok:
        if not fallback or not cloud_ok:
            raise RoutingError(f"{local_why}; no allowed fallback")
        reasons.append(f"{local_why} -> fallback to cloud-masked")
        action = "cloud-masked"
    elif action == "cascade":
        if not local_ok and not cloud_ok:
            raise RoutingError(f"{local_why}; {cloud_why}")
        if not local_ok:
            reasons.append(f"{local_why} -> cloud-masked only")
            action = "cloud-masked"
        elif not cloud_ok:
            reasons.append(f"{cloud_why} -> cascade without escalation")

    local = Step("local", masked=_masked(policy, "local", True))
    masked_cloud = Step("cloud", masked=True)
    if action == "local":
        steps: tuple[Step, ...] = (local,)
        alternates: tuple[Step, ...] = (masked_cloud,)
        reasons.append(f"local: {_where(policy, 'local')}")
    elif action == "cloud":
        steps, alternates = (Step("cloud", masked=_masked(policy, "cloud", False)),), (local,)
        reasons.append("cloud: the rule allows unmasked data to leave")
    elif action == "cloud-masked":
        steps, alternates = (masked_cloud,), (local,)
        reasons.append("cloud-masked: personal data replaced by placeholders before it leaves")
    else:
        steps, alternates = (local,), (masked_cloud,)
        if cloud_ok:
            # confidential data never leaves unmasked, escalate_masked or not
            steps += (Step("cloud", masked=_masked(policy, "cloud", policy.routing.escalate_masked
                                                   or inp.sensitivity == "confidential")),)
            reasons.append("cascade: local first, escalate to cloud if guards fail")
    return Decision(action=action, steps=steps, reasons=tuple(reasons),
                    rule=rule.name if rule else None, fallback=fallback,
                    alternates=alternates if fallback else ())


def _by_model(policy: Policy, inp: RouteInput, rule: Rule, reasons: list[str]) -> Decision:
    """A rule that names a model, or a privacy class: the first available of its candidates,
    then of its fallbacks."""
    cls: str
    if rule.model is not None:
        cls = policy.model(rule.model).privacy_class
        action, chosen = f"model:{rule.model}", [rule.model]
    else:
        cls = str(rule.privacy_class)
        action, chosen = f"class:{cls}", policy.of_class(cls, rule.tags, inp.language)
    tried: list[str] = []
    if not chosen:
        tried.append(f"no model of class {cls!r}" + (f" with tags {rule.tags}" if rule.tags
                                                      else "")
                     + f" writes language {inp.language!r}")
    if isinstance(rule.fallback, list):
        extra = rule.fallbacks()
    elif rule.fallback:  # the rest of the class, then the other class (as local <-> cloud)
        other = "external" if cls == "private" else "private"
        extra = [*policy.of_class(cls, language=inp.language),
                 *policy.of_class(other, language=inp.language)]
    else:
        extra = []
    candidates = list(dict.fromkeys([*chosen, *extra]))
    for i, name in enumerate(candidates):
        ok, why = available(policy, inp, name)
        if not ok:
            tried.append(why)
            continue
        primary = i < len(chosen)
        if tried and primary:
            reasons.append("; ".join(tried) + f" -> {name}")
        elif tried:
            reasons.append("; ".join(tried) + f" -> fallback to {name}")
        # what the rule asked for the models it named; a fallback onto an external model is
        # always masked, and confidential data never leaves unmasked
        masked = _masked(policy, name, rule.masked if primary else True)
        if not masked and inp.sensitivity == "confidential":
            masked = True
            reasons.append(f"confidential fields present: {name} is external -> masked")
        reasons.append(f"{name}: {_where(policy, name)}"
                       + (", personal data replaced by placeholders" if masked
                          and policy.model(name).privacy_class == "external" else ""))
        rest = tuple(Step(n, masked=_masked(policy, n, True)) for n in candidates[i + 1:])
        return Decision(action=action, steps=(Step(name, masked),), reasons=tuple(reasons),
                        rule=rule.name, fallback=bool(rest), alternates=rest)
    raise RoutingError("; ".join(tried) + ("" if len(candidates) > 1 else
                                           ", and the rule allows no fallback"))


def _masked(policy: Policy, name: str, want: bool) -> bool:
    """Whether a prompt for model ``name`` shows placeholders: an external model's as the rule
    wants, a private model's as the model is configured."""
    model = policy.model(name)
    if model.privacy_class == "external":
        return want or model.placeholders is True
    return model.shows_placeholders


def _where(policy: Policy, name: str) -> str:
    if policy.model(name).privacy_class == "private":
        return ("the data stays on this machine" if name == "local"
                else "private: the data stays in your network")
    return "external: the prompt leaves your network"


def available(policy: Policy, inp: RouteInput, name: str) -> tuple[bool, str]:
    """Whether model ``name`` may be called now, and why not: healthy (configured, circuit
    closed, a replica up), its own monthly budget left, and for an external model the tenant's."""
    if not inp.healthy.get(name, False):
        return False, f"{name} is unavailable: {inp.unhealthy_why.get(name, 'unhealthy')}"
    if name in inp.capped:
        return False, f"{name} is unavailable: {inp.capped[name]}"
    if policy.model(name).privacy_class == "external" and inp.budget_left_usd <= 0:
        return False, (f"{name} is unavailable: "
                       + spent_why(inp.budget_usd - inp.budget_left_usd, inp.budget_usd))
    return True, ""


def spent_why(spent: float, budget: float) -> str:
    return f"budget spent (${spent:.4f} of {usd(budget)} this month)"


def usd(amount: float) -> str:
    """Dollars as people read them: cents, or as many digits as a sub-cent amount needs."""
    if amount == 0 or amount >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.6f}".rstrip("0")


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

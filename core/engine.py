"""The hybrid inference engine: route, mask, generate, check, record.

``Engine.run`` does one task; ``Engine.run_many`` does many, running local tasks that share a
prompt prefix back to back (the prefix's KV cache is evaluated once per group) while cloud tasks
run concurrently on a small thread pool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.backends.base import Backend, Generation, Limits
from core.errors import BackendError, BatonError, GenerationError, RoutingError
from core.guards import run_guards
from core.ledger import Ledger, Receipt, baseline_cost, cloud_cost, local_cost
from core.policy import ModelRole, Policy
from core.privacy import Masker, Masking, unmask
from core.registry import Registry
from core.routing import CircuitBreaker, Decision, Role, RouteInput, Step, decide
from core.task import Prompt, Task, TaskKind


@dataclass(frozen=True)
class Result:
    """A checked output and the receipts of every inference it took."""

    task: Task
    output: dict[str, Any]
    decision: Decision
    receipts: tuple[Receipt, ...]

    @property
    def receipt(self) -> Receipt:
        """The receipt of the inference that produced the output."""
        return self.receipts[-1]


@dataclass
class _Prepared:
    task: Task
    kind: TaskKind
    context: dict[str, Any]
    brief: str
    masking: Masking
    decision: Decision
    receipts: list[Receipt] = field(default_factory=list)


class Engine:
    """Runs tasks under a policy with one backend per role (``local``, ``cloud``)."""

    def __init__(
        self,
        policy: Policy,
        backends: Mapping[Role, Backend],
        kinds: Registry[TaskKind],
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.perf_counter,
        breakers: Mapping[Role, CircuitBreaker] | None = None,
        cloud_concurrency: int = 4,
    ) -> None:
        self.policy, self.backends, self.kinds, self.ledger = policy, backends, kinds, ledger
        self.clock = clock
        self.masker = Masker(policy.privacy)
        self.breakers = dict(breakers or {r: CircuitBreaker(policy.breaker) for r in backends})
        self.cloud_concurrency = cloud_concurrency

    # -- routing -----------------------------------------------------------------------------

    def route_input(self, task: Task, masking: Masking) -> RouteInput:
        budget = self.policy.budget.for_tenant(task.tenant)
        spent = self.ledger.spent_this_month(task.tenant)
        healthy: dict[str, bool] = {}
        why: dict[str, str] = {}
        roles: tuple[Role, ...] = ("local", "cloud")
        for role in roles:
            backend = self.backends.get(role)
            if backend is None:
                healthy[role], why[role] = False, "no backend configured"
                continue
            ok, reason = backend.health()
            breaker = self.breakers[role]
            if ok and not breaker.available():
                ok, reason = False, f"circuit open ({breaker.remaining():.0f}s of cooldown left)"
            healthy[role], why[role] = ok, reason
        return RouteInput(
            kind=task.kind, tier=task.tier, sensitivity=masking.sensitivity,
            language=task.language, budget_left_usd=budget - spent, budget_usd=budget,
            healthy=healthy, unhealthy_why=why,
        )

    def prepare(self, task: Task) -> _Prepared:
        kind = self.kinds.get(task.kind)
        kind.validate(task)
        context, brief, masking = self.masker.mask(task.context, task.brief)
        decision = decide(self.policy, self.route_input(task, masking))
        return _Prepared(task, kind, context, brief, masking, decision)

    def explain(self, task: Task) -> Decision:
        """The routing decision for ``task`` without running it."""
        return self.prepare(task).decision

    # -- running -----------------------------------------------------------------------------

    def run(self, task: Task) -> Result:
        """Run one task to a checked output, or raise a :class:`BatonError`."""
        return self._run_prepared(self.prepare(task))

    def run_many(
        self, tasks: Sequence[Task], on_done: Callable[[int, Result | BatonError], None] | None = None
    ) -> list[Result | BatonError]:
        """Run many tasks; results (or the error of each failed task) in the input order.

        Local-first tasks are grouped by prompt prefix so each group's shared prefix is evaluated
        once; cloud-first tasks run concurrently meanwhile."""
        results: list[Result | BatonError | None] = [None] * len(tasks)

        def finish(i: int, outcome: Result | BatonError) -> None:
            results[i] = outcome
            if on_done is not None:
                on_done(i, outcome)

        groups: dict[tuple[Role, str], list[tuple[int, _Prepared]]] = {}
        cloud: list[tuple[int, _Prepared]] = []
        for i, task in enumerate(tasks):
            try:
                prep = self.prepare(task)
            except BatonError as exc:
                finish(i, exc)
                continue
            step = prep.decision.first
            if step.role == "cloud":
                cloud.append((i, prep))
            else:
                prompt = self._render(prep, step)
                groups.setdefault((step.role, prompt.prefix), []).append((i, prep))

        def run_one(i: int, prep: _Prepared) -> None:
            try:
                finish(i, self._run_prepared(prep))
            except BatonError as exc:
                finish(i, exc)

        with ThreadPoolExecutor(max_workers=self.cloud_concurrency) as pool:
            futures = [pool.submit(run_one, i, prep) for i, prep in cloud]
            for members in groups.values():
                for i, prep in members:
                    run_one(i, prep)
            for future in futures:
                future.result()
        return [r for r in results if r is not None]

    def _run_prepared(self, prep: _Prepared) -> Result:
        steps = list(prep.decision.steps)
        reasons = list(prep.decision.reasons)
        last: BatonError | None = None
        n = 0
        while n < len(steps):
            step = steps[n]
            n += 1
            try:
                output = self._attempts(prep, step, reasons)
            except GenerationError as exc:
                last = exc
                if n < len(steps):
                    reasons.append(f"{step.role} output failed checks -> escalate to {steps[n].role}")
                continue
            except BackendError as exc:
                last = exc
                other: Role = "cloud" if step.role == "local" else "local"
                if prep.decision.fallback and all(s.role != other for s in steps[n:]):
                    inp = self.route_input(prep.task, prep.masking)
                    usable = inp.healthy.get(other) and (other == "local" or inp.budget_left_usd > 0)
                    if usable:
                        steps.append(Step(other, masked=True))
                        reasons.append(f"{step.role} failed ({exc}) -> fallback to {other}")
                continue
            decision = Decision(prep.decision.action, tuple(steps), tuple(reasons),
                                prep.decision.rule, prep.decision.fallback)
            return Result(prep.task, output, decision, tuple(prep.receipts))
        assert last is not None
        raise last

    def _render(self, prep: _Prepared, step: Step, lead: str | None = None) -> Prompt:
        backend = self._backend(step.role)
        context = prep.context if step.masked else dict(prep.task.context)
        brief = prep.brief if step.masked else prep.task.brief
        return prep.kind.render(prep.task, context, brief, self.policy.brand,
                                backend.prompt_style, lead)

    def _backend(self, role: Role) -> Backend:
        backend = self.backends.get(role)
        if backend is None:
            raise RoutingError(f"no {role} backend is configured")
        return backend

    def _role_config(self, role: Role) -> ModelRole:
        return self.policy.local if role == "local" else self.policy.cloud

    def _attempts(self, prep: _Prepared, step: Step, reasons: list[str]) -> dict[str, Any]:
        """Generate, check, and repair once; return the checked output."""
        backend = self._backend(step.role)
        role = self._role_config(step.role)
        masking = prep.masking if step.masked else Masking()
        brand = self.policy.brand
        lead = prep.kind.lead(prep.task, prep.context if step.masked else prep.task.context, brand)
        schema = prep.kind.schema(brand, lead)
        guards = prep.kind.guards(brand, unmask(lead, masking) if lead else None)
        prompt = self._render(prep, step, lead)
        egress_entities = self._egress(backend, step, prompt, prep.masking)
        violations: list[str] = []
        raw = ""
        for attempt in (1, 2):
            if attempt == 2:
                prompt = _repair_prompt(prompt, raw, violations)
            limits = Limits(max_tokens=role.max_tokens, temperature=role.temperature)
            started = self.clock()
            try:
                gen = backend.generate(prompt, schema, limits)
            except BackendError as exc:
                self.breakers[step.role].record_failure()
                self._record(prep, step, backend, attempt, None, self.clock() - started,
                             "error", str(exc), reasons, egress_entities)
                raise
            elapsed = self.clock() - started
            self.breakers[step.role].record_success()
            raw = gen.text
            output, violations = self._check(prep, raw, masking, guards)
            self._record(prep, step, backend, attempt, gen, elapsed,
                         "guard_failed" if violations else "ok",
                         "; ".join(violations) or None, reasons, egress_entities)
            if not violations:
                return output
        raise GenerationError(
            f"{prep.task.kind} output from {step.role} failed its checks after one repair: "
            + "; ".join(violations),
            violations=violations,
        )

    def _check(self, prep: _Prepared, raw: str, masking: Masking,
               guards: list[Any]) -> tuple[dict[str, Any], list[str]]:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            return {}, [f"schema: output is not valid JSON ({exc.msg} at char {exc.pos})"]
        if not isinstance(parsed, dict):
            return {}, ["schema: output is not a JSON object"]
        # The schema is the model's contract: check what it wrote, before placeholders expand.
        schema_guards = [g for g in guards if g.name == "schema"]
        violations = run_guards(schema_guards, parsed)
        if violations:
            return parsed, violations
        output = prep.kind.finish(unmask(parsed, masking), self.policy.brand, prep.task.language)
        return output, run_guards([g for g in guards if g.name != "schema"], output)

    def _egress(self, backend: Backend, step: Step, prompt: Prompt, masking: Masking) -> list[str]:
        if backend.keeps_data_local:
            return []
        if not step.masked:
            return sorted(masking.entities)
        text = prompt.text + "".join(m.get("content", "") for m in prompt.messages)
        return sorted(self.masker.scan(text))

    def _record(self, prep: _Prepared, step: Step, backend: Backend, attempt: int,
                gen: Generation | None, seconds: float, status: str, error: str | None,
                reasons: list[str], egress_entities: list[str]) -> None:
        costs = self.policy.costs
        prompt_tokens = gen.prompt_tokens if gen else 0
        completion = gen.completion_tokens if gen else 0
        cached = gen.cached_tokens if gen else 0
        if backend.keeps_data_local:
            cost = local_cost(costs, seconds)
        elif backend.model in costs.prices:
            cost = cloud_cost(costs, backend.model, prompt_tokens, cached, completion)
        else:
            cost = 0.0
        receipt = Receipt(
            task_id=prep.task.id, tenant=prep.task.tenant, kind=prep.task.kind,
            tier=prep.task.tier, language=prep.task.language, action=prep.decision.action,
            role=step.role, backend=backend.name, model=gen.model if gen else backend.model,
            rule=prep.decision.rule, reasons=tuple(reasons), status=status, attempt=attempt,
            prompt_tokens=prompt_tokens, completion_tokens=completion, cached_tokens=cached,
            latency_ms=seconds * 1000, cost_usd=cost,
            baseline_cost_usd=baseline_cost(costs, prompt_tokens, completion),
            egress=not backend.keeps_data_local, egress_entities=tuple(egress_entities),
            masked_entities=tuple(sorted(prep.masking.entities)) if step.masked else (),
            error=error,
        )
        self.ledger.record(receipt)
        prep.receipts.append(receipt)


def _repair_prompt(prompt: Prompt, raw: str, violations: list[str]) -> Prompt:
    """Chat models are told what failed; a base model is simply asked again (sampling differs)."""
    if prompt.style != "chat":
        return prompt
    feedback = (
        "That answer failed these checks: " + "; ".join(violations)
        + ". Reply again with one corrected JSON object only."
    )
    messages = (*prompt.messages, {"role": "assistant", "content": raw},
                {"role": "user", "content": feedback})
    return Prompt(style="chat", prefix=prompt.prefix, suffix=prompt.suffix, messages=messages)

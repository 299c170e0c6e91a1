"""Inference ROI on a workload: the hybrid under the embedded policy against the same tasks all
on the cloud model, with real token counts and the policy's prices.

The workload is ``--n`` contacts of the quality evaluation set (bench.evalset: English and
Japanese, several CRM export styles), one email each; every fifth task is ``critical`` (80:20).
Under the embedded routes routine copy cascades (local first, the cloud when it fails its checks)
and critical copy with personal data goes to the cloud, masked. The cloud is a stand-in: a real
llama.cpp OpenAI-compatible server on loopback (``python -m llama_cpp.server``) serving the same
small embedded model under the configured cloud model's name, so every cloud call's token counts
are real and priced as that model; its copy is no better than the local model's (escalation here
shows what it costs, not what it buys). The all-cloud figures send every task once to the
stand-in (``cloud-masked``, as a privacy-minded all-cloud set-up would) and price its real token
counts as the configured cloud model and as the reference model (the baseline every receipt
carries): one call per task, its prompt tokens counted by the stand-in for the real request and
its completion as long as the email the hybrid kept (a cloud model that writes it once).

``useful`` is step 5a's independent checks (bench.quality) over every task's final output.

Last line: cost_ratio_cloud=<hybrid / all on the cloud model> cost_ratio_reference=<hybrid / all
on the reference model> useful=<share> escalated=<share of tasks sent to the cloud after failing
locally>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.evalset import Case, make
from bench.latency import policy_text
from core.engine.ledger import Receipt


@dataclass
class Run:
    """One pass over the workload: outputs (None where refused) and every receipt."""

    outputs: list[dict[str, Any] | None]
    receipts: list[list[Receipt]]
    seconds: float

    def cost(self) -> float:
        return sum(r.cost_usd for rs in self.receipts for r in rs)


    def baseline(self) -> float:
        return sum(r.baseline_cost_usd for rs in self.receipts for r in rs)


def run(app: Any, tasks: list[Any]) -> Run:
    """The routine tasks, then the critical ones: on this one machine the stand-in and the local
    model would otherwise share the two cores, and the local model's time is what it costs."""
    from core.errors import BatonError

    started = time.perf_counter()
    outcomes: dict[str, Any] = {}
    for tier in ("routine", "critical"):
        part = [t for t in tasks if t.tier == tier]
        outcomes.update(zip((t.id for t in part), app.engine.run_many(part), strict=True))
    seconds = time.perf_counter() - started
    return Run([None if isinstance(o := outcomes[t.id], BatonError) else o.output for t in tasks],
               [sorted(app.engine.ledger.receipts(task_id=t.id), key=lambda r: r.created_at)
                for t in tasks], seconds)


def all_cloud(app: Any, tasks: list[Any], lengths: list[int]) -> tuple[float, float, int, int]:
    """Every task as one call to the cloud model, as its route would make it (masked): priced as
    the cloud model and as the reference model; returns both and the tokens in and out. The
    prompt tokens are the stand-in server's own count of each real request (sent with
    ``max_tokens = 1``); the completion tokens are ``lengths``, the emails the hybrid kept: a
    cloud model that writes the email once, as a frontier model would (the 270M stand-in in
    JSON mode mostly runs on to its token limit, which would flatter the hybrid)."""
    from core.backends.base import Limits
    from core.engine.ledger import baseline_cost, cloud_cost

    engine = app.engine
    backend = engine.backends["cloud"]
    costs = app.policy.costs
    cost = reference = 0.0
    tokens_in = tokens_out = 0
    for task, completion in zip(tasks, lengths, strict=True):
        prep = engine.prepare(task)
        plan = engine._plan(prep, prep.decision.steps[0])
        gen = backend.generate(plan.prompt, plan.schema, Limits(max_tokens=1, temperature=0.0))
        cost += cloud_cost(costs, backend.model, gen.prompt_tokens, 0, completion)
        reference += baseline_cost(costs, gen.prompt_tokens, completion)
        tokens_in += gen.prompt_tokens
        tokens_out += completion
    return cost, reference, tokens_in, tokens_out


def stand_in_policy_text(catalog: Sequence[str]) -> str:
    """The embedded policy with the evaluation set's catalog, its cloud model asked in JSON mode
    (the stand-in server speaks that, not OpenAI's strict json_schema)."""
    text, n = re.subn(r'^(\[cloud\]\n(?:.+\n)*?model = "[^"]+"\n)',
                      r'\1response_format = "json_object"\n', policy_text(catalog, None),
                      count=1, flags=re.M)
    assert n == 1, "the embedded policy has no [cloud] model line"
    return text


def useful(cases: Sequence[Case], outputs: Sequence[dict[str, Any] | None], rules: Any) -> int:
    from bench.quality import check

    return sum(out is not None and not check(case, out, rules)
               for case, out in zip(cases, outputs, strict=True))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="tasks (default 200)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BATON_LLAMA_THREADS", 2)))
    args = parser.parse_args(argv)

    from baton.wiring import build_app
    from bench._common import bench_settings, llama_server
    from bench.quality import rules_for
    from core.policy import parse_policy
    from core.tasks.kinds import Task

    data = make(args.n)
    cases = list(data.cases)
    hybrid_policy = parse_policy(stand_in_policy_text(data.catalog["en"] + data.catalog["ja"]))
    cloud_model = hybrid_policy.cloud.model
    cloud_policy = hybrid_policy.model_copy(update={
        "routes": [], "routing": hybrid_policy.routing.model_copy(
            update={"default_action": "cloud-masked", "default_fallback": False})})
    prices = hybrid_policy.costs.prices
    reference = hybrid_policy.costs.reference_model
    tasks = [Task(kind="email", context=c.contact, brief=c.brief.text, tenant="default",
                  language=c.language, tier="critical" if i % 5 == 4 else "routine", id=c.id)
             for i, c in enumerate(cases)]
    critical = sum(t.tier == "critical" for t in tasks)
    settings = bench_settings()
    assert settings.model_path is not None
    print(f"{len(tasks)} emails ({len(tasks) - critical} routine, {critical} critical); cloud "
          f"stand-in: the embedded 270M model on llama.cpp's OpenAI-compatible server, priced as "
          f"{cloud_model} (${prices[cloud_model].input}/${prices[cloud_model].output} per M "
          f"tokens in/out); reference {reference} (${prices[reference].input}/"
          f"${prices[reference].output}); local ${hybrid_policy.costs.local_usd_per_hour}/hour",
          flush=True)
    with llama_server(settings.model_path, threads=args.threads, alias=cloud_model) as url:
        app = build_app(bench_settings(openai_base_url=url, llama_threads=args.threads),
                        hybrid_policy)
        hybrid = run(app, tasks)
        llama = app.engine.backends["local"].loaded().llama  # type: ignore[attr-defined]

        def local_tokens(text: str) -> list[int]:
            return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

        print(f"hybrid: {hybrid.seconds:.0f} s", flush=True)
        started = time.perf_counter()
        kept = [len(local_tokens(json.dumps(out, ensure_ascii=False))) if out else None
                for out in hybrid.outputs]
        mean = round(statistics.mean(k for k in kept if k is not None)) if any(kept) else 150
        cost_cloud, cost_reference, tokens_in, tokens_out = all_cloud(
            build_app(bench_settings(openai_base_url=url), cloud_policy), tasks,
            [mean if k is None else k for k in kept])
        print(f"all cloud: {time.perf_counter() - started:.0f} s, {tokens_in} tokens in, "
              f"{tokens_out} out", flush=True)

    rules = rules_for(hybrid_policy, data)
    roles = [{r.role for r in rs} for rs in hybrid.receipts]
    escalated = sum(t.tier == "routine" and roles_ == {"local", "cloud"}
                    for t, roles_ in zip(tasks, roles, strict=True))
    local_only = sum(roles_ == {"local"} for roles_ in roles)
    calls = {role: sum(r.role == role for rs in hybrid.receipts for r in rs)
             for role in ("local", "cloud")}
    n_tasks = len(tasks)
    print(f"hybrid: {local_only} tasks local only, {escalated} escalated after failing locally, "
          f"{critical} critical on the cloud; calls local {calls['local']}, cloud {calls['cloud']}")
    local_cost = sum(r.cost_usd for rs in hybrid.receipts for r in rs if r.role == "local")
    print(f"cost: hybrid ${hybrid.cost():.5f} (local ${local_cost:.5f}, cloud "
          f"${hybrid.cost() - local_cost:.5f}) | all on {cloud_model}, one call per task "
          f"${cost_cloud:.5f} | all on "
          f"{reference}, one call per task ${cost_reference:.5f} | `baton roi` all-cloud column "
          f"for the hybrid's receipts ${hybrid.baseline():.5f}")
    # the local model's time each task was charged (a batch's time is shared by its tasks)
    local_seconds = local_cost * 3600 / hybrid_policy.costs.local_usd_per_hour
    local_tasks = max(sum("local" in roles_ for roles_ in roles), 1)
    print(f"per email: local ${local_cost / local_tasks:.6f} ({local_seconds / local_tasks:.1f} s "
          f"of the local model each, candidates and repairs included) | {cloud_model} "
          f"${cost_cloud / n_tasks:.6f} ({tokens_in // n_tasks} tokens in, {tokens_out // n_tasks} "
          f"out) | {reference} ${cost_reference / n_tasks:.6f}")
    print(f"useful: hybrid {useful(cases, hybrid.outputs, rules)}/{n_tasks}, routine tasks "
          f"{useful([c for c, t in zip(cases, tasks, strict=True) if t.tier == 'routine'], [o for o, t in zip(hybrid.outputs, tasks, strict=True) if t.tier == 'routine'], rules)}"  # noqa: E501
          f"/{n_tasks - critical}")
    print(f"cost_ratio_cloud={hybrid.cost() / max(cost_cloud, 1e-12):.3f} "
          f"cost_ratio_reference={hybrid.cost() / max(cost_reference, 1e-12):.3f} "
          f"useful={useful(cases, hybrid.outputs, rules) / n_tasks:.3f} "
          f"escalated={escalated / n_tasks:.3f}")


if __name__ == "__main__":
    main()

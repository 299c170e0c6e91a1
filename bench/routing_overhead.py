"""Routing plus masking time per request, as a share of one local generation, in one run: with
the embedded policy (two models) and with a portfolio of ten models.

Routing+masking is Engine.prepare: validate the task, mask the contact (record-aware and
recognizers), look up the tenant's spend in the ledger (SQLite), check every model's health (and
the spend of each model with its own monthly budget) and evaluate the policy rules. The
generation is a full Engine.run on the embedded model.

The portfolio adds eight models (private servers with replicas, external APIs with prices, two
with their own monthly budgets) and rules that choose by language, by name and by class; the task
is routed by class onto the in-process model, so every model is considered on the way.

Last line: share=<routing+masking seconds / generation seconds, ten models>
ten_vs_two=<routing+masking with ten models / with two>.
"""

from __future__ import annotations

import os
import statistics
import time

from baton.wiring import build_app
from bench._common import bench_settings
from core.engine.engine import Engine
from core.policy import load_policy, parse_policy
from core.tasks.kinds import Task

ROUTES = 500
GENERATIONS = 5


def ten_models() -> str:
    """The embedded policy's text with eight more models and portfolio rules before its own."""
    from core.policy import default_policy_text

    extra = ""
    for i in range(4):
        extra += (f'\n[models.gpu-{i}]\nbackend = "openai"\nmodel = "llama-3.1-8b"\n'
                  f'replicas = ["http://10.0.{i}.5:8000/v1", "http://10.0.{i}.6:8000/v1"]\n'
                  f'privacy = "private"\nusd_per_hour = 1.2\nlanguages = ["ja", "de"]\n')
        os.environ[f"BENCH_KEY_{i}"] = "bench-key"
        extra += (f'\n[models.api-{i}]\nbackend = "openai"\nmodel = "api-model-{i}"\n'
                  f'base_url = "https://api{i}.example.com/v1"\nkey_env = "BENCH_KEY_{i}"\n'
                  f'price = {{ input = 1.0, cached_input = 0.5, output = 4.0 }}\n'
                  f'tags = ["frontier"]\n' + ("monthly_usd = 100.0\n" if i < 2 else ""))
    rules = ('[[routes]]\nname = "japanese on the gpus"\nwhen = { language = ["ja"] }\n'
             'class = "private"\n\n'
             '[[routes]]\nname = "kind x on api-3"\nwhen = { kind = ["x"] }\nmodel = "api-3"\n\n'
             '[[routes]]\nname = "routine on the private tier"\nwhen = { tier = ["routine"] }\n'
             'class = "private"\nfallback = ["api-0", "api-1"]\n\n')
    text = default_policy_text()
    first = text.index("[[routes]]")
    return text[:first] + rules + text[first:] + extra


def measure(engine: Engine, task: Task) -> tuple[list[float], list[float]]:
    route_times, gen_times = [], []
    for _ in range(GENERATIONS):
        for _ in range(ROUTES // GENERATIONS):
            t = time.perf_counter()
            engine.prepare(task)
            route_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine.run(task)
        gen_times.append(time.perf_counter() - t)
    return route_times, gen_times


def main() -> None:
    settings = bench_settings()
    two = build_app(settings, load_policy(None))
    portfolio = parse_policy(ten_models(), source="bench portfolio")
    ten = build_app(settings, portfolio)
    assert len(ten.engine.backends) == 10
    contact = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net",
               "phone": "+1 415 555 0142", "company": "Fjord & Field", "city": "Portland",
               "last_purchase": "Summit 40L backpack",
               "notes": "Maya asked to be called at +1 415 555 0142 about card 4111 1111 1111 1111"}
    task = Task(kind="email", context=contact, brief="Thank Maya for the backpack.")
    decision = ten.engine.prepare(task).decision
    assert decision.action == "class:private" and decision.first.role == "local", decision
    two.engine.run(task)  # load the model, warm the caches
    ten.engine.run(task)
    shares = {}
    for name, app in (("two models", two), ("ten models", ten)):
        route_times, gen_times = measure(app.engine, task)
        route = statistics.mean(route_times)
        gen = statistics.median(gen_times)
        shares[name] = (route, gen)
        print(f"{name}: routing+masking mean {route * 1000:.3f} ms over {ROUTES} requests "
              f"(p95 {sorted(route_times)[int(0.95 * len(route_times))] * 1000:.3f} ms); "
              f"local generation median {gen * 1000:.0f} ms over {GENERATIONS}")
    two.close()
    ten.close()
    route10, gen10 = shares["ten models"]
    print(f"share={route10 / gen10:.4f} ten_vs_two={route10 / shares['two models'][0]:.2f}")


if __name__ == "__main__":
    main()

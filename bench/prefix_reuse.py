"""Personalization at volume: 50 emails for two brands (two brand-voice prefixes of 500+ tokens,
25 contacts each) arriving interleaved (A, B, A, B, ...).

Baseline: the engine runs them one by one in arrival order, so every call re-evaluates the other
brand's prefix. Bulk: Engine.run_many groups tasks by prefix, evaluates each prefix once and
decodes each group in parallel sequences of one batch. Same engine, policy and model, one run.

Last line: speedup=<baseline seconds / bulk seconds>.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from baton.wiring import build_app
from bench._common import BRANDS, bench_settings
from core.engine.engine import Result
from core.errors import BatonError
from core.policy import Policy, parse_policy
from core.tasks.kinds import EMAIL, Task

PER_BRAND = 25
FIRST = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu", "Max",
         "Ned", "Oli", "Pia", "Quinn", "Rae", "Sam", "Tia", "Uma", "Vic", "Wes", "Xan", "Yara"]
PRODUCTS = {"northwind": ["Trail Runner 2 shoes", "Rain Shell jacket", "Summit 40L backpack"],
            "lumen": ["Ethiopia Guji beans", "espresso grinder", "cold brew kit"]}
BRIEF = {"northwind": "Thank them for their order and invite them to the autumn trail day.",
         "lumen": "Thank them for their order and introduce the new Kenya single origin."}


def tasks() -> list[Task]:
    out = []
    for i in range(PER_BRAND):
        for tenant in BRANDS:
            contact = {"first_name": FIRST[i], "last_name": f"Tester{i}",
                       "email": f"{FIRST[i].lower()}@example.com", "company": f"Company {i}",
                       "last_purchase": PRODUCTS[tenant][i % 3]}
            out.append(Task(kind="email", context=contact, brief=BRIEF[tenant], tenant=tenant))
    return out


def policy() -> Policy:
    base = parse_policy('[[routes]]\nname = "local"\naction = "local"\n'
                        '[local]\nbackend = "llama"\nmax_tokens = 300\ntemperature = 0.6\n')
    return base.model_copy(update={"brands": BRANDS})


def summarize(label: str, outcomes: Sequence[Result | BatonError], seconds: float) -> None:
    ok = [o for o in outcomes if not isinstance(o, BatonError)]
    calls = sum(len(o.receipts) for o in ok)
    gen = sum(r.completion_tokens for o in ok for r in o.receipts)
    cached = sum(r.cached_tokens for o in ok for r in o.receipts)
    prompt = sum(r.prompt_tokens for o in ok for r in o.receipts)
    print(f"{label:9s} {seconds:7.1f} s  {len(ok)}/{len(outcomes)} emails ok, {calls} inferences,"
          f" {gen} tokens generated, {cached}/{prompt} prompt tokens from cache,"
          f" {len(outcomes) / seconds:.2f} emails/s")


def main() -> None:
    settings = bench_settings()
    app = build_app(settings, policy())
    llama = app.engine.backends["local"].loaded().llama  # type: ignore[attr-defined]
    for tenant, brand in BRANDS.items():
        sample = tasks()[0]
        prefix = EMAIL.render(sample, sample.context, BRIEF[tenant], brand, "completion").prefix
        print(f"brand {tenant}: prefix {len(llama.tokenize(prefix.encode(), add_bos=True))} tokens")

    start = time.perf_counter()
    one_by_one: list[Result | BatonError] = []
    for task in tasks():
        try:
            one_by_one.append(app.engine.run(task))
        except BatonError as exc:
            one_by_one.append(exc)
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    bulk_outcomes = app.engine.run_many(tasks())
    bulk = time.perf_counter() - start

    summarize("one by one", one_by_one, baseline)
    summarize("bulk", bulk_outcomes, bulk)
    print(f"parallel sequences: {settings.llama_parallel}, threads: {settings.llama_threads}")
    app.close()
    print(f"speedup={baseline / bulk:.2f}")


if __name__ == "__main__":
    main()

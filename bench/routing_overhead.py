"""Routing plus masking time per request, as a share of one local generation, in one run.

Routing+masking is Engine.prepare: validate the task, mask the contact (record-aware and
recognizers), look up the tenant's spend in the ledger (SQLite), check backend health and
evaluate the policy rules. The generation is a full Engine.run on the embedded model.

Last line: share=<routing+masking seconds / generation seconds>.
"""

from __future__ import annotations

import statistics
import time

from baton.wiring import build_app
from bench._common import bench_settings
from core.tasks.kinds import Task

ROUTES = 500
GENERATIONS = 5


def main() -> None:
    app = build_app(bench_settings())
    contact = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net",
               "phone": "+1 415 555 0142", "company": "Fjord & Field", "city": "Portland",
               "last_purchase": "Summit 40L backpack",
               "notes": "Maya asked to be called at +1 415 555 0142 about card 4111 1111 1111 1111"}
    task = Task(kind="email", context=contact, brief="Thank Maya for the backpack.")
    app.engine.run(task)  # load the model, warm the caches
    route_times, gen_times = [], []
    for _ in range(GENERATIONS):
        for _ in range(ROUTES // GENERATIONS):
            t = time.perf_counter()
            app.engine.prepare(task)
            route_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        app.engine.run(task)
        gen_times.append(time.perf_counter() - t)
    route = statistics.mean(route_times)
    gen = statistics.median(gen_times)
    print(f"routing+masking: mean {route * 1000:.3f} ms over {ROUTES} requests "
          f"(p95 {sorted(route_times)[int(0.95 * len(route_times))] * 1000:.3f} ms)")
    print(f"local generation (Engine.run): median {gen * 1000:.0f} ms over {GENERATIONS}")
    app.close()
    print(f"share={route / gen:.4f}")


if __name__ == "__main__":
    main()

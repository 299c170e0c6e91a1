"""Engine tokens/s against calling llama-cpp-python directly, in one run.

Same model, prompt, threads, sampling (temperature, top-k/p, min-p, seed) and grammar. "Direct" is
llama-cpp-python's own create_completion with a LlamaGrammar; "engine" is Engine.run through the
whole pipeline (routing, masking, grammar-constrained generation, guards, ledger). Runs alternate so
machine noise hits both alike. The grammar-free rows show the decode loop's own overhead.

Last line: ratio=<engine tokens/s / direct tokens/s>.
"""

from __future__ import annotations

import contextlib
import statistics
import time

from baton.wiring import build_app
from bench._common import bench_settings
from core.backends.llama import LlamaBackend, grammar_text
from core.backends.llama_decode import LazyGrammarSampler, Sampling, complete
from core.errors import GenerationError
from core.policy import parse_policy
from core.tasks.kinds import EMAIL, Task

ROUNDS = 6
POLICY = """
[[routes]]
name = "all local"
action = "local"
[local]
backend = "llama"
max_tokens = 160
temperature = 0.7
"""


def main() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    settings = bench_settings()
    app = build_app(settings, parse_policy(POLICY))
    backend = app.engine.backends["local"]
    assert isinstance(backend, LlamaBackend)
    llama = backend.loaded().llama
    contact = {"first_name": "Maya", "company": "Fjord & Field", "last_purchase": "backpack"}
    task = Task(kind="email", context=contact, brief="Announce the winter sale on boots.")
    prep = app.engine.prepare(task)
    brand = app.policy.brand_for(task.tenant)
    lead = EMAIL.lead(task, prep.context, brand)
    prompt = EMAIL.render(task, prep.context, prep.brief, brand, "completion", lead)
    gbnf = grammar_text(EMAIL.schema(brand, lead))
    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    tokens = llama.tokenize(prompt.text.encode(), add_bos=True, special=True)
    role = app.policy.local

    rates: dict[str, list[float]] = {"engine": [], "direct": [], "loop-free": [], "direct-free": []}
    for r in range(ROUNDS):
        run = Task(kind="email", context=contact, brief="Announce the winter sale on boots.")
        t = time.perf_counter()
        # A failed check still generated its tokens; they count the same.
        with contextlib.suppress(GenerationError):
            app.engine.run(run)
        elapsed = time.perf_counter() - t
        receipts = app.engine.ledger.receipts(task_id=run.id)
        rates["engine"].append(sum(x.completion_tokens for x in receipts) / elapsed)

        def direct(r: int) -> None:  # on the engine's inference thread, as its own calls are
            t = time.perf_counter()
            out = llama.create_completion(tokens, max_tokens=role.max_tokens,
                                          temperature=role.temperature, top_k=40, top_p=0.95,
                                          min_p=0.05, seed=r, grammar=grammar)
            rates["direct"].append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
            sampler = LazyGrammarSampler(llama, None, Sampling(temperature=role.temperature,
                                                               seed=r))
            t = time.perf_counter()
            done = complete(llama, tokens, 100, sampler, json_output=False)
            rates["loop-free"].append(done.completion_tokens / (time.perf_counter() - t))
            sampler.close()
            t = time.perf_counter()
            out = llama.create_completion(tokens, max_tokens=100, temperature=role.temperature,
                                          seed=r)
            rates["direct-free"].append(out["usage"]["completion_tokens"]
                                        / (time.perf_counter() - t))

        backend.pool.call(direct, r)

    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"model {backend.describe()['path']}, threads {settings.llama_threads}, "
          f"{ROUNDS} rounds, prompt {len(tokens)} tokens (cached after the first call)")
    print(f"engine, JSON grammar (lazy)         {med['engine']:7.1f} tokens/s")
    print(f"direct llama-cpp-python, grammar    {med['direct']:7.1f} tokens/s")
    print(f"engine decode loop, no grammar      {med['loop-free']:7.1f} tokens/s")
    print(f"direct llama-cpp-python, no grammar {med['direct-free']:7.1f} tokens/s")
    print(f"no-grammar ratio (loop overhead)    {med['loop-free'] / med['direct-free']:7.2f}")
    app.close()
    print(f"ratio={med['engine'] / med['direct']:.2f}")


if __name__ == "__main__":
    main()

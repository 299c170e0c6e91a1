"""Latency of one routine email, three ways side by side on the same tasks in one run: end to end
through ``baton up`` (task API -> worker -> result, ``Prefer: wait``), ``Engine.run`` alone in this
process, and the raw-decode floor (the engine's first prompt and as many tokens as the email it
kept, without a grammar or guards, straight on llama-cpp-python's ``Llama.generate``).

The tasks are the first ``--n`` contacts and briefs of the quality evaluation set (bench.evalset,
English and Japanese) under the embedded policy with that set's catalog; the seeds follow the
task, so the worker and this process sample the same candidates. Each round runs one task three
ways in turn, so the machine's noise falls on all three alike. ``--levers off`` runs with one
candidate per attempt (``best_of = best_of_retry = 1``) to show what step 5a's quality levers cost.

Last line (the embedded defaults): e2e_p50_s=<x> engine_p50_s=<y> floor_s=<z>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.evalset import Case, make
from core.backends.llama import LlamaPool

LEVERS = {"on": None, "off": (1, 1)}  # (best_of, best_of_retry); None: the embedded policy's


@dataclass
class Row:
    e2e: float
    engine: float
    floor: float
    state: str
    attempt: int


def policy_text(catalog: Sequence[str], levers: tuple[int, int] | None) -> str:
    """The embedded policy with the evaluation set's catalog (and the candidate counts)."""
    from core.policy import default_policy_text

    text = default_policy_text()
    text, n = re.subn(r"^catalog = \[.*?\]$", "catalog = " + json.dumps(list(catalog),
                      ensure_ascii=False), text, count=1, flags=re.M | re.S)
    assert n == 1, "the embedded policy has no catalog line"
    if levers is not None:
        for key, value in zip(("best_of", "best_of_retry"), levers, strict=True):
            text, n = re.subn(rf"^{key} = \d+$", f"{key} = {value}", text, count=1, flags=re.M)
            assert n == 1, f"the embedded policy has no {key} line"
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Server:
    """``baton up`` in its own process group, on a throwaway data directory."""

    def __init__(self, policy: Path, model: Path, threads: int) -> None:
        from core.credentials.apikeys import ApiKeys
        from core.settings import Settings
        from core.store import open_store

        self.data = Path(tempfile.mkdtemp(prefix="baton-latency-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BATON_DATA_DIR": str(self.data), "BATON_CONFIG": str(policy),
               "BATON_MODEL_PATH": str(model), "BATON_LLAMA_THREADS": str(threads)}
        env.pop("BATON_DATABASE_URL", None)
        env.pop("BATON_QUEUE_URL", None)
        store = open_store(Settings(data_dir=self.data).resolved_database_url)
        self.key = ApiKeys(store).create("bench", "default")[1]
        store.close()
        self.proc = subprocess.Popen([sys.executable, "-m", "baton.cli", "up", "--port",
                                      str(self.port)], env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if call(self.base + "/readyz", None, {})[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("baton up exited; run it by hand to see why")
            time.sleep(0.2)
        raise SystemExit("baton up was not ready within 120 s")

    def run(self, task: dict[str, Any]) -> tuple[float, str]:
        """Submit, wait for the end (one round trip when it ends within the wait); seconds."""
        headers = {"Authorization": f"Bearer {self.key}", "Prefer": "wait=25"}
        started = time.perf_counter()
        _, out = call(self.base + "/v1/tasks", task, headers)
        while out.get("state") not in ("done", "failed", "dead"):
            time.sleep(0.05)  # a server without Prefer: wait answers at once
            _, out = call(self.base + f"/v1/tasks/{out['id']}", None, headers)
        return time.perf_counter() - started, str(out["state"])

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


class Floor:
    """The same prompt decoded to the same length, unconstrained, on llama-cpp-python's own
    ``Llama.generate`` (its C sampler chain, its prefix reuse); tokens after an end-of-text are
    decoded like any other, so every floor is exactly as long as the email it stands for."""

    def __init__(self, model: Path, threads: int, n_ctx: int) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads,
                           n_threads_batch=threads, verbose=False)

    def tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def run(self, prompt: str, n: int, seed: int) -> float:
        started = time.perf_counter()
        self.llama.set_seed(seed)
        tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        for count, _ in enumerate(self.llama.generate(tokens, top_k=40, top_p=0.95, min_p=0.05,
                                                      temp=0.4), start=1):
            if count >= n:
                break
        return time.perf_counter() - started


def measure(cases: list[Case], catalog: list[str], levers: tuple[int, int] | None,
            threads: int, floor: Floor, model: Path, pool: LlamaPool) -> list[Row]:
    from baton.wiring import build_app, build_backends
    from bench._common import bench_settings
    from core.backends.builtin import default_backends
    from core.errors import BatonError
    from core.policy import parse_policy
    from core.tasks.kinds import Task

    text = policy_text(catalog, levers)
    policy_file = Path(tempfile.mkdtemp(prefix="baton-latency-policy-")) / "baton.toml"
    policy_file.write_text(text, encoding="utf-8")
    settings, policy = bench_settings(llama_threads=threads), parse_policy(text)
    app = build_app(settings, policy, backends=build_backends(settings, policy,
                                                              default_backends(pool)))
    server = Server(policy_file, model, threads)
    try:
        warm = cases[-1]  # warm both: the model loaded, the brand's prefix evaluated
        server.run({"kind": "email", "context": warm.contact, "brief": warm.brief.text,
                    "language": warm.language})
        rows: list[Row] = []
        for case in cases[:-1]:
            asked = {"kind": "email", "context": case.contact, "brief": case.brief.text,
                     "language": case.language}
            e2e, state = server.run(asked)
            task = Task(kind="email", context=case.contact, brief=case.brief.text,
                        tenant="default", language=case.language, tier="routine")
            started = time.perf_counter()
            try:
                result = app.engine.run(task)
                kept, attempt = json.dumps(result.output, ensure_ascii=False), result.receipt.attempt
            except BatonError:
                kept, attempt = "", 3  # refused after both attempts
            engine = time.perf_counter() - started
            prep = app.engine.prepare(task)
            prompt = app.engine._plan(prep, prep.decision.steps[0]).prompt.text
            n = max(floor.tokens(kept), 1) if kept else 100
            # on the engine's inference thread: llama.cpp keeps an OpenMP team per calling
            # thread, and two live teams on two cores would slow whichever runs second
            floor_s = pool.call(floor.run, prompt, n, len(rows))
            rows.append(Row(e2e, engine, floor_s, state, attempt))
            r = rows[-1]
            print(f"  {case.id:>8} {case.language} e2e {r.e2e:5.2f} s  engine {r.engine:5.2f} s  "
                  f"floor {r.floor:4.2f} s ({n} tokens)  {state}, "
                  f"{'refused' if attempt == 3 else f'attempt {attempt}'}", flush=True)
        return rows
    finally:
        server.close()
        app.close()


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=13, help="tasks, the first one warms (default 13)")
    parser.add_argument("--levers", choices=["on", "off", "both"], default="both")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BATON_LLAMA_THREADS", 2)))
    args = parser.parse_args(argv)

    from bench._common import bench_settings

    data = make(max(args.n, 2))
    catalog = data.catalog["en"] + data.catalog["ja"]
    settings = bench_settings()
    assert settings.model_path is not None
    pool = LlamaPool()  # one inference thread for the engine and the floor, as in a worker
    floor = pool.call(Floor, settings.model_path, args.threads, settings.llama_n_ctx)
    results: dict[str, list[Row]] = {}
    for name in (["off", "on"] if args.levers == "both" else [args.levers]):
        print(f"quality levers {name} "
              f"({'embedded best_of/best_of_retry' if name == 'on' else 'one candidate per attempt'}), "
              f"{args.threads} threads:")
        results[name] = measure(list(data.cases), catalog, LEVERS[name], args.threads, floor,
                                settings.model_path, pool)
    for name, rows in results.items():
        e2e, engine, floor_s = ([getattr(r, f) for r in rows] for f in ("e2e", "engine", "floor"))
        print(f"levers {name}: e2e p50 {statistics.median(e2e):.2f} s p95 {p(e2e, 0.95):.2f} s | "
              f"engine p50 {statistics.median(engine):.2f} s p95 {p(engine, 0.95):.2f} s | "
              f"floor p50 {statistics.median(floor_s):.2f} s | "
              f"e2e - engine p50 {statistics.median(a - b for a, b in zip(e2e, engine, strict=True)):.2f}"
              " s | "
              f"first attempt {sum(r.attempt == 1 for r in rows)}/{len(rows)}")
    name = "on" if "on" in results else "off"
    rows = results[name]
    print(f"e2e_p50_s={statistics.median(r.e2e for r in rows):.2f} "
          f"engine_p50_s={statistics.median(r.engine for r in rows):.2f} "
          f"floor_s={statistics.median(r.floor for r in rows):.2f}")


if __name__ == "__main__":
    main()

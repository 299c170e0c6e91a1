"""The model portfolio against real servers: three llama.cpp OpenAI-compatible servers on
loopback serving the embedded model, two as the replicas of one private model and the third as
an external model, each behind a recording tap. A replica killed while a request is in flight
loses no task (the other takes over); private calls carry the contact's values and no egress;
external calls carry none of them."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from baton.wiring import build_backends
from bench._common import llama_server
from core.engine.engine import Engine, Result
from core.engine.ledger import Ledger
from core.errors import BatonError, GenerationError
from core.policy import parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task
from tests.fakes.backends import ScriptedBackend
from tests.fakes.tap import Tap

pytestmark = pytest.mark.model

SEEDED = {"first_name": "Zoë", "last_name": "Yılmaz", "email": "zoe.yilmaz@example.com.tr",
          "city": "İstanbul", "phone": "+90 532 555 01 42"}


@pytest.fixture(scope="module")
def fleet(model_path: Path) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[str]]]:
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        urls = [stack.enter_context(llama_server(model_path, threads=1, n_ctx=2048,
                                                 started=procs)) for _ in range(3)]
        yield procs, urls


def test_a_replica_killed_mid_run_loses_no_task_and_privacy_follows_the_class(
        fleet: tuple[list[subprocess.Popen[bytes]], list[str]], sqlite_store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    procs, urls = fleet
    monkeypatch.setenv("FRONTIER_KEY", "fr-test-key")
    with Tap(urls[0]) as tap_a, Tap(urls[1]) as tap_b, Tap(urls[2]) as tap_ext:
        policy = parse_policy(f"""
[[routes]]
name = "critical: external"
when = {{ tier = ["critical"] }}
model = "frontier"
fallback = false

[[routes]]
name = "routine: the private tier, no fallback"
model = "gpu"
fallback = false

[models.gpu]
backend = "openai"
model = "gemma-3-270m"
replicas = ["{tap_a.base_url}", "{tap_b.base_url}"]
privacy = "private"
response_format = "json_object"
max_tokens = 80
temperature = 0.0
replica_cooldown_seconds = 600

[models.frontier]
backend = "openai"
model = "gemma-3-270m"
base_url = "{tap_ext.base_url}"
key_env = "FRONTIER_KEY"
price = {{ input = 1.0, cached_input = 0.5, output = 4.0 }}
response_format = "json_object"
max_tokens = 80
temperature = 0.0
""")
        backends = build_backends(Settings(openai_max_retries=1, openai_timeout=120), policy)
        backends["local"] = ScriptedBackend("llama", local=True, model="unused")
        engine = Engine(policy, backends, default_task_kinds(), Ledger(sqlite_store))
        tasks = [Task(kind="text", context={**SEEDED, "company": "Kumo Outfitters"},
                      brief=f"One line for the sales rep about Zoë's order number {i}.")
                 for i in range(4)]

        tap_a.hold()  # requests to replica a wait in its tap...
        outcomes: list[Result | BatonError] = []
        run = threading.Thread(target=lambda: outcomes.extend(engine.run_many(tasks)))
        run.start()
        for _ in range(600):
            if tap_a.held:
                break
            threading.Event().wait(0.1)
        assert tap_a.held >= 1, "replica a never got a request"
        procs[0].kill()  # ...while its server dies
        procs[0].wait(10)
        tap_a.release()
        run.join(600)
        assert not run.is_alive()

        assert len(outcomes) == 4
        for task, outcome in zip(tasks, outcomes, strict=True):
            # a task ends with copy, or with the model's copy refused by the guards: never
            # with the replica's death
            assert isinstance(outcome, Result | GenerationError), outcome
            receipts = Ledger(sqlite_store).receipts(task_id=task.id)
            answered = [r for r in receipts if r.status in ("ok", "guard_failed")]
            assert answered and all(r.replica == tap_b.base_url for r in answered)
            assert all(r.role == "gpu" and r.privacy_class == "private" and not r.egress
                       and r.egress_entities == [] for r in receipts)
        ok, _ = engine.backends["gpu"].health()
        assert ok  # b is up; a is out for its cooldown
        assert "(down: server error 502)" in engine.backends["gpu"].describe()["replicas"]

        # private: the values travel unmasked to your own servers
        private_wire = json.dumps([json.loads(b) for b in tap_b.bodies if b],
                                  ensure_ascii=False)
        for value in ("Zoë", "Yılmaz", "İstanbul"):
            assert value in private_wire

        # external: none of them leaves
        critical = Task(kind="text", tier="critical", context={**SEEDED, "company": "Kumo"},
                        brief="One line for the sales rep about Zoë's order.")
        with contextlib.suppress(GenerationError):  # the 270M model may fail the guards;
            engine.run(critical)                      # what left is the point
        external_wire = json.dumps([json.loads(b) for b in tap_ext.bodies if b],
                                   ensure_ascii=False)
        assert tap_ext.bodies
        for value in SEEDED.values():
            assert value not in external_wire
        assert "Zoë" not in external_wire and "zoe.yilmaz" not in external_wire
        receipts = Ledger(sqlite_store).receipts(task_id=critical.id)
        assert receipts and all(r.role == "frontier" and r.privacy_class == "external"
                                and r.egress for r in receipts)
        assert all("first_name" in r.masked_entities for r in receipts)

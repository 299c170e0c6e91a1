"""The cloud backend against a real OpenAI-compatible server on loopback: llama-cpp-python's own
server (`python -m llama_cpp.server`) serving the same GGUF."""

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import openai
import pytest

from core.backends.base import Limits
from core.backends.openai_api import OpenAIBackend, api_schema
from core.engine import Engine
from core.errors import GenerationError
from core.ledger import Ledger
from core.policy import BrandVoice, parse_policy
from core.settings import Settings
from core.store import Store
from core.task import EMAIL, Task, default_task_kinds
from tests.fakes.backends import ScriptedBackend

BRIEF = "Thank them for their order"

pytestmark = pytest.mark.model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(model_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host",
         "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=2)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("llama_cpp.server did not start") from None
            time.sleep(0.3)
    yield base_url
    proc.terminate()
    proc.wait(timeout=10)


POLICY = """
[[routes]]
name = "all cloud, masked"
action = "cloud-masked"
[cloud]
backend = "openai"
model = "gpt-4o-mini"
response_format = "json_object"
max_tokens = 120
temperature = 0.0
"""


def test_structured_output_from_a_real_server(llama_server: str) -> None:
    policy = parse_policy(POLICY)
    settings = Settings(openai_base_url=llama_server)
    backend = OpenAIBackend(settings, policy.cloud)
    assert "reachable, 1 model(s)" in backend.verify()
    prompt = EMAIL.render(Task(kind="email", brief=BRIEF, context={}), {"first_name": "{first_name}",
                                                           "company": "Acme"},
                          "Announce the winter sale.", BrandVoice(), "chat")
    schema = EMAIL.schema(BrandVoice())
    gen = backend.generate(prompt, schema, Limits(max_tokens=200, temperature=0.0))
    jsonschema.validate(json.loads(gen.text), api_schema(schema))
    assert gen.prompt_tokens > 100 and gen.completion_tokens > 5


def test_engine_receipts_against_a_real_server(llama_server: str, store: Store) -> None:
    policy = parse_policy(POLICY)
    settings = Settings(openai_base_url=llama_server)
    local = ScriptedBackend("llama", local=True, model="gemma")
    local.healthy = (False, "disabled for this test")
    engine = Engine(policy, {"local": local, "cloud": OpenAIBackend(settings, policy.cloud)},
                    default_task_kinds(), Ledger(store))
    task = Task(kind="text", context={"first_name": "Maya", "email": "maya@example.net",
                                      "company": "Fjord & Field"},
                brief="One line for the sales rep about Maya's winter order.")
    try:
        result = engine.run(task)
        assert "{first_name}" not in result.output["text"]
    except GenerationError as exc:  # a 270M base model may fail the guards twice; still billed
        assert exc.violations
    receipts = Ledger(store).receipts(task_id=task.id)
    assert receipts and all(r.role == "cloud" and r.egress for r in receipts)
    assert all(r.egress_entities == [] for r in receipts)
    assert all(r.prompt_tokens > 50 and r.completion_tokens > 0 for r in receipts)
    price = policy.costs.prices["gpt-4o-mini"]
    for r in receipts:
        expected = (r.prompt_tokens * price.input + r.completion_tokens * price.output) / 1e6
        assert r.cost_usd == pytest.approx(expected)

"""The cloud backend against a real OpenAI-compatible server on loopback: llama-cpp-python's own
server (`python -m llama_cpp.server`) serving the same GGUF."""

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from bench._common import llama_server as serve
from core.backends.base import Limits, api_schema
from core.backends.openai_api import OpenAIBackend
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.errors import GenerationError
from core.policy import BrandVoice, parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import EMAIL, Task
from tests.fakes.backends import ScriptedBackend

BRIEF = "Thank them for their order"

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def llama_server(model_path: Path) -> Iterator[str]:
    with serve(model_path, n_ctx=2048) as base_url:
        yield base_url


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

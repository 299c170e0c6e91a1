"""The openai backend with the real openai client against a loopback server that injects faults
and keeps every request body (what left the machine)."""

import json
from collections.abc import Iterator

import pytest

from core.backends.base import Limits
from core.backends.openai_api import OpenAIBackend, retry_after_seconds
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.errors import BackendError, QuotaExhaustedError, TransientBackendError
from core.policy import ModelConfig, parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Prompt, Task
from tests.fakes.backends import ScriptedBackend
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    completion,
    quota_exhausted,
    rate_limited,
    server_error,
)

BRIEF = "Thank them for their order"

PROMPT = Prompt(style="chat", prefix="", suffix="", messages=({"role": "user", "content": "hi"},))
SCHEMA = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 50}},
          "required": ["text"], "additionalProperties": False}
LIMITS = Limits(max_tokens=50, temperature=0.0)


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def backend(api: FakeOpenAI, sleeps: list[float] | None = None, **kw: object) -> OpenAIBackend:
    settings = Settings(openai_api_key="sk-test-secret", openai_base_url=api.base_url,  # type: ignore[arg-type]
                        **kw)  # type: ignore[arg-type]
    role = ModelConfig(backend="openai", model="gpt-4o-mini")
    if sleeps is None:
        return OpenAIBackend(settings, role)
    return OpenAIBackend(settings, role, sleep=sleeps.append, jitter=lambda: 0.5)


def test_request_shape_and_usage(api: FakeOpenAI) -> None:
    api.queue(completion('{"text": "hello"}', prompt_tokens=1234, completion_tokens=56,
                         cached_tokens=1024))
    gen = backend(api).generate(PROMPT, SCHEMA, LIMITS)
    assert (gen.text, gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens) == (
        '{"text": "hello"}', 1234, 56, 1024)
    body = api.seen[0].body
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "maxLength" not in json.dumps(body["response_format"])
    headers = {k.lower(): v for k, v in api.seen[0].headers.items()}
    assert headers["authorization"] == "Bearer sk-test-secret"


def test_retry_after_is_honoured_on_the_wire(api: FakeOpenAI) -> None:
    api.queue(rate_limited(retry_after="1"), completion('{"text": "ok"}'))
    gen = backend(api).generate(PROMPT, SCHEMA, LIMITS)
    assert gen.text == '{"text": "ok"}'
    assert len(api.seen) == 2
    assert api.seen[1].at - api.seen[0].at >= 1.0


def test_retry_after_ms_and_long_waits(api: FakeOpenAI) -> None:
    sleeps: list[float] = []
    api.queue(Reply(status=429, headers={"retry-after-ms": "250"},
                    error={"message": "slow down", "code": "rate_limit_exceeded"}),
              completion('{"text": "ok"}'))
    backend(api, sleeps).generate(PROMPT, SCHEMA, LIMITS)
    assert sleeps == [0.25]
    api.queue(rate_limited(retry_after="3600"))
    with pytest.raises(TransientBackendError, match="Retry-After 3600s exceeds"):
        backend(api, sleeps, openai_max_retry_wait=120).generate(PROMPT, SCHEMA, LIMITS)
    assert sleeps == [0.25]


def test_insufficient_quota_is_not_retried(api: FakeOpenAI) -> None:
    api.queue(quota_exhausted(), completion('{"text": "never"}'))
    with pytest.raises(QuotaExhaustedError, match="insufficient_quota"):
        backend(api, []).generate(PROMPT, SCHEMA, LIMITS)
    assert len(api.seen) == 1


def test_server_errors_back_off_then_give_up(api: FakeOpenAI) -> None:
    sleeps: list[float] = []
    api.queue(server_error(500), server_error(503), completion('{"text": "ok"}'))
    assert backend(api, sleeps).generate(PROMPT, SCHEMA, LIMITS).text == '{"text": "ok"}'
    assert sleeps == [0.5, 1.0]  # 0.5 s x 2^n, jitter fixed at the middle
    api.queue(*[server_error(500)] * 4)
    with pytest.raises(TransientBackendError, match="server error 500; gave up after 4 attempts"):
        backend(api, []).generate(PROMPT, SCHEMA, LIMITS)


def test_slow_answer_times_out_as_transient(api: FakeOpenAI) -> None:
    api.queue(Reply(delay=2.0), Reply(delay=2.0))
    with pytest.raises(TransientBackendError, match="timed out"):
        backend(api, [], openai_timeout=0.3, openai_max_retries=1).generate(PROMPT, SCHEMA, LIMITS)


def test_bad_key_is_a_clear_permanent_error(api: FakeOpenAI) -> None:
    api.queue(Reply(status=401, error={"message": "Incorrect API key", "code": "invalid_api_key"}))
    with pytest.raises(BackendError, match="check BATON_OPENAI_API_KEY") as err:
        backend(api, []).generate(PROMPT, SCHEMA, LIMITS)
    assert not isinstance(err.value, TransientBackendError)
    assert "sk-test-secret" not in str(err.value)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
                               now=1445412480.0) == 10.0
    assert retry_after_seconds({}) is None


SEEDED = [
    {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya.lindqvist@example.net",
     "phone": "+1 415 555 0142", "company": "Fjord & Field",
     "notes": "Maya prefers email at maya.lindqvist@example.net, backup +1 415 555 0142"},
    {"first_name": "Tomás", "last_name": "Herrera", "email": "t.herrera@example.org",
     "phone": "+34 612 345 678", "company": "Sierra Supply", "notes": "Call Tomás after 5"},
    {"last_name": "佐藤", "first_name": "花子", "email": "hanako.sato@example.jp",
     "phone": "090-1234-5678", "company": "山風アウトドア", "notes": "佐藤様は090-1234-5678まで"},
]


def test_cloud_masked_sends_no_seeded_values(api: FakeOpenAI, store: Store) -> None:
    policy = parse_policy('[[routes]]\nname = "all"\naction = "cloud-masked"\n')
    settings = Settings(openai_api_key="sk-test", openai_base_url=api.base_url)  # type: ignore[arg-type]
    cloud = OpenAIBackend(settings, policy.cloud)
    local = ScriptedBackend("llama", local=True, model="gemma")
    engine = Engine(policy, {"local": local, "cloud": cloud}, default_task_kinds(), Ledger(store))
    for contact in SEEDED:
        language = "ja" if contact["last_name"] == "佐藤" else "en"
        greeting = "{last_name}様" if language == "ja" else "Hi {first_name},"
        reply = json.dumps({"subject": "For {first_name}", "preheader": "p",
                            "body": f"{greeting} {{first_name}} {{last_name}}, we will write "
                                    "soon."})
        api.queue(completion(reply, prompt_tokens=500, completion_tokens=40))
        result = engine.run(Task(kind="email", context=contact, tier="critical",
                                 language=language, brief=f"Thank {contact['first_name']}"))
        body = result.output["body"]
        assert contact["first_name"] in body and contact["last_name"] in body
        assert result.receipt.egress and result.receipt.egress_entities == ()
    wire = api.bodies_text()
    decoded = json.dumps([s.body for s in api.seen], ensure_ascii=False)
    leaked = [v for c in SEEDED for k, v in c.items()
              if k in ("first_name", "last_name", "email", "phone") and (v in wire or v in decoded)]
    assert leaked == []
    assert len(api.seen) == 3


def test_unmasked_cloud_records_what_left(api: FakeOpenAI, store: Store) -> None:
    policy = parse_policy('[[routes]]\nname = "all"\naction = "cloud"\n')
    settings = Settings(openai_api_key="sk-test", openai_base_url=api.base_url)  # type: ignore[arg-type]
    engine = Engine(policy, {"local": ScriptedBackend("llama", local=True, model="g"),
                             "cloud": OpenAIBackend(settings, policy.cloud)},
                    default_task_kinds(), Ledger(store))
    api.queue(completion(json.dumps({"subject": "s", "preheader": "p", "body": "Hi Maya, hello"})))
    result = engine.run(Task(kind="email", brief=BRIEF, context=SEEDED[0]))
    assert "Maya" in api.bodies_text()
    assert set(result.receipt.egress_entities) == {"first_name", "last_name", "email", "phone"}
    assert "Start the body with: Hi Maya," in api.bodies_text()


def test_the_fake_refuses_a_schema_strict_mode_cannot_hold_and_baton_sends_none() -> None:
    """As OpenAI's strict mode: closed objects, every property required, no length keywords.
    Every kind's schema, as the backend sends it, passes; as the guards hold it, it would not."""
    from core.backends.base import api_schema
    from core.policy import BrandVoice
    from tests.fakes.openai_server import strict_schema_problems

    catalog = {"catalog": [{"sku": "A", "name": "Tent"}]}
    for kind in default_task_kinds().names():
        schema = default_task_kinds().get(kind).schema(BrandVoice(), "Hi {first_name},", catalog)
        assert strict_schema_problems(api_schema(schema)) == [], kind
    assert strict_schema_problems({"type": "object", "properties": {"a": {"type": "string",
                                                                          "maxLength": 5}}})
    with pytest.raises(BackendError, match="Invalid schema"), FakeOpenAI() as api:
        backend(api).generate(PROMPT, {"type": "object", "properties": {"a": {"type": "string"}}},
                              LIMITS)


def test_an_answer_cut_off_at_max_tokens_or_a_refusal_is_not_taken(api: FakeOpenAI,
                                                                   store: Store) -> None:
    from core.errors import GenerationError
    from tests.fakes.openai_server import cut_off, refused

    policy = parse_policy('[[routes]]\nname = "all"\naction = "cloud-masked"\n')
    settings = Settings(openai_api_key="sk-test", openai_base_url=api.base_url)  # type: ignore[arg-type]
    engine = Engine(policy, {"local": ScriptedBackend("llama", local=True, model="g"),
                             "cloud": OpenAIBackend(settings, policy.cloud)},
                    default_task_kinds(), Ledger(store))
    good = json.dumps({"subject": "s", "preheader": "p", "body": "Hi {first_name}, hello."})
    api.queue(cut_off(good[:20]), completion(good))
    result = engine.run(Task(kind="email", brief=BRIEF, context={"first_name": "Ann"}))
    assert [r.status for r in result.receipts] == ["guard_failed", "ok"]
    assert "cut off at 320 tokens" in (result.receipts[0].error or "")  # the policy's max_tokens
    api.queue(refused("I can't write that."), refused("I can't write that."))
    with pytest.raises(GenerationError, match="refusal: the model declined"):
        engine.run(Task(kind="email", brief=BRIEF, context={"first_name": "Ann"}))

"""The real embedded model (Gemma 3 270M from PyPI) through the real llama backend."""

import shutil
from pathlib import Path

import jsonschema
import pytest

from core.backends.base import Limits
from core.backends.llama import LlamaBackend, LlamaPool, grammar_text
from core.backends.model_file import check_sha256, resolve_model
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.errors import InputError, ModelFileError
from core.policy import BrandVoice, Policy, parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import EMAIL, Prompt, Task
from tests.conftest import PLUMBING_BRIEF, PLUMBING_EXAMPLES
from tests.fakes.backends import ScriptedBackend

BRIEF = "Thank them for their order"

pytestmark = pytest.mark.model

LOCAL = """
[brand]
sign_off = "— The Demo team"
""" + PLUMBING_EXAMPLES + """
[[routes]]
name = "all local"
action = "local"
[local]
backend = "llama"
max_tokens = 480
temperature = 0.0
"""


def local_engine(settings: Settings, pool: LlamaPool, store: Store,
                 text: str = LOCAL) -> tuple[Engine, Policy]:
    policy = parse_policy(text)
    llama = LlamaBackend(settings, policy.local, pool)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    cloud.healthy = (False, "not configured")
    return Engine(policy, {"local": llama, "cloud": cloud}, default_task_kinds(),
                  Ledger(store)), policy


def test_local_email_passes_schema_and_restores_the_first_name(
        settings: Settings, llama_pool: LlamaPool, sqlite_store: Store) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    contact = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net",
               "company": "Fjord & Field", "last_purchase": "Summit 40L backpack"}
    result = engine.run(Task(kind="email", context=contact,
                             brief=PLUMBING_BRIEF))
    jsonschema.validate(result.output, EMAIL.schema(BrandVoice()) | {"properties": {
        k: {"type": "string"} for k in ("subject", "preheader", "body")}})
    text = result.output["subject"] + result.output["body"]
    assert "Maya" in text
    assert "{first_name}" not in text
    assert result.output["body"].endswith("— The Demo team")
    receipt = result.receipt
    assert receipt.role == "local" and not receipt.egress and receipt.status == "ok"
    assert receipt.prompt_tokens > 200 and receipt.completion_tokens > 5
    # local cost is wall time x the machine's hourly cost (not a timing assertion: the ratio to the
    # cloud baseline depends on how busy the machine is; bench/ measures that)
    assert receipt.cost_usd == pytest.approx(receipt.latency_ms / 1000 * 0.10 / 3600)
    assert receipt.baseline_cost_usd > 0


def test_japanese_contact(settings: Settings, llama_pool: LlamaPool,
                          sqlite_store: Store) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    contact = {"last_name": "佐藤", "first_name": "花子", "phone": "090-1234-5678",
               "company": "山風アウトドア", "last_purchase": "登山用レインジャケット"}
    result = engine.run(Task(kind="email", context=contact, language="ja",
                             brief="購入へのお礼と、防水スプレーの提案。"))
    text = result.output["subject"] + result.output["body"]
    assert "佐藤" in text
    assert "{last_name}" not in text
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


def test_shared_prefix_is_served_from_the_kv_cache(
        settings: Settings, llama_pool: LlamaPool, sqlite_store: Store) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    brief = PLUMBING_BRIEF
    tasks = [Task(kind="email", context={"first_name": n, "company": c}, brief=brief)
             for n, c in (("Ann", "Northwind"), ("Bo", "Southwind"))]
    results = engine.run_many(tasks)
    first, second = (r.receipts[0] for r in results)  # type: ignore[union-attr]
    prefix_tokens = len(llama_pool.get(settings).llama.tokenize(
        EMAIL.render(tasks[1], {"first_name": "{first_name}"}, brief, engine.policy.brand,
                     "completion").prefix.encode(), add_bos=True))
    assert second.cached_tokens >= prefix_tokens - 2
    assert second.cached_tokens < second.prompt_tokens
    assert first.prompt_tokens > 0


def test_prompt_over_the_context_is_refused_before_generation(
        settings: Settings, llama_pool: LlamaPool, sqlite_store: Store) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    huge = {"first_name": "Ann", "notes": "boots and tents " * 3000}
    with pytest.raises(InputError, match=r"exceeds the local context of 4096 tokens"):
        engine.run(Task(kind="email", brief=BRIEF, context=huge))


def test_grammar_limits_lengths_and_compiles() -> None:
    gbnf = grammar_text(EMAIL.schema(BrandVoice(max_subject_chars=40)))
    assert 'subject ::= "\\"" linechar{0,40} "\\"" space' in gbnf  # one line: no \n escape
    assert "linechar ::= [^\"\\\\\\x00-\\x1f]" in gbnf
    assert gbnf.startswith("body ::=") or "root ::= \" \"? root-value" in gbnf


def test_a_brief_without_numbers_gets_copy_without_digits(
        settings: Settings, llama_pool: LlamaPool) -> None:
    """The grammar of a marketing email whose brief gives no number has no digit: a prompt that
    begs for prices gets none, while the same prompt with a numbered brief may write them."""
    schema = EMAIL.schema(BrandVoice(), brief="Tell them about the sale")
    assert schema["x-no-digits"] is True
    assert "x-no-digits" not in EMAIL.schema(BrandVoice(), brief="Take 20% off")
    backend = LlamaBackend(settings, parse_policy(LOCAL).local, llama_pool)
    prompt = Prompt(style="completion", prefix="Price list, in JSON.\nEmail: ",
                    suffix='{"subject": "Prices: 10, 20, 30, 40", "preheader": "$5, $10, $15", '
                           '"body": "Boots $120, tents $300, socks $12, poles $80."}\nEmail:')
    limits = Limits(max_tokens=120, temperature=0.0)
    free = backend.generate(prompt, EMAIL.schema(BrandVoice(), brief="Take 20% off"), limits)
    bound = backend.generate(prompt, schema, limits)
    assert any(c.isdigit() for c in free.text)  # the model wants digits here
    assert '"subject"' in bound.text and not any(c.isdigit() for c in bound.text)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="model file not found: .*nope.gguf"):
        resolve_model(tmp_path / "nope.gguf", None, tmp_path)


def test_wrong_sha256_is_refused(tmp_path: Path, model_path: Path, model_sha256: str) -> None:
    copy = tmp_path / "model.gguf"
    shutil.copyfile(model_path, copy)
    check_sha256(copy, model_sha256)  # the copy is intact
    with copy.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01")
    with pytest.raises(ModelFileError, match=f"expected {model_sha256}"):
        check_sha256(copy, model_sha256)
    with pytest.raises(ModelFileError, match="has sha256"):
        resolve_model(copy, "0" * 64, tmp_path)


def test_embedded_model_is_assembled_into_the_data_dir(tmp_path: Path, model_sha256: str) -> None:
    resolved = resolve_model(None, None, tmp_path)
    assert resolved.path == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert resolved.embedded and resolved.sha256 == model_sha256
    assert not list((tmp_path / "models").glob("*.partial"))


def test_chat_prompt_style_on_the_local_model(settings: Settings, llama_pool: LlamaPool) -> None:
    """An instruct GGUF is driven with chat messages and llama-cpp-python's chat template."""
    role = parse_policy('[local]\nbackend = "llama"\nprompt_style = "chat"\n').local
    backend = LlamaBackend(settings, role, llama_pool)
    task = Task(kind="text", context={"first_name": "{first_name}", "company": "Acme"})
    prompt = default_task_kinds().get("text").render(task, task.context, "One line for sales.",
                                                     BrandVoice(), "chat")
    gen = backend.generate(prompt, default_task_kinds().get("text").schema(BrandVoice()),
                           Limits(max_tokens=80, temperature=0.3, repeat_penalty=1.1))
    assert gen.text.lstrip().startswith('{') and '"text"' in gen.text
    assert gen.prompt_tokens > 20 and gen.completion_tokens > 0


def test_missing_lora_adapter_is_a_clear_error(tmp_path: Path, model_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_path=model_path,
                        llama_lora_path=tmp_path / "adapter.gguf")
    backend = LlamaBackend(settings, parse_policy("").local, LlamaPool())
    with pytest.raises(ModelFileError, match="LoRA adapter not found: .*adapter.gguf"):
        backend.generate(EMAIL.render(Task(kind="email", brief=BRIEF, context={"a": "b"}), {"a": "b"}, "x",
                                      BrandVoice(), "completion"), {}, Limits(16, 0.0))

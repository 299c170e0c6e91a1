import json
from datetime import UTC, datetime

import pytest

from core.engine.engine import Engine
from core.engine.ledger import Ledger, Receipt
from core.errors import (
    BatonError,
    GenerationError,
    InputError,
    TransientBackendError,
    UnknownNameError,
)
from core.policy import Policy, parse_policy
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task
from tests.fakes.backends import ScriptedBackend

BRIEF = "Thank them for their order"

GOOD = json.dumps({"subject": "Hi {first_name}", "preheader": "Your order",
                   "body": "Hi {first_name}, thanks for your order."})
BANNED = json.dumps({"subject": "Elevate", "preheader": "p", "body": "Elevate your hikes"})
CONTACT = {"first_name": "Maya", "email": "maya@example.net", "company": "Fjord & Field"}

CASCADE = """
[brand]
banned_words = ["elevate"]
sign_off = "— Team"
[[routes]]
name = "cascade"
action = "cascade"
"""


class Clock:
    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def make_engine(store: Store, policy_text: str, local: ScriptedBackend,
                cloud: ScriptedBackend, clock: Clock | None = None) -> Engine:
    policy: Policy = parse_policy(policy_text)
    return Engine(policy, {"local": local, "cloud": cloud}, default_task_kinds(), Ledger(store),
                  clock=clock or Clock(0.5))


def backends(local_out: list, cloud_out: list) -> tuple[ScriptedBackend, ScriptedBackend]:
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=local_out)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini", style="chat",
                            outputs=cloud_out, prompt_tokens=1000, completion_tokens=100,
                            cached_tokens=200)
    return local, cloud


def test_cascade_escalates_to_masked_cloud_after_failed_repair(store: Store) -> None:
    local, cloud = backends([BANNED, BANNED], [GOOD])
    engine = make_engine(store, CASCADE, local, cloud)
    result = engine.run(Task(kind="email", context=CONTACT, brief="Thank Maya"))
    assert result.output["body"] == "Hi Maya, thanks for your order.\n\n— Team"
    assert [(r.role, r.status, r.attempt) for r in result.receipts] == [
        ("local", "guard_failed", 1), ("local", "guard_failed", 2), ("cloud", "ok", 1)]
    assert any("escalate to cloud" in r for r in result.decision.reasons)
    sent = json.dumps([dict(m) for m in cloud.prompts[0].messages])
    assert "Maya" not in sent and "maya@example.net" not in sent
    assert result.receipt.egress and result.receipt.egress_entities == ()
    assert set(result.receipt.masked_entities) == {"first_name", "email"}
    assert len(Ledger(store).receipts(task_id=result.task.id)) == 3


def test_repair_tells_a_chat_model_what_failed(store: Store) -> None:
    local, cloud = backends([], [BANNED, GOOD])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"cloud-masked"\n'), local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert result.receipt.attempt == 2
    feedback = cloud.prompts[1].messages[-1]["content"]
    assert "banned_words: uses 'elevate'" in feedback


def test_failure_after_repair_is_clear_and_recorded(store: Store) -> None:
    local, cloud = backends(["not json", BANNED], [])
    cloud.healthy = (False, "not configured")
    engine = make_engine(store, CASCADE, local, cloud)
    with pytest.raises(GenerationError, match="failed its checks after one repair: banned_words"):
        engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    rows = Ledger(store).receipts()
    assert sorted(r.error or "" for r in rows)[0].startswith("banned_words")
    assert any("not valid JSON" in (r.error or "") for r in rows)


def test_cloud_failure_falls_back_to_local_and_opens_the_breaker(store: Store) -> None:
    errors = [TransientBackendError("server error 500", backend="openai") for _ in range(3)]
    local, cloud = backends([GOOD] * 4, errors)
    text = CASCADE.replace('"cascade"\n', '"cloud-masked"\n') + "[breaker]\nfailures = 3\n"
    engine = make_engine(store, text, local, cloud)
    for _ in range(3):
        result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
        assert result.receipt.role == "local"
        assert any("cloud failed (server error 500) -> fallback to local" in r
                   for r in result.decision.reasons)
    # The breaker is open now: routing skips the cloud without calling it.
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert [r.role for r in result.receipts] == ["local"]
    assert any("circuit open" in r for r in result.decision.reasons)
    assert len(cloud.prompts) == 3


def test_spent_budget_routes_locally(store: Store) -> None:
    local, cloud = backends([GOOD], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"cloud-masked"\n')
                         + "[budget]\nmonthly_usd = 0.01\n", local, cloud)
    engine.ledger.record(_receipt(tenant="default", cost=0.02))
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert result.receipt.role == "local"
    assert any("budget spent ($0.0200 of $0.01 this month) -> fallback to local" in r
               for r in result.decision.reasons)


def test_a_spent_budget_stops_cascade_from_escalating_to_the_cloud(store: Store) -> None:
    local, cloud = backends([BANNED, BANNED], [GOOD])
    engine = make_engine(store, CASCADE + "[budget]\nmonthly_usd = 0.01\n", local, cloud)
    engine.ledger.record(_receipt(tenant="default", cost=0.02))
    with pytest.raises(GenerationError, match="from local failed its checks"):
        engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert cloud.prompts == [] and len(local.prompts) == 2


def test_a_spent_budget_stops_a_fallback_to_the_cloud(store: Store) -> None:
    local, cloud = backends([TransientBackendError("llama crashed", backend="llama")], [GOOD])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n')
                         + "[budget]\nmonthly_usd = 0.01\n", local, cloud)
    engine.ledger.record(_receipt(tenant="default", cost=0.02))
    with pytest.raises(TransientBackendError, match="llama crashed"):
        engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert cloud.prompts == []
    # with budget left, the same failure falls back to the (masked) cloud
    local.outputs.append(TransientBackendError("llama crashed", backend="llama"))
    engine.ledger.record(_receipt(tenant="other", cost=0.0))
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT, tenant="other"))
    assert result.receipt.role == "cloud" and len(cloud.prompts) == 1


def test_receipts_carry_tokens_and_costs(store: Store) -> None:
    local, cloud = backends([GOOD], [GOOD])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"cloud-masked"\n'), local, cloud,
                         clock=Clock(0.25))
    cloud_receipt = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT)).receipt
    assert (cloud_receipt.prompt_tokens, cloud_receipt.cached_tokens,
            cloud_receipt.completion_tokens) == (1000, 200, 100)
    # gpt-4o-mini: 800 x 0.15 + 200 x 0.075 + 100 x 0.60 per 1M tokens
    assert cloud_receipt.cost_usd == pytest.approx((800 * 0.15 + 200 * 0.075 + 100 * 0.60) / 1e6)
    # baseline gpt-4o, no cache discount: 1000 x 2.50 + 100 x 10.00 per 1M
    assert cloud_receipt.baseline_cost_usd == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert cloud_receipt.latency_ms == pytest.approx(250)

    local_engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud,
                               clock=Clock(0.25))
    local_receipt = local_engine.run(Task(kind="email", brief=BRIEF, context=CONTACT)).receipt
    assert local_receipt.cost_usd == pytest.approx(0.25 * 0.10 / 3600)
    assert not local_receipt.egress
    report = Ledger(store).report()
    assert report.total.calls == 2 and report.total.local_calls == 1
    assert report.total.cost_usd == pytest.approx(cloud_receipt.cost_usd + local_receipt.cost_usd)


def test_run_many_groups_shared_prefixes_and_keeps_order(store: Store) -> None:
    briefs = ["A: thanks", "B: thanks"] * 3
    local, cloud = backends([GOOD] * 6, [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    tasks = [Task(kind="email", context={**CONTACT, "company": f"Co {i}"}, brief=b)
             for i, b in enumerate(briefs)]
    results = engine.run_many(tasks)
    ran = [p.prefix.rsplit("Brief: ", 1)[1].split("\n")[0] for p in local.prompts]
    assert ran == ["A: thanks"] * 3 + ["B: thanks"] * 3
    assert [r.task.id for r in results if not isinstance(r, BatonError)] == [t.id for t in tasks]


def test_run_many_reports_bad_rows_without_stopping(store: Store) -> None:
    local, cloud = backends([GOOD], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    results = engine.run_many([Task(kind="email", brief=BRIEF, context={"first_name": ""}),
                               Task(kind="email", brief=BRIEF, context=CONTACT)])
    assert isinstance(results[0], InputError) and "contact is empty" in str(results[0])
    assert not isinstance(results[1], BatonError)


def test_unknown_kind_and_language(store: Store) -> None:
    local, cloud = backends([], [])
    engine = make_engine(store, CASCADE, local, cloud)
    with pytest.raises(UnknownNameError,
                       match="unknown task kind 'poem'; known: email, recommendation, reply, text"):
        engine.run(Task(kind="poem", context=CONTACT))
    with pytest.raises(InputError, match="language 'fr' is not supported"):
        engine.run(Task(kind="email", brief=BRIEF, context=CONTACT, language="fr"))


def _receipt(tenant: str, cost: float) -> Receipt:
    return Receipt(task_id="t", tenant=tenant, kind="email", tier="routine", language="en",
                   action="cloud", role="cloud", backend="openai", model="gpt-4o-mini", rule=None,
                   reasons=(), status="ok", attempt=1, prompt_tokens=1, completion_tokens=1,
                   cached_tokens=0, latency_ms=10.0, cost_usd=cost, baseline_cost_usd=cost,
                   egress=True)


def test_spend_is_per_tenant_and_per_month(store: Store) -> None:
    ledger = Ledger(store, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    ledger.record(_receipt("acme", 1.5))
    ledger.record(_receipt("acme", 0.5))
    ledger.record(_receipt("other", 9.0))
    old = _receipt("acme", 100.0)
    ledger.record(Receipt(**{**old.__dict__, "id": "old",
                             "created_at": datetime(2026, 10, 31, 23, 0, tzinfo=UTC)}))
    assert ledger.spent_this_month("acme") == pytest.approx(2.0)
    assert ledger.spent_this_month("nobody") == 0.0


def test_greeting_is_required_and_falls_back_without_a_first_name(store: Store) -> None:
    no_name = json.dumps({"subject": "s", "preheader": "p", "body": "Hi there, welcome."})
    wrong = json.dumps({"subject": "s", "preheader": "p", "body": "Dear friend, welcome."})
    local, cloud = backends([no_name, wrong, wrong], [])
    policy = CASCADE.replace('"cascade"\n', '"local"\n')
    strict = make_engine(store, policy, local, cloud)
    with pytest.raises(InputError, match="no first_name to greet.*fallback_greetings"):
        strict.run(Task(kind="email", brief="Thank them", context={"company": "Acme"}))
    assert not local.prompts  # refused before any model ran: no made-up greeting
    policy = policy.replace("[brand]\n", '[brand]\nfallback_greetings = { en = "Hi there," }\n')
    engine = make_engine(store, policy, local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context={"company": "Acme"}))
    assert local.schemas[0]["properties"]["body"]["x-lead"] == "Hi there,"
    assert result.output["body"].startswith("Hi there,")
    with pytest.raises(GenerationError, match="lead: body must start with 'Hi {first_name},'"):
        engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert local.schemas[1]["properties"]["body"]["x-lead"] == "Hi {first_name},"


def test_each_tenant_gets_its_own_brand_voice(store: Store) -> None:
    text = CASCADE.replace('"cascade"\n', '"local"\n') + (
        '[brands.acme]\nname = "Acme Outdoor"\nsign_off = "— Acme"\n')
    local, cloud = backends([GOOD, GOOD], [])
    engine = make_engine(store, text, local, cloud)
    acme = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT, tenant="acme"))
    other = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT, tenant="other"))
    assert acme.output["body"].endswith("— Acme") and other.output["body"].endswith("— Team")
    assert "Acme Outdoor" in local.prompts[0].prefix
    assert "Acme Outdoor" not in local.prompts[1].prefix


def test_merge_tags_and_room_for_restored_values(store: Store) -> None:
    tagged = json.dumps({"subject": "News for {company}", "preheader": "p",
                         "body": "Hi {first_name}, all of {company} is invited."})
    local, cloud = backends([tagged], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert result.output["subject"] == "News for Fjord & Field"
    grow = len("maya@example.net") - len("{email}")
    assert local.schemas[0]["properties"]["subject"]["maxLength"] == 90 - grow


def test_raw_newlines_inside_json_strings_are_accepted(store: Store) -> None:
    raw = '{"subject": "s", "preheader": "p", "body": "Hi {first_name},\n\nSee you."}'
    local, cloud = backends([raw], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    assert engine.run(Task(kind="email", brief=BRIEF, context=CONTACT)).output["body"].startswith(
        "Hi Maya,\n\nSee you.")


def test_best_of_samples_candidates_in_turn_until_one_passes(store: Store) -> None:
    """One task's candidates are generated one after another and the first that passes ends
    the attempt: the third is never generated (nor paid for)."""
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[BANNED, GOOD, BANNED],
                            max_batch=8, prompt_tokens=100, completion_tokens=40)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    policy = CASCADE.replace('"cascade"\n', '"local"\n') + "[local]\nbackend = \"llama\"\nbest_of = 3\n"
    engine = make_engine(store, policy, local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT, id="task-1"))
    assert local.batches == [] and len(local.prompts) == 2  # in turn; the second passed
    assert result.output["body"].startswith("Hi Maya, thanks")
    (receipt,) = result.receipts  # one attempt, paid for the two candidates generated
    assert (receipt.status, receipt.prompt_tokens, receipt.completion_tokens) == ("ok", 200, 80)
    every = ScriptedBackend("llama", local=True, model="gemma", outputs=[BANNED] * 3 + [GOOD],
                            max_batch=8)
    make_engine(store, policy, every, cloud).run(
        Task(kind="email", brief=BRIEF, context=CONTACT, id="task-1"))
    seeds = [p.seed for p in every.prompts[:3]]  # all three of the first attempt
    assert len(set(seeds)) == 3 and None not in seeds
    again = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 3, max_batch=8)
    make_engine(store, policy, again, cloud).run(
        Task(kind="email", brief=BRIEF, context=CONTACT, id="task-2"))
    assert [p.seed for p in again.prompts] == seeds[:1]  # the same task samples the same way
    for changed in ({"regeneration": 1}, {"brief": "Thank them for their order again"}):
        other = ScriptedBackend("llama", local=True, model="gemma", outputs=[GOOD] * 3,
                                max_batch=8)
        asked: dict[str, object] = {"kind": "email", "brief": BRIEF, "context": CONTACT, **changed}
        make_engine(store, policy, other, cloud).run(Task(**asked))  # type: ignore[arg-type]
        assert not set(p.seed for p in other.prompts) & set(seeds)  # asked anew: sampled anew


def test_the_baseline_is_the_reference_model_doing_the_task_once(store: Store) -> None:
    """`baton roi`'s all-cloud column: one reference call per task (one candidate's prompt, the
    answer's length), not every candidate, repair and escalation this policy paid for."""
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=[BANNED, BANNED, GOOD],
                            max_batch=8, prompt_tokens=100, completion_tokens=40)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini", outputs=[GOOD])
    policy = CASCADE + "[local]\nbackend = \"llama\"\nbest_of = 2\nbest_of_retry = 1\n"
    engine = make_engine(store, policy, local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    first, second = result.receipts
    assert (first.prompt_tokens, first.completion_tokens) == (200, 80)  # both candidates paid
    assert first.baseline_cost_usd == pytest.approx((100 * 2.5 + 40 * 10) / 1e6)  # gpt-4o, once
    assert second.attempt == 2 and second.baseline_cost_usd == 0.0
    escalated = ScriptedBackend("llama", local=True, model="gemma", outputs=[BANNED] * 3)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini", outputs=[GOOD],
                            prompt_tokens=500, completion_tokens=90)
    receipts = make_engine(store, policy, escalated, cloud).run(
        Task(kind="email", brief=BRIEF, context={**CONTACT, "company": "Other"})).receipts
    assert [r.role for r in receipts] == ["local", "local", "cloud"]
    assert [r.baseline_cost_usd > 0 for r in receipts] == [True, False, False]


def test_a_retried_job_does_not_count_its_tasks_baseline_again(store: Store) -> None:
    """A job retried after its write-back failed, or re-run by hand, runs the same task (the
    same id) again: its receipts cost what they cost, but the reference model did it once."""
    local, cloud = backends([GOOD, GOOD, GOOD], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    task = Task(kind="email", brief=BRIEF, context=CONTACT)
    for _ in range(3):
        engine.run(task)
    receipts = engine.ledger.receipts(task_id=task.id)
    assert len(receipts) == 3 and all(r.cost_usd > 0 for r in receipts)
    assert sum(r.baseline_cost_usd > 0 for r in receipts) == 1
    other = Task(kind="email", brief=BRIEF, context=CONTACT)  # another task: its own baseline
    local.outputs.append(GOOD)
    assert engine.run(other).receipt.baseline_cost_usd > 0


def test_candidates_generated_before_a_backend_error_are_on_its_receipt(store: Store) -> None:
    local = ScriptedBackend("llama", local=True, model="gemma", max_batch=8, prompt_tokens=100,
                            completion_tokens=40,
                            outputs=[BANNED, TransientBackendError("llama crashed", backend="llama")])
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini", outputs=[GOOD])
    policy = CASCADE.replace('"cascade"\n', '"local"\n') + "[local]\nbackend = \"llama\"\nbest_of = 2\n"
    result = make_engine(store, policy, local, cloud).run(
        Task(kind="email", brief=BRIEF, context=CONTACT))
    error, fallback = result.receipts
    assert (error.status, error.prompt_tokens, error.completion_tokens) == ("error", 100, 40)
    assert fallback.role == "cloud" and fallback.status == "ok"


def test_best_of_on_the_bulk_path_groups_each_tasks_candidates(store: Store) -> None:
    outputs = [BANNED, GOOD, GOOD, BANNED, BANNED, BANNED, BANNED, BANNED]
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=outputs, max_batch=8)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    policy = CASCADE.replace('"cascade"\n', '"local"\n') + "[local]\nbackend = \"llama\"\nbest_of = 2\n"
    engine = make_engine(store, policy, local, cloud)
    tasks = [Task(kind="email", brief=BRIEF, context={**CONTACT, "company": c}) for c in "ABC"]
    a, b, c = engine.run_many(tasks)
    assert local.batches[0] == 6  # three tasks, two candidates each, one batch
    assert not isinstance(a, BatonError) and not isinstance(b, BatonError)
    assert isinstance(c, GenerationError)  # both candidates, then both repair candidates, failed
    assert sorted((r.attempt, r.status) for r in engine.ledger.receipts(task_id=tasks[2].id)) == [
        (1, "guard_failed"), (2, "guard_failed")]


def test_a_base_models_second_attempt_is_shown_other_examples(store: Store) -> None:
    """A completion model cannot be told what failed; it is asked again with other examples,
    so a sentence it copied from the first attempt's examples is not in front of it again."""
    local, cloud = backends([BANNED, GOOD], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert result.receipt.attempt == 2
    first, second = (p.prefix for p in local.prompts)
    assert "thank you for your first order" in first
    assert "thank you for your first order" not in second and "Brief: " + BRIEF in second


def test_a_brief_without_numbers_asks_the_grammar_for_copy_without_digits(store: Store) -> None:
    from core.backends.base import api_schema

    local, cloud = backends([GOOD, GOOD], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    engine.run(Task(kind="email", brief="Thank them for their order: 10% off the next one",
                    context=CONTACT))
    assert local.schemas[0]["x-no-digits"] is True and "x-no-digits" not in local.schemas[1]
    assert "x-no-digits" not in api_schema(local.schemas[0])  # strict mode would refuse it


def test_a_second_attempt_may_sample_more_candidates(store: Store) -> None:
    outputs = [BANNED, BANNED, BANNED, BANNED, BANNED, GOOD]
    local = ScriptedBackend("llama", local=True, model="gemma", outputs=outputs, max_batch=8)
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini")
    policy = CASCADE.replace('"cascade"\n', '"local"\n') + \
        '[local]\nbackend = "llama"\nbest_of = 2\nbest_of_retry = 4\n'
    result = make_engine(store, policy, local, cloud).run(
        Task(kind="email", brief=BRIEF, context=CONTACT))
    assert local.batches == [] and result.receipt.attempt == 2  # the sixth passed
    assert [r.completion_tokens for r in result.receipts] == [
        2 * local.usage[1], 4 * local.usage[1]]
    assert len({p.seed for p in local.prompts}) == 6


def test_a_subject_and_preheader_are_one_line_and_say_so_in_the_schema(store: Store) -> None:
    out = json.dumps({"subject": "Hi {first_name}, the Rain Cover \n ", "preheader": " For\tany\n",
                      "body": "Hi {first_name}, thanks for your order."})
    local, cloud = backends([out], [])
    engine = make_engine(store, CASCADE.replace('"cascade"\n', '"local"\n'), local, cloud)
    result = engine.run(Task(kind="email", brief=BRIEF, context=CONTACT))
    assert result.output["subject"] == "Hi Maya, the Rain Cover"
    assert result.output["preheader"] == "For any"
    props = local.schemas[0]["properties"]
    assert props["subject"]["x-one-line"] and "x-one-line" not in props["body"]

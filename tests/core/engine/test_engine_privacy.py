"""The engine's side of privacy: one task's bug ends that task alone and tells no contact value;
errors and receipts name placeholders, not values; opted-out contacts get no marketing copy;
only merge fields are filled in; CRM braces never become placeholders."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from core.engine.engine import Engine, Result
from core.engine.ledger import Ledger
from core.errors import ConsentError, GenerationError, InternalError
from core.jobs.lifecycle import Jobs, NewJob
from core.jobs.runner import JobRunner
from core.policy import BrandVoice, parse_policy
from core.registry import Registry
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import EMAIL, CopyKind, Prompt, PromptStyle, Task, TaskKind
from tests.fakes.backends import ScriptedBackend

BRIEF = "Thank them for their order"

SECRET = "İstanbul Outdoor AŞ"
GOOD = json.dumps({"subject": "For {first_name}", "preheader": "p",
                   "body": "Hi {first_name}, thanks from all of us."})
MASKED = '[[routes]]\nname = "all"\naction = "cloud-masked"\n'


@dataclasses.dataclass(frozen=True)
class Fragile(CopyKind):
    """The email kind with a bug that quotes customer data in its exception."""

    def render(self, task: Task, context: Any, brief: str, brand: BrandVoice, style: PromptStyle,
               lead: str | None = None, variant: int = 0) -> Prompt:
        if task.context.get("company") == SECRET:
            raise KeyError(SECRET)
        return super().render(task, context, brief, brand, style, lead, variant)


def engine_with(store: Store, policy: str, local: list[str], cloud: list[str],
                kinds: Registry[TaskKind] | None = None) -> tuple[Engine, ScriptedBackend, ScriptedBackend]:
    lb = ScriptedBackend("llama", local=True, model="gemma", outputs=local)
    cb = ScriptedBackend("openai", local=False, model="gpt-4o-mini", style="chat", outputs=cloud)
    engine = Engine(parse_policy(policy), {"local": lb, "cloud": cb}, kinds or default_task_kinds(),
                    Ledger(store))
    return engine, lb, cb


def test_one_tasks_unexpected_failure_ends_that_task_alone(sqlite_store: Store) -> None:
    kinds: Registry[TaskKind] = Registry("task kind")
    kinds.register("email", Fragile(**{f.name: getattr(EMAIL, f.name)
                                       for f in dataclasses.fields(EMAIL)}))
    engine, _, _ = engine_with(sqlite_store, '[routing]\ndefault_action = "local"\n',
                               [GOOD] * 2, [], kinds)
    tasks = [Task(kind="email", brief=BRIEF, context={"first_name": "Ann", "company": c})
             for c in ("Acme", SECRET, "Globex")]
    outcomes = engine.run_many(tasks)
    assert isinstance(outcomes[0], Result) and isinstance(outcomes[2], Result)
    assert isinstance(outcomes[1], InternalError)
    assert "KeyError" in str(outcomes[1]) and "stanbul" not in str(outcomes[1])


def test_a_jobs_unexpected_failure_keeps_customer_data_out_of_its_error_and_the_log(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    jobs = Jobs(store)
    job_id = jobs.accept("t", [NewJob("1", "boom", "acme", {"company": SECRET})]).job_ids[0]

    def handler(job: Any) -> dict[str, Any]:
        raise KeyError(job.payload["company"])

    handlers: Registry[Any] = Registry("job kind")
    handlers.register("boom", handler)
    with caplog.at_level(logging.DEBUG):
        assert JobRunner(jobs, handlers, timedelta(seconds=30)).run(job_id) == "queued"
    job = jobs.get(job_id)
    assert job is not None and job.error is not None
    assert job.error.startswith("internal error (KeyError at ") and "stanbul" not in job.error
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "KeyError" in logged and "test_engine_privacy.py" in logged  # the stack is still there
    assert "stanbul" not in logged


def test_errors_and_receipts_name_placeholders_not_values(sqlite_store: Store) -> None:
    wrong = json.dumps({"subject": "s", "preheader": "p", "body": "Dear Maya Lindqvist, hello."})
    engine, _, _ = engine_with(sqlite_store, '[routing]\ndefault_action = "local"\n',
                               [wrong, wrong], [])
    contact = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net"}
    with pytest.raises(GenerationError) as caught:
        engine.run(Task(kind="email", brief=BRIEF, context=contact))
    assert "{first_name}" in str(caught.value)
    receipts = engine.ledger.receipts()
    text = str(caught.value) + json.dumps([[r.error, r.reasons] for r in receipts])
    assert "Maya" not in text and "Lindqvist" not in text


def test_opted_out_contacts_get_no_marketing_copy_and_no_model_call(sqlite_store: Store) -> None:
    reply = json.dumps({"body": "Hi {first_name}, " + "we are sending a new buckle today. " * 3})
    engine, local, cloud = engine_with(sqlite_store, MASKED, [], [reply, GOOD])
    for flag in ({"hs_email_optout": "true"}, {"HasOptedOutOfEmail": True},
                 {"Unsubscribed from all email": "Yes"}):
        for kind in ("email", "recommendation"):
            with pytest.raises(ConsentError, match="opted out of marketing email"):
                engine.run(Task(kind=kind, brief="Thank them", context={"first_name": "Ann", **flag,
                                                    "catalog": [{"sku": "A", "name": "Tent"}]}))
    assert local.prompts == [] and cloud.prompts == []
    assert engine.ledger.receipts() == []
    # a support reply is not marketing; a contact who did not opt out gets the email
    assert engine.run(Task(kind="reply", context={"first_name": "Ann", "hs_email_optout": "true"},
                           brief="My buckle broke")).output["body"].startswith("Hi Ann,")
    assert engine.run(Task(kind="email", brief=BRIEF, context={"first_name": "Ann",
                                                  "hs_email_optout": "false"})).output


def test_a_placeholder_is_filled_in_only_for_a_merge_field(sqlite_store: Store) -> None:
    leaky = json.dumps({"subject": "s", "preheader": "p",
                        "body": "Hi {first_name}, we have {email} and {phone} on file."})
    engine, _, _ = engine_with(sqlite_store, MASKED, [], [leaky, leaky])
    contact = {"first_name": "Ann", "email": "ann@x.com", "phone": "+1 415 555 0142"}
    with pytest.raises(GenerationError, match="unresolved {email}") as caught:
        engine.run(Task(kind="email", brief=BRIEF, context=contact))
    assert "ann@x.com" not in str(caught.value)


def test_a_confidential_field_is_never_filled_in_even_if_listed_as_a_merge_field(
        sqlite_store: Store) -> None:
    policy = MASKED + ('[privacy]\nconfidential_fields = ["deal_notes"]\n'
                       'merge_fields = ["first_name", "deal_notes"]\n')
    out = json.dumps({"subject": "s", "preheader": "p", "body": "Hi {first_name}, {deal_notes}"})
    engine, _, _ = engine_with(sqlite_store, policy, [], [out, out])
    with pytest.raises(GenerationError, match="unresolved {deal_notes}"):
        engine.run(Task(kind="email", brief=BRIEF,
                        context={"first_name": "Ann", "deal_notes": "walk-away 40k"}))


def test_braces_in_crm_data_never_become_placeholders(sqlite_store: Store) -> None:
    """A company named "{email}" is copied by the model as it is; it is never filled in."""
    engine, _, cloud = engine_with(sqlite_store, MASKED, [], [
        json.dumps({"subject": "s", "preheader": "p",
                    "body": "Hi {first_name}, greetings to everyone at ⦃email⦄ Corp."})])
    result = engine.run(Task(kind="email", brief=BRIEF, context={"first_name": "Ann", "email": "ann@x.com",
                                                    "company": "{email} Corp"}))
    sent = json.dumps([dict(m) for m in cloud.prompts[0].messages], ensure_ascii=False)
    assert "{email} Corp" not in sent and "⦃email⦄ Corp" in sent
    assert "ann@x.com" not in result.output["body"]


def test_the_receipt_counts_what_was_masked(sqlite_store: Store) -> None:
    engine, _, _ = engine_with(sqlite_store, MASKED, [], [GOOD])
    result = engine.run(Task(kind="email", context={
        "first_name": "Ann", "email": "ann@x.com", "notes": "Ann asked; reach ann@x.com or bo@y.org"},
        brief="Thank Ann"))
    assert result.receipt.masked == {"first_name": 3, "email": 3}
    assert engine.ledger.receipts()[0].masked == {"first_name": 3, "email": 3}



def test_the_repair_prompt_names_placeholders_not_values(sqlite_store: Store) -> None:
    """The guards check the restored output: their complaint went back to the cloud as it was
    ("lead: body must start with 'Hi Zorbath,'"; a link with the last name in it)."""
    wrong = json.dumps({"subject": "s", "preheader": "p",
                        "body": "Dear {first_name}, see https://evil.test/{last_name}"})
    engine, _, cloud = engine_with(sqlite_store, MASKED, [], [wrong, GOOD])
    result = engine.run(Task(kind="email", brief=BRIEF, context={"first_name": "Zorbath",
                                                    "last_name": "Quillfeather"}))
    assert result.output["body"].startswith("Hi Zorbath,")
    repair = json.dumps([dict(m) for m in cloud.prompts[1].messages])
    assert "failed these checks" in repair and "{first_name}" in repair
    assert "Zorbath" not in repair and "Quillfeather" not in repair

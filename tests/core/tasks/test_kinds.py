"""The recommendation and reply kinds: grounded in the catalog by grammar and by guard, greeted,
long enough; on the real model and, for the guard paths, on a scripted cloud backend."""

from __future__ import annotations

import json

import pytest

from core.backends.llama import LlamaPool
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.errors import GenerationError, InputError
from core.policy import parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task
from core.tasks.recommend import named
from tests.conftest import PLUMBING_QUESTION
from tests.core.backends.test_local_model import local_engine
from tests.fakes.backends import ScriptedBackend

CATALOG = [{"sku": "TP-200", "name": "Ridge trekking poles", "description": "Carbon, 3-section"},
           {"sku": "HB-2", "name": "Hydration bladder 2L"},
           {"sku": "RC-40", "name": "Rain cover 40L", "description": "Fits 35-45L packs"},
           {"sku": "SB-40", "name": "Summit 40L backpack"}]
CONTACT = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net",
           "purchases": ["Summit 40L backpack", "Trail socks x3"], "catalog": CATALOG}


@pytest.mark.model
@pytest.mark.parametrize("language", ["en", "ja"])
def test_local_recommendations_come_from_the_catalog_and_skip_what_was_bought(
        settings: Settings, llama_pool: LlamaPool, sqlite_store: Store, language: str) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    result = engine.run(Task(kind="recommendation", context=CONTACT, language=language,
                             brief="Suggest what to add to their next trip."))
    picks = named(result.output, CONTACT)
    assert 1 <= len(picks) <= 3
    assert {p["sku"] for p in picks} <= {"TP-200", "HB-2", "RC-40"}  # never SB-40: already owned
    assert all(p["reason"] for p in picks) and result.output["message"]
    assert result.receipt.role == "local" and not result.receipt.egress


@pytest.mark.model
def test_local_reply_is_greeted_and_says_something(settings: Settings, llama_pool: LlamaPool,
                                                  sqlite_store: Store) -> None:
    engine, _ = local_engine(settings, llama_pool, sqlite_store)
    result = engine.run(Task(kind="reply", context=CONTACT,
                             brief=PLUMBING_QUESTION))
    body = result.output["body"]
    assert body.startswith("Hi Maya,") and len(body) >= len("Hi Maya,") + 80
    assert body.endswith("— The Demo team")


def scripted(store: Store, *outputs: str) -> tuple[Engine, ScriptedBackend]:
    policy = parse_policy('[[routes]]\nname = "cloud"\naction = "cloud-masked"\n')
    local = ScriptedBackend("llama", local=True, model="gemma")
    cloud = ScriptedBackend("openai", local=False, model="gpt-4o-mini", style="chat",
                            outputs=list(outputs))
    return Engine(policy, {"local": local, "cloud": cloud}, default_task_kinds(), Ledger(store)), cloud


def pick(*products: str) -> str:
    return json.dumps({"picks": [{"product": p, "reason": "Because it fits the trip."} for p in products],
                       "message": "A good match for your pack."})


def test_a_cloud_pick_outside_the_catalog_is_repaired_or_refused(sqlite_store: Store) -> None:
    engine, cloud = scripted(sqlite_store, pick("Gold watch"), pick("Rain cover 40L"))
    result = engine.run(Task(kind="recommendation", context=CONTACT, brief="b"))
    assert named(result.output, CONTACT) == [{"sku": "RC-40", "name": "Rain cover 40L",
                                              "reason": "Because it fits the trip."}]
    schema = cloud.schemas[0]["properties"]["picks"]["items"]["properties"]["product"]
    assert schema["enum"] == ["Ridge trekking poles", "Hydration bladder 2L", "Rain cover 40L"]
    engine, _ = scripted(sqlite_store, pick("Summit 40L backpack"), pick("Rain cover 40L", "Rain cover 40L"))
    with pytest.raises(GenerationError) as failed:
        engine.run(Task(kind="recommendation", context=CONTACT, brief="b"))
    assert "is recommended twice" in str(failed.value)


@pytest.mark.parametrize(("context", "reason"), [
    ({"first_name": "Maya"}, "the catalog is empty"),
    ({**CONTACT, "purchases": [c["name"] for c in CATALOG]}, "already owns every catalog product"),
    ({"catalog": CATALOG}, "the contact is empty"),
])
def test_recommendations_need_a_catalog_and_a_contact(sqlite_store: Store, context: dict[str, object],
                                                      reason: str) -> None:
    engine, _ = scripted(sqlite_store)
    with pytest.raises(InputError, match=reason):
        engine.run(Task(kind="recommendation", context=context, brief="b"))

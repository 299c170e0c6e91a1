"""Shared fixtures: isolated settings, the real embedded model, stores on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.backends.llama import LlamaPool
from core.backends.model_file import assemble_embedded, embedded_model_info
from core.settings import Settings
from core.store import Store, open_store

PG_URL = os.environ.get("BATON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's BATON_* variables or home directory."""
    for key in list(os.environ):
        if key.startswith("BATON_") and key != "BATON_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded GGUF, assembled once per session exactly as Baton does on first use."""
    return assemble_embedded(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def model_sha256() -> str:
    return embedded_model_info()[1]


@pytest.fixture(scope="session")
def llama_pool() -> LlamaPool:
    """One loaded model for the whole session (loading is the slow part)."""
    return LlamaPool()


@pytest.fixture
def greedy_policy(tmp_path: Path) -> Path:
    """The embedded default policy: sampling seeds follow the task (kind, brief, contact), so a
    test gets the same output on every run (a base model sampled at 0.4 fails its checks now and
    then, and the engine reports that as it should)."""
    from core.policy import default_policy_text

    text = default_policy_text()
    assert "temperature = 0.4" in text and "best_of = 3" in text
    path = tmp_path / "baton-greedy.toml"
    path.write_text(text, encoding="utf-8")  # seeds follow the task: the same output every run
    return path


@pytest.fixture
def settings(tmp_path: Path, model_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_path=model_path)


@contextmanager
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema, dropped afterwards: (its name, a database URL that uses it)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema, PG_URL + f"?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the embedded SQLite default), then a fresh PostgreSQL schema's URL."""
    if request.param == "sqlite":
        yield None
        return
    with pg_schema() as (_, url):
        yield url


def _pg_store() -> Iterator[Store]:
    with pg_schema() as (_, url):
        store = open_store(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store, once on SQLite (WAL) and once on PostgreSQL."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
        yield s
        s.close()
    else:
        yield from _pg_store()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'baton.db'}")
    yield s
    s.close()


# The real model's plumbing tests (grammar, masking, KV cache, processes) need a generation
# that passes every guard on every run. Their brand shows one example per kind whose sentences
# come from the brief itself, so copying it is on-brief copy, not a leaked example (the copy
# checks have their own tests and bench/quality.py measures the built-in examples).
PLUMBING_BRIEF = ("Recommend the Rain Cover: it keeps a pack dry in any weather and packs small "
                  "when the sun is out.")
PLUMBING_QUESTION = "Where can I find the size chart for the Fleece Midlayer?"
def _example(kind: str, brief: str, output: dict[str, str]) -> str:
    """One [[brand.examples]] entry (TOML basic strings are JSON strings)."""
    fields = "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in output.items())
    return (f'[[brand.examples]]\nkind = "{kind}"\nbrief = {json.dumps(brief)}\n'
            f'contact = {{ first_name = "{{first_name}}" }}\n[brand.examples.output]\n{fields}')


PLUMBING_EXAMPLES = "\n" + _example("email", PLUMBING_BRIEF, {
    "subject": "{first_name}, the Rain Cover", "preheader": "For any weather",
    "body": "Hi {first_name},\n\nThe Rain Cover: it keeps a pack dry in any weather and packs "
            "small when the sun is out. Just ask."}) + "\n" + _example("reply", PLUMBING_QUESTION, {
    "body": "Hi {first_name},\n\nWhere can I find the size chart for the Fleece Midlayer? It is "
            "on its page, just below the photo, with each size we sell."})



# Under mutation testing (mutmut sets MUTANT_UNDER_TEST and stops at the first failing test),
# the quick unit tests of a module run before the slow end-to-end ones, so that a mutant one of
# them kills costs seconds rather than the whole connector suite. Order does not matter otherwise:
# every test stands alone.
_QUICK = ("tests/core/test_privacy.py", "tests/core/tasks/test_guards.py",
          "tests/core/tasks/test_copycheck.py", "tests/core/jobs/test_lifecycle.py",
          "tests/core/delivery/test_outbox.py", "tests/core/delivery/test_replies.py",
          "tests/core/test_retention.py", "tests/core/engine/test_routing.py", "tests/core/test_ids.py",
          "tests/core/test_policy.py", "tests/core/test_contacts.py", "tests/core/store/test_store.py",
          "tests/core/credentials/test_tokens.py", "tests/core/tasks/test_prompts.py",
          "tests/core/jobs/test_queue.py", "tests/connectors/test_signatures.py")
_SLOW = ("tests/connectors/", "tests/core/test_privacy_wire.py",
         "tests/core/delivery/test_replies_race.py", "tests/baton/")


def _speed(item: pytest.Item) -> tuple[int, bool]:
    path = item.nodeid.split("::", 1)[0]
    group = 0 if path in _QUICK else 2 if path.startswith(_SLOW) else 1
    return group, "[postgresql" in item.nodeid


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("MUTANT_UNDER_TEST"):
        items.sort(key=_speed)  # stable: the file order stays within each group

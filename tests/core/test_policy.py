from pathlib import Path

import pytest

from core.errors import ConfigError
from core.policy import load_policy, parse_policy
from core.settings import load_settings


def test_embedded_default_policy_is_valid() -> None:
    policy = load_policy(None)
    assert policy.local.backend == "llama"
    assert [r.action for r in policy.routes][:2] == ["local", "cloud-masked"]
    assert policy.costs.prices["gpt-4o"].input == 2.50


def test_unknown_key_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.whn: unknown key"):
        parse_policy('[[routes]]\nname = "x"\naction = "local"\nwhn = {}\n')


def test_wrong_action_names_path_and_expected_values() -> None:
    with pytest.raises(ConfigError) as err:
        parse_policy('[[routes]]\nname = "x"\naction = "clowd"\n')
    assert "routes[0].action" in str(err.value)
    assert "'cloud-masked'" in str(err.value) and "'clowd'" in str(err.value)


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]: a rule chooses by exactly one of "
                                          r"action, model or class \(got none\)"):
        parse_policy('[[routes]]\nname = "x"\n')


def test_malformed_toml_is_reported_with_source(tmp_path: Path) -> None:
    path = tmp_path / "baton.toml"
    path.write_text("[brand\nname = 1")
    with pytest.raises(ConfigError, match=r"baton.toml: not valid TOML"):
        load_policy(path)


def test_missing_policy_file() -> None:
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policy(Path("/nonexistent/baton.toml"))


def test_cloud_model_must_be_priced() -> None:
    with pytest.raises(ConfigError, match="cloud.model 'gpt-9' has no entry in costs.prices"):
        parse_policy('[cloud]\nbackend = "openai"\nmodel = "gpt-9"\n')


def test_negative_budget_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"budget\.monthly_usd: .*greater than or equal to 0"):
        parse_policy("[budget]\nmonthly_usd = -1\n")


def test_settings_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_LLAMA_THREADS", "two")
    with pytest.raises(ConfigError, match=r"BATON_LLAMA_THREADS: .*integer.*'two'"):
        load_settings()


def test_settings_sha256_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_MODEL_SHA256", "abc")
    with pytest.raises(ConfigError, match="BATON_MODEL_SHA256: .*64 lowercase hex"):
        load_settings()


def test_postgres_url_uses_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", "postgresql://u@db/baton")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u@db/baton"


def test_default_database_is_sqlite_under_data_dir(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DATA_DIR", str(tmp_path))
    assert load_settings().resolved_database_url == f"sqlite:///{tmp_path / 'baton.db'}"


def test_unknown_backend_is_named(tmp_path: Path) -> None:
    from baton.wiring import build_backends
    from core.settings import Settings

    policy = parse_policy('[local]\nbackend = "llamma"\n')
    with pytest.raises(ConfigError, match="embedded baton.toml: local.backend: unknown backend "
                                          "'llamma'; registered: llama, openai"):
        build_backends(Settings(data_dir=tmp_path), policy)


def test_sqlite_store_runs_in_wal_mode(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        tables = set(sa.inspect(conn).get_table_names())
    assert {"receipts", "alembic_version"} <= tables

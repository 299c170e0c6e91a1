"""The `baton` CLI, in-process through Click's runner and once as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from baton.cli import cli


@pytest.fixture
def env(tmp_path: Path, model_path: Path, model_sha256: str, greedy_policy: Path) -> dict[str, str]:
    return {"BATON_DATA_DIR": str(tmp_path / "data"), "BATON_MODEL_PATH": str(model_path),
            "BATON_MODEL_SHA256": model_sha256, "BATON_CONFIG": str(greedy_policy)}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.model
def test_generate_sample_contact_then_roi(env: dict[str, str]) -> None:
    result = run(env, "generate", "email")
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"subject", "preheader", "body"}
    assert "Maya" in output["subject"] + output["body"]
    assert "no data left the machine" in result.stderr
    roi = run(env, "roi")
    assert roi.exit_code == 0
    assert "email" in roi.stdout and "100%" in roi.stdout


@pytest.mark.model
def test_bulk_writes_one_line_per_contact_and_keeps_going(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("first_name,company,last_purchase\nAnn,Northwind,boots\n,,\n"
                        "Bo,Southwind,tent\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(env, "generate", "email", "--contacts", str(csv_file), "--out", str(out),
                 "--brief", "Invite them to the winter sale.")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"] for line in lines] == [1, 2, 3]
    assert "contact is empty" in lines[1]["error"]  # and the rows after it still run:
    for line, first in ((lines[0], "Ann"), (lines[2], "Bo")):  # written, or refused by the checks
        if "error" in line:
            assert "failed its checks" in line["error"], line
        else:
            assert line["output"]["body"].startswith(f"Hi {first},") and line["route"] == "cascade"
    written = sum("output" in line for line in lines)
    assert f"{written} of 3 written" in result.stderr


def test_route_explain_shows_every_reason(env: dict[str, str]) -> None:
    result = run(env, "route", "explain", "email", "--tier", "critical")
    assert result.exit_code == 0, result.stderr
    assert "critical copy with personal data: cloud, masked" in result.stdout
    assert "cloud is unavailable: not configured" in result.stdout
    assert "fallback to local" in result.stdout
    assert "sensitivity: pii" in result.stdout


def test_models_list_and_verify(env: dict[str, str]) -> None:
    listed = run(env, "models", "list")
    assert listed.exit_code == 0
    assert "llama" in listed.stdout and "openai" in listed.stdout
    verified = run(env, "models", "verify")
    assert "local: ok" in verified.stdout and "sha256" in verified.stdout
    assert "cloud: FAILED — not configured" in verified.stderr
    assert verified.exit_code == 1


def test_a_portfolio_is_listed_verified_and_explained(env: dict[str, str], tmp_path: Path) -> None:
    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as a:
        config = tmp_path / "portfolio.toml"
        config.write_text(f"""
[[routes]]
name = "japanese on the gpu"
when = {{ language = ["ja"] }}
model = "gpu"
fallback = ["mistral"]

[models.gpu]
backend = "openai"
model = "llama-3.1-8b-instruct"
replicas = ["{a.base_url}", "http://127.0.0.1:9/v1"]
privacy = "private"
usd_per_hour = 1.2
languages = ["ja"]

[models.mistral]
backend = "openai"
model = "mistral-large-latest"
base_url = "https://api.mistral.ai/v1"
key_env = "MISTRAL_API_KEY"
price = {{ input = 2.0, cached_input = 2.0, output = 6.0 }}
""", encoding="utf-8")
        portfolio = {**env, "BATON_CONFIG": str(config), "MISTRAL_API_KEY": "sk-m-secret",
                     "BATON_OPENAI_TIMEOUT": "2", "COLUMNS": "400"}
        listed = run(portfolio, "models", "list")
        assert listed.exit_code == 0, listed.stderr
        for text in ("gpu", "private", "external", "mistral", "$1.2/hour", "127.0.0.1:9",
                     "MISTRAL_API_KEY"):
            assert text in listed.stdout.replace("\n", " ") or text in listed.stdout, text
        assert "sk-m-secret" not in listed.stdout + listed.stderr
        # the built-in models' prices, as the ledger charges them (cells wrap only at spaces)
        assert "$0.15/$0.6" in listed.stdout  # cloud: gpt-4o-mini in costs.prices
        assert "$0.1/hour" in listed.stdout and "(costs.local_usd_per_hour)" in listed.stdout
        verified = CliRunner().invoke(cli, ["models", "verify"], env=portfolio)
        assert f"{a.base_url}: reachable" in verified.stderr
        assert "http://127.0.0.1:9/v1: unreachable" in verified.stderr
        assert verified.exit_code == 1
        explained = run(portfolio, "route", "explain", "email", "--language", "ja")
        assert explained.exit_code == 0, explained.stderr
        assert ("model: gpu (private, llama-3.1-8b-instruct, sees personal values)"
                in explained.stdout)
        assert ("if it fails: mistral (external, mistral-large-latest, sees placeholders, "
                "leaves your network)" in explained.stdout)
        assert "gpu: private: the data stays in your network" in explained.stdout
        unset = CliRunner().invoke(cli, ["models", "list"],
                                   env={**portfolio, "MISTRAL_API_KEY": ""})
        assert unset.exit_code == 1
        assert (f"{config}: models.mistral.key_env: the environment variable MISTRAL_API_KEY "
                "is not set") in unset.stderr


def test_db_upgrade(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "db", "upgrade")
    assert result.exit_code == 0
    assert (tmp_path / "data" / "baton.db").is_file()


@pytest.mark.parametrize(("args", "extra_env", "message"), [
    (["generate", "poem"], {}, "unknown task kind 'poem'; known: email, recommendation, reply, text"),
    (["generate", "email", "--language", "fr"], {}, "language 'fr' is not supported"),
    (["generate", "email", "--contacts", "x.csv"], {}, "--contacts needs --out"),
    (["generate", "email"], {"BATON_LLAMA_THREADS": "two"}, "BATON_LLAMA_THREADS"),
    (["generate", "email"], {"BATON_MODEL_PATH": "/nope/model.gguf"},
     "model file not found: /nope/model.gguf"),
    (["generate", "email"], {"BATON_MODEL_SHA256": "0" * 64}, "expected 000000"),
    (["roi", "--since", "yesterday"], {}, "expected YYYY-MM-DD or 'month'"),
    (["generate", "email"], {"BATON_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"},
     "cannot open the database"),
])
def test_expected_failures_are_one_line(env: dict[str, str], args: list[str],
                                        extra_env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(cli, args, env={**env, **extra_env})
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_bad_policy_and_contact_files(env: dict[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "baton.toml"
    policy.write_text('[[routes]]\nname = "x"\naction = "clowd"\n')
    result = CliRunner().invoke(cli, ["generate"], env={**env, "BATON_CONFIG": str(policy)})
    assert result.exit_code == 1 and "routes[0].action: expected one of" in result.stderr
    contact = tmp_path / "c.json"
    contact.write_text("{}")
    result = CliRunner().invoke(cli, ["generate", "--contact", str(contact)], env=env)
    assert result.exit_code == 1 and "the contact is empty" in result.stderr
    contact.write_text("{not json")
    result = CliRunner().invoke(cli, ["generate", "--contact", str(contact)], env=env)
    assert result.exit_code == 1 and "not valid JSON" in result.stderr


@pytest.mark.parametrize(("args", "contact", "message"), [
    (["--brief", ""], None, "the brief is empty; say what the email is about"),
    (["--brief", "   \n "], None, "the brief is empty"),
    (["--brief", "x" * 10_000], None, "the brief has 10,000 characters, more than 4,000"),
    ([], {"email": "ann@example.com", "company": "Acme"},
     "the contact has no first_name to greet ('Hi {first_name},'); add it to the record, or "
     "set [brand] fallback_greetings"),
    (["--language", "ja"], {"first_name": "花子", "email": "h@example.jp"},
     "the contact has no last_name to greet ('{last_name}様')"),
])
def test_bad_briefs_and_nameless_contacts_get_the_reason_and_no_made_up_greeting(
        env: dict[str, str], tmp_path: Path, args: list[str], contact: dict[str, str] | None,
        message: str) -> None:
    extra = []
    if contact is not None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(contact, ensure_ascii=False), encoding="utf-8")
        extra = ["--contact", str(path)]
    env = {k: v for k, v in env.items() if k != "BATON_CONFIG"}  # the embedded defaults
    result = CliRunner().invoke(cli, ["generate", "email", *args, *extra], env=env)
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing was generated


def test_real_entry_point_prints_no_traceback(env: dict[str, str]) -> None:
    baton = Path(sys.executable).with_name("baton")
    proc = subprocess.run([str(baton), "generate", "poem"], env={**env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: unknown task kind 'poem'; known: email, recommendation, reply, text"]


def test_a_bug_still_ends_in_one_line_and_a_crash_log(env: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    import baton.cli.common

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(baton.cli.common, "app", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["generate"], env=env)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error (RuntimeError)")
    log = next(tmp_path.glob("baton-crash-*.log")).read_text()
    assert "RuntimeError: boom" in log


def test_keys_and_jobs_commands(env: dict[str, str]) -> None:
    from core.credentials.apikeys import ApiKeys
    from core.jobs.lifecycle import Jobs, NewJob
    from core.settings import Settings
    from core.store import open_store

    made = run(env, "keys", "create", "--name", "zapier", "--tenant", "acme")
    assert made.exit_code == 0 and made.stdout.strip().startswith("bk_")
    assert "shown once" in made.stderr
    store = open_store(Settings(data_dir=Path(env["BATON_DATA_DIR"])).resolved_database_url)
    key = made.stdout.strip()
    assert ApiKeys(store).tenant_for(key) == "acme"
    [key_id] = [row.id for row in ApiKeys(store).list()]
    listed_keys = run(env, "keys", "list").stdout
    assert key_id in listed_keys and "zapier" in listed_keys and key not in listed_keys
    assert run(env, "keys", "revoke", key_id).exit_code == 0
    assert ApiKeys(store).tenant_for(key) is None  # refused from now on
    twice = CliRunner().invoke(cli, ["keys", "revoke", key_id], env=env)
    assert twice.exit_code == 1 and "no active key" in twice.stderr
    jobs = Jobs(store)
    job_id = jobs.accept("api", [NewJob(None, "task", "acme", {"kind": "email"})]).job_ids[0]
    jobs.claim(job_id, __import__("datetime").timedelta(seconds=30))
    jobs.fail(job_id, "contact not found", permanent=True)
    listed = run(env, "jobs", "list", "--state", "failed")
    assert job_id[:8] in listed.stdout and "failed" in listed.stdout
    shown = run(env, "jobs", "show", job_id)
    assert json.loads(shown.stdout)["error"] == "contact not found"
    assert run(env, "jobs", "retry", job_id).exit_code == 0
    again = CliRunner().invoke(cli, ["jobs", "retry", job_id], env=env)
    assert again.exit_code == 1 and "is not failed or dead" in again.stderr
    missing = CliRunner().invoke(cli, ["jobs", "show", "nope"], env=env)
    assert missing.exit_code == 1 and "no job nope" in missing.stderr
    assert "queued 0 dead job(s)" in run(env, "jobs", "retry-dead").stdout
    store.close()

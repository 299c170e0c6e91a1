"""``baton salesforce connect`` and ``check`` against the fake org, in-process through Click."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from baton.cli import cli
from tests.connectors.salesforce.conftest import APP
from tests.fakes.salesforce import FakeSalesforce


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    org = FakeSalesforce(app=APP)
    with org.mock():
        yield org


def run(tmp_path: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, ["salesforce", *args], catch_exceptions=False,
                              env={"BATON_DATA_DIR": str(tmp_path / "data"), **env})


def test_connect_then_check(tmp_path: Path, fake: FakeSalesforce) -> None:
    key = tmp_path / "baton.key"
    key.write_text(APP.private_pem)
    r = run(tmp_path, "connect", "--consumer-key", APP.consumer_key, "--username",
            "baton@integration.example", "--private-key-file", str(key))
    assert r.exit_code == 0, r.output
    assert f"org {fake.org_id[:15]} connected at {fake.instance}" in r.stdout
    assert fake.integration_user in r.stdout
    assert "BATON_SALESFORCE_ORG_IDS" in r.stderr  # not allowlisted yet: says what to do next
    assert "PRIVATE" not in r.output
    r = run(tmp_path, "check", BATON_SALESFORCE_ORG_IDS=fake.org_id)
    assert r.exit_code == 0, r.output
    assert "API calls used" in r.stdout and "in place and editable" in r.stdout


def test_check_names_what_an_admin_has_to_fix(tmp_path: Path, fake: FakeSalesforce) -> None:
    r = run(tmp_path, "check")
    assert r.exit_code == 1 and "no Salesforce org is connected" in r.stderr
    r = run(tmp_path, "connect", "--method", "client-credentials", "--consumer-key",
            APP.consumer_key, "--domain", fake.my_domain,
            BATON_SALESFORCE_CONSUMER_SECRET=APP.consumer_secret)
    assert r.exit_code == 0, r.output
    fake.task_key_external = False
    r = run(tmp_path, "check")
    assert r.exit_code == 1 and "Task.Baton_Job_Key__c: not an External ID" in r.stdout
    fake.task_key_external, fake.permission_set = True, False
    r = run(tmp_path, "check")
    assert r.exit_code == 1 and "assign the Baton_Integration permission set" in r.stdout
    fake.fields_deployed = False
    r = run(tmp_path, "check")
    assert r.exit_code == 1 and "Lead.Baton_Email_Body__c: missing" in r.stdout


def test_connect_without_what_the_flow_needs_is_one_line(tmp_path: Path, fake: FakeSalesforce) -> None:
    r = run(tmp_path, "connect", "--consumer-key", "k")
    assert r.exit_code == 1 and r.stderr.startswith("error: --method jwt needs")
    r = run(tmp_path, "connect", "--method", "client-credentials", "--consumer-key", "k",
            "--consumer-secret", "wrong", "--domain", fake.my_domain)
    assert r.exit_code == 1 and "invalid_client" in r.stderr and "Traceback" not in r.output

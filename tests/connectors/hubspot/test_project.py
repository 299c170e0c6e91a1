"""Baton as a HubSpot developer-platform project: rendered from the same manifests as the legacy
app, checked against HubSpot's documented required keys and, offline, with HubSpot's own project
parser (@hubspot/project-parsing-lib from the npm registry, run by Node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from baton.cli import cli
from connectors.hubspot.project import UID_RE, project_files
from manifests import load as load_manifest

CHECKER = Path(__file__).resolve().parents[2] / "hubspot_project"
BASE = "https://baton.example.com"


@pytest.fixture(scope="module")
def parser() -> Path:
    """HubSpot's project parser, installed from the lock file on first use."""
    if not (CHECKER / "node_modules" / "@hubspot" / "project-parsing-lib").exists():
        npm = shutil.which("npm")
        assert npm, "this test needs Node.js and npm (apt-get install nodejs npm)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CHECKER, check=True,
                       capture_output=True, timeout=600)
    return CHECKER / "check.mjs"


def check(parser: Path, project: Path) -> tuple[int, dict[str, Any]]:
    node = shutil.which("node")
    assert node, "this test needs Node.js"
    done = subprocess.run([node, str(parser), str(project)], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_the_rendered_project_parses_with_hubspots_own_parser(parser: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["hubspot", "project", "--base-url", BASE, "--out",
                                      str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    code, report = check(parser, tmp_path / "proj")
    assert code == 0 and report["problems"] == [], report
    assert report["components"] == {
        "baton_app": "APPLICATION", "baton_webhooks": "WEBHOOKS",
        "baton_email_action": "WORKFLOW_ACTION", "baton_recommend_action": "WORKFLOW_ACTION",
        "baton_reply_action": "WORKFLOW_ACTION"}


def test_the_parser_check_can_fail(parser: Path, tmp_path: Path) -> None:
    """A feature in the wrong folder and a uid HubSpot refuses are caught."""
    files = project_files(BASE)
    files["src/app/webhooks-hsmeta.json"] = files.pop("src/app/webhooks/webhooks-hsmeta.json")
    files["src/app/workflow-actions/email-hsmeta.json"]["uid"] = "baton email!"
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    code, report = check(parser, tmp_path)
    assert code == 1
    assert any("expected app/webhooks" in p for p in report["problems"])
    assert any("baton email!" in p for p in report["problems"])


def test_the_project_has_every_documented_required_key() -> None:
    files = project_files(BASE, distribution="private")
    assert {k: bool(v) for k, v in files["hsproject.json"].items()} == {
        "name": True, "srcDir": True, "platformVersion": True}
    app = files["src/app/app-hsmeta.json"]
    assert app["type"] == "app" and UID_RE.fullmatch(app["uid"])
    config = app["config"]
    assert config["name"] and config["description"] and config["distribution"] == "private"
    assert config["auth"]["type"] == "oauth"
    assert config["auth"]["redirectUrls"] == [f"{BASE}/hubspot/oauth/callback"]
    assert {"e-commerce", "automation", "crm.objects.contacts.write"} <= set(config["auth"]["requiredScopes"])
    hooks = files["src/app/webhooks/webhooks-hsmeta.json"]["config"]
    assert hooks["settings"]["targetUrl"] == f"{BASE}/hubspot/webhooks"
    assert hooks["settings"]["maxConcurrentRequests"] > 5
    assert {(s["subscriptionType"], s.get("objectType"), s.get("propertyName"))
            for s in hooks["subscriptions"]["crmObjects"]} == {
        ("object.creation", "contact", None), ("object.propertyChange", "contact", "baton_generate")}
    assert hooks["subscriptions"]["hubEvents"] == [
        {"subscriptionType": "contact.privacyDeletion", "active": True}]
    legacy = {d["actionUrl"]: d for d in load_manifest("hubspot", "actions", BASE)["actions"]}
    uids = set()
    for path, content in files.items():
        if "workflow-actions" not in path:
            continue
        config = content["config"]
        assert content["type"] == "workflow-action" and UID_RE.fullmatch(content["uid"])
        assert config["isPublished"] is True and "published" not in config
        assert config["supportedClients"] == [{"client": "WORKFLOWS"}]
        assert config["labels"]["en"]["actionName"]
        # the same inputs, outputs and rules as the legacy definition the routes check against
        same = legacy[config["actionUrl"]]
        for key in ("inputFields", "outputFields", "executionRules", "objectTypes"):
            assert config[key] == same[key]
        uids.add(content["uid"])
    assert len(uids) == 3


def test_a_base_url_that_is_not_one_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["hubspot", "project", "--base-url", "baton.example.com",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--base-url: expected the public base URL" in result.stderr

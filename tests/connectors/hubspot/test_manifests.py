"""The manifests are what gets installed in HubSpot: their URLs, inputs and outputs must be what the
routes serve. ``baton manifests render`` and ``baton hubspot setup`` against the fake HubSpot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import manifests
from baton.cli import cli
from tests.connectors.hubspot.conftest import PORTAL, SECRET, TOKEN, Hub, call
from tests.fakes.hubspot import FakeHubSpot


def test_rendered_action_definitions_match_the_routes_and_their_answers(hub: Hub, tmp_path: Path) -> None:
    written = manifests.render("https://baton.example.com/", tmp_path)
    assert tmp_path / "hubspot" / "actions.json" in written
    actions = json.loads((tmp_path / "hubspot" / "actions.json").read_text())["actions"]
    assert {a["actionUrl"] for a in actions} == {f"https://baton.example.com/hubspot/actions/{n}"
                                                 for n in ("email", "recommend", "reply")}
    app = hub.client.application
    adapter = app.url_map.bind("baton.example.com", url_scheme="https")
    for definition in actions:
        endpoint, args = adapter.match(definition["actionUrl"].split(".com", 1)[1], method="POST")
        assert endpoint == "platforms.platform" and args["name"] == "hubspot"
        action = args["route"].removeprefix("actions/")
        assert action in hub.connector.specs
        assert definition["objectTypes"] == ["CONTACT"]
        required = [f["typeDefinition"]["name"] for f in definition["inputFields"] if f["isRequired"]]
        for name in required:  # every required input is enforced by the route
            body = call(f"m-{action}-{name}")
            del body["inputFields"][name]
            r = hub.action(action, body)
            out = r.json["outputFields"]
            assert r.status_code == 200 and out["errorCode"] == "missing_input" and name in out["error"]
        fields = {f["typeDefinition"]["name"] for f in definition["outputFields"]}
        for rule in definition["executionRules"]:  # each rule reads real outputs and has a label
            assert set(rule["conditions"]) <= fields | {"hs_execution_state"}
            assert rule["labelName"] in definition["labels"]["en"]["executionRules"]
        # HubSpot takes the first rule that matches: every error code Baton answers has its own
        # rule before the catch-all FAIL_CONTINUE one, which comes last
        *coded, last = definition["executionRules"]
        assert last["conditions"] == {"hs_execution_state": "FAIL_CONTINUE"}
        assert all("errorCode" in rule["conditions"] for rule in coded)
        assert {"discarded", "expired", "stale", "opted_out"} <= {
            rule["conditions"]["errorCode"] for rule in coded}
    email = next(a for a in actions if a["actionUrl"].endswith("/email"))
    outputs = {f["typeDefinition"]["name"] for f in email["outputFields"]}
    answer = hub.action("email", call("m-ok"))
    assert set(answer.json["outputFields"]) - {"hs_execution_state"} == outputs
    app_manifest = json.loads((tmp_path / "hubspot" / "app.json").read_text())
    assert app_manifest["webhooks"]["targetUrl"] == "https://baton.example.com/hubspot/webhooks"
    assert adapter.match("/hubspot/webhooks", method="POST") == (
        "platforms.platform", {"name": "hubspot", "route": "webhooks"})
    callback = hub.client.get("/hubspot/oauth/callback")  # the redirect URL is a page Baton serves
    assert callback.status_code == 400 and "missing code" in callback.json["reason"]


def test_render_refuses_a_base_url_that_is_not_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["manifests", "render", "--base-url", "baton.example.com",
                                      "--out", str(tmp_path)], env={"BATON_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "--base-url: expected the public base URL" in result.stderr
    assert not list(tmp_path.glob("*/*.json"))


def test_setup_creates_properties_and_registers_the_app_once(tmp_path: Path) -> None:
    with FakeHubSpot(client_secret=SECRET, developer_key="dev-key") as fake:
        fake.private_app(PORTAL, TOKEN)
        env = {"BATON_DATA_DIR": str(tmp_path), "BATON_HUBSPOT_API_BASE": fake.url,
               "BATON_HUBSPOT_PORTAL_ID": str(PORTAL), "BATON_HUBSPOT_ACCESS_TOKEN": TOKEN,
               "BATON_HUBSPOT_DEVELOPER_API_KEY": "dev-key"}
        args = ["hubspot", "setup", "--app-id", "42", "--base-url", "https://baton.example.com"]
        first = CliRunner().invoke(cli, args, env=env)
        assert first.exit_code == 0, first.output
        props = fake.portal(PORTAL).properties
        assert {"baton_email_subject", "baton_email_body", "baton_recommendations",
                "baton_last_receipt", "baton_generate"} <= set(props)
        assert {p["groupName"] for p in props.values()} == {"baton"}
        assert fake.webhook_settings["targetUrl"] == "https://baton.example.com/hubspot/webhooks"
        assert {(s["eventType"], s.get("propertyName")) for s in fake.subscriptions} == {
            ("contact.creation", None), ("contact.propertyChange", "baton_generate"),
            ("contact.privacyDeletion", None)}
        assert len(fake.definitions) == 3
        assert all(d["published"] for d in fake.definitions)
        fake.definitions[0]["outputFields"] = []  # an older version of Baton's definition
        again = CliRunner().invoke(cli, args, env=env)
        assert again.exit_code == 0 and "already there" in again.output
        assert again.output.count("updated and published") == 3  # not skipped
        assert {d["revisionId"] for d in fake.definitions} == {"2"}
        assert any(f["typeDefinition"]["name"] == "errorCode"
                   for f in fake.definitions[0]["outputFields"])
        assert len(fake.subscriptions) == 3 and len(fake.definitions) == 3
        wrong = CliRunner().invoke(cli, args, env={**env, "BATON_HUBSPOT_DEVELOPER_API_KEY": "nope"})
        assert wrong.exit_code == 1 and "check the app id and the developer API key" in wrong.stderr


@pytest.mark.parametrize("args", [["hubspot", "setup"], ["hubspot", "install-url"]])
def test_setup_commands_say_what_is_missing(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, env={"BATON_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "BATON_HUBSPOT" in result.stderr or "--portal-id" in result.stderr

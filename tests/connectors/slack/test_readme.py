"""The README's Slack set-up, command by command, against the fakes: render the manifest, connect
the workspace, check it, and a /baton command answered in the channel."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from click.testing import CliRunner

from baton.cli import cli
from baton.wiring import build_services
from connectors.signatures import slack_v0
from core.settings import load_settings
from tests.connectors.hubspot.conftest import PORTAL, SECRET, TOKEN, seed
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.queue import drain
from tests.fakes.slack import FakeSlack
from webhooks.app import create_app

README = Path(__file__).parents[3] / "README.md"
TEAM = "T0123ABCD"


def readme_commands() -> list[list[str]]:
    """The ``baton`` commands of the README's *Slack* section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Slack\n"):text.index("\n## Connectors: one contract")]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.strip().split("  #")[0].strip()
            if line.startswith("baton "):
                commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.model
def test_the_readme_set_up_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["manifests", "render"], ["slack", "connect"],
                                         ["slack", "check"]]
    with FakeSlack() as slack, FakeHubSpot(client_secret=SECRET) as hubspot:
        ws = slack.add_workspace(TEAM)
        slack.add_channel(TEAM, "C1")
        hubspot.private_app(PORTAL, TOKEN)
        hubspot.create_baton_properties(PORTAL)
        seed(hubspot)
        policy = tmp_path / "baton.toml"
        policy.write_text(f'[slack.workspaces.{TEAM}]\ntenants = ["hubspot:{PORTAL}"]\n')
        env = {"BATON_DATA_DIR": str(tmp_path), "BATON_CONFIG": str(policy),
               "BATON_SLACK_SIGNING_SECRET": "readme-secret", "BATON_SLACK_API_URL": slack.api_url,
               "BATON_SLACK_RESPONSE_HOSTS": "127.0.0.1", "BATON_HUBSPOT_API_BASE": hubspot.url,
               "BATON_HUBSPOT_PORTAL_ID": str(PORTAL), "BATON_HUBSPOT_ACCESS_TOKEN": TOKEN,
               "BATON_HUBSPOT_CLIENT_SECRET": SECRET}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        runner = CliRunner()
        outputs = []
        for args in commands:
            args = [ws.token if a == "xoxb-..." else a for a in args]
            r = runner.invoke(cli, args, catch_exceptions=False)
            assert r.exit_code == 0, (args, r.output)
            outputs.append(r.output)
        manifest = yaml.safe_load((tmp_path / "manifests-out" / "slack" / "manifest.yml").read_text())
        assert manifest["settings"]["event_subscriptions"]["request_url"] == \
            "https://baton.example.com/slack/events"
        assert f"connected Slack workspace {TEAM}" in outputs[1]
        checked = json.loads(outputs[2].splitlines()[0])
        assert checked == {"workspace": TEAM, "tenants": [f"hubspot:{PORTAL}"], "ok": True,
                           "team": "Acme", "missing_scopes": []}

        services = build_services(load_settings(), immediate=False)
        try:
            client = create_app(services).test_client()
            body = urlencode({"team_id": TEAM, "channel_id": "C1", "user_id": "U1",
                              "command": "/baton", "text": "reply Where is my order?",
                              "response_url": slack.response_url(TEAM),
                              "trigger_id": slack.trigger()}).encode()
            ts = str(int(time.time()))
            r = client.post("/slack/events", data=body, content_type="application/x-www-form-urlencoded",
                            headers={"X-Slack-Request-Timestamp": ts,
                                     "X-Slack-Signature": slack_v0("readme-secret", ts, body)})
            assert r.status_code == 200 and "Working on it" in r.json["text"]
            [job] = services.jobs.list(limit=5)
            assert job.kind == "slack.command" and job.tenant == f"slack:{TEAM}"
            drain(services)  # a worker, with the embedded model
            [done] = services.jobs.list(limit=5)
            assert done.state == "done", done.error
            # the draft in the channel, or (the base model's copy failed its checks) the reason,
            # to the user only: never silence
            assert slack.posts("C1") or "couldn't write" in json.dumps(slack.responses)
        finally:
            services.store.close()

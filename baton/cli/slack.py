"""``baton slack``: connect one workspace with a bot token, and check the installed ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from baton.cli.common import cli, handle_errors
from baton.wiring import build_app, build_connectors
from connectors.slack.connector import SlackConnector
from core.settings import load_settings
from core.store import open_store


@cli.group()
def slack() -> None:
    """Connect Slack workspaces and check them."""


@contextmanager
def _connector() -> Iterator[SlackConnector]:
    settings = load_settings()
    store = open_store(settings.resolved_database_url)
    try:
        connectors = build_connectors(settings, store, lambda: build_app(settings))
        yield connectors.get("slack")  # type: ignore[misc]
    finally:
        store.close()


@slack.command("connect")
@click.option("--token", envvar="BATON_SLACK_BOT_TOKEN", required=True,
              help="The app's bot token (xoxb-..., OAuth & Permissions), or BATON_SLACK_BOT_TOKEN.")
@handle_errors
def slack_connect(token: str) -> None:
    """Install Baton in one workspace with its bot token: checked with auth.test, stored
    encrypted. (Apps installed in many workspaces use /slack/install instead.)"""
    with _connector() as connector:
        bot = connector.connect(token.strip())
    click.echo(f"connected Slack workspace {bot.team_id} ({bot.team_name}) as bot user "
               f"{bot.bot_user_id}")


@slack.command("check")
@handle_errors
def slack_check() -> None:
    """Every installed workspace: token good, scopes Baton needs, CRM tenants it may see."""
    with _connector() as connector:
        report = connector.check()
    if not report:
        click.echo("no Slack workspace is installed: run baton slack connect, or install through "
                   "/slack/install", err=True)
        raise SystemExit(1)
    for row in report:
        click.echo(json.dumps(row, ensure_ascii=False))
    if not all(r.get("ok") and not r.get("missing_scopes") and r.get("tenants") for r in report):
        raise SystemExit(1)

"""Baton's Slack app manifest (``manifest.yml``), rendered by ``baton manifests render``.

Paste it at api.slack.com/apps -> Create New App -> From an app manifest. One request URL serves
the slash command, the events and interactivity (``/slack/events``, through Bolt); the OAuth
redirect URL serves installs in many workspaces. Scopes, the command and the events are the
connector's own constants, so what Slack sends and what Bolt listens for cannot drift apart (a test
checks each against the registered listeners).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connectors.slack.bolt import EVENTS
from connectors.slack.settings import BOT_SCOPES

USAGE = "email <contact> [brief] | recommend <contact> | reply <question> | roi [month] | help"


def manifest(base_url: str, command: str = "/baton", name: str = "Baton") -> dict[str, Any]:
    events = f"{base_url}/slack/events"
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Emails, recommendations and replies drafted from your CRM",
            "long_description": (
                "Baton drafts personalized emails, product recommendations and support replies "
                "from your HubSpot or Salesforce records, on a local open model or a cloud model "
                "as your policy decides, and answers in the channel or thread. Every draft "
                "carries a receipt: which model wrote it, why, what it cost, and whether any "
                "customer data left your network."),
            "background_color": "#1f2a44",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [{"command": command, "url": events,
                                "description": "Draft copy from your CRM, or see its ROI",
                                "usage_hint": USAGE, "should_escape": True}],
        },
        "oauth_config": {
            "redirect_urls": [f"{base_url}/slack/oauth_redirect"],
            "scopes": {"bot": list(BOT_SCOPES)},
        },
        "settings": {
            "event_subscriptions": {"request_url": events, "bot_events": list(EVENTS)},
            "interactivity": {"is_enabled": True, "request_url": events},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def render(out: Path, base_url: str, command: str = "/baton") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "manifest.yml"
    target.write_text(yaml.safe_dump(manifest(base_url, command), sort_keys=False,
                                     allow_unicode=True, width=100), encoding="utf-8")
    return [target]

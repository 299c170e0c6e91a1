"""``baton hubspot setup``: what a portal and an app need before the first event.

In the portal (with its private-app or OAuth token): the "Baton" contact property group and the
properties Baton writes (and the ``baton_generate`` checkbox that triggers it). For the app (with
the developer API key): webhook settings and subscriptions, and the workflow action definitions,
all from ``manifests/hubspot`` rendered with the public base URL. Re-running it is safe: properties
and subscriptions that exist are left as they are; action definitions that exist (same
``actionUrl``) are updated to the manifest and published, so a new input, output or execution rule
reaches the portals. This is for legacy apps: an app on the developer platform (projects) defines
its features in its project files (``baton hubspot project``), and HubSpot refuses edits to them
through these APIs.
"""

from __future__ import annotations

from typing import Any

from hubspot import HubSpot

from connectors.errors import PlatformRejected
from connectors.hubspot.client import HubSpotClient, translate
from connectors.hubspot.crm import GROUP, PROPERTIES
from manifests import load as load_manifest


def create_properties(client: HubSpotClient) -> list[str]:
    """Create the property group and the properties; return what was created."""
    created = []
    groups = client.sdk.crm.properties.groups_api
    try:
        groups.create("contacts", {"name": GROUP, "label": "Baton", "displayOrder": -1})
        created.append(f"group {GROUP}")
    except PlatformRejected as exc:
        if exc.status != 409:
            raise
    existing = {p.name for p in client.sdk.crm.properties.core_api.get_all("contacts",
                                                                           archived=False).results}
    missing = [{"name": name, "label": label, "type": type_, "fieldType": field, "groupName": GROUP,
                "description": "Written by Baton" if name != "baton_generate"
                else "Tick to have Baton write a personalized email for this contact",
                **({"options": [{"label": "Yes", "value": "true", "displayOrder": 0},
                                {"label": "No", "value": "false", "displayOrder": 1}]}
                   if type_ == "bool" else {})}
               for name, (label, type_, field) in PROPERTIES.items() if name not in existing]
    if missing:
        client.sdk.crm.properties.batch_api.create("contacts", {"inputs": missing})
        created += [f"property {p['name']}" for p in missing]
    return created


def register_app(*, app_id: int, developer_key: str, base_url: str, api_base: str) -> list[str]:
    """Webhook settings and subscriptions and the action definitions of the app ``app_id``."""
    sdk = HubSpot(api_key=developer_key, host=api_base.rstrip("/"))
    app = load_manifest("hubspot", "app", base_url)
    done = []
    hooks = app["webhooks"]
    _translated(sdk.webhooks.settings_api.configure, app_id,
                {"targetUrl": hooks["targetUrl"], "throttling": hooks["throttling"]})
    done.append(f"webhook target {hooks['targetUrl']}")
    have = {(s.event_type, s.property_name)
            for s in _translated(sdk.webhooks.subscriptions_api.get_all, app_id).results or []}
    for sub in hooks["subscriptions"]:
        if (sub["eventType"], sub.get("propertyName")) not in have:
            _translated(sdk.webhooks.subscriptions_api.create, app_id, sub)
            done.append(f"subscription {sub['eventType']} {sub.get('propertyName', '')}".strip())
    definitions = sdk.automation.actions.definitions_api
    existing = {d.action_url: d.id for d in _translated(definitions.get_page, app_id).results or []}
    for definition in load_manifest("hubspot", "actions", base_url)["actions"]:
        url = definition["actionUrl"]
        if url not in existing:
            _translated(definitions.create, app_id, {**definition, "published": True})
            done.append(f"workflow action {url}")
            continue
        patch = {k: v for k, v in definition.items() if k in PATCHABLE}
        _translated(definitions.update, existing[url], app_id, {**patch, "published": True})
        done.append(f"workflow action {url} updated and published")
    return done


# What a definition update (PublicActionDefinitionPatch) may carry
PATCHABLE = frozenset({"actionUrl", "executionRules", "inputFieldDependencies", "inputFields",
                       "labels", "objectRequestOptions", "objectTypes", "outputFields", "published"})


def _translated(method: Any, *args: Any) -> Any:
    try:
        return method(*args)
    except Exception as exc:
        raise translate(exc, f"{getattr(method, '__name__', 'a call')} for the app",
                        hint="check the app id and the developer API key") from None

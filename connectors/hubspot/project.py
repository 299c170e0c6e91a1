"""Baton as a HubSpot developer-platform project (platform 2025.2): ``hsproject.json``, the app's
``app-hsmeta.json``, one webhooks feature and one workflow-action feature per action, rendered
from the same manifests (``manifests/hubspot``) that the routes and ``baton hubspot setup`` read,
so the project and the legacy app cannot drift apart. Upload the folder with ``hs project upload``.

A project app's features are defined only here: HubSpot refuses edits to them through the v4
definitions API that ``baton hubspot setup`` uses for legacy apps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from manifests import check_base_url
from manifests import load as load_manifest

PLATFORM_VERSION = "2025.2"
UID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
TRIGGER = "baton_generate"


def project_files(base_url: str, *, distribution: str = "marketplace") -> dict[str, Any]:
    """Relative path -> JSON content of every file of the project."""
    base_url = check_base_url(base_url)
    app = load_manifest("hubspot", "app", base_url)
    actions = load_manifest("hubspot", "actions", base_url)["actions"]
    files: dict[str, Any] = {
        "hsproject.json": {"name": "baton", "srcDir": "src", "platformVersion": PLATFORM_VERSION},
        "src/app/app-hsmeta.json": {"uid": "baton_app", "type": "app", "config": {
            "name": app["name"], "description": app["description"], "distribution": distribution,
            "auth": {"type": "oauth", "redirectUrls": app["auth"]["redirectUrls"],
                     # the same scopes the install URL asks for (BATON_HUBSPOT_SCOPES)
                     "requiredScopes": app["auth"]["requiredScopes"],
                     "optionalScopes": [], "conditionallyRequiredScopes": []},
            "permittedUrls": {"fetch": [base_url], "iframe": [], "img": []},
        }},
        "src/app/webhooks/webhooks-hsmeta.json": {"uid": "baton_webhooks", "type": "webhooks",
                                                  "config": {
            "settings": {"targetUrl": app["webhooks"]["targetUrl"],
                         "maxConcurrentRequests": app["webhooks"]["throttling"]["maxConcurrentRequests"]},
            "subscriptions": {
                # the 2025.2 platform's generic events (Baton reads them as contact.*)
                "crmObjects": [
                    {"subscriptionType": "object.creation", "objectType": "contact", "active": True},
                    {"subscriptionType": "object.propertyChange", "objectType": "contact",
                     "propertyName": TRIGGER, "active": True}],
                "legacyCrmObjects": [],
                "hubEvents": [{"subscriptionType": "contact.privacyDeletion", "active": True}],
            }}},
    }
    for definition in actions:
        name = definition["actionUrl"].rsplit("/", 1)[-1]
        config = {k: v for k, v in definition.items() if k not in ("published", "functions")}
        config |= {"isPublished": True, "supportedClients": [{"client": "WORKFLOWS"}]}
        files[f"src/app/workflow-actions/{name}-hsmeta.json"] = {
            "uid": f"baton_{name}_action", "type": "workflow-action", "config": config}
    return files


def render_project(base_url: str, out: Path, *, distribution: str = "marketplace") -> list[Path]:
    """Write the project under ``out``; return the files written."""
    written = []
    for relative, content in project_files(base_url, distribution=distribution).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written

"""Context from the CRM and results back into it.

Context: the contact's configured properties (one call, which also returns its company and deal
ids), the primary company (batch read), the deals and their line items as purchase history (one
association batch read and two batch reads): at most five calls per contact, whatever its history.

Write-back: contact properties in the "Baton" group and a note associated with the contact that
carries the receipt id and the job's idempotency token. Both go through the outbox: a retried job
finds its note (by the token) instead of creating a second one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from connectors.hubspot.client import HubSpotClient
from core.contacts import canonical
from core.delivery.outbox import Outbox, target_key, write_key
from core.store import JobRow
from core.tasks.prompts import base_language

GROUP = "baton"
PROPERTIES = {  # name -> (label, HubSpot type, field type)
    "baton_email_subject": ("Baton email subject", "string", "text"),
    "baton_email_body": ("Baton email body", "string", "textarea"),
    "baton_recommendations": ("Baton recommendations", "string", "textarea"),
    "baton_reply": ("Baton reply", "string", "textarea"),
    "baton_last_receipt": ("Baton last receipt", "string", "text"),
    "baton_generated_at": ("Baton generated at", "datetime", "date"),
    "baton_generate": ("Generate with Baton", "bool", "booleancheckbox"),
}

MAX_PURCHASES = 10
# HubSpot's search finds a new note only after a while: a retry looks this long after the
# previous attempt before it writes the note again
SEARCH_SETTLE = timedelta(seconds=30)


def fetch_context(client: HubSpotClient, contact_id: str, properties: list[str],
                  consent: tuple[str, ...] = ("hs_email_optout",)
                  ) -> tuple[dict[str, Any], str | None]:
    """The contact as the engine's context, in the canonical vocabulary of
    :mod:`core.contacts` (with its ``consent`` properties, always read: "Unsubscribed from all
    email" and any subscription type's opt-out), and its language (``hs_language``) if it has
    one."""
    props, links = client.contact(contact_id, sorted({*properties, *consent, "hs_language"}))
    context: dict[str, Any] = canonical({k: v for k, v in props.items()
                                         if k in properties or k in consent})
    if links.get("companies"):
        companies = client.read("companies", links["companies"][:1], ["name", "industry", "domain"])
        if companies:
            context["company"] = companies[0].get("name", context.get("company", ""))
            if companies[0].get("industry"):
                context.setdefault("industry", companies[0]["industry"])
    deals = links.get("deals", [])[:20]
    if deals:
        items = client.associated("deals", "line_items", deals)
        item_ids = [i for d in deals for i in items.get(d, [])][:50]
        bought = client.read("line_items", item_ids, ["name", "quantity", "hs_sku", "createdate"]) \
            if item_ids else []
        bought.sort(key=lambda b: b.get("createdate", ""), reverse=True)  # newest first
        context["purchases"] = [_purchase(b) for b in bought[:MAX_PURCHASES]]
        if bought:  # the field the prompt examples (and brands' own) use for the latest purchase
            context.setdefault("last_purchase", bought[0].get("name", ""))
    language = base_language(props.get("hs_language") or "") or None
    return context, language


def _purchase(item: dict[str, str]) -> str:
    qty = item.get("quantity", "")
    return f"{item.get('name', 'item')}{f' x{qty}' if qty and qty not in ('1', '1.0') else ''}"


def note_html(text: str) -> str:
    """A note body as HubSpot shows it: HTML. Model text is escaped (a ``<script>`` or a
    ``<a href>`` in generated copy stays text) and its line breaks are kept."""
    return "<br>".join(html.escape(line) for line in text.split("\n"))


@dataclass(frozen=True)
class Result:
    """What a job writes back: property values and the note's text."""

    properties: dict[str, str]
    note: str
    receipt_id: str


def write_back(client: HubSpotClient, outbox: Outbox, *, job: JobRow, contact_id: str,
               result: Result) -> dict[str, Any]:
    """Properties, then the note, each once per job however often the job runs."""
    token = f"baton-{job.id}"
    outbox.once(write_key(job, "properties"), job_id=job.id,
                target=target_key(job.tenant, "contact", contact_id),
                perform=lambda: client.update_contact(contact_id, result.properties),
                find=lambda: None)  # a PATCH of the same values is harmless to repeat

    def create() -> dict[str, Any]:
        text = f"{result.note}\n\nBaton receipt {result.receipt_id} ({token})"
        return {"note_id": client.create_note(contact_id, note_html(text))}

    def find() -> dict[str, Any] | None:
        found = client.find_note(token)
        return {"note_id": found} if found else None

    note = outbox.once(write_key(job, "note"), job_id=job.id,
                       target=target_key(job.tenant, "note", contact_id), perform=create, find=find,
                       settle=SEARCH_SETTLE)
    return {"contact_id": contact_id, "note_id": note.get("note_id")}

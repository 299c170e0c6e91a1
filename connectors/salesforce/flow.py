"""``POST /salesforce/actions/<action>``: a Flow (HTTP Callout or the External Service ``Baton``)
or an Apex callout asks for an email, product recommendations or a support reply for one record.

Authentication: a Baton API key (``baton keys create --name salesforce --tenant <org id>``), sent
by the Named Credential as ``Authorization: Bearer <key>``. When the key's tenant is a connected
org, the Flow may send only the ``recordId``: Baton reads the record (its configured fields, its
Account, its purchases; a recommendation's catalog from the standard price book), and with
``"writeBack": true`` writes the results to the record's Baton fields and a completed Task
itself, so the Flow needs no Update Records element. Otherwise the Flow sends the fields it has.
Deduped on ``requestId``. Answered with the outputs if the job is done within
``BATON_SALESFORCE_SYNC_BUDGET``, else 202 with the task's poll URL; a generation Baton cannot
produce (the contact opted out, the checks failed, the record is gone) is a 422 with the reason,
so the Flow takes its fault path.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.contacts import canonical
from core.tasks.kinds import TONES

ACTION = "salesforce.action"
PREFIXES = {"00Q": "Lead", "003": "Contact", "001": "Account"}  # record id prefix -> sObject
ORG_ID = re.compile(r"00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")

Scalar = str | int | float | bool | None


class CatalogItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=500)


class FlowAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recordId: str = Field(min_length=15, max_length=18, pattern=r"^[A-Za-z0-9]+$")
    fields: dict[str, Scalar] = Field(default_factory=dict, max_length=100)
    brief: str = Field(default="", max_length=4000)
    tone: str | None = Field(default=None, json_schema_extra={"enum": [*TONES, None]})
    tier: Literal["routine", "critical"] = "routine"
    language: str = Field(default="en", max_length=8)
    requestId: str | None = Field(default=None, min_length=1, max_length=200)
    purchases: list[str] = Field(default_factory=list, max_length=100)
    catalog: list[CatalogItem] = Field(default_factory=list, max_length=200)
    writeBack: bool = Field(default=False, description="Baton writes the results to the record's "
                            "Baton fields and a completed Task (the key's tenant must be a "
                            "connected org)")

    @field_validator("tone")
    @classmethod
    def _known_tone(cls, tone: str | None) -> str | None:
        if tone is not None and tone not in TONES:
            raise ValueError(f"expected one of {', '.join(TONES)}")
        return tone


class FlowResult(BaseModel):
    state: str
    job_id: str
    recordId: str
    subject: str | None = None
    body: str | None = None
    recommendations: str | None = None
    receipt_id: str | None = None
    route: str | None = None
    written: bool | None = None
    poll_url: str | None = None
    error: str | None = None
    reason: str | None = None


def body_context(fields: dict[str, Any], purchases: list[str],
                 catalog: list[dict[str, Any]]) -> dict[str, Any]:
    """The fields the Flow sent, in the canonical vocabulary (``MailingPostalCode`` ->
    ``postal_code``, ``HasOptedOutOfEmail`` -> ``email_opt_out``); unknown fields are kept."""
    context: dict[str, Any] = canonical({k: v for k, v in fields.items() if v not in (None, "")})
    if purchases:
        context["purchases"] = purchases
    if catalog:
        context["catalog"] = catalog
    return context


def is_org(tenant: str) -> bool:
    return ORG_ID.fullmatch(tenant) is not None

"""HubSpot routes. Webhook deliveries (batches of up to 100 events) are verified, recorded in the
inbox, deduped on (portalId, subscriptionId, eventId) and acked; step 3 adds the connector that
processes them and the workflow-action routes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from core.jobs import NewJob
from webhooks.common import json_body, original_url, raw_body, record, services
from webhooks.errors import BadRequest, Unauthorized
from webhooks.signatures import SignatureError, verify_hubspot

blueprint = Blueprint("hubspot", __name__)
MAX_EVENTS = 1000


def verify() -> None:
    svc = services()
    try:
        verify_hubspot(secrets=svc.settings.secrets_of(svc.settings.hubspot_client_secret),
                       method=request.method, uri=original_url(), body=raw_body(),
                       headers=dict(request.headers), now=svc.clock())
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from None


def _event(i: int, event: Any) -> NewJob:
    if not isinstance(event, dict):
        raise BadRequest(f"event {i}: expected an object")
    for key in ("eventId", "portalId", "objectId"):
        if not isinstance(event.get(key), int) or isinstance(event.get(key), bool):
            raise BadRequest(f"event {i}: {key} must be an integer")
    kind = event.get("subscriptionType", event.get("eventType"))
    if not isinstance(kind, str) or not kind:
        raise BadRequest(f"event {i}: subscriptionType (or eventType) must be a string")
    sub = event.get("subscriptionId", "")
    return NewJob(external_id=f"{event['portalId']}:{sub}:{event['eventId']}",
                  kind="hubspot.event", tenant=f"hubspot:{event['portalId']}", payload=event)


@blueprint.post("/hubspot/webhooks")
def webhooks() -> tuple[Response, int]:
    verify()
    events = json_body()
    if not isinstance(events, list):
        raise BadRequest("expected a JSON array of events")
    if not events or len(events) > MAX_EVENTS:
        raise BadRequest(f"expected 1 to {MAX_EVENTS} events, got {len(events)}")
    accepted = record("hubspot", [_event(i, e) for i, e in enumerate(events)])
    return jsonify(accepted=len(accepted.new), duplicates=sum(accepted.duplicate)), 200

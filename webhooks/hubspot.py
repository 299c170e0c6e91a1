"""HubSpot routes.

* ``POST /hubspot/webhooks``: deliveries (batches of up to 100 events) are verified, recorded in the
  inbox, deduped on (portalId, subscriptionId, eventId) and acked; ``hubspot.event`` jobs follow.
* ``POST /hubspot/actions/<action>``: a custom workflow action. Verified (v3 when its headers are
  there, else v2), checked against the installed definition, deduped on the callbackId; answered
  with the outputs if the job is done within the sync budget, else with ``BLOCK`` (the worker
  completes the callback). Client mistakes are 4xx; only transient trouble is a 5xx.
* ``GET /hubspot/install`` and ``GET /hubspot/oauth/callback``: the OAuth app flow.
"""

from __future__ import annotations

import logging
import time
from html import escape
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from connectors.errors import ConnectorError
from connectors.hubspot.connector import (
    ActionRefused,
    HubSpotConnector,
    check_content,
    event_kind,
    parse_action,
)
from connectors.hubspot.setup import create_properties
from core.errors import ConfigError, InputError
from core.jobs.lifecycle import NewJob
from core.tasks.prompts import LANGUAGES
from webhooks.common import json_body, original_url, raw_body, record, services
from webhooks.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized
from webhooks.signatures import SignatureError, verify_hubspot

blueprint = Blueprint("hubspot", __name__)
log = logging.getLogger("baton.hubspot")
MAX_EVENTS = 1000


def verify() -> None:
    svc = services()
    try:
        verify_hubspot(secrets=svc.settings.secrets_of(svc.settings.hubspot_client_secret),
                       method=request.method, uri=original_url(), body=raw_body(),
                       headers=request.headers, now=svc.clock())
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from None


def _event(i: int, event: Any) -> NewJob:
    if not isinstance(event, dict):
        raise BadRequest(f"event {i}: expected an object")
    for key in ("eventId", "portalId", "objectId"):
        if not isinstance(event.get(key), int) or isinstance(event.get(key), bool):
            raise BadRequest(f"event {i}: {key} must be an integer")
    kind = event.get("subscriptionType") or event.get("eventType")
    if not isinstance(kind, str) or not kind:
        raise BadRequest(f"event {i}: subscriptionType (or eventType) must be a string")
    sub = event.get("subscriptionId", "")
    subject = f"contact:{event['objectId']}" if event_kind(event).startswith("contact.") else None
    return NewJob(external_id=f"{event['portalId']}:{sub}:{event['eventId']}",
                  kind="hubspot.event", tenant=f"hubspot:{event['portalId']}", payload=event,
                  subject=subject)


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


def connector() -> HubSpotConnector:
    found = services().hubspot
    if found is None:
        raise NotFound("the HubSpot connector is not enabled in this process")
    return found


POLL = 0.05


@blueprint.post("/hubspot/actions/<action>")
def action(action: str) -> tuple[Response, int]:
    verify()
    hubspot = connector()
    spec = hubspot.specs.get(action)
    if spec is None:
        raise NotFound(f"unknown action {action!r}; known: {', '.join(sorted(hubspot.specs))}")
    try:
        call = parse_action(spec, json_body())
    except InputError as exc:
        raise BadRequest(str(exc)) from None
    if not hubspot.auth.installed(call.portal):  # signed by HubSpot: say why in the workflow
        return jsonify(outputFields=ActionRefused(
            "not_connected", f"HubSpot portal {call.portal} is not connected to this Baton; "
            "reinstall the app (or set BATON_HUBSPOT_PORTAL_ID and its token)").outputs()), 200
    try:  # HubSpot shows no reason for a 4xx: content it sent us is answered in the workflow
        call = check_content(spec, call, LANGUAGES)
    except ActionRefused as refused:
        return jsonify(outputFields=refused.outputs()), 200
    replies = hubspot.replies
    # The reply row exists before the job can run, so the worker always finds it.
    replies.open(call.reply_key, platform="hubspot", account=str(call.portal))
    record("hubspot", [NewJob(
        external_id=f"action:{call.portal}:{call.callback_id}", kind="hubspot.action",
        tenant=f"hubspot:{call.portal}",
        payload={"action": action, "portal": call.portal, "object_id": call.object_id,
                 "object_type": call.object_type, "inputs": call.inputs,
                 "callback_id": call.callback_id, "reply_key": call.reply_key},
        subject=f"{call.object_type.lower()}:{call.object_id}")])
    with services().sync_waits.slot() as may_wait:
        deadline = time.monotonic() + (hubspot.settings.hubspot_sync_budget if may_wait else 0)
        row = replies.get(call.reply_key)
        while row is not None and row.reply is None and time.monotonic() < deadline:
            time.sleep(POLL)
            row = replies.get(call.reply_key)
    if row is not None and row.reply is None:
        row = replies.give_up(call.reply_key)
    if row is None:
        raise ServiceUnavailable("the action's reply row is missing; retry")
    if row.reply == "sync":
        return jsonify(outputFields=row.outputs), 200
    return jsonify(outputFields={"hs_execution_state": "BLOCK",
                                 "hs_expiration_duration": hubspot.settings.hubspot_block_expiration}), 200


@blueprint.get("/hubspot/install")
def install() -> BaseResponse:
    try:
        return redirect(connector().auth.install_url(), code=302)
    except ConfigError as exc:
        raise NotFound(str(exc)) from None


@blueprint.get("/hubspot/oauth/callback")
def oauth_callback() -> tuple[str, int]:
    auth = connector().auth
    code, state = request.args.get("code", ""), request.args.get("state", "")
    if request.args.get("error"):
        raise BadRequest(f"HubSpot said: {request.args.get('error_description') or request.args['error']}")
    try:
        if not code or not auth.check_state(state):
            raise BadRequest("missing code or stale state; start again from /hubspot/install")
        portal = auth.connect(code)
    except ConfigError as exc:
        raise NotFound(str(exc)) from None
    except ConnectorError as exc:
        raise BadRequest(str(exc)) from None
    try:  # the properties Baton writes, in the portal that just installed it
        create_properties(auth.client(portal))
        ready = "Its Baton contact properties are in place."
    except ConnectorError as exc:
        log.warning("could not create the Baton properties", extra={"portal": portal,
                                                                   "error": str(exc)[:200]})
        ready = (f"But its Baton contact properties could not be created ({escape(str(exc))}); "
                 "run <code>baton hubspot setup</code> for this portal.")
    return (f"<!doctype html><title>Baton connected</title><p>HubSpot portal {escape(str(portal))} "
            f"is connected to Baton. {ready} You can close this tab.</p>"), 200

"""Slack's single request URL for events, slash commands and interactivity.

The v0 signature over the raw body is checked first (401 on failure). URL verification is
answered with its challenge. Event callbacks are deduped on ``event_id`` (Slack retries after 3 s
even while the first delivery is still running), slash commands on ``trigger_id``, interactions
on their ``trigger_id`` or action timestamp; each becomes a job and Slack gets its 200 at once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, jsonify, request

from connectors.http import BadRequest, Unauthorized, UnsupportedMediaType
from connectors.signatures import SignatureError, verify_slack
from core.jobs.lifecycle import NewJob
from webhooks.common import json_body, raw_body, record, services

blueprint = Blueprint("slack", __name__)


def _verify() -> None:
    svc = services()
    try:
        verify_slack(secrets=svc.settings.secrets_of(svc.settings.slack_signing_secret),
                     body=raw_body(), headers=request.headers, now=svc.clock())
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from None


def _form() -> dict[str, str]:
    try:
        fields = parse_qs(raw_body().decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed form body: {exc}") from None
    return {k: v[0] for k, v in fields.items()}


def _event(envelope: dict[str, Any]) -> Response:
    event_id, team = envelope.get("event_id"), envelope.get("team_id")
    event = envelope.get("event")
    if not isinstance(event_id, str) or not isinstance(team, str) or not isinstance(event, dict):
        raise BadRequest("event_callback needs event_id, team_id and event")
    record("slack", [NewJob(external_id=f"event:{event_id}", kind="slack.event",
                            tenant=f"slack:{team}", payload=envelope)])
    return Response(status=200)


@blueprint.post("/slack/events")
def events() -> Response:
    _verify()
    if request.mimetype == "application/json":
        envelope = json_body()
        if not isinstance(envelope, dict):
            raise BadRequest("expected a JSON object")
        if envelope.get("type") == "url_verification":
            challenge = envelope.get("challenge")
            if not isinstance(challenge, str):
                raise BadRequest("url_verification without a challenge")
            return jsonify(challenge=challenge)
        if envelope.get("type") == "event_callback":
            return _event(envelope)
        raise BadRequest(f"unsupported event envelope type {str(envelope.get('type'))[:40]!r}")
    if request.mimetype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(f"expected JSON or a form, got {request.mimetype or 'none'}")
    form = _form()
    if form.get("ssl_check") == "1":
        return Response(status=200)
    if "payload" in form:  # interactivity: buttons, menus, modals
        try:
            payload = json.loads(form["payload"])
        except json.JSONDecodeError as exc:
            raise BadRequest(f"malformed interactivity payload: {exc.msg}") from None
        except RecursionError:
            raise BadRequest("interactivity payload nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise BadRequest(f"unreadable interactivity payload: {str(exc)[:120]}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("team"), dict):
            raise BadRequest("interactivity payload needs a team")
        team = str(payload["team"].get("id", ""))
        # Without a trigger_id (view_closed, some message actions) an interaction is the same
        # one when its team, view and actions are: never one key for all of them.
        view: dict[str, Any] = payload["view"] if isinstance(payload.get("view"), dict) else {}
        key = payload.get("trigger_id") or hashlib.sha256(json.dumps(
            [team, payload.get("type"), view.get("id"), view.get("hash"),
             payload.get("actions"), payload.get("action_ts")], sort_keys=True,
            default=str).encode()).hexdigest()
        record("slack", [NewJob(external_id=f"interaction:{team}:{key}", kind="slack.interaction",
                                tenant=f"slack:{team}", payload=payload)])
        return Response(status=200)
    if not form.get("command") or not form.get("team_id") or not form.get("trigger_id"):
        raise BadRequest("slash command needs command, team_id and trigger_id")
    record("slack", [NewJob(external_id=f"command:{form['trigger_id']}", kind="slack.command",
                            tenant=f"slack:{form['team_id']}", payload=form)])
    return Response(status=200)

"""The review desk in Slack (step 8b): a held draft as Block Kit with Approve, Edit, Regenerate
and Discard, the edit modal, and a reviewer's click as a ``review.decide`` job.

The review message shows the draft as a channel may read it (the contact's values outside the
workspace's ``channel_fields`` masked, as every Baton post). Edit opens a modal in the request
itself (``views.open`` needs the click's ``trigger_id`` within 3 seconds); the modal's text is
the masked draft, and placeholders the reviewer leaves in it are given back their values when
the edit is approved. A ``view_submission`` that can't be taken (empty, too long) is answered in
the HTTP response, as Slack shows it under the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from core.engine.engine import Result as EngineResult
from core.jobs.lifecycle import NewJob
from core.review import PENDING, result_from_json
from core.store import DraftRow

DECIDE = "review.decide"
BUTTONS = (("approve", "Approve", "primary"), ("edit", "Edit", None),
           ("regenerate", "Regenerate", None), ("discard", "Discard", "danger"))
EDIT_VIEW = "baton_edit"
SOURCES = {"hubspot.action": "HubSpot workflow action", "hubspot.event": "HubSpot property change",
           "salesforce.notification": "Salesforce outbound message",
           "salesforce.action": "Salesforce Flow", "slack.command": "/baton command",
           "slack.mention": "Slack mention"}
KINDS = {"email": "Email", "recommendation": "Recommendations", "reply": "Support reply",
         "text": "Answer"}
# What a reviewer may change, per task kind: (output key, label, longest)
EDITABLE: dict[str, tuple[tuple[str, str, int], ...]] = {
    "email": (("subject", "Subject", 250), ("body", "Body", 3000)),
    "recommendation": (("message", "Message", 3000),),
    "reply": (("body", "Reply", 3000),),
    "text": (("text", "Text", 3000),),
}

Shown = Callable[[str, EngineResult, str], tuple[str, dict[str, str]]]


def editable(result: EngineResult) -> tuple[tuple[str, str, int], ...]:
    fields = EDITABLE.get(result.task.kind, ())
    if result.task.kind == "text" and "text" not in result.output:
        return (("body", "Text", 3000),)
    return fields


def review_blocks(draft: DraftRow, result: EngineResult, text: str, *, ended: str | None,
                  note: str | None) -> list[dict[str, Any]]:
    """The review message: what, for whom, from where; the draft; its receipt; the buttons
    while it is pending, else the outcome."""
    r = result.receipt
    what = KINDS.get(result.task.kind, result.task.kind)
    head = (f"*{what} draft for approval* · {SOURCES.get(draft.job_kind, draft.job_kind)} · "
            f"`{draft.tenant}`" + (f" · version {draft.version}" if draft.version > 1 else ""))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
               for piece in _pieces(text)][:44]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"{r.role} · {r.model} · ${r.cost_usd:.4f} · receipt `{r.id}` · "
        f"expires {draft.expires_at:%Y-%m-%d %H:%M} UTC")}]})
    if note:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {note}"[:3000]}})
    if ended is not None:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ended[:3000]}]})
    elif draft.state == PENDING:
        blocks.append({"type": "actions", "block_id": f"baton_review_{draft.id}", "elements": [
            _button(action, label, style, draft) for action, label, style in BUTTONS]})
    return blocks


def _button(action: str, label: str, style: str | None, draft: DraftRow) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": f"baton_{action}",
                              "text": {"type": "plain_text", "text": label},
                              "value": f"{draft.id}:{draft.version}"}
    if style:
        button["style"] = style
    if action == "discard":
        button["confirm"] = {"title": {"type": "plain_text", "text": "Discard this draft?"},
                             "text": {"type": "plain_text", "text": "Nothing will be written, "
                                      "and a waiting workflow continues down its failure branch."},
                             "confirm": {"type": "plain_text", "text": "Discard"},
                             "deny": {"type": "plain_text", "text": "Keep it"}, "style": "danger"}
    return button


def _pieces(text: str, limit: int = 3000) -> list[str]:
    out, rest = [], text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit + 1)
        cut = cut if cut > 0 else limit
        out.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    return [p for p in [*out, rest] if p.strip()] or ["(empty)"]


def clicked(body: Mapping[str, Any], action: Mapping[str, Any]) -> NewJob | None:
    """A reviewer's click on Approve, Regenerate or Discard, as its decision job (one per
    reviewer, draft version and decision: a second click of the same is the same job)."""
    verb = str(action.get("action_id", "")).removeprefix("baton_")
    draft, _, version = str(action.get("value", "")).partition(":")
    if verb not in ("approve", "regenerate", "discard") or not re.fullmatch(r"[0-9a-f]{32}", draft) \
            or not version.isdigit():
        return None
    user = str((body.get("user") or {}).get("id") or "")
    team = str((body.get("team") or {}).get("id") or "")
    channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id") or "")
    # one job per click (Slack does not resend an interaction): a double click is two jobs, of
    # which the draft's claim lets one decide; a click after a decision that did not go
    # through (the record changed, a new draft failed) is a new decision, not a duplicate
    clicked_at = str(action.get("action_ts") or "")[:32]
    return NewJob(external_id=f"decision:{draft}:{version}:{verb}:{user}:{clicked_at}", kind=DECIDE,
                  tenant=f"slack:{team}",
                  payload={"draft": draft, "version": int(version), "action": verb, "user": user,
                           "team": team, "enterprise": str((body.get("enterprise") or {}).get("id")
                                                           or ""), "channel": channel})


def edit_view(draft: DraftRow, result: EngineResult, shown: Shown, team: str) -> dict[str, Any]:
    """The modal a reviewer edits the draft in (or, if it can't be edited here, says why)."""
    fields = editable(result)
    texts = [(key, label, longest, shown(team, result, str(result.output.get(key) or ""))[0])
             for key, label, longest in fields]
    meta = json.dumps({"draft": draft.id, "version": draft.version})
    if draft.state != PENDING or not fields or any(len(t) > longest for _, _, longest, t in texts):
        why = ("This draft was decided already." if draft.state != PENDING else
               "This draft is too long to edit in Slack: regenerate or discard it.")
        return notice("Edit draft", why)
    return {"type": "modal", "callback_id": EDIT_VIEW, "private_metadata": meta,
            "title": {"type": "plain_text", "text": "Edit draft"},
            "submit": {"type": "plain_text", "text": "Approve edited"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{"type": "input", "block_id": key, "label": {"type": "plain_text",
                                                                    "text": label},
                        "element": {"type": "plain_text_input", "action_id": "value",
                                    "multiline": key != "subject", "max_length": longest,
                                    "initial_value": text}}
                       for key, label, longest, text in texts]}


def notice(title: str, text: str) -> dict[str, Any]:
    return {"type": "modal", "title": {"type": "plain_text", "text": title[:24]},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


def not_reviewer(draft: DraftRow) -> dict[str, Any]:
    who = ", ".join(f"<@{r}>" for r in draft.review.get("reviewers", []))
    return notice("Edit draft", f"Only this draft's reviewers can edit it: {who}.")


def submitted(view: Mapping[str, Any], body: Mapping[str, Any], draft: DraftRow,
              shown: Shown) -> NewJob | dict[str, str]:
    """An edit submitted: its decision job (approve with the edited text, placeholders given
    back their values), or the errors Slack shows under the fields."""
    result = result_from_json(draft.result)
    team = str((body.get("team") or {}).get("id") or "")
    workspace = str(draft.review.get("workspace") or "")  # masked as the review channel reads it
    state = (view.get("state") or {}).get("values") or {}
    edited: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, _label, longest in editable(result):
        value = str(((state.get(key) or {}).get("value") or {}).get("value") or "").strip()
        if not value:
            errors[key] = "Write something here, or discard the draft."
        elif len(value) > longest:
            errors[key] = f"At most {longest} characters."
        else:
            edited[key] = _restored(value, shown(workspace, result,
                                                 str(result.output.get(key) or ""))[1])
    if errors:
        return errors
    user = str((body.get("user") or {}).get("id") or "")
    view_id = str(view.get("id") or "")
    enterprise = body.get("enterprise")
    # filed under the contact's tenant and subject: the edited text is theirs (an erasure finds it)
    return NewJob(external_id=f"edit:{draft.id}:{draft.version}:{view_id}:{user}", kind=DECIDE,
                  tenant=draft.tenant, subject=draft.subject,
                  payload={"draft": draft.id, "version": draft.version, "action": "approve",
                           "user": user, "team": team, "channel": draft.review.get("channel"),
                           "enterprise": str(enterprise.get("id") or "")
                           if isinstance(enterprise, dict) else "", "edited": edited})


def _restored(text: str, restore: Mapping[str, str]) -> str:
    """Placeholders the reviewer left in the text given back their values."""
    return re.sub(r"\{[a-z0-9_]+\}", lambda m: restore.get(m.group(0), m.group(0)), text)


def metadata(view: Mapping[str, Any]) -> tuple[str, int] | None:
    try:
        meta = json.loads(str(view.get("private_metadata") or ""))
        return str(meta["draft"]), int(meta["version"])
    except (ValueError, KeyError, TypeError):
        return None


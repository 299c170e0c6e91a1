"""The slack-bolt ``App`` behind Baton's request path: Bolt routes, Baton keeps.

Baton's own verifier (every signing secret of a rotation, the 5-minute window) and its size and
depth limits run before Bolt sees a request, so Bolt's verification is off. Bolt authorizes from
Baton's installation store (no ``auth.test`` per request), and its listeners run in the request
(``process_before_response``): each turns the request into jobs in the request's :class:`Intake`
and sets the acknowledgement; the web layer commits the jobs to the durable inbox and only then
sends Bolt's response. Generation never runs in Bolt's thread pool: a worker does it, so a crash
loses nothing and Slack's 3 seconds hold whatever the model does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.context.ack import Ack
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.slack.commands import Usage, parse
from connectors.slack.installations import SignedStates, SlackInstallations
from connectors.slack.messages import say, slack_text
from connectors.slack.review import (
    EDIT_VIEW,
    Shown,
    clicked,
    edit_view,
    metadata,
    not_reviewer,
    notice,
    submitted,
)
from connectors.slack.settings import BOT_SCOPES, SlackSettings
from core.jobs.lifecycle import NewJob
from core.policy import SlackAccess
from core.review import PENDING, result_from_json
from core.settings import Settings
from core.store import DraftRow

log = logging.getLogger("baton.slack")
INTAKE = "baton_intake"
BOT = "baton_bot"  # the installation Baton found for the request (Bolt authorizes with it)
COMMAND, MENTION = "slack.command", "slack.mention"
EVENTS = ("app_mention", "app_uninstalled", "tokens_revoked")  # what the manifest subscribes to
DECISIONS = re.compile(r"^baton_(approve|regenerate|discard)$")  # a review message's buttons
EDIT = "baton_edit"


@dataclass
class Intake:
    """What one request becomes: the jobs Bolt's listeners found in it."""

    jobs: list[NewJob] = field(default_factory=list)
    error: BaseException | None = None  # a listener's own work that failed (not Slack's input)


class StoreAuthorize(Authorize):
    """Bolt's authorization from Baton's installation store, without a call to Slack."""

    def __init__(self, installations: SlackInstallations) -> None:
        self.installations = installations

    def __call__(self, *, context: Any, enterprise_id: str | None, team_id: str | None,
                 user_id: str | None, **_: Any) -> AuthorizeResult | None:
        bot = context.get(BOT) or self.installations.find_bot(
            enterprise_id=enterprise_id, team_id=team_id,
            is_enterprise_install=bool(context.is_enterprise_install))
        if bot is None:
            return None
        return AuthorizeResult(enterprise_id=bot.enterprise_id, team_id=bot.team_id,
                               team=bot.team_name, bot_token=bot.bot_token, bot_id=bot.bot_id,
                               bot_user_id=bot.bot_user_id, bot_scopes=bot.bot_scopes,
                               user_id=user_id)


def oauth_flow(settings: SlackSettings, installations: SlackInstallations,
               client: WebClient) -> OAuthFlow | None:
    """Bolt's OAuth install (``/slack/install`` -> Slack -> ``/slack/oauth_redirect``) when the
    app has a client id; None for one workspace connected with a bot token."""
    secret = (Settings.secrets_of(settings.client_secret) or [""])[0]
    if not settings.client_id:
        return None
    return OAuthFlow(client=client, settings=OAuthSettings(
        client_id=settings.client_id, client_secret=secret, scopes=list(BOT_SCOPES),
        user_scopes=[], redirect_uri=settings.redirect_url or None,
        install_path="/slack/install", redirect_uri_path="/slack/oauth_redirect",
        installation_store=installations, installation_store_bot_only=True,
        state_store=SignedStates(secret)))


def build_bolt(settings: SlackSettings, installations: SlackInstallations,
               access: SlackAccess, drafts: Callable[[str], DraftRow | None] | None = None,
               shown: Shown | None = None) -> App:
    client = WebClient(base_url=settings.api_url, timeout=int(settings.timeout))
    app = App(name="baton", client=client, process_before_response=True,
              request_verification_enabled=False, signing_secret="verified-by-baton",
              authorize=StoreAuthorize(installations),  # type: ignore[arg-type]  # Bolt takes an Authorize
              installation_store=installations,
              oauth_flow=oauth_flow(settings, installations, client),
              user_facing_authorize_error_message=say("en", "not_installed"),
              token_verification_enabled=False, logger=log)
    cmd = settings.command

    def on_command(ack: Ack, command: dict[str, Any], context: Any) -> None:
        try:
            asked = parse(str(command.get("text") or ""), cmd)
        except Usage as usage:
            ack(response_type="ephemeral", text=str(usage))
            return
        team = str(command.get("team_id") or "")
        if asked.sub == "help":
            ack(response_type="ephemeral", text=say("en", "usage", cmd=cmd))
            return
        if team not in access.workspaces:  # installed is not enough: the policy lets it in
            ack(response_type="ephemeral", text=say("en", "not_enabled", team=team))
            return
        if asked.sub in ("email", "recommend") and not access.tenants_of(team):
            ack(response_type="ephemeral", text=say("en", "no_crm", team=team))
            return
        context[INTAKE].jobs.append(NewJob(
            external_id=f"command:{command['trigger_id']}", kind=COMMAND, tenant=f"slack:{team}",
            payload={"team": team, "enterprise": command.get("enterprise_id") or "",
                     "channel": command.get("channel_id") or "", "user": command.get("user_id") or "",
                     "sub": asked.sub, "target": asked.target, "text": asked.text,
                     "response_url": command.get("response_url") or ""}))
        what = {"email": "email", "recommend": "recommend", "reply": "reply_what"}.get(asked.sub, "roi")
        ack(response_type="ephemeral", text=say("en", "working", what=say("en", what)))

    def on_mention(ack: Ack, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        ack()
        if event.get("bot_id") or event.get("subtype"):  # a bot (Baton too): never a loop
            return
        team = str(context.team_id or body.get("team_id") or "")
        if team not in access.workspaces:
            log.info("slack: a mention from a workspace the policy does not list", extra={"team": team})
            return
        text = slack_text(re.sub(r"<@[A-Z0-9]+(\|[^>]*)?>", "", str(event.get("text") or ""))).strip()
        context[INTAKE].jobs.append(NewJob(
            external_id=f"event:{body['event_id']}", kind=MENTION, tenant=f"slack:{team}",
            payload={"team": team, "enterprise": body.get("enterprise_id") or "",
                     "channel": event.get("channel") or "", "user": event.get("user") or "",
                     "text": text[:4000], "ts": event.get("ts") or "",
                     "thread_ts": event.get("thread_ts") or ""}))

    def remove(context: Any) -> None:
        """The installation the event is about (Bolt reads it from ``authorizations``)."""
        try:
            installations.remove(context.enterprise_id, context.team_id,
                                 bool(context.is_enterprise_install))
        except Exception as exc:  # the store: Slack should send it again
            context[INTAKE].error = exc

    def on_uninstalled(ack: Ack, context: Any) -> None:
        remove(context)
        ack()

    def on_revoked(ack: Ack, event: dict[str, Any], context: Any) -> None:
        if (event.get("tokens") or {}).get("bot"):
            remove(context)
        ack()

    def find(draft_id: str) -> DraftRow | None:
        if drafts is None or not re.fullmatch(r"[0-9a-f]{32}", draft_id):
            return None
        return drafts(draft_id)

    def on_decision(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: Any) -> None:
        """Approve, Regenerate, Discard: a decision job (who may decide is the job's to check,
        and it tells a reviewer who may not)."""
        job = clicked(body, action)
        if job is not None:
            context[INTAKE].jobs.append(job)
        ack()

    def on_edit(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        """Edit: the modal opens now, in the request (the trigger_id lives 3 seconds)."""
        ack()
        draft = find(str(action.get("value") or "").partition(":")[0])
        user = str((body.get("user") or {}).get("id") or "")
        team = str((body.get("team") or {}).get("id") or "")
        if draft is None or shown is None:
            view = notice("Edit draft", "This draft is no longer kept.")
        elif user not in draft.review.get("reviewers", []) or team != draft.review.get("workspace"):
            view = not_reviewer(draft)
        else:  # masked as the review channel reads it
            view = edit_view(draft, result_from_json(draft.result), shown, team)
        try:
            client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        except SlackApiError as exc:  # the click came too late (expired_trigger_id): nothing opens
            log.info("slack: the edit modal did not open",
                     extra={"error": str((exc.response or {}).get("error", ""))[:40]})

    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
        """An edited draft, approved: errors go back in the response, under the fields."""
        meta = metadata(view)
        draft = find(meta[0]) if meta else None
        user = str((body.get("user") or {}).get("id") or "")
        if draft is None or meta is None or shown is None:
            ack(response_action="update", view=notice("Edit draft", "This draft is no longer kept."))
            return
        team = str((body.get("team") or {}).get("id") or "")
        if user not in draft.review.get("reviewers", []) or team != draft.review.get("workspace"):
            ack(response_action="update", view=not_reviewer(draft))
            return
        if draft.version != meta[1] or draft.state != PENDING:
            ack(response_action="update", view=notice(
                "Edit draft", "This draft was replaced or decided while you edited it: your "
                "edit was not applied."))
            return
        got = submitted(view, body, draft, shown)
        if isinstance(got, dict):
            ack(response_action="errors", errors=got)
            return
        context[INTAKE].jobs.append(got)
        ack()

    app.command(cmd)(on_command)
    app.event("app_mention")(on_mention)
    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_revoked)
    app.action(EDIT)(on_edit)
    app.action(DECISIONS)(on_decision)
    app.view(EDIT_VIEW)(on_submit)
    return app

"""Slack on the connector contract (:mod:`connectors.base`): ``/baton`` and mentions.

Requests (``/slack/<route>``):

* ``POST events``: Slack's one request URL for the Events API, slash commands and
  interactivity. Baton verifies the v0 signature (every secret of a rotation) and its garbage
  rules, then hands the request to the slack-bolt ``App`` (:mod:`connectors.slack.bolt`), whose
  listeners turn it into jobs and set the acknowledgement; the jobs are committed to the inbox
  before Slack gets its 200. Events are deduped on ``event_id`` (Slack's retries,
  ``X-Slack-Retry-Num``, carry the same one), commands on ``trigger_id``.
* ``GET install`` and ``GET oauth_redirect``: Bolt's OAuth install for many workspaces.

Jobs, in the workers (never in Bolt's thread pool):

* ``slack.command``: ``/baton email|recommend <contact> [brief]`` looks the contact up in the
  CRM tenants the workspace is mapped to (``[slack.workspaces]`` in baton.toml), generates, and
  posts the draft in the channel (the rest of a long one in its thread), or through the
  command's ``response_url`` with a hint when the bot can't post there; ``reply`` drafts a
  support reply; ``roi`` posts the month's inference ROI of the mapped tenants.
* ``slack.mention``: an ``@Baton`` in a channel or thread is answered in the thread, with the
  thread's earlier messages as context when Slack's rate tier allows a ``conversations.replies``
  call, else from what the event carries.

Showing CRM data in a channel is egress: of a contact's fields, only the workspace's
``channel_fields`` appear; every other value of the contact (and any email address, phone
number, card or IBAN) is masked in what Baton posts. Replies are in the user's language (their
Slack locale).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.oauth.installation_store import Bot

from connectors.base import Contact, Delivery, Finished, Outcome, Page
from connectors.http import (
    ApiError,
    BadRequest,
    Inbound,
    NotFound,
    Outbound,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    parse_json,
)
from connectors.signatures import SignatureError, verify_slack
from connectors.slack.bolt import BOT, COMMAND, INTAKE, MENTION, Intake, build_bolt
from connectors.slack.client import NotInChannel, SlackApi, translate
from connectors.slack.installations import SlackInstallations
from connectors.slack.messages import escape, messages, say, slack_text
from connectors.slack.review import review_blocks
from connectors.slack.settings import BOT_SCOPES, SlackSettings
from core.delivery.outbox import Outbox, target_key, write_key
from core.engine.engine import Result as EngineResult
from core.engine.ledger import RoiReport
from core.errors import BatonError, ConsentError, InputError
from core.jobs.lifecycle import Accepted
from core.jobs.runner import PERMANENT
from core.policy import Policy, Privacy
from core.privacy import Masker
from core.review import Drafts
from core.settings import Settings
from core.store import DraftRow, JobRow, ReplyRow
from core.tasks.kinds import Task

log = logging.getLogger("baton.slack")
FORM = "application/x-www-form-urlencoded"
THREAD_MESSAGE_CHARS = 600  # of each earlier message in a thread, for the model
THREAD_CHARS = 3000  # of all of them (the newest kept)


class Crm(Protocol):
    """What Slack needs of a CRM connector (the contract's lookup)."""

    def find_contact(self, tenant: str, key: str) -> Contact | None: ...

    def task_context(self, contact: Contact, kind: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SlackDelivery(Delivery):
    """Jobs, and the answer Bolt's listener set for Slack, sent once they are committed."""

    answer: Outbound | None = None


class SlackConnector:
    name = "slack"
    batch_size = 10

    def __init__(self, settings: SlackSettings, installations: SlackInstallations, api: SlackApi,
                 policy: Policy, outbox: Outbox, crm: Callable[[str], Crm],
                 roi: Callable[[datetime, str], RoiReport], *, drafts: Drafts | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.installations, self.api = settings, installations, api
        self.policy, self.outbox, self.crm, self.roi, self.clock = policy, outbox, crm, roi, clock
        self.drafts = drafts
        self.bolt = build_bolt(settings, installations, policy.slack,
                               drafts=drafts.get if drafts is not None else None,
                               shown=self._edit_shown)

    # -- requests ------------------------------------------------------------------------------

    def pages(self) -> Mapping[str, Page]:
        return {"install": self._install, "oauth_redirect": self._oauth_redirect}

    def _install(self, req: Inbound) -> Outbound:
        flow = self._flow()
        return _outbound(flow.handle_installation(_bolt_request(req, b"")))

    def _oauth_redirect(self, req: Inbound) -> Outbound:
        flow = self._flow()
        return _outbound(flow.handle_callback(_bolt_request(req, b"")))

    def _flow(self) -> Any:
        if self.bolt.oauth_flow is None:
            raise NotFound("this Baton installs in one workspace (baton slack connect); set "
                           "BATON_SLACK_CLIENT_ID and BATON_SLACK_CLIENT_SECRET for the OAuth "
                           "install")
        return self.bolt.oauth_flow

    def verify(self, req: Inbound) -> None:
        if req.route != "events":
            raise NotFound(f"no Slack route {req.route[:60]!r} (Slack posts to /slack/events)")
        try:
            verify_slack(secrets=Settings.secrets_of(self.settings.signing_secret), body=req.body,
                         headers=req.headers, now=req.received_at)
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None

    def parse(self, req: Inbound) -> Delivery | Outbound:
        enterprise, team, org_wide, needs_install = _check(req)
        bot = self.installations.find_bot(enterprise_id=enterprise or None, team_id=team,
                                          is_enterprise_install=org_wide) if needs_install else None
        if needs_install and bot is None:
            # answered here: Bolt would call the command's response_url from the request thread
            if req.mimetype == FORM and b"command=" in req.body:
                return Outbound.json(response_type="ephemeral", text=say("en", "not_installed"))
            return Outbound(200, "", "text/plain")
        intake = Intake()
        try:
            # Bolt authorizes with the installation found here: one lookup, one answer
            answer = self.bolt.dispatch(_bolt_request(req, req.body, {INTAKE: intake, BOT: bot}))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            # Bolt's payload readers assume Slack's shapes (a view without its type, ...)
            raise BadRequest(f"a Slack payload of an unexpected shape ({type(exc).__name__}: "
                             f"{str(exc)[:60]})") from None
        if intake.error is not None:  # a listener's own work failed (the store): Slack retries
            raise ServiceUnavailable(f"could not record the change ({type(intake.error).__name__}); "
                                     "retry later")
        if answer.status >= 500:  # Bolt could not read it: its payload readers assume Slack's shapes
            raise BadRequest("a Slack payload of an unexpected shape (Bolt could not read it)")
        out = _ack(answer, req)
        if not intake.jobs:
            return out
        return SlackDelivery(source="slack", jobs=intake.jobs, answer=out)

    def ack(self, req: Inbound, delivery: Delivery, accepted: Accepted,
            reply: ReplyRow | None) -> Outbound:
        answer = getattr(delivery, "answer", None)
        return answer if isinstance(answer, Outbound) else Outbound(200, "", "text/plain")

    def refuse(self, req: Inbound, error: ApiError) -> Outbound:
        # Slack retries a refused event three times: a client's mistake won't mend by itself
        return Outbound(error.status, Outbound.json(error=error.code, reason=error.reason).body,
                        headers={"X-Slack-No-Retry": "1"} if error.status < 500 else {})

    def label(self, route: str) -> str:
        return route if route in ("events", "install", "oauth_redirect") else "other"

    # -- set-up ----------------------------------------------------------------------------------

    def connect(self, token: str) -> Bot:
        """One workspace with a bot token (no OAuth app): checked with ``auth.test``, then kept
        encrypted like an OAuth install."""
        if not token.startswith("xoxb-"):
            raise InputError("expected a bot token (xoxb-...) from the app's OAuth & Permissions "
                             "page")
        try:
            who = self.api.web_client(token).auth_test()
        except SlackClientError as exc:
            raise translate(exc, "auth.test") from None
        scopes = str((who.headers or {}).get("x-oauth-scopes") or "")
        bot = Bot(enterprise_id=who.get("enterprise_id") or None, team_id=who.get("team_id"),
                  team_name=who.get("team"), bot_token=token, bot_id=str(who.get("bot_id") or ""),
                  bot_user_id=str(who.get("user_id") or ""), bot_scopes=scopes,
                  is_enterprise_install=bool(who.get("is_enterprise_install")),
                  installed_at=self.clock())
        self.installations.save_bot(bot)
        return bot

    def check(self) -> list[dict[str, Any]]:
        """Every installed workspace: the token still good, the scopes Baton needs, the CRM
        tenants it is mapped to."""
        report = []
        for account in self.installations.teams():
            bot = self.installations.find_bot(enterprise_id=None, team_id=account)
            row: dict[str, Any] = {"workspace": account, "tenants": self.policy.slack.tenants_of(account)}
            try:
                who = self.api.web_client(bot.bot_token if bot else "").auth_test()
                granted = set(str((who.headers or {}).get("x-oauth-scopes") or "").split(","))
                row.update(ok=True, team=who.get("team"),
                           missing_scopes=sorted(set(BOT_SCOPES) - granted))
            except SlackClientError as exc:
                row.update(ok=False, error=str(translate(exc, "auth.test")))
            report.append(row)
        return report

    # -- jobs ----------------------------------------------------------------------------------

    def job_kinds(self) -> Sequence[str]:
        return (COMMAND, MENTION)

    def prepare(self, jobs: list[JobRow]) -> list[Task | Finished | BaseException]:
        out: list[Task | Finished | BaseException] = []
        for job in jobs:
            try:
                out.append(self._prepare(job))
            except BatonError as exc:
                told = self._tell_failure(job, exc)
                out.append(Finished(told) if isinstance(told, dict) else told)
            except Exception as exc:  # a bug: the runner logs it and retries
                out.append(exc)
        return out

    def _prepare(self, job: JobRow) -> Task | Finished:
        p = job.payload
        client = self.api.client(p["team"], p.get("enterprise"))
        language = self.api.language(client, p["team"], p["user"])
        tenants = self.policy.slack.tenants_of(p["team"])
        brand_tenant = tenants[0] if tenants else job.tenant
        if job.kind == MENTION:
            return Task(kind="text", context=self._thread_context(client, p), tenant=brand_tenant,
                        brief=p["text"] or "Answer the thread's last question.",
                        language=language, id=job.id)
        sub = p["sub"]
        if sub == "roi":
            return Finished(self._post_roi(job, client, tenants or [job.tenant], language))
        if sub == "reply":
            greets = language in self.policy.brand_for(brand_tenant, language).fallback_greetings
            if greets:  # a support reply opens with the brand's greeting for an unnamed customer
                return Task(kind="reply", context={"customer_question": p["text"]}, brief=p["text"],
                            tenant=brand_tenant, language=language, id=job.id)
            return Task(kind="text", context={"customer_question": p["text"]},
                        brief=f"A support reply to this customer question: {p['text']}",
                        tenant=brand_tenant, language=language, id=job.id)
        kind = "email" if sub == "email" else "recommendation"
        contact = self._find(tenants, p["target"])
        if contact is None:
            self._say(job, client, language, say(language, "not_found", key=escape(p["target"][:80]),
                                                 tenants=", ".join(tenants)))
            return Finished({"not_found": True})
        context = self.crm(contact.tenant.split(":", 1)[0]).task_context(contact, kind)
        brief = p["text"] or ("Suggest what to add to their next order." if kind != "email"
                              else "A short, friendly note that suggests a next step.")
        return Task(kind=kind, context=context, brief=brief, tenant=contact.tenant,
                    language=language, id=job.id)

    def _find(self, tenants: list[str], key: str) -> Contact | None:
        """The first of the workspace's tenants (in order) with this contact."""
        for tenant in tenants:
            found = self.crm(tenant.split(":", 1)[0]).find_contact(tenant, key)
            if found is not None:
                return found
        return None

    def _thread_context(self, client: WebClient, p: Mapping[str, Any]) -> dict[str, Any]:
        """The thread's earlier messages (who and what), when Slack allows the call."""
        earlier: list[dict[str, Any]] = []
        if p.get("thread_ts"):
            earlier = self.api.thread(client, p["team"], p["channel"], p["thread_ts"]) or []
        lines = [f"{m.get('user') or m.get('bot_id') or 'someone'}: "
                 f"{slack_text(str(m.get('text', '')))[:THREAD_MESSAGE_CHARS]}"
                 for m in earlier if m.get("ts") != p.get("ts") and m.get("text")]
        kept: list[str] = []  # the newest messages, within the budget
        for line in reversed(lines):
            if sum(map(len, kept)) + len(line) > THREAD_CHARS:
                break
            kept.insert(0, line)
        return {"thread": kept} if kept else {"message": p.get("text") or ""}

    def write_back(self, done: list[tuple[JobRow, EngineResult | BaseException]]) -> list[Outcome]:
        out: list[Outcome] = []
        for job, result in done:
            try:
                out.append(self._write(job, result))
            except Exception as exc:
                out.append(exc)
        return out

    def _write(self, job: JobRow, result: EngineResult | BaseException) -> Outcome:
        p = job.payload
        client = self.api.client(p["team"], p.get("enterprise"))
        language = self.api.language(client, p["team"], p["user"])
        if isinstance(result, BaseException):
            return self._tell_failure(job, result) if isinstance(result, BatonError) else result
        task = result.task
        title, body = self._render(job, result, language)
        footer = say(language, "receipt", route=result.receipt.role, model=result.receipt.model,
                     cost=f"${result.receipt.cost_usd:.4f}", ms=int(result.receipt.latency_ms),
                     receipt=result.receipt.id)
        shown = self._shown(p["team"], task, f"{title}\n{body}")
        title, _, body = shown.partition("\n")
        posted = self._deliver(job, client, messages(title, body, footer), language)
        return {"posted": posted, "receipt_id": result.receipt.id, "route": result.receipt.role}

    def _render(self, job: JobRow, result: EngineResult, language: str) -> tuple[str, str]:
        out, p = result.output, job.payload
        if job.kind == MENTION:
            return "", str(out.get("text") or out.get("body") or "")
        ctx = result.task.context
        who = escape(" ".join(str(ctx.get(f) or "") for f in ("first_name", "last_name")).strip()
                     or p.get("target", ""))  # a CRM field or what the user typed: never markup
        if result.task.kind == "email":
            return (say(language, "email_for", who=who),
                    f"*{out.get('subject', '')}*\n{out.get('body', '')}")
        if result.task.kind == "recommendation":
            picks = "\n".join(f"• {x.get('product', '')}: {x.get('reason', '')}"
                              for x in out.get("picks") or [])
            return say(language, "recommend_for", who=who), f"{picks}\n\n{out.get('message', '')}"
        return say(language, "reply"), str(out.get("body") or out.get("text") or "")

    def _shown(self, team: str, task: Task, text: str) -> str:
        """``text`` as a channel may read it: the contact's values outside the workspace's
        ``channel_fields`` masked (a placeholder such as ``{city}``), and any email address,
        phone number, card or IBAN. Masking runs first, over every hidden value and pattern; a
        masked span is given back only when it is a piece of a hidden value that is exactly an
        allowed one (the first name "Maya" inside the hidden maya@example.net)."""
        return self._masked(team, task, text)[0]

    def _masked(self, team: str, task: Task, text: str) -> tuple[str, dict[str, str]]:
        """:meth:`_shown`, and each placeholder's value (to give an edited draft its values
        back)."""
        allowed = set(self.policy.slack.fields_for(team))
        hidden = {k: v for k, v in task.context.items()
                  if k not in allowed and k not in ("thread", "message", "customer_question")
                  and (isinstance(v, str) or (isinstance(v, list)
                                              and all(isinstance(x, str) for x in v)))}
        shown = {v.strip().casefold() for k, v in task.context.items()
                 if k in allowed and isinstance(v, str) and v.strip()}
        masker = Masker(Privacy(sensitive_fields=list(hidden), merge_fields=[]))
        _, masked, masking = masker.mask(hidden, text)
        restore: dict[str, str] = {}

        def show(m: re.Match[str]) -> str:
            name = m.group(1)
            original = masking.values.get(name)
            if original is None:
                return m.group(0)  # not Baton's placeholder (a merge tag the copy carries)
            if "_part" in name and original.strip().casefold() in shown:
                return original
            placeholder = "{" + re.sub(r"(_part\d+)?(_\d+)?$", "", name) + "}"
            if restore.setdefault(placeholder, original) != original:
                placeholder = "{" + name + "}"  # two values of one field: each its own name
                restore[placeholder] = original
            return placeholder

        return re.sub(r"\{([a-z0-9_]+)\}", show, masked), restore

    # -- the review desk (step 8b; connectors.review.Desk) ----------------------------------------

    def show(self, draft: DraftRow, result: EngineResult, *, ended: str | None = None,
             note: str | None = None) -> dict[str, Any]:
        """Post the draft's review message once (its ``ts`` kept on the draft), or update it."""
        team, channel = str(draft.review["workspace"]), str(draft.review["channel"])
        client = self.api.client(team)
        blocks = review_blocks(draft, result, escape(self._review_text(team, result)),
                               ended=ended, note=note)
        if draft.review.get("ts"):
            self.api.update(client, str(draft.review.get("channel_id") or channel),
                            str(draft.review["ts"]), blocks)
            return {"channel": draft.review.get("channel_id") or channel, "ts": draft.review["ts"]}
        key = f"review:{draft.id}"
        meta = {"event_type": "baton_review", "event_payload": {"key": key}}
        since = draft.created_at.replace(tzinfo=draft.created_at.tzinfo or UTC).timestamp() - 300
        posted = self.outbox.once(
            key, job_id=draft.job_id, target=target_key(draft.tenant, "review", channel),
            perform=lambda: self.api.post(client, channel, [blocks], None, meta),
            find=lambda: self.api.posted(client, channel, None, key, since))
        if self.drafts is not None:
            self.drafts.place(draft.id, ts=posted["ts"], channel_id=posted["channel"])
        return {"channel": posted["channel"], "ts": posted["ts"]}

    def tell(self, draft: DraftRow | None, decision: Mapping[str, Any], text: str) -> None:
        team = str(decision.get("team") or (draft.review["workspace"] if draft else ""))
        channel = str(decision.get("channel") or (draft.review["channel"] if draft else ""))
        self.api.ephemeral(self.api.client(team, str(decision.get("enterprise") or "") or None),
                           channel, str(decision["user"]), text)

    def _review_text(self, team: str, result: EngineResult) -> str:
        """The draft as the review channel reads it (masked as any channel is)."""
        out, kind = result.output, result.task.kind
        if kind == "email":
            text = f"Subject: {out.get('subject', '')}\n\n{out.get('body', '')}"
        elif kind == "recommendation":
            picks = "\n".join(f"• {x.get('product', '')}: {x.get('reason', '')}"
                              for x in out.get("picks") or [])
            text = f"{picks}\n\n{out.get('message', '')}"
        else:
            text = str(out.get("body") or out.get("text") or "")
        return self._shown(team, result.task, text)

    def _edit_shown(self, team: str, result: EngineResult, text: str) -> tuple[str, dict[str, str]]:
        return self._masked(team, result.task, text)

    def _deliver(self, job: JobRow, client: WebClient, blocks: list[list[dict[str, Any]]],
                 language: str) -> dict[str, Any]:
        """Post once, however often the job runs: in the thread of a mention, in the channel
        for a command (through its response_url, with a hint, where the bot can't post)."""
        p = job.payload
        thread = (p.get("thread_ts") or p.get("ts")) if job.kind == MENTION else None
        key = write_key(job, "message")
        meta = {"event_type": "baton_answer", "event_payload": {"key": key}}
        # where an earlier post of this job can be: after the mention (Slack's own clock), or
        # since the job was made (five minutes early: Slack's clock is not ours)
        started = (float(p["ts"]) if job.kind == MENTION and p.get("ts") else
                   job.created_at.replace(tzinfo=job.created_at.tzinfo or UTC).timestamp() - 300)

        def post() -> dict[str, Any]:
            try:
                return self.api.post(client, p["channel"], blocks, thread, meta)
            except NotInChannel:
                if job.kind != COMMAND or not p.get("response_url"):
                    raise
                hint = [{"type": "section", "text": {"type": "mrkdwn",
                                                     "text": say(language, "not_in_channel")}}]
                return self.api.respond(p["response_url"], (hint + [b for m in blocks for b in m])[:50])

        return self.outbox.once(key, job_id=job.id, target=target_key(job.tenant, "channel", p["channel"]),
                                perform=post,
                                find=lambda: self.api.posted(client, p["channel"], thread, key, started))

    def _say(self, job: JobRow, client: WebClient, language: str, text: str) -> dict[str, Any]:
        """A short answer only the user sees (a command's response_url), or in the thread."""
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
        p = job.payload
        key = write_key(job, "notice")
        if job.kind == COMMAND and p.get("response_url"):
            return self.outbox.once(key, job_id=job.id, target=target_key(job.tenant, "user", p["user"]),
                                    perform=lambda: self.api.respond(p["response_url"], blocks),
                                    find=lambda: None)
        thread = p.get("thread_ts") or p.get("ts")
        return self.outbox.once(key, job_id=job.id, target=target_key(job.tenant, "channel", p["channel"]),
                                perform=lambda: self.api.post(client, p["channel"], [blocks], thread),
                                find=lambda: None)

    def _tell_failure(self, job: JobRow, exc: BatonError) -> Outcome:
        """A job that can't produce a draft tells the user why (never silence), then ends: an
        opted-out contact, a contact or record the CRM refuses, copy that failed its checks.
        Transient trouble is the job's error: it is retried, and tells later if it must."""
        if not isinstance(exc, PERMANENT):
            return exc
        p = job.payload
        try:
            client = self.api.client(p["team"], p.get("enterprise"))
            language = self.api.language(client, p["team"], p["user"])
            # the reason in full only to the user who asked (a command's response_url); a
            # thread reads that the draft did not pass (a refused link stays out of the channel)
            private = job.kind == COMMAND and bool(p.get("response_url"))
            reason = escape(str(exc)[:500]) if private else say(language, "not_passed")
            text = (say(language, "opted_out", who=escape(p.get("target", "")))
                    if isinstance(exc, ConsentError) else say(language, "failed", reason=reason))
            self._say(job, client, language, text)
        except NotInChannel:
            log.info("slack: could not tell the user why a job ended", extra={"job_id": job.id})
        except BatonError as told:
            if not isinstance(told, PERMANENT):
                return told
        return {"told": type(exc).__name__, "reason": str(exc)[:200]}

    def _post_roi(self, job: JobRow, client: WebClient, tenants: list[str],
                  language: str) -> dict[str, Any]:
        month = job.payload.get("target") or ""
        now = datetime.fromtimestamp(self.clock(), UTC)
        since = (datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC) if month
                 else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
        lines = []
        for tenant in tenants:
            t = self.roi(since, tenant).total
            if t.calls:
                lines.append(say(language, "roi_line", tenant=tenant, calls=t.calls,
                                 local=t.local_share, cost=t.cost_usd, saved=t.savings_usd,
                                 p95=t.p95_ms))
        day = since.date().isoformat()
        text = "\n".join(lines) or say(language, "roi_none", since=day, tenants=", ".join(tenants))
        posted = self._deliver(job, client, messages(say(language, "roi_title", since=day), text),
                               language)
        return {"posted": posted, "tenants": tenants}

    def answer(self, job: JobRow, outcome: Outcome) -> dict[str, Any] | None:
        return None  # nothing waits on a Slack job: it answers in Slack

    def complete(self, account: str) -> int:
        return 0

    def find_contact(self, tenant: str, key: str) -> Contact | None:
        raise InputError("Slack holds no contacts: look them up in a CRM tenant")

    def task_context(self, contact: Contact, kind: str) -> dict[str, Any]:
        return dict(contact.fields)


def _check(req: Inbound) -> tuple[str, str, bool, bool]:
    """Baton's garbage rules before Bolt parses anything: a known content type, UTF-8, JSON
    that is an object and not nested beyond reason (also inside an interactivity form). Returns
    the installation the request is for, as Bolt reads it (organization, team, org-wide: an
    event's ``authorizations`` first), and whether it needs Baton installed there (not Slack's
    URL check, an SSL check, the events that say Baton was removed, or Slack's notice that
    events are being rate limited)."""
    if req.mimetype == "application/json":
        envelope = parse_json(req.body, req.mimetype)
        if not isinstance(envelope, dict):
            raise BadRequest("expected a JSON object")
        kind = envelope.get("type")
        if kind in ("url_verification", "app_rate_limited"):
            if kind == "app_rate_limited":
                log.warning("slack: events are being rate limited for a workspace",
                            extra={"team": str(envelope.get("team_id"))[:20],
                                   "minute": envelope.get("minute_rate_limited")})
            return "", "", False, False
        event = envelope.get("event")
        if kind == "event_callback" and not (isinstance(event, dict)
                                             and isinstance(envelope.get("event_id"), str)
                                             and isinstance(envelope.get("team_id"), str)):
            raise BadRequest("event_callback needs event_id, team_id and event")
        if kind != "event_callback":
            raise BadRequest(f"unsupported event envelope type {str(kind)[:40]!r}")
        assert isinstance(event, dict)
        auths = envelope.get("authorizations")
        auth = auths[0] if isinstance(auths, list) and auths and isinstance(auths[0], dict) else {}
        return (str(auth.get("enterprise_id") or envelope.get("enterprise_id") or ""),
                str(auth.get("team_id") or envelope["team_id"]),
                bool(auth.get("is_enterprise_install") or envelope.get("is_enterprise_install")),
                event.get("type") not in ("app_uninstalled", "tokens_revoked"))
    if req.mimetype != FORM:
        raise UnsupportedMediaType(f"expected JSON or a form, got {req.mimetype or 'none'}")
    try:
        fields = parse_qs(req.body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed form body: {str(exc)[:120]}") from None
    if "payload" in fields:  # Bolt reads a form with a payload as an interaction, whatever else
        payload = parse_json(fields["payload"][0].encode(), "application/json")
        if not isinstance(payload, dict) or not isinstance(payload.get("team"), dict):
            raise BadRequest("interactivity payload needs a team")
        org = payload.get("enterprise")
        return (str(org.get("id") or "") if isinstance(org, dict) else "",
                str(payload["team"].get("id") or ""), bool(payload.get("is_enterprise_install")),
                True)
    if "ssl_check" in fields:
        return "", "", False, False
    if not all(fields.get(k) and fields[k][0] for k in ("command", "team_id", "trigger_id")):
        raise BadRequest("slash command needs command, team_id and trigger_id")
    return ((fields.get("enterprise_id") or [""])[0], fields["team_id"][0],
            (fields.get("is_enterprise_install") or [""])[0] == "true", True)


def _bolt_request(req: Inbound, body: bytes, context: dict[str, Any] | None = None) -> BoltRequest:
    return BoltRequest(body=body.decode("utf-8"), query=dict(req.query),
                       headers={k.lower(): v for k, v in req.headers.items()}, context=context)


def _outbound(resp: BoltResponse) -> Outbound:
    headers = {k: ", ".join(v) if k.lower() != "set-cookie" else v[0]
               for k, v in resp.headers.items() if k.lower() != "content-type" and v}
    content_type = (resp.headers.get("content-type") or ["text/plain"])[0]
    return Outbound(resp.status, resp.body or "", content_type, headers)


def _ack(resp: BoltResponse, req: Inbound) -> Outbound:
    """Bolt's answer as Slack should get it: a request no listener took (an event Baton does
    not subscribe to, another app's command) is still acknowledged, never a 404 Slack retries."""
    if resp.status == 404:
        if req.mimetype == FORM and b"command=" in req.body:
            return Outbound.json(response_type="ephemeral",
                                 text="Baton doesn't handle this command.")
        return Outbound(200, "", "text/plain")
    if resp.status == 401:  # not installed: Bolt's message, in a form Slack shows
        return Outbound.json(response_type="ephemeral", text=say("en", "not_installed"))
    return _outbound(resp)

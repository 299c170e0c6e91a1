"""Slack's Web API as the workers use it: slack_sdk's ``WebClient`` per workspace, within
Slack's limits.

* Tokens come from the installation store (encrypted in Baton's database), one client per call
  site; every client retries a 429 after its ``Retry-After`` (``RateLimitErrorRetryHandler``; the
  SDK's default handlers retry connection errors only).
* ``chat.postMessage`` is paced to about one message a second per channel (Slack's special tier),
  shared by every worker process through Redis when the queue is Redis.
* ``conversations.replies`` is a scarce call for apps outside the Marketplace (about one a minute,
  15 messages): a workspace calls it at most ``thread_calls_per_minute``; over that, or when Slack
  says ``ratelimited``, the answer is written from what the event carries.
* A response_url comes from the request: only Slack's hosts (``response_hosts``) are called.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from connectors.errors import NotInstalled, PlatformRejected, PlatformUnavailable
from connectors.ratelimit import Limiters
from connectors.slack.installations import SlackInstallations
from connectors.slack.messages import language_of, plain
from connectors.slack.settings import SlackSettings
from core.settings import Settings

LOCALE_SECONDS = 3600.0
# Errors that say the bot can't post where it was asked to: the user gets a hint instead
NOT_THERE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
# The workspace's token is gone: nothing to retry
GONE = frozenset({"invalid_auth", "account_inactive", "token_revoked", "not_authed",
                  "team_not_found", "missing_scope"})


class NotInChannel(PlatformRejected):
    """The bot is not a member of the channel (or cannot see it)."""


def translate(exc: SlackClientError, what: str) -> Exception:
    """A slack_sdk error as Baton's: permanent refusals, else transient trouble."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error", "")) if exc.response is not None else ""
        if code in NOT_THERE:
            return NotInChannel(f"Slack {what}: {code}")
        if code in GONE:
            return PlatformRejected(f"Slack {what}: {code} (reinstall Baton in the workspace)")
        status = exc.response.status_code if exc.response is not None else 0
        if status == 429 or code == "ratelimited" or status >= 500:
            return PlatformUnavailable(f"Slack {what}: {code or status}")
        return PlatformRejected(f"Slack {what}: {code or status}", status=status)
    return PlatformUnavailable(f"Slack {what}: {type(exc).__name__}")


class SlackApi:
    def __init__(self, settings: SlackSettings, installations: SlackInstallations,
                 redis_url: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.installations, self.clock = settings, installations, clock
        self.pace = Limiters("slack-channel", 1, redis_url, window=1.0 / settings.messages_per_second)
        self._thread_calls: dict[str, float] = {}
        self._locales: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def client(self, team: str, enterprise: str | None = None) -> WebClient:
        bot = self.installations.find_bot(enterprise_id=enterprise or None, team_id=team)
        if bot is None or not bot.bot_token:
            raise NotInstalled(f"Baton is not installed in Slack workspace {team}")
        return self.web_client(bot.bot_token)

    def web_client(self, token: str | None = None) -> WebClient:
        return WebClient(token=token, base_url=self.settings.api_url, timeout=int(self.settings.timeout),
                         retry_handlers=[ConnectionErrorRetryHandler(),
                                         RateLimitErrorRetryHandler(
                                             max_retry_count=self.settings.max_retries)])

    def language(self, client: WebClient, team: str, user: str) -> str:
        """The user's language from their Slack locale (``users.info``), cached an hour;
        English when Slack can't say."""
        now = self.clock()
        with self._lock:
            cached = self._locales.get((team, user))
        if cached and now - cached[1] < LOCALE_SECONDS:
            return cached[0]
        try:
            info = client.users_info(user=user, include_locale=True)
            language = language_of(str((info.get("user") or {}).get("locale") or ""))
        except SlackClientError:
            return "en"
        with self._lock:
            self._locales[(team, user)] = (language, now)
        return language

    def thread(self, client: WebClient, team: str, channel: str,
               thread_ts: str) -> list[dict[str, Any]] | None:
        """The thread's messages (oldest first, at most ``thread_messages``), or None when the
        workspace's share of ``conversations.replies`` is used up or Slack says ``ratelimited``."""
        now = self.clock()
        gap = 60.0 / self.settings.thread_calls_per_minute
        with self._lock:
            last = self._thread_calls.get(team)
            if last is not None and now - last < gap:
                return None
            self._thread_calls[team] = now
        try:
            # one attempt: a 429 here means "answer from the event", not "wait a minute"
            once = WebClient(token=client.token, base_url=self.settings.api_url,
                             timeout=int(self.settings.timeout), retry_handlers=[])
            got = once.conversations_replies(channel=channel, ts=thread_ts,
                                             limit=self.settings.thread_messages)
        except SlackApiError as exc:
            if exc.response is not None and (exc.response.status_code == 429
                                             or exc.response.get("error") == "ratelimited"):
                return None
            raise translate(exc, "conversations.replies") from None
        except SlackClientError as exc:
            raise translate(exc, "conversations.replies") from None
        return list(got.get("messages") or [])[: self.settings.thread_messages]

    def post(self, client: WebClient, channel: str, messages: list[list[dict[str, Any]]],
             thread_ts: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Post the messages (the first in the channel or thread, the rest in its thread);
        return the channel and the first message's ``ts``."""
        first: str | None = None
        for blocks in messages:
            self.pace.get(channel).acquire()
            try:
                got = client.chat_postMessage(channel=channel, blocks=blocks, text=plain(blocks),
                                              thread_ts=thread_ts or first, unfurl_links=False,
                                              unfurl_media=False, metadata=metadata)
            except SlackClientError as exc:
                raise translate(exc, "chat.postMessage") from None
            if first is None:
                first = str(got.get("ts"))
                channel = str(got.get("channel") or channel)
        return {"channel": channel, "ts": first, "messages": len(messages)}

    def update(self, client: WebClient, channel: str, ts: str,
               blocks: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace a message Baton posted (a review message, once decided)."""
        self.pace.get(channel).acquire()
        try:
            client.chat_update(channel=channel, ts=ts, blocks=blocks, text=plain(blocks))
        except SlackClientError as exc:
            raise translate(exc, "chat.update") from None
        return {"channel": channel, "ts": ts}

    def ephemeral(self, client: WebClient, channel: str, user: str, text: str) -> None:
        """A line only ``user`` sees in ``channel``."""
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text[:3000])
        except SlackClientError as exc:
            raise translate(exc, "chat.postEphemeral") from None

    def posted(self, client: WebClient, channel: str, thread_ts: str | None, key: str,
               oldest: float) -> dict[str, Any] | None:
        """The message Baton posted for ``key`` (its metadata), if an earlier try got that far:
        only messages since the job began (``oldest``), the newest first, in one try (a 429 is
        "ask again later", not a minute's wait in the worker). A channel Baton can't read (not
        a member, a DM) holds no post of Baton's: the write runs again, and falls back to the
        command's response_url."""
        once = WebClient(token=client.token, base_url=self.settings.api_url,
                         timeout=int(self.settings.timeout), retry_handlers=[])
        try:
            if thread_ts:
                got = once.conversations_replies(channel=channel, ts=thread_ts, oldest=f"{oldest:.6f}",
                                                 include_all_metadata=True, limit=100)
            else:
                got = once.conversations_history(channel=channel, oldest=f"{oldest:.6f}",
                                                 include_all_metadata=True, limit=100)
        except SlackClientError as exc:
            error = translate(exc, "finding an earlier post")
            if isinstance(error, NotInChannel) or "missing_scope" in str(error):
                return None
            raise error from None
        for message in got.get("messages") or []:
            meta = message.get("metadata") or {}
            if (meta.get("event_payload") or {}).get("key") == key:
                return {"channel": channel, "ts": message.get("ts"), "found": True}
        return None

    def respond(self, response_url: str, blocks: list[dict[str, Any]], *,
                ephemeral: bool = True) -> dict[str, Any]:
        """Answer a slash command through its response_url (any channel, also one the bot is
        not in; ephemeral: only the user sees it)."""
        host = (urlsplit(response_url).hostname or "").lower()
        if host not in {h.lower() for h in Settings.list_of(self.settings.response_hosts)}:
            raise PlatformRejected(f"response_url host {host[:60]!r} is not Slack's "
                                   "(BATON_SLACK_RESPONSE_HOSTS)")
        hook = WebhookClient(response_url, timeout=int(self.settings.timeout),
                             retry_handlers=[ConnectionErrorRetryHandler(),
                                             RateLimitErrorRetryHandler(
                                                 max_retry_count=self.settings.max_retries)])
        try:
            got = hook.send(text=plain(blocks), blocks=blocks,
                            response_type="ephemeral" if ephemeral else "in_channel")
        except SlackClientError as exc:
            raise translate(exc, "response_url") from None
        if got.status_code >= 500 or got.status_code == 429:
            raise PlatformUnavailable(f"Slack response_url: HTTP {got.status_code}")
        if got.status_code >= 400:  # expired (30 minutes, 5 uses) or unknown
            raise PlatformRejected(f"Slack response_url: HTTP {got.status_code} {got.body[:80]}",
                                   status=got.status_code)
        return {"response_url": True, "status": got.status_code}

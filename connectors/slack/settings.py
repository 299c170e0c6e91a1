"""Slack's settings: every ``BATON_SLACK_*`` variable, read once by the composition root."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.settings import describe_settings_error

# What the bot needs (the manifest asks for these; `baton slack check` compares)
# (no chat:write.public: Baton posts CRM-derived copy only where it was invited; elsewhere the
# draft goes to the user alone, through the command's response_url)
BOT_SCOPES = ("app_mentions:read", "channels:history", "groups:history", "chat:write", "commands",
              "users:read")


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_SLACK_", extra="forbid", frozen=True)

    # Basic Information > Signing Secret; several, comma-separated, while you rotate it
    signing_secret: SecretStr = SecretStr("")
    # Multi-workspace install through Slack's OAuth (empty: one workspace, `baton slack connect`)
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    redirect_url: str = ""  # https://<Baton's public host>/slack/oauth_redirect
    # Where Slack's Web API is (a loopback fake in the tests) and where a slash command's
    # response_url may point (any other host is refused: the URL comes from the request)
    api_url: str = "https://slack.com/api/"
    response_hosts: str = "hooks.slack.com"
    command: str = "/baton"
    timeout: float = Field(default=30.0, gt=0, le=300)  # seconds per Slack API call
    # conversations.replies as non-Marketplace apps get it since 2025-05-29: about one call a
    # minute and 15 messages; Baton answers from what the event carries when over it
    thread_calls_per_minute: float = Field(default=1.0, gt=0, le=600)
    thread_messages: int = Field(default=15, ge=1, le=1000)
    # chat.postMessage: about one message a second per channel
    messages_per_second: float = Field(default=1.0, gt=0, le=100)
    # Retries of a 429 after its Retry-After (the SDK's RateLimitErrorRetryHandler)
    max_retries: int = Field(default=3, ge=0, le=10)


def load_slack_settings() -> SlackSettings:
    try:
        return SlackSettings()
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, "BATON_SLACK_")) from None

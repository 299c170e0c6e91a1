"""HubSpot's settings: every ``BATON_HUBSPOT_*`` variable, read once by the composition root."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.settings import MIN_RETENTION_DAYS, describe_settings_error, iso_duration_days

RETRY_DAYS = 3.0  # HubSpot retries a failed workflow action for up to 3 days


class HubSpotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_HUBSPOT_", extra="forbid", frozen=True)

    # The app's client secret signs HubSpot's requests (several, comma-separated, while rotating)
    client_secret: SecretStr = SecretStr("")
    api_base: str = "https://api.hubapi.com"
    portal_id: int | None = None
    access_token: SecretStr = SecretStr("")  # a private app's token for that portal
    client_id: str = ""  # OAuth app (many portals); its secret is client_secret
    redirect_url: str = ""
    scopes: str = "oauth crm.objects.contacts.read crm.objects.contacts.write " \
        "crm.objects.companies.read crm.objects.deals.read crm.objects.line_items.read " \
        "e-commerce automation crm.schemas.contacts.write"
    requests_per_10s: int = Field(default=100, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_retry_wait: float = Field(default=30.0, ge=0)
    sync_budget: float = Field(default=3.0, ge=0, le=20)
    timeout: float = Field(default=15.0, gt=0, le=120)  # seconds per HubSpot API call
    block_expiration: str = "P1D"
    contact_properties: str = "firstname,lastname,email,company,jobtitle,industry," \
        "lifecyclestage,city,country,hs_language"
    trigger_properties: str = "baton_generate"
    # Events from these change sources start nothing (contacts created by an import)
    skip_change_sources: str = "IMPORT"
    # A change by an app, workflow or sync this soon after Baton wrote to the contact is Baton's
    # own write coming back and starts nothing (no loops through workflows or a CRM sync)
    loop_seconds: float = Field(default=300.0, ge=0, le=86400)
    # Read with every contact: an opted-out value in any of them means no marketing email (add
    # the hs_email_optout_<id> property of your marketing subscription type)
    consent_properties: str = "hs_email_optout"
    brief: str = "A short, friendly note that suggests a next step based on their recent purchases."

    @field_validator("block_expiration")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        iso_duration_days(value)
        return value

    def retention_floor_days(self) -> float:
        """The shortest retention HubSpot allows: dedupe keys' 7 days, its 3 days of action
        retries, and a day past the longest an action may wait in ``BLOCK`` for its callback."""
        return max(MIN_RETENTION_DAYS, RETRY_DAYS, iso_duration_days(self.block_expiration) + 1)


def load_hubspot_settings(**overrides: object) -> HubSpotSettings:
    """Read ``BATON_HUBSPOT_*`` from the environment; a wrong value fails naming the variable."""
    try:
        return HubSpotSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, "BATON_HUBSPOT_")) from None

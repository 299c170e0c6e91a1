"""Salesforce's settings: every ``BATON_SALESFORCE_*`` variable, read once by the composition root."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.settings import describe_settings_error

API_VERSION = "59.0"


class SalesforceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_SALESFORCE_", extra="forbid", frozen=True)

    # Outbound messages carry no signature: only these orgs (15- or 18-character ids) are heard,
    # optionally only on a secret path and from Salesforce's networks
    org_ids: str = ""
    path_token: SecretStr = SecretStr("")
    source_cidrs: str = ""
    # How long a Flow's call waits for its answer before it gets 202 and a poll URL (Apex's
    # default callout timeout is 10 s; External Services allow 120 s)
    sync_budget: float = Field(default=8.0, ge=0, le=110)

    api_version: str = API_VERSION
    timeout: float = Field(default=30.0, gt=0, le=600)  # seconds per Salesforce API call
    max_attempts: int = Field(default=4, ge=1, le=20)  # REQUEST_LIMIT_EXCEEDED and 5xx retried
    max_retry_wait: float = Field(default=30.0, ge=0)
    # Baton slows down when the org has used this share of its daily API allocation, and stops
    # calling (the job waits) above stop_share
    slow_share: float = Field(default=0.8, gt=0, le=1)
    stop_share: float = Field(default=0.95, gt=0, le=1)
    # The record fields the prompt may use (never FIELDS(ALL)): only these reach Baton
    lead_fields: str = "FirstName,LastName,Email,Company,Title,Industry,City,Country,LeadSource," \
        "HasOptedOutOfEmail"
    contact_fields: str = "FirstName,LastName,Email,Title,Department,MailingCity,MailingCountry," \
        "HasOptedOutOfEmail"
    # Person Accounts (B2C orgs): their contact fields are Person* fields on Account
    person_accounts: bool = False
    person_account_fields: str = "FirstName,LastName,PersonEmail,PersonTitle,PersonMailingCity," \
        "PersonMailingCountry,PersonHasOptedOutOfEmail"
    sobjects: str = "Lead,Contact"  # what outbound messages may be about
    brief: str = "A short, friendly note that suggests a next step based on their recent purchases."
    task_subject: str = "Baton email draft"
    # The Task's Status and Priority: values of your org's picklists (renamed or deactivated
    # defaults make Salesforce refuse the Task)
    task_status: str = "Completed"
    task_priority: str = "Normal"

    @field_validator("source_cidrs")
    @classmethod
    def _networks(cls, value: str) -> str:
        for cidr in (c.strip() for c in value.split(",") if c.strip()):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"not a network such as 13.108.0.0/14: {cidr!r}") from None
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        major, _, minor = value.partition(".")
        if not (major.isdigit() and minor.isdigit() and 46 <= int(major) <= 99):
            raise ValueError(f"expected an API version such as {API_VERSION} (no leading v), "
                             "46.0 or later (sObject Collections upsert)")
        return value

    @field_validator("sobjects")
    @classmethod
    def _sobjects(cls, value: str) -> str:
        unknown = {s.strip() for s in value.split(",") if s.strip()} - {"Lead", "Contact", "Account"}
        if unknown:
            raise ValueError(f"Baton writes to Lead, Contact and (Person) Account, not "
                             f"{', '.join(sorted(unknown))}")
        return value

    def orgs(self) -> set[str]:
        """The allowlisted orgs by their 15-character id."""
        return {org15(o) for o in self.org_ids.split(",") if o.strip()}

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(c.strip(), strict=False)
                for c in self.source_cidrs.split(",") if c.strip()]

    def fields_of(self, sobject: str) -> list[str]:
        text = {"Lead": self.lead_fields, "Contact": self.contact_fields,
                "Account": self.person_account_fields}[sobject]
        return [f.strip() for f in text.split(",") if f.strip()]

    def allowed_sobjects(self) -> set[str]:
        allowed = {s.strip() for s in self.sobjects.split(",") if s.strip()}
        return allowed if self.person_accounts else allowed - {"Account"}


def org15(org_id: str) -> str:
    """An org id by its case-sensitive 15-character form (an 18-character id adds a checksum)."""
    return org_id.strip()[:15]


def load_salesforce_settings(**overrides: object) -> SalesforceSettings:
    """Read ``BATON_SALESFORCE_*`` from the environment; a wrong value fails naming the variable."""
    try:
        return SalesforceSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, "BATON_SALESFORCE_")) from None

"""Which session speaks for an org: a connected app's JWT bearer flow (a certificate's private key
and an integration user) or its client-credentials flow (the app's run-as user), logged in with
simple-salesforce.

``baton salesforce connect`` logs in once, asks Salesforce who Baton is in that org
(``/services/oauth2/userinfo``: the org's id and the integration user's), and keeps the login
settings and the session in :class:`core.credentials.tokens.TokenVault`, encrypted at rest: the
session as the access token, the login settings (private key or client secret included) as the
refresh token. A session Salesforce refuses (expired, revoked) is replaced by logging in again,
once for every job of the org at that moment, in any number of processes (the vault's refresh
lease).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests
from simple_salesforce.login import SalesforceLogin

from connectors.errors import NotInstalled, PlatformRejected
from connectors.salesforce.client import ApiUsage, SalesforceClient, Session, translate
from connectors.salesforce.settings import SalesforceSettings, org15
from core.credentials.tokens import Credentials, TokenVault
from core.errors import InputError

PLATFORM = "salesforce"
SESSION_HOURS = 2  # Salesforce's default session timeout; a refused session is replaced sooner


@dataclass(frozen=True)
class OrgLogin:
    """How Baton logs in to one org (kept encrypted; never logged)."""

    method: Literal["jwt", "client_credentials"]
    consumer_key: str
    domain: str = "login"  # login, test (a sandbox) or <My Domain>.my (client credentials)
    username: str = ""  # JWT: the integration user
    # JWT: the PEM key of the certificate uploaded to the connected app
    private_key: str = field(default="", repr=False)
    consumer_secret: str = field(default="", repr=False)  # client credentials
    instance_url: str = ""  # learnt at login
    user_id: str = ""  # Baton's integration user in the org (its own writes start nothing)
    org_id: str = ""  # the org's 15-character id, learnt at connect

    def check(self) -> None:
        if not self.consumer_key:
            raise InputError("the connected app's consumer key is required")
        if self.method == "jwt":
            if not self.username or "BEGIN" not in self.private_key:
                raise InputError("JWT bearer needs the integration user's username and the PEM "
                                 "private key of the connected app's certificate")
            if self.domain not in ("login", "test"):  # the assertion's audience
                raise InputError("JWT bearer logs in at login (production) or test (a "
                                 f"sandbox), not {self.domain[:60]!r}: give --domain login or test")
        elif self.method == "client_credentials":
            if not self.consumer_secret:
                raise InputError("client credentials need the connected app's consumer secret")
            if self.domain in ("login", "test") or not self.domain.endswith(".my"):
                raise InputError("client credentials log in at the org's My Domain: give "
                                 "--domain <mydomain>.my (or <mydomain>--<sandbox>.sandbox.my)")
        else:
            raise InputError(f"unknown login method {self.method!r}: jwt or client_credentials")
        if not self.domain.replace("-", "").replace(".", "").isalnum():
            raise InputError(f"not a Salesforce login domain: {self.domain[:60]!r}")

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> OrgLogin:
        return cls(**json.loads(text))


Login = Callable[[OrgLogin, requests.Session], tuple[str, str]]  # -> (session id, instance host)


def simple_salesforce_login(login: OrgLogin, http: requests.Session) -> tuple[str, str]:
    """Log in with simple-salesforce's ``SalesforceLogin``: (session id, instance host)."""
    if login.method == "jwt":
        return SalesforceLogin(username=login.username, consumer_key=login.consumer_key,
                               privatekey=login.private_key, domain=login.domain, session=http)
    return SalesforceLogin(consumer_key=login.consumer_key,
                           consumer_secret=login.consumer_secret, domain=login.domain, session=http)


class SalesforceAuth:
    def __init__(self, settings: SalesforceSettings, vault: TokenVault, usage: ApiUsage, *,
                 login: Login = simple_salesforce_login,
                 http: requests.Session | None = None) -> None:
        self.settings, self.vault, self.usage, self.login = settings, vault, usage, login
        self.http = http or requests.Session()

    def connect(self, login: OrgLogin) -> OrgLogin:
        """Log in, learn the org and the integration user with one call, keep both; returns the
        login as stored (its ``instance_url`` and ``user_id`` filled in)."""
        login.check()
        creds = self._login(Credentials("", login.dumps(), datetime.now(UTC)))
        learnt = OrgLogin.loads(creds.refresh_token)
        sessions = self._static(Session(creds.access_token, learnt.instance_url))
        who = SalesforceClient("?", sessions, self.settings, ApiUsage(),  # the org is not known yet
                               http=self.http).userinfo()
        org, user = str(who.get("organization_id", "")), str(who.get("user_id", ""))
        if not org or not user:
            raise PlatformRejected("Salesforce's userinfo named no organization_id or user_id")
        learnt = replace(learnt, user_id=user, org_id=org15(org))
        self.vault.save(PLATFORM, org15(org), replace(creds, refresh_token=learnt.dumps()))
        return replace(learnt, consumer_secret="", private_key="")  # what may be shown

    def org_login(self, org: str) -> OrgLogin:
        creds = self.vault.get(PLATFORM, org15(org))
        if creds is None:
            raise NotInstalled(f"Salesforce org {org15(org)} is not connected (run: baton "
                               "salesforce connect)")
        return OrgLogin.loads(creds.refresh_token)

    def orgs(self) -> list[str]:
        """The connected orgs."""
        return self.vault.accounts(PLATFORM)

    def installed(self, org: str) -> bool:
        return self.vault.get(PLATFORM, org15(org)) is not None

    def sessions(self, org: str) -> Callable[[str | None], Session]:
        key = org15(org)
        self.org_login(key)  # not connected: NotInstalled now, not at the first call

        def source(rejected: str | None) -> Session:
            creds = self.vault.fresh(PLATFORM, key, self._login, rejected=rejected)
            if creds is None:
                raise NotInstalled(f"Salesforce org {key} was disconnected")
            return Session(creds.access_token, OrgLogin.loads(creds.refresh_token).instance_url)

        return source

    def client(self, org: str) -> SalesforceClient:
        return SalesforceClient(org15(org), self.sessions(org), self.settings, self.usage,
                                http=self.http)

    def _login(self, creds: Credentials) -> Credentials:
        """A new session for the login kept in ``creds`` (the vault's refresh)."""
        login = OrgLogin.loads(creds.refresh_token)
        try:
            with warnings.catch_warnings():  # its hint about approving the app, for a console
                warnings.simplefilter("ignore", UserWarning)
                session_id, host = self.login(login, self.http)
        except Exception as exc:
            error = translate(exc, "login")
            if "approved" in str(error):
                error = PlatformRejected(f"{error} (pre-authorize the integration user for the "
                                         "connected app: Admin approved users are "
                                         "pre-authorized, and its profile or a permission set)",
                                         status=400)
            raise error from None
        instance = host if host.startswith("https://") else f"https://{host}"
        return Credentials(access_token=session_id,
                           refresh_token=replace(login, instance_url=instance).dumps(),
                           expires_at=datetime.now(UTC) + timedelta(hours=SESSION_HOURS))

    @staticmethod
    def _static(session: Session) -> Callable[[str | None], Session]:
        def source(rejected: str | None) -> Session:
            if rejected is not None:
                raise PlatformRejected("Salesforce refused the new session", status=401)
            return session
        return source


def describe(login: OrgLogin) -> dict[str, Any]:
    """What may be shown of a login (no key, no secret)."""
    return {k: v for k, v in asdict(login).items() if k not in ("private_key", "consumer_secret")}

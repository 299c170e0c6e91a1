"""Which token speaks for a portal: a private app's token (one portal, from settings) or the OAuth
app flow (many portals: install URL, callback with code exchange, 30-minute access tokens refreshed
once at a time per portal, tokens encrypted at rest through :class:`core.credentials.tokens.TokenVault`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from hubspot import HubSpot

from connectors.errors import NotInstalled
from connectors.hubspot.client import HubSpotClient, TokenSource, translate
from connectors.hubspot.settings import HubSpotSettings
from connectors.ratelimit import Limiters
from core.credentials.tokens import Credentials, TokenVault
from core.errors import ConfigError
from core.settings import Settings

PLATFORM = "hubspot"
AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
STATE_TTL = 600


class HubSpotAuth:
    def __init__(self, settings: HubSpotSettings, vault: TokenVault, limiters: Limiters) -> None:
        self.settings, self.vault, self.limiters = settings, vault, limiters

    # -- per-portal clients ------------------------------------------------------------------------

    def tokens(self, portal: int) -> TokenSource:
        private = self.settings.access_token.get_secret_value()
        if private and portal == self.settings.portal_id:
            return lambda rejected: private
        if self.vault.get(PLATFORM, str(portal)) is None:
            raise NotInstalled(f"HubSpot portal {portal} is not connected (install the app in it, "
                               "or set BATON_HUBSPOT_PORTAL_ID and BATON_HUBSPOT_ACCESS_TOKEN)")

        def source(rejected: str | None) -> str:
            creds = self.vault.fresh(PLATFORM, str(portal), self.refresh, rejected=rejected)
            if creds is None:
                raise NotInstalled(f"HubSpot portal {portal} was disconnected")
            return creds.access_token

        return source

    def installed(self, portal: int) -> bool:
        try:
            self.tokens(portal)
        except NotInstalled:
            return False
        return True

    def client(self, portal: int) -> HubSpotClient:
        s = self.settings
        return HubSpotClient(portal, self.tokens(portal), self.limiters.get(portal),
                             base_url=s.api_base, max_attempts=s.max_attempts,
                             max_wait=s.max_retry_wait, timeout=s.timeout)

    # -- the OAuth app flow ------------------------------------------------------------------------

    def _app(self) -> tuple[str, str, str]:
        s = self.settings
        client_secret = (Settings.secrets_of(s.client_secret) or [""])[0]
        if not (s.client_id and client_secret and s.redirect_url):
            raise ConfigError("the HubSpot OAuth app needs BATON_HUBSPOT_CLIENT_ID, "
                              "BATON_HUBSPOT_CLIENT_SECRET and BATON_HUBSPOT_REDIRECT_URL")
        return s.client_id, client_secret, s.redirect_url

    def install_url(self) -> str:
        client_id, secret, redirect = self._app()
        query = urlencode({"client_id": client_id, "redirect_uri": redirect,
                           "scope": self.settings.scopes, "state": self._state(secret)})
        return f"{AUTHORIZE_URL}?{query}"

    def _state(self, secret: str, now: float | None = None) -> str:
        payload = f"{secrets.token_urlsafe(12)}.{int(now if now is not None else time.time())}"
        mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{payload}.{mac}"

    def check_state(self, state: str) -> bool:
        """The state came from our install URL within the last ten minutes (no CSRF)."""
        _, secret, _ = self._app()
        if not state.isascii() or len(state) > 200:  # garbage, not a state of ours
            return False
        nonce, _, rest = state.partition(".")
        issued, _, mac = rest.partition(".")
        expected = hmac.new(secret.encode(), f"{nonce}.{issued}".encode(),
                            hashlib.sha256).hexdigest()[:32]
        return (hmac.compare_digest(mac.encode(), expected.encode()) and issued.isdigit()
                and len(issued) <= 12 and 0 <= time.time() - int(issued) <= STATE_TTL)

    def connect(self, code: str) -> int:
        """Exchange an authorization code; store the portal's tokens; return its portal id."""
        client_id, secret, redirect = self._app()
        reply = self._token_call(grant_type="authorization_code", code=code, redirect_uri=redirect,
                                 client_id=client_id, client_secret=secret)
        info = self._oauth("access_tokens_api", "get", reply.access_token)
        portal = int(info.hub_id)
        self.vault.save(PLATFORM, str(portal), self._credentials(reply, " ".join(info.scopes or [])))
        return portal

    def refresh(self, creds: Credentials) -> Credentials:
        client_id, secret, _ = self._app()
        reply = self._token_call(grant_type="refresh_token", refresh_token=creds.refresh_token,
                                 client_id=client_id, client_secret=secret)
        return self._credentials(reply, creds.scopes)

    def _credentials(self, reply: Any, scopes: str) -> Credentials:
        return Credentials(access_token=reply.access_token, refresh_token=reply.refresh_token,
                           expires_at=datetime.now(UTC) + timedelta(seconds=int(reply.expires_in)),
                           scopes=scopes)

    def _token_call(self, **form: str) -> Any:
        return self._oauth("tokens_api", "create", **form)

    def _oauth(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        sdk = HubSpot(host=self.settings.api_base.rstrip("/"))
        try:
            return getattr(getattr(sdk.oauth, api), method)(
                *args, _request_timeout=self.settings.timeout, **kwargs)
        except Exception as exc:
            raise translate(exc, f"the OAuth {api.split('_')[0]} request",
                            hint="install the app again") from None

"""Where Slack installations live: Baton's own database, the bot token encrypted at rest.

A workspace's installation (the OAuth install through Bolt's flow, or ``baton slack connect``
with a bot token) is one row of the token vault (:mod:`core.credentials.tokens`): platform
``slack``, account the team id (the enterprise id for an org-wide install), the bot token and the
rest of the installation (bot ids, names, scopes, the installer) both encrypted. Baton asks for
bot scopes only, so no user token is ever stored. ``app_uninstalled`` and ``tokens_revoked``
delete the row.

:class:`SignedStates` is the OAuth ``state``: signed with the client secret, valid ten minutes,
bound to the installing browser by Bolt's state cookie; no table needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from core.credentials.tokens import Credentials, TokenVault

PLATFORM = "slack"
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
_KEPT = ("app_id", "enterprise_id", "enterprise_name", "team_id", "team_name", "bot_id",
         "bot_user_id", "bot_refresh_token", "is_enterprise_install", "installed_at", "user_id")


def account_of(enterprise_id: str | None, team_id: str | None,
               is_enterprise_install: bool | None = False) -> str:
    """The vault account of a workspace (or of an organization, for an org-wide install)."""
    return str(enterprise_id if is_enterprise_install and enterprise_id else team_id or "")


class SlackInstallations(InstallationStore):
    """slack_sdk's installation store on Baton's token vault."""

    def __init__(self, vault: TokenVault) -> None:
        self.vault = vault

    def save(self, installation: Installation) -> None:
        self.save_bot(installation.to_bot(), installer=installation.user_id)

    def save_bot(self, bot: Bot, installer: str = "") -> None:
        data = bot.to_dict()
        kept = {k: data.get(k) for k in _KEPT if k != "user_id"}
        kept["installed_at"] = float(bot.installed_at)
        kept["user_id"] = installer or self._installer(bot)
        expires = (datetime.fromtimestamp(bot.bot_token_expires_at, UTC)
                   if bot.bot_token_expires_at else NEVER)
        self.vault.save(PLATFORM, account_of(bot.enterprise_id, bot.team_id,
                                             bot.is_enterprise_install),
                        Credentials(bot.bot_token, json.dumps(kept), expires,
                                    ",".join(bot.bot_scopes)))

    def _installer(self, bot: Bot) -> str:
        creds = self.vault.get(PLATFORM, account_of(bot.enterprise_id, bot.team_id,
                                                    bot.is_enterprise_install))
        return str(json.loads(creds.refresh_token).get("user_id") or "") if creds else ""

    def find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                 is_enterprise_install: bool | None = False) -> Bot | None:
        creds = self.vault.get(PLATFORM, account_of(enterprise_id, team_id, is_enterprise_install))
        if creds is None and is_enterprise_install is False and enterprise_id:
            # a workspace of an organization that installed Baton org-wide
            creds = self.vault.get(PLATFORM, enterprise_id)
        if creds is None:
            return None
        kept: dict[str, Any] = json.loads(creds.refresh_token)
        kept.pop("user_id", None)
        return Bot(bot_token=creds.access_token, bot_scopes=creds.scopes,
                   bot_token_expires_at=(int(creds.expires_at.timestamp())
                                         if creds.expires_at < NEVER else None),
                   **kept)

    def find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                          user_id: str | None = None,
                          is_enterprise_install: bool | None = False) -> Installation | None:
        bot = self.find_bot(enterprise_id=enterprise_id, team_id=team_id,
                            is_enterprise_install=is_enterprise_install)
        if bot is None:
            return None
        creds = self.vault.get(PLATFORM, account_of(bot.enterprise_id, bot.team_id,
                                                    bot.is_enterprise_install))
        installer = json.loads(creds.refresh_token).get("user_id") if creds else None
        return Installation(app_id=bot.app_id, enterprise_id=bot.enterprise_id,
                            enterprise_name=bot.enterprise_name, team_id=bot.team_id,
                            team_name=bot.team_name, bot_token=bot.bot_token, bot_id=bot.bot_id,
                            bot_user_id=bot.bot_user_id, bot_scopes=bot.bot_scopes,
                            bot_refresh_token=bot.bot_refresh_token,
                            bot_token_expires_at=bot.bot_token_expires_at,
                            user_id=installer or "", is_enterprise_install=bot.is_enterprise_install,
                            installed_at=bot.installed_at)

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.remove(enterprise_id, team_id, False)

    def delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                            user_id: str | None = None) -> None:
        if user_id is None:  # the workspace's installation, not one user's token
            self.remove(enterprise_id, team_id, False)

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.remove(enterprise_id, team_id, False)

    def remove(self, enterprise_id: str | None, team_id: str | None,
               is_enterprise_install: bool) -> None:
        """Forget exactly the installation an event is about: a workspace's own, or an
        organization's org-wide one (never the one because of the other)."""
        self.vault.delete(PLATFORM, account_of(enterprise_id, team_id, is_enterprise_install))

    def teams(self) -> list[str]:
        """The installed workspaces (and organizations)."""
        return self.vault.accounts(PLATFORM)


class SignedStates(OAuthStateStore):
    """The OAuth ``state``: random, signed with the app's client secret, good for ``ttl``."""

    def __init__(self, secret: str, ttl: timedelta = timedelta(minutes=10),
                 clock: Any = time.time) -> None:
        self.secret, self.ttl, self.clock = secret.encode(), ttl, clock

    def issue(self, *args: Any, **kwargs: Any) -> str:
        body = f"{secrets.token_urlsafe(16)}.{int(self.clock() + self.ttl.total_seconds())}"
        return f"{body}.{self._sign(body)}"

    def consume(self, state: str) -> bool:
        if not state.isascii() or len(state) > 200 or state.count(".") != 2:
            return False
        body, _, signature = state.rpartition(".")
        expires = body.rpartition(".")[2]
        return (hmac.compare_digest(signature, self._sign(body)) and expires.isdigit()
                and int(expires) >= self.clock())

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()[:32]


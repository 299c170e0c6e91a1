"""Platform OAuth tokens, encrypted at rest, refreshed once however many jobs need them at once.

Tokens are Fernet-encrypted (AES-128-CBC + HMAC-SHA256) with the key in ``BATON_SECRET_KEY``, or,
when that is empty, a key file created next to the embedded database (mode 0600): a dump of the
database alone never holds a usable token.

A refresh takes a per-account lock in this process, then the account's refresh lease in the
database (a conditional UPDATE, committed), re-reads the row and only calls the platform if the
token is still the stale one; no transaction is open during the call. Twenty jobs on an expired
token in any number of worker processes make one refresh call; the others wait for the lease to
be released and read what it stored.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from core.errors import BatonError, ConfigError
from core.ids import new_id
from core.store import Store, TokenRow, rows_changed


@dataclass(frozen=True)
class Credentials:
    access_token: str
    refresh_token: str
    expires_at: datetime
    scopes: str = ""


Refresh = Callable[[Credentials], Credentials]


class TokenRefreshBusy(BatonError):
    """Another process holds the account's refresh lease for longer than expected (retried)."""


class TokenCipher:
    """Fernet with a key given, or read (and created on first use) from a key file."""

    def __init__(self, key: str | Path) -> None:
        self._key = key
        self._fernet_: Fernet | None = None

    @classmethod
    def from_settings(cls, secret_key: str, data_dir: Path) -> TokenCipher:
        return cls(secret_key or data_dir / "secret.key")

    @property
    def _fernet(self) -> Fernet:
        if self._fernet_ is None:
            key = self._key if isinstance(self._key, str) else _key_file(self._key)
            try:
                self._fernet_ = Fernet(key.encode())
            except (ValueError, TypeError):
                raise ConfigError("BATON_SECRET_KEY: not a Fernet key (make one with: python -c "
                                  "'from cryptography.fernet import Fernet; "
                                  "print(Fernet.generate_key().decode())')") from None
        return self._fernet_

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise ConfigError("stored tokens cannot be decrypted with this BATON_SECRET_KEY "
                              "(was the key changed? reconnect the account)") from None


def _key_file(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


class TokenVault:
    def __init__(self, store: Store, cipher: TokenCipher, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 margin: timedelta = timedelta(seconds=60), lease: timedelta = timedelta(seconds=30),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store, self.cipher, self.clock, self.margin = store, cipher, clock, margin
        self.lease, self.sleep = lease, sleep
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def save(self, platform: str, account: str, creds: Credentials) -> None:
        now = self.clock()
        with self.store.session.begin() as s:
            row = s.get(TokenRow, (platform, account))
            if row is None:
                row = TokenRow(platform=platform, account=account, installed_at=now)
                s.add(row)
            self._write(row, creds, now)

    def get(self, platform: str, account: str) -> Credentials | None:
        with self.store.session() as s:
            row = s.get(TokenRow, (platform, account))
            return self._read(row) if row is not None else None

    def delete(self, platform: str, account: str) -> bool:
        """Forget the account's credentials (an app uninstalled, its tokens revoked)."""
        with self.store.session.begin() as s:
            return rows_changed(s, sa.delete(TokenRow).where(TokenRow.platform == platform,
                                                              TokenRow.account == account)) > 0

    def accounts(self, platform: str) -> list[str]:
        """The platform's accounts that have credentials."""
        with self.store.session() as s:
            return list(s.scalars(sa.select(TokenRow.account).where(TokenRow.platform == platform)
                                  .order_by(TokenRow.account)))

    def fresh(self, platform: str, account: str, refresh: Refresh, *,
              rejected: str | None = None) -> Credentials | None:
        """Valid credentials for the account (refreshed if they expire within the margin, or if
        ``rejected`` — an access token the platform just refused — is still the stored one).

        One refresh per account, across threads and processes, and no database transaction open
        during the platform's HTTP call (a slow refresh held SQLite's write lock and stalled every
        webhook ack): a committed lease first, then the call, then the new tokens with the lease
        released. Others wait for the lease to go and read what it stored; a lease whose holder
        died expires after ``lease``."""
        creds = self.get(platform, account)
        if creds is None or not self._stale(creds, rejected):
            return creds
        with self._lock(platform, account):
            deadline = time.monotonic() + 2 * self.lease.total_seconds()
            while True:
                creds = self.get(platform, account)
                if creds is None or not self._stale(creds, rejected):
                    return creds  # another thread or process refreshed while we waited
                holder = self._take_lease(platform, account)
                if holder is not None:
                    # read again under the lease: another process may have refreshed and let
                    # the lease go between our read above and our taking it
                    creds = self.get(platform, account)
                    if creds is None or not self._stale(creds, rejected):
                        self._end_lease(platform, account, holder, None)
                        return creds
                    break
                if time.monotonic() > deadline:
                    raise TokenRefreshBusy(f"{platform} account {account}: a token refresh is "
                                           "still running elsewhere; try again")
                self.sleep(0.05)
            try:
                new = refresh(creds)
            except BaseException:
                self._end_lease(platform, account, holder, None)
                raise
            self._end_lease(platform, account, holder, new)
            return new

    def _take_lease(self, platform: str, account: str) -> str | None:
        """Take the account's refresh lease (committed at once); None if someone holds it."""
        holder, now = new_id(), self.clock()
        with self.store.session.begin() as s:
            taken = rows_changed(s, sa.update(TokenRow).where(
                TokenRow.platform == platform, TokenRow.account == account,
                sa.or_(TokenRow.refresh_lease_until.is_(None), TokenRow.refresh_lease_until < now))
                .values(refresh_lease=holder, refresh_lease_until=now + self.lease))
        return holder if taken else None

    def _end_lease(self, platform: str, account: str, holder: str,
                   new: Credentials | None) -> None:
        """Release the lease, storing ``new`` credentials with it if the lease is still ours."""
        with self.store.session.begin() as s:
            row = s.get(TokenRow, (platform, account), populate_existing=True)
            if row is None or row.refresh_lease != holder:
                return  # our lease ran out and someone else refreshed: theirs stands
            if new is not None:
                self._write(row, new, self.clock(), refreshed=True)
            row.refresh_lease, row.refresh_lease_until = None, None

    def _stale(self, creds: Credentials, rejected: str | None) -> bool:
        return creds.expires_at - self.margin <= self.clock() or creds.access_token == rejected

    def _lock(self, platform: str, account: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((platform, account), threading.Lock())

    def _read(self, row: TokenRow) -> Credentials:
        return Credentials(self.cipher.decrypt(row.access_token), self.cipher.decrypt(row.refresh_token),
                           row.expires_at, row.scopes)

    def _write(self, row: TokenRow, creds: Credentials, now: datetime, refreshed: bool = False) -> None:
        row.access_token = self.cipher.encrypt(creds.access_token)
        row.refresh_token = self.cipher.encrypt(creds.refresh_token)
        row.expires_at, row.scopes = creds.expires_at, creds.scopes
        if refreshed:
            row.refreshed_at = now

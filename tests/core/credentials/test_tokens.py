"""The token vault: encrypted at rest, one refresh however many threads and processes ask."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.credentials.tokens import Credentials, TokenCipher, TokenVault
from core.errors import ConfigError
from core.store import Store, open_store


def second_store(store: Store) -> Store:
    """Another engine on the same database: what a second worker process would hold."""
    url = store.engine.url.render_as_string(hide_password=False)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        return open_store(url, migrate=False, connect_args={"options": f"-csearch_path={schema}"})
    return open_store(url, migrate=False)


def test_two_processes_worth_of_vaults_refresh_an_expired_token_once(store: Store, tmp_path: Path) -> None:
    cipher = TokenCipher.from_settings("", tmp_path)
    other = second_store(store)
    vaults = [TokenVault(store, cipher), TokenVault(other, cipher)]  # separate pools and locks
    vaults[0].save("hubspot", "7", Credentials("old", "r1", datetime.now(UTC) - timedelta(seconds=1)))
    calls: list[str] = []

    def refresh(creds: Credentials) -> Credentials:
        calls.append(creds.refresh_token)
        time.sleep(0.2)  # a slow token endpoint widens the race
        return Credentials("new", creds.refresh_token, datetime.now(UTC) + timedelta(minutes=30))

    got: list[str] = []
    barrier = threading.Barrier(20)

    def worker(vault: TokenVault) -> None:
        barrier.wait()
        creds = vault.fresh("hubspot", "7", refresh)
        got.append(creds.access_token if creds else "none")

    threads = [threading.Thread(target=worker, args=(vaults[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert calls == ["r1"] and got == ["new"] * 20


def test_a_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Fernet key"):
        TokenCipher("not-a-key").encrypt("x")
    sealed = TokenCipher.from_settings("", tmp_path).encrypt("secret")
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        TokenCipher.from_settings("", tmp_path / "elsewhere").decrypt(sealed)


def test_no_transaction_is_open_while_the_platform_refreshes(store: Store, tmp_path: Path) -> None:
    """A slow refresh held SQLite's write lock (PostgreSQL: the token row's lock) for the whole
    HTTP call, stalling every webhook ack. During the call, another connection writes the token
    row at once, without waiting for any lock."""
    import sqlalchemy as sa

    cipher = TokenCipher.from_settings("", tmp_path)
    vault = TokenVault(store, cipher)
    vault.save("hubspot", "7", Credentials("old", "r1", datetime.now(UTC) - timedelta(seconds=1)))
    other = second_store(store)

    def refresh(creds: Credentials) -> Credentials:
        with other.engine.connect() as conn:
            if other.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout=0")  # a held lock fails at once
            else:
                conn.exec_driver_sql("SET lock_timeout = '10ms'")
            conn.execute(sa.text("UPDATE platform_tokens SET scopes = 'x' WHERE account = '7'"))
            conn.commit()
        return Credentials("new", creds.refresh_token, datetime.now(UTC) + timedelta(minutes=30))

    creds = vault.fresh("hubspot", "7", refresh)
    other.close()
    assert creds is not None and creds.access_token == "new"
    stored = vault.get("hubspot", "7")
    assert stored is not None and stored.access_token == "new"


def test_a_dead_holders_lease_expires_and_a_live_one_is_waited_for(store: Store,
                                                                  tmp_path: Path) -> None:
    import sqlalchemy as sa

    from core.credentials.tokens import TokenRefreshBusy
    from core.store import TokenRow

    cipher = TokenCipher.from_settings("", tmp_path)
    vault = TokenVault(store, cipher, lease=timedelta(seconds=0.2), sleep=lambda s: None)
    vault.save("hubspot", "7", Credentials("old", "r1", datetime.now(UTC) - timedelta(seconds=1)))

    def hold(until: datetime) -> None:
        with store.session.begin() as s:
            s.execute(sa.update(TokenRow).values(refresh_lease="someone", refresh_lease_until=until))

    def refresh(creds: Credentials) -> Credentials:
        return Credentials("new", creds.refresh_token, datetime.now(UTC) + timedelta(minutes=30))

    hold(datetime.now(UTC) + timedelta(hours=1))  # alive (as far as the row says)
    with pytest.raises(TokenRefreshBusy):
        vault.fresh("hubspot", "7", refresh)
    hold(datetime.now(UTC) - timedelta(seconds=1))  # its holder died
    creds = vault.fresh("hubspot", "7", refresh)
    assert creds is not None and creds.access_token == "new"
    with store.session() as s:
        row = s.get(TokenRow, ("hubspot", "7"))
        assert row is not None and row.refresh_lease is None and row.refresh_lease_until is None

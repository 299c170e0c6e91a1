"""Bearer keys for the generic task API. Only the SHA-256 of a key is stored; the key itself is
shown once, when it is created."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from core.store import ApiKeyRow, Store

PREFIX = "bk_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store, self.clock = store, clock

    def create(self, name: str, tenant: str) -> tuple[str, str]:
        """Return (key id, the key). The key cannot be recovered later."""
        key = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(id=uuid.uuid4().hex, name=name, tenant=tenant, key_hash=key_hash(key),
                        created_at=self.clock(), revoked_at=None)
        with self.store.session.begin() as session:
            session.add(row)
        return row.id, key

    def tenant_for(self, key: str) -> str | None:
        """The tenant of an active key, or None."""
        if not key.startswith(PREFIX) or len(key) > 200:
            return None
        digest = key_hash(key)
        with self.store.session() as session:
            row = session.scalars(sa.select(ApiKeyRow).where(ApiKeyRow.key_hash == digest,
                                                             ApiKeyRow.revoked_at.is_(None))).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return row.tenant

    def list(self) -> list[ApiKeyRow]:
        """Every key (its hash, never the key), newest first."""
        with self.store.session() as session:
            return list(session.scalars(sa.select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc())))

    def revoke(self, key_id: str) -> bool:
        """Refuse the key from now on; False if there is no active key with this id."""
        with self.store.session.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self.clock()
            return True

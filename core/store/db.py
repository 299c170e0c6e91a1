"""Database access. SQLite runs in WAL mode with a busy timeout so the CLI, web workers and job
workers can share one file; PostgreSQL is used when ``BATON_DATABASE_URL`` says so."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from core.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite would hand back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None,
                             dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ReceiptRow(Base):
    """One inference: what ran, why, what it cost and whether data left the machine."""

    __tablename__ = "receipts"
    __table_args__ = (sa.Index("ix_receipts_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    tenant: Mapped[str] = mapped_column(sa.String(128))
    kind: Mapped[str] = mapped_column(sa.String(32))
    tier: Mapped[str] = mapped_column(sa.String(16))
    language: Mapped[str] = mapped_column(sa.String(8))
    action: Mapped[str] = mapped_column(sa.String(80))  # local ... cascade, model:<name>, class:<c>
    role: Mapped[str] = mapped_column(sa.String(64))  # the model's name in the policy
    backend: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(128))
    rule: Mapped[str | None] = mapped_column(sa.String(128))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    prompt_tokens: Mapped[int] = mapped_column(sa.Integer)
    completion_tokens: Mapped[int] = mapped_column(sa.Integer)
    cached_tokens: Mapped[int] = mapped_column(sa.Integer)
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    cost_usd: Mapped[float] = mapped_column(sa.Float)
    baseline_cost_usd: Mapped[float] = mapped_column(sa.Float)
    egress: Mapped[bool] = mapped_column(sa.Boolean)
    egress_entities: Mapped[list[str]] = mapped_column(sa.JSON)
    masked_entities: Mapped[list[str]] = mapped_column(sa.JSON)
    masked: Mapped[dict[str, int] | None] = mapped_column(sa.JSON)  # entity -> values replaced
    # a draft a person approved (step 8b): who, and how many words they changed (0: as written)
    approved_by: Mapped[str | None] = mapped_column(sa.String(32))
    edit_distance: Mapped[int | None] = mapped_column(sa.Integer)
    # the model portfolio (step 9): the replica that answered, and private or external
    replica: Mapped[str | None] = mapped_column(sa.String(255))
    privacy_class: Mapped[str | None] = mapped_column(sa.String(16))


class InboxKey(Base):
    """A platform delivery id seen before (source + external id): the dedupe record."""

    __tablename__ = "inbox_keys"

    source: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class JobRow(Base):
    """Durable work: the source of truth for what must run (the queue only dispatches ids)."""

    __tablename__ = "jobs"
    __table_args__ = (sa.Index("ix_jobs_state_run_after", "state", "run_after"),
                      sa.Index("ix_jobs_tenant_subject", "tenant", "subject"),
                      sa.Index("ix_jobs_updated_at", "updated_at"))

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(64))
    tenant: Mapped[str] = mapped_column(sa.String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # whose data the job carries ("contact:123", "record:003..."): what an erasure looks up
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    max_attempts: Mapped[int] = mapped_column(sa.Integer)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WriteBackRow(Base):
    """A write-back to a platform, recorded under its idempotency key before the call."""

    __tablename__ = "writebacks"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    target: Mapped[str] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the latest attempt
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """A bearer key for the generic task API; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    tenant: Mapped[str] = mapped_column(sa.String(128))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TokenRow(Base):
    """A platform account's OAuth tokens, encrypted (see :mod:`core.credentials.tokens`)."""

    __tablename__ = "platform_tokens"

    platform: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    access_token: Mapped[str] = mapped_column(sa.Text)
    refresh_token: Mapped[str] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scopes: Mapped[str] = mapped_column(sa.Text)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # who is refreshing the token now, and until when (see core.credentials.tokens.TokenVault.fresh)
    refresh_lease: Mapped[str | None] = mapped_column(sa.String(32))
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReplyRow(Base):
    """A platform call that waits for its job: answered in the response, or later by callback."""

    __tablename__ = "action_replies"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    platform: Mapped[str] = mapped_column(sa.String(32))
    account: Mapped[str] = mapped_column(sa.String(128))
    reply: Mapped[str | None] = mapped_column(sa.String(8))  # None, "sync" or "later"
    state: Mapped[str] = mapped_column(sa.String(16))  # waiting, ready, sending, done
    outputs: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (sa.Index("ix_action_replies_pending", "platform", "account", "state"),)


class DraftRow(Base):
    """A draft held for a reviewer's decision before it is written (an approval rule of the
    policy): the held job, its engine result, where the review message is, and the decision."""

    __tablename__ = "drafts"
    __table_args__ = (sa.Index("ix_drafts_state_expires_at", "state", "expires_at"),
                      sa.Index("ix_drafts_tenant_subject", "tenant", "subject"))

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    job_kind: Mapped[str] = mapped_column(sa.String(64))
    tenant: Mapped[str] = mapped_column(sa.String(128))
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(32))  # the task kind
    # pending -> approving -> approved | discarding -> discarded | expired | stale | failed
    state: Mapped[str] = mapped_column(sa.String(16))
    version: Mapped[int] = mapped_column(sa.Integer)  # 1, then one more per regeneration
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # the engine result (see core.review)
    original: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # the output as generated
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # of the context fields it used
    review: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # workspace, channel, ts, reviewers
    decision_job: Mapped[str | None] = mapped_column(sa.String(32))
    decided_by: Mapped[str | None] = mapped_column(sa.String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovedCopyRow(Base):
    """The brand's record of approved copy: the draft as generated and as approved, kept past
    the retention period (a contact's erasure still removes it)."""

    __tablename__ = "approved_copy"
    __table_args__ = (sa.Index("ix_approved_copy_tenant_subject", "tenant", "subject"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)  # the draft's id
    tenant: Mapped[str] = mapped_column(sa.String(128))
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(32))
    original: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    approved: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    edited: Mapped[bool] = mapped_column(sa.Boolean)
    edit_distance: Mapped[int] = mapped_column(sa.Integer)  # words inserted, deleted or changed
    approved_by: Mapped[str] = mapped_column(sa.String(32))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    receipt_id: Mapped[str] = mapped_column(sa.String(32))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine; for SQLite the parent folder is created and WAL switched on. SQL
    parameters (customer data) are kept out of error messages and logs."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"BATON_DATABASE_URL: not a database URL ({url!r})") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, hide_parameters=True, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


def rows_changed(session: Any, statement: Any) -> int:
    """Rows an UPDATE or DELETE changed."""
    return int(session.execute(statement).rowcount)


class Store:
    """An engine and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)
        self._write_lock_file: Any = None
        self._write_lock_guard = threading.Lock()

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold while writing on a hot path (the inbox's group commit).

        SQLite lets one writer in at a time and makes the others *sleep* in its busy handler (1,
        2, 5, 10, 15, 20, 25 ms ... before trying again), which turns two web processes committing
        at once into tail latency. A blocking ``flock`` beside the database queues them in the
        kernel instead and wakes the next one the moment the lock is free. No-op on PostgreSQL,
        whose row locks need no help."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with self._write_lock_guard:  # one holder per process: flock is per open file
            if self._write_lock_file is None:
                self._write_lock_file = open(f"{Path(database).expanduser()}.write.lock", "a")  # noqa: SIM115
            fcntl.flock(self._write_lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._write_lock_file, fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()
        if self._write_lock_file is not None:
            self._write_lock_file.close()
            self._write_lock_file = None


_MIGRATION_LOCK_ID = 0x6261746F6E  # "baton": the PostgreSQL advisory lock all migrating processes share


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process at a time: gunicorn workers, the job worker and the CLI all upgrade
    on start, and two of them creating the same table at once would fail the second."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with open(f"{Path(database).expanduser()}.migrate.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_store(url: str, *, migrate: bool = True, **kwargs: Any) -> Store:
    """Connect, and bring the schema up to date unless ``migrate`` is False."""
    engine = make_engine(url, **kwargs)
    if migrate:
        try:
            upgrade(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            orig = getattr(exc, "orig", None)
            reason = str(orig) if orig is not None else str(exc)
            raise ConfigError(
                f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                f"{reason.splitlines()[0]}"
            ) from None
    return Store(engine)

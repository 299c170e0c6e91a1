"""Durable jobs: the inbox that absorbs duplicate deliveries, and the job life cycle.

Platforms deliver at least once. :meth:`Jobs.accept` records, in one transaction, a dedupe key per
platform id and a job for each new one; the web layer acks only after it commits. Workers
:meth:`claim` a job with a lease and count the attempt; :meth:`succeed` and :meth:`fail` end it
(``done``; or back to ``queued`` with a jittered backoff; ``failed`` for a permanent error;
``dead`` when attempts run out). A queue only carries job ids: :meth:`due` lists jobs that need a
(re-)dispatch — queued ones whose dispatch was lost and running ones whose lease expired because
their worker died — which the reconciler sends again. Dedupe keys, ended jobs, write-back records
and reply rows are kept for ``retention`` (``BATON_RETENTION_DAYS``: 30 days by default, never
less than 7, longer than any platform's retry horizon), then purged.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.ids import new_id
from core.store import DraftRow, InboxKey, JobRow, ReplyRow, Store, WriteBackRow, rows_changed
from core.store.db import UTCDateTime

CHECKPOINT_EVERY = 64  # inbox commits between WAL checkpoints (about 400 pages of log)
QUEUED, RUNNING, DONE, FAILED, DEAD = "queued", "running", "done", "failed", "dead"
HELD = "held"  # its draft waits for a reviewer (core.review); a decision ends it
ENDED = (DONE, FAILED, DEAD)  # a job in one of these states runs no more
DRAFTS_ENDED = ("approved", "discarded", "expired", "stale", "failed")  # core.review.FINAL


@dataclass(frozen=True)
class NewJob:
    """One item of a delivery: its platform id (None: no dedupe) and the work it asks for."""

    external_id: str | None
    kind: str
    tenant: str
    payload: dict[str, Any]
    subject: str | None = None  # whose data it carries, see core.retention.subject_for


@dataclass(frozen=True)
class Accepted:
    """What a delivery produced: the job id for each item, and which were duplicates."""

    job_ids: list[str]
    duplicate: list[bool]

    @property
    def new(self) -> list[str]:
        return [j for j, d in zip(self.job_ids, self.duplicate, strict=True) if not d]


def utcnow() -> datetime:
    return datetime.now(UTC)


_Key = tuple[str, str]  # (source, external id): a dedupe key


class _Statement:
    """A compiled INSERT and the bind processors that turn a row dict into its DBAPI params."""

    def __init__(self, statement: Any, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        table = statement.table
        names: list[str] = list(compiled.positiontup)
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name in names:
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None and isinstance(table.c[name].type, UTCDateTime):
                # a delivery's rows share one timestamp in five columns: format it once
                process = functools.lru_cache(maxsize=8)(process)
            self._columns.append((name, process))

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[name] if process is None else process(row[name])
                     for name, process in self._columns)


class _SqliteInbox:
    """The inbox's statements for SQLite (see :meth:`Jobs._write_sqlite`)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        keys: Any = InboxKey.__table__
        self.keys = _Statement(sqlite.insert(keys).on_conflict_do_nothing(), dialect)
        self.jobs = _Statement(sa.insert(cast(Any, JobRow.__table__)), dialect)
        lookup = sa.select(keys.c.job_id).where(keys.c.source == sa.bindparam("source"),
                                                keys.c.external_id == sa.bindparam("external_id"))
        compiled = lookup.compile(dialect=dialect)
        if list(compiled.positiontup or []) != ["source", "external_id"]:
            raise RuntimeError(f"unexpected parameter order in {compiled.string!r}")
        self.lookup: str = compiled.string


class Jobs:
    """Job operations on a store. ``clock`` and ``rand`` are injectable for tests."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random, max_attempts: int = 5,
                 backoff_base: float = 2.0, backoff_cap: float = 300.0,
                 retention: timedelta = timedelta(days=7)) -> None:
        self.store, self.clock, self.rand = store, clock, rand
        self.max_attempts, self.backoff_base, self.backoff_cap = max_attempts, backoff_base, backoff_cap
        self.retention = retention
        self._key_stmt: Any = None
        self._sqlite_sql: _SqliteInbox | None = None
        self._commits = self._checkpointed = 0  # inbox commits on SQLite, see checkpoint()
        self._job_insert = sa.insert(cast(Any, JobRow.__table__))

    def _key_insert(self) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING RETURNING source, external_id, built once: the same
        statement object is compiled once and then served from SQLAlchemy's cache."""
        if self._key_stmt is None:
            dialect = self.store.engine.dialect.name
            table: Any = InboxKey.__table__
            if dialect == "postgresql":
                insert: Any = postgresql.insert(table)
            elif dialect == "sqlite":
                insert = sqlite.insert(table)
            else:
                raise NotImplementedError(f"no conflict-free insert for {dialect}")
            self._key_stmt = insert.on_conflict_do_nothing().returning(table.c.source,
                                                                       table.c.external_id)
        return self._key_stmt

    def accept(self, source: str, items: Sequence[NewJob], *, dispatched: bool = False) -> Accepted:
        """Record a delivery in one transaction: new platform ids become jobs; ids seen before
        (also in this same delivery, or concurrently) are reported as duplicates. With
        ``dispatched`` the caller promises to dispatch the new jobs right after the commit (if
        that fails, the reconciler re-dispatches them after its grace period)."""
        return self.accept_many([(source, items)], dispatched=dispatched)[0]

    def accept_many(self, deliveries: Sequence[tuple[str, Sequence[NewJob]]], *,
                    dispatched: bool = False) -> list[Accepted]:
        """Several deliveries in one transaction (group commit), each judged as by
        :meth:`accept` in order: a platform id already recorded, or met earlier in this same
        call, makes its item a duplicate that points at the existing job. All rows are built
        before the transaction opens, so the database's write lock is held only for the
        statements."""
        now = self.clock()
        planned: dict[_Key, str] = {}  # (source, external id) -> its job id
        plan: list[list[tuple[_Key | None, str]]] = []  # per delivery, per item: its key and job id
        rows: list[tuple[_Key | None, dict[str, Any]]] = []  # the job each new key (or no key) makes
        for source, items in deliveries:
            entries: list[tuple[_Key | None, str]] = []
            for item in items:
                key = None if item.external_id is None else (source, item.external_id)
                if key is not None and key in planned:
                    entries.append((key, planned[key]))
                    continue
                job_id = new_id()
                if key is not None:
                    planned[key] = job_id
                entries.append((key, job_id))
                rows.append((key, {
                    "id": job_id, "source": source, "kind": item.kind, "tenant": item.tenant,
                    "payload": item.payload, "subject": item.subject, "state": QUEUED,
                    "attempts": 0,
                    "max_attempts": self.max_attempts, "run_after": now, "lease_until": None,
                    "dispatched_at": now if dispatched else None, "result": None, "error": None,
                    "created_at": now, "updated_at": now}))
            plan.append(entries)
        keys = [{"source": src, "external_id": ext, "job_id": job_id, "created_at": now}
                for (src, ext), job_id in planned.items()]
        write = self._write_sqlite if self.store.engine.dialect.name == "sqlite" else self._write
        inserted, existing = write(keys, rows)
        planned.update(existing)
        results: list[Accepted] = []
        for entries in plan:
            job_ids: list[str] = []
            duplicate: list[bool] = []
            for key, job_id in entries:
                is_new = key is None or key in inserted
                if key is not None:
                    job_id = planned[key]
                    inserted.discard(key)  # a later copy in this call is a duplicate
                job_ids.append(job_id)
                duplicate.append(not is_new)
            results.append(Accepted(job_ids, duplicate))
        return results

    def _write(self, keys: list[dict[str, Any]], rows: list[tuple[_Key | None, dict[str, Any]]]
               ) -> tuple[set[_Key], dict[_Key, str]]:
        """Insert the keys (one statement; RETURNING says which were new), look up the job ids of
        those already there, insert the jobs of the new ones. Returns (inserted, existing)."""
        with self.store.session.begin() as session:
            conn = session.connection()
            inserted: set[_Key] = set()
            if keys:
                inserted = {(src, ext) for src, ext in conn.execute(self._key_insert(), keys)}
            existing: dict[_Key, str] = {}
            seen = [(k["source"], k["external_id"]) for k in keys]
            for source in {src for src, ext in seen if (src, ext) not in inserted}:
                exts = [ext for src, ext in seen if src == source and (src, ext) not in inserted]
                found = conn.execute(sa.select(InboxKey.external_id, InboxKey.job_id)
                                     .where(InboxKey.source == source,
                                            InboxKey.external_id.in_(exts)))
                existing.update({(source, ext): job_id for ext, job_id in found})
            new_rows = [row for key, row in rows if key is None or key in inserted]
            if new_rows:
                conn.execute(self._job_insert, new_rows)
        return inserted, existing

    def _write_sqlite(self, keys: list[dict[str, Any]],
                      rows: list[tuple[_Key | None, dict[str, Any]]]
                      ) -> tuple[set[_Key], dict[_Key, str]]:
        """:meth:`_write` for SQLite, on the DBAPI connection with statements compiled once.

        This is the embedded default's ack path: SQLAlchemy's per-statement work cost twice what
        SQLite's own did for a one-event delivery (``bench/ack_path.py``). The statements and the
        bind processors (datetime and JSON formats) are SQLAlchemy's own, so the rows are stored
        exactly as the ORM would store them. SQLite runs a statement in microseconds, so each key
        is inserted on its own and ``rowcount`` says whether it was new."""
        sql = self._sqlite_sql or _SqliteInbox(self.store.engine.dialect)
        self._sqlite_sql = sql
        key_params = [((k["source"], k["external_id"]), sql.keys.params(k)) for k in keys]
        job_params = [(key, sql.jobs.params(row)) for key, row in rows]
        inserted: set[_Key] = set()
        existing: dict[_Key, str] = {}
        raw = self.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if not raw.info.get("baton_inbox"):
                cursor.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
                # Acked means on disk: the log is synced at every commit, not only at
                # checkpoints (NORMAL could lose the last acked deliveries to a power cut);
                # the group commit shares one fsync among all the deliveries it holds.
                cursor.execute("PRAGMA synchronous=FULL")
                raw.info["baton_inbox"] = True
            with self.store.write_lock():  # only the statements: see Store.write_lock
                for key, params in key_params:
                    cursor.execute(sql.keys.sql, params)
                    if cursor.rowcount == 1:
                        inserted.add(key)
                        continue
                    found = cursor.execute(sql.lookup, key).fetchone()
                    if found is not None:
                        existing[key] = found[0]
                new_rows = [params for key, params in job_params if key is None or key in inserted]
                if new_rows:
                    cursor.executemany(sql.jobs.sql, new_rows)
                raw.commit()
            self._commits += 1
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        return inserted, existing

    def checkpoint(self) -> bool:
        """Fold SQLite's write-ahead log back into the database, off the ack path; True if done.

        SQLite checkpoints on its own inside the commit that takes the log past 1,000 pages,
        holding the write lock, and every request waiting on it, through two fsyncs. The
        connections the inbox writes on turn that off; instead the inbox's committing thread calls
        this once its requests are answered, and every ``CHECKPOINT_EVERY`` commits of this process
        a passive checkpoint runs, which does not block writers (``bench.ack_path`` measures the
        difference). The other processes' connections (workers, the CLI) keep SQLite's automatic
        checkpoints."""
        if self.store.engine.dialect.name != "sqlite" or \
                self._commits - self._checkpointed < CHECKPOINT_EVERY:
            return False
        self._checkpointed = self._commits
        with self.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        return True

    def get(self, job_id: str) -> JobRow | None:
        with self.store.session() as session:
            return session.get(JobRow, job_id)

    def take_undispatched(self, limit: int = 100) -> list[str]:
        """Due queued jobs that nobody has dispatched yet (the web process records without
        dispatching), marked dispatched by this call: with several worker processes polling,
        each id goes to one of them."""
        now = self.clock()
        pending = (sa.select(JobRow.id).where(JobRow.state == QUEUED, JobRow.dispatched_at.is_(None),
                                              JobRow.run_after <= now)
                   .order_by(JobRow.created_at).limit(limit))
        with self.store.session() as session:  # a read first: an idle poll takes no write lock
            if session.execute(pending.limit(1)).first() is None:
                return []
        with self.store.session.begin() as session:
            taken = session.execute(
                sa.update(JobRow).where(JobRow.id.in_(pending.scalar_subquery()),
                                        JobRow.dispatched_at.is_(None))
                .values(dispatched_at=now).returning(JobRow.id)
                .execution_options(synchronize_session=False))
            return list(taken.scalars())

    def kinds(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Each job's kind, by id (the ids that exist)."""
        with self.store.session() as session:
            rows = session.execute(sa.select(JobRow.id, JobRow.kind)
                                   .where(JobRow.id.in_(list(job_ids))))
            return {job_id: kind for job_id, kind in rows}

    def mark_dispatched(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        with self.store.session.begin() as session:
            session.execute(sa.update(JobRow).where(JobRow.id.in_(list(job_ids)))
                            .values(dispatched_at=self.clock()))

    def claim(self, job_id: str, lease: timedelta) -> JobRow | None:
        """Take the job for ``lease`` if it is due (queued, or running with an expired lease);
        None when another worker has it or it has ended."""
        now = self.clock()
        with self.store.session.begin() as session:
            claimed = rows_changed(session,
                sa.update(JobRow)
                .where(JobRow.id == job_id, JobRow.run_after <= now,
                       sa.or_(JobRow.state == QUEUED,
                              sa.and_(JobRow.state == RUNNING, JobRow.lease_until < now)))
                .values(state=RUNNING, lease_until=now + lease, attempts=JobRow.attempts + 1,
                        updated_at=now))
        return self.get(job_id) if claimed else None

    def extend(self, jobs: Sequence[JobRow], lease: timedelta) -> int:
        """Hold claimed ``jobs`` for ``lease`` more, while this worker still has them (running,
        and not claimed again since: the attempt count is the one this claim set). Returns how
        many were extended."""
        now = self.clock()
        extended = 0
        with self.store.session.begin() as session:
            for job in jobs:
                extended += rows_changed(session, sa.update(JobRow).where(
                    JobRow.id == job.id, JobRow.state == RUNNING,
                    JobRow.attempts == job.attempts).values(lease_until=now + lease))
        return extended

    def succeed(self, job_id: str, result: dict[str, Any]) -> bool:
        return self._end(job_id, DONE, result=result, error=None)

    def hold(self, job_id: str, result: dict[str, Any]) -> bool:
        """The running job's draft waits for a reviewer: it is neither retried nor purged, and
        its writes may still be made (by the decision that releases it)."""
        return self._end(job_id, HELD, result=result, error=None)

    def settle_held(self, job_id: str, result: dict[str, Any] | None, error: str | None) -> bool:
        """A held job's end, once its draft is decided: done, or failed with the reason."""
        with self.store.session.begin() as session:
            return bool(rows_changed(session, sa.update(JobRow).where(
                JobRow.id == job_id, JobRow.state == HELD).values(
                state=DONE if error is None else FAILED, result=result, error=error,
                updated_at=self.clock())))

    def fail(self, job_id: str, error: str, *, permanent: bool = False) -> str:
        """Record a failed attempt of a running job: ``failed`` if permanent, ``dead`` when
        attempts are used up, else back to ``queued`` after an exponential backoff with full
        jitter. Returns the state the job is in afterwards (a job that is not running, e.g. one
        another worker ended meanwhile, is left as it is)."""
        job = self.get(job_id)
        if job is None:
            return "missing"
        if permanent or job.attempts >= job.max_attempts:
            ended = FAILED if permanent else DEAD
            return ended if self._end(job_id, ended, result=None, error=error) else job.state
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (job.attempts - 1))
        now = self.clock()
        with self.store.session.begin() as session:
            changed = rows_changed(session,
                sa.update(JobRow).where(JobRow.id == job_id, JobRow.state == RUNNING)
                .values(state=QUEUED, lease_until=None, error=error, dispatched_at=None,
                        run_after=now + timedelta(seconds=delay * (0.5 + self.rand() / 2)),
                        updated_at=now))
        return QUEUED if changed else job.state

    def _end(self, job_id: str, state: str, *, result: dict[str, Any] | None,
             error: str | None) -> bool:
        now = self.clock()
        with self.store.session.begin() as session:
            return bool(rows_changed(session,
                sa.update(JobRow).where(JobRow.id == job_id, JobRow.state == RUNNING)
                .values(state=state, result=result, error=error, lease_until=None,
                        updated_at=now)))

    def due(self, *, redispatch_after: timedelta = timedelta(seconds=60),
            limit: int = 500) -> list[str]:
        """Jobs that need a dispatch now: queued and due, never dispatched or dispatched long
        ago (the message was lost), or running with an expired lease (the worker died)."""
        now = self.clock()
        query = (
            sa.select(JobRow.id)
            .where(sa.or_(
                sa.and_(JobRow.state == QUEUED, JobRow.run_after <= now,
                        sa.or_(JobRow.dispatched_at.is_(None),
                               JobRow.dispatched_at < now - redispatch_after)),
                sa.and_(JobRow.state == RUNNING, JobRow.lease_until < now),
            ))
            .order_by(JobRow.run_after)
            .limit(limit)
        )
        with self.store.session() as session:
            return list(session.scalars(query))

    def retry(self, job_id: str) -> bool:
        """Send a failed or dead job round again (by command)."""
        now = self.clock()
        with self.store.session.begin() as session:
            return bool(rows_changed(session,
                sa.update(JobRow).where(JobRow.id == job_id, JobRow.state.in_([FAILED, DEAD]))
                .values(state=QUEUED, attempts=0, run_after=now, dispatched_at=None,
                        lease_until=None, updated_at=now)))

    def list(self, *, state: str | None = None, limit: int = 50) -> list[JobRow]:
        query = sa.select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
        if state is not None:
            query = query.where(JobRow.state == state)
        with self.store.session() as session:
            return list(session.scalars(query))

    def cleanup(self) -> int:
        """Purge what is older than the retention (dedupe keys, ended jobs with their payloads,
        write-back records, reply rows); return how many rows went."""
        return sum(purge(self.store, self.clock() - self.retention).values())


def purge(store: Store, cutoff: datetime) -> dict[str, int]:
    """Delete what is older than ``cutoff``: dedupe keys, ended jobs (their payloads and drafts
    with them), write-back records, reply rows and decided review drafts. Receipts stay: they
    hold no customer data; so does the approved copy, the brand's record (a contact's erasure
    removes theirs, :func:`core.retention.forget`)."""
    done: dict[str, int] = {}
    statements: dict[str, Any] = {
        "inbox_keys": sa.delete(InboxKey).where(InboxKey.created_at < cutoff),
        "jobs": sa.delete(JobRow).where(JobRow.updated_at < cutoff, JobRow.state.in_(ENDED)),
        "writebacks": sa.delete(WriteBackRow).where(WriteBackRow.created_at < cutoff),
        "replies": sa.delete(ReplyRow).where(ReplyRow.created_at < cutoff),
        "drafts": sa.delete(DraftRow).where(DraftRow.updated_at < cutoff,
                                            DraftRow.state.in_(DRAFTS_ENDED)),
    }
    with store.session.begin() as session:
        for name, statement in statements.items():
            done[name] = rows_changed(session, statement)
    return done

"""Answer in the response if the job is quick, else complete later by callback — exactly one of
the two, even when the job finishes at the moment the response gives up waiting.

A platform call that waits for a job (a HubSpot workflow action; a Salesforce Flow action later)
opens a reply row keyed by the platform's callback id. Two parties race to set ``reply`` once,
with a conditional UPDATE (``WHERE reply IS NULL``):

* the worker, when the outputs are ready: ``sync`` — the waiting request answers with them;
* the request, when its budget runs out: ``later`` — it answers "pending" and the worker, which
  then loses the race, marks the outputs ``ready`` for a callback.

Ready callbacks of one account are claimed together (``sending``, with a lease so a crashed sender's
claim expires) and completed in one batch call; a redelivered request finds the row and answers the
same way again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.store import ReplyRow, Store, rows_changed

SYNC, LATER = "sync", "later"
WAITING, READY, SENDING, DONE = "waiting", "ready", "sending", "done"


class Replies:
    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store, self.clock = store, clock

    def open(self, key: str, *, platform: str, account: str) -> None:
        insert = postgresql.insert if self.store.engine.dialect.name == "postgresql" else sqlite.insert
        with self.store.session.begin() as s:
            s.execute(insert(ReplyRow).values(
                key=key, platform=platform, account=account, reply=None,
                state=WAITING, outputs=None, claimed_at=None, created_at=self.clock(),
                completed_at=None).on_conflict_do_nothing())

    def discard(self, key: str) -> None:
        """Forget a reply row still waiting for its first answer (its request was refused)."""
        with self.store.session.begin() as s:
            s.execute(sa.delete(ReplyRow).where(ReplyRow.key == key, ReplyRow.reply.is_(None),
                                                ReplyRow.state == WAITING))

    def get(self, key: str) -> ReplyRow | None:
        with self.store.session() as s:
            return s.get(ReplyRow, key)

    def answer(self, key: str, outputs: dict[str, Any]) -> bool:
        """The worker's side: True if the waiting request will answer with ``outputs``; False if it
        gave up already, in which case the outputs are now ready for a callback."""
        with self.store.session.begin() as s:
            won = rows_changed(s, sa.update(ReplyRow).where(ReplyRow.key == key, ReplyRow.reply.is_(None))
                            .values(reply=SYNC, outputs=outputs, state=DONE,
                                    completed_at=self.clock()))
            if won:
                return True
            s.execute(sa.update(ReplyRow).where(ReplyRow.key == key, ReplyRow.state == WAITING)
                      .values(outputs=outputs, state=READY))
            return False

    def give_up(self, key: str) -> ReplyRow | None:
        """The request's side when its budget is spent: the row after the race (``reply`` is
        ``later`` if the request won, ``sync`` if the outputs arrived first)."""
        with self.store.session.begin() as s:
            s.execute(sa.update(ReplyRow).where(ReplyRow.key == key, ReplyRow.reply.is_(None))
                      .values(reply=LATER))
            return s.get(ReplyRow, key)  # a new session: read from the database

    def claim(self, platform: str, account: str, *, lease: timedelta, limit: int = 100) -> list[ReplyRow]:
        """Take the account's ready callbacks (and ones whose sender's lease expired)."""
        now = self.clock()
        claimable = sa.or_(ReplyRow.state == READY,
                           sa.and_(ReplyRow.state == SENDING, ReplyRow.claimed_at < now - lease))
        with self.store.session.begin() as s:
            keys = list(s.scalars(
                sa.select(ReplyRow.key).where(
                    ReplyRow.platform == platform, ReplyRow.account == account, claimable)
                .order_by(ReplyRow.created_at).limit(limit)))
            claimed = []
            for key in keys:  # one conditional UPDATE each: two senders never take the same row
                if rows_changed(s, sa.update(ReplyRow).where(ReplyRow.key == key, claimable)
                                .values(state=SENDING, claimed_at=now)):
                    claimed.append(key)
            return list(s.scalars(sa.select(ReplyRow).where(ReplyRow.key.in_(claimed))
                                  .order_by(ReplyRow.created_at)))

    def sent(self, keys: list[str]) -> None:
        with self.store.session.begin() as s:
            s.execute(sa.update(ReplyRow).where(ReplyRow.key.in_(keys))
                      .values(state=DONE, completed_at=self.clock()))

    def set_aside(self, keys: list[str], state: str) -> None:
        """Callbacks that will never be completed (``expired``: the platform stopped waiting;
        ``refused``: it rejected them): ended, so no sender tries them again."""
        if not keys:
            return
        with self.store.session.begin() as s:
            s.execute(sa.update(ReplyRow).where(ReplyRow.key.in_(keys))
                      .values(state=state, completed_at=self.clock()))

    def release(self, keys: list[str]) -> None:
        """The send failed: make the rows ready again for the next attempt."""
        with self.store.session.begin() as s:
            s.execute(sa.update(ReplyRow).where(ReplyRow.key.in_(keys), ReplyRow.state == SENDING)
                      .values(state=READY, claimed_at=None))

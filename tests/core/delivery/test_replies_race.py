"""The reply race under real concurrency: many threads, and two processes, answering and giving
up on the same calls at once, on SQLite and PostgreSQL. Exactly one side wins each call."""

from __future__ import annotations

import multiprocessing
import threading

from core.delivery.replies import DONE, LATER, READY, SYNC, Replies
from core.store import Store, open_store

KEYS = 40


def _give_up_all(url: str, schema: str | None, keys: list[str], ready: object,
                 go: object) -> None:
    """A second process: its own engine and connections, giving up on every call."""
    kwargs = {"connect_args": {"options": f"-csearch_path={schema}"}} if schema else {}
    store = open_store(url, migrate=False, **kwargs)
    Replies(store).get(keys[0])  # connected
    ready.set()  # type: ignore[attr-defined]
    go.wait(30)  # type: ignore[attr-defined]
    replies = Replies(store)
    for key in keys:
        replies.give_up(key)
    store.close()


def _check(replies: Replies, keys: list[str], answered: dict[str, bool]) -> None:
    for key in keys:
        row = replies.get(key)
        assert row is not None
        if answered[key]:  # the worker won: the request answers with the outputs
            assert (row.reply, row.state) == (SYNC, DONE)
        else:  # the request gave up first: the outputs wait for the callback
            assert (row.reply, row.state) == (LATER, READY), (key, row.reply, row.state)
        assert row.outputs == {"k": key}


def test_many_threads_race_and_each_call_has_one_winner(store: Store) -> None:
    replies = Replies(store)
    keys = [f"hubspot:7:race-{i}" for i in range(KEYS)]
    for key in keys:
        replies.open(key, platform="hubspot", account="7")
    answered: dict[str, bool] = {}
    barrier = threading.Barrier(8)

    def worker(part: int) -> None:
        barrier.wait()
        for key in keys[part::4]:
            answered[key] = replies.answer(key, {"k": key})

    def requester(part: int) -> None:
        barrier.wait()
        for key in reversed(keys[part::4]):
            replies.give_up(key)

    threads = [threading.Thread(target=f, args=(i,)) for i in range(4) for f in (worker, requester)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    _check(replies, keys, answered)


def test_two_processes_race_and_each_call_has_one_winner(store: Store) -> None:
    replies = Replies(store)
    keys = [f"hubspot:7:proc-{i}" for i in range(KEYS)]
    for key in keys:
        replies.open(key, platform="hubspot", account="7")
    url = store.engine.url.render_as_string(hide_password=False)
    schema = None
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no shared pool or lock
    ready, go = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_give_up_all, args=(url, schema, list(reversed(keys)), ready, go))
    other.start()
    assert ready.wait(60)  # both sides connected: they start together
    go.set()
    answered = {key: replies.answer(key, {"k": key}) for key in keys}
    other.join(60)
    assert other.exitcode == 0
    _check(replies, keys, answered)

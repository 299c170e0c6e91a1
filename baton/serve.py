"""Running the web app under gunicorn and the job workers under Huey's consumer."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from core.jobs.queue import Dispatcher
from core.jobs.runner import Handler
from core.registry import Registry
from core.settings import Settings
from webhooks.app import json_log_formatter


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(json_log_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("huey").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings, self.host, self.port = settings, host, port
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", f"{self.host}:{self.port}")
        self.cfg.set("workers", self.settings.web_workers)
        self.cfg.set("threads", self.settings.web_threads)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("accesslog", None)
        self.cfg.set("timeout", 30)
        self.cfg.set("graceful_timeout", 10)

    def load(self) -> Any:
        # Runs in each worker after the fork: database connections are the worker's own.
        from baton.wiring import build_services
        from webhooks.app import create_app

        configure_logging()
        return create_app(build_services(self.settings))


def serve(settings: Settings, host: str, port: int) -> None:
    from core.store import open_store

    # Migrate (and fail on a bad database URL) once, in the master, with a one-line CLI error,
    # rather than in every worker where gunicorn would only report "Worker failed to boot".
    open_store(settings.resolved_database_url).close()
    _Gunicorn(settings, host, port).run()


def work(settings: Settings, handlers: Registry[Handler] | None = None) -> None:
    """Run the job workers and the reconciler until SIGINT or SIGTERM."""
    from baton.wiring import build_services

    configure_logging()
    services = build_services(settings, handlers=handlers)
    dispatcher = services.dispatcher
    assert isinstance(dispatcher, Dispatcher)
    # Idle worker threads look at the queue every dispatch_poll_seconds (Huey's default backs
    # off to 10 s, which a job arriving after a quiet minute would wait out; Redis blocks).
    poll = settings.dispatch_poll_seconds
    consumer = dispatcher.huey.create_consumer(
        workers=settings.worker_threads, worker_type="thread", periodic=False,
        check_worker_health=True, initial_delay=poll, backoff=1.0, max_delay=poll)
    stop = threading.Event()

    def warm_up() -> None:
        try:
            services.warm_up()
        except Exception:  # the first job reports it (a missing model file, say)
            logging.getLogger("baton.worker").exception("could not load the model at start")

    def reconcile_forever() -> None:
        while True:  # at start too: pick up whatever a previous run left behind
            try:
                dispatcher.reconcile()
            except Exception:
                logging.getLogger("baton.worker").exception("reconcile failed; will retry")
            if stop.wait(settings.reconcile_seconds):
                return

    def pump_forever() -> None:
        while True:  # new jobs from the web processes, a few milliseconds after their ack
            try:
                sent = dispatcher.pump()
            except Exception:
                logging.getLogger("baton.worker").exception("dispatch pump failed; will retry")
                sent = 0
            if sent == 0 and stop.wait(settings.dispatch_poll_seconds):
                return

    threading.Thread(target=warm_up, name="baton-warm-up", daemon=True).start()
    threading.Thread(target=reconcile_forever, name="baton-reconciler", daemon=True).start()
    threading.Thread(target=pump_forever, name="baton-pump", daemon=True).start()
    try:
        consumer.run()
    finally:
        stop.set()


def up(settings: Settings, host: str, port: int) -> None:
    """The embedded default in one command: a worker process beside the web server."""
    worker = subprocess.Popen([sys.executable, "-m", "baton.cli", "worker"])
    try:
        serve(settings, host, port)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()

"""`baton worker` with one extra job kind, ``test.writeback``, that writes to a fake platform
through the outbox between two random pauses (so a kill -9 can land before, during or after the
write). Run as ``python -m tests.fakes.writeback_worker PLATFORM_URL``; settings from BATON_*."""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.request
from typing import Any

from baton.serve import work
from baton.wiring import default_handlers
from core.delivery.outbox import Outbox
from core.settings import load_settings
from core.store import JobRow, open_store


def main(platform: str) -> None:
    settings = load_settings()
    outbox = Outbox(open_store(settings.resolved_database_url))

    def call(req: urllib.request.Request) -> dict[str, Any]:
        with urllib.request.urlopen(req, timeout=5) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def handle(job: JobRow) -> dict[str, Any]:
        key = f"wb:{job.id}"
        time.sleep(random.uniform(0, 0.3))

        def perform() -> dict[str, Any]:
            return call(urllib.request.Request(
                platform + "/writes", data=json.dumps({"key": key}).encode(),
                headers={"content-type": "application/json"}, method="POST"))

        def find() -> dict[str, Any] | None:
            results = call(urllib.request.Request(f"{platform}/writes?key={key}"))["results"]
            return results[0] if results else None

        response = outbox.once(key, job_id=job.id, target="fake", perform=perform, find=find)
        time.sleep(random.uniform(0, 0.3))
        return response

    handlers = default_handlers(lambda: None)  # type: ignore[arg-type, return-value]
    handlers.register("test.writeback", handle)
    work(settings, handlers)


if __name__ == "__main__":
    main(sys.argv[1])

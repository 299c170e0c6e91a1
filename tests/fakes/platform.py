"""A loopback stand-in for a CRM's write API that counts every effective write."""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import JsonHandler, LoopbackServer


class FakePlatform(LoopbackServer):
    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with fake._lock:
                    fake.writes[body["key"]] += 1
                    n = fake.writes[body["key"]]
                self.send_json(201, {"id": f"{body['key']}#{n}"})

            def do_GET(self) -> None:
                key = parse_qs(urlsplit(self.path).query).get("key", [""])[0]
                with fake._lock:
                    n = fake.writes.get(key, 0)
                self.send_json(200, {"results": [{"id": f"{key}#{n}"}] if n else []})

        super().__init__(Handler)

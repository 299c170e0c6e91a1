"""A loopback stand-in for a CRM's write API that counts every effective write."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakePlatform:
    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with fake._lock:
                    fake.writes[body["key"]] += 1
                    n = fake.writes[body["key"]]
                self._send(201, {"id": f"{body['key']}#{n}"})

            def do_GET(self) -> None:
                key = parse_qs(urlsplit(self.path).query).get("key", [""])[0]
                with fake._lock:
                    n = fake.writes.get(key, 0)
                self._send(200, {"results": [{"id": f"{key}#{n}"}] if n else []})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePlatform:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

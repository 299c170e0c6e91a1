"""A recording reverse proxy on loopback: what a network tap in front of a model server would
see. It forwards every request to ``upstream`` and keeps each body; ``hold()`` parks requests
until ``release()`` (so a test can kill the server behind a request in flight); when the
upstream is gone it answers 502, as a load balancer in front of a dead server does."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from typing import Any

from tests.fakes.loopback import JsonHandler, LoopbackServer


class Tap(LoopbackServer):
    def __init__(self, upstream: str) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.bodies: list[bytes] = []
        self.held = 0
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        tap = self

        class Handler(JsonHandler):
            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with tap._lock:
                    tap.bodies.append(body)
                    tap.held += not tap._open.is_set()
                tap._open.wait(60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                conn = http.client.HTTPConnection(str(target.hostname), target.port, timeout=120)
                try:
                    conn.request(method, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except OSError as exc:
                    self.send_json(502, {"error": {"message": f"bad gateway: {exc}",
                                                   "type": "server_error"}})
                    return
                finally:
                    conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        super().__init__(Handler)
        self.base_url = self.url + "/v1"

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def text(self) -> str:
        """Every body received, decoded (JSON escapes undone by the caller where needed)."""
        return "\n".join(b.decode("utf-8") for b in self.bodies)

    def __exit__(self, *exc: Any) -> None:
        self.release()
        super().__exit__(*exc)

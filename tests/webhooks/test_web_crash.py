"""Guarantee 1: kill -9 gunicorn workers repeatedly under signed load; every event that got a 2xx
is in the inbox, and every event that did not is accepted on the sender's retry."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from connectors.signatures import hubspot_v1
from core.settings import Settings
from core.store import InboxKey, open_store

SECRET = "s3cret"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, event_id: int) -> int:
    body = json.dumps([{"eventId": event_id, "subscriptionId": 1, "portalId": 7,
                        "objectId": event_id, "subscriptionType": "contact.creation"}]).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-HubSpot-Signature": hubspot_v1(SECRET, body)})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # connection reset by the killed worker: not acked


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_web_workers_lose_no_acked_event(tmp_path: Path) -> None:
    env = {**os.environ, "BATON_DATA_DIR": str(tmp_path), "BATON_HUBSPOT_CLIENT_SECRET": SECRET}
    port = _port()
    baton = str(Path(sys.executable).with_name("baton"))
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([baton, "serve", "--port", str(port)], env=env,
                              stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}/hubspot/webhooks"
    deadline = time.monotonic() + 30
    while post(url, -1) != 200:
        assert time.monotonic() < deadline and server.poll() is None
        time.sleep(0.2)
    acked: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()
    next_id = iter(range(1_000_000))

    def client() -> None:
        end = time.monotonic() + 6
        while time.monotonic() < end:
            with lock:
                event = next(next_id)
            status = post(url, event)
            with lock:
                (acked if status == 200 else refused).append(event)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    kills = 0
    try:
        for _ in range(4):
            time.sleep(1.2)
            wait_until = time.monotonic() + 3
            while not (pids := children(server.pid)) and time.monotonic() < wait_until:
                time.sleep(0.05)  # the master is respawning the last one we killed
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                kills += 1
        for t in threads:
            t.join()
        retried = [e for e in refused if post(url, e) == 200]  # the sender retries
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        log.close()
    store = open_store(Settings(data_dir=tmp_path).resolved_database_url)
    with store.session() as s:
        stored = {int(k.split(":")[-1]) for k in
                  s.scalars(sa.select(InboxKey.external_id).where(InboxKey.source == "hubspot"))}
    store.close()
    assert kills == 4, (tmp_path / "serve.log").read_text()[-2000:]
    assert len(acked) > 100
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acked events are missing"
    assert set(retried) <= stored and len(retried) == len(refused)

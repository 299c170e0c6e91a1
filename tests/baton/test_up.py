"""`baton up` as a user runs it: real gunicorn, a real worker process, SqliteHuey, the real model."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.signatures import hubspot_v1
from tests.conftest import PLUMBING_BRIEF

pytestmark = pytest.mark.model


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def running(tmp_path: Path, model_path: Path,
            greedy_policy: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, "BATON_DATA_DIR": str(tmp_path), "BATON_MODEL_PATH": str(model_path),
           "BATON_CONFIG": str(greedy_policy),
           "BATON_HUBSPOT_CLIENT_SECRET": "s3cret", "BATON_WEB_WORKERS": "1"}
    port = _port()
    baton = str(Path(sys.executable).with_name("baton"))
    proc = subprocess.Popen([baton, "up", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if call(base + "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "baton up did not start"
        time.sleep(0.2)
    yield base, env
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def test_up_serves_webhooks_and_runs_tasks(running: tuple[str, dict[str, str]]) -> None:
    base, env = running
    body = json.dumps([{"eventId": 1, "portalId": 5, "objectId": 9, "subscriptionId": 2,
                        "subscriptionType": "contact.creation"}]).encode()
    status, reply = call(base + "/hubspot/webhooks", body, {
        "Content-Type": "application/json", "X-HubSpot-Signature": hubspot_v1("s3cret", body)})
    assert (status, reply) == (200, {"accepted": 1, "duplicates": 0})

    baton = str(Path(sys.executable).with_name("baton"))
    key = subprocess.run([baton, "keys", "create", "--name", "t", "--tenant", "acme"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    task = json.dumps({"kind": "email", "brief": PLUMBING_BRIEF,
                       "context": {"first_name": "Maya", "company": "Acme"}}).encode()
    status, made = call(base + "/v1/tasks", task, {"Content-Type": "application/json",
                                                   "Authorization": f"Bearer {key}"})
    assert status == 202
    deadline = time.monotonic() + 60
    while True:
        status, shown = call(base + f"/v1/tasks/{made['id']}", None,
                             {"Authorization": f"Bearer {key}"})
        if shown["state"] in ("done", "failed", "dead") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert shown["state"] == "done", shown
    assert shown["result"]["output"]["body"].startswith("Hi Maya,")

"""Slack's 3 seconds under gunicorn: time to the acknowledgement of signed ``/baton`` commands
while a worker keeps the embedded model busy answering them, against a loopback Slack.

Baton runs as it ships (``baton serve``: gunicorn, BATON_WEB_WORKERS x BATON_WEB_THREADS; one
``baton worker`` with the embedded local model; SQLite in WAL mode unless BATON_DATABASE_URL
says otherwise); the workspace is connected with ``baton slack connect`` against the fake Slack
Web API of the tests. 16 concurrent clients post slash commands signed as Slack signs them
(``/baton reply <question>``: each one a model job), first with the worker stopped (the ack path
alone), then with the worker generating; a few answers are waited for in the channel.

Last line: ack_p99_ms=<busy model> budget_share=<p99 / 3000 ms> busy_vs_idle_p99=<ratio>
answered=<answers posted>/<asked for> first_answer_s=<seconds to the first post>.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench.ack_path import _port, _wait, p99
from connectors.signatures import slack_v0
from core.policy import default_policy_text
from tests.fakes.slack import FakeSlack

SIGNING = "bench-signing-secret"
TEAM = "T0BENCH01"
CLIENTS = 16
COMMANDS = 400
BUDGET_MS = 3000.0
ANSWERS = 3  # model jobs waited for (the base model writes one reply in several seconds)


def body(fake: FakeSlack, n: int, text: str) -> bytes:
    return urlencode({"token": "x", "team_id": TEAM, "team_domain": "bench", "channel_id": "C1",
                      "channel_name": "marketing", "user_id": "U1", "user_name": "ann",
                      "command": "/baton", "text": text, "api_app_id": "A0BATON",
                      "response_url": fake.response_url(TEAM), "trigger_id": f"{n}.{n}.bench"}).encode()


async def _load(url: str, bodies: list[bytes], expect: str = "Working on it") -> list[float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            data = queue.get_nowait()
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Slack-Request-Timestamp": ts,
                       "X-Slack-Signature": slack_v0(SIGNING, ts, data)}
            t = time.perf_counter()
            async with session.post(url + "/slack/events", data=data, headers=headers) as r:
                got = await r.json(content_type=None)
                if r.status != 200 or expect not in str(got.get("text")):
                    errors += 1
            latencies.append((time.perf_counter() - t) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    if errors:
        raise RuntimeError(f"{errors} commands were not acknowledged")
    return latencies


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="baton-slack-ack-"))
    policy = data / "baton.toml"
    # the embedded policy, with its fallback greetings on (a reply has no customer's name)
    # and the workspace enabled (no CRM: a reply needs none)
    policy.write_text(default_policy_text().replace("# fallback_greetings", "fallback_greetings")
                      + f"\n[slack.workspaces.{TEAM}]\ntenants = []\n", encoding="utf-8")
    with FakeSlack() as fake:
        ws = fake.add_workspace(TEAM)
        fake.add_channel(TEAM, "C1")
        env = {**os.environ, "BATON_DATA_DIR": str(data), "BATON_CONFIG": str(policy),
               "BATON_SLACK_SIGNING_SECRET": SIGNING, "BATON_SLACK_API_URL": fake.api_url,
               "BATON_SLACK_RESPONSE_HOSTS": "127.0.0.1"}
        baton = str(Path(sys.executable).with_name("baton"))
        subprocess.run([baton, "slack", "connect", "--token", ws.token], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        port = _port()
        web = subprocess.Popen([baton, "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        worker: subprocess.Popen[bytes] | None = None
        try:
            _wait(url + "/healthz", web)
            asyncio.run(_load(url, [body(fake, i, "help") for i in range(50)], "*Baton*"))  # warm up
            questions = [body(fake, 10_000 + i, f"reply My order {i} has not arrived, where is it?")
                         for i in range(COMMANDS)]
            idle = asyncio.run(_load(url, questions[: COMMANDS // 2]))  # no worker: the ack path
            worker = subprocess.Popen([baton, "worker"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            started = time.monotonic()
            while not fake.posts("C1") and time.monotonic() - started < 600:  # the model is busy
                time.sleep(0.5)
            first_answer = time.monotonic() - started
            busy = asyncio.run(_load(url, questions[COMMANDS // 2:]))
            while len(fake.posts("C1")) < ANSWERS and time.monotonic() - started < 900:
                time.sleep(0.5)
            answered = len(fake.posts("C1"))
        finally:
            for proc in (web, worker):
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
    workers = os.environ.get("BATON_WEB_WORKERS", "2")
    threads = os.environ.get("BATON_WEB_THREADS", "4")
    print(f"{CLIENTS} concurrent clients; gunicorn {workers} workers x {threads} threads; "
          f"{len(idle)} commands with no worker, {len(busy)} while a worker runs the embedded model")
    for name, lat in (("idle", idle), ("busy", busy)):
        print(f"{name}: p50 {statistics.median(lat):6.1f} ms  p99 {p99(lat):6.1f} ms  "
              f"max {max(lat):6.1f} ms")
    print(f"ack_p99_ms={p99(busy):.1f} budget_share={p99(busy) / BUDGET_MS:.3f} "
          f"busy_vs_idle_p99={p99(busy) / p99(idle):.2f} answered={answered}/{ANSWERS} "
          f"first_answer_s={first_answer:.1f}")


if __name__ == "__main__":
    main()

"""Time to 2xx for signed HubSpot webhooks, including the durable inbox, against a bare Flask
endpoint that returns 200 for the same bodies under the same gunicorn settings, in one run.

32 concurrent clients (aiohttp) on loopback post pre-signed batches with unique event ids, first
one event per request, then 100 events per request. The one-event load runs in alternating rounds
(Baton, bare, Baton, bare, ...) and the ratio is the median of the rounds' ratios, so a burst of
load from elsewhere on this shared machine skews one round, not the figure. Baton runs on its
embedded default (SQLite in WAL mode, SqliteHuey) unless BATON_DATABASE_URL / BATON_QUEUE_URL say
otherwise. Both servers: gunicorn with BATON_WEB_WORKERS x BATON_WEB_THREADS (default 2 x 4).

Last line: ratio=<requests/s Baton / bare, one-event batches> p99_ms=<Baton, one-event>
batch100_events_s=<Baton events/s with 100-event batches>.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from connectors.signatures import hubspot_v1

SECRET = "bench-secret"
CLIENTS = 32
ROUNDS = 5
SINGLE = 1000  # one-event requests per server per round
BATCHES = 60


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (405 on a GET is fine)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_baton(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {**os.environ, "BATON_DATA_DIR": str(data), "BATON_HUBSPOT_CLIENT_SECRET": SECRET}
    baton = str(Path(sys.executable).with_name("baton"))
    proc = subprocess.Popen([baton, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc)
    return proc, url


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    workers = os.environ.get("BATON_WEB_WORKERS", "2")
    threads = os.environ.get("BATON_WEB_THREADS", "4")
    proc = subprocess.Popen([gunicorn, "-w", workers, "--threads", threads, "-k", "gthread",
                             "-b", f"127.0.0.1:{port}", "bench.bare_app:create()"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/hubspot/webhooks", proc)
    return proc, url


def bodies(count: int, per: int, start: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for r in range(count):
        events = [{"eventId": start + r * per + i, "subscriptionId": 1, "portalId": 62515,
                   "occurredAt": 1_700_000_000_000, "subscriptionType": "contact.creation",
                   "attemptNumber": 0, "objectId": 100 + i} for i in range(per)]
        body = json.dumps(events).encode()
        out.append((body, {"Content-Type": "application/json",
                           "X-HubSpot-Signature": hubspot_v1(SECRET, body),
                           "X-HubSpot-Signature-Version": "v1"}))
    return out


async def _load(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> tuple[float, list[float]]:
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            body, headers = queue.get_nowait()
            t = time.perf_counter()
            async with session.post(url + "/hubspot/webhooks", data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{errors} requests were not answered 200")
    return elapsed, latencies


def run(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> tuple[float, list[float]]:
    """Requests per second and each request's latency in ms."""
    elapsed, lat = asyncio.run(_load(url, requests))
    return len(requests) / elapsed, [x * 1000 for x in lat]


def p99(latencies: list[float]) -> float:
    return sorted(latencies)[int(0.99 * (len(latencies) - 1))]


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="baton-ack-"))
    baton, baton_url = start_baton(data)
    bare, bare_url = start_bare()
    try:
        warm = bodies(200, 1, 10_000_000)
        run(baton_url, warm)
        run(bare_url, warm)
        ratios: list[float] = []
        rps: dict[str, list[float]] = {"baton": [], "bare": []}
        lat: dict[str, list[float]] = {"baton": [], "bare": []}
        for r in range(ROUNDS):
            singles = bodies(SINGLE, 1, r * SINGLE)  # new event ids for Baton every round
            for name, url in (("baton", baton_url), ("bare", bare_url)):
                got, latencies = run(url, singles)
                rps[name].append(got)
                lat[name].extend(latencies)
            ratios.append(rps["baton"][-1] / rps["bare"][-1])
        batches = bodies(BATCHES, 100, 1_000_000)
        batch_rps, batch_lat = run(baton_url, batches)
    finally:
        for proc in (baton, bare):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    print(f"{CLIENTS} concurrent clients, {ROUNDS} rounds of {SINGLE} one-event requests, "
          f"{BATCHES} x 100 events; "
          f"gunicorn {os.environ.get('BATON_WEB_WORKERS', '2')} workers x "
          f"{os.environ.get('BATON_WEB_THREADS', '4')} threads (both servers); "
          f"Baton's store: {'PostgreSQL' if 'BATON_DATABASE_URL' in os.environ else 'SQLite (WAL)'}")
    for name in ("baton", "bare"):
        print(f"{name:5}: {statistics.median(rps[name]):7.0f} req/s (median of {ROUNDS} rounds: "
              f"{', '.join(f'{x:.0f}' for x in rps[name])})  p50 {statistics.median(lat[name]):6.1f} ms"
              f"  p99 {p99(lat[name]):6.1f} ms")
    print(f"ratio by round: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"baton, 100-event batches: {batch_rps:6.1f} req/s, p99 {p99(batch_lat):.1f} ms")
    print(f"ratio={statistics.median(ratios):.2f} p99_ms={p99(lat['baton']):.1f} "
          f"batch100_events_s={batch_rps * 100:.0f}")


if __name__ == "__main__":
    main()

"""Salesforce REST access for one org, through simple-salesforce.

Every call goes through :meth:`SalesforceClient._call`:

* 401 ``INVALID_SESSION_ID`` (an expired or revoked session): log in again, once however many jobs
  of the org hit it at once (:mod:`connectors.salesforce.auth` keeps the session in the token
  vault), and repeat the call;
* 403 ``REQUEST_LIMIT_EXCEEDED``, 5xx, timeouts and connection trouble: backoff with jitter; after
  ``BATON_SALESFORCE_MAX_ATTEMPTS`` the call raises :class:`PlatformUnavailable` and the job is
  retried later by the job runner;
* 404 is :class:`RecordNotFound`, other 4xx :class:`PlatformRejected` with Salesforce's error codes;
* the ``Sforce-Limit-Info`` header of every answer feeds :class:`ApiUsage`: ``/metrics`` shows it,
  and Baton slows down near ``BATON_SALESFORCE_SLOW_SHARE`` of the org's daily allocation and
  stops calling (the job waits) above ``BATON_SALESFORCE_STOP_SHARE``.

Writes for many records go in one call: sObject Collections (``composite/sobjects``, up to 200
records, ``allOrNone: false``: one record's failure is that record's) for updates and for upserts
by an external id.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.errors import ConnectorError, PlatformRejected, PlatformUnavailable, RecordNotFound
from connectors.salesforce.settings import SalesforceSettings

log = logging.getLogger("baton.salesforce")

COLLECTION_SIZE = 200  # records per sObject Collections call
USAGE_STALE = 300.0  # seconds after which a reading over the stop share no longer stops calls
IN_CHUNK = 200  # ids per "WHERE Id IN (...)" (SOQL statements may be 100,000 characters)


@dataclass(frozen=True)
class Session:
    """A logged-in session: its access token and the org's instance URL."""

    access_token: str
    instance_url: str


SessionSource = Callable[[str | None], Session]  # (rejected access token or None) -> a session


class ApiUsage:
    """The latest ``Sforce-Limit-Info`` of each org: API calls used in the rolling 24 hours and
    the org's allocation. With a ``path``, what a process learns is also written there (at most
    once a second), so that the web process's ``/metrics`` shows what the workers saw."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.path, self.clock = path, clock
        self._seen: dict[str, tuple[int, int]] = {}
        self._at: dict[str, float] = {}
        self._wall: dict[str, float] = {}  # when each reading was taken (epoch: across processes)
        self._written = -1.0
        self._lock = threading.Lock()

    def record(self, org: str, used: int, total: int) -> None:
        with self._lock:
            self._seen[org], self._at[org] = (used, total), self.clock()
            self._wall[org] = time.time()
            if self.path is not None and self.clock() - self._written >= 1.0:
                self._written = self.clock()
                self._save()

    def get(self, org: str) -> tuple[int, int] | None:
        with self._lock:
            return self._seen.get(org)

    def fresh(self, org: str, within: float) -> bool:
        """Whether the org's usage was seen within ``within`` seconds (the allocation is a
        rolling 24 hours: an old reading says little about now)."""
        with self._lock:
            return org in self._at and self.clock() - self._at[org] <= within

    def all(self) -> dict[str, tuple[int, int]]:
        """Every org's usage, the newest reading of this process's and what others wrote."""
        with self._lock:
            mine = {org: (*pair, self._wall[org]) for org, pair in self._seen.items()}
        merged = _newest(self._stored(), mine)
        return {org: (used, total) for org, (used, total, _) in merged.items()}

    def _stored(self) -> dict[str, tuple[int, int, float]]:
        """What the file holds, entries that are not three numbers left out."""
        try:
            raw = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}
        except (OSError, ValueError):
            return {}
        out = {}
        for org, entry in raw.items() if isinstance(raw, dict) else ():
            try:
                used, total, at = entry
                out[str(org)] = (int(used), int(total), float(at))
            except (TypeError, ValueError, OverflowError):
                continue
        return out

    def _save(self) -> None:
        assert self.path is not None
        mine = {org: (*pair, self._wall[org]) for org, pair in self._seen.items()}
        stored = {org: list(entry) for org, entry in _newest(self._stored(), mine).items()}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(stored))
            os.replace(tmp, self.path)
        except OSError:
            log.warning("could not keep the Salesforce API usage", extra={"path": str(self.path)})

    def share(self, org: str) -> float:
        seen = self.get(org)
        return seen[0] / seen[1] if seen and seen[1] > 0 else 0.0


def _newest(*sources: dict[str, tuple[int, int, float]]) -> dict[str, tuple[int, int, float]]:
    out: dict[str, tuple[int, int, float]] = {}
    for source in sources:
        for org, entry in source.items():
            if org not in out or entry[2] >= out[org][2]:
                out[org] = entry
    return out


@dataclass(frozen=True)
class Saved:
    """One record's result in an sObject Collections answer."""

    id: str | None
    ok: bool
    created: bool = False
    code: str = ""  # Salesforce's statusCode of the first error, e.g. CANNOT_UPDATE_CONVERTED_LEAD
    message: str = ""


def soql_quote(value: str) -> str:
    """A string literal for SOQL (backslash and quote escaped; no other character is special)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def id_list(ids: Sequence[str]) -> str:
    """``('a','b')`` for ``WHERE Id IN``; ids are checked to be Salesforce ids."""
    for record_id in ids:
        if not is_id(record_id):
            raise ValueError(f"not a Salesforce record id: {record_id[:40]!r}")
    return "(" + ",".join(soql_quote(i) for i in ids) + ")"


def is_id(value: str) -> bool:
    """A Salesforce record id: 15 case-sensitive characters, or 18 whose last three are the
    checksum of the first 15 (Salesforce refuses a wrong one, and would fail a whole query)."""
    if not (len(value) in (15, 18) and value.isascii() and value.isalnum()):
        return False
    return len(value) == 15 or value[15:] == _checksum(value[:15])


def _checksum(id15: str) -> str:
    """The three characters Salesforce appends to a 15-character id: for each group of five,
    which characters are upper case, as a letter of A-Z0-5."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    return "".join(alphabet[sum(1 << i for i, c in enumerate(id15[k:k + 5]) if "A" <= c <= "Z")]
                   for k in (0, 5, 10))


def id18(value: str) -> str:
    """A record id in its 18-character form (what queries return)."""
    return value if len(value) == 18 else value + _checksum(value)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SalesforceClient:
    """One org's REST API; safe to share between threads (a session is read per call)."""

    def __init__(self, org: str, sessions: SessionSource, settings: SalesforceSettings,
                 usage: ApiUsage, *, http: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.org, self.sessions, self.settings, self.usage = org, sessions, settings, usage
        self.http = http or requests.Session()
        self.sleep = sleep

    # -- the API Baton uses ----------------------------------------------------------------------

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record the query finds, following ``nextRecordsUrl`` pages."""
        result = self._call(lambda sf: sf.query_all(soql, timeout=self.settings.timeout), "query")
        return [_plain(r) for r in result.get("records", [])]

    def update_many(self, records: Sequence[dict[str, Any]]) -> list[Saved]:
        """Update records (each ``{"attributes": {"type": ...}, "Id": ..., field: value}``), up to
        200 per call; each record's own result."""
        saved: list[Saved] = []
        for part in chunks(records, COLLECTION_SIZE):
            # one type after the other: Salesforce takes at most ten runs of a type per call
            order = sorted(range(len(part)), key=lambda i: part[i]["attributes"]["type"])
            body = {"allOrNone": False, "records": [
                {"attributes": part[i]["attributes"], "id": part[i]["Id"],
                 **{k: v for k, v in part[i].items() if k not in ("attributes", "Id")}}
                for i in order]}
            answer = self._call(self._restful("composite/sobjects", "PATCH", body),
                                "composite/sobjects")
            results = _saved(answer, len(part))
            back = [results[0]] * len(part)
            for position, i in enumerate(order):
                back[i] = results[position]
            saved.extend(back)
        return saved

    def upsert_many(self, sobject: str, external_id: str,
                    records: Sequence[dict[str, Any]]) -> list[Saved]:
        """Create or update records by an external-id field, up to 200 per call: a record whose
        key exists is updated, never created twice."""
        saved: list[Saved] = []
        for part in chunks(records, COLLECTION_SIZE):
            body = {"allOrNone": False,
                    "records": [{"attributes": {"type": sobject}, **r} for r in part]}
            answer = self._call(self._restful(f"composite/sobjects/{sobject}/{external_id}",
                                              "PATCH", body), f"composite/sobjects/{sobject}")
            saved.extend(_saved(answer, len(part)))
        return saved

    def _restful(self, path: str, method: str, body: Any) -> Callable[[Salesforce], Any]:
        def call(sf: Salesforce) -> Any:
            return sf.restful(path, method=method, json=body, timeout=self.settings.timeout)
        return call

    def userinfo(self) -> dict[str, Any]:
        """Who Baton is in this org (``user_id``, ``organization_id``): one call."""
        def call(sf: Salesforce) -> Any:  # oauth2() takes no timeout: the same call with one
            return sf._call_salesforce("GET", sf.oauth2_url + "userinfo", name="userinfo",
                                       timeout=self.settings.timeout).json()
        return dict(self._call(call, "userinfo") or {})

    def describe(self, sobject: str) -> dict[str, Any]:
        return dict(self._call(lambda sf: sf.restful(f"sobjects/{sobject}/describe",
                                                      timeout=self.settings.timeout),
                               f"describe {sobject}") or {})

    def limits(self) -> dict[str, Any]:
        return dict(self._call(lambda sf: sf.restful("limits", timeout=self.settings.timeout),
                               "limits") or {})

    # -- every call --------------------------------------------------------------------------------

    def _call(self, call: Callable[[Salesforce], Any], what: str) -> Any:
        rejected: str | None = None
        relogged = False
        attempt = 0
        while attempt < self.settings.max_attempts:
            attempt += 1
            self._pace()
            session = self.sessions(rejected)
            sf = Salesforce(instance_url=session.instance_url, session_id=session.access_token,
                            version=self.settings.api_version, session=self.http)
            try:
                result = call(sf)
            except SalesforceExpiredSession:
                if relogged:
                    raise PlatformRejected(f"Salesforce refused a new session for {what} "
                                           "(reconnect the org: baton salesforce connect)",
                                           status=401) from None
                rejected, relogged = session.access_token, True
                attempt -= 1  # a new session is not a retry: the call gets its attempts
                continue
            except SalesforceError as exc:
                self._note_usage(sf)
                error = translate(exc, what)
                if not isinstance(error, PlatformUnavailable):
                    raise error from None
                if attempt == self.settings.max_attempts:
                    raise error from None
                wait = self._backoff(attempt)
                log.info("Salesforce call retried", extra={"org": self.org, "call": what,
                                                           "attempt": attempt, "wait": wait})
                self.sleep(wait)
                continue
            except requests.RequestException as exc:
                if attempt == self.settings.max_attempts:
                    raise PlatformUnavailable(f"Salesforce unreachable for {what}: "
                                              f"{type(exc).__name__}") from None
                self.sleep(self._backoff(attempt))
                continue
            self._note_usage(sf)
            return result
        raise PlatformUnavailable(f"Salesforce {what}: gave up after "
                                  f"{self.settings.max_attempts} attempts")

    def _note_usage(self, sf: Salesforce) -> None:
        usage = sf.api_usage.get("api-usage")
        if usage is not None:
            self.usage.record(self.org, int(usage.used), int(usage.total))

    def _pace(self) -> None:
        """Slow down near the org's daily allocation, and stop above its stop share (until the
        reading is ``USAGE_STALE`` seconds old: then one call looks again)."""
        if not self.usage.fresh(self.org, USAGE_STALE):
            return
        share = self.usage.share(self.org)
        if share >= self.settings.stop_share:
            used, total = self.usage.get(self.org) or (0, 0)
            raise PlatformUnavailable(
                f"org {self.org} has used {used} of its {total} daily API calls (over "
                f"BATON_SALESFORCE_STOP_SHARE={self.settings.stop_share:g}); the job waits")
        if share >= self.settings.slow_share:
            span = max(self.settings.stop_share - self.settings.slow_share, 1e-6)
            self.sleep(min(5.0, 5.0 * (share - self.settings.slow_share) / span))

    def _backoff(self, attempt: int) -> float:
        wait: float = min(self.settings.max_retry_wait, 0.5 * 2 ** (attempt - 1))
        return wait * random.uniform(0.5, 1)


def translate(exc: BaseException, what: str) -> ConnectorError:
    """A simple-salesforce error as Baton's: retryable trouble, a record that is gone, or a
    refusal with Salesforce's error codes (never the session token or the request body)."""
    if isinstance(exc, SalesforceAuthenticationFailed):
        return PlatformRejected(f"Salesforce login failed for {what}: {exc.code}: "
                                f"{str(exc.message)[:200]}", status=400)
    codes = error_codes(getattr(exc, "content", None))
    text = "; ".join(f"{c}: {m}" for c, m in codes)[:500] or type(exc).__name__
    status = int(getattr(exc, "status", 0) or 0)
    if isinstance(exc, SalesforceRefusedRequest) and any(c == "REQUEST_LIMIT_EXCEEDED"
                                                         for c, _ in codes):
        return PlatformUnavailable(f"Salesforce {what}: {text}")
    if isinstance(exc, SalesforceResourceNotFound):
        return RecordNotFound(f"Salesforce {what}: {text}")
    if status >= 500 or status in (408, 429):
        return PlatformUnavailable(f"Salesforce {what}: HTTP {status}: {text}")
    if isinstance(exc, SalesforceMalformedRequest | SalesforceRefusedRequest) or 400 <= status < 500:
        return PlatformRejected(f"Salesforce refused {what}: {text}", status=status or None)
    return PlatformUnavailable(f"Salesforce {what}: {text}")


def error_codes(content: Any) -> list[tuple[str, str]]:
    """(errorCode, message) pairs of a Salesforce error body (a list of ``{"errorCode",
    "message"}``, or an OAuth ``{"error", "error_description"}``)."""
    items = content if isinstance(content, list) else [content] if isinstance(content, dict) else []
    out = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("statusCode") or item.get("error") or ""
            message = item.get("message") or item.get("error_description") or ""
            out.append((str(code), str(message)[:200]))
    return out


def _saved(answer: Any, n: int) -> list[Saved]:
    if not isinstance(answer, list) or len(answer) != n:
        raise PlatformUnavailable(f"Salesforce answered {n} records with "
                                  f"{len(answer) if isinstance(answer, list) else 'no list'}")
    out = []
    for item in answer:
        errors = error_codes(item.get("errors") or [])
        code, message = errors[0] if errors else ("", "")
        out.append(Saved(id=item.get("id"), ok=bool(item.get("success")),
                         created=bool(item.get("created")), code=code, message=message))
    return out


def _plain(record: Any) -> dict[str, Any]:
    """A query record as plain dicts, without its ``attributes`` (nested relationships too)."""
    if not isinstance(record, dict):
        return {}
    return {k: _plain(v) if isinstance(v, dict) else v for k, v in record.items()
            if k != "attributes"}

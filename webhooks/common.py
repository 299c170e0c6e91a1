"""Request plumbing shared by the platform blueprints: raw body, original URL, JSON parsing,
and recording a delivery in the inbox before the ack."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from flask import current_app, request

from connectors.http import BadRequest, ServiceUnavailable, parse_json
from core.errors import describe_unexpected
from core.jobs.lifecycle import ENDED, Accepted, NewJob
from core.store import InboxKey, JobRow
from webhooks.services import Services, services_of

log = logging.getLogger("baton.web")
POLL = 0.05  # seconds between two looks at what a waiting request waits for
T = TypeVar("T")
# What the inbox's columns hold (core/store/db.py)
_ID_CHARS = int(InboxKey.__table__.c.external_id.type.length)  # type: ignore[attr-defined]
_TENANT_CHARS = int(JobRow.__table__.c.tenant.type.length)  # type: ignore[attr-defined]


def services() -> Services:
    return services_of(current_app)


def raw_body() -> bytes:
    """The exact bytes the platform signed (never a re-serialization)."""
    return request.get_data(cache=True, as_text=False)


def original_url() -> str:
    """The full URL the platform called, query string included, as it was on the wire.

    Forwarded headers are honoured only when ``BATON_TRUSTED_PROXY`` says proxies we control
    sit in front, and only the value they added; otherwise anyone could choose the URL that gets
    verified."""
    env = request.environ
    scheme = forwarded("X-Forwarded-Proto") or env.get("wsgi.url_scheme", "http")
    host = forwarded("X-Forwarded-Host") or env.get("HTTP_HOST", "")
    path = env.get("RAW_URI") or env.get("REQUEST_URI")
    if not path:
        path = quote(env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", ""), safe="/%:@!$&'()*+,;=-._~")
        if env.get("QUERY_STRING"):
            path += "?" + env["QUERY_STRING"]
    return f"{scheme}://{host}{path}"


def forwarded(header: str) -> str | None:
    """The value of a forwarded header that the nearest of ``BATON_TRUSTED_PROXY`` proxies saw:
    the N-th from the right. Proxies append what they see; whatever stands further left came
    from the client, who can write anything there. None without trusted proxies, or when the
    header has fewer values than there are proxies (then they cannot all have added theirs)."""
    count = services().settings.trusted_proxy
    if not count:
        return None
    values = [v.strip() for line in request.headers.getlist(header) for v in line.split(",")]
    values = [v for v in values if v]
    return values[-count] if len(values) >= count else None


def client_address() -> str:
    """The client's address: from ``X-Forwarded-For`` behind trusted proxies, else the peer."""
    return forwarded("X-Forwarded-For") or request.remote_addr or ""


def json_body() -> Any:
    """The body parsed as JSON; 415 for another content type, 400 with the reason if broken."""
    return parse_json(raw_body(), request.mimetype or "")


def record(source: str, items: list[NewJob]) -> Accepted:
    """Commit the delivery to the inbox (group commit, see :mod:`webhooks.inbox`) and dispatch
    its new jobs; a failed dispatch is left to the reconciler, the jobs being safe already. A
    database that cannot commit makes this a 503, so the platform retries."""
    svc = services()
    for item in items:  # refused here, not as a failed commit that fails its neighbours too
        if any(v is not None and "\x00" in v for v in (item.external_id, item.tenant,
                                                       item.subject)):  # PostgreSQL text
            raise BadRequest("identifiers must not contain NUL characters")
        for what, value, limit in (("identifier", item.external_id, _ID_CHARS),
                                   ("account", item.tenant, _TENANT_CHARS),
                                   ("record id", item.subject, _ID_CHARS)):
            if value is not None and len(value) > limit:
                raise BadRequest(f"{what} longer than {limit} characters")
    try:
        accepted = svc.inbox.submit(source, items)
    except Exception as exc:  # the driver's message may quote the payload: its type and place only
        log.error("inbox commit failed: %s", describe_unexpected(exc))
        raise ServiceUnavailable(f"could not record the delivery ({type(exc).__name__}); "
                                 "retry later") from None
    new = accepted.new
    svc.metrics.count_accepted(source, len(new), len(items) - len(new))
    return accepted


def wait_until(look: Callable[[], T], answered: Callable[[T], bool], seconds: float, *,
               api: bool = False) -> T:
    """Answer now or later: look again every ``POLL`` seconds until ``answered`` or ``seconds``
    have passed, and return the last look. Only as many requests wait at once as
    :class:`webhooks.services.SyncWaits` allows (``api``: a task-API client's wait, of which
    fewer); the others look once. A HubSpot workflow action waits on its reply row
    (:func:`webhooks.platforms.answer_now_or_later`), the task API and the Salesforce Flow
    action on their job (:func:`wait_for_job`)."""
    seen = look()
    if seconds <= 0 or answered(seen):
        return seen
    with services().sync_waits.slot(api=api) as may_wait:
        deadline = time.monotonic() + (seconds if may_wait else 0)
        while not answered(seen) and time.monotonic() < deadline:
            time.sleep(POLL)
            seen = look()
    return seen


def wait_for_job(job_id: str, seconds: float, *, api: bool = False) -> JobRow | None:
    """The job once it has ended (done, failed or dead) or ``seconds`` have passed."""
    jobs = services().jobs
    return wait_until(lambda: jobs.get(job_id), lambda job: job is None or job.state in ENDED,
                      seconds, api=api)

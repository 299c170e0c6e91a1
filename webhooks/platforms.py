"""``/<connector>/<route>``: every connector's requests through one path (:mod:`connectors.base`).

POST: the connector verifies the request (fail closed) and parses it into jobs; the delivery is
committed to the inbox (group commit) before anything is acknowledged; a delivery that names a
reply row waits for its job's answer within its budget (answer now or later, see
:mod:`core.delivery.replies`), then the connector acknowledges. GET: the connector's pages (OAuth).
A request a connector refuses gets the reason in the platform's form; never a 500 for a client's
mistake.
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from connectors.base import Connector, ReplyWait
from connectors.http import (
    ApiError,
    BadRequest,
    Inbound,
    MethodNotAllowed,
    Outbound,
    PayloadTooLarge,
)
from core.store import ReplyRow
from webhooks.common import client_address, original_url, raw_body, record, services, wait_until

REPLY_KEY_CHARS = int(ReplyRow.__table__.c.key.type.length)  # type: ignore[attr-defined]


def register(app: Flask, names: list[str]) -> None:
    """``/<connector>/<route>`` for these connectors only: any other path is left to the other
    routes (and their 404 and 405 answers)."""
    if names:
        app.add_url_rule(f"/<any({', '.join(names)}):name>/<path:route>", endpoint="platforms.platform",
                         view_func=platform, methods=["GET", "POST"])


def platform(name: str, route: str) -> Response:
    svc = services()
    connector = svc.connectors.get(name)
    try:
        req = Inbound(method=request.method, route=route, url=original_url(),
                      headers=request.headers, body=raw_body(),  # type: ignore[arg-type]
                      query=request.args, client=client_address(),
                      mimetype=request.mimetype or "", received_at=svc.clock())
        out = _handle(connector, req)
    except ApiError as exc:
        out = connector.refuse(_bare(route), exc)
    except RequestEntityTooLarge:  # the body was read above: answered in the platform's form
        out = connector.refuse(_bare(route), PayloadTooLarge(
            f"body larger than {services().settings.max_body_bytes} bytes"))
    return Response(out.body, status=out.status, content_type=out.content_type,
                    headers=dict(out.headers))


def _handle(connector: Connector, req: Inbound) -> Outbound:
    pages = connector.pages()
    read = req.method in ("GET", "HEAD")  # Flask answers HEAD as GET, without the body
    if read != (req.route in pages):  # pages are read, deliveries posted
        raise MethodNotAllowed("method not allowed on this route")
    if read:
        g.route_label = f"/{connector.name}/{req.route}"
        return pages[req.route](req)
    connector.verify(req)
    parsed = connector.parse(req)
    # a route the connector knows: its own label (never a secret path segment)
    g.route_label = f"/{connector.name}/{connector.label(req.route)}"
    if isinstance(parsed, Outbound):
        return parsed
    if parsed.reply is not None:  # the row exists before the job can run: the worker finds it
        if "\x00" in parsed.reply.key or len(parsed.reply.key) > REPLY_KEY_CHARS:
            raise BadRequest("identifiers must not contain NUL characters or be this long")
        services().replies.open(parsed.reply.key, platform=connector.name,
                                account=parsed.reply.account)
    try:
        accepted = record(parsed.source, parsed.jobs)
    except ApiError:  # refused: no reply row waits for a job never stored (a replay is refused too)
        if parsed.reply is not None:
            services().replies.discard(parsed.reply.key)
        raise
    reply = answer_now_or_later(parsed.reply) if parsed.reply is not None else None
    return connector.ack(req, parsed, accepted, reply)


def answer_now_or_later(wait: ReplyWait) -> ReplyRow | None:
    """The reply row once the worker answered it, or, after ``wait.seconds`` (at once when no
    wait slot is free), as the race with the worker left it: ``reply`` is ``sync`` if the answer
    is in it, ``later`` if the request gave up first and the answer goes by callback."""
    replies = services().replies
    row = wait_until(lambda: replies.get(wait.key),
                     lambda row: row is None or row.reply is not None, wait.seconds)
    if row is not None and row.reply is None:
        row = replies.give_up(wait.key)
    return row


def _bare(route: str) -> Inbound:
    """The request as far as a refusal needs it (the body may be what was refused)."""
    return Inbound(method=request.method, route=route, url=request.url, headers=request.headers,  # type: ignore[arg-type]
                   body=b"", mimetype=request.mimetype or "")

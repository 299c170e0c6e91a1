"""A loopback Slack: the Web API methods Baton calls and the response_url of slash commands,
served to the real slack_sdk ``WebClient``/``WebhookClient`` (``base_url`` pointed here).

It refuses what Slack refuses, so a bug can't hide behind a lenient fake: an unknown or revoked
token (``invalid_auth``), a method without its scope (``missing_scope`` with ``needed``), posting
where the bot is not a member (``not_in_channel`` in a public channel without
``chat:write.public``, ``channel_not_found`` in a private one or a DM), Block Kit beyond its limits
(``invalid_blocks``: more than 50 blocks, a section over 3,000 characters, an empty text),
metadata without ``event_type``, an OAuth code used twice or with another ``redirect_uri``,
a ``trigger_id`` used twice or after 3 seconds, a response_url used more than 5 times or after
30 minutes. ``conversations.replies`` has the rate tier of apps outside the Marketplace (one call a
minute per workspace, at most 15 messages), and any method can be made to answer 429 with a
``Retry-After``. Every call is recorded.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import JsonHandler, LoopbackServer

SCOPES = {"chat.postMessage": "chat:write", "chat.postEphemeral": "chat:write",
          "chat.update": "chat:write", "users.info": "users:read",
          "conversations.replies": "channels:history", "conversations.history": "channels:history",
          "views.open": "", "views.update": "", "auth.test": "", "oauth.v2.access": ""}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str


@dataclass
class Workspace:
    team: str
    name: str
    token: str
    bot_user: str
    bot_id: str
    scopes: set[str]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeSlack(LoopbackServer):
    def __init__(self, *, client_id: str = "1111.2222", client_secret: str = "fake-client-secret",
                 clock: Any = time.time) -> None:
        self.client_id, self.client_secret, self.clock = client_id, client_secret, clock
        self.workspaces: dict[str, Workspace] = {}
        self.channels: dict[str, dict[str, Any]] = {}  # id -> {team, private, members, messages}
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # what response_urls received
        self.codes: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, float] = {}
        self.hooks: dict[str, dict[str, Any]] = {}
        self.fail_next: Counter[str] = Counter()  # method -> 429s to answer
        self.retry_after = 1
        self.replies_per_minute = 1
        self._replies_at: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                path = urlsplit(self.path).path
                if path.startswith("/commands/"):
                    status, body = fake._hook(path, raw)
                    data = body.encode()
                    self.send_response(status)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                method = path.removeprefix("/api/")
                params = _params(raw, self.headers.get("content-type", ""))
                token = (self.headers.get("authorization") or "").removeprefix("Bearer ").strip()
                if not token and "token" in params:
                    token = str(params["token"])
                status, answer, headers = fake._api(method, params, token,
                                                    self.headers.get("authorization") or "")
                self.send_json(status, answer, headers)

            do_GET = do_POST

        super().__init__(Handler)
        self.api_url = f"{self.url}/api/"

    # -- set-up ---------------------------------------------------------------------------------

    def add_workspace(self, team: str, name: str = "Acme", *, scopes: set[str] | None = None,
                      locale: str = "en-US", bot_user: str = "UBATON") -> Workspace:
        ws = Workspace(team, name, f"xoxb-{team}-{secrets.token_hex(8)}", bot_user, f"B{team}",
                       set(scopes if scopes is not None else (
                           "commands", "chat:write", "app_mentions:read", "channels:history",
                           "groups:history", "users:read")))
        ws.users["U1"] = {"id": "U1", "name": "ann", "locale": locale}
        self.workspaces[team] = ws
        return ws

    def add_channel(self, team: str, channel: str, *, private: bool = False,
                    bot_member: bool = True) -> None:
        self.channels[channel] = {"team": team, "private": private, "messages": [],
                                  "members": {self.workspaces[team].bot_user} if bot_member else set()}

    def add_message(self, channel: str, text: str, *, user: str = "U1",
                    thread_ts: str | None = None) -> str:
        with self._lock:
            return self._store(channel, {"user": user, "text": text, "thread_ts": thread_ts})

    def response_url(self, team: str) -> str:
        hook = f"/commands/{team}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"
        self.hooks[hook] = {"uses": 0, "created": self.clock()}
        return self.url + hook

    def trigger(self) -> str:
        trigger = f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}"
        self.triggers[trigger] = self.clock()
        return trigger

    def authorize_code(self, team: str, redirect_uri: str | None) -> str:
        """What Slack's consent screen hands the browser after the user allows the install."""
        code = secrets.token_hex(10)
        self.codes[code] = {"team": team, "redirect_uri": redirect_uri, "at": self.clock()}
        return code

    # -- what tests read -------------------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [m for ch, info in self.channels.items() if channel in (None, ch)
                for m in info["messages"] if m.get("bot_id")]

    # -- the API -------------------------------------------------------------------------------

    def _api(self, method: str, params: dict[str, Any], token: str,
             authorization: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.calls.append(Call(method, params, token))
            if self.fail_next[method] > 0:
                self.fail_next[method] -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(self.retry_after)}
            if method not in SCOPES:
                return 404, {"ok": False, "error": "unknown_method"}, {}
            if method == "oauth.v2.access":
                return 200, self._oauth(params, authorization), {}
            ws = next((w for w in self.workspaces.values() if w.token == token), None)
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}
            if ws is None:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            needed = SCOPES[method]
            if method.startswith("conversations.") and self.channels.get(
                    str(params.get("channel")), {}).get("private"):
                needed = "groups:history"
            if needed and needed not in ws.scopes:
                return 200, {"ok": False, "error": "missing_scope", "needed": needed,
                             "provided": ",".join(sorted(ws.scopes))}, {}
            handler = getattr(self, "_" + method.replace(".", "_"))
            result = handler(ws, params)
            if result.get("error") == "ratelimited":
                return 429, result, {"Retry-After": "60"}
            return 200, result, {"x-oauth-scopes": ",".join(sorted(ws.scopes))}

    def _auth_test(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"https://{ws.name.lower()}.slack.com/", "team": ws.name,
                "user": "baton", "team_id": ws.team, "user_id": ws.bot_user, "bot_id": ws.bot_id,
                "is_enterprise_install": False}

    def _oauth(self, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if authorization.startswith("Basic "):
            import base64

            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant = self.codes.pop(str(params.get("code")), None)  # a code is good once
        if grant is None or self.clock() - grant["at"] > 600:
            return {"ok": False, "error": "invalid_code"}
        if grant["redirect_uri"] is not None and params.get("redirect_uri") != grant["redirect_uri"]:
            return {"ok": False, "error": "bad_redirect_uri"}
        ws = self.workspaces.get(grant["team"]) or self.add_workspace(grant["team"])
        return {"ok": True, "app_id": "A0BATON", "authed_user": {"id": "U1"},
                "scope": ",".join(sorted(ws.scopes)), "token_type": "bot",
                "access_token": ws.token, "bot_user_id": ws.bot_user,
                "team": {"id": ws.team, "name": ws.name}, "enterprise": None,
                "is_enterprise_install": False}

    def _users_info(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        user = ws.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        shown = dict(user)
        if str(params.get("include_locale")).lower() not in ("true", "1"):
            shown.pop("locale", None)
        return {"ok": True, "user": shown}

    def _visible(self, ws: Workspace, channel: str, post: bool) -> tuple[dict[str, Any] | None, str]:
        info = self.channels.get(channel)
        if info is None or info["team"] != ws.team:
            return None, "channel_not_found"
        member = ws.bot_user in info["members"]
        if member:
            return info, ""
        if info["private"]:
            return None, "channel_not_found"
        if post and "chat:write.public" in ws.scopes:
            return info, ""
        return None, "not_in_channel"

    def _chat_postMessage(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        info, error = self._visible(ws, str(params.get("channel")), post=True)
        if info is None:
            return {"ok": False, "error": error}
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        problem = _block_problem(blocks) if blocks is not None else None
        if problem:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        text = str(params.get("text") or "")
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if len(text) > 40000:
            return {"ok": False, "error": "msg_too_long"}
        meta = params.get("metadata")
        if isinstance(meta, str):
            meta = json.loads(meta)
        if meta is not None and not (isinstance(meta, dict) and meta.get("event_type")
                                     and isinstance(meta.get("event_payload"), dict)):
            return {"ok": False, "error": "invalid_metadata_format"}
        thread = params.get("thread_ts") or None
        message = {"user": ws.bot_user, "bot_id": ws.bot_id, "text": text, "blocks": blocks,
                   "thread_ts": thread, "metadata": meta}
        ts = self._store(str(params["channel"]), message)
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": message}

    def _chat_postEphemeral(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        info, error = self._visible(ws, str(params.get("channel")), post=True)
        if info is None:
            return {"ok": False, "error": error}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        return {"ok": True, "message_ts": self._ts()}

    def _chat_update(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        info, error = self._visible(ws, str(params.get("channel")), post=True)
        if info is None:
            return {"ok": False, "error": error}
        for m in info["messages"]:
            if m["ts"] == params.get("ts"):
                if m.get("bot_id") != ws.bot_id:
                    return {"ok": False, "error": "cant_update_message"}
                blocks = params.get("blocks")
                blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                problem = _block_problem(blocks) if blocks is not None else None
                if problem:
                    return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
                m["text"] = params.get("text", m["text"])
                m["blocks"] = blocks if blocks is not None else m.get("blocks")
                return {"ok": True, "channel": params["channel"], "ts": m["ts"]}
        return {"ok": False, "error": "message_not_found"}

    def _conversations_replies(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        info, error = self._visible(ws, str(params.get("channel")), post=False)
        if info is None:
            return {"ok": False, "error": error}
        now = self.clock()
        recent = [t for t in self._replies_at.get(ws.team, []) if now - t < 60]
        if len(recent) >= self.replies_per_minute:
            return {"ok": False, "error": "ratelimited"}
        self._replies_at[ws.team] = [*recent, now]
        ts = str(params.get("ts"))
        thread = [m for m in info["messages"] if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        if params.get("oldest"):  # exclusive, as Slack has it unless inclusive=true
            thread = [m for m in thread if float(m["ts"]) > float(params["oldest"])]
        limit = min(int(params.get("limit") or 15), 15)  # the non-Marketplace tier's cap
        return {"ok": True, "messages": [_shown(m, params) for m in thread[:limit]],
                "has_more": len(thread) > limit}

    def _conversations_history(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        info, error = self._visible(ws, str(params.get("channel")), post=False)
        if info is None:
            return {"ok": False, "error": error}
        oldest = float(params.get("oldest") or 0)
        found = [m for m in info["messages"] if float(m["ts"]) > oldest and not m.get("thread_ts")]
        return {"ok": True, "messages": [_shown(m, params) for m in reversed(found)][:15]}

    def _views_open(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        issued = self.triggers.pop(str(params.get("trigger_id")), None)  # single use
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if self.clock() - issued > 3:
            return {"ok": False, "error": "expired_trigger_id"}
        view = params.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        problem = _view_problem(view)
        if problem:
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {
                "messages": [f"[ERROR] {problem}"]}}
        return {"ok": True, "view": {"id": "V" + secrets.token_hex(4).upper(), **(view or {})}}

    def _views_update(self, ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
        if not str(params.get("view_id") or "").startswith("V"):
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": {"id": params["view_id"]}}

    # -- response_url ----------------------------------------------------------------------------

    def _hook(self, path: str, raw: bytes) -> tuple[int, str]:
        with self._lock:
            hook = self.hooks.get(path)
            if hook is None:
                return 404, "invalid_token"
            if hook["uses"] >= 5 or self.clock() - hook["created"] > 1800:
                return 410, "expired_url"  # usable 5 times within 30 minutes
            body = json.loads(raw or b"{}")
            problem = _block_problem(body.get("blocks")) if body.get("blocks") else None
            if problem:
                return 400, "invalid_blocks"
            hook["uses"] += 1
            self.responses.append({"url": path, **body})
            return 200, "ok"

    def _ts(self) -> str:
        return f"{self.clock():.6f}".replace(".", ".")[:17]

    def _store(self, channel: str, message: dict[str, Any]) -> str:
        ts = self._ts()
        messages = self.channels[channel]["messages"]
        while any(m["ts"] == ts for m in messages):  # ts is unique per channel
            ts = f"{float(ts) + 0.000001:.6f}"
        messages.append({**message, "ts": ts})
        return ts


def _shown(message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in message.items() if v is not None}
    if str(params.get("include_all_metadata")).lower() not in ("true", "1"):
        shown.pop("metadata", None)
    return shown


def _block_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list):
        return "blocks must be an array"
    if len(blocks) > 50:
        return "must provide an array of no more than 50 items [json-pointer:/blocks]"
    ids = [b["block_id"] for b in blocks if b.get("block_id")]
    if len(ids) != len(set(ids)) or any(len(str(i)) > 255 for i in ids):
        return "block_id must be unique and at most 255 characters"
    for i, block in enumerate(blocks):
        if block.get("type") == "header" and len((block.get("text") or {}).get("text", "")) > 150:
            return f"must be less than 151 characters [json-pointer:/blocks/{i}/text/text]"
        if block.get("type") == "section":
            text = (block.get("text") or {}).get("text", "")
            if not text:
                return f"must be more than 0 characters [json-pointer:/blocks/{i}/text/text]"
            if len(text) > 3000:
                return f"must be less than 3001 characters [json-pointer:/blocks/{i}/text/text]"
        elif block.get("type") == "context":
            if not block.get("elements") or len(block["elements"]) > 10:
                return f"context needs 1 to 10 elements [json-pointer:/blocks/{i}/elements]"
        elif block.get("type") == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                return f"actions need 1 to 25 elements [json-pointer:/blocks/{i}/elements]"
            action_ids = [e.get("action_id") for e in elements]
            if len(action_ids) != len(set(action_ids)):
                return f"action_id must be unique in a block [json-pointer:/blocks/{i}/elements]"
            for j, e in enumerate(elements):
                where = f"[json-pointer:/blocks/{i}/elements/{j}]"
                confirm = e.get("confirm")
                if confirm is not None and (
                        (confirm.get("text") or {}).get("type") != "plain_text"
                        or len((confirm.get("title") or {}).get("text", "")) > 100
                        or len((confirm.get("text") or {}).get("text", "")) > 300
                        or any(len((confirm.get(k) or {}).get("text", "")) > 30
                               for k in ("confirm", "deny"))):
                    return f"invalid confirm {where}"
                if e.get("type") == "button" and (
                        len(e.get("text", {}).get("text", "")) > 75 or not e.get("action_id")
                        or len(e.get("action_id", "")) > 255 or len(e.get("value", "")) > 2000
                        or e.get("style") not in (None, "primary", "danger")):
                    return f"invalid button {where}"
        elif block.get("type") not in ("divider", "header", "input", "image", "rich_text"):
            return f"unknown block type [json-pointer:/blocks/{i}/type]"
    return None


def _view_problem(view: Any) -> str | None:
    """What Slack refuses in a modal: no type or title, a title over 24 characters, over 100
    blocks, metadata over 3,000 characters, an input without a label or whose initial value is
    longer than its max_length (at most 3,000), inputs without a submit button."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "view.type must be modal"
    title = (view.get("title") or {}).get("text", "")
    if not title or len(title) > 24:
        return "must be less than 25 characters [json-pointer:/view/title/text]"
    blocks = view.get("blocks") or []
    if len(blocks) > 100 or len(str(view.get("private_metadata") or "")) > 3000:
        return "view too large"
    inputs = [b for b in blocks if b.get("type") == "input"]
    if inputs and not view.get("submit"):
        return "a view with inputs needs submit [json-pointer:/view/submit]"
    if any(len((view.get(k) or {}).get("text", "")) > 24 for k in ("submit", "close")) \
            or len(str(view.get("callback_id") or "")) > 255:
        return "submit and close at most 24 characters, callback_id at most 255"
    for i, block in enumerate(inputs):
        element = block.get("element") or {}
        longest = int(element.get("max_length") or 3000)
        label = (block.get("label") or {}).get("text", "")
        if not label or len(label) > 2000 or longest > 3000 \
                or len(str(element.get("initial_value") or "")) > longest:
            return f"invalid input [json-pointer:/view/blocks/{i}]"
    return _block_problem([b for b in blocks if b.get("type") != "input"])


def _params(raw: bytes, content_type: str) -> dict[str, Any]:
    if "json" in content_type:
        return dict(json.loads(raw or b"{}"))
    return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}

"""A loopback OpenAI-compatible server whose answers a test scripts: 429 with Retry-After,
insufficient_quota, 500, slow answers, or a chat completion with chosen content and usage.
It keeps every request (headers, JSON body, arrival time) so tests can prove what left."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.loopback import JsonHandler, LoopbackServer


@dataclass
class Reply:
    status: int = 200
    content: str = '{"text": "ok"}'
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    delay: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 20
    cached_tokens: int | None = None
    finish_reason: str = "stop"
    refusal: str | None = None


def completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20,
               cached_tokens: int | None = None) -> Reply:
    return Reply(content=content, prompt_tokens=prompt_tokens,
                 completion_tokens=completion_tokens, cached_tokens=cached_tokens)


def cut_off(content: str) -> Reply:
    """An answer that ran into max_tokens (``finish_reason: "length"``)."""
    return Reply(content=content, finish_reason="length")


def refused(reason: str = "I'm sorry, I can't help with that.") -> Reply:
    """A structured-outputs refusal: no content, the reason in ``message.refusal``."""
    return Reply(content="", refusal=reason)


# What OpenAI's strict structured outputs refuse in a schema (as 400 invalid_request_error)
UNSUPPORTED_IN_STRICT = {"minLength", "maxLength", "patternProperties", "unevaluatedProperties",
                         "propertyNames", "minProperties", "maxProperties", "uniqueItems",
                         "contains", "if", "then", "else", "not", "dependentRequired",
                         "dependentSchemas"}


def strict_schema_problems(schema: Any, where: str = "") -> list[str]:
    """Why OpenAI's strict mode would refuse ``schema``: every object closed
    (``additionalProperties: false``) with every property required, no unsupported keyword."""
    problems: list[str] = []
    if isinstance(schema, dict):
        for key in schema:
            if key in UNSUPPORTED_IN_STRICT or key.startswith("x-"):
                problems.append(f"{where or 'schema'}: '{key}' is not permitted")
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False:
                problems.append(f"{where or 'schema'}: 'additionalProperties' is required to be "
                                "supplied and to be false")
            missing = sorted(set(props) - set(schema.get("required") or []))
            if missing:
                problems.append(f"{where or 'schema'}: 'required' is required to include every "
                                f"key in properties (missing {missing})")
        for key, value in schema.items():
            if isinstance(value, dict | list):
                problems += strict_schema_problems(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            problems += strict_schema_problems(value, f"{where}/{i}")
    return problems


def rate_limited(retry_after: str | None = "1", code: str = "rate_limit_exceeded") -> Reply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(status=429, headers=headers,
                 error={"message": "Rate limit reached", "type": "requests", "code": code})


def quota_exhausted() -> Reply:
    return Reply(status=429, error={"message": "You exceeded your current quota",
                                    "type": "insufficient_quota", "code": "insufficient_quota"})


def server_error(status: int = 500) -> Reply:
    return Reply(status=status, error={"message": "boom", "type": "server_error", "code": None})


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float


class FakeOpenAI(LoopbackServer):
    """Start with ``with FakeOpenAI() as api:``; ``api.base_url`` goes to the client."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = completion('{"text": "ok"}')
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # /v1/models
                self.send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini",
                                                             "object": "model"}]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw or b"{}")
                with fake._lock:
                    fake.seen.append(Seen(self.path, dict(self.headers.items()), body, raw,
                                          time.monotonic()))
                    fmt = body.get("response_format") or {}
                    spec = fmt.get("json_schema") or {}
                    problems = strict_schema_problems(spec.get("schema")) \
                        if fmt.get("type") == "json_schema" and spec.get("strict") else []
                    if problems:  # as OpenAI: a schema strict mode cannot hold is refused
                        self.send_json(400, {"error": {
                            "message": f"Invalid schema for response_format "
                                       f"'{spec.get('name')}': {problems[0]}",
                            "type": "invalid_request_error", "param": "response_format",
                            "code": "invalid_json_schema"}})
                        return
                    reply = fake.replies.popleft() if fake.replies else fake.default
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.error is not None:
                    self.send_json(reply.status, {"error": reply.error}, reply.headers)
                    return
                usage: dict[str, Any] = {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                }
                if reply.cached_tokens is not None:
                    usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
                self.send_json(reply.status, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                    "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                 "message": {"role": "assistant", "content": reply.content or None,
                                             "refusal": reply.refusal}}],
                    "usage": usage,
                }, reply.headers)

        super().__init__(Handler)
        self.base_url = self.url + "/v1"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def bodies_text(self) -> str:
        """Everything the server received, as text: what left the machine."""
        return "\n".join(s.raw.decode("utf-8") for s in self.seen)

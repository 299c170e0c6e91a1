"""Request signatures of HubSpot (v1, v2, v3) and Slack (v0), stdlib only.

Every check compares in constant time and fails closed: any malformed header, timestamp or
signature raises :class:`SignatureError` (never a bare ``ValueError``), which the web layer turns
into 401 with the reason. Several secrets may be given, for key rotation.

HubSpot v3 (see shared/reference/platforms.md section 2): HMAC-SHA256 over
``method + uri + body + timestamp`` with the app secret, base64; the timestamp is in milliseconds
and must be within 5 minutes either way; in the URI a fixed set of percent-escapes is decoded
first. v1 is ``sha256(secret + body)`` and v2 ``sha256(secret + method + uri + body)``, lowercase
hex, with no timestamp. Slack v0: ``v0=`` + hex HMAC-SHA256 of ``v0:{ts}:{body}``, ts in seconds,
within 5 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

WINDOW_SECONDS = 300
MAX_TIMESTAMP_DIGITS = 16  # milliseconds until the year 2286; longer is garbage, not a time

_V3_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
_V3_ESCAPE_RE = re.compile("|".join(_V3_DECODE), re.IGNORECASE)


class SignatureError(Exception):
    """The request is not authentic; ``str()`` is the reason given to the caller."""


class CaseInsensitiveHeaders(Protocol):
    """A framework's header object whose ``get`` ignores case (werkzeug's ``request.headers``)."""

    def get(self, key: str) -> str | None: ...


Headers = Mapping[str, str] | CaseInsensitiveHeaders


def _getter(headers: Headers) -> Callable[[str], str | None]:
    """Header lookup by name in any case. A plain mapping is lowercased once; a framework's
    header object is asked directly (one environ lookup per header, not a pass over them all)."""
    if isinstance(headers, Mapping):
        lowered = {key.lower(): value for key, value in headers.items()}
        return lambda name: lowered.get(name.lower())
    return headers.get


def hubspot_v3_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded, nothing else."""
    return _V3_ESCAPE_RE.sub(lambda m: _V3_DECODE[m.group(0).upper()], uri)


def hubspot_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def hubspot_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode() + body).hexdigest()


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + hubspot_v3_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def slack_v0(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _is_timestamp(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= MAX_TIMESTAMP_DIGITS


def _check_window(seconds: float, now: float) -> None:
    if abs(now - seconds) > WINDOW_SECONDS:
        raise SignatureError("timestamp outside the 5-minute window")


def verify_hubspot(*, secrets: Sequence[str], method: str, uri: str, body: bytes,
                   headers: Headers, now: float) -> str:
    """Verify a HubSpot request; return the version that matched (``v3`` preferred).

    ``uri`` is the full original URL (scheme, host, path and query) as HubSpot called it;
    ``now`` is the current Unix time in seconds."""
    if not secrets:
        raise SignatureError("no HubSpot client secret is configured")
    header = _getter(headers)
    v3 = header("X-HubSpot-Signature-v3")
    if v3 is not None:
        timestamp = header("X-HubSpot-Request-Timestamp")
        if timestamp is None or not _is_timestamp(timestamp):
            raise SignatureError("missing or malformed X-HubSpot-Request-Timestamp")
        _check_window(int(timestamp) / 1000, now)
        if any(_matches(hubspot_v3(s, method, uri, body, timestamp), v3.strip()) for s in secrets):
            return "v3"
        raise SignatureError("HubSpot v3 signature does not match")
    given = header("X-HubSpot-Signature")
    if given is None:
        raise SignatureError("missing X-HubSpot-Signature")
    version = (header("X-HubSpot-Signature-Version") or "v1").strip().lower()
    if version == "v1":
        candidates = [hubspot_v1(s, body) for s in secrets]
    elif version == "v2":
        candidates = [hubspot_v2(s, method, uri, body) for s in secrets]
    else:
        raise SignatureError(f"unsupported X-HubSpot-Signature-Version {version[:10]!r}")
    if any(_matches(c, given.strip().lower()) for c in candidates):
        return version
    raise SignatureError(f"HubSpot {version} signature does not match")


def verify_slack(*, secrets: Sequence[str], body: bytes, headers: Headers, now: float) -> None:
    """Verify a Slack request signed with the app's signing secret."""
    if not secrets:
        raise SignatureError("no Slack signing secret is configured")
    header = _getter(headers)
    timestamp = header("X-Slack-Request-Timestamp")
    signature = header("X-Slack-Signature")
    if timestamp is None or signature is None:
        raise SignatureError("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    if not _is_timestamp(timestamp):
        raise SignatureError("malformed X-Slack-Request-Timestamp")
    _check_window(int(timestamp), now)
    if not any(_matches(slack_v0(s, timestamp, body), signature.strip()) for s in secrets):
        raise SignatureError("Slack signature does not match")

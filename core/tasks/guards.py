"""Output guards: each returns the list of its violations (empty means the output passes).

A guard sees the whole output object and the task, so grounding guards (recommended SKUs exist
in the catalog, reply claims cite the knowledge base) fit the same interface.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import jsonschema

from core.privacy import PLACEHOLDER_RE


class Guard(Protocol):
    @property
    def name(self) -> str:
        """Stable name used as the prefix of this guard's violations."""

    def check(self, output: Mapping[str, Any]) -> list[str]:
        """Violations of this guard in ``output``; empty when it passes."""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@dataclass(frozen=True)
class SchemaGuard:
    schema: Mapping[str, Any]
    name: str = "schema"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        validator = jsonschema.Draft202012Validator(self.schema)
        return [
            f"schema: {'/'.join(str(p) for p in e.absolute_path) or 'output'}: {e.message}"
            for e in validator.iter_errors(output)
        ]


@dataclass(frozen=True)
class LengthGuard:
    """Each field within its limit and not empty; fields in ``minimums`` at least that long
    once the ``boilerplate`` (the greeting, the sign-off) is taken out."""

    limits: Mapping[str, int]
    minimums: Mapping[str, int] = field(default_factory=dict)
    boilerplate: tuple[str, ...] = ()
    name: str = "length"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        out = []
        for key, limit in self.limits.items():
            value = output.get(key)
            if isinstance(value, str):
                if not value.strip():
                    out.append(f"length: {key} is empty")
                elif len(value) > limit:
                    out.append(f"length: {key} has {len(value)} characters, limit {limit}")
        for key, least in self.minimums.items():
            value = output.get(key)
            if isinstance(value, str) and value.strip():
                own = value
                for text in self.boilerplate:
                    own = own.replace(text, "", 1) if text else own
                if len(own.strip()) < least:
                    out.append(f"length: {key} says too little ({len(own.strip())} characters "
                               f"besides greeting and sign-off, at least {least})")
        return out


@dataclass(frozen=True)
class BannedWordsGuard:
    words: list[str]
    name: str = "banned_words"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = "\n".join(_strings(output)).casefold()
        found = []
        for word in self.words:
            w = word.casefold()
            # Whole words for scripts with spaces; substrings for CJK text without them.
            pattern = rf"(?<!\w){re.escape(w)}(?!\w)" if w.isascii() else re.escape(w)
            if re.search(pattern, text):
                found.append(word)
        return [f"banned_words: uses {w!r}" for w in found]


# Anything a reader or a mail client can follow: a URL with a scheme (https:, javascript:,
# mailto:, data: ...), protocol-relative (//host), www., an email address, or a bare domain with
# a path (evil.example/claim) or a common top-level domain (evil.com).
_TLDS = ("com|net|org|io|co|app|dev|info|biz|me|ly|gl|xyz|shop|store|online|site|link|click|top|"
         "live|ai|us|uk|de|fr|jp|cn|ru|in|es|it|nl|au|ca|br|ch|se|no|dk|pl|tr|kr|tk|ml|ga|cf|gq|"
         "page|tv|eu|cc|gg|support|pro|club|vip|work|world|news|email|today|help|center|fun|zone|"
         "space|website|tech|cloud|icu|buzz|rest|bar|mobi|name|asia|one|to|ws|su|lol|wtf|win|bid|"
         "loan|date|review|stream|download|racing|party|trade|science|men|cam|monster|sbs|cfd")
_SCHEMES = ("https?|mailto|javascript|vbscript|data|file|ftps?|tel|sms|blob|intent|chrome|about|"
            "wss?|ms-[a-z-]+|search-ms|skype|facetime|bitcoin|smb|ssh|steam|jar|view-source")
_LINK_RE = re.compile(
    r"(?i)(?:"
    r"(?<![\w@.])(?P<scheme>" + _SCHEMES + r")(?:\s*(?=:(?:/|\S)))?:(?://)?[^\s<>\"')\]]+"
    r"|(?<![\w@.])//[^\s<>\"')\]/]+[^\s<>\"')\]]*"  # //host/...
    r"|(?<![\w@.])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an email address
    r"|(?<![A-Za-z0-9@_-])www\.[^\s<>\"')\]]+"  # www.anything
    r"|(?<![A-Za-z0-9@_.-])\d{1,3}(?:\.\d{1,3}){3}[:/][^\s<>\"')\]]*"  # an IP address, port or path
    r"|(?<![A-Za-z0-9@_-])(?:[a-z0-9-]+\.)+"  # a bare domain: with a path, or a known ending
    r"(?:[a-z]{2,24}[/\\][^\s<>\"')\]]*|(?:" + _TLDS + r")\b)"
    r")")
_MAIL_DOMAIN = re.compile(r"[^\s@,?&=:;/]+@([^\s,?&=;/>]+)")
_WEB = ("http", "https")


@dataclass(frozen=True)
class LinkGuard:
    """Every link goes to an allowed domain: web links, protocol-relative ones, bare domains,
    ``mailto:`` and email addresses alike; ``javascript:``, ``data:`` and other schemes never."""

    allowed_domains: list[str]
    name: str = "links"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        out = []
        for text in _strings(output):
            for m in _LINK_RE.finditer(text):
                link = m.group(0).rstrip(".,;:!?")
                scheme = (m.group("scheme") or "").lower()
                if scheme and scheme not in (*_WEB, "mailto"):
                    out.append(f"links: {link} uses the {scheme}: scheme")
                    continue
                if not all(self._allowed(host) for host in self._hosts(link, scheme)):
                    out.append(f"links: {link} is not on an allowed domain")
        return out

    def _hosts(self, link: str, scheme: str) -> list[str]:
        """Every host the link can reach: each recipient of a ``mailto:`` (to, cc, bcc), or the
        host a browser opens (which reads ``\\`` as ``/``)."""
        if scheme == "mailto" or ("@" in link and "://" not in link and not link.startswith("//")):
            return [d.lower().rstrip(".") for d in _MAIL_DOMAIN.findall(unquote(link))] or [""]
        link = link.replace("\\", "/")
        if link.startswith("//"):
            link = "http:" + link
        elif "://" not in link:
            link = "http://" + link
        try:
            return [urlsplit(link).hostname or ""]
        except ValueError:
            return [""]

    def _allowed(self, host: str) -> bool:
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)


@dataclass(frozen=True)
class DisclosureGuard:
    field_name: str
    required: list[str] = field(default_factory=list)
    name: str = "disclosure"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        body = str(output.get(self.field_name, ""))
        return [f"disclosure: {self.field_name} lacks {r!r}" for r in self.required if r not in body]


@dataclass(frozen=True)
class LeadGuard:
    """The field must open with the expected text (an email's greeting)."""

    field_name: str
    lead: str
    name: str = "lead"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        value = output.get(self.field_name)
        if isinstance(value, str) and not value.startswith(self.lead):
            return [f"lead: {self.field_name} must start with {self.lead!r}"]
        return []


@dataclass(frozen=True)
class PlaceholderGuard:
    """Flags placeholders left in the output after unmasking (ones the model invented)."""

    name: str = "placeholders"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        left = sorted({m.group(0) for s in _strings(output) for m in PLACEHOLDER_RE.finditer(s)})
        return [f"placeholders: unresolved {p}" for p in left]


@dataclass(frozen=True)
class GroundingGuard:
    """Every recommended product is in the catalog, once, and not something the customer owns."""

    catalog: frozenset[str]
    owned: frozenset[str] = frozenset()
    name: str = "grounding"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        picked = [str(p.get("product", "")) for p in output.get("picks", []) if isinstance(p, Mapping)]
        out = [f"grounding: {p!r} is not in the catalog" for p in picked if p not in self.catalog]
        out += [f"grounding: {p!r} is recommended twice" for p in sorted(set(picked))
                if picked.count(p) > 1]
        out += [f"grounding: {p!r} was already bought" for p in picked if p in self.owned]
        return out


def run_guards(guards: list[Guard], output: Mapping[str, Any]) -> list[str]:
    """All violations of all guards; a schema failure stops the rest (they assume its shape)."""
    violations: list[str] = []
    for guard in guards:
        found = guard.check(output)
        violations.extend(found)
        if found and guard.name == "schema":
            break
    return violations

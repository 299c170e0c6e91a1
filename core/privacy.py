"""Reversible masking of customer data.

Record-aware first: every value of a field the policy marks sensitive or confidential is replaced
by a placeholder (``{first_name}``) wherever it appears in the context or the brief, including the
single words of a name. Pattern recognizers then catch what free text still holds: emails, phone
numbers (international, North American and Japanese, also in full-width digits), card numbers
(Luhn-checked) and IBANs (mod-97-checked). Placeholders are restored in the model's output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.policy import Privacy, Sensitivity

PLACEHOLDER_RE = re.compile(r"\{\{?\s*([a-z][a-z0-9_]*)\s*\}?\}")

_D = "[0-9０-９]"  # ASCII or full-width digit
_H = "[-‐－ー−.\\s]"  # separators seen in international numbers, incl. Japanese dashes
_JH = "[-‐－ー−]"  # Japanese domestic numbers are written with dashes
# Not inside a longer run of digits or Latin letters; Japanese text around a number is fine
# (``\w`` would count kana and kanji as word characters).
_NB = "(?<![0-9A-Za-z０-９])"
_NA = "(?![0-9A-Za-z０-９])"

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_RES = (
    # +81 90-1234-5678, +1 (415) 555-0100, +44 20 7946 0958
    re.compile(rf"{_NB}(?<!\+)[+＋]{_D}{{1,3}}{_H}?\(?{_D}{{1,4}}\)?(?:{_H}?{_D}{{2,4}}){{2,4}}{_NA}"),
    # Japanese domestic: 090-1234-5678, 03-1234-5678, 0120-123-456, 09012345678 (also full-width)
    re.compile(rf"{_NB}[0０]{_D}{{1,4}}{_JH}{_D}{{1,4}}{_JH}{_D}{{3,4}}{_NA}"),
    re.compile(rf"{_NB}[0０][5-9５-９][0０]{_D}{{8}}{_NA}"),
    # North American: (415) 555-0100, 415-555-0100, 415.555.0100
    re.compile(rf"{_NB}(?:\(\d{{3}}\)\s?|\d{{3}}[-.\s])\d{{3}}[-.\s]\d{{4}}{_NA}"),
)
_CARD_RE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _find_cards(text: str) -> Iterable[str]:
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            yield m.group(0)


def _find_ibans(text: str) -> Iterable[str]:
    return (m.group(0) for m in _IBAN_RE.finditer(text) if iban_ok(m.group(0)))


def _find_phones(text: str) -> Iterable[str]:
    for pattern in _PHONE_RES:
        for m in pattern.finditer(text):
            digits = sum(ch.isdigit() for ch in m.group(0))  # str.isdigit counts full-width too
            if 9 <= digits <= 15:
                yield m.group(0).strip()


RECOGNIZERS: dict[str, Callable[[str], Iterable[str]]] = {
    "email": lambda text: (m.group(0) for m in _EMAIL_RE.finditer(text)),
    "card": _find_cards,
    "iban": _find_ibans,
    "phone": _find_phones,
}


@dataclass
class Masking:
    """The placeholders of one task: placeholder name -> original value, and entity types."""

    values: dict[str, str] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    confidential: bool = False

    @property
    def sensitivity(self) -> Sensitivity:
        if self.confidential:
            return "confidential"
        return "pii" if self.entities else "none"

    def placeholder_for(self, value: str, base: str) -> str:
        for name, existing in self.values.items():
            if existing == value:
                return name
        name, n = base, 1
        while name in self.values:
            n += 1
            name = f"{base}_{n}"
        self.values[name] = value
        return name


class Masker:
    """Masks a task's context and brief by the policy's privacy section."""

    def __init__(self, privacy: Privacy) -> None:
        self.sensitive = {f.casefold() for f in privacy.sensitive_fields}
        self.confidential = {f.casefold() for f in privacy.confidential_fields}
        # Most specific first, so a phone pattern never eats part of an IBAN or a card number.
        self.recognizers = [(n, RECOGNIZERS[n]) for n in RECOGNIZERS if n in privacy.recognizers]

    def mask(self, context: Mapping[str, Any], brief: str = "") -> tuple[dict[str, Any], str, Masking]:
        """Return the masked context, the masked brief and the placeholder map."""
        masking = Masking()
        replacements: list[tuple[str, str]] = []
        for key, value in _leaves(context):
            k = key.casefold()
            if k not in self.sensitive and k not in self.confidential:
                continue
            text = str(value).strip()
            if not text:
                continue
            masking.entities.add(k)
            masking.confidential |= k in self.confidential
            replacements.append((text, masking.placeholder_for(text, k)))
            if "name" in k:
                parts = [p for p in re.split(r"\s+", text) if len(p) >= 2 and p != text]
                for i, part in enumerate(parts, start=1):
                    replacements.append((part, masking.placeholder_for(part, f"{k}_part{i}")))
        replacements.sort(key=lambda r: len(r[0]), reverse=True)
        pattern = _values_pattern([value for value, _ in replacements])
        names: dict[str, str] = {}
        for value, name in replacements:
            names.setdefault(_match_key(value), name)

        def scrub(text: str) -> str:
            if pattern is not None:  # one pass: a placeholder put in is never matched again
                text = pattern.sub(lambda m: "{" + names[_match_key(m.group(0))] + "}", text)
            for entity, find in self.recognizers:
                for hit in sorted(set(find(text)), key=len, reverse=True):
                    masking.entities.add(entity)
                    text = text.replace(hit, "{" + masking.placeholder_for(hit, entity) + "}")
            return text

        return _map_strings(context, scrub), scrub(brief), masking

    def scan(self, text: str) -> set[str]:
        """Entity types the recognizers still find in ``text`` (what would leave the machine)."""
        return {entity for entity, find in self.recognizers if any(True for _ in find(text))}


def merge_fields(context: Mapping[str, Any]) -> dict[str, str]:
    """Top-level text and number fields of a contact, usable as merge tags (``{company}``)."""
    return {str(k): str(v).strip() for k, v in context.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip()}


def unmask(value: Any, masking: Masking, fields: Mapping[str, str] | None = None) -> Any:
    """Restore every known placeholder in the strings of ``value``. A placeholder naming another
    contact field (a merge tag such as ``{company}``) takes that field's value from ``fields``;
    unknown ones stay visible for the placeholder guard."""
    extra = fields or {}

    def restore(text: str) -> str:
        return PLACEHOLDER_RE.sub(
            lambda m: masking.values.get(m.group(1), extra.get(m.group(1), m.group(0))), text
        )

    return _map_strings(value, restore)


def expansion(masking: Masking, fields: Mapping[str, str] | None = None) -> int:
    """How many characters one placeholder can grow by when restored (0 if none grows)."""
    pairs = list(masking.values.items()) + list((fields or {}).items())
    return max([len(v) - len(k) - 2 for k, v in pairs] + [0])


def _values_pattern(values: list[str]) -> re.Pattern[str] | None:
    """One pattern for all sensitive values, longest first (so "Ann Lee" wins over "Ann").
    Latin text matches as whole words, case-insensitively ("ANN" but not "annual"); other
    scripts match exactly. One pass matters: replacing values one after the other let a name
    such as "Phone" match inside the ``{phone}`` placeholder put in for the phone number."""
    if not values:
        return None
    alternatives = [rf"(?i:(?<!\w){re.escape(v)}(?!\w))" if v.isascii() else re.escape(v)
                    for v in values]
    return re.compile("|".join(alternatives))


def _match_key(text: str) -> str:
    """What a matched value is looked up by: case-insensitive for Latin text, as the pattern."""
    return text.casefold() if text.isascii() else text


def _leaves(value: Any, key: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v, key)
    elif value is not None:
        yield key, value


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A phone or card typed as a number in a CRM export is still personal data.
        as_text = str(value)
        masked = fn(as_text)
        return masked if masked != as_text else value
    return value

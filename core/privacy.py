"""Reversible masking of customer data.

Record-aware first: every value of a field that holds personal or confidential data (by the
policy's field lists, the contact vocabulary of :mod:`core.contacts`, or a field name that looks
personal) is replaced by a placeholder (``{first_name}``) wherever it appears in the context or the
brief: in values and in keys, at any depth, including the single words of a name and, for phone
numbers, the same digits written another way. A value nested under such a field
(``{"firstname": {"value": "Ann"}}``) is that field's value. Pattern recognizers then catch what
free text still holds: emails (also with non-ASCII or full-width ``＠``), phone numbers
(international, North American and Japanese, also in full-width digits), card numbers
(Luhn-checked) and IBANs (mod-97-checked).

Everything is compared *folded*: NFKC, case-folded, accents of Latin, Greek and Cyrillic letters
dropped, so ``ZOË``, ``Zoe`` and a decomposed ``Zoë`` are one value, and the Turkish ``İ`` folds
to ``i``. Matches are found in the folded text and cut from the original, whose other characters
stay exactly as they were.

Placeholders are restored in the model's output only for the task's allowed merge fields, never
for a confidential field. Braces in CRM data are neutralized before any model sees them, so text
copied from a record can never become a placeholder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from core.contacts import PHONE_FIELDS, canonical_name, field_key, looks_personal
from core.policy import Privacy, Sensitivity

PLACEHOLDER_RE = re.compile(r"\{\{?\s*([a-z][a-z0-9_]*)\s*\}?\}")
# CRM text's own braces, as the model sees them (see neutralize)
OPEN, CLOSE = "⦃", "⦄"

_D = "[0-9]"  # digits are ASCII once folded (NFKC turns full-width digits into ASCII)
_H = "[-‐ー−.\\s]"  # separators seen in international numbers, incl. Japanese dashes
_JH = "[-‐ー−]"  # Japanese domestic numbers are written with dashes
# Not inside a longer run of digits or Latin letters; Japanese text around a number is fine
# (``\w`` would count kana and kanji as word characters).
_NB = "(?<![0-9a-z])"
_NA = "(?![0-9a-z])"

_EMAIL_RE = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_PHONE_RES = (
    # +81 90-1234-5678, +1 (415) 555-0100, +44 20 7946 0958
    re.compile(rf"{_NB}(?<!\+)\+{_D}{{1,3}}{_H}?\(?{_D}{{1,4}}\)?(?:{_H}?{_D}{{2,4}}){{2,4}}{_NA}"),
    # Japanese domestic: 090-1234-5678, 03-1234-5678, 0120-123-456, 09012345678
    re.compile(rf"{_NB}0{_D}{{1,4}}{_JH}{_D}{{1,4}}{_JH}{_D}{{3,4}}{_NA}"),
    re.compile(rf"{_NB}0[5-9]0{_D}{{8}}{_NA}"),
    # North American: (415) 555-0100, 415-555-0100, 415.555.0100
    re.compile(rf"{_NB}(?:\(\d{{3}}\)\s?|\d{{3}}[-.\s])\d{{3}}[-.\s]\d{{4}}{_NA}"),
)
# 13 to 19 digits, single or double spaces, dashes or dots between them
_CARD_RE = re.compile(r"(?<!\d)(?:\d[ .-]{0,2}){12,18}\d(?!\d)")
_IBAN_RE = re.compile(r"(?<![0-9a-z])[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?(?![0-9a-z])")
_DIGIT_SEP = r"[\s().\-/]{0,2}"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isascii():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


Span = tuple[int, int]


def _find_cards(text: str) -> Iterable[Span]:
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            yield m.span()


def _find_ibans(text: str) -> Iterable[Span]:
    return (m.span() for m in _IBAN_RE.finditer(text) if iban_ok(m.group(0)))


def _find_phones(text: str) -> Iterable[Span]:
    for pattern in _PHONE_RES:
        for m in pattern.finditer(text):
            if 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 15:
                start, end = m.span()
                while end > start and text[end - 1].isspace():
                    end -= 1
                yield start, end


# Each runs on folded text (see fold) and yields spans of it.
RECOGNIZERS: dict[str, Callable[[str], Iterable[Span]]] = {
    "email": lambda text: (m.span() for m in _EMAIL_RE.finditer(text)),
    "card": _find_cards,
    "iban": _find_ibans,
    "phone": _find_phones,
}


# -- folding ---------------------------------------------------------------------------------


def _continues(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (a combining mark, a Hangul vowel or
    final consonant, a joiner or a variation selector)."""
    o = ord(ch)
    return bool(unicodedata.combining(ch)) or 0x1160 <= o <= 0x11FF or o == 0x200D or \
        0xFE00 <= o <= 0xFE0F or unicodedata.category(ch) == "Mn"


@lru_cache(maxsize=1 << 16)
def _spaced_script(ch: str) -> bool:
    """Latin, Greek and Cyrillic letters: scripts that separate words with spaces, and whose
    accents Baton ignores when comparing names."""
    return unicodedata.name(ch, "").startswith(("LATIN", "GREEK", "CYRILLIC"))


@lru_cache(maxsize=1 << 16)
def _fold_chunk(chunk: str) -> str:
    decomposed = unicodedata.normalize("NFKD", chunk)
    if decomposed and _spaced_script(decomposed[0]):
        decomposed = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", decomposed).casefold())


@dataclass(frozen=True)
class Folded:
    """A text folded for comparison, and for each folded character the span of the original
    characters it came from."""

    text: str
    starts: tuple[int, ...] | None  # None: the identity (ASCII text, folded by lower())
    ends: tuple[int, ...] | None

    def original(self, start: int, end: int) -> Span:
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def fold(text: str) -> Folded:
    """``text`` folded: NFKC, case-folded, Latin/Greek/Cyrillic accents dropped."""
    if text.isascii():
        return Folded(text.lower(), None, None)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    start, n = 0, len(text)
    for i in range(1, n + 1):
        if i < n and _continues(text[i]):
            continue
        piece = _fold_chunk(text[start:i])
        out.append(piece)
        starts.extend([start] * len(piece))
        ends.extend([i] * len(piece))
        start = i
    return Folded("".join(out), tuple(starts), tuple(ends))


def folded(text: str) -> str:
    return fold(text).text


# -- masking ---------------------------------------------------------------------------------


@dataclass
class Masking:
    """The placeholders of one task: placeholder name -> original value; the entity types present
    (field names and recognizer names), how many values of each were actually replaced, and which
    placeholders stand for confidential values."""

    values: dict[str, str] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    confidential: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)  # placeholders of confidential values
    redact: Callable[[str], str] = field(default=lambda text: text, repr=False)
    _names: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @property
    def sensitivity(self) -> Sensitivity:
        if self.confidential:
            return "confidential"
        return "pii" if self.entities else "none"

    def placeholder_for(self, value: str, base: str) -> str:
        """The placeholder of ``value`` as a ``base`` (``email``, ``first_name_part1``), one per
        exact text: ``ZOË`` found for the first name ``Zoë`` gets its own (``first_name_2``), so
        every placeholder restores exactly what it replaced."""
        key = (base, value)
        name = self._names.get(key)
        if name is None:
            name, n = base, 1
            while name in self.values:
                n += 1
                name = f"{base}_{n}"
            self.values[name] = value
            self._names[key] = name
        return name

    def count(self, entity: str) -> None:
        self.counts[entity] = self.counts.get(entity, 0) + 1


@dataclass(frozen=True)
class _Value:
    """One sensitive value to find: its field (placeholder base) and how it is written."""

    text: str
    entity: str
    confidential: bool


class Masker:
    """Masks a task's context and brief by the policy's privacy section."""

    def __init__(self, privacy: Privacy) -> None:
        self.sensitive = {canonical_name(f) or field_key(f) for f in privacy.sensitive_fields}
        self.confidential = {canonical_name(f) or field_key(f) for f in privacy.confidential_fields}
        self.recognizers: list[tuple[str, Callable[[str], Iterable[Span]]]] = [
            (n, RECOGNIZERS[n]) for n in RECOGNIZERS if n in privacy.recognizers]

    def classify(self, key: str) -> tuple[str, bool] | None:
        """(placeholder base, confidential) for a field whose values are masked, else None."""
        name = canonical_name(key)
        ident = name or field_key(key)
        if ident in self.confidential:
            return _slug(name or key), True
        if ident in self.sensitive or (name is None and looks_personal(key)):
            return _slug(name or key), False
        return None

    def mask(self, context: Mapping[str, Any], brief: str = "") -> tuple[dict[str, Any], str, Masking]:
        """Return the masked context, the masked brief and the placeholder map."""
        masking = Masking()
        values: list[_Value] = []
        for (entity, secret), value in _sensitive_leaves(context, self.classify):
            text = str(value).strip()
            if not text:
                continue
            masking.entities.add(entity)
            masking.confidential |= secret
            values.append(_Value(text, entity, secret))
            if entity in ("name", "first_name", "last_name", "middle_name") or "name" in entity:
                parts = [p for p in text.split() if len(p) >= 2 and p != text]
                values += [_Value(p, f"{entity}_part{i}", secret)
                           for i, p in enumerate(parts, start=1)]
        finder = _ValueFinder(values)

        def scrub(text: str, register: bool = True) -> str:
            f = fold(text)
            spans: list[tuple[int, int, str]] = []  # folded start, end, entity
            for start, end, value in finder.find(f.text):
                spans.append((start, end, value.entity))
            for recognizer, find in self.recognizers:
                spans += [(s, e, recognizer) for s, e in find(f.text)]
            out, last = [], 0
            for start, end, entity in _non_overlapping(spans):
                a, b = f.original(start, end)
                hit = text[a:b]
                if register:
                    name = masking.placeholder_for(hit, entity)
                    masking.entities.add(_base(entity))
                    masking.count(_base(entity))
                    if any(v.confidential and v.entity == entity for v in values):
                        masking.secret.add(name)
                else:
                    name = _base(entity)
                out.append(text[last:a] + "{" + name + "}")
                last = b
            return "".join(out) + text[last:]

        masking.redact = lambda text: scrub(text, register=False)
        return _map_strings(context, scrub, keys=True), scrub(brief), masking

    def scan(self, text: str) -> set[str]:
        """Entity types the recognizers still find in ``text`` (what would leave the machine)."""
        f = fold(text).text
        return {entity for entity, find in self.recognizers if any(True for _ in find(f))}


class _ValueFinder:
    """One pattern for all sensitive values, longest first (so "Ann Lee" wins over "Ann"), run
    on folded text. Names in spaced scripts match as whole words ("ANN" but not "annual");
    other scripts (CJK, Thai, Arabic, ...) anywhere, as particles attach to names there. Phone
    values also match as their bare digits, with or without the country code or a trunk 0."""

    def __init__(self, values: list[_Value]) -> None:
        alternatives: list[tuple[int, str, _Value]] = []
        for value in values:
            key = folded(value.text)
            words = key.split()
            if not words:
                continue
            body = r"\s+".join(re.escape(w) for w in words)
            if all(_spaced_script(ch) or not ch.isalpha() for ch in key):
                body = rf"(?<!\w){body}(?!\w)"
            alternatives.append((len(key), body, value))
            if _base(value.entity) in PHONE_FIELDS:
                for digits in _phone_variants(key):
                    body = rf"(?<![0-9])\+?{_DIGIT_SEP.join(digits)}(?![0-9])"
                    alternatives.append((len(digits), body, value))
        alternatives.sort(key=lambda a: a[0], reverse=True)
        self.values = [v for _, _, v in alternatives]
        self.pattern = re.compile("|".join(f"({body})" for _, body, _ in alternatives)) \
            if alternatives else None

    def find(self, text: str) -> Iterable[tuple[int, int, _Value]]:
        if self.pattern is None:
            return
        for m in self.pattern.finditer(text):
            assert m.lastindex is not None
            yield m.start(), m.end(), self.values[m.lastindex - 1]


def _phone_variants(value: str) -> list[str]:
    """The digit strings a phone number is also written as: all its digits, and without a
    country code of 1 to 3 digits, with or without the trunk 0 (``+81 90-1234-5678`` is also
    ``09012345678``)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) < 7:
        return []
    variants = {digits}
    if value.lstrip().startswith("+"):
        for cc in (1, 2, 3):
            national = digits[cc:]
            if len(national) >= 7:
                variants |= {national, "0" + national}
    return sorted(variants, key=len, reverse=True)


def _non_overlapping(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The longest spans first, each kept unless it overlaps one already kept; in text order."""
    kept: list[tuple[int, int, str]] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        if span[1] > span[0] and all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(span)
    return sorted(kept)


def _base(name: str) -> str:
    """The field a placeholder stands for: ``first_name_part2`` and ``email_2`` -> their field."""
    return re.sub(r"(?:_part\d+)?(?:_\d+)?$", "", name)


def _slug(name: str) -> str:
    """A field name as a placeholder name (``Spouse Name`` -> ``spouse_name``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    slug = re.sub(r"[^a-z0-9]+", "_", folded(spaced)).strip("_")
    return slug if slug[:1].isalpha() else f"field_{slug}".rstrip("_")


def _sensitive_leaves(value: Any, classify: Callable[[str], tuple[str, bool] | None],
                      owner: tuple[str, bool] | None = None) -> Iterable[tuple[tuple[str, bool], Any]]:
    """(field, confidential) and value of every leaf under a sensitive field; a leaf takes the
    nearest sensitive field above it (``{"firstname": {"value": "Ann"}}`` is a first name)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = classify(str(k))
            yield from _sensitive_leaves(v, classify, found if found is not None else owner)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _sensitive_leaves(v, classify, owner)
    elif value is not None and owner is not None and not isinstance(value, bool):
        yield owner, value


def neutralize(value: Any) -> Any:
    """CRM data with its braces replaced by look-alikes (``⦃ ⦄``), so that text copied from a
    record (``{email}``, ``{{ contact.email }}``) can never be taken for a placeholder."""
    return _map_strings(value, lambda s: s.replace("{", OPEN).replace("}", CLOSE)
                        if "{" in s or "}" in s else s, keys=True)


def merge_fields(context: Mapping[str, Any]) -> dict[str, str]:
    """Top-level text and number fields of a contact, usable as merge tags (``{company}``)."""
    return {str(k): str(v).strip() for k, v in context.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip()}


def unmask(value: Any, masking: Masking, fields: Mapping[str, str] | None = None,
           allowed: Collection[str] | None = None) -> Any:
    """Restore placeholders in the strings of ``value``. With ``allowed`` (the task's merge
    fields), only placeholders of those fields are restored, and never a confidential one: a
    placeholder naming another contact field (a merge tag such as ``{company}``) takes that
    field's value from ``fields``. What is not restored stays visible for the placeholder guard.
    Without ``allowed`` every known placeholder is restored (Baton's own text, e.g. a greeting)."""
    extra = fields or {}

    def restore(m: re.Match[str]) -> str:
        name = m.group(1)
        if allowed is not None and (_base(name) not in allowed or name in masking.secret):
            return m.group(0)
        return masking.values.get(name, extra.get(name, m.group(0)))

    return _map_strings(value, lambda text: PLACEHOLDER_RE.sub(restore, text))


def expansion(masking: Masking, fields: Mapping[str, str] | None = None) -> int:
    """How many characters one placeholder can grow by when restored (0 if none grows)."""
    pairs = list(masking.values.items()) + list((fields or {}).items())
    return max([len(v) - len(k) - 2 for k, v in pairs] + [0])


def _map_strings(value: Any, fn: Callable[[str], str], keys: bool = False) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {_map_key(k, fn) if keys else k: _map_strings(v, fn, keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn, keys) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A phone or card typed as a number in a CRM export is still personal data.
        as_text = str(value)
        masked = fn(as_text)
        return masked if masked != as_text else value
    return value


def _map_key(key: Any, fn: Callable[[str], str]) -> Any:
    """A key is data too (``{"ann@x.com": 3}``), unless it is a field name Baton knows."""
    if not isinstance(key, str) or canonical_name(key) is not None:
        return key
    return fn(key)

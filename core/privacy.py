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

from core.contacts import PHONE_FIELDS, PRODUCT_FIELDS, canonical_name, field_key, looks_personal
from core.errors import InputError
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

# Parts bounded by the lengths RFC 5321 allows, so a long word without "@" costs linear time.
_EMAIL_RE = re.compile(r"[\w.%+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,63}")
_PHONE_RES = (
    # +81 90-1234-5678, +1 (415) 555-0100, +44 20 7946 0958
    re.compile(rf"{_NB}(?<!\+)\+{_D}{{1,3}}{_H}?\(?{_D}{{1,4}}\)?(?:{_H}?{_D}{{2,4}}){{2,4}}{_NA}"),
    # Japanese domestic: 090-1234-5678, 03-1234-5678, 0120-123-456, 09012345678
    re.compile(rf"{_NB}0{_D}{{1,4}}{_JH}{_D}{{1,4}}{_JH}{_D}{{3,4}}{_NA}"),
    re.compile(rf"{_NB}0[5-9]0{_D}{{8}}{_NA}"),
    # North American: (415) 555-0100, 415-555-0100, 415.555.0100
    re.compile(rf"{_NB}(?:\(\d{{3}}\)\s?|\d{{3}}[-.\s])\d{{3}}[-.\s]\d{{4}}{_NA}"),
)
# 13 to 19 digits, up to five spaces, dashes, dots or underscores between them
_CARD_RE = re.compile(r"(?<!\d)(?:\d[ ._-]{0,5}){12,18}\d(?!\d)")
_IBAN_RE = re.compile(r"(?<![0-9a-z])[a-z]{2}\d{2}(?:[ -]?[a-z0-9]{4}){2,7}(?:[ -]?[a-z0-9]{1,4})?"
                      r"(?![0-9a-z])")
_DIGIT_SEP = r"[\s().\-/·–—_]{0,3}"
# Between the words of a value: none ("AnnLee"), or up to three spaces or punctuation
_WORD_SEP = r"[\s_.\-‐–—·,'/]{0,3}"
_SPLIT = re.compile(r"[\s_.\-‐–—·,'/]+")
_LETTER_BEFORE, _LETTER_AFTER = r"(?<![^\W\d_])", r"(?![^\W\d_])"  # not inside a word's letters
MAX_VALUES = 2000  # sensitive values in one task's context


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
    return (m.span() for m in _IBAN_RE.finditer(text) if iban_ok(m.group(0).replace("-", "")))


def _find_phones(text: str) -> Iterable[Span]:
    for pattern in _PHONE_RES:
        for m in pattern.finditer(text):
            if 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 15:
                start, end = m.span()
                while end > start and text[end - 1].isspace():
                    end -= 1
                yield start, end


# Each runs on folded text (see fold) and yields spans of it.
def _find_emails(text: str) -> Iterable[Span]:
    return (m.span() for m in _EMAIL_RE.finditer(text)) if "@" in text else ()


RECOGNIZERS: dict[str, Callable[[str], Iterable[Span]]] = {
    "email": _find_emails,
    "card": _find_cards,
    "iban": _find_ibans,
    "phone": _find_phones,
}


# -- folding ---------------------------------------------------------------------------------


def _continues(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (a combining mark, variation
    selectors included, a Hangul vowel or final consonant, a joiner)."""
    o = ord(ch)
    return bool(unicodedata.combining(ch)) or 0x1160 <= o <= 0x11FF or o == 0x200D or \
        unicodedata.category(ch) == "Mn"


@lru_cache(maxsize=1 << 16)
def _spaced_script(ch: str) -> bool:
    """Latin, Greek and Cyrillic letters: scripts that separate words with spaces, and whose
    accents Baton ignores when comparing names."""
    return unicodedata.name(ch, "").startswith(("LATIN", "GREEK", "CYRILLIC"))


# Invisible characters that can sit inside a name (zero-width space and joiners, soft hyphen,
# grapheme joiner, word joiner, variation selectors, BOM): folding drops them.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                        "\ufe00-\ufe0f\ufeff]")
# ...and Latin letters that carry their mark in the letter itself, so no decomposition strips
# it: Turkish dotless ı (YILMAZ is how Yılmaz is written in capitals), Polish ł, Nordic ø,
# Croatian/Vietnamese đ, Maltese ħ.
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "´": "'", "＇": "'",
                              "ı": "i", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d",
                              "Đ": "D", "ħ": "h", "Ħ": "H"})


@lru_cache(maxsize=1 << 16)
def _fold_chunk(chunk: str) -> str:
    decomposed = unicodedata.normalize("NFKD", _INVISIBLE.sub("", chunk).translate(_APOSTROPHES))
    if decomposed and _spaced_script(decomposed[0]):
        decomposed = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    out = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", decomposed).casefold())
    if not out.isascii():  # Arabic-Indic, Devanagari, ... digits as ASCII digits
        out = "".join(str(unicodedata.digit(ch)) if unicodedata.category(ch) == "Nd" else ch
                      for ch in out)
    return out


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
    glued: bool = False  # words joined by nothing or one "_", "." or "-" only ("AnnLee")


class Masker:
    """Masks a task's context and brief by the policy's privacy section."""

    def __init__(self, privacy: Privacy) -> None:
        self.sensitive = {canonical_name(f) or field_key(f) for f in privacy.sensitive_fields}
        self.confidential = {canonical_name(f) or field_key(f) for f in privacy.confidential_fields}
        self.recognizers: list[tuple[str, Callable[[str], Iterable[Span]]]] = [
            (n, RECOGNIZERS[n]) for n in RECOGNIZERS if n in privacy.recognizers]

    def classify(self, key: str, top: bool = True) -> tuple[str, bool] | None:
        """(placeholder base, confidential) for a field whose values are masked, else None. The
        contact's own fields are named as they are (``first_name``); anyone else's (a nested
        household member, an unknown ``Spouse name``) as ``other_...``, which is never filled
        into copy: a model must not greet the contact with their partner's name."""
        name = canonical_name(key)
        ident = name or field_key(key)
        secret = ident in self.confidential
        listed = secret or ident in self.sensitive
        if not listed and (name is not None or not looks_personal(key)):
            return None
        base = _slug(name or key)
        return (base if listed and top else f"other_{base}"), secret

    def mask(self, context: Mapping[str, Any], brief: str = "") -> tuple[dict[str, Any], str, Masking]:
        """Return the masked context, the masked brief and the placeholder map."""
        masking = Masking()
        values: list[_Value] = []
        leaves = list(_sensitive_leaves(context, self.classify))
        renamed = _data_in_names(leaves)
        for (entity, secret), value in leaves:
            entity = renamed.get(entity, entity)
            text = _as_text(value)
            if not text:
                continue
            masking.entities.add(entity)
            masking.confidential |= secret
            values.append(_Value(text, entity, secret))
            # Every field has its placeholder, even when another field holds the same value
            # ("Lee Lee") and wins the match: the model may write either.
            name = masking.placeholder_for(text, entity)
            if secret:
                masking.secret.add(name)
            values += [_Value(part, f"{entity}_part{i}", secret)
                       for i, part in enumerate(_parts(entity, text), start=1)]
        first, last = _field(context, "first_name"), _field(context, "last_name")
        if first and last:  # "AnnLee", "lee_ann": the whole name glued, either way round
            values += [_Value(f"{first} {last}", "name", False, glued=True),
                       _Value(f"{last} {first}", "name", False, glued=True)]
        if len(values) > MAX_VALUES:
            raise InputError(f"the context holds {len(values)} personal values; Baton masks at most "
                             f"{MAX_VALUES} per task (send fewer records at once)")
        finder = _ValueFinder(values)
        secret_entities = {v.entity for v in values if v.confidential}

        def scrub(text: str, register: bool = True) -> str:
            f = fold(text)
            spans: list[tuple[int, int, str]] = list(finder.find(f.text))  # folded start, end, entity
            for recognizer, find in self.recognizers:
                spans += [(s, e, recognizer) for s, e in find(f.text)]
            out, last = [], 0
            for start, end, entity in _non_overlapping(spans):
                a, b = f.original(start, end)
                if register:
                    name = masking.placeholder_for(text[a:b], entity)
                    masking.entities.add(_base(entity))
                    masking.count(_base(entity))
                    if entity in secret_entities:
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


_PARTICLES = frozenset({"de", "la", "le", "del", "della", "der", "den", "van", "von", "da", "di",
                        "du", "dos", "das", "do", "y", "e", "bin", "bint", "al", "el", "ibn",
                        "st", "street", "road", "rd", "avenue", "ave", "lane", "ln", "drive", "dr",
                        "way", "apt", "suite", "floor", "no"})


def _parts(entity: str, text: str) -> list[str]:
    """The pieces of a value also masked on their own: the words of a name ("Ana-María García":
    Ana, María, García) or a street address, a CJK full name's family and given names (山田太郎:
    山田, 太郎), an email's local part. Particles ("de", "van") and words of one or two Latin
    letters are left alone: they are words of every sentence too."""
    base = _base(entity).removeprefix("other_")
    if base in ("email",) and "@" in text:
        local = text.split("@", 1)[0]
        return [local] if len(local) >= 4 else []
    if not any(word in base for word in ("name", "address", "street")):
        return []
    words = [w for w in _SPLIT.split(text) if w and w != text]
    if not words and base == "name" and 3 <= len(text) <= 5 and not any(_spaced_script(c) for c in text):
        return [text[:2], text[2:]]
    return [w for w in words if folded(w) not in _PARTICLES
            and (len(w) >= 3 or not all(_spaced_script(c) for c in w))]


def _field(context: Mapping[str, Any], name: str) -> str:
    value = context.get(name)
    return value.strip() if isinstance(value, str) else ""


def _as_text(value: Any) -> str:
    """A leaf as text; a number typed as a float that is whole (a phone from a spreadsheet,
    4155550100.0) as its digits."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class _ValueFinder:
    """All sensitive values in one pattern, run on folded text: a trie of their words, so that
    matching costs about the text's length whatever the number of values, preferring the longest
    ("Ann Lee" over "Ann"). Values in spaced scripts match where no letter touches them ("ANN",
    "Ann's", "ann_2024", but not "annual"), words joined by up to three spaces or punctuation or
    by nothing ("AnnLee", "lee-ann"); other scripts (CJK, Thai, Arabic, ...) anywhere, as
    particles attach to names there. A single Latin letter (an initial) is not looked for in free
    text. Phone values also match as their digits written any way, with or without a country
    code, ``00`` or a trunk 0."""

    def __init__(self, values: list[_Value]) -> None:
        bounded: dict[Any, Any] = {}
        loose: dict[Any, Any] = {}
        self.by_key: dict[str, _Value] = {}
        self.initials: dict[str, _Value] = {}
        phones: list[tuple[str, _Value]] = []
        # A text that is several values at once is the contact's own whole field first, then a
        # part (a first name "Maya" before the local part of maya@example.net), then anyone else's.
        for value in sorted(values, key=lambda v: (v.entity.startswith("other_"), "_part" in v.entity)):
            key = folded(value.text)
            words = [w for w in _SPLIT.split(key) if w]
            if not words:
                continue
            spaced = all(_spaced_script(ch) or not ch.isalpha() for ch in key)
            if spaced and len("".join(words)) < 2:
                self.initials.setdefault(key, value)  # masked where it is the whole text
                continue
            self.by_key.setdefault(_squash(key), value)
            _insert(bounded if spaced else loose, words, _GLUE if value.glued else _SEP)
            if _base(value.entity).removeprefix("other_") in PHONE_FIELDS:
                phones += [(core, value) for core in _phone_cores(key)]
        alternatives = []
        if bounded:
            alternatives.append(_LETTER_BEFORE + _emit(bounded, _LETTER_AFTER))
        if loose:
            alternatives.append(_emit(loose, ""))
        self.pattern = re.compile("|".join(alternatives)) if alternatives else None
        phones.sort(key=lambda p: len(p[0]), reverse=True)
        self.phones = [value for _, value in phones]
        self.phone_pattern = re.compile("|".join(
            rf"((?<![0-9])(?:(?:\+|00)?[0-9]{{1,3}}{_DIGIT_SEP})?\(?0?{_DIGIT_SEP}"
            rf"{_DIGIT_SEP.join(core)}(?![0-9]))" for core, _ in phones)) if phones else None

    def find(self, text: str) -> Iterable[tuple[int, int, str]]:
        initial = self.initials.get(text.strip())
        if initial is not None:  # a field holding just an initial
            yield len(text) - len(text.lstrip()), len(text.rstrip()), initial.entity
            return
        if self.pattern is not None:
            for m in self.pattern.finditer(text):
                value = self.by_key.get(_squash(m.group(0)))
                if value is not None:
                    yield m.start(), m.end(), value.entity
        if self.phone_pattern is not None:
            for m in self.phone_pattern.finditer(text):
                assert m.lastindex is not None
                start, end = m.span()
                while text[start] in " \t":
                    start += 1
                yield start, end, self.phones[m.lastindex - 1].entity


# Trie keys besides single characters: the end of a value, and what may stand between words.
_END, _SEP, _GLUE = "", "<sep>", "<glue>"
_JOINERS = {_SEP: _WORD_SEP, _GLUE: r"[_.\-]?"}


def _insert(trie: dict[Any, Any], words: list[str], joiner: str) -> None:
    node = trie
    for i, word in enumerate(words):
        for ch in ((joiner,) if i else ()) + tuple(word):
            node = node.setdefault(ch, {})
    node[_END] = {}


def _emit(node: dict[Any, Any], end: str) -> str:
    """The regex of a trie: each branch one character, longer branches tried first."""
    branches = []
    for key in sorted((k for k in node if k != _END), key=lambda k: (k in _JOINERS, k)):
        atom = _JOINERS.get(key) or re.escape(key)
        branches.append(atom + _emit(node[key], end))
    if _END in node:
        branches.append(end)
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def _squash(text: str) -> str:
    """A value's lookup key: its folded text without the separators between words."""
    return _SPLIT.sub("", text)


def _phone_cores(value: str) -> list[str]:
    """The national digits of a phone number, without a country code of 1 to 3 digits (when it
    is written with ``+``) and without a trunk 0: what every way of writing it ends with."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) < 7:
        return []
    def core(national: str) -> str:  # without its trunk 0, unless too little would be left
        return national.lstrip("0") if len(national.lstrip("0")) >= 7 else national

    cores = {core(digits)}
    written = value.lstrip()
    if written.startswith(("+", "00")):  # an international prefix, then 1 to 3 digits of country
        international = digits[2:] if written.startswith("00") else digits
        cores |= {core(international[cc:]) for cc in (1, 2, 3)}
    return sorted((c for c in cores if len(c) >= 7), key=len, reverse=True)


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


_IDENTIFIER = re.compile(r"[a-z][A-Za-z0-9_]*")
_PRODUCT_ATTRIBUTES = frozenset({"name", "title", "description", "sku", "job_title"})


def _data_in_names(leaves: list[tuple[tuple[str, bool], Any]]) -> dict[str, str]:
    """Placeholders named after a field that is not a known one, whose name holds a word of a
    value being masked (``{"Kiku Namesa": 1}`` under a field that looks personal, beside a first
    name ``Kiku``): the name is data and would carry it to the model; such a placeholder is
    named ``other_value`` instead."""
    words = {w for _, value in leaves if (text := _as_text(value))
             for w in re.findall(r"[a-z0-9]{2,}", folded(text))}
    return {entity: "other_value" for (entity, _), _ in leaves
            if canonical_name(entity) is None
            and set(entity.removeprefix("other_").split("_")) & words}


def _sensitive_leaves(value: Any, classify: Callable[[str, bool], tuple[str, bool] | None],
                      owner: tuple[str, bool] | None = None, depth: int = 0,
                      products: bool = False) -> Iterable[tuple[tuple[str, bool], Any]]:
    """(field, confidential) and value of every leaf under a sensitive field; a leaf takes the
    nearest sensitive field above it (``{"firstname": {"value": "Ann"}}`` is a first name), and
    so do the keys below it (``{"spouse name": {"Bobbeth": 1}}``). Under a product field
    (``catalog``, ``purchases``) a ``name`` is a product's, but ``recipient_name`` is a person's."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            if owner is not None and canonical_name(key) is None and not _IDENTIFIER.fullmatch(key):
                yield owner, key  # data as a key ({"Bobbeth": 1}), not a structure's ("value")
            inside = products or (canonical_name(key) or key) in PRODUCT_FIELDS
            found = None if inside and (canonical_name(key) or key) in \
                _PRODUCT_ATTRIBUTES | PRODUCT_FIELDS else classify(key, depth == 0)
            yield from _sensitive_leaves(v, classify, found if found is not None else owner,
                                         depth + 1, inside)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _sensitive_leaves(v, classify, owner, depth + 1, products)
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

    return _map_strings(value, lambda text: PLACEHOLDER_RE.sub(restore, text), keys=True)


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
        as_text = _as_text(value)
        masked = fn(as_text)
        return masked if masked != as_text else value
    return value


def _map_key(key: Any, fn: Callable[[str], str]) -> Any:
    """A key is data too (``{"ann@x.com": 3}``, ``{4155550100: 2}``), unless it is a field name
    Baton knows."""
    if isinstance(key, int) and not isinstance(key, bool):
        masked = fn(str(key))
        return masked if masked != str(key) else key
    if not isinstance(key, str) or (canonical_name(key) is not None and "{" not in key):
        return key
    return fn(key)

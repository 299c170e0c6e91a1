"""Tasks, task kinds and prompts.

A :class:`TaskKind` knows its output schema, how to render a prompt in either style (completion
for base models, chat for instruct models), how to finish a raw output (the brand's required
sign-off) and which guards apply. ``recommendation`` and ``reply`` are further kinds
registered the same way; their grounding guards read ``task.context`` (catalog, knowledge base).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.errors import InputError, LanguageError
from core.policy import BrandVoice, Example, Tier
from core.privacy import PLACEHOLDER_RE
from core.tasks.copycheck import (
    PRODUCT_TERMS,
    BriefGuard,
    ClaimGuard,
    ExampleGuard,
    IdentifierGuard,
    MarkupGuard,
    ProductGuard,
    brief_topics,
    context_products,
    identifiers,
)
from core.tasks.guards import (
    BannedWordsGuard,
    DisclosureGuard,
    Guard,
    LeadGuard,
    LengthGuard,
    LinkGuard,
    PlaceholderGuard,
    SchemaGuard,
)
from core.tasks.prompts import LANGUAGES, WORDING, Wording, example_pool, examples_for

PromptStyle = Literal["completion", "chat"]


@dataclass(frozen=True)
class Task:
    """One unit of work for the engine. ``context`` is the CRM record (flat or nested)."""

    kind: str
    context: Mapping[str, Any]
    brief: str = ""
    tenant: str = "default"
    tier: Tier = "routine"
    language: str = "en"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    regeneration: int = 0  # asked to write it again: a new sample (the same number: the same one)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt. ``prefix`` is shared by every task with the same brand, kind, language
    and brief (so its KV cache can be reused); ``suffix`` is this task's own part."""

    style: PromptStyle
    prefix: str
    suffix: str
    messages: tuple[Mapping[str, str], ...] = ()
    seed: int | None = None  # this prompt's sampling seed (else the limits' one)

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


class TaskKind(Protocol):
    """What the engine needs to know about one kind of task."""

    @property
    def name(self) -> str:
        """The registry name (``email``, ``text``, ...)."""

    @property
    def marketing(self) -> bool:
        """Whether its output is marketing sent to the contact (not for those who opted out)."""

    def schema(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None, brief: str | None = None
               ) -> dict[str, Any]:
        """The JSON schema the output must satisfy; ``lead`` is the text the main field must
        open with (carried as ``x-lead``, which the local grammar enforces); ``context`` lets a
        kind constrain values to the task's data (a recommendation's SKUs to its catalog);
        ``brief``, when given, lets a kind constrain what the copy may claim (``x-no-digits``)."""

    def lead(self, task: Task, context: Mapping[str, Any], brand: BrandVoice) -> str | None:
        """The opening the output must have for this contact (as the model sees it), or None."""

    def validate(self, task: Task) -> None:
        """Raise :class:`InputError` when the task cannot be run."""

    def render(self, task: Task, context: Mapping[str, Any], brief: str, brand: BrandVoice,
               style: PromptStyle, lead: str | None = None, variant: int = 0) -> Prompt:
        """The prompt for ``context`` and ``brief`` (already masked where the route says so);
        ``variant`` 1 is a second attempt's, which shows other examples where there are more."""

    def finish(self, output: dict[str, Any], brand: BrandVoice, language: str) -> dict[str, Any]:
        """Deterministic completion of a valid output (e.g. the required sign-off)."""

    def guards(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None,
               task: Task | None = None) -> list[Guard]:
        """The checks every output of this kind must pass (``lead`` as the reader will see it;
        ``context`` and ``task`` as given, unmasked: what the copy is checked against)."""


def check_language(language: str) -> None:
    """Raise :class:`LanguageError` unless Baton has a brand voice for ``language``."""
    if language not in LANGUAGES:
        raise LanguageError(f"language {language!r} is not supported; use one of "
                            f"{', '.join(LANGUAGES)}")


MAX_BRIEF_CHARS = 4000  # a brief is an instruction, not a document


def check_brief(task: Task) -> None:
    """Raise :class:`InputError` for a brief that is empty or too long to be one."""
    if not task.brief.strip():
        raise InputError(f"{task.kind} task {task.id}: the brief is empty; say what the "
                         f"{task.kind} is about (e.g. \"Introduce our new rain jacket\")")
    if len(task.brief) > MAX_BRIEF_CHARS:
        raise InputError(f"{task.kind} task {task.id}: the brief has {len(task.brief):,} "
                         f"characters, more than {MAX_BRIEF_CHARS:,}; shorten it to the "
                         "instruction (what to write about, for whom)")


def _string_object(keys: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "string"} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


def render_context(context: Mapping[str, Any]) -> str:
    """``key=value; key=value`` for a model to read; nested values as compact JSON."""
    parts = []
    for key, value in context.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={' '.join(str(text).split())}")
    return "; ".join(parts)


def has_content(context: Mapping[str, Any]) -> bool:
    return any(v not in (None, "", [], {}) for v in context.values())


@dataclass(frozen=True)
class CopyKind:
    """A kind whose output is an object of string fields (``email``, ``text``)."""

    name: str
    fields: tuple[str, ...]
    body_field: str
    limits: tuple[tuple[str, str], ...]  # (field, BrandVoice attribute holding its max length)
    greeted: bool = False
    min_body: int = 0  # characters the body must have after its lead (a grammar bound locally)
    marketing: bool = False  # marketing email: not for contacts who opted out
    brand_min: bool = False  # the minimum is the brand's ``min_body_chars`` (per language)

    def least(self, brand: BrandVoice) -> int:
        return brand.min_body_chars if self.brand_min else self.min_body

    def schema(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None, brief: str | None = None
               ) -> dict[str, Any]:
        """String fields; length limits leave room for the sign-off and disclosure that
        :meth:`finish` appends, so a grammar-constrained model cannot overrun them. A marketing
        email whose brief gives no number may write no digit (``x-no-digits``, which the local
        grammar enforces): a small model invents prices, dates and percentages, and the claims
        guard would refuse each one."""
        schema = _string_object(list(self.fields))
        if self.marketing and brief is not None and not any(c.isdigit() for c in brief):
            schema["x-no-digits"] = True
        reserve = sum(len(t) + 2 for t in (brand.sign_off, brand.ai_disclosure) if t)
        for name, attr in self.limits:
            limit = int(getattr(brand, attr)) - (reserve if name == self.body_field else 0)
            schema["properties"][name]["maxLength"] = max(limit, 1)
            if name != self.body_field:  # a subject or preheader is one line (the local grammar)
                schema["properties"][name]["x-one-line"] = True
        if lead:
            schema["properties"][self.body_field]["x-lead"] = lead
        if self.least(brand):
            schema["properties"][self.body_field]["minLength"] = len(lead or "") + self.least(brand)
        return schema

    def lead(self, task: Task, context: Mapping[str, Any], brand: BrandVoice) -> str | None:
        if not self.greeted:
            return None
        template = brand.greetings.get(task.language)
        if not template:
            return None
        fields = PLACEHOLDER_RE.findall(template)
        if all(isinstance(context.get(f), str | int | float) and str(context[f]).strip()
               for f in fields):
            return PLACEHOLDER_RE.sub(lambda m: str(context[m.group(1)]).strip(), template)
        fallback = brand.fallback_greetings.get(task.language)
        if not fallback:
            raise InputError(
                f"{self.name} task {task.id}: the contact has no {' or '.join(fields)} to greet "
                f"({template!r}); add it to the record, or set [brand] fallback_greetings "
                f"{{{task.language} = \"...\"}} in baton.toml to greet such contacts")
        return fallback

    def validate(self, task: Task) -> None:
        check_language(task.language)
        if not has_content(task.context):
            raise InputError(f"{self.name} task {task.id}: the contact is empty")
        check_brief(task)

    def render(self, task: Task, context: Mapping[str, Any], brief: str, brand: BrandVoice,
               style: PromptStyle, lead: str | None = None, variant: int = 0) -> Prompt:
        wording = WORDING[task.language]
        examples = examples_for(self.name, task.language, brand.examples, task.brief, variant)
        header = self._header(brand, wording)
        label = wording.output[self.name]
        contact = render_context(context)
        if style == "chat":
            messages: list[Mapping[str, str]] = [{"role": "system", "content": header}]
            for ex in examples:
                messages.append({"role": "user", "content": _ask(wording, ex.brief,
                                                                 render_context(ex.contact))})
                messages.append({"role": "assistant", "content": _dump(ex.output)})
            ask = _ask(wording, brief, contact)
            if lead:
                ask += "\n" + wording.lead.format(field=self.body_field, lead=lead)
            messages.append({"role": "user", "content": ask})
            return Prompt(style="chat", prefix=header, suffix=contact, messages=tuple(messages))
        shots = "".join(_shot(wording, label, ex) for ex in examples)
        prefix = f"{header}\n\n{shots}{wording.brief}: {brief}\n{wording.contact}:"
        return Prompt(style="completion", prefix=prefix, suffix=f" {contact}\n{label}:")

    def finish(self, output: dict[str, Any], brand: BrandVoice, language: str) -> dict[str, Any]:
        """Append the required sign-off and disclosure to the body, and shorten a subject or
        preheader that restored values made too long at a word boundary (inboxes cut them
        anyway). The body is never cut: a body over its limit fails the length guard."""
        body = output.get(self.body_field)
        if not isinstance(body, str):
            return output  # the schema guard reports it
        body = body.rstrip()
        for required in (brand.sign_off, brand.ai_disclosure):
            if required and required not in body:
                body = f"{body}\n\n{required}" if body else required
        done = {**output, self.body_field: body}
        for name, attr in self.limits:
            value = done.get(name)
            if name != self.body_field and isinstance(value, str):  # one line, no stray spaces
                done[name] = shorten(" ".join(value.split()), int(getattr(brand, attr)))
        return done

    def guards(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None,
               task: Task | None = None) -> list[Guard]:
        limits = {f: int(getattr(brand, attr)) for f, attr in self.limits}
        required = [t for t in (brand.sign_off, brand.ai_disclosure) if t]
        lead_guard: list[Guard] = [LeadGuard(self.body_field, lead)] if lead else []
        return [
            SchemaGuard(self.schema(brand)),
            PlaceholderGuard(),
            LengthGuard(limits, {self.body_field: self.least(brand)} if self.brand_min else {},
                        (lead or "", *required)),
            BannedWordsGuard(brand.banned_words),
            LinkGuard(brand.allowed_link_domains),
            DisclosureGuard(self.body_field, required),
            *lead_guard,
            *(self._content_guards(brand, context or {}, task) if task is not None else []),
        ]

    def _content_guards(self, brand: BrandVoice, context: Mapping[str, Any],
                        task: Task) -> list[Guard]:
        """What the copy says, checked against the brief, the catalog, the contact's purchases
        and the few-shot examples it was shown (see core/tasks/copycheck.py)."""
        examples = example_pool(self.name, task.language, brand.examples)  # any may be shown
        shown = tuple(json.dumps(ex.output, ensure_ascii=False) for ex in examples)
        values = " ".join(str(v) for v in context.values() if isinstance(v, str | int | float))
        guards: list[Guard] = [ExampleGuard(shown, f"{task.brief}\n{values}"), MarkupGuard()]
        if not self.marketing:
            return guards
        terms = (*PRODUCT_TERMS.get(task.language, ()), *brand.product_terms.get(task.language, []))
        catalog = (*brand.catalog, *context_products({"catalog": context.get("catalog")}))
        bought = tuple(context_products(context))  # a purchase licenses its words, catalog or not
        emails, phones = identifiers(context)
        topics = brief_topics(task.brief, task.language, catalog + bought, terms)
        return [*guards, BriefGuard(tuple(topics), task.brief),
                ProductGuard(tuple(catalog), bought, tuple(terms), task.brief),
                ClaimGuard(task.language, task.brief,
                           " ".join((_without_phones(context, phones), *catalog, *bought, brand.name,
                                     brand.sign_off, brand.ai_disclosure,
                                     *brand.greetings.values()))),
                IdentifierGuard(emails, phones)]

    def _header(self, brand: BrandVoice, w: Wording) -> str:
        lines = [w.intro.format(brand=brand.name), w.voice.format(tone=brand.tone),
                 w.audience.format(audience=brand.audience)]
        if brand.description:
            lines.append(brand.description)
        if brand.banned_words:
            lines.append(w.banned.format(words=", ".join(brand.banned_words)))
        lines.append(w.placeholders)
        lines.append(w.json_rule.format(keys=", ".join(self.fields)))
        return "\n".join(lines)


def _without_phones(context: Mapping[str, Any], phones: tuple[str, ...]) -> str:
    """The contact's values whose numbers copy may repeat: not phone numbers (those are
    identifiers, never copy)."""
    return " ".join(str(v) for v in context.values() if isinstance(v, str | int | float)
                    and re.sub(r"\D", "", str(v)) not in phones)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def _dump(output: Mapping[str, Any]) -> str:
    return json.dumps(output, ensure_ascii=False)


def _ask(w: Wording, brief: str, contact: str) -> str:
    return f"{w.brief}: {brief}\n{w.contact}: {contact}"


def _shot(w: Wording, label: str, ex: Example) -> str:
    return f"{_ask(w, ex.brief, render_context(ex.contact))}\n{label}: {_dump(ex.output)}\n\n"


EMAIL = CopyKind(
    name="email",
    fields=("subject", "preheader", "body"),
    body_field="body",
    limits=(("subject", "max_subject_chars"), ("preheader", "max_preheader_chars"),
            ("body", "max_body_chars")),
    greeted=True,
    marketing=True,
    brand_min=True,
)
TEXT = CopyKind(name="text", fields=("text",), body_field="text",
                limits=(("text", "max_body_chars"),))
REPLY = CopyKind(name="reply", fields=("body",), body_field="body",
                 limits=(("body", "max_body_chars"),), greeted=True, min_body=80)


# The actions Baton offers inside the platforms (HubSpot workflow actions, Salesforce Flow actions)
# and the task kind each runs; the tones their users may pick.
ACTION_KINDS = {"email": "email", "recommend": "recommendation", "reply": "reply"}
TONES = ("friendly", "professional", "playful", "formal")


def with_tone(brief: str, tone: str | None) -> str:
    """The brief with the tone a user picked (ignored unless it is one of :data:`TONES`)."""
    return f"{brief} Tone: {tone}." if tone in TONES else brief

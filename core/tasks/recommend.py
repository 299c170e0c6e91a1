"""The ``recommendation`` task kind: up to three products from the task's catalog, each with a
reason, and a one-line message. Grounded by construction: the schema's SKU is an enum of the
catalog, so the local grammar cannot write any other, and a guard checks the same on every
backend (and that nothing is recommended twice or was already bought).

Context: the contact's fields, ``purchases`` (names or SKUs) and ``catalog`` (a list of
``{"sku", "name", "description"?}``). The catalog goes in the shared prompt prefix, so every
contact of a tenant reuses its KV cache; the first ``MAX_CATALOG`` products are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.policy import BrandVoice
from core.tasks.guards import (
    BannedWordsGuard,
    GroundingGuard,
    Guard,
    LengthGuard,
    LinkGuard,
    PlaceholderGuard,
    SchemaGuard,
)
from core.tasks.kinds import (
    Prompt,
    PromptStyle,
    Task,
    _dump,
    check_language,
    has_content,
    render_context,
)
from core.tasks.prompts import WORDING, examples_for

MAX_CATALOG = 50
MAX_PICKS = 3
REASON_CHARS = 160


def catalog_of(context: Mapping[str, Any] | None) -> list[dict[str, str]]:
    items = (context or {}).get("catalog") or []
    out = []
    for item in items[:MAX_CATALOG] if isinstance(items, list) else []:
        if isinstance(item, Mapping) and str(item.get("sku", "")).strip():
            out.append({k: str(v) for k, v in item.items() if v not in (None, "")})
    return out


def labels(context: Mapping[str, Any] | None) -> dict[str, str]:
    """SKU -> the label the model picks by: the product name (the model reasons better about a
    name than a code), with the SKU added where two products share a name."""
    catalog = catalog_of(context)
    names = [c.get("name") or c["sku"] for c in catalog]
    return {c["sku"]: n if names.count(n) == 1 else f"{n} ({c['sku']})"
            for c, n in zip(catalog, names, strict=True)}


def owned(context: Mapping[str, Any] | None) -> frozenset[str]:
    """Catalog SKUs the customer already bought (``purchases`` names or SKUs, ``x2`` ignored)."""
    bought = {str(p).strip().casefold().rsplit(" x", 1)[0] for p in (context or {}).get("purchases") or []}
    return frozenset(c["sku"] for c in catalog_of(context)
                     if c["sku"].casefold() in bought or c.get("name", "").casefold() in bought)


def offerable(context: Mapping[str, Any] | None) -> list[str]:
    have = owned(context)
    return [c["sku"] for c in catalog_of(context) if c["sku"] not in have]


@dataclass(frozen=True)
class RecommendationKind:
    name: str = "recommendation"
    marketing: bool = True  # its message goes to the customer

    def schema(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None, brief: str | None = None
               ) -> dict[str, Any]:
        names = labels(context)
        choices = [names[sku] for sku in offerable(context)]
        product: dict[str, Any] = {"type": "string", "enum": choices} if choices else {"type": "string"}
        return {
            "type": "object",
            "properties": {
                "picks": {"type": "array", "minItems": 1, "maxItems": min(MAX_PICKS, max(len(choices), 1)),
                          "items": {"type": "object",
                                    "properties": {"product": product,
                                                   "reason": {"type": "string", "minLength": 10,
                                                              "maxLength": REASON_CHARS}},
                                    "required": ["product", "reason"], "additionalProperties": False}},
                "message": {"type": "string", "maxLength": min(brand.max_body_chars, 300)},
            },
            "required": ["picks", "message"],
            "additionalProperties": False,
        }

    def lead(self, task: Task, context: Mapping[str, Any], brand: BrandVoice) -> str | None:
        return None

    def validate(self, task: Task) -> None:
        check_language(task.language)
        if not catalog_of(task.context):
            raise InputError("recommendation task: the catalog is empty (give context.catalog as "
                             "a list of {sku, name}; in HubSpot, add products to the product library)")
        if not offerable(task.context):
            raise InputError("recommendation task: the customer already owns every catalog product")
        contact = {k: v for k, v in task.context.items() if k != "catalog"}
        if not has_content(contact):
            raise InputError(f"recommendation task {task.id}: the contact is empty")

    def render(self, task: Task, context: Mapping[str, Any], brief: str, brand: BrandVoice,
               style: PromptStyle, lead: str | None = None, variant: int = 0) -> Prompt:
        w = WORDING[task.language]
        names = labels(context)
        catalog = "\n".join(f"- {names[c['sku']]}"
                            + (f": {' '.join(c['description'].split())[:100]}" if c.get("description")
                               else "") for c in catalog_of(context))
        header = "\n".join([
            w.recommend_intro.format(brand=brand.name), w.voice.format(tone=brand.tone),
            w.audience.format(audience=brand.audience), w.placeholders,
            w.json_rule.format(keys="picks, message"), f"{w.catalog}:\n{catalog}"])
        customer = render_context({k: v for k, v in context.items() if k != "catalog"})
        label = w.output[self.name]
        examples = examples_for(self.name, task.language, brand.examples, task.brief, variant)
        if style == "chat":
            messages: list[Mapping[str, str]] = [{"role": "system", "content": header}]
            for ex in examples:
                messages.append({"role": "user", "content": f"{w.brief}: {ex.brief}\n{w.contact}: "
                                                            f"{render_context(ex.contact)}"})
                messages.append({"role": "assistant", "content": _dump(ex.output)})
            messages.append({"role": "user", "content": f"{w.brief}: {brief}\n{w.contact}: {customer}"})
            return Prompt(style="chat", prefix=header, suffix=customer, messages=tuple(messages))
        shots = "".join(f"{w.brief}: {ex.brief}\n{w.contact}: {render_context(ex.contact)}\n"
                        f"{label}: {_dump(ex.output)}\n\n" for ex in examples)
        prefix = f"{header}\n\n{shots}{w.brief}: {brief}\n{w.contact}:"
        return Prompt(style="completion", prefix=prefix, suffix=f" {customer}\n{label}:")

    def finish(self, output: dict[str, Any], brand: BrandVoice, language: str) -> dict[str, Any]:
        return output  # picks carry product labels; :func:`named` resolves them against the catalog

    def guards(self, brand: BrandVoice, lead: str | None = None,
               context: Mapping[str, Any] | None = None,
               task: Task | None = None) -> list[Guard]:
        return [SchemaGuard(self.schema(brand, context=context)), PlaceholderGuard(),
                LengthGuard({"message": min(brand.max_body_chars, 300)}),
                BannedWordsGuard(brand.banned_words), LinkGuard(brand.allowed_link_domains),
                GroundingGuard(frozenset(labels(context).values()),
                               frozenset(labels(context)[sku] for sku in owned(context)))]


def named(output: Mapping[str, Any], context: Mapping[str, Any]) -> list[dict[str, str]]:
    """The picks as ``{sku, name, reason}``, resolved against the catalog."""
    by_label = {label: sku for sku, label in labels(context).items()}
    names = {c["sku"]: c.get("name", c["sku"]) for c in catalog_of(context)}
    out = []
    for p in output.get("picks", []):
        sku = by_label.get(str(p.get("product")), "")
        out.append({"sku": sku, "name": names.get(sku, str(p.get("product"))),
                    "reason": str(p.get("reason", ""))})
    return out


RECOMMENDATION = RecommendationKind()


def summary(output: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The picks in one line for a CRM field: ``name (sku): reason; ...``."""
    return "; ".join(f"{p['name']} ({p['sku']}): {p['reason']}" for p in named(output, context))

"""The declarative policy file (``baton.toml``): brand voice, privacy, routing rules, prices.

The file is validated strictly: an unknown key or a wrong value fails with a message that names
the key path and the expected form, e.g. ``baton.toml: routes[1].action: expected one of
'local', 'cloud', 'cloud-masked', 'cascade' (got 'clowd')``.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError

Action = Literal["local", "cloud", "cloud-masked", "cascade"]
PrivacyClass = Literal["private", "external"]
BUILTIN_MODELS = ("local", "cloud")
Tier = Literal["routine", "critical"]
Sensitivity = Literal["none", "pii", "confidential"]
Recognizer = Literal["email", "phone", "card", "iban"]
RECOGNIZER_NAMES: tuple[Recognizer, ...] = ("email", "phone", "card", "iban")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Strict):
    """A few-shot example in the brand's voice; it replaces the built-in examples for its kind
    and language. Contact values that are placeholders (``{first_name}``) teach the model to
    write them, and Baton fills them in."""

    kind: str = "email"
    language: str = "en"
    brief: str
    contact: dict[str, Any]
    output: dict[str, Any]


class LanguageVoice(_Strict):
    """What changes in the brand's voice for one language (unset fields are inherited)."""

    tone: str | None = None
    audience: str | None = None
    description: str | None = None
    banned_words: list[str] | None = None
    sign_off: str | None = None
    ai_disclosure: str | None = None
    catalog: list[str] | None = None
    min_body_chars: int | None = Field(default=None, ge=0)


class BrandVoice(_Strict):
    """How every output must sound and what it must (not) contain."""

    name: str = "Baton Demo Co."
    tone: str = "warm, clear and concise"
    audience: str = "existing customers"
    description: str = ""
    banned_words: list[str] = Field(default_factory=list)
    sign_off: str = ""
    ai_disclosure: str = ""
    allowed_link_domains: list[str] = Field(default_factory=list)
    max_subject_chars: int = Field(default=90, ge=10)
    max_preheader_chars: int = Field(default=140, ge=10)
    max_body_chars: int = Field(default=800, ge=50)
    # What an email body must say besides its greeting and sign-off, in characters (0: no
    # minimum; the embedded baton.toml asks 60, and 30 in Japanese).
    min_body_chars: int = Field(default=0, ge=0)
    # How an email body opens, per language; placeholders name contact fields. When the contact
    # lacks one of them, the fallback is used. Local models are held to it by their grammar.
    greetings: dict[str, str] = Field(
        default_factory=lambda: {"en": "Hi {first_name},", "ja": "{last_name}様"})
    # How to greet a contact whose record lacks the greeting's fields, per language (e.g.
    # {en = "Hi there,"}). None by default: such a task fails with the reason, never a guess.
    fallback_greetings: dict[str, str] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    # Product names the brand sells: copy may name these, the brief's products and the
    # contact's purchases, and no other product (a tenant's catalog in the task's context adds
    # to them). ``product_terms``: kind-of-product words per language that mark a product
    # mention (``boots``), added to Baton's built-in lists.
    catalog: list[str] = Field(default_factory=list)
    product_terms: dict[str, list[str]] = Field(default_factory=dict)
    # Per-language voice: [brand.languages.ja] tone, sign_off ... override the fields above for
    # copy in that language (a Japanese email never ends with an English sign-off).
    languages: dict[str, LanguageVoice] = Field(default_factory=dict)

    def in_language(self, language: str) -> BrandVoice:
        """This voice with its overrides for ``language`` applied."""
        over = self.languages.get(language)
        if over is None:
            return self
        return self.model_copy(update=over.model_dump(exclude_none=True))


def _default_sensitive() -> list[str]:
    return ["first_name", "middle_name", "last_name", "name", "salutation", "email", "phone",
            "mobile", "home_phone", "other_phone", "fax", "address", "city", "postal_code",
            "birthdate"]


def _default_merge_fields() -> list[str]:
    return ["first_name", "last_name", "name", "company", "job_title", "industry", "city",
            "country", "last_purchase"]


class Privacy(_Strict):
    """Which context fields hold personal or confidential data, which recognizers run, and which
    fields a model may name as placeholders in its output (``merge_fields``). Field names may be
    given by any name of the contact vocabulary (``firstname``, ``FirstName``, ``first_name``);
    fields Baton does not know are masked when their name looks personal (``Spouse name``)."""

    sensitive_fields: list[str] = Field(default_factory=_default_sensitive)
    confidential_fields: list[str] = Field(default_factory=list)
    recognizers: list[Recognizer] = Field(default_factory=lambda: list(RECOGNIZER_NAMES))
    merge_fields: list[str] = Field(default_factory=_default_merge_fields)


class Condition(_Strict):
    """A rule matches when every given condition holds (omitted ones match anything)."""

    kind: list[str] | None = None
    tier: list[Tier] | None = None
    sensitivity: list[Sensitivity] | None = None
    budget_left_below_usd: float | None = Field(default=None, ge=0)
    backend_unhealthy: list[str] | None = None  # model names: local, cloud, [models.<name>]
    language: list[str] | None = None


class Rule(_Strict):
    """One ordered routing rule: the first rule whose conditions hold decides. It names an
    ``action`` (the built-in ``local``/``cloud`` pair), or a ``model`` by name, or a privacy
    ``class`` (the first available model of that class, in ``baton models list`` order, with
    all of ``tags``). ``fallback``: true (the other models of the same class, then those of the
    other class, as ``local`` and ``cloud`` fall back on each other), false (none), or an
    ordered list of model names. ``masked`` applies to
    external models only: their prompts carry placeholders, not personal values (a fallback
    onto an external model is always masked)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    when: Condition = Field(default_factory=Condition)
    action: Action | None = None
    model: str | None = None
    privacy_class: PrivacyClass | None = Field(default=None, alias="class")
    tags: list[str] = Field(default_factory=list)
    masked: bool = True
    fallback: bool | list[str] = True

    @model_validator(mode="after")
    def _one_choice(self) -> Rule:
        given = [k for k, v in (("action", self.action), ("model", self.model),
                                ("class", self.privacy_class)) if v is not None]
        if len(given) != 1:
            raise ValueError("a rule chooses by exactly one of action, model or class (got "
                             + (", ".join(given) or "none") + ")")
        if self.tags and self.privacy_class is None:
            raise ValueError("tags select among the models of a class: give class too")
        if self.action is not None and isinstance(self.fallback, list):
            raise ValueError("an action rule falls back between local and cloud (fallback = "
                             "true or false); a list of models needs model or class")
        if self.action is not None and "masked" in self.model_fields_set:
            raise ValueError("masked is for model and class rules; an action rule says "
                             "cloud-masked or cloud")
        return self

    def fallbacks(self) -> list[str]:
        return list(self.fallback) if isinstance(self.fallback, list) else []


class Routing(_Strict):
    default_action: Action = "local"
    default_fallback: bool = True
    escalate_masked: bool = True


class Budget(_Strict):
    """Monthly spend cap in USD per tenant (``tenants`` overrides the default)."""

    monthly_usd: float = Field(default=50.0, ge=0, allow_inf_nan=False)
    tenants: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict)

    def for_tenant(self, tenant: str) -> float:
        return self.tenants.get(tenant, self.monthly_usd)


class Price(_Strict):
    """USD per one million tokens."""

    input: float = Field(ge=0, allow_inf_nan=False)
    cached_input: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # unset: input
    output: float = Field(ge=0, allow_inf_nan=False)

    @property
    def cached(self) -> float:
        return self.input if self.cached_input is None else self.cached_input


def _default_prices() -> dict[str, Price]:
    return {
        "gpt-4o": Price(input=2.50, cached_input=1.25, output=10.00),
        "gpt-4o-mini": Price(input=0.15, cached_input=0.075, output=0.60),
        "gpt-4.1": Price(input=2.00, cached_input=0.50, output=8.00),
        "gpt-4.1-mini": Price(input=0.40, cached_input=0.10, output=1.60),
    }


class Costs(_Strict):
    """Price table for cloud models and the cost of running the local model."""

    reference_model: str = "gpt-4o"
    local_usd_per_hour: float = Field(default=0.10, ge=0)
    prices: dict[str, Price] = Field(default_factory=_default_prices)

    @model_validator(mode="after")
    def _reference_is_priced(self) -> Costs:
        if self.reference_model not in self.prices:
            raise ValueError(
                f"reference_model {self.reference_model!r} has no entry in costs.prices"
            )
        return self


# An environment variable's name as admins write them: upper case (a pasted key is mixed case)
def model_key(name: str) -> str:
    """A model's table in baton.toml, as errors name it: ``local``, ``cloud``, ``models.<name>``."""
    return name if name in BUILTIN_MODELS else f"models.{name}"


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def _check_url(url: str) -> str:
    """An http(s) base URL that the client can use and that is safe to show and record: a
    host, a valid port, no credentials and no query (keys go in ``key_env``)."""
    example = "such as http://10.0.0.5:8000/v1"
    if len(url) > 200 or not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        raise ValueError(f"expected an http(s) base URL {example}: at most 200 characters, "
                         "printable ASCII (an internationalized host in its xn-- form)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a valid URL; expected an http(s) base URL {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) base URL {example}")
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):  # an IPv6 literal: [address] or [address]:port, nothing else
        literal, _, rest = host[1:].partition("]")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise ValueError("not a valid URL: the host in [] is not an IPv6 address") from None
        if rest and not re.fullmatch(r":\d+", rest):
            raise ValueError(f"not a valid URL; expected an http(s) base URL {example}")
    elif not re.fullmatch(r"[A-Za-z0-9._-]+(:\d+)?", host):
        raise ValueError("not a valid URL: a host is letters, digits, '.', '_' and '-' (and a port)")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("a base URL carries no credentials, query or fragment: put the key in "
                         "an environment variable and name it in key_env")
    if port == 0:
        raise ValueError("not a valid port")
    return url


class ModelConfig(_Strict):
    """One model of the portfolio: ``[local]``, ``[cloud]`` or ``[models.<name>]``. A
    registered backend (``llama`` in-process, ``openai`` for any OpenAI-compatible server)
    serving ``model``; where it runs (``privacy``: ``private`` keeps data in your network,
    ``external`` is egress); what it costs (``price`` per token, or ``usd_per_hour`` for your
    own hardware) and may spend (``monthly_usd``); its limits, languages and tags; and for a
    server, its ``base_url`` or several ``replicas`` and the environment variable holding its
    key (``key_env``: the variable's name, never the key)."""

    backend: str
    model: str = ""
    base_url: str | None = None
    replicas: list[str] = Field(default_factory=list)
    key_env: str | None = None
    privacy: PrivacyClass | None = None  # unset: llama is private, every other backend external
    price: Price | None = None
    usd_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    monthly_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    context: int | None = Field(default=None, ge=256)
    languages: list[str] = Field(default_factory=list)  # empty: any language
    tags: list[str] = Field(default_factory=list)
    # Whether the model's prompt shows placeholders ({first_name}) instead of personal values.
    # External models: always, unless a rule sends them unmasked. Private ones: unset means yes
    # for the in-process model (its grammar holds the greeting "Hi {first_name},"), no for
    # private servers (the data does not leave your network).
    placeholders: bool | None = None
    replica_cooldown_seconds: float = Field(default=30.0, gt=0, le=86400)
    # an in-process model other than the embedded one: its GGUF file and checksum
    path: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    prompt_style: Literal["completion", "chat"] | None = None
    max_tokens: int = Field(default=320, ge=16, le=8192)
    # "json_schema" for OpenAI; "json_object" (with a "schema" key) for llama.cpp's server.
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    temperature: float = Field(default=0.7, ge=0, le=2)
    # Local sampling only: penalize tokens repeated within the last 64 (1.0 = off).
    repeat_penalty: float = Field(default=1.1, ge=1, le=2)
    # Candidates sampled per attempt, as one batch where the backend batches (the local
    # model); the first that passes every guard is kept. 1 = one candidate.
    best_of: int = Field(default=1, ge=1, le=8)
    # Candidates of the second attempt, when every first one failed (unset: ``best_of``). A
    # task that failed once is the hard one: more candidates there cost little overall.
    best_of_retry: int | None = Field(default=None, ge=1, le=8)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: list[str]) -> list[str]:
        for url in value:
            _check_url(url)
        if len({url.rstrip("/") for url in value}) != len(value):
            raise ValueError("a replica is listed twice")
        return value

    @field_validator("key_env")
    @classmethod
    def _key_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("key_env is the name of an environment variable that holds the "
                             "key, in capitals (such as MISTRAL_API_KEY), never the key itself")
        return value

    @property
    def privacy_class(self) -> PrivacyClass:
        return self.privacy or ("private" if self.backend == "llama" else "external")

    @property
    def shows_placeholders(self) -> bool:
        if self.privacy_class == "external" or self.placeholders is not None:
            return self.placeholders is not False
        return self.backend == "llama"

    @property
    def endpoints(self) -> list[str]:
        return list(self.replicas) or ([self.base_url] if self.base_url else [])


class Breaker(_Strict):
    failures: int = Field(default=3, ge=1)
    cooldown_seconds: float = Field(default=30.0, gt=0)


class SlackWorkspace(_Strict):
    """What one Slack workspace may see: the CRM tenants its ``/baton`` commands and mentions may
    look contacts up in (``hubspot:<portal>``, ``salesforce:<org id>``), in order, and the contact
    fields that may appear in its channels (unset: ``slack.channel_fields``)."""

    tenants: list[str] = Field(default_factory=list)
    channel_fields: list[str] | None = None

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, value: list[str]) -> list[str]:
        for tenant in value:
            platform, _, account = tenant.partition(":")
            if not platform or not account:
                raise ValueError(f"a tenant is <platform>:<account>, such as hubspot:123 or "
                                 f"salesforce:00D5g000000abcd (got {tenant!r})")
        return value


class SlackAccess(_Strict):
    """Showing CRM data in Slack is egress: which workspace sees which tenants, and which of a
    contact's fields a channel may read (every other value of the contact is masked)."""

    channel_fields: list[str] = Field(
        default_factory=lambda: ["first_name", "last_name", "company", "job_title"])
    workspaces: dict[str, SlackWorkspace] = Field(default_factory=dict)

    def tenants_of(self, team: str) -> list[str]:
        """The CRM tenants the workspace ``team`` (``T0123``) may see: none unless mapped."""
        workspace = self.workspaces.get(team)
        return list(workspace.tenants) if workspace else []

    def fields_for(self, team: str) -> list[str]:
        workspace = self.workspaces.get(team)
        if workspace is not None and workspace.channel_fields is not None:
            return list(workspace.channel_fields)
        return list(self.channel_fields)


SOURCES = ("hubspot.action", "hubspot.event", "salesforce.notification", "salesforce.action",
           "slack.command", "slack.mention")


class Approval(_Strict):
    """Drafts a person approves in Slack before they are written: of these sources (job kinds:
    a HubSpot workflow action or webhook, a Salesforce outbound message or Flow call, a slash
    command or mention), task kinds and tenants (empty: all), posted to ``channel`` of the
    workspace ``workspace`` (``T0123``), decided by ``reviewers`` (Slack user ids) within
    ``expires_hours`` (a HubSpot action's BLOCK expiry ends it sooner)."""

    sources: list[str] = Field(min_length=1)
    kinds: list[str] = Field(default_factory=list)
    tenants: list[str] = Field(default_factory=list)
    workspace: str = Field(pattern=r"^[TE][A-Z0-9]{2,}$")
    channel: str = Field(pattern=r"^[CG][A-Z0-9]{2,}$")
    reviewers: list[str] = Field(min_length=1)
    expires_hours: float = Field(default=72.0, gt=0, le=24 * 30)

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; one of {', '.join(SOURCES)}")
        return value

    @field_validator("reviewers")
    @classmethod
    def _reviewers(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not re.fullmatch(r"[UW][A-Z0-9]{2,}", r)]
        if bad:
            raise ValueError(f"a reviewer is a Slack user id such as U012ABCDEF (got {bad[0]!r})")
        return value

    def holds(self, source: str, kind: str, tenant: str) -> bool:
        return (source in self.sources and (not self.kinds or kind in self.kinds)
                and (not self.tenants or tenant in self.tenants))


class Policy(_Strict):
    """The whole policy file."""

    brand: BrandVoice = Field(default_factory=BrandVoice)
    # Per-tenant brand voices (a HubSpot portal, a Salesforce org, a Slack workspace).
    brands: dict[str, BrandVoice] = Field(default_factory=dict)
    privacy: Privacy = Field(default_factory=Privacy)
    routing: Routing = Field(default_factory=Routing)
    routes: list[Rule] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    costs: Costs = Field(default_factory=Costs)
    breaker: Breaker = Field(default_factory=Breaker)
    slack: SlackAccess = Field(default_factory=SlackAccess)
    # The first rule that holds a draft sends it to its review channel (none: nothing is held)
    approvals: list[Approval] = Field(default_factory=list)
    local: ModelConfig = Field(
        default_factory=lambda: ModelConfig(backend="llama", model="gemma-3-270m"))
    cloud: ModelConfig = Field(
        default_factory=lambda: ModelConfig(backend="openai", model="gpt-4o-mini"))
    # More models: private servers (vLLM, llama.cpp, Ollama) and external APIs
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    def model_names(self) -> list[str]:
        """Every model, in the order routing by class tries them: local, cloud, then [models]."""
        return [*BUILTIN_MODELS, *self.models]

    def model(self, name: str) -> ModelConfig:
        if name == "local":
            return self.local
        if name == "cloud":
            return self.cloud
        return self.models[name]

    def of_class(self, privacy: str, tags: list[str] | None = None,
                 language: str | None = None) -> list[str]:
        """The models of a privacy class with every tag in ``tags`` that write ``language``:
        the ``[models.<name>]`` in file order, then the built-in ``local``/``cloud`` (a class
        rule prefers the servers you added to the embedded model)."""
        return [n for n in [*self.models, *BUILTIN_MODELS]
                if (m := self.model(n)).privacy_class == privacy
                and all(t in m.tags for t in tags or [])
                and (language is None or not m.languages or language in m.languages)]

    def approval_for(self, source: str, kind: str, tenant: str) -> Approval | None:
        """The approval rule a draft of this source, task kind and tenant waits under, if any."""
        return next((a for a in self.approvals if a.holds(source, kind, tenant)), None)

    def brand_for(self, tenant: str, language: str | None = None) -> BrandVoice:
        """The tenant's own brand voice, else the default one; in ``language`` when given."""
        brand = self.brands.get(tenant, self.brand)
        return brand.in_language(language) if language else brand

    @model_validator(mode="before")
    @classmethod
    def _builtin_models(cls, data: Any) -> Any:
        """``[models.local]`` / ``[models.cloud]`` are the built-in entries, once."""
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            models = dict(data["models"])
            for name in BUILTIN_MODELS:
                if name in models:
                    if name in data:
                        raise ValueError(f"models.{name}: a second model named {name!r} "
                                         f"(the [{name}] table defines it)")
                    data = {**data, name: models.pop(name), "models": models}
        return data

    @model_validator(mode="after")
    def _portfolio(self) -> Policy:
        seen: dict[str, str] = {}
        for name in self.model_names():
            where = model_key(name)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
                raise ValueError(f"{where}: a model name is letters, digits, '.', '_' and '-'")
            if name.lower() in seen:
                raise ValueError(f"{where}: a second model named {name!r} "
                                 f"(as {seen[name.lower()]!r})")
            seen[name.lower()] = name
            m = self.model(name)
            if m.base_url and m.replicas:
                raise ValueError(f"{where}: give base_url or replicas, not both")
            if m.backend == "llama":
                for key in ("base_url", "key_env", "replicas"):
                    if getattr(m, key):
                        raise ValueError(f"{where}.{key}: an in-process llama model has none "
                                         "(a llama.cpp server is backend = \"openai\")")
                if m.privacy == "external":
                    raise ValueError(f"{where}.privacy: an in-process model runs on this "
                                     "machine: it is private")
            elif m.path is not None or m.sha256 is not None:
                raise ValueError(f"{where}.path: only an in-process llama model has a GGUF file")
            if m.sha256 is not None and m.path is None:
                raise ValueError(f"{where}.sha256: the checksum of path, which is not given")
            if m.backend == "openai":
                if name != "cloud" and not m.endpoints:
                    raise ValueError(f"{where}: an OpenAI-compatible model needs base_url "
                                     "(or replicas)")
                if name == "cloud" and m.privacy == "private" and not m.endpoints:
                    raise ValueError("cloud.privacy: private needs the server's base_url (or "
                                     "replicas); without one, cloud is OpenAI's API")
                if name == "cloud" and m.endpoints and not m.key_env:
                    raise ValueError("cloud: with base_url or replicas give key_env too (such "
                                     "as key_env = \"BATON_OPENAI_API_KEY\"), or set "
                                     "BATON_OPENAI_BASE_URL instead")
                if not m.model and name != "cloud":
                    raise ValueError(f"{where}.model: the model id the server serves is "
                                     "required")
                if (m.privacy_class == "external" and m.price is None
                        and m.model not in self.costs.prices):
                    raise ValueError(f"{where}.model {m.model!r} has no entry in costs.prices "
                                     f"(give {where}.price, or privacy = \"private\" for a "
                                     "server in your network)")

        def known(name: str, where: str) -> None:
            if name not in self.model_names():
                raise ValueError(f"{where}: unknown model {name!r}; the models are "
                                 + ", ".join(self.model_names()))

        for i, rule in enumerate(self.routes):
            if rule.model is not None:
                known(rule.model, f"routes[{i}].model")
            for j, name in enumerate(rule.fallbacks()):
                known(name, f"routes[{i}].fallback[{j}]")
                if name == rule.model:
                    raise ValueError(f"routes[{i}].fallback[{j}]: {name!r} is the rule's own "
                                     "model")
            for j, name in enumerate(rule.when.backend_unhealthy or []):
                known(name, f"routes[{i}].when.backend_unhealthy[{j}]")
            if rule.privacy_class is not None and not self.of_class(rule.privacy_class,
                                                                    rule.tags):
                raise ValueError(f"routes[{i}]: no model of class {rule.privacy_class!r}"
                                 + (f" with tags {rule.tags}" if rule.tags else ""))
        return self


def default_policy_text() -> str:
    """The embedded default policy that ships with Baton."""
    return (resources.files("baton") / "defaults" / "baton.toml").read_text(encoding="utf-8")


def load_policy(path: Path | None) -> Policy:
    """Load and validate a policy file, or the embedded default when ``path`` is None."""
    if path is None:
        return parse_policy(default_policy_text(), source="embedded baton.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read policy file ({exc.strerror})") from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "baton.toml") -> Policy:
    """Parse TOML text into a :class:`Policy`, translating every failure to :class:`ConfigError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML (arrays or tables nested too deep)") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first offending key path and the expected form."""
    err = exc.errors()[0]
    path = _format_loc(err["loc"])
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{path}: expected one of {expected} (got {got!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    where = f"{path}: " if path else ""
    if kind == "value_error" or set(map(str, err["loc"])) & _UNQUOTED:
        return f"{where}{message}"  # a URL or a key pasted in the wrong place is not repeated
    return f"{where}{message} (got {got!r})"


# keys whose values may hold credentials: an error about them never quotes the value
_UNQUOTED = {"base_url", "replicas", "key_env", "models", "local", "cloud"}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out

"""The model portfolio (step 9): named models in baton.toml, routes by name or privacy class with
ordered fallbacks, masking for external models only, per-model health, breakers and budgets,
replicas balanced by requests in flight — the engine with the real openai client against
loopback OpenAI-compatible servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.wiring import build_backends
from core.backends.base import Limits
from core.backends.openai_api import OpenAIBackend
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.engine.routing import RouteInput, decide
from core.errors import BackendError, ConfigError, GenerationError, InputError, RoutingError
from core.policy import Policy, parse_policy
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Prompt, Task
from tests.fakes.backends import ScriptedBackend
from tests.fakes.openai_server import FakeOpenAI, Reply, completion, server_error

PORTFOLIO = """
[[routes]]
name = "japanese: the model that writes it"
when = { language = ["ja"] }
model = "ja-writer"
fallback = ["gpu", "local"]

[[routes]]
name = "critical: an external model, masked"
when = { tier = ["critical"] }
class = "external"
tags = ["frontier"]

[[routes]]
name = "routine: our own servers"
class = "private"
fallback = ["cloud"]

[models.gpu]
backend = "openai"
model = "llama-3.1-8b-instruct"
replicas = ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"]
privacy = "private"
usd_per_hour = 1.20

[models.ja-writer]
backend = "openai"
model = "swallow-8b"
base_url = "http://10.0.0.7:8000/v1"
privacy = "private"
languages = ["ja"]

[models.mistral]
backend = "openai"
model = "mistral-large-latest"
base_url = "https://api.mistral.ai/v1"
key_env = "MISTRAL_API_KEY"
price = { input = 2.0, cached_input = 2.0, output = 6.0 }
tags = ["frontier"]
monthly_usd = 5.0
"""

ALL_UP = {"local": True, "cloud": True, "gpu": True, "ja-writer": True, "mistral": True}


def inp(**kw: object) -> RouteInput:
    base: dict[str, object] = dict(kind="email", tier="routine", sensitivity="pii", language="en",
                                   budget_left_usd=40.0, budget_usd=50.0, healthy=dict(ALL_UP))
    base.update(kw)
    return RouteInput(**base)  # type: ignore[arg-type]


def down(*names: str) -> dict[str, bool]:
    return {n: n not in names for n in ALL_UP}


# -- the policy file ---------------------------------------------------------------------------


def test_models_are_listed_builtins_first_and_a_class_prefers_the_added_servers() -> None:
    policy = parse_policy(PORTFOLIO)
    assert policy.model_names() == ["local", "cloud", "gpu", "ja-writer", "mistral"]
    assert [policy.model(n).privacy_class for n in policy.model_names()] == [
        "private", "external", "private", "private", "external"]
    assert policy.of_class("private") == ["gpu", "ja-writer", "local"]
    assert policy.of_class("private", language="en") == ["gpu", "local"]
    assert policy.of_class("external", ["frontier"]) == ["mistral"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[routes]]\nname = "r"\nmodel = "gpux"\n',
     "routes[0].model: unknown model 'gpux'; the models are local, cloud"),
    ('[[routes]]\nname = "r"\nmodel = "local"\nfallback = ["cloud", "nope"]\n',
     "routes[0].fallback[1]: unknown model 'nope'"),
    ('[[routes]]\nname = "r"\nmodel = "local"\nfallback = ["local"]\n',
     "routes[0].fallback[0]: 'local' is the rule's own model"),
    ('[[routes]]\nname = "r"\naction = "local"\nfallback = ["cloud"]\n',
     "routes[0]: an action rule falls back between local and cloud"),
    ('[[routes]]\nname = "r"\naction = "cloud"\nmasked = false\n',
     "routes[0]: masked is for model and class rules"),
    ('[models.gpu]\nbackend = "openai"\nprivacy = "private"\nbase_url = "http://a:1/v1"\n',
     "models.gpu.model: the model id the server serves is required"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://admin:hunter2@10.0.0.5:8000/v1"\n',
     "models.gpu.base_url: a base URL carries no credentials, query or fragment"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'replicas = ["http://10.0.0.5:8000/v1?api_key=abc"]\n',
     "models.gpu.replicas: a base URL carries no credentials"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://[::1/v1"\n', "models.gpu.base_url: not a valid URL"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://10.0.0.5:99999/v1"\n', "models.gpu.base_url: not a valid URL"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'replicas = ["http://a:1/v1", "http://a:1/v1/"]\n', "models.gpu.replicas: a replica is "
     "listed twice"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://a:1/v1"\nusd_per_hour = inf\n', "models.gpu.usd_per_hour"),
    ('[models.big]\nbackend = "llama"\nbase_url = "http://a:1/v1"\n',
     "models.big.base_url: an in-process llama model has none"),
    ('[models.big]\nbackend = "llama"\nprivacy = "external"\n',
     "models.big.privacy: an in-process model runs on this machine"),
    ('[models.big]\nbackend = "llama"\nsha256 = "' + "a" * 64 + '"\n',
     "models.big.sha256: the checksum of path, which is not given"),
    ('[cloud]\nbackend = "openai"\nmodel = "gpt-4o-mini"\nbase_url = "https://a.example/v1"\n',
     "cloud: with base_url or replicas give key_env too"),
    ('[cloud]\nbackend = "openai"\nmodel = "gpt-4o-mini"\nprivacy = "private"\n',
     "cloud.privacy: private needs the server's base_url"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://gpu-1.internal\u200b:8000/v1"\n', "models.gpu.base_url: expected an "
     "http(s) base URL such as http://10.0.0.5:8000/v1: at most 200 characters, printable ASCII"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://[v1.x]/v1"\n', "models.gpu.base_url: not a valid URL: the host in []"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'base_url = "http://[::1]x/v1"\n', "models.gpu.base_url: not a valid URL"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n'
     'replicas = "http://admin:hunter2@10.0.0.5/v1"\n', "models.gpu.replicas: Input should be "
     "a valid list"),
    ('[models.gpu]\nbackend = "openai"\nkey_env = ["gsk_8Jk2mQpLx9RtVw3ZyA1b"]\n',
     "models.gpu.key_env: Input should be a valid string"),
    ('[budget]\ntenants = { acme = nan }\n', "budget.tenants.acme: Input should be a finite"),
    ("x = " + "[" * 2000 + "]" * 2000 + "\n", "not valid TOML (arrays or tables nested too deep)"),
    ('[models.gpu]\nbackend = "openai"\nmodel = "m"\nprivacy = "private"\n',
     "models.gpu: an OpenAI-compatible model needs base_url (or replicas)"),
    ('[models.GPU]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://a:1/v1"\n'
     'privacy = "private"\n[models.gpu]\nbackend = "openai"\nmodel = "m"\n'
     'base_url = "http://b:1/v1"\nprivacy = "private"\n',
     "models.gpu: a second model named 'gpu' (as 'GPU')"),
    ('[local]\nbackend = "llama"\n[models.local]\nbackend = "llama"\n',
     "models.local: a second model named 'local' (the [local] table defines it)"),
    ('[models.x]\nbackend = "openai"\nbase_url = "http://a:1/v1"\nmodel = "mystery-1"\n',
     "models.x.model 'mystery-1' has no entry in costs.prices (give models.x.price, or "
     "privacy = \"private\" for a server in your network)"),
    ('[models.x]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://a:1/v1"\n'
     'privacy = "private"\nkey_env = "sk-proj-abc123"\n',
     "models.x.key_env: key_env is the name of an environment"),
    ('[models.x]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://a:1/v1"\n'
     'privacy = "private"\nkey_env = "gsk_8Jk2mQpLx9RtVw3ZyA1b"\n',
     "models.x.key_env: key_env is the name of an environment"),
    ('[models.x]\nbackend = "openai"\nmodel = "m"\nbase_url = "10.0.0.5:8000"\n'
     'privacy = "private"\n', "models.x.base_url: expected an http(s) base URL"),
    ('[[routes]]\nname = "r"\nmodel = "local"\naction = "local"\n',
     "a rule chooses by exactly one of action, model or class (got action, model)"),
    ('[[routes]]\nname = "r"\nclass = "private"\ntags = ["gpu"]\n',
     "routes[0]: no model of class 'private' with tags ['gpu']"),
    ('[models.x]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://a:1/v1"\n'
     'privacy = "public"\n',
     "models.x.privacy: expected one of 'private' or 'external' (got 'public')"),
])
def test_a_wrong_portfolio_is_one_line_naming_its_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, source="/etc/baton/baton.toml")
    assert str(caught.value).startswith("/etc/baton/baton.toml: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value) and "8Jk2mQ" not in str(caught.value)


def test_two_tables_of_one_name_are_refused_by_toml_with_the_line() -> None:
    text = '[models.gpu]\nbackend = "openai"\n[models.gpu]\nbackend = "openai"\n'
    with pytest.raises(ConfigError, match=r"baton.toml: not valid TOML .*line 3"):
        parse_policy(text)


def test_models_local_is_the_builtin_entry() -> None:
    policy = parse_policy('[models.local]\nbackend = "llama"\nmax_tokens = 99\n')
    assert policy.local.max_tokens == 99 and policy.model_names() == ["local", "cloud"]


def test_a_key_variable_that_is_not_set_stops_the_start_naming_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "baton.toml"
    config.write_text(PORTFOLIO, encoding="utf-8")
    policy = parse_policy(PORTFOLIO)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        build_backends(Settings(config=config), policy)
    assert str(caught.value) == (f"{config}: models.mistral.key_env: the environment variable "
                                 "MISTRAL_API_KEY is not set (it holds the model's API key)")
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-mistral-secret")
    backends = build_backends(Settings(config=config), policy)
    assert list(backends) == ["local", "cloud", "gpu", "ja-writer", "mistral"]
    described = json.dumps([b.describe() for b in backends.values()])
    assert "sk-mistral-secret" not in described and "set (MISTRAL_API_KEY)" in described
    assert backends["gpu"].keeps_data_local and not backends["mistral"].keeps_data_local


def test_todays_policy_files_route_as_before() -> None:
    policy = parse_policy('[[routes]]\nname = "c"\nwhen = { tier = ["critical"] }\n'
                          'action = "cloud-masked"\n')
    d = decide(policy, inp(tier="critical"))
    assert (d.action, [(s.role, s.masked) for s in d.steps]) == ("cloud-masked", [("cloud", True)])
    d = decide(policy, inp(tier="critical", healthy={"local": True, "cloud": False}))
    assert (d.action, [s.role for s in d.steps]) == ("local", ["local"])


# -- routing by name and by class --------------------------------------------------------------


def test_a_rule_names_a_model_and_its_ordered_fallbacks() -> None:
    policy = parse_policy(PORTFOLIO)
    d = decide(policy, inp(language="ja"))
    assert (d.action, d.rule) == ("model:ja-writer", "japanese: the model that writes it")
    assert [(s.role, s.masked) for s in d.steps] == [("ja-writer", False)]
    assert [a.role for a in d.alternates] == ["gpu", "local"]
    d = decide(policy, inp(language="ja", healthy=down("ja-writer")))
    assert [s.role for s in d.steps] == ["gpu"]
    assert any("ja-writer is unavailable" in r and "fallback to gpu" in r for r in d.reasons)
    d = decide(policy, inp(language="ja", healthy=down("ja-writer", "gpu")))
    assert [s.role for s in d.steps] == ["local"]
    with pytest.raises(RoutingError, match="ja-writer is unavailable.*gpu is unavailable"):
        decide(policy, inp(language="ja", healthy=down("ja-writer", "gpu", "local")))


def test_a_class_takes_its_first_available_model_that_writes_the_language() -> None:
    policy = parse_policy(PORTFOLIO)
    d = decide(policy, inp())
    assert (d.action, [(s.role, s.masked) for s in d.steps]) == ("class:private", [("gpu", False)])
    assert any("private: the data stays in your network" in r for r in d.reasons)
    assert [a.role for a in d.alternates] == ["local", "cloud"]  # the class, then the list
    d = decide(policy, inp(healthy=down("gpu")))
    assert [(s.role, s.masked) for s in d.steps] == [("local", True)]  # the embedded model
    d = decide(policy, inp(healthy=down("local", "gpu")))  # the fallback onto external: masked
    assert [(s.role, s.masked) for s in d.steps] == [("cloud", True)]


def test_a_class_with_no_model_for_the_language_goes_on_to_its_fallbacks() -> None:
    policy = parse_policy(PORTFOLIO.replace('privacy = "private"\nlanguages = ["ja"]',
                                            'privacy = "private"\nlanguages = ["ja"]\n'
                                            'tags = ["ja"]')
                          + '[[routes]]\nname = "t"\nclass = "private"\ntags = ["ja"]\n')
    policy = policy.model_copy(update={"routes": [policy.routes[-1]]})
    d = decide(policy, inp(language="en"))
    assert [s.role for s in d.steps] == ["gpu"]  # fallback = true: the rest of the class
    assert any("no model of class 'private' with tags ['ja'] writes language 'en'" in r
               and "-> fallback to gpu" in r for r in d.reasons)
    strict = policy.model_copy(update={"routes": [
        policy.routes[0].model_copy(update={"fallback": False})]})
    with pytest.raises(RoutingError, match="writes language 'en', and the rule allows no fallback"):
        decide(strict, inp(language="en"))


def test_confidential_data_escalates_masked_and_a_models_placeholders_hold() -> None:
    policy = parse_policy('[routing]\nescalate_masked = false\n[[routes]]\nname = "r"\n'
                          'action = "cascade"\n')
    d = decide(policy, inp(sensitivity="confidential"))
    assert [(s.role, s.masked) for s in d.steps] == [("local", True), ("cloud", True)]
    d = decide(policy, inp(sensitivity="pii"))
    assert [(s.role, s.masked) for s in d.steps] == [("local", True), ("cloud", False)]
    policy = parse_policy('[cloud]\nbackend = "openai"\nmodel = "gpt-4o-mini"\n'
                          'placeholders = true\n[[routes]]\nname = "r"\naction = "cloud"\n')
    d = decide(policy, inp(sensitivity="pii"))
    assert [(s.role, s.masked) for s in d.steps] == [("cloud", True)]


def test_external_models_are_masked_private_servers_are_not() -> None:
    policy = parse_policy(PORTFOLIO + '\n[[routes]]\nname = "x"\nwhen = { kind = ["text"] }\n'
                          'model = "mistral"\nmasked = false\n')
    policy = policy.model_copy(update={"routes": [policy.routes[-1], *policy.routes[:-1]]})
    d = decide(policy, inp(kind="text", sensitivity="pii"))
    assert [(s.role, s.masked) for s in d.steps] == [("mistral", False)]  # the rule allows it
    d = decide(policy, inp(kind="text", sensitivity="confidential"))
    assert [(s.role, s.masked) for s in d.steps] == [("mistral", True)]
    assert any("confidential fields present" in r for r in d.reasons)
    d = decide(policy, inp(tier="critical"))
    assert [(s.role, s.masked) for s in d.steps] == [("mistral", True)]


def test_budgets_are_the_tenants_for_external_models_and_each_models_own() -> None:
    policy = parse_policy(PORTFOLIO)
    d = decide(policy, inp(tier="critical", budget_left_usd=0.0))
    assert [s.role for s in d.steps] == ["gpu"]  # mistral, cloud: tenant budget spent; fallback
    d = decide(policy, inp(budget_left_usd=0.0))
    assert [s.role for s in d.steps] == ["gpu"]  # a private model is not the tenant's spend
    d = decide(policy, inp(tier="critical", capped={"mistral": "its budget is spent"}))
    assert [s.role for s in d.steps] == ["cloud"]  # the rest of the class first
    assert any("mistral is unavailable: its budget is spent" in r for r in d.reasons)


# -- the engine with replicas ------------------------------------------------------------------

TEXT = json.dumps({"text": "Thank you for your order, it is on its way to you."})
LOCAL_TEXT = json.dumps({"text": "Thank you for your order, it ships soon."})
CONTACT = {"first_name": "Zoë", "last_name": "Yılmaz", "email": "zoe.yilmaz@example.com.tr",
           "city": "İstanbul", "company": "Kumo Outfitters"}
SEEDED = ["Zoë", "Yılmaz", "zoe.yilmaz@example.com.tr", "İstanbul"]


def portfolio(gpu: list[FakeOpenAI], external: FakeOpenAI, extra: str = "") -> Policy:
    replicas = ", ".join(f'"{s.base_url}"' for s in gpu)
    return parse_policy(f"""
[[routes]]
name = "critical: external, masked"
when = {{ tier = ["critical"] }}
model = "frontier"
fallback = false

[[routes]]
name = "routine: the private tier"
model = "gpu"
fallback = ["local"]

[models.gpu]
backend = "openai"
model = "gemma"
replicas = [{replicas}]
privacy = "private"
usd_per_hour = 3.6
replica_cooldown_seconds = 600
max_tokens = 120

[models.frontier]
backend = "openai"
model = "frontier-1"
base_url = "{external.base_url}"
key_env = "FRONTIER_KEY"
price = {{ input = 1.0, cached_input = 0.5, output = 4.0 }}
{extra}""")


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    monkeypatch.setenv("FRONTIER_KEY", "fr-key-123")
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as ext:
        for s in (a, b, ext):
            s.default = completion(TEXT)
        yield a, b, ext


def engine_for(policy: Policy, store: Store, local: ScriptedBackend | None = None) -> Engine:
    backends = build_backends(Settings(openai_max_retries=0), policy)
    backends["local"] = local or ScriptedBackend("llama", local=True, model="gemma",
                                                 outputs=[LOCAL_TEXT] * 20)
    return Engine(policy, backends, default_task_kinds(), Ledger(store))


def task(**kw: object) -> Task:
    base: dict[str, object] = dict(kind="text", context=dict(CONTACT),
                                   brief="One line thanking Zoë for the order.")
    base.update(kw)
    return Task(**base)  # type: ignore[arg-type]


def test_private_calls_carry_the_context_and_no_egress_external_ones_none_of_it(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    engine = engine_for(portfolio([a, b], ext), store)
    private = engine.run(task())
    critical = engine.run(task(tier="critical"))
    wire_private = a.bodies_text() + b.bodies_text()
    for value in SEEDED:  # json.dumps escapes non-ASCII: compare decoded request bodies
        assert value in json.dumps([s.body for s in a.seen + b.seen], ensure_ascii=False)
        assert value not in json.dumps([s.body for s in ext.seen], ensure_ascii=False)
    assert wire_private and ext.seen
    def auth(seen: object) -> str:
        return next((v for k, v in seen.headers.items()  # type: ignore[attr-defined]
                     if k.lower() == "authorization"), "")

    assert auth(ext.seen[0]) == "Bearer fr-key-123"
    assert all("fr-key" not in auth(s) for s in a.seen + b.seen)
    p, c = private.receipt, critical.receipt
    assert (p.role, p.privacy_class, p.egress, p.egress_entities) == ("gpu", "private", False, ())
    assert p.replica in (a.base_url, b.base_url)
    assert (c.role, c.privacy_class, c.egress, c.replica) == ("frontier", "external", True, None)
    assert set(c.masked_entities) >= {"first_name", "last_name", "email", "city"}
    assert c.cost_usd == pytest.approx((100 * 1.0 + 20 * 4.0) / 1e6)
    rows = {r.id: r for r in Ledger(store).receipts()}
    assert (rows[p.id].role, rows[p.id].replica, rows[p.id].privacy_class) == (
        "gpu", p.replica, "private")
    assert rows[c.id].privacy_class == "external" and rows[c.id].egress


def test_replicas_share_the_load_by_requests_in_flight(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    for s in (a, b):
        s.default = Reply(content=TEXT, delay=0.3)
    engine = engine_for(portfolio([a, b], ext), store)
    results = engine.run_many([task(brief=f"One line thanking Zoë for order {i}.")
                               for i in range(8)])
    assert all(not isinstance(r, Exception) for r in results)
    assert (len(a.seen), len(b.seen)) == (4, 4)  # four in flight at a time, two on each


def test_a_replica_that_dies_mid_call_hands_over_and_loses_no_task(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    a.queue(server_error(502))  # the proxy in front of a dead server answers 502
    policy = portfolio([a, b], ext)
    engine = engine_for(policy, store)
    first = engine.run(task())
    assert first.receipt.replica == b.base_url and len(a.seen) == 1
    listed = engine.backends["gpu"].describe()["replicas"]
    assert f"{a.base_url} (down: server error 502)" in listed
    results = engine.run_many([task(brief=f"One line thanking Zoë for order {i}.")
                               for i in range(4)])
    assert all(not isinstance(r, Exception) and r.receipt.replica == b.base_url for r in results)
    assert len(a.seen) == 1  # down for its cooldown: not tried again
    a.server.shutdown()
    a.server.server_close()  # now refused outright
    gpu = engine.backends["gpu"]
    assert isinstance(gpu, OpenAIBackend)
    gpu.replicas[0].down_until = 0.0  # its cooldown is over: it is tried again, and refuses
    again = engine.run(task(brief="Another line for Zoë."))
    assert again.receipt.replica == b.base_url
    assert "(down: unreachable)" in gpu.describe()["replicas"]
    assert gpu.health() == (True, "")


def test_every_replica_down_falls_back_by_the_rule(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    a.queue(server_error(503))
    b.queue(server_error(503))
    engine = engine_for(portfolio([a, b], ext), store)
    result = engine.run(task())
    assert result.receipt.role == "local"  # the rule's fallback, in-process
    assert any("gpu failed" in r and "fallback to local" in r for r in result.decision.reasons)
    ok, why = engine.backends["gpu"].health()
    assert not ok and why.startswith("every replica is down")
    again = engine.run(task(brief="Another line for Zoë."))
    assert again.receipt.role == "local" and len(a.seen) + len(b.seen) == 2  # routed around


def test_breakers_and_budgets_are_per_model(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    policy = portfolio([a, b], ext, extra="monthly_usd = 0.0002\n")
    engine = engine_for(policy, store)
    engine.run(task(tier="critical"))  # 0.00018 spent on frontier
    engine.run(task(tier="critical"))  # 0.00036: over its own cap now
    with pytest.raises(RoutingError, match="frontier is unavailable: its budget is spent"):
        engine.run(task(tier="critical"))
    assert engine.run(task()).receipt.role == "gpu"  # the other models are not affected
    assert set(engine.breakers) == {"local", "cloud", "gpu", "frontier"}


def test_a_prompt_over_a_models_context_falls_back(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    policy = portfolio([a, b], ext)
    gpu = policy.models["gpu"].model_copy(update={"context": 256})
    policy = policy.model_copy(update={"models": {**policy.models, "gpu": gpu}})
    engine = engine_for(policy, store)
    result = engine.run(task())
    assert result.receipt.role == "local" and not a.seen and not b.seen
    assert any("exceed its context of 256" in r for r in result.decision.reasons)


SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
          "additionalProperties": False}


def test_least_in_flight_under_threads() -> None:
    """Many threads through one backend: the load is shared and every replica ends with
    nothing in flight."""
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        for s in (a, b, c):
            s.default = Reply(content=TEXT, delay=0.05)
        policy = parse_policy(f"""
[models.pool]
backend = "openai"
model = "m"
replicas = ["{a.base_url}", "{b.base_url}", "{c.base_url}"]
privacy = "private"
""")
        backend = OpenAIBackend(Settings(), policy.models["pool"])
        prompt = Prompt(style="chat", prefix="", suffix="",
                        messages=({"role": "user", "content": "hi"},))
        threads = [threading.Thread(target=backend.generate,
                                    args=(prompt, SCHEMA, Limits(50, 0.0)))
                   for _ in range(30)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert time.monotonic() - started < 10
        assert [r.in_flight for r in backend.replicas] == [0, 0, 0]  # none leaked
        assert min(len(a.seen), len(b.seen), len(c.seen)) >= 5  # the load was shared


def test_verify_names_every_replica() -> None:
    with FakeOpenAI() as a:
        policy = parse_policy(f"""
[models.pool]
backend = "openai"
model = "m"
replicas = ["{a.base_url}", "http://127.0.0.1:9/v1"]
privacy = "private"
""")
        backend = OpenAIBackend(Settings(openai_timeout=2), policy.models["pool"])
        with pytest.raises(BackendError) as caught:
            backend.verify()
        assert "http://127.0.0.1:9/v1: unreachable" in str(caught.value)
        assert f"{a.base_url}: reachable, 1 model(s)" in str(caught.value)


def test_an_oversized_prompt_does_not_open_the_models_breaker(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    policy = portfolio([a, b], ext)
    gpu = policy.models["gpu"].model_copy(update={"context": 400})
    policy = policy.model_copy(update={"models": {**policy.models, "gpu": gpu}})
    engine = engine_for(policy, store)
    long_brief = "One line thanking Zoë for the order. " + "注文ありがとうございます。" * 30
    for _ in range(4):  # more than breaker.failures: a hostile brief cannot take the model out
        assert engine.run(task(brief=long_brief)).receipt.role == "local"
    assert not a.seen and not b.seen  # 390 Japanese characters are ~390 tokens, not ~130
    assert engine.breakers["gpu"].available()
    assert engine.run(task()).receipt.role == "gpu"  # a short prompt still goes to the servers


def test_a_servers_context_refusal_falls_back_and_is_the_tasks_error_at_the_end(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    too_long = Reply(status=400, error={
        "message": "This model's maximum context length is 2048 tokens. Zoë Yılmaz ...",
        "type": "invalid_request_error", "code": "context_length_exceeded"})
    a.default = b.default = too_long
    engine = engine_for(portfolio([a, b], ext), store)
    result = engine.run(task())
    assert result.receipt.role == "local"  # the rule's fallback took it
    assert engine.breakers["gpu"].available()
    policy = portfolio([a, b], ext).model_copy()
    policy = policy.model_copy(update={"routes": [
        r.model_copy(update={"fallback": False}) for r in policy.routes]})
    with pytest.raises(InputError) as caught:  # no other model may take it: not retried
        engine_for(policy, store).run(task())
    assert "maximum context length" in str(caught.value)
    assert "Yılmaz" not in str(caught.value)  # a server quoting the prompt: redacted


def test_the_tenants_budget_caps_external_spend_only(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    a, b, ext = servers
    policy = portfolio([a, b], ext, extra="[budget]\nmonthly_usd = 0.5\n")
    gpu = policy.models["gpu"].model_copy(update={"usd_per_hour": 3.6e6})  # $1,000 a second
    policy = policy.model_copy(update={"models": {**policy.models, "gpu": gpu}})
    engine = engine_for(policy, store)
    private = engine.run(task())
    assert private.receipt.role == "gpu" and private.receipt.cost_usd > 0.5
    assert engine.run(task(tier="critical")).receipt.role == "frontier"  # still within $0.50
    ledger = Ledger(store)
    assert ledger.spent_this_month("default", external=True) < 0.5
    assert ledger.spent_this_month("default") > 0.5


def test_a_request_that_cannot_be_sent_is_a_backend_error_and_leaks_nothing_in_flight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_KEY", "sk-clé")  # not ASCII: no HTTP header can carry it
    with FakeOpenAI() as a, FakeOpenAI() as b:
        policy = parse_policy(f"""
[models.pool]
backend = "openai"
model = "m"
replicas = ["{a.base_url}", "{b.base_url}"]
privacy = "private"
key_env = "POOL_KEY"
""")
        backend = OpenAIBackend(Settings(), policy.models["pool"])
        prompt = Prompt(style="chat", prefix="", suffix="",
                        messages=({"role": "user", "content": "hi"},))
        for _ in range(3):
            with pytest.raises(BackendError, match="could not be sent.*POOL_KEY"):
                backend.generate(prompt, SCHEMA, Limits(50, 0.0))
        assert [r.in_flight for r in backend.replicas] == [0, 0]
        assert "clé" not in str(backend.describe())


def test_the_readmes_portfolio_parses_and_routes_as_it_says() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Model portfolio", 1)[1]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(text, source="README.md")
    assert policy.model_names() == ["local", "cloud", "gpu", "ja-writer", "mistral"]
    up = {n: True for n in policy.model_names()}
    assert decide(policy, inp(healthy=up)).first.role == "gpu"  # routine: the private tier
    assert decide(policy, inp(healthy={**up, "gpu": False})).first.role == "local"
    assert decide(policy, inp(language="ja", healthy=up)).first.role == "ja-writer"
    critical = decide(policy, inp(tier="critical", healthy=up)).first
    assert (critical.role, critical.masked) == ("mistral", True)


def test_spend_is_checked_again_before_every_external_call(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], store: Store) -> None:
    """A batch is routed before its first call, and a task may call a model several times
    (best-of candidates, a repair, a cascade's escalation): none of it may run past the budget."""
    a, b, ext = servers
    # each frontier call costs $0.00018; the tenant may spend $0.0001: the first call spends it
    policy = portfolio([a, b], ext, extra="[budget]\nmonthly_usd = 0.0001\n")
    critical = [task(tier="critical", brief=f"One line thanking Zoë for order {i}.")
                for i in range(10)]
    results = engine_for(policy, store).run_many(critical)
    # only calls that started before the first one ended (four run at once), none after
    assert 1 <= len(ext.seen) <= 4
    assert sum(not isinstance(r, Exception) for r in results) == len(ext.seen)
    assert all(isinstance(r, RoutingError) and "budget spent" in str(r)
               and "of $0.0001 this month" in str(r)  # not "$0.00"
               for r in results if isinstance(r, Exception))

    ext.seen.clear()
    ext.default = completion("not json")  # every candidate fails its checks
    policy = portfolio([a, b], ext, extra="best_of = 4\n[budget]\nmonthly_usd = 0.0002\n")
    with pytest.raises(GenerationError):
        engine_for(policy, store).run(task(tier="critical", tenant="other"))
    assert len(ext.seen) == 2  # $0.00036 after two: not the 4 candidates and 4 repairs


def test_a_cascade_does_not_escalate_past_the_budget(store: Store) -> None:
    with FakeOpenAI() as cloud:
        cloud.default = completion(TEXT)
        policy = parse_policy('[[routes]]\nname = "r"\naction = "cascade"\n'
                              '[budget]\nmonthly_usd = 0.00005\n')
        local = ScriptedBackend("llama", local=True, model="gemma", outputs=["not json"] * 40)
        backends = build_backends(Settings(openai_max_retries=0, openai_api_key="k",
                                           openai_base_url=cloud.base_url), policy)
        backends["local"] = local
        engine = Engine(policy, backends, default_task_kinds(), Ledger(store))
        results = engine.run_many([task(brief=f"One line for Zoë, order {i}.")
                                   for i in range(6)])  # routed at once, before any spend
        # each escalation costs $0.000027 (100 + 20 tokens of gpt-4o-mini): two fit in $0.00005
        assert len(cloud.seen) == 2
        assert sum(isinstance(r, GenerationError) for r in results) == 4


def test_keys_and_url_credentials_never_reach_messages_or_listings(
        servers: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, ext = servers
    ext.default = Reply(status=403, error={
        "message": "Key fr-key-123 is not allowed for model frontier-1", "type": "forbidden",
        "code": None})
    policy = portfolio([a, b], ext)
    backend = build_backends(Settings(openai_max_retries=0), policy)["frontier"]
    prompt = Prompt(style="chat", prefix="", suffix="",
                    messages=({"role": "user", "content": "hi"},))
    with pytest.raises(BackendError) as caught:
        backend.generate(prompt, SCHEMA, Limits(50, 0.0))
    assert "fr-key-123" not in str(caught.value) and "[key]" in str(caught.value)
    # the built-in cloud's URL comes from BATON_OPENAI_BASE_URL, not the policy: shown without
    # its user and password
    cloud = build_backends(Settings(openai_base_url=a.base_url.replace(
        "http://", "http://proxyuser:hunter2@")), policy)["cloud"]
    assert "hunter2" not in json.dumps(cloud.describe())
    assert a.base_url in json.dumps(cloud.describe())

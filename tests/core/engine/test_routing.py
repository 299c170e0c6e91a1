import pytest

from core.engine.routing import CircuitBreaker, RouteInput, decide
from core.errors import RoutingError
from core.policy import Breaker, Policy, parse_policy

RULES = """
[[routes]]
name = "budget low"
when = { budget_left_below_usd = 1.0 }
action = "local"

[[routes]]
name = "cloud down"
when = { backend_unhealthy = ["cloud"] }
action = "local"

[[routes]]
name = "japanese"
when = { language = ["ja"], tier = ["routine"] }
action = "local"

[[routes]]
name = "critical pii"
when = { tier = ["critical"], sensitivity = ["pii", "confidential"] }
action = "cloud-masked"

[[routes]]
name = "critical"
when = { tier = ["critical"] }
action = "cloud"

[[routes]]
name = "texts"
when = { kind = ["text"] }
action = "cascade"
"""


def policy(extra: str = "") -> Policy:
    return parse_policy(RULES + extra)


def inp(**kw: object) -> RouteInput:
    base: dict[str, object] = dict(kind="email", tier="routine", sensitivity="pii", language="en",
                                   budget_left_usd=40.0, budget_usd=50.0,
                                   healthy={"local": True, "cloud": True})
    base.update(kw)
    return RouteInput(**base)  # type: ignore[arg-type]


def test_budget_rule() -> None:
    d = decide(policy(), inp(tier="critical", budget_left_usd=0.5))
    assert (d.rule, d.action) == ("budget low", "local")
    assert "budget left $0.5000 < $1.0000" in d.reasons[0]


def test_backend_health_rule() -> None:
    d = decide(policy(), inp(tier="critical", healthy={"local": True, "cloud": False}))
    assert (d.rule, d.action) == ("cloud down", "local")


def test_language_rule() -> None:
    assert decide(policy(), inp(language="ja")).rule == "japanese"


def test_tier_and_sensitivity_rules() -> None:
    d = decide(policy(), inp(tier="critical"))
    assert (d.rule, d.action, d.first.masked) == ("critical pii", "cloud-masked", True)
    d = decide(policy(), inp(tier="critical", sensitivity="none"))
    assert (d.rule, d.action, d.first.masked) == ("critical", "cloud", False)


def test_kind_rule_and_cascade_steps() -> None:
    d = decide(policy(), inp(kind="text"))
    assert d.rule == "texts"
    assert [(s.role, s.masked) for s in d.steps] == [("local", True), ("cloud", True)]


def test_default_action_when_nothing_matches() -> None:
    d = decide(policy('[routing]\ndefault_action = "cloud-masked"\n'), inp())
    assert d.rule is None and d.action == "cloud-masked"
    assert d.reasons[0] == "no rule matched -> default action cloud-masked"


def test_confidential_data_is_never_sent_unmasked() -> None:
    p = parse_policy('[[routes]]\nname = "all cloud"\naction = "cloud"\n')
    d = decide(p, inp(sensitivity="confidential"))
    assert d.action == "cloud-masked" and d.first.masked
    assert any("confidential" in r for r in d.reasons)


def test_spent_budget_falls_back_to_local() -> None:
    p = parse_policy('[[routes]]\nname = "all cloud"\naction = "cloud-masked"\n')
    d = decide(p, inp(budget_left_usd=0.0))
    assert d.action == "local"
    assert any("budget spent" in r and "fallback to local" in r for r in d.reasons)


def test_no_fallback_means_a_clear_error() -> None:
    p = parse_policy('[[routes]]\nname = "cloud only"\naction = "cloud"\nfallback = false\n')
    with pytest.raises(RoutingError, match="budget spent.*allows no fallback"):
        decide(p, inp(budget_left_usd=-0.01, sensitivity="none"))


def test_local_down_falls_back_to_masked_cloud() -> None:
    d = decide(policy(), inp(healthy={"local": False, "cloud": True},
                             unhealthy_why={"local": "model file not found"}))
    assert d.action == "cloud-masked" and d.first.masked
    assert any("model file not found" in r for r in d.reasons)


def test_cascade_without_cloud_has_one_step() -> None:
    d = decide(policy(), inp(kind="text", healthy={"local": True, "cloud": False}))
    assert [s.role for s in d.steps] == ["local"]


def test_both_down_is_an_error() -> None:
    with pytest.raises(RoutingError):
        decide(policy(), inp(kind="text", healthy={"local": False, "cloud": False}))


def test_circuit_breaker_opens_cools_down_and_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker(Breaker(failures=3, cooldown_seconds=30), clock=lambda: now[0])
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.available()
    breaker.record_failure()
    assert not breaker.available() and breaker.remaining() == 30
    now[0] = 29.9
    assert not breaker.available()
    now[0] = 30.0
    assert breaker.available()  # half-open: one trial
    breaker.record_failure()  # the trial failed: open again
    assert not breaker.available()
    now[0] = 61.0
    breaker.record_success()
    assert breaker.available() and breaker.failures == 0


def test_circuit_breaker_counts_its_cooldown_down_to_zero() -> None:
    now = [100.0]
    breaker = CircuitBreaker(Breaker(failures=1, cooldown_seconds=30), clock=lambda: now[0])
    assert breaker.remaining() == 0.0  # closed
    breaker.record_failure()
    now[0] = 110.0
    assert breaker.remaining() == 20.0
    now[0] = 200.0
    assert breaker.remaining() == 0.0


def test_an_unavailable_backend_is_explained_by_its_reason_or_as_unhealthy() -> None:
    local_only = parse_policy('[[routes]]\nname = "all"\naction = "local"\nfallback = false\n')
    down = {"local": False, "cloud": True}
    with pytest.raises(RoutingError, match=r"local is unavailable: model file missing; no allowed"):
        decide(local_only, inp(healthy=down, unhealthy_why={"local": "model file missing"}))
    with pytest.raises(RoutingError, match=r"local is unavailable: unhealthy; no allowed"):
        decide(local_only, inp(healthy=down))
    told = decide(policy(), inp(healthy=down, unhealthy_why={"local": "model file missing"}))
    assert "local is unavailable: model file missing -> fallback to cloud-masked" in told.reasons


def test_the_budget_rule_starts_below_its_threshold_and_says_why() -> None:
    assert decide(policy(), inp(tier="critical", budget_left_usd=1.0)).rule != "budget low"
    below = decide(policy(), inp(tier="critical", budget_left_usd=0.9999))
    assert below.rule == "budget low"
    assert below.reasons[0] == ("rule 'budget low' matched (budget left $0.9999 < $1.0000) -> local")


def test_a_backend_missing_from_the_health_map_counts_as_down() -> None:
    d = decide(policy(), inp(tier="critical", healthy={"local": True}))  # nothing known of cloud
    assert d.rule == "cloud down"
    assert d.reasons[0] == "rule 'cloud down' matched (unhealthy: cloud) -> local"
    always = parse_policy('[[routes]]\nname = "all"\naction = "local"\nfallback = false\n')
    with pytest.raises(RoutingError, match="local is unavailable"):
        decide(always, inp(healthy={"cloud": True}))  # nothing known of local: not used
    assert decide(always, inp()).reasons[0] == "rule 'all' matched (always) -> local"


def test_confidential_fields_turn_cloud_into_cloud_masked_and_say_so() -> None:
    to_cloud = parse_policy('[[routes]]\nname = "c"\naction = "cloud"\n')
    d = decide(to_cloud, inp(sensitivity="confidential"))
    assert d.action == "cloud-masked" and d.steps[0].masked
    assert d.reasons[1] == "confidential fields present: cloud requires masking -> cloud-masked"
    assert decide(to_cloud, inp(sensitivity="pii")).action == "cloud"

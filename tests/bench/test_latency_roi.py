"""The latency and ROI benches' set-up: the policies they run under are the embedded one with
only the named changes (the benches themselves load the model and run for minutes; README,
Performance, has their figures)."""

from bench.evalset import make
from bench.latency import p, policy_text
from bench.roi import stand_in_policy_text
from core.policy import load_policy, parse_policy


def test_the_latency_bench_changes_only_the_catalog_and_the_candidate_counts() -> None:
    data = make(20)
    catalog = data.catalog["en"] + data.catalog["ja"]
    embedded = load_policy(None)
    on, off = (parse_policy(policy_text(catalog, levers)) for levers in (None, (1, 1)))
    assert on.brand.catalog == off.brand.catalog == catalog != embedded.brand.catalog
    assert (on.local.best_of, on.local.best_of_retry) == (embedded.local.best_of,
                                                          embedded.local.best_of_retry) == (3, 6)
    assert (off.local.best_of, off.local.best_of_retry) == (1, 1)
    assert on.routes == off.routes == embedded.routes and on.costs == embedded.costs


def test_the_roi_bench_asks_the_stand_in_for_json_mode_and_keeps_the_routes_and_prices() -> None:
    data = make(20)
    policy = parse_policy(stand_in_policy_text(data.catalog["en"]))
    embedded = load_policy(None)
    assert policy.cloud.response_format == "json_object" != embedded.cloud.response_format
    assert policy.cloud.model == embedded.cloud.model and policy.routes == embedded.routes
    assert policy.costs == embedded.costs and policy.local == embedded.local


def test_percentiles_take_the_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert (p(values, 0.0), p(values, 0.5), p(values, 0.95), p(values, 1.0)) == (1.0, 3.0, 5.0, 5.0)

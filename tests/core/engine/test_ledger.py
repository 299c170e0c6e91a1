"""The ledger: receipts in the store, a tenant's spend this month, and the ROI report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.engine.ledger import (
    Ledger,
    Receipt,
    baseline_cost,
    cloud_cost,
    local_cost,
    month_start,
    percentile,
)
from core.policy import Costs
from core.store import Store

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


def receipt(**fields: object) -> Receipt:
    base = Receipt(task_id="t1", tenant="acme", kind="email", tier="routine", language="en",
                   action="local", role="local", backend="llama", model="gemma", rule=None,
                   reasons=(), status="ok", attempt=1, prompt_tokens=1000, completion_tokens=100,
                   cached_tokens=0, latency_ms=2000.0, cost_usd=0.001, baseline_cost_usd=0.0035,
                   egress=False, created_at=NOW)
    return replace(base, **fields)  # type: ignore[arg-type]


def test_costs_follow_the_price_table_per_million_tokens() -> None:
    costs = Costs()  # gpt-4o: 2.50 in, 1.25 cached in, 10.00 out (USD per 1M tokens)
    assert cloud_cost(costs, "gpt-4o", 1000, 400, 100) == pytest.approx(
        (600 * 2.50 + 400 * 1.25 + 100 * 10.00) / 1e6)
    assert baseline_cost(costs, 1000, 100) == pytest.approx((1000 * 2.50 + 100 * 10.00) / 1e6)
    assert local_cost(costs, 3600) == pytest.approx(costs.local_usd_per_hour)
    assert month_start(NOW) == datetime(2026, 12, 1, tzinfo=UTC)


def test_spend_this_month_is_the_tenants_alone_and_starts_on_the_first(store: Store) -> None:
    ledger = Ledger(store, clock=lambda: NOW)
    ledger.record(receipt(cost_usd=0.25))
    ledger.record(receipt(cost_usd=0.5, created_at=datetime(2026, 12, 1, tzinfo=UTC)))
    ledger.record(receipt(cost_usd=4.0, created_at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC)))
    ledger.record(receipt(cost_usd=8.0, tenant="globex"))
    assert ledger.spent_this_month("acme") == pytest.approx(0.75)
    assert ledger.spent_this_month("nobody") == 0.0


def test_the_report_totals_by_kind_and_a_task_has_one_baseline(store: Store) -> None:
    ledger = Ledger(store, clock=lambda: NOW)
    ledger.record(receipt(task_id="a", latency_ms=1000.0))
    ledger.record(receipt(task_id="a", attempt=2, baseline_cost_usd=0.0, latency_ms=3000.0))
    ledger.record(receipt(task_id="b", kind="reply", role="cloud", action="cloud", egress=True,
                          cost_usd=0.002, baseline_cost_usd=0.002, latency_ms=500.0))
    report = ledger.report()
    assert report.total.calls == 3 and report.total.local_share == pytest.approx(2 / 3)
    assert report.total.savings_usd == pytest.approx(0.0035 + 0.002 - 0.001 * 2 - 0.002)
    assert [k.kind for k in report.by_kind] == ["email", "reply"]
    assert report.by_kind[0].p50_ms == 1000.0 and report.by_kind[0].p95_ms == 3000.0
    assert report.by_kind[1].egress_calls == 1
    assert ledger.report(tenant="globex").total.calls == 0
    assert ledger.has_baseline("a") and not ledger.has_baseline("zzz")
    assert [r.attempt for r in ledger.receipts(task_id="a")] and len(ledger.receipts(task_id="a")) == 2


def test_nearest_rank_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0 and percentile(values, 0) == 1.0
    assert percentile([1.0, 3.0], 50) == 1.0  # half the values are at or below 1

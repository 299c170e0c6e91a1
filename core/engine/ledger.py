"""The ledger: one receipt per inference, spend per tenant, and the inference-ROI report.

Cost of a cloud call = uncached prompt tokens x input price + cached tokens x cached-input price
+ completion tokens x output price (USD per 1M tokens, from the policy's price table).
Cost of a local call = its wall time x the configured machine cost per hour.
Baseline = the same prompt and completion tokens on the reference cloud model, with no cache
discount: what the call would have cost had everything gone to the cloud.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from core.policy import Costs, ModelConfig, Price
from core.store import ReceiptRow, Store


@dataclass(frozen=True)
class Receipt:
    """What one inference did. ``egress_entities`` are entity types, never values."""

    task_id: str
    tenant: str
    kind: str
    tier: str
    language: str
    action: str
    role: str
    backend: str
    model: str
    rule: str | None
    reasons: tuple[str, ...]
    status: str
    attempt: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: float
    cost_usd: float
    baseline_cost_usd: float
    egress: bool
    egress_entities: tuple[str, ...] = ()
    replica: str | None = None  # the base URL that answered, for a model with replicas
    privacy_class: str = "private"
    masked_entities: tuple[str, ...] = ()
    # entity type -> how many values of it were replaced by placeholders in what left
    masked: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def token_cost(price: Price, prompt: int, cached: int, completion: int) -> float:
    uncached = max(prompt - cached, 0)
    return (uncached * price.input + cached * price.cached + completion * price.output) / 1e6


def cloud_cost(costs: Costs, model: str, prompt: int, cached: int, completion: int) -> float:
    return token_cost(costs.prices[model], prompt, cached, completion)


def local_cost(costs: Costs, seconds: float) -> float:
    return seconds * costs.local_usd_per_hour / 3600


def price_of(costs: Costs, model: ModelConfig, keeps_data_local: bool) -> Price | float | None:
    """How a model is priced: per token (a :class:`Price`), in USD per hour (a float), or not
    at all (None). Its own ``price`` or ``usd_per_hour``; else an in-process or private model by
    this machine's hourly cost, an API model by the price table."""
    if model.price is not None:
        return model.price
    if model.usd_per_hour is not None:
        return model.usd_per_hour
    if keeps_data_local:
        return costs.local_usd_per_hour
    return costs.prices.get(model.model)


def model_cost(costs: Costs, model: ModelConfig, keeps_data_local: bool, seconds: float,
               prompt: int, cached: int, completion: int) -> float:
    """What one call cost, as :func:`price_of` prices the model (unpriced: 0)."""
    price = price_of(costs, model, keeps_data_local)
    if price is None:
        return 0.0
    if isinstance(price, Price):
        return token_cost(price, prompt, cached, completion)
    return seconds * price / 3600


def baseline_cost(costs: Costs, prompt: int, completion: int) -> float:
    return cloud_cost(costs, costs.reference_model, prompt, 0, completion)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class KindTotals:
    kind: str
    calls: int
    local_calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    p50_ms: float
    p95_ms: float
    egress_calls: int

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @property
    def local_share(self) -> float:
        return self.local_calls / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class RoiReport:
    total: KindTotals
    by_kind: list[KindTotals]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    # the smallest value with at least q% of the values at or below it (ceil, not round: Python
    # rounds half to even, which put the p50 of two values on the larger one)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


def _totals(kind: str, rows: list[ReceiptRow]) -> KindTotals:
    latencies = [r.latency_ms for r in rows]
    return KindTotals(
        kind=kind,
        calls=len(rows),
        local_calls=sum(not r.egress for r in rows),  # private models: in-process or servers
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cached_tokens=sum(r.cached_tokens for r in rows),
        cost_usd=sum(r.cost_usd for r in rows),
        baseline_cost_usd=sum(r.baseline_cost_usd for r in rows),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        egress_calls=sum(r.egress for r in rows),
    )


class Ledger:
    """Receipts in the store."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store, self.clock = store, clock

    def record(self, receipt: Receipt) -> None:
        row = ReceiptRow(
            id=receipt.id, created_at=receipt.created_at, task_id=receipt.task_id,
            tenant=receipt.tenant, kind=receipt.kind, tier=receipt.tier,
            language=receipt.language, action=receipt.action, role=receipt.role,
            backend=receipt.backend, model=receipt.model, rule=receipt.rule,
            reasons=list(receipt.reasons), status=receipt.status, error=receipt.error,
            attempt=receipt.attempt, prompt_tokens=receipt.prompt_tokens,
            completion_tokens=receipt.completion_tokens, cached_tokens=receipt.cached_tokens,
            latency_ms=receipt.latency_ms, cost_usd=receipt.cost_usd,
            baseline_cost_usd=receipt.baseline_cost_usd, egress=receipt.egress,
            egress_entities=list(receipt.egress_entities),
            masked_entities=list(receipt.masked_entities), masked=dict(receipt.masked),
            replica=receipt.replica, privacy_class=receipt.privacy_class,
        )
        with self.store.session.begin() as session:
            session.add(row)

    def spent_this_month(self, tenant: str | None = None, *, model: str | None = None,
                         external: bool = False) -> float:
        """This month's spend of a tenant (on every model, or on ``external`` models only: what
        its ``[budget]`` caps), or on a model (by every tenant)."""
        since = month_start(self.clock())
        query = sa.select(sa.func.coalesce(sa.func.sum(ReceiptRow.cost_usd), 0.0)).where(
            ReceiptRow.created_at >= since)
        if tenant is not None:
            query = query.where(ReceiptRow.tenant == tenant)
        if model is not None:
            query = query.where(ReceiptRow.role == model)
        if external:
            query = query.where(ReceiptRow.egress.is_(True))
        with self.store.session() as session:
            return float(session.execute(query).scalar_one())

    def receipts(self, *, task_id: str | None = None, limit: int = 1000) -> list[ReceiptRow]:
        query = sa.select(ReceiptRow).order_by(ReceiptRow.created_at.desc()).limit(limit)
        if task_id is not None:
            query = query.where(ReceiptRow.task_id == task_id)
        with self.store.session() as session:
            return list(session.scalars(query))

    def has_baseline(self, task_id: str) -> bool:
        """Whether a receipt of ``task_id`` carries its baseline already (a retried job runs
        the same task again)."""
        query = sa.select(ReceiptRow.id).where(ReceiptRow.task_id == task_id,
                                              ReceiptRow.baseline_cost_usd > 0).limit(1)
        with self.store.session() as session:
            return session.execute(query).first() is not None

    def report(self, *, since: datetime | None = None, tenant: str | None = None) -> RoiReport:
        query = sa.select(ReceiptRow)
        if since is not None:
            query = query.where(ReceiptRow.created_at >= since)
        if tenant is not None:
            query = query.where(ReceiptRow.tenant == tenant)
        with self.store.session() as session:
            rows = list(session.scalars(query))
        kinds = sorted({r.kind for r in rows})
        return RoiReport(
            total=_totals("all", rows),
            by_kind=[_totals(k, [r for r in rows if r.kind == k]) for k in kinds],
        )

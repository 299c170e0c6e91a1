"""Prometheus metrics, in a registry of the app's own (no module-level state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _JobStates(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("baton_jobs", "Jobs by state", labels=["state"])
        for state, n in sorted(self.counts().items()):
            gauge.add_metric([state], n)
        yield gauge


class _ApiUsage(Collector):
    """Platforms' own API allocations as they report them (Salesforce's ``Sforce-Limit-Info``)."""

    def __init__(self, usage: Callable[[], dict[tuple[str, str], tuple[int, int]]]) -> None:
        self.usage = usage

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily("baton_platform_api_calls_used", "API calls the account has "
                                 "used in the platform's window (Salesforce: rolling 24 hours)",
                                 labels=["platform", "account"])
        limit = GaugeMetricFamily("baton_platform_api_calls_limit", "The account's API allocation "
                                  "in that window", labels=["platform", "account"])
        for (platform, account), (n, total) in sorted(self.usage().items()):
            used.add_metric([platform, account], n)
            limit.add_metric([platform, account], total)
        yield used
        yield limit


class Metrics:
    def __init__(self, job_counts: Callable[[], dict[str, int]],
                 api_usage: Callable[[], dict[tuple[str, str], tuple[int, int]]] = dict) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("baton_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("baton_http_request_seconds", "Time to respond (ack latency)",
                                 ["route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.accepted = Counter("baton_inbox_events", "Events recorded by the inbox",
                                ["source", "outcome"], registry=self.registry)
        self.registry.register(_JobStates(job_counts))
        self.registry.register(_ApiUsage(api_usage))
        # Children by label values: ``labels()`` validates and takes the metric's lock on every
        # call, twice or more per request on the ack path (a dict lookup needs neither).
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = ("request", route, str(status))
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (self.requests.labels(route, key[2]),
                                           self.latency.labels(route))
        found[0].inc()
        found[1].observe(seconds)

    def count_accepted(self, source: str, new: int, duplicate: int) -> None:
        key = ("accepted", source)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (self.accepted.labels(source, "new"),
                                           self.accepted.labels(source, "duplicate"))
        found[0].inc(new)
        found[1].inc(duplicate)

    def render(self) -> bytes:
        return generate_latest(self.registry)

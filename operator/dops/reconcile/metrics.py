"""Prometheus metrics of the operator (prometheus-client), one registry per operator run.

- `dops_operations{state}`: operations the operator knows, by run state (gauge, computed at scrape);
- `dops_queue_depth{namespace,target}` and `dops_target_active{namespace,target}`: waiting and
  scheduled+running operations per delegation target (gauges, computed at scrape);
- `dops_admission_latency_seconds`: queuedAt → admitted (histogram);
- `dops_run_duration_seconds{state}`: startedAt → completed/failed (histogram);
- `dops_reconciles_total`, `dops_reconcile_errors_total{step}`: reconcile runs and failed steps;
- `dops_api_writes_total{verb,resource}`: the operator's own API writes (what the benchmark budgets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TargetKey = tuple[str, str]
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_DURATION_BUCKETS = (0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)


class _StateCollector(Collector):
    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        queues: Callable[[], tuple[Mapping[TargetKey, int], Mapping[TargetKey, int]]],
    ) -> None:
        self.counts = counts
        self.queues = queues

    def collect(self) -> Iterator[Any]:
        ops = GaugeMetricFamily("dops_operations", "Operations known to the operator, by run state", labels=["state"])
        for state, count in sorted(self.counts().items()):
            ops.add_metric([state], count)
        yield ops
        waiting, active = self.queues()
        depth = GaugeMetricFamily(
            "dops_queue_depth",
            "Queued operations waiting for admission, per delegation target",
            labels=["namespace", "target"],
        )
        for (namespace, target), count in sorted(waiting.items()):
            depth.add_metric([namespace, target], count)
        yield depth
        running = GaugeMetricFamily(
            "dops_target_active",
            "Scheduled or running operations, per delegation target",
            labels=["namespace", "target"],
        )
        for (namespace, target), count in sorted(active.items()):
            running.add_metric([namespace, target], count)
        yield running


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admission_latency = Histogram(
            "dops_admission_latency_seconds",
            "Time from queuedAt to admission (queued → scheduled)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "dops_run_duration_seconds",
            "Time from startedAt to the terminal state",
            ["state"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.reconciles = Counter("dops_reconciles_total", "Reconcile runs", registry=self.registry)
        self.reconcile_errors = Counter(
            "dops_reconcile_errors_total",
            "Reconcile steps that failed with an API or storage error",
            ["step"],
            registry=self.registry,
        )
        self.api_writes = Counter(
            "dops_api_writes_total", "API writes made by the operator", ["verb", "resource"], registry=self.registry
        )

    def watch_state(
        self,
        counts: Callable[[], Mapping[str, int]],
        queues: Callable[[], tuple[Mapping[TargetKey, int], Mapping[TargetKey, int]]],
    ) -> None:
        self.registry.register(_StateCollector(counts, queues))

    def write(self, verb: str, resource: str) -> None:
        self.api_writes.labels(verb, resource).inc()

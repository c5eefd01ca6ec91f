"""Prometheus metrics of the explainer (one registry per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "minerlens_explainer_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "minerlens_explainer_http_request_seconds", "HTTP request latency by route", ["route"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "minerlens_explainer_cache_lookups",
            "explanation lookups by result: hit (Redis), miss (computed and stored), coalesced (shared an "
            "in-flight computation), bypass (Redis down: computed, not stored)",
            ["result"],
            registry=r,
        )
        self.computed_total = Counter(
            "minerlens_explainer_explanations_computed", "explanations computed", ["method", "model"], registry=r
        )
        self.compute_seconds = Histogram(
            "minerlens_explainer_compute_seconds", "time to compute one explanation", ["method"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.redis_up = Gauge("minerlens_explainer_redis_up", "1 when the last Redis call succeeded", registry=r)
        self.redis_up.set(1)
        self.ingested = Counter(
            "minerlens_explainer_ingested_messages", "Kafka messages by topic and outcome", ["topic", "outcome"],
            registry=r,
        )  # fmt: skip
        self.rebuilt = Counter(
            "minerlens_explainer_rebuilt_messages",
            "messages stored again from the topics after Redis lost the store",
            registry=r,
        )
        self.auth_failures = Counter(
            "minerlens_explainer_auth_failures", "refused requests by reason", ["reason"], registry=r
        )

    def computed(self, method: str, model: str, seconds: float) -> None:
        self.computed_total.labels(method, model).inc()
        self.compute_seconds.labels(method).observe(seconds)

    def cache_result(self, status: str) -> None:
        self.cache.labels(status).inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (tests, readiness)."""
        v = self.registry.get_sample_value(name, labels or {})
        return 0.0 if v is None else v

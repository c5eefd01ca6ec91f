"""Prometheus metrics of the scorer (one registry per scorer instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class ScorerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.windows = Counter(
            "minerlens_scorer_windows", "windows consumed, by outcome (scored|insufficient|replay|dead_letter)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.verdicts = Counter("minerlens_scorer_verdicts", "verdicts produced, by decision", ["decision"], registry=r)
        self.gated = Counter(
            "minerlens_scorer_gated_windows",
            "windows over the threshold made benign by the model's decision gate (network: no socket, no pool)",
            registry=r,
        )
        self.dead_letters = Counter(
            "minerlens_scorer_dead_letters", "messages sent to the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.alerts = Counter(
            "minerlens_scorer_alert_events", "OCSF findings produced, by activity (Create|Update|Close)",
            ["activity"], registry=r,
        )  # fmt: skip
        self.suppressed = Counter(
            "minerlens_scorer_suppressed_windows",
            "scored windows whose alert a suppression rule withheld (or closed), by rule id", ["rule"], registry=r,
        )  # fmt: skip
        self.open_alerts = Gauge("minerlens_scorer_open_alerts", "pods with an open alert", registry=r)
        self.batch_size = Histogram(
            "minerlens_scorer_batch_windows", "windows per scored batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "minerlens_scorer_batch_seconds", "time to score one batch (all models)", buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.window_lag = Histogram(
            "minerlens_scorer_window_lag_seconds", "verdict time - window observed_at (featurizer emit)",
            buckets=_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_reloads = Counter(
            "minerlens_scorer_model_reloads", "artifact directories loaded / refused / removed", ["result"], registry=r
        )
        self.model_info = Gauge(
            "minerlens_scorer_model_info", "served models (1 = primary, 0 = also scoring)", ["name", "version"],
            registry=r,
        )  # fmt: skip
        self.internal_errors = Counter(
            "minerlens_scorer_internal_errors", "failures inside the scorer (a bug some input triggers), survived",
            registry=r,
        )  # fmt: skip
        self.kafka_errors = Counter(
            "minerlens_scorer_kafka_errors", "produce/commit failures (batch re-consumed)", registry=r
        )
        self.restored_alerts = Gauge(
            "minerlens_scorer_restored_alerts", "open alerts rebuilt from the alerts topic at the last restore",
            registry=r,
        )  # fmt: skip

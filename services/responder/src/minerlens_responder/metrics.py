"""Prometheus metrics of the responder (a registry of its own, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from minerlens_responder.audit import AuditRecord


class ResponderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts = Counter("minerlens_responder_alerts_total", "alert events consumed", registry=self.registry)
        self.dead_lettered = Counter(
            "minerlens_responder_dead_lettered_total", "alert events sent to the DLQ", registry=self.registry
        )
        self.decisions = Counter(
            "minerlens_responder_decisions_total", "decisions by outcome", ["outcome", "mode"], registry=self.registry
        )
        self.actions = Counter(
            "minerlens_responder_actions_total", "actions by outcome", ["action", "outcome"], registry=self.registry
        )
        self.last_poll = Gauge(
            "minerlens_responder_last_poll_timestamp_seconds", "when Kafka was last polled", registry=self.registry
        )

    def observe(self, record: AuditRecord) -> None:
        self.decisions.labels(record.outcome, record.mode).inc()
        for a in record.actions:
            self.actions.labels(a.action, a.outcome).inc()

"""Prometheus metrics of the collector (one registry per collector instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_captured = Counter("minerlens_collector_events_captured", "syscall events read", registry=r)
        self.events_published = Counter(
            "minerlens_collector_events_published", "syscall events acknowledged by Kafka", registry=r
        )
        self.events_lost = Counter("minerlens_collector_events_lost", "events lost, by reason", ["reason"], registry=r)
        self.batches = Counter("minerlens_collector_batches", "syscall batches built", registry=r)
        self.drop_reports = Counter("minerlens_collector_drop_reports", "drop reports emitted", registry=r)
        self.kafka_errors = Counter(
            "minerlens_collector_kafka_errors",
            "failed or stalled (unacknowledged for stall_after_s) produce attempts",
            registry=r,
        )
        self.spool_bytes = Gauge("minerlens_collector_spool_bytes", "bytes waiting for Kafka", registry=r)
        self.spool_messages = Gauge("minerlens_collector_spool_messages", "messages waiting", registry=r)
        self.traced_tasks = Gauge("minerlens_collector_traced_tasks", "tasks seeded into the tracer", registry=r)
        self.pods = Gauge("minerlens_collector_pods", "pods with live cgroups on this node", registry=r)
        self.kafka_connected = Gauge("minerlens_collector_kafka_connected", "1 when connected", registry=r)

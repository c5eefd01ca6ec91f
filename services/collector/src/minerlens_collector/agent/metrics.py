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
        self.resource_samples = Counter(
            "minerlens_collector_resource_samples", "resource samples built (one per stream and interval)", registry=r
        )
        self.resource_samples_sent = Counter(
            "minerlens_collector_resource_samples_sent", "resource samples acknowledged by Kafka", registry=r
        )
        self.resource_read_failures = Counter(
            "minerlens_collector_resource_read_failures",
            "cgroup or process files that exist but could not be read, by what",
            ["what"],
            registry=r,
        )
        self.resource_sample_seconds = Gauge(
            "minerlens_collector_resource_sample_seconds", "wall time of the last sampling round", registry=r
        )
        self.fd_lookups = Counter(
            "minerlens_collector_fd_lookups", "fds resolved for event tagging outside the sampler's maps", registry=r
        )
        self.fd_unresolved = Counter(
            "minerlens_collector_fd_unresolved", "I/O events left untagged (lookup budget spent)", registry=r
        )
        self.source = Gauge(
            "minerlens_collector_source",
            "1 for the capture source in use, and why it was chosen",
            ["source", "reason"],
            registry=r,
        )
        self.aggregate_windows = Counter(
            "minerlens_collector_aggregate_windows", "in-kernel aggregate windows read (eBPF source)", registry=r
        )
        self.kafka_connected = Gauge("minerlens_collector_kafka_connected", "1 when connected", registry=r)

"""Prometheus metrics of the SIEM exporter (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SiemMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("minerlens_siem_alerts_consumed", "messages read from the alerts topic", registry=r)
        self.exported = Counter(
            "minerlens_siem_alerts_exported", "alerts delivered to the SIEM output", ["output"], registry=r
        )
        self.skipped = Counter("minerlens_siem_alerts_skipped", "messages skipped, by reason", ["reason"], registry=r)
        self.dead_letters = Counter(
            "minerlens_siem_dead_letters", "messages sent to the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.delivery_failures = Counter(
            "minerlens_siem_delivery_failures",
            "alerts not delivered for a transient reason (re-read from Kafka later)",
            ["output"],
            registry=r,
        )
        self.rewinds = Counter(
            "minerlens_siem_rewinds", "poll batches re-read from Kafka after a failed delivery", registry=r
        )
        self.internal_errors = Counter(
            "minerlens_siem_internal_errors",
            "failures inside the exporter (a bug some input triggers), survived",
            registry=r,
        )
        self.commit_failures = Counter("minerlens_siem_commit_failures", "offset commits that failed", registry=r)
        self.hec_requests = Counter(
            "minerlens_siem_hec_requests", "HTTP requests to Splunk HEC, by status (or 'error')", ["status"], registry=r
        )
        self.hec_retries = Counter("minerlens_siem_hec_retries", "HEC requests retried", registry=r)
        self.hec_dropped = Counter(
            "minerlens_siem_hec_queue_dropped",
            "events dropped (oldest first) because the HEC queue was full",
            registry=r,
        )
        self.hec_rejected = Counter(
            "minerlens_siem_hec_rejected_events", "events Splunk refused with a 4xx (not retried)", registry=r
        )
        self.hec_given_up = Counter(
            "minerlens_siem_hec_given_up_events", "events abandoned after the last retry", registry=r
        )
        self.hec_queue = Gauge("minerlens_siem_hec_queue_events", "events waiting for HEC", registry=r)
        self.syslog_truncated = Counter(
            "minerlens_siem_syslog_truncated", "syslog messages cut to the UDP size limit", registry=r
        )

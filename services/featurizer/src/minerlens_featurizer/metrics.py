"""Prometheus metrics of the featurizer (one registry per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class FeaturizerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        p = "minerlens_featurizer_"
        self.messages = Counter(p + "messages", "messages consumed, by kind", ["kind"], registry=r)
        self.syscalls = Counter(p + "syscalls", "syscalls windowed", registry=r)
        self.windows = Counter(p + "windows", "feature windows emitted, by completeness", ["complete"], registry=r)
        self.dead_letters = Counter(p + "dead_letters", "messages dead-lettered, by reason", ["reason"], registry=r)
        self.replayed = Counter(
            p + "replayed_messages", "redelivered messages already in the stored state, skipped", registry=r
        )
        self.offset_gaps = Counter(
            p + "skipped_offsets",
            "input offsets never handed to the featurizer between two consecutive messages of a partition"
            " (lost by the consumer, or deleted by retention before they were read)",
            registry=r,
        )
        self.duplicates = Counter(p + "duplicate_batches", "resent batches (same seq) dropped", registry=r)
        self.seq_gaps = Counter(p + "seq_gap_batches", "batches missing from a stream's seq", registry=r)
        self.seq_resets = Counter(p + "seq_resets", "streams whose seq restarted (collector restart)", registry=r)
        self.lost_events = Counter(p + "lost_events", "events reported lost, by reason", ["reason"], registry=r)
        self.streams = Gauge(p + "streams", "streams with live state on this worker", registry=r)
        self.restored = Counter(p + "restored_streams", "streams restored from the table", registry=r)
        self.discarded = Counter(p + "discarded_states", "stored states unusable (other spec, corrupt)", registry=r)
        self.retired = Counter(p + "retired_streams", "idle streams flushed", registry=r)
        self.internal_errors = Counter(
            p + "internal_errors", "failures inside the featurizer (messages, windows, timers), survived", registry=r
        )
        self.delivery_retries = Counter(
            p + "delivery_retries", "micro-batch sends or state writes retried after a broker failure", registry=r
        )
        self.flush_seconds = Histogram(
            p + "flush_seconds",
            "micro-batch flush: vectorise, send, await delivery, persist state",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.flush_windows = Histogram(
            p + "flush_windows", "windows per micro-batch", buckets=(1, 4, 16, 64, 256, 1024, 4096), registry=r
        )

"""The collector service: capture -> attribute -> batch -> spool -> Kafka, with loss reported in-band."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass

from minerlens_core import topics
from minerlens_core.kafka import message_headers
from minerlens_core.schemas import DropReport, Envelope, PodRef, SyscallBatch
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch

from minerlens_collector.attribution import TaskResolver
from minerlens_collector.batcher import Batcher, PodLookup
from minerlens_collector.discovery import scan_pods
from minerlens_collector.metrics import CollectorMetrics
from minerlens_collector.publisher import Publisher
from minerlens_collector.settings import CollectorSettings
from minerlens_collector.source import EventSource
from minerlens_collector.spool import Outgoing, Spool

log = logging.getLogger(__name__)


@dataclass
class _Marks:
    """Counter values already turned into metrics or drop reports."""

    unattributed: int = 0
    published: int = 0
    kafka_errors: int = 0


class Collector:
    """Runs until ``stop()``; all state is per instance (several can run in one process for tests)."""

    def __init__(
        self,
        settings: CollectorSettings,
        kafka: KafkaSettings,
        *,
        source: EventSource,
        node: str,
        cluster: str,
        arch: Arch,
        topic: str = topics.SYSCALLS,
        pod_lookup: PodLookup | None = None,
    ) -> None:
        self.settings = settings
        self.node, self.cluster = node, cluster
        self.source = source
        self.metrics = CollectorMetrics()
        self.resolver = TaskResolver(proc=settings.proc_root, exited=getattr(source, "task", None))
        self.batcher = Batcher(
            resolver=self.resolver,
            node=node,
            cluster=cluster,
            arch=arch,
            source=source.name,
            max_events=settings.batch_max_events,
            max_age_s=settings.batch_max_age_s,
            include_node=settings.include_node,
            pod_lookup=pod_lookup,
        )
        self.spool = Spool(settings.spool_max_bytes)
        self.publisher = Publisher(kafka, topic, self.spool)
        self._seeded: set[int] = set()
        self._stop = asyncio.Event()
        self._marks = _Marks()
        self._spool_drops_by_pod: Counter[str] = Counter()
        self.started_at = time.time()
        self.pods: set[str] = set()

    # -- inputs ------------------------------------------------------------------------------
    def reseed(self) -> int:
        """Add tasks of pods that appeared since the last scan; returns how many were new."""
        scan = scan_pods(self.settings.cgroup_root)
        self.pods = scan.pods
        new = [tid for tid in scan.tasks if tid not in self._seeded]
        self.resolver.hints.update(scan.tasks)
        if new:
            self.source.add_pids(new)
            self._seeded.update(new)
        self._seeded &= scan.tasks.keys()  # forget tasks that left their pod or exited
        self.metrics.traced_tasks.set(len(self._seeded))
        self.metrics.pods.set(len(scan.pods))
        return len(new)

    # -- outputs -----------------------------------------------------------------------------
    def _enqueue(self, message: SyscallBatch | DropReport, events: int) -> None:
        value = message.model_dump_json().encode()
        pod = message.envelope.pod.uid if message.envelope.pod else None
        item = Outgoing(message.envelope.key, value, message_headers(message), events, pod)
        for lost in self.spool.put(item):
            self.metrics.events_lost.labels("spool_overflow").inc(lost.events)
            if lost.pod_uid:
                self._spool_drops_by_pod[lost.pod_uid] += lost.events

    def _emit(self, batches: list[SyscallBatch]) -> None:
        for b in batches:
            self.metrics.batches.inc()
            self._enqueue(b, len(b))

    def _drop(
        self, reason: str, lost: int, *, pod: str | None = None, cpu: int | None = None, detail: str = ""
    ) -> None:
        report = DropReport(
            envelope=Envelope(cluster=self.cluster, node=self.node, pod=PodRef(uid=pod) if pod else None),
            source="spool" if reason == "spool_overflow" else self.source.name,  # type: ignore[arg-type]
            reason=reason,  # type: ignore[arg-type]
            lost_events=lost,
            cpu=cpu,
            interval_end_ns=time.time_ns(),
            detail=detail,
        )
        self.metrics.drop_reports.inc()
        log.warning("drop report: %s lost=%d pod=%s cpu=%s %s", reason, lost, pod, cpu, detail)
        self._enqueue(report, 0)

    def report_losses(self) -> None:
        """Turn loss counters into drop reports (ring-buffer overrun, unattributed, spool overflow)."""
        for cpu, lost in sorted(self.source.loss_delta().items()):
            if lost > 0:
                self.metrics.events_lost.labels("ring_buffer_overrun").inc(lost)
                self._drop("ring_buffer_overrun", lost, cpu=cpu)
        unattributed = self.batcher.stats.unattributed - self._marks.unattributed
        if unattributed > 0:
            self._marks.unattributed = self.batcher.stats.unattributed
            self.metrics.events_lost.labels("unattributed").inc(unattributed)
            self._drop("unattributed", unattributed, detail="threads exited before their pod was resolved")
        drops, self._spool_drops_by_pod = self._spool_drops_by_pod, Counter()
        for pod, lost in drops.items():
            self._drop("spool_overflow", lost, pod=pod, detail="Kafka unavailable and local spool full")

    # -- loops -------------------------------------------------------------------------------
    async def _capture_loop(self) -> None:
        next_seed = 0.0
        next_loss = time.monotonic() + self.settings.drop_report_interval_s
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_seed:
                await asyncio.to_thread(self.reseed)
                next_seed = now + self.settings.reseed_interval_s
            events = await asyncio.to_thread(self.source.poll, self.settings.poll_timeout_s)
            self.metrics.events_captured.inc(len(events))
            self._emit(self.batcher.add(events))
            if now >= next_loss:
                self.report_losses()
                next_loss = now + self.settings.drop_report_interval_s
            self._sync_publisher_metrics()

    def _sync_publisher_metrics(self) -> None:
        p = self.publisher
        self.metrics.kafka_connected.set(1 if p.connected else 0)
        self.metrics.events_published.inc(p.sent_events - self._marks.published)
        self.metrics.kafka_errors.inc(p.send_errors + p.stalls - self._marks.kafka_errors)
        self._marks.published, self._marks.kafka_errors = p.sent_events, p.send_errors + p.stalls
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_messages.set(len(self.spool))

    def health(self) -> dict[str, object]:
        return {
            "ok": not self._stop.is_set(),
            "source": self.source.name,
            "kafka_connected": self.publisher.connected,
            "spool_messages": len(self.spool),
            "pods": len(self.pods),
            "traced_tasks": len(self._seeded),
        }

    async def run(self) -> None:
        """Capture until ``stop()``; then flush every open batch and drain the spool (bounded)."""
        self.source.start()
        publisher = asyncio.create_task(self.publisher.run(), name="publisher")
        try:
            await self._capture_loop()
        finally:
            self._emit(self.batcher.add(self.source.poll(0)))
            self._emit(self.batcher.flush(force=True))
            self.report_losses()
            self.source.stop()
            await self.publisher.drain(timeout_s=10)
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            await self.publisher.close()

    def stop(self) -> None:
        self._stop.set()

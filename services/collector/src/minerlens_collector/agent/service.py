"""The collector service: capture -> attribute -> batch -> spool -> Kafka, with loss reported in-band.

Beside the batches, every ``sample_interval_s`` (aligned to wall-clock multiples of it) each stream's
``ResourceSample`` goes through the same spool with the same key (the pod uid), so a consumer reads it
in order with the stream's batches on one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass

from minerlens_core import topics
from minerlens_core.kafka import message_headers
from minerlens_core.schemas import DropReport, Envelope, PodRef, ResourceSample, SyscallBatch
from minerlens_core.schemas.aggregates import SyscallAggregate
from minerlens_core.settings import KafkaSettings
from minerlens_core.syscalls import Arch

from minerlens_collector.agent.aggregates import AggregateReader
from minerlens_collector.agent.attribution import TaskResolver
from minerlens_collector.agent.batcher import Batcher, ImageLookup, PodLookup
from minerlens_collector.agent.cgroup_stats import CgroupReader
from minerlens_collector.agent.discovery import scan_pods
from minerlens_collector.agent.fdtable import FdTable
from minerlens_collector.agent.metrics import CollectorMetrics
from minerlens_collector.agent.publisher import Publisher
from minerlens_collector.agent.resources import ResourceSampler, SampleTarget, StreamKey
from minerlens_collector.agent.settings import CollectorSettings
from minerlens_collector.agent.source import EventSource
from minerlens_collector.agent.spool import Outgoing, Spool

log = logging.getLogger(__name__)


@dataclass
class _Marks:
    """Counter values already turned into metrics or drop reports."""

    unattributed: int = 0
    published: int = 0
    kafka_errors: int = 0
    samples_sent: int = 0
    unreadable: int = 0
    running_skipped: int = 0
    fds_truncated: int = 0
    refused: int = 0
    fd_lookups: int = 0
    fd_unresolved: int = 0


class Collector:
    """Runs until ``stop()``; all state is per instance (several can run in one process for tests)."""

    def __init__(
        self,
        settings: CollectorSettings,
        kafka: KafkaSettings,
        *,
        source: EventSource,
        source_reason: str = "requested",
        node: str,
        cluster: str,
        arch: Arch,
        topic: str = topics.SYSCALLS,
        pod_lookup: PodLookup | None = None,
        image_lookup: ImageLookup | None = None,
    ) -> None:
        self.settings = settings
        self.node, self.cluster = node, cluster
        self.source = source
        self.source_reason = source_reason
        self.metrics = CollectorMetrics()
        self.metrics.source.labels(source.name, source_reason).set(1)
        self.aggregates = (
            AggregateReader(
                source,
                self.metrics,
                node=node,
                cluster=cluster,
                arch=arch,
                pod_lookup=pod_lookup,
                image_lookup=image_lookup,
                comm=lambda tid: self.resolver.resolve(tid).comm,
            )
            if getattr(source, "aggregating", False)
            else None
        )
        self.resolver = TaskResolver(proc=settings.proc_root, exited=getattr(source, "task", None))
        self.fd_table = FdTable(arch, str(settings.proc_root)) if settings.fd_tagging else None
        self.sampler = ResourceSampler(CgroupReader.at(settings.cgroup_root), str(settings.proc_root))
        self._pod_lookup = pod_lookup
        self._image_lookup = image_lookup
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
            image_lookup=image_lookup,
            fd_table=self.fd_table,
        )
        self.spool = Spool(settings.spool_max_bytes)
        self.publisher = Publisher(kafka, topic, self.spool)
        self._seeded: set[int] = set()
        self._stop = asyncio.Event()
        self._marks = _Marks()
        self._spool_drops_by_pod: Counter[str] = Counter()
        self.started_at = time.time()
        self.pods: set[str] = set()
        self.stream_dirs: dict[StreamKey, str] = {}
        self.last_sample_at: float | None = None

    # -- inputs ------------------------------------------------------------------------------
    def reseed(self) -> int:
        """Add tasks of pods that appeared since the last scan; returns how many were new."""
        scan = scan_pods(self.settings.cgroup_root)
        self.pods = scan.pods
        self.stream_dirs = scan.dirs
        new = [tid for tid in scan.tasks if tid not in self._seeded]
        self.resolver.hints.update(scan.tasks)
        if self.aggregates is not None:
            self.aggregates.set_streams(scan.dirs)  # the kernel filters by cgroup: no pid is seeded
        elif new:
            self.source.add_pids(new)
            self._seeded.update(new)
        self._seeded &= scan.tasks.keys()  # forget tasks that left their pod or exited
        self.metrics.traced_tasks.set(len(self._seeded))
        self.metrics.pods.set(len(scan.pods))
        return len(new)

    # -- outputs -----------------------------------------------------------------------------
    def _enqueue(self, message: SyscallBatch | DropReport | ResourceSample | SyscallAggregate, events: int) -> None:
        value = message.model_dump_json().encode()
        pod = message.envelope.pod.uid if message.envelope.pod else None
        item = Outgoing(message.envelope.key, value, message_headers(message), events, pod, message.kind)
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

    # -- resources ---------------------------------------------------------------------------
    def sample_targets(self) -> dict[StreamKey, SampleTarget]:
        """Every stream of the last scan; a pod-level cgroup only when no container cgroup is below it."""
        with_containers = {uid for uid, cid in self.stream_dirs if cid}
        return {
            key: SampleTarget(rel) for key, rel in self.stream_dirs.items() if key[1] or key[0] not in with_containers
        }

    async def sample_resources(self) -> int:
        """One sampling round: a ``ResourceSample`` per stream into the spool; returns how many."""
        targets = self.sample_targets()
        if not targets:
            return 0
        rnd = await asyncio.to_thread(self.sampler.sample, targets)
        if self.fd_table is not None:
            self.fd_table.replace(rnd.fd_maps)
            self.fd_table.retain(rnd.pids)
        for (uid, container_id), snap in rnd.snapshots.items():
            pod = (self._pod_lookup(uid) if self._pod_lookup else None) or PodRef(uid=uid)
            image = self._image_lookup(container_id) if self._image_lookup and container_id else None
            env = Envelope(
                cluster=self.cluster, node=self.node, pod=pod, container_id=container_id, container_image=image
            )
            self._enqueue(ResourceSample(envelope=env, sample=snap), 0)
        self.metrics.resource_samples.inc(len(rnd.snapshots))
        self.metrics.resource_sample_seconds.set(rnd.seconds)
        self.last_sample_at = time.time()
        return len(rnd.snapshots)

    def _sync_resource_metrics(self) -> None:
        st, m, marks = self.sampler.stats, self.metrics, self._marks
        for what, value in (
            ("unreadable", st.unreadable),
            ("running_skipped", st.running_skipped),
            ("fds_truncated", st.fds_truncated),
            ("refused", st.errors),
        ):
            m.resource_read_failures.labels(what).inc(value - getattr(marks, what))
            setattr(marks, what, value)
        if self.fd_table is not None:
            m.fd_lookups.inc(self.fd_table.lookups - marks.fd_lookups)
            m.fd_unresolved.inc(self.fd_table.unresolved - marks.fd_unresolved)
            marks.fd_lookups, marks.fd_unresolved = self.fd_table.lookups, self.fd_table.unresolved

    async def _sample_loop(self) -> None:
        interval = self.settings.sample_interval_s
        while not self._stop.is_set():
            now = time.time()
            due = (now // interval + 1) * interval  # aligned to wall-clock multiples of the interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), due - now)
                return
            try:
                await self.sample_resources()
            except Exception:  # the sampler must never stop the capture; log it and try next round
                log.exception("resource sampling round failed")
                self.metrics.resource_read_failures.labels("error").inc()
            self._sync_resource_metrics()

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
            if self.aggregates is not None and self.aggregates.due(self.settings.aggregate_interval_s):
                for message in await asyncio.to_thread(self.aggregates.read):
                    self._enqueue(message, message.calls)
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
        sent_samples = p.sent_by_kind.get("resource_sample", 0)
        self.metrics.resource_samples_sent.inc(sent_samples - self._marks.samples_sent)
        self._marks.samples_sent = sent_samples
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_messages.set(len(self.spool))

    def health(self) -> dict[str, object]:
        return {
            "ok": not self._stop.is_set(),
            "source": self.source.name,
            "source_reason": self.source_reason,
            **({"aggregates": self.aggregates.health()} if self.aggregates is not None else {}),
            "kafka_connected": self.publisher.connected,
            "spool_messages": len(self.spool),
            "pods": len(self.pods),
            "traced_tasks": len(self._seeded),
            "resource_samples": self.sampler.stats.samples,
            "last_sample_age_s": None if self.last_sample_at is None else round(time.time() - self.last_sample_at, 3),
        }

    async def run(self) -> None:
        """Capture until ``stop()``; then flush every open batch and drain the spool (bounded)."""
        self.source.start()
        publisher = asyncio.create_task(self.publisher.run(), name="publisher")
        sampling = None
        if self.settings.sample_interval_s > 0:
            sampling = asyncio.create_task(self._sample_loop(), name="resource-sampler")
        try:
            await self._capture_loop()
        finally:
            if sampling is not None:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            self._emit(self.batcher.add(self.source.poll(0)))
            if self.aggregates is not None:  # the window still open
                for message in self.aggregates.read():
                    self._enqueue(message, message.calls)
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

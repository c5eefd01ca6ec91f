"""Refill the pod store from the topics when Redis has lost it (restarted without its data, evicted, new).

The store carries a marker key (``meta:store``). When the ingestion finds it missing, one replica (a lock
key with a TTL) reads the windows, verdicts and alerts topics from a bounded time back (``since_s``; the
alerts from ``alerts_since_s``) up to their end at that moment, without a consumer group, stores every
message it can, and sets the marker. Bounded by ``max_messages`` and ``timeout_s``; invalid messages are
skipped here (the group consumer dead-letters them). Writes are idempotent: a message the group consumer
then stores again changes nothing, and alerts are replayed in their partition's order.

With Redis persistence on (AOF, see docs/deploy.md) a restart keeps the data and the marker: nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from minerlens_core.kafka import make_consumer
from minerlens_core.settings import KafkaSettings

from minerlens_explainer.metrics import Metrics
from minerlens_explainer.redis_link import RedisCommandError, RedisUnavailable
from minerlens_explainer.store import PodStore

log = logging.getLogger(__name__)

Handle = Callable[[str, bytes | None], Awaitable[object]]


@dataclass(frozen=True)
class RebuildReport:
    stored: int
    skipped: int
    partitions: int
    seconds: float
    complete: bool


class StoreRebuild:
    def __init__(
        self,
        store: PodStore,
        kafka: KafkaSettings,
        topics: tuple[str, str, str],
        handle: Handle,
        metrics: Metrics,
        *,
        since_s: float,
        alerts_since_s: float,
        max_messages: int,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.windows, self.verdicts, self.alerts = topics
        self.handle = handle
        self.metrics = metrics
        self.since_s = since_s
        self.alerts_since_s = alerts_since_s
        self.max_messages = max_messages
        self.timeout_s = timeout_s
        self.last: RebuildReport | None = None

    async def ensure(self, stop: asyncio.Event) -> RebuildReport | None:
        """Rebuild when the marker is missing (and no other replica is at it); raises ``RedisUnavailable``."""
        if await self.store.marker() is not None:
            return None
        owner = secrets.token_hex(8)
        if not await self.store.lock_rebuild(owner, int((self.timeout_s + 30) * 1000)):
            log.info("the store is being rebuilt by another replica")
            return None
        try:
            log.warning("the pod store is empty (Redis lost its data or is new): rebuilding it from the topics")
            report = await self.run(stop)
            if report.complete:
                await self.store.set_marker(f"rebuilt {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
            self.last = report
            return report
        finally:
            await self.store.unlock_rebuild(owner)

    async def run(self, stop: asyncio.Event) -> RebuildReport:
        started = time.monotonic()
        deadline = started + self.timeout_s
        consumer = make_consumer(self.kafka, group_id=None, enable_auto_commit=False)
        await consumer.start()
        stored = skipped = 0
        try:
            end = await self._seek(consumer, deadline)
            remaining = {tp for tp, high in end.items() if high > 0}
            while remaining and not stop.is_set():
                if time.monotonic() > deadline or stored + skipped >= self.max_messages:
                    break
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
                if not remaining:
                    break
                got = await consumer.getmany(*remaining, timeout_ms=500, max_records=500)
                for tp, records in got.items():
                    for r in records:
                        if r.offset >= end[tp]:
                            continue
                        try:
                            await self.handle(r.topic, r.value)
                            stored += 1
                        except RedisCommandError:
                            skipped += 1
                        except RedisUnavailable:
                            raise
                        except Exception:  # noqa: BLE001 (invalid: the group consumer dead-letters it; or a bug)
                            skipped += 1
        finally:
            await consumer.stop()
        complete = not remaining
        report = RebuildReport(stored, skipped, len(end), round(time.monotonic() - started, 2), complete)
        self.metrics.rebuilt.inc(stored)
        log.warning(
            "store rebuild %s: %d messages stored, %d skipped, from %d partitions in %.1f s",
            "complete" if complete else "cut short (limit or time)", stored, skipped, len(end), report.seconds,
        )  # fmt: skip
        return report

    async def _seek(self, consumer: AIOKafkaConsumer, deadline: float) -> dict[TopicPartition, int]:
        """Take every partition of the three topics, seek each to the start of its window; their end offsets."""
        now_ms = int(time.time() * 1000)
        since: dict[str, int] = {
            self.windows: now_ms - int(self.since_s * 1000),
            self.verdicts: now_ms - int(self.since_s * 1000),
            self.alerts: now_ms - int(self.alerts_since_s * 1000),
        }
        existing = [t for t in since if t in await consumer.topics()]
        if not existing:
            return {}
        consumer.subscribe(existing)  # without a group: every partition, once the metadata is in
        while {tp.topic for tp in consumer.assignment()} != set(existing):
            if time.monotonic() > deadline:
                return {}
            await consumer.getmany(timeout_ms=100)
        tps = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: max(0, since[tp.topic]) for tp in tps})
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else end[tp])
        return end

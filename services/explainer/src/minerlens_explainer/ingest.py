"""Ingestion: the windows, verdicts and alerts topics into the pod store.

``Ingestor.handle`` decodes one message and stores it (plain logic, no Kafka); ``KafkaIngest`` is the
aiokafka adapter: it consumes, calls ``handle``, dead-letters what is invalid (``<topic>.dlq`` with
``dead_letter_headers``) and commits. A message is never lost to a Redis outage: it is retried with
backoff until Redis answers (the offset is committed only after the store accepted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka.structs import ConsumerRecord
from minerlens_core.kafka import dead_letter_headers, make_consumer, make_producer
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, STATUS_RESOLVED, DetectionFinding, decode_finding
from minerlens_core.schemas.windows import decode_verdict, decode_window
from minerlens_core.settings import KafkaSettings
from minerlens_core.topics import dead_letter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minerlens_explainer.metrics import Metrics
from minerlens_explainer.naming import UID_NAMESPACE, PodKey
from minerlens_explainer.redis_link import RedisUnavailable
from minerlens_explainer.store import AlertState, PodStore

log = logging.getLogger(__name__)

Outcome = Literal["stored", "skipped"]
MAX_ALERT_WINDOWS = 500
"""window ids kept per alert (the most recent)"""


class InvalidMessage(Exception):
    """A message that cannot be stored (undecodable, other schema version, no pod): dead-lettered."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{reason}: {cause}" if cause else reason)
        self.reason = reason
        self.cause = cause


class _AlertFields(BaseModel):
    """``unmapped.minerlens`` of a finding, as far as the explainer reads it."""

    model_config = ConfigDict(extra="allow")

    alert_id: str | None = Field(default=None, max_length=512)
    window_ids: list[str] = Field(default_factory=list, max_length=10_000)
    pod_uid: str | None = None
    namespace: str | None = None
    pod: str | None = None
    opened_by: str | None = Field(default=None, description="the window that opened the alert (the scorer's)")
    trigger_window_id: str | None = None
    window_id: str | None = None


@dataclass(frozen=True)
class IngestTopics:
    windows: str
    verdicts: str
    alerts: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.windows, self.verdicts, self.alerts)


def _ms_time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def alert_pod(finding: DetectionFinding, fields: _AlertFields) -> PodKey:
    res = finding.pod
    namespace = fields.namespace or (res.namespace if res else None) or ""
    name = fields.pod or (res.name if res else None) or ""
    uid = fields.pod_uid or (res.uid if res else "")
    if namespace and name:
        return PodKey(namespace, name)
    if uid:
        return PodKey(UID_NAMESPACE, uid)
    msg = "finding names no pod (unmapped.minerlens.namespace/pod or a Kubernetes Pod resource)"
    raise InvalidMessage(msg)


def next_alert(finding: DetectionFinding, fields: _AlertFields, previous: AlertState | None) -> AlertState:
    """The pod's alert after ``finding``: window ids accumulate, the opening window stays the first seen."""
    alert_id = fields.alert_id or finding.alert_id
    closed = finding.activity_id == ACTIVITY_CLOSE or finding.status_id == STATUS_RESOLVED
    known = previous if previous is not None and previous.alert_id == alert_id else None
    trigger = (
        fields.opened_by
        or fields.trigger_window_id
        or fields.window_id
        or (known.trigger_window_id if known else None)
        or (fields.window_ids[-1] if fields.window_ids else None)  # at creation, the newest window opened it
    )
    window_ids = list(known.window_ids) if known else []
    window_ids += [w for w in fields.window_ids if w not in window_ids]
    res = finding.pod
    return AlertState(
        alert_id=alert_id,
        status="closed" if closed else "open",
        pod_uid=fields.pod_uid or (res.uid if res else ""),
        window_ids=window_ids[-MAX_ALERT_WINDOWS:],
        trigger_window_id=trigger,
        severity=finding.severity,
        opened_at=known.opened_at if known else _ms_time(finding.finding_info.created_time),
        updated_at=_ms_time(finding.time) or datetime.now(UTC),
    )


class Ingestor:
    def __init__(self, store: PodStore, topics: IngestTopics) -> None:
        self.store = store
        self.topics = topics

    async def handle(self, topic: str, value: bytes | None) -> Outcome:
        """Store one message; ``InvalidMessage`` for bad input, ``RedisUnavailable`` to retry later."""
        if not value:
            msg = "empty message"
            raise InvalidMessage(msg)
        if topic == self.topics.windows:
            try:
                window = decode_window(value)
            except (ValidationError, ValueError) as exc:
                reason = "invalid feature window"
                raise InvalidMessage(reason, exc) from None
            pod = PodKey.of(window.envelope.pod)
            if pod is None:
                return "skipped"  # node-level window: nothing to explain per pod
            await self.store.add_window(pod, window)
            return "stored"
        if topic == self.topics.verdicts:
            try:
                verdict = decode_verdict(value)
            except (ValidationError, ValueError) as exc:
                reason = "invalid verdict"
                raise InvalidMessage(reason, exc) from None
            pod = PodKey.of(verdict.envelope.pod)
            if pod is None:
                return "skipped"
            await self.store.add_verdict(pod, verdict)
            return "stored"
        if topic == self.topics.alerts:
            return await self._alert(value)
        msg = f"unexpected topic {topic}"
        raise InvalidMessage(msg)

    async def _alert(self, value: bytes) -> Outcome:
        try:
            finding = decode_finding(value)
            raw: Any = finding.unmapped.get("minerlens") or {}
            fields = _AlertFields.model_validate(raw)
        except (ValidationError, ValueError) as exc:
            reason = "invalid detection finding"
            raise InvalidMessage(reason, exc) from None
        pod = alert_pod(finding, fields)
        previous = await self.store.alert(pod)
        await self.store.set_alert(pod, next_alert(finding, fields, previous))
        return "stored"


@dataclass
class IngestStatus:
    enabled: bool = False
    state: str = "stopped"
    last_error: str = ""
    counts: dict[str, int] = field(default_factory=dict)


class KafkaIngest:
    """Consume the three topics into the store until ``stop`` is set; restarts itself after errors."""

    def __init__(
        self, ingestor: Ingestor, kafka: KafkaSettings, group_id: str, metrics: Metrics, status: IngestStatus
    ) -> None:
        self.ingestor = ingestor
        self.kafka = kafka
        self.group_id = group_id
        self.metrics = metrics
        self.status = status
        self.status.enabled = True

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._consume(stop)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (Kafka outage, anything: log, wait, reconnect)
                self.status.state = "reconnecting"
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ingestion stopped (%s), reconnecting in %.1fs", self.status.last_error, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)
        self.status.state = "stopped"

    async def _consume(self, stop: asyncio.Event) -> None:
        self.status.state = "connecting"
        consumer = make_consumer(self.kafka, *self.ingestor.topics.all, group_id=self.group_id)
        producer = make_producer(self.kafka)
        try:
            await consumer.start()
            await producer.start()
            self.status.state = "consuming"
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for record in records:
                        if not await self._one(record, producer, stop):
                            return
                if batches:
                    await consumer.commit()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _one(self, record: ConsumerRecord[bytes, bytes], producer: Any, stop: asyncio.Event) -> bool:
        """Handle one record; False when stopping while Redis is down (the record is not committed)."""
        delay = 0.2
        while True:
            try:
                outcome = await self.ingestor.handle(record.topic, record.value)
            except InvalidMessage as exc:
                await producer.send_and_wait(
                    dead_letter(record.topic),
                    record.value or b"",
                    key=record.key,
                    headers=dead_letter_headers(exc.reason, exc.cause, record.topic, record.offset, record.partition),
                )
                self._count(record.topic, "dead_lettered")
                log.info("dead-lettered %s@%d: %s", record.topic, record.offset, exc)
                return True
            except RedisUnavailable as exc:
                self.status.state = "waiting for Redis"
                self.status.last_error = str(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return False
                delay = min(delay * 2, 5.0)
                continue
            self.status.state = "consuming"
            self._count(record.topic, outcome)
            return True

    def _count(self, topic: str, outcome: str) -> None:
        self.metrics.ingested.labels(topic, outcome).inc()
        key = f"{topic}:{outcome}"
        self.status.counts[key] = self.status.counts.get(key, 0) + 1

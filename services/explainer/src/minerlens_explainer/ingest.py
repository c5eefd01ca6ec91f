"""Ingestion: the windows, verdicts and alerts topics into the pod store.

``Ingestor.handle`` decodes one message and stores it (plain logic, no Kafka); ``KafkaIngest`` hands it the
records of core's ``ConsumerLoop`` (``minerlens_core.consuming``) and dead-letters what it cannot store
(``<topic>.dlq`` with ``dead_letter_headers``: invalid messages, pods whose names are not Kubernetes names,
a write Redis refuses, anything that raised). A message is never lost to a Redis outage: the poll is read
again with backoff until Redis answers (an offset is committed only after the store accepted the message
or it was dead-lettered); one message never stops the others. The loop reports to a ``ConsumerProgress``
(the API's ``/healthz``), and when the store has lost its data (Redis restarted empty) it is first
refilled from the topics (``StoreRebuild``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka.structs import ConsumerRecord
from minerlens_core.consuming import ConsumerLoop, LoopHooks, Poll, Unavailable
from minerlens_core.kafka import ConsumerProgress, SourceRecord
from minerlens_core.retrying import Backoff
from minerlens_core.schemas.details import MinerlensDetails
from minerlens_core.schemas.envelope import PodRef
from minerlens_core.schemas.ocsf import ACTIVITY_CLOSE, STATUS_RESOLVED, DetectionFinding, decode_finding
from minerlens_core.schemas.windows import decode_verdict, decode_window
from minerlens_core.settings import KafkaSettings
from pydantic import Field, ValidationError

from minerlens_explainer.metrics import Metrics
from minerlens_explainer.naming import UID_NAMESPACE, InvalidPodName, PodKey
from minerlens_explainer.rebuild import StoreRebuild
from minerlens_explainer.redis_link import RedisCommandError, RedisUnavailable
from minerlens_explainer.store import AlertState, PodStore

log = logging.getLogger(__name__)

Outcome = Literal["stored", "skipped"]
INVALID_POD = "invalid pod name"
STORE_ERROR = "store error"
INTERNAL_ERROR = "internal error"
REDIS = "Redis"
MAX_ALERT_WINDOWS = 500
"""window ids kept per alert (the most recent)"""
MAX_ALERT_REASONS = 20


class InvalidMessage(Exception):
    """A message that cannot be stored (undecodable, other schema version, no pod): dead-lettered."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{reason}: {cause}" if cause else reason)
        self.reason = reason
        self.cause = cause


class _AlertFields(MinerlensDetails):
    """``unmapped.minerlens`` of a finding (core's typed model), plus two window names older findings used."""

    trigger_window_id: str | None = Field(default=None, max_length=512)
    window_id: str | None = Field(default=None, max_length=512)


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


def _extra_ms(finding: DetectionFinding, name: str) -> int | None:
    """An OCSF time the core model does not declare (``start_time``, ``end_time``), when it is a sane ms value."""
    value = (finding.model_extra or {}).get(name)
    return value if isinstance(value, int) and 0 < value < 1 << 45 else None


def alert_pod(finding: DetectionFinding, fields: _AlertFields) -> PodKey:
    res = finding.pod
    namespace = fields.namespace or (res.namespace if res else None) or ""
    name = fields.pod or (res.name if res else None) or ""
    uid = fields.pod_uid or (res.uid if res else "")
    try:
        if namespace and name:
            return PodKey.checked(namespace, name)
        if uid:
            return PodKey.checked(UID_NAMESPACE, uid)
    except InvalidPodName as exc:
        raise InvalidMessage(INVALID_POD, exc) from None
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
        first_seen=_ms_time(_extra_ms(finding, "start_time")) or (known.first_seen if known else None),
        last_seen=_ms_time(_extra_ms(finding, "end_time")) or (known.last_seen if known else None),
        score=fields.score if fields.score is not None else (known.score if known else None),
        threshold=fields.threshold,
        process=fields.process or (fields.evidence.process if fields.evidence else None),
        image=fields.image,
        labels=dict(fields.labels),
        reasons=fields.reasons[:MAX_ALERT_REASONS],
        model=fields.model,
        resolution=fields.resolution if closed else None,
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
            pod = _pod_of(window.envelope.pod)
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
            pod = _pod_of(verdict.envelope.pod)
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
            raw: Any = finding.unmapped.get("minerlens")
            fields = _AlertFields.model_validate(raw if raw is not None else {})
        except (ValidationError, ValueError) as exc:
            reason = "invalid detection finding"
            raise InvalidMessage(reason, exc) from None
        pod = alert_pod(finding, fields)
        previous = await self.store.alert(pod)
        await self.store.set_alert(pod, next_alert(finding, fields, previous))
        return "stored"


def _pod_of(pod: PodRef | None) -> PodKey | None:
    try:
        return PodKey.of(pod)
    except InvalidPodName as exc:
        raise InvalidMessage(INVALID_POD, exc) from None


@dataclass
class IngestStatus:
    enabled: bool = False
    state: str = "stopped"
    last_error: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _as_is(record: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    return record  # ``Ingestor.handle`` decodes and stores in one


class KafkaIngest:
    """Consume the three topics into the store until ``stop`` is set (the loop reconnects and retries)."""

    def __init__(
        self,
        ingestor: Ingestor,
        kafka: KafkaSettings,
        group_id: str,
        metrics: Metrics,
        status: IngestStatus,
        *,
        progress: ConsumerProgress | None = None,
        rebuild: StoreRebuild | None = None,
        check_store_s: float = 10.0,
    ) -> None:
        self.ingestor = ingestor
        self.kafka = kafka
        self.group_id = group_id
        self.metrics = metrics
        self.status = status
        self.status.enabled = True
        self.progress = progress or ConsumerProgress("explainer ingest")
        self.rebuild = rebuild
        self.check_store_s = check_store_s
        self._next_check = 0.0
        self._stop = asyncio.Event()
        hooks = LoopHooks(
            connected=self._consuming,
            connect_failed=self._failed,
            before_poll=self._check_store,
            dead_lettered=self._dead_lettered,
            poll_failed=self._failed,
        )
        self.loop: ConsumerLoop[ConsumerRecord[bytes, bytes]] = ConsumerLoop(
            kafka, ingestor.topics.all, group_id=group_id, decode=_as_is, handle=self._handle, progress=self.progress,
            poll_timeout_ms=500, max_records=500, retry_backoff=Backoff(initial_s=0.2, max_s=5.0), hooks=hooks,
        )  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.status.state = "connecting"
        try:
            await self.loop.run(stop)
        finally:
            self.status.state = "stopped"

    def _consuming(self) -> None:
        self.status.state = "consuming"

    def _failed(self, exc: BaseException) -> None:
        """A poll or a connection failed: the loop waits for Redis (the poll is read again) or Kafka."""
        if isinstance(exc, Unavailable) and exc.dependency == REDIS:
            self.status.state = "waiting for Redis"
            self.status.last_error = str(exc)
            return
        self.status.state = "reconnecting"
        self.status.last_error = f"{type(exc).__name__}: {exc}"

    async def _check_store(self) -> None:
        """Every ``check_store_s``: refill the store from the topics if Redis lost it (never raises). Not while
        the loop waits for Redis or Kafka: the records in hand go first."""
        now = asyncio.get_running_loop().time()
        if self.rebuild is None or now < self._next_check or self.progress.waiting:
            return
        self._next_check = now + self.check_store_s
        self.progress.waiting_for("the store rebuild")
        self.status.state = "checking the store"
        try:
            await self.rebuild.ensure(self._stop)
        except RedisUnavailable as exc:
            log.info("store check skipped, Redis is unavailable: %s", exc)
        except Exception:  # the rebuild is best effort: ingestion goes on regardless
            log.exception("rebuilding the store failed")
        finally:
            self.progress.waiting_for(None)
            self.status.state = "consuming"

    async def _handle(self, poll: Poll[ConsumerRecord[bytes, bytes]]) -> None:
        """Store each record in order; ``Unavailable`` while Redis is down (the rest is read again)."""
        for record, _ in poll.items:
            try:
                outcome = await self.ingestor.handle(record.topic, record.value)
            except InvalidMessage as exc:
                await poll.dead_letter(record, exc.reason, exc.cause)
                continue
            except RedisCommandError as exc:  # Redis refuses this write: retrying would not help
                await poll.dead_letter(record, STORE_ERROR, exc)
                continue
            except RedisUnavailable as exc:
                raise Unavailable(REDIS, str(exc)) from exc
            except Exception as exc:  # a bug some message triggers: that message only
                log.exception("storing %s[%d]@%d raised", record.topic, record.partition, record.offset)
                await poll.dead_letter(record, INTERNAL_ERROR, exc)
                continue
            self.status.state = "consuming"
            self._count(record.topic, outcome)
            poll.done(record)

    def _dead_lettered(self, record: SourceRecord, reason: str, cause: BaseException | None) -> None:
        self._count(record.topic, "dead_lettered")
        log.info("dead-lettered %s@%d: %s%s", record.topic, record.offset, reason, f": {cause}" if cause else "")
        self.status.state = "consuming"

    def _count(self, topic: str, outcome: str) -> None:
        self.metrics.ingested.labels(topic, outcome).inc()
        key = f"{topic}:{outcome}"
        self.status.counts[key] = self.status.counts.get(key, 0) + 1

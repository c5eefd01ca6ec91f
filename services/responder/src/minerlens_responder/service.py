"""Kafka adapter: alerts in, audit records out. Decodes, calls the Responder, encodes; nothing else.

Offsets are committed after the batch's audit records are acknowledged (at-least-once: an alert seen
again after a crash is decided again; every action is safe to repeat). Undecodable alerts, alerts of
another schema major version and alerts whose handling raised anything go to the dead-letter topic with
the reason and are committed: no alert stops the batch, the partition or the service. When Kafka fails
(producing an audit record, committing), the unfinished part of the poll is read again after a pause.

``/healthz`` fails when the consumer loop died or stopped making progress while alerts wait
(``ConsumerProgress``); ``/readyz`` when it is not consuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.kafka import (
    Abandoned,
    ConsumerProgress,
    dead_letter_of,
    make_consumer,
    make_producer,
    message_headers,
    send_dead_letter,
    unless_stopped,
)
from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.settings import KafkaSettings
from pydantic import ValidationError

from minerlens_responder.audit import AuditRecord
from minerlens_responder.metrics import ResponderMetrics
from minerlens_responder.responder import Responder
from minerlens_responder.settings import ResponderSettings

log = logging.getLogger(__name__)
BACKOFF_MAX_S = 30.0
SHUTDOWN_GRACE_S = 5.0
"""after SIGTERM, how long the alerts of the poll in progress may still take (Kubernetes API calls)"""


@dataclass(frozen=True)
class Message:
    """One consumed alert event (what a dead letter needs of it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class ResponderService:
    def __init__(
        self,
        responder: Responder,
        settings: ResponderSettings,
        kafka: KafkaSettings,
        metrics: ResponderMetrics | None = None,
    ) -> None:
        self.responder = responder
        self.settings = settings
        self.kafka = kafka
        self.metrics = metrics or ResponderMetrics()
        self.progress = ConsumerProgress("responder consumer", settings.stall_timeout_s)
        self._started = False
        self._producer: Any = None

    def health(self) -> dict[str, object]:
        return {**self.progress.health(), "consuming": self._started, "mode": self.responder.mode}

    def ready(self) -> dict[str, object]:
        """Serving: consuming alerts and making progress."""
        state = self.health()
        return {**state, "ok": bool(state["ok"]) and self._started and "waiting_for" not in state}

    async def run(self, *, seconds: float | None = None, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        runner, _ = await serve(
            probe_app(self.metrics.registry, self.health, self.ready), self.settings.http_host, self.settings.http_port
        )
        consumer = make_consumer(self.kafka, self.settings.alerts_topic, group_id=self.settings.group_id)
        self._producer = make_producer(self.kafka)
        deadline = None if seconds is None else time.monotonic() + seconds
        self.progress.start()
        try:
            await self._producer.start()
            await consumer.start()
            self._started = True
            log.info(
                "responder consuming %s (group %s), auditing to %s, mode %s",
                self.settings.alerts_topic,
                self.settings.group_id,
                self.settings.audit_topic,
                self.responder.mode,
            )
            backoff = 0.5
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                batch = await consumer.getmany(timeout_ms=self.settings.poll_timeout_ms)
                self.metrics.last_poll.set(time.time())
                await self.progress.polled(consumer, sum(len(r) for r in batch.values()))
                if not batch:
                    continue
                try:
                    ok = await unless_stopped(self._process(consumer, batch), stop, SHUTDOWN_GRACE_S)
                except Abandoned:  # not committed: decided again by the next consumer (actions are idempotent)
                    log.warning("stopping: the alerts in progress were abandoned after %.0f s", SHUTDOWN_GRACE_S)
                    break
                if ok:
                    backoff = 0.5
                    continue
                self.progress.waiting_for("Kafka")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.progress.stop()  # the loop ended as asked; an exception instead is a death /healthz reports
        finally:
            self._started = False
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()
            await runner.cleanup()

    async def _process(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Handle and commit one poll; False when Kafka failed (the unfinished records are read again)."""
        done: dict[TopicPartition, int] = {}
        try:
            for tp, records in batch.items():
                for rec in records:
                    await self.handle_message(rec.value, rec.key, rec.headers, rec.topic, rec.offset, rec.partition)
                    done[tp] = rec.offset + 1
                    self.progress.processed()
            self.progress.waiting_for(None)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("Kafka failed (%s): the rest of the poll is read again", exc)
            self._rewind(consumer, batch, done)
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                if done:
                    await consumer.commit(done)
            return False
        try:
            await consumer.commit(done)
        except (KafkaError, OSError, TimeoutError) as exc:  # a rebalance took the partitions: re-read, re-decided
            log.warning("offset commit failed (%s); those alerts may be decided again", exc)
        return True

    @staticmethod
    def _rewind(
        consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]], done: dict[TopicPartition, int]
    ) -> None:
        for tp, records in batch.items():
            if records:
                try:
                    consumer.seek(tp, done.get(tp, records[0].offset))
                except (IllegalStateError, KafkaError, ValueError):
                    log.info("partition %s was revoked; its new owner re-reads it", tp)

    async def handle_message(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: Any,
        topic: str,
        offset: int,
        partition: int | None = None,
    ) -> AuditRecord | None:
        """Decide one alert event and audit it; anything it cannot decide is dead-lettered. Raises only
        Kafka errors (the audit record or the dead letter could not be sent)."""
        self.metrics.alerts.inc()
        message = Message(topic, -1 if partition is None else partition, offset, key, value, list(headers or ()))
        version = dict(headers or ()).get("minerlens.schema_version")
        if version is not None and version != str(SCHEMA_VERSION).encode():
            await self._dead_letter(message, f"unsupported schema_version {version!r}", None)
            return None
        try:
            finding = decode_finding(value or b"")
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(message, "undecodable alert", exc)
            return None
        except Exception as exc:  # RecursionError, MemoryError on a crafted document: never a crash
            log.exception("decoding %s@%d raised", topic, offset)
            await self._dead_letter(message, "undecodable alert", exc)
            return None
        try:
            record = await self.responder.handle(finding)
            body = record.model_dump_json().encode()
        except Exception as exc:
            log.exception("responder failed on alert %s", finding.alert_id)
            await self._dead_letter(message, "responder error", exc)
            return None
        log.info("%s", record.log_line())
        await self._producer.send_and_wait(
            self.settings.audit_topic, body, key=record.key, headers=message_headers(record)
        )
        self.metrics.observe(record)
        return record

    async def _dead_letter(self, message: Message, reason: str, exc: BaseException | None) -> None:
        log.warning("dead-lettering %s@%d: %s%s", message.topic, message.offset, reason, f": {exc}" if exc else "")
        self.metrics.dead_lettered.inc()
        letter = dead_letter_of(message, reason, exc)
        if message.partition < 0:  # not from a partition (direct calls): no source.partition header
            letter.headers[:] = [(k, v) for k, v in letter.headers if k != "source.partition"]
        await send_dead_letter(self._producer, letter)

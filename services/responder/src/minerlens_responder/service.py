"""Kafka adapter: alerts in, audit records out. Decodes, calls the Responder, encodes; nothing else.

Offsets are committed after the batch's audit records are acknowledged (at-least-once: an alert seen
again after a crash is decided again; every action is safe to repeat). Undecodable alerts, alerts of
another schema major version and alerts whose handling raised go to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from minerlens_core import topics
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.kafka import dead_letter_headers, make_consumer, make_producer, message_headers
from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.schemas.ocsf import decode_finding
from minerlens_core.settings import KafkaSettings
from pydantic import ValidationError

from minerlens_responder.audit import AuditRecord
from minerlens_responder.metrics import ResponderMetrics
from minerlens_responder.responder import Responder
from minerlens_responder.settings import ResponderSettings

log = logging.getLogger(__name__)
STALE_POLL_S = 120.0


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
        self._started = False
        self._last_poll = 0.0
        self._producer: Any = None

    def health(self) -> dict[str, object]:
        age = time.monotonic() - self._last_poll if self._last_poll else None
        alive = not self._started or (age is not None and age < STALE_POLL_S)
        return {
            "ok": alive,
            "consuming": self._started,
            "mode": self.responder.mode,
            "last_poll_age_s": None if age is None else round(age, 1),
        }

    def ready(self) -> dict[str, object]:
        """Serving: consuming alerts and polling recently."""
        state = self.health()
        return {**state, "ok": bool(state["ok"]) and self._started}

    async def run(self, *, seconds: float | None = None, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        runner, _ = await serve(
            probe_app(self.metrics.registry, self.health, self.ready), self.settings.http_host, self.settings.http_port
        )
        consumer = make_consumer(self.kafka, self.settings.alerts_topic, group_id=self.settings.group_id)
        self._producer = make_producer(self.kafka)
        deadline = None if seconds is None else time.monotonic() + seconds
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
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                batch = await consumer.getmany(timeout_ms=self.settings.poll_timeout_ms)
                self._last_poll = time.monotonic()
                self.metrics.last_poll.set(time.time())
                if not batch:
                    continue
                for records in batch.values():
                    for rec in records:
                        await self.handle_message(rec.value, rec.key, rec.headers, rec.topic, rec.offset, rec.partition)
                await consumer.commit()
        finally:
            self._started = False
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()
            await runner.cleanup()

    async def handle_message(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: Any,
        topic: str,
        offset: int,
        partition: int | None = None,
    ) -> AuditRecord | None:
        self.metrics.alerts.inc()
        version = dict(headers or ()).get("minerlens.schema_version")
        if version is not None and version != str(SCHEMA_VERSION).encode():
            await self._dead_letter(
                value, key, f"unsupported schema_version {version!r}", None, topic, offset, partition
            )
            return None
        try:
            finding = decode_finding(value or b"")
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(value, key, "undecodable alert", exc, topic, offset, partition)
            return None
        try:
            record = await self.responder.handle(finding)
        except Exception as exc:
            log.exception("responder failed on alert %s", finding.alert_id)
            await self._dead_letter(value, key, "responder error", exc, topic, offset, partition)
            return None
        log.info("%s", record.log_line())
        body = record.model_dump_json().encode()
        await self._producer.send_and_wait(
            self.settings.audit_topic, body, key=record.key, headers=message_headers(record)
        )
        self.metrics.observe(record)
        return record

    async def _dead_letter(
        self,
        value: bytes | None,
        key: bytes | None,
        reason: str,
        exc: BaseException | None,
        topic: str,
        offset: int,
        partition: int | None,
    ) -> None:
        log.warning("dead-lettering %s@%d: %s%s", topic, offset, reason, f": {exc}" if exc else "")
        self.metrics.dead_lettered.inc()
        await self._producer.send_and_wait(
            topics.dead_letter(topic),
            value or b"",
            key=key,
            headers=dead_letter_headers(reason, exc, topic, offset, partition),
        )

"""The explainer's own Kafka output: suppression rules (for the scorer) and operator audit records.

One idempotent producer per process, started on first use. Every send waits for the broker's
acknowledgement (bounded by ``timeout_s``); a failure is ``PublishFailed`` and the caller undoes what it
stored, so what the console shows, what the scorer applies and what the audit says do not drift apart.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from minerlens_core.kafka import make_producer
from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.settings import KafkaSettings
from minerlens_core.suppressions import SuppressionRule

from minerlens_explainer.operator_models import OperatorAudit

log = logging.getLogger(__name__)


class PublishFailed(RuntimeError):
    """Kafka did not take the message in time."""


class Publisher:
    def __init__(self, kafka: KafkaSettings, *, audit_topic: str, suppressions_topic: str, timeout_s: float) -> None:
        self.kafka = kafka
        self.audit_topic = audit_topic
        self.suppressions_topic = suppressions_topic
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.kafka, request_timeout_ms=int(self.timeout_s * 1000))
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _send(self, topic: str, key: str, value: bytes | None, kind: str) -> None:
        headers = [("minerlens.kind", kind.encode()), ("minerlens.schema_version", str(SCHEMA_VERSION).encode()),
                   ("content-type", b"application/json")]  # fmt: skip
        try:
            producer = await self._started()
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key.encode(), headers=headers),
                                   self.timeout_s)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any Kafka failure (timeout, broker down) is one outcome
            log.warning("publishing to %s failed: %s: %s", topic, type(exc).__name__, exc)
            msg = f"Kafka did not take the message for {topic} ({type(exc).__name__}: {exc})"
            raise PublishFailed(msg) from None

    async def rule(self, rule_id: str, rule: SuppressionRule | None) -> None:
        """Publish a rule (or its deletion: a tombstone) for the scorer."""
        await self._send(self.suppressions_topic, rule_id, rule.model_dump_json().encode() if rule else None,
                         "suppression")  # fmt: skip

    async def audit(self, record: OperatorAudit) -> None:
        await self._send(self.audit_topic, record.target, record.model_dump_json().encode(), record.kind)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

"""Kafka adapter: alerts in, audit records out. Decodes, calls the Responder, encodes; nothing else.

The loop is core's ``ConsumerLoop`` (``minerlens_core.consuming``). Offsets are committed after the
poll's audit records are acknowledged (at-least-once: an alert seen again after a crash is decided again;
every action is safe to repeat). Undecodable alerts, alerts of another schema major version and alerts
whose handling raised anything go to the dead-letter topic with the reason and are committed: no alert
stops the batch, the partition or the service. When Kafka fails (producing an audit record, committing),
the alerts already decided are committed and the rest of the poll is read again after a pause.

``/healthz`` fails when the consumer loop died or stopped making progress while alerts wait
(``ConsumerProgress``); ``/readyz`` when it is not consuming.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from minerlens_core.consuming import ConsumerLoop, LoopHooks, Poll, Undecodable
from minerlens_core.http_probes import probe_app, serve
from minerlens_core.kafka import ConsumerProgress, SourceRecord, message_headers
from minerlens_core.retrying import Backoff
from minerlens_core.schemas.envelope import SCHEMA_VERSION
from minerlens_core.schemas.ocsf import DetectionFinding, decode_finding
from minerlens_core.settings import KafkaSettings
from pydantic import ValidationError

from minerlens_responder.metrics import ResponderMetrics
from minerlens_responder.responder import Responder
from minerlens_responder.settings import ResponderSettings

log = logging.getLogger(__name__)
BACKOFF_MAX_S = 30.0
SHUTDOWN_GRACE_S = 5.0
"""after SIGTERM, how long the alerts of the poll in progress may still take (Kubernetes API calls)"""
UNDECODABLE = "undecodable alert"


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
        hooks = LoopHooks(
            connected=self._connected,
            polled=lambda _: self.metrics.last_poll.set(time.time()),
            dead_lettered=self._dead_lettered,
        )
        self._loop: ConsumerLoop[DetectionFinding] = ConsumerLoop(
            kafka, [settings.alerts_topic], group_id=settings.group_id, decode=self._decode, handle=self._handle,
            progress=self.progress, poll_timeout_ms=settings.poll_timeout_ms, undecodable=UNDECODABLE,
            grace_s=SHUTDOWN_GRACE_S, retry_backoff=Backoff(initial_s=0.5, max_s=BACKOFF_MAX_S), hooks=hooks,
        )  # fmt: skip

    def health(self) -> dict[str, object]:
        return {**self.progress.health(), "consuming": self._loop.consuming, "mode": self.responder.mode}

    def ready(self) -> dict[str, object]:
        """Serving: consuming alerts and making progress."""
        state = self.health()
        return {**state, "ok": bool(state["ok"]) and self._loop.consuming and "waiting_for" not in state}

    async def run(self, *, seconds: float | None = None, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        runner, _ = await serve(
            probe_app(self.metrics.registry, self.health, self.ready), self.settings.http_host, self.settings.http_port
        )
        timer = asyncio.get_running_loop().call_later(seconds, stop.set) if seconds is not None else None
        try:
            await self._loop.run(stop)
        finally:
            if timer is not None:
                timer.cancel()
            await runner.cleanup()

    def _connected(self) -> None:
        log.info(
            "responder consuming %s (group %s), auditing to %s, mode %s",
            self.settings.alerts_topic,
            self.settings.group_id,
            self.settings.audit_topic,
            self.responder.mode,
        )

    def _decode(self, record: Any) -> DetectionFinding:
        """One alert event; ``Undecodable`` (dead-lettered) for another schema version or what is no alert."""
        self.metrics.alerts.inc()
        version = dict(record.headers or ()).get("minerlens.schema_version")
        if version is not None and version != str(SCHEMA_VERSION).encode():
            reason = f"unsupported schema_version {version!r}"
            raise Undecodable(reason)
        try:
            return decode_finding(record.value or b"")
        except Exception as exc:  # dead-lettered as UNDECODABLE by the loop; never a crash
            if not isinstance(exc, ValidationError | ValueError):  # RecursionError, MemoryError on a crafted one
                log.exception("decoding %s@%d raised", record.topic, record.offset)
            raise

    async def _handle(self, poll: Poll[DetectionFinding]) -> None:
        """Decide every alert of the poll in order and audit it; raises only Kafka errors (the audit record or
        the dead letter could not be sent: the alerts not done yet are read again)."""
        for record, finding in poll.items:
            try:
                audit = await self.responder.handle(finding)
                body = audit.model_dump_json().encode()
            except Exception as exc:
                log.exception("responder failed on alert %s", finding.alert_id)
                await poll.dead_letter(record, "responder error", exc)
                continue
            log.info("%s", audit.log_line())
            await poll.producer.send_and_wait(
                self.settings.audit_topic, body, key=audit.key, headers=message_headers(audit)
            )
            self.metrics.observe(audit)
            poll.done(record)

    def _dead_lettered(self, record: SourceRecord, reason: str, error: BaseException | None) -> None:
        log.warning("dead-lettered %s@%d: %s%s", record.topic, record.offset, reason, f": {error}" if error else "")
        self.metrics.dead_lettered.inc()

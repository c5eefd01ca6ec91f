"""Kafka adapter: read the alerts topic, hand alerts to one output, commit only what was delivered.

Delivery is **at-least-once**. For each poll (at most ``max_records`` messages) the consumer decodes
every message, submits the alerts to the output, flushes it, dead-letters what cannot be exported and
only then commits the offsets. If the output reports a transient failure (SIEM down, retries
exhausted), nothing is committed (but dead letters ahead of every alert of their partition): the consumer
seeks back to the first message of the poll, waits (exponential backoff) and reads it again, so a SIEM may
see an alert twice (``metadata.uid`` / ``event.id`` identify repeats) but never misses one. After a
crash, the uncommitted tail is re-read.

Poison never stops the consumer: undecodable or invalid messages, findings the mappings refuse, events
the SIEM rejects for good (a 4xx) and messages whose handling raised anything at all (``internal_error``)
go to ``<topic>.dlq`` with ``error.reason``, ``error.class``, ``error.msg``, ``source.topic``,
``source.offset`` (and ``source.partition``) headers, and are committed.

The loop is core's ``ConsumerLoop`` (``minerlens_core.consuming``): this module decodes and exports. It
reports to a ``ConsumerProgress`` (``/healthz``): while the output is failing it waits for the SIEM (a
restart would not help, ``/healthz`` stays 200 and ``/readyz`` says what it waits for); a loop that died
or stopped with alerts waiting fails ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from minerlens_core import topics
from minerlens_core.consuming import ConsumerLoop, LoopHooks, Poll, Unavailable, Undecodable
from minerlens_core.kafka import ConsumerProgress, SourceRecord
from minerlens_core.retrying import Backoff
from minerlens_core.settings import KafkaSettings

from minerlens_siem.decode import Alert, Poison, PoisonError, Skip, decode_alert
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import Output
from minerlens_siem.settings import SiemSettings

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"


class DeliveryFailedError(Unavailable):
    """The output could not deliver part of a poll; it will be read again."""


class AlertConsumer:
    def __init__(
        self,
        settings: SiemSettings,
        kafka: KafkaSettings,
        output: Output,
        metrics: SiemMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._output = output
        self._metrics = metrics or SiemMetrics()
        self._topic = settings.topic
        self._dlq_topic = topics.dead_letter(settings.topic)
        self.progress = ConsumerProgress("siem consumer", settings.stall_timeout_s)
        self.exported = 0
        self._stop = asyncio.Event()
        self._deadline: float | None = None
        hooks = LoopHooks(
            connected=self._connected,
            dead_lettered=self._dead_lettered,
            poll_failed=self._poll_failed,
            commit_failed=lambda _: self._metrics.commit_failures.inc(),
        )
        self._loop: ConsumerLoop[Alert | Skip] = ConsumerLoop(
            kafka, [settings.topic], group_id=settings.consumer_group, decode=self._decode, handle=self._export,
            progress=self.progress, poll_timeout_ms=settings.poll_timeout_ms, max_records=settings.max_records,
            dead_letter_topic=self._dlq_topic, grace_s=settings.shutdown_timeout_s / 2,
            retry_backoff=Backoff(initial_s=settings.retry_backoff_initial_s, max_s=settings.retry_backoff_max_s),
            hooks=hooks,
        )  # fmt: skip

    @property
    def consuming(self) -> bool:
        return self._loop.consuming

    @property
    def polls(self) -> int:
        return self._loop.polls

    @property
    def committed(self) -> int:
        return self._loop.committed

    @property
    def dead_lettered(self) -> int:
        return self._loop.dead_lettered

    async def run(self, stop: asyncio.Event) -> DeliveryReport:
        """Consume until ``stop`` is set; returns the output's last (shutdown) report."""
        self._stop = stop
        self.progress.start()
        await self._output.start()
        try:
            await self._loop.run(stop)
        finally:
            loop = asyncio.get_running_loop()
            left = max(1.0, (self._deadline or loop.time() + self._settings.shutdown_timeout_s) - loop.time())
            try:  # bounded: a SIEM that does not answer must not hold the process past its grace period
                report = await asyncio.wait_for(self._output.close(left), left)
            except TimeoutError:
                log.error("the output did not close within %.0f s; undelivered alerts are re-read next time", left)
                report = DeliveryReport(lost=[(None, "the output did not close in time")])
        return report

    def _connected(self) -> None:
        log.info(
            "reading %s (group %s) -> %s; dead letters -> %s",
            self._topic,
            self._settings.consumer_group,
            self._output.name,
            self._dlq_topic,
        )

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Alert | Skip:
        self._metrics.consumed.inc()
        try:
            outcome = decode_alert(record.value, record.headers)
        except Exception as exc:  # whatever a crafted message triggers: dead-lettered
            log.error("decoding %s[%d]@%d raised", record.topic, record.partition, record.offset, exc_info=exc)
            self._metrics.internal_errors.inc()
            raise Undecodable(INTERNAL_ERROR, exc) from None
        if isinstance(outcome, Poison):
            raise Undecodable(outcome.reason, outcome.error)
        return outcome

    async def _export(self, poll: Poll[Alert | Skip]) -> None:
        """Export one poll (the loop commits it); ``DeliveryFailedError`` when the output lost part of it.

        Should ``stop`` be set meanwhile, the output's close gets what is left of ``shutdown_timeout_s``."""
        self._deadline = asyncio.get_running_loop().time() + self._settings.shutdown_timeout_s
        try:
            await self._deliver(poll)
        finally:
            if not self._stop.is_set():
                self._deadline = None

    async def _deliver(self, poll: Poll[Alert | Skip]) -> None:
        for record, outcome in poll.items:
            if isinstance(outcome, Skip):
                self._metrics.skipped.labels(reason=outcome.reason).inc()
                continue
            try:
                self._output.submit(outcome, record)
            except Exception as exc:  # the mapping refused (or broke on) this alert only
                if not isinstance(exc, ValueError | TypeError):
                    log.error("mapping %s@%d raised", record.topic, record.offset, exc_info=exc)
                    self._metrics.internal_errors.inc()
                await poll.dead_letter(record, "mapping_error", exc)
        report = await self._output.flush()
        for ref, reason in report.rejected:
            if isinstance(ref, ConsumerRecord):
                await poll.dead_letter(ref, "rejected_by_siem", PoisonError(reason))
        self.exported += report.delivered
        self._metrics.exported.labels(output=self._output.name).inc(report.delivered)
        if report.lost:
            self._metrics.delivery_failures.labels(output=self._output.name).inc(len(report.lost))
            msg = f"{len(report.lost)} alerts not delivered: {report.lost[0][1]}"
            raise DeliveryFailedError(self._output.name, msg)

    def _dead_lettered(self, record: SourceRecord, reason: str, error: BaseException | None) -> None:
        self._metrics.dead_letters.labels(reason=reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)

    def _poll_failed(self, exc: BaseException) -> None:
        """Nothing of the poll was committed: it is read again (a failure other than delivery is a bug)."""
        self._metrics.rewinds.inc()
        if not isinstance(exc, DeliveryFailedError | KafkaError | OSError):
            self._metrics.internal_errors.inc()

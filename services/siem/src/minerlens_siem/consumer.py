"""Kafka adapter: read the alerts topic, hand alerts to one output, commit only what was delivered.

Delivery is **at-least-once**. For each poll (at most ``max_records`` messages) the consumer decodes
every message, submits the alerts to the output, flushes it, dead-letters what cannot be exported and
only then commits the offsets. If the output reports a transient failure (SIEM down, retries
exhausted), nothing is committed: the consumer seeks back to the first message of the poll, waits
(exponential backoff) and reads it again, so a SIEM may see an alert twice (``metadata.uid`` /
``event.id`` identify repeats) but never misses one. After a crash, the uncommitted tail is re-read.

Poison never stops the consumer: undecodable or invalid messages, findings the mappings refuse, events
the SIEM rejects for good (a 4xx) and messages whose handling raised anything at all (``internal_error``)
go to ``<topic>.dlq`` with ``error.reason``, ``error.class``, ``error.msg``, ``source.topic``,
``source.offset`` (and ``source.partition``) headers, and are committed.

The loop reports to a ``ConsumerProgress`` (``/healthz``): while the output is failing it waits for the
SIEM (a restart would not help, ``/healthz`` stays 200 and ``/readyz`` says what it waits for); a loop
that died or stopped with alerts waiting fails ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from minerlens_core import topics
from minerlens_core.kafka import (
    Abandoned,
    ConsumerProgress,
    dead_letter_of,
    make_consumer,
    make_producer,
    send_dead_letter,
    unless_stopped,
)
from minerlens_core.settings import KafkaSettings

from minerlens_siem.decode import Poison, PoisonError, Skip, decode_alert
from minerlens_siem.delivery import DeliveryReport
from minerlens_siem.metrics import SiemMetrics
from minerlens_siem.outputs import Output
from minerlens_siem.settings import SiemSettings

log = logging.getLogger(__name__)

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class DeliveryFailedError(RuntimeError):
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
        self._kafka = kafka
        self._output = output
        self._metrics = metrics or SiemMetrics()
        self._topic = settings.topic
        self._dlq_topic = topics.dead_letter(settings.topic)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._backoff = settings.retry_backoff_initial_s
        self.progress = ConsumerProgress("siem consumer", settings.stall_timeout_s)
        self.polls = 0
        self.committed = 0
        self.dead_lettered = 0
        self.exported = 0
        self.consuming = False

    async def run(self, stop: asyncio.Event) -> DeliveryReport:
        """Consume until ``stop`` is set; returns the output's last (shutdown) report."""
        self.progress.start()
        self._consumer = make_consumer(self._kafka, self._topic, group_id=self._settings.consumer_group)
        self._producer = make_producer(self._kafka)
        await self._output.start()
        await self._producer.start()
        await self._consumer.start()
        self.consuming = True
        log.info(
            "reading %s (group %s) -> %s; dead letters -> %s",
            self._topic,
            self._settings.consumer_group,
            self._output.name,
            self._dlq_topic,
        )
        deadline: float | None = None
        try:
            while not stop.is_set():
                records = await self._consumer.getmany(
                    timeout_ms=self._settings.poll_timeout_ms, max_records=self._settings.max_records
                )
                await self.progress.polled(self._consumer, _count(records))
                if records:
                    deadline = await self._process_or_stop(records, stop)
        finally:
            if stop.is_set():  # asked to stop; anything else ending the loop is a death /healthz reports
                self.progress.stop()
            self.consuming = False
            loop = asyncio.get_running_loop()
            left = max(1.0, (deadline or loop.time() + self._settings.shutdown_timeout_s) - loop.time())
            try:  # bounded: a SIEM that does not answer must not hold the process past its grace period
                report = await asyncio.wait_for(self._output.close(left), left)
            except TimeoutError:
                log.error("the output did not close within %.0f s; undelivered alerts are re-read next time", left)
                report = DeliveryReport(lost=[(None, "the output did not close in time")])
            with contextlib.suppress(KafkaError, OSError):
                await self._consumer.stop()
            with contextlib.suppress(KafkaError, OSError):
                await self._producer.stop()
        return report

    async def _process_or_stop(self, records: Records, stop: asyncio.Event) -> float | None:
        """``process``; when ``stop`` is set meanwhile it gets half of ``shutdown_timeout_s`` to finish, then it
        is abandoned (not committed: re-read by the next consumer). Returns the shutdown deadline, if stopping."""
        grace = self._settings.shutdown_timeout_s
        deadline = asyncio.get_running_loop().time() + grace
        try:
            await unless_stopped(self.process(records, stop), stop, grace / 2)
        except Abandoned:
            log.warning("stopping: the poll in progress was abandoned (not committed, it will be read again)")
        return deadline if stop.is_set() else None

    async def process(self, records: Records, stop: asyncio.Event) -> None:
        """Export one poll; commit it when delivered, else rewind to its start and back off."""
        self.polls += 1
        try:
            await self._export(records)
        except Exception as exc:  # delivery failed (or a bug): nothing is committed, the poll is read again
            known = isinstance(exc, DeliveryFailedError | KafkaError | OSError)
            if not known:
                self._metrics.internal_errors.inc()
                log.error("exporting a poll failed unexpectedly", exc_info=exc)
            self._metrics.rewinds.inc()
            log.warning("delivery failed (%s); re-reading %d messages in %.1fs", exc, _count(records), self._backoff)
            self._rewind(records)
            self.progress.waiting_for(self._output.name if isinstance(exc, DeliveryFailedError) else "Kafka")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._backoff)
            self._backoff = min(self._backoff * 2, self._settings.retry_backoff_max_s)
            if not known:
                self.progress.waiting_for(None)  # a bug is no dependency: if it recurs, /healthz reports the stall
            return
        self.progress.waiting_for(None)
        self._backoff = self._settings.retry_backoff_initial_s
        await self._commit(records)
        self.progress.processed(_count(records))

    async def _export(self, records: Records) -> None:
        for messages in records.values():
            for record in messages:
                self._metrics.consumed.inc()
                try:
                    outcome = decode_alert(record.value, record.headers)
                except Exception as exc:  # whatever a crafted message triggers: dead-lettered
                    log.error("decoding %s[%d]@%d raised", record.topic, record.partition, record.offset, exc_info=exc)
                    self._metrics.internal_errors.inc()
                    outcome = Poison("internal_error", exc)
                if isinstance(outcome, Skip):
                    self._metrics.skipped.labels(reason=outcome.reason).inc()
                    continue
                if isinstance(outcome, Poison):
                    await self._dead_letter(record, outcome.reason, outcome.error)
                    continue
                try:
                    self._output.submit(outcome, record)
                except Exception as exc:  # the mapping refused (or broke on) this alert only
                    if not isinstance(exc, ValueError | TypeError):
                        log.error("mapping %s@%d raised", record.topic, record.offset, exc_info=exc)
                        self._metrics.internal_errors.inc()
                    await self._dead_letter(record, "mapping_error", exc)
        report = await self._output.flush()
        for ref, reason in report.rejected:
            if isinstance(ref, ConsumerRecord):
                await self._dead_letter(ref, "rejected_by_siem", PoisonError(reason))
        self.exported += report.delivered
        self._metrics.exported.labels(output=self._output.name).inc(report.delivered)
        if report.lost:
            self._metrics.delivery_failures.labels(output=self._output.name).inc(len(report.lost))
            msg = f"{len(report.lost)} alerts not delivered: {report.lost[0][1]}"
            raise DeliveryFailedError(msg)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, error: BaseException) -> None:
        assert self._producer is not None
        await send_dead_letter(self._producer, dead_letter_of(record, reason, error, topic=self._dlq_topic))
        self.dead_lettered += 1
        self._metrics.dead_letters.labels(reason=reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)

    async def _commit(self, records: Records) -> None:
        assert self._consumer is not None
        offsets = {tp: messages[-1].offset + 1 for tp, messages in records.items() if messages}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance took the partitions: their next owner re-reads them (duplicates, no loss)
            self._metrics.commit_failures.inc()
            log.warning("offset commit failed (%s); those alerts may be exported again", exc)
            return
        self.committed += _count(records)

    def _rewind(self, records: Records) -> None:
        assert self._consumer is not None
        for tp, messages in records.items():
            if messages:
                try:
                    self._consumer.seek(tp, messages[0].offset)
                except (IllegalStateError, KafkaError, ValueError):
                    log.info("partition %s was revoked; its new owner re-reads it", tp)


def _count(records: Records) -> int:
    return sum(len(m) for m in records.values())

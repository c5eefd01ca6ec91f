"""Produce spooled messages to Kafka in order; survive broker outages without losing data.

At-least-once: after a failure the unacknowledged head of the spool is sent again, so a consumer
may see a batch twice; ``(node, pod, container, seq)`` identifies duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from minerlens_core.kafka import make_producer
from minerlens_core.retrying import Backoff, retry
from minerlens_core.settings import KafkaSettings

from minerlens_collector.agent.spool import Spool

log = logging.getLogger(__name__)


def _retrieve(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled():
        fut.exception()


class Publisher:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        spool: Spool,
        *,
        in_flight: int = 32,
        max_backoff_s: float = 10.0,
        stall_after_s: float = 5.0,
        producer_factory: Callable[[KafkaSettings], AIOKafkaProducer] = make_producer,
    ) -> None:
        self._settings, self._topic, self._spool = settings, topic, spool
        self._in_flight = in_flight
        self._max_backoff = max_backoff_s
        self._stall_after = stall_after_s
        self._factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self.sent_messages = 0
        self.sent_events = 0
        self.sent_by_kind: dict[str, int] = {}
        self.send_errors = 0
        self.stalls = 0
        self.connected = False

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._factory(self._settings)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            self.connected = True
            log.info("connected to Kafka at %s", self._settings.bootstrap)
        return self._producer

    async def _reset(self) -> None:
        self.connected = False
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except (KafkaError, TimeoutError, OSError):
                log.debug("producer stop failed", exc_info=True)

    async def send_head(self) -> int:
        """Send up to ``in_flight`` messages from the head of the spool; returns how many were acked."""
        producer = await self._ensure_producer()
        items = self._spool.peek(self._in_flight)
        futures: list[asyncio.Future[object]] = []
        acked = 0
        try:
            for item in items:
                futures.append(await producer.send(self._topic, item.value, key=item.key, headers=item.headers))
            for item, fut in zip(items, futures, strict=True):
                await self._await_delivery(fut)
                self._spool.pop(item)
                acked += 1
                self.sent_messages += 1
                self.sent_events += item.events
                self.sent_by_kind[item.kind] = self.sent_by_kind.get(item.kind, 0) + 1
        except BaseException:
            for fut in futures:  # their failure is this one: resent from the spool, not logged as unretrieved
                fut.add_done_callback(_retrieve)
            raise
        return acked

    async def _await_delivery(self, fut: asyncio.Future[object]) -> None:
        """Wait for an acknowledgement. aiokafka keeps retrying while the broker is unreachable, so
        the message stays with the producer (not resent, not lost); after ``stall_after_s`` the
        publisher reports itself disconnected until the broker answers again."""
        while True:
            done, _ = await asyncio.wait({fut}, timeout=self._stall_after)
            if done:
                fut.result()
                self.connected = True
                return
            if self.connected:
                log.warning(
                    "Kafka has not acknowledged for %.0fs; %d messages spooled", self._stall_after, len(self._spool)
                )
            self.connected = False
            self.stalls += 1

    async def run(self) -> None:
        """Forever: drain the spool; on errors back off (exponentially) and retry from the head."""
        backoff = Backoff(initial_s=0.2, max_s=self._max_backoff)
        while True:
            await self._spool.wait()
            await retry(
                self._send_all,
                retry_on=(KafkaError, OSError, TimeoutError),
                backoff=backoff,
                describe=lambda: f"Kafka send ({len(self._spool)} messages spooled)",
                log=log,
            )

    async def _send_all(self) -> None:
        """Send until the spool is empty; a failure drops the producer (the next attempt connects anew)."""
        try:
            while len(self._spool):
                await self.send_head()
        except (KafkaError, OSError, TimeoutError):
            self.send_errors += 1
            await self._reset()
            raise

    async def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (or the timeout passes); True when everything was sent."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._spool.wait_empty(), timeout_s)
        return not len(self._spool)

    async def close(self) -> None:
        await self._reset()

"""The one consumer loop of the services: connect, poll, decode, dead-letter, handle, commit (``kafka`` extra).

A service gives ``ConsumerLoop`` a ``decode`` (one record -> its value) and a ``handle`` (one poll's decoded
records -> done) and keeps nothing else of Kafka. ``run(stop)``:

* connects (producer, and a consumer subscribed to the topics) with backoff until Kafka answers or ``stop``;
* polls at most ``max_records``; decodes each record: one whose decode raises (``Undecodable`` names the
  reason, anything else is ``undecodable``) goes to the dead-letter topic (``kafka.dead_letter_of``: the
  reason in ``error.*``, the origin in ``source.*`` headers) and never stops the loop;
* hands the decoded records to ``handle`` (a ``Poll``: it may dead-letter more, and mark records ``done``),
  and commits the poll only once ``handle`` returned;
* when anything in that raises, the poll is rewound: what is finished (dead-lettered or ``done``) is
  committed, the rest is read again after a backoff (at-least-once). ``Unavailable`` (a dependency: Redis,
  the SIEM) and Kafka errors mark the loop as waiting for that dependency (``ConsumerProgress.waiting_for``);
  any other exception is a bug: logged, read again, and a stall ``/healthz`` reports if it recurs;
* with ``grace_s``, a poll still in hand when ``stop`` is set gets that much longer, then it is abandoned
  (not committed: read again by the next consumer);
* reports to a ``ConsumerProgress`` (``/healthz``) and stops cleanly on ``stop``.

A failed commit rewinds nothing: the next commit covers those offsets (and after a crash or a rebalance
they are read again). The backoffs are ``minerlens_core.retrying``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from minerlens_core.kafka import (
    Abandoned,
    ConsumerProgress,
    SourceRecord,
    dead_letter_of,
    make_consumer,
    make_producer,
    send_dead_letter,
    unless_stopped,
)
from minerlens_core.retrying import Backoff, retry_until_stopped
from minerlens_core.settings import KafkaSettings

log = logging.getLogger(__name__)

D = TypeVar("D")

KAFKA_ERRORS: tuple[type[Exception], ...] = (KafkaError, OSError, TimeoutError)
"""what Kafka (the broker, the network) raises while it is away: the loop waits for it"""

UNDECODABLE = "undecodable"
CONNECT_BACKOFF = Backoff(initial_s=0.5, max_s=30.0)
RETRY_BACKOFF = Backoff(initial_s=0.5, max_s=30.0)


class Undecodable(Exception):
    """Raised by a ``decode``: the record goes to the dead-letter topic with ``reason`` (and ``error``)."""

    def __init__(self, reason: str, error: BaseException | None = None) -> None:
        super().__init__(f"{reason}: {error}" if error is not None else reason)
        self.reason = reason
        self.error = error


class Unavailable(Exception):
    """Raised by a ``handle``: ``dependency`` does not answer; the poll is read again after the backoff."""

    def __init__(self, dependency: str, detail: str = "") -> None:
        super().__init__(detail or f"{dependency} is unavailable")
        self.dependency = dependency


class PollFailed(Exception):
    """A poll failed and was rewound; it is read again after the backoff (what the loop retries)."""


def _key(record: SourceRecord) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


@dataclass(frozen=True)
class LoopHooks:
    """What a service adds to the loop (its metrics, logs, state); every hook is optional."""

    connected: Callable[[], None] | None = None
    """the producer and consumer are up"""
    connect_failed: Callable[[BaseException], None] | None = None
    """a connection attempt failed (retried after the backoff)"""
    before_poll: Callable[[], Awaitable[None]] | None = None
    polled: Callable[[int], None] | None = None
    """a poll returned this many records"""
    dead_lettered: Callable[[SourceRecord, str, BaseException | None], None] | None = None
    """a record was sent to the dead-letter topic (and acknowledged)"""
    poll_failed: Callable[[BaseException], None] | None = None
    """a poll failed (polling, decoding, handling): it was rewound and is read again after the backoff"""
    commit_failed: Callable[[BaseException], None] | None = None


class Poll(Generic[D]):
    """One poll in hand: the records (ordered by topic and partition) and those that decoded, in order."""

    def __init__(self, records: Sequence[Any], loop: ConsumerLoop[D]) -> None:
        self.records = list(records)
        self.items: list[tuple[Any, D]] = []
        """(record, decoded value) of every record that decoded"""
        self._loop = loop
        self._keys = {_key(r) for r in self.records}
        self._finished: set[tuple[str, int, int]] = set()

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._loop.producer

    async def dead_letter(self, record: SourceRecord, reason: str, error: BaseException | None) -> None:
        """Send ``record`` to the dead-letter topic and wait for the acknowledgement; it is then done."""
        await self._loop.dead_letter(record, reason, error)
        self.done(record)

    def done(self, record: SourceRecord) -> None:
        """``record`` is finished: should the poll fail later, it is committed, not read again."""
        key = _key(record)
        if key in self._keys and key not in self._finished:
            self._finished.add(key)
            self._loop.progress.processed()

    def is_done(self, record: SourceRecord) -> bool:
        return _key(record) in self._finished

    def by_partition(self) -> dict[TopicPartition, list[Any]]:
        out: dict[TopicPartition, list[Any]] = {}
        for r in self.records:
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    def offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset after the poll (what a commit of the whole poll says)."""
        return {tp: records[-1].offset + 1 for tp, records in self.by_partition().items()}

    def finish(self) -> None:
        """Every record is done (the poll was committed)."""
        left = len(self.records) - len(self._finished)
        self._finished |= self._keys
        if left:
            self._loop.progress.processed(left)


class ConsumerLoop(Generic[D]):
    """Consume ``topics`` as ``group_id``: decode each record, hand the poll to ``handle``, commit after it."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        *,
        group_id: str,
        decode: Callable[[Any], D],
        handle: Callable[[Poll[D]], Awaitable[None]],
        progress: ConsumerProgress,
        poll_timeout_ms: int = 500,
        max_records: int | None = None,
        undecodable: str = UNDECODABLE,
        dead_letter_topic: str | None = None,
        handle_empty: bool = False,
        grace_s: float | None = None,
        listener: Any = None,
        connect_backoff: Backoff = CONNECT_BACKOFF,
        retry_backoff: Backoff = RETRY_BACKOFF,
        hooks: LoopHooks | None = None,
    ) -> None:
        """``undecodable``: the reason of a record whose decode raised something else than ``Undecodable``;
        ``dead_letter_topic``: where dead letters go (default ``<record topic>.dlq``); ``handle_empty``: call
        ``handle`` after empty polls too (periodic work); ``grace_s``: see the module; ``listener``: an aiokafka
        ``ConsumerRebalanceListener``."""
        self.kafka = kafka
        self.topics = list(topics)
        self.group_id = group_id
        self.decode = decode
        self.handle = handle
        self.progress = progress
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.undecodable = undecodable
        self.dead_letter_topic = dead_letter_topic
        self.handle_empty = handle_empty
        self.grace_s = grace_s
        self.listener = listener
        self.connect_backoff = connect_backoff
        self.retry_backoff = retry_backoff
        self.hooks = hooks or LoopHooks()
        self.consuming = False
        """connected, until the loop ends"""
        self.polls = 0
        """polls handed to ``handle`` (a poll read again counts again)"""
        self.committed = 0
        """records committed"""
        self.dead_lettered = 0
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def name(self) -> str:
        return self.progress.name

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "not connected"
        return self._producer

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "not connected"
        return self._consumer

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, then consume until ``stop`` is set. Returns when stopped; raises only what is not Kafka's
        while polling (a bug there ends the task, and ``/healthz`` says so)."""
        self.progress.start()
        try:
            clients = await retry_until_stopped(
                self._connect,
                retry_on=KAFKA_ERRORS,
                stop=stop,
                backoff=self.connect_backoff,
                describe=f"{self.name}: connecting to Kafka at {self.kafka.bootstrap}",
                log=log,
            )
            if clients is None:
                return
            self._producer, self._consumer = clients
            self.progress.waiting_for(None)
            self.consuming = True
            if self.hooks.connected is not None:
                self.hooks.connected()
            step = functools.partial(self._step, stop)
            while not stop.is_set():
                await retry_until_stopped(
                    step,
                    retry_on=(PollFailed,),
                    stop=stop,
                    backoff=self.retry_backoff,
                    describe=f"{self.name}: a poll",
                    log=log,
                )
        finally:
            if stop.is_set():  # asked to stop; anything else ending the loop is a death /healthz reports
                self.progress.stop()
            self.consuming = False
            await self._close()

    async def dead_letter(self, record: SourceRecord, reason: str, error: BaseException | None) -> None:
        letter = dead_letter_of(record, reason, error, topic=self.dead_letter_topic)
        await send_dead_letter(self.producer, letter)
        self.dead_lettered += 1
        if self.hooks.dead_lettered is not None:
            self.hooks.dead_lettered(record, reason, error)

    async def _connect(self) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        producer = make_producer(self.kafka)
        consumer = make_consumer(self.kafka, group_id=self.group_id)
        try:
            await producer.start()
            consumer.subscribe(self.topics, listener=self.listener)
            await consumer.start()
        except BaseException as exc:
            if isinstance(exc, KAFKA_ERRORS):
                self.progress.waiting_for("Kafka")
                if self.hooks.connect_failed is not None:
                    self.hooks.connect_failed(exc)
            await _stop_quietly(consumer, producer)
            raise
        return producer, consumer

    async def _close(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        await _stop_quietly(consumer, producer)

    async def _step(self, stop: asyncio.Event) -> None:
        """One poll: decode, handle, commit. ``PollFailed`` when it failed (rewound: read again)."""
        if self.hooks.before_poll is not None:
            await self.hooks.before_poll()
        try:
            batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        except KAFKA_ERRORS as exc:
            self._failed(exc)
            msg = f"polling: {type(exc).__name__}: {exc}"
            raise PollFailed(msg) from exc
        records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
        await self.progress.polled(self.consumer, len(records))
        if self.hooks.polled is not None:
            self.hooks.polled(len(records))
        if not records and not self.handle_empty:
            if self.progress.waiting == "Kafka":  # it answers again (other dependencies: once a poll is handled)
                self.progress.waiting_for(None)
            return
        poll = Poll(records, self)
        try:
            if self.grace_s is None:
                await self._process(poll)
            else:
                await unless_stopped(self._process(poll), stop, self.grace_s)
        except Abandoned:
            log.warning(
                "%s stopping: the poll in progress was abandoned after %.0f s (not committed: it is read again)",
                self.name,
                self.grace_s,
            )
        except Exception as exc:  # the poll is read again; a bug is logged by _failed
            left = await self._rewind(poll)
            self._failed(exc, len(poll.records))
            msg = f"{type(exc).__name__}: {exc}; {left} of {len(poll.records)} records are read again"
            raise PollFailed(msg) from exc

    async def _process(self, poll: Poll[D]) -> None:
        self.polls += 1
        for record in poll.records:
            try:
                value = self.decode(record)
            except Undecodable as exc:
                await poll.dead_letter(record, exc.reason, exc.error)
            except Exception as exc:  # noqa: BLE001 - whatever a crafted message triggers: dead-lettered
                await poll.dead_letter(record, self.undecodable, exc)
            else:
                poll.items.append((record, value))
        await self.handle(poll)
        await self._commit(poll.offsets(), len(poll.records))
        self.progress.waiting_for(None)
        poll.finish()

    async def _commit(self, offsets: dict[TopicPartition, int], count: int) -> None:
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KAFKA_ERRORS as exc:  # a rebalance took the partitions: their next owner reads them again
            log.warning("%s: offset commit failed (%s); those records may be processed again", self.name, exc)
            if self.hooks.commit_failed is not None:
                self.hooks.commit_failed(exc)
            return
        self.committed += count

    async def _rewind(self, poll: Poll[D]) -> int:
        """Commit what the failed poll finished first, seek back to the rest; how many records are read again."""
        finished: dict[TopicPartition, int] = {}
        again: dict[TopicPartition, int] = {}
        count = left = 0
        for tp, records in poll.by_partition().items():
            n = next((i for i, r in enumerate(records) if not poll.is_done(r)), len(records))
            if n:
                finished[tp] = records[n - 1].offset + 1
                count += n
            if n < len(records):
                again[tp] = records[n].offset
                left += len(records) - n
        await self._commit(finished, count)
        for tp, offset in again.items():
            try:
                self.consumer.seek(tp, offset)
            except (IllegalStateError, KafkaError, ValueError):
                log.info("%s: partition %s was revoked; its new owner reads it again", self.name, tp)
        return left

    def _failed(self, exc: BaseException, records: int = 0) -> None:
        if isinstance(exc, Unavailable):
            self.progress.waiting_for(exc.dependency)
        elif isinstance(exc, KAFKA_ERRORS):
            self.progress.waiting_for("Kafka")
        else:  # a bug is no dependency: should it recur, /healthz reports the stall
            log.error("%s: a poll of %d records failed; it is read again", self.name, records, exc_info=exc)
            self.progress.waiting_for(None)
        if self.hooks.poll_failed is not None:
            self.hooks.poll_failed(exc)


async def _stop_quietly(*clients: AIOKafkaConsumer | AIOKafkaProducer | None) -> None:
    for client in clients:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()
